"""Tiny-problem study: U-Net normalisation at batch size 2, and the strategies side by side.

Study "norm": EI and Sup trained with batch size 2 for each U-Net norm (batch | group | none)
on a tiny inpainting problem and a tiny sparse-view CT problem. Test PSNR is reported with the
network in eval mode (BatchNorm uses running statistics) and in train mode (BatchNorm uses the
statistics of the test batch itself), the latter for the whole 16-image test batch and for
test batches of 2 (the training batch size).

Study "table": test PSNR and wall time of A†y, MC, EI, EI_adv, Sup and EI_sup on the tiny
inpainting problem with one chosen norm.

Everything runs on CPU with a plain ``lightning.Trainer``. Run from the repository root:

    .venv/bin/python experiments/tiny_strategies/run.py            # both studies
    .venv/bin/python experiments/tiny_strategies/run.py --quick    # a 20-step smoke run

The markdown tables are printed and written to ``results.md`` beside this file (``--out``),
the per-run numbers to ``results.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import math
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import torch
from skimage import data
from skimage.transform import resize
from torch.utils.data import DataLoader

from eilab.data import MeasurementDataset
from eilab.groups import Rotate, Shift
from eilab.metrics import psnr
from eilab.models import PatchDiscriminator, UNet
from eilab.physics import CT, Inpainting
from eilab.strategies import EI, MC, EIAdv, EISup, Sup

HERE = Path(__file__).resolve().parent
SIZE = 32
NORMS = ("batch", "group", "none")
TABLE_STRATEGIES = ("mc", "ei", "ei_adv", "sup", "ei_sup")
LABELS = {"mc": "MC", "ei": "EI", "ei_adv": "EI_adv", "sup": "Sup", "ei_sup": "EI_sup"}


# ----------------------------------------------------------------------------- problems


def camera_crops(count: int, seed: int = 0) -> torch.Tensor:
    """Random 32×32 crops of skimage's camera resized to 128², in [0, 1].

    The same images as tests/strategies/tiny_inpainting.py (copied: tests/ is not a package).
    """
    image = resize(data.camera() / 255.0, (128, 128), anti_aliasing=True)
    rng = np.random.default_rng(seed)
    corners = rng.integers(0, 128 - SIZE, size=(count, 2))
    crops = [image[i : i + SIZE, j : j + SIZE] for i, j in corners]
    return torch.tensor(np.stack(crops), dtype=torch.float32)[:, None]


def ellipse_phantoms(count: int, seed: int = 0) -> torch.Tensor:
    """32×32 random-ellipse phantoms in [0, 1]: a body ellipse plus 6 smaller ones.

    Generated here (not eilab.data.ellipses) so that this study does not move when that
    module changes. Supersampled 4× and averaged, so edges are anti-aliased.
    """
    rng = np.random.default_rng(seed)
    fine = 4 * SIZE
    coord = (np.arange(fine) + 0.5) / fine * 2 - 1
    yy, xx = np.meshgrid(coord, coord, indexing="ij")

    def ellipse(cx, cy, a, b, angle):
        cos, sin = math.cos(angle), math.sin(angle)
        u = (xx - cx) * cos + (yy - cy) * sin
        v = -(xx - cx) * sin + (yy - cy) * cos
        return ((u / a) ** 2 + (v / b) ** 2 <= 1).astype(np.float64)

    images = []
    for _ in range(count):
        body_angle = rng.uniform(0, math.pi)
        body = ellipse(0, 0, rng.uniform(0.7, 0.85), rng.uniform(0.55, 0.7), body_angle)
        image = 0.4 * body
        for _ in range(6):
            cx, cy = rng.uniform(-0.45, 0.45, size=2)
            a, b = rng.uniform(0.05, 0.3, size=2)
            image += rng.uniform(-0.2, 0.5) * ellipse(cx, cy, a, b, rng.uniform(0, math.pi)) * body
        image = np.clip(image, 0, 1).reshape(SIZE, 4, SIZE, 4).mean(axis=(1, 3))
        images.append(image)
    return torch.tensor(np.stack(images), dtype=torch.float32)[:, None]


def make_problem(name: str) -> dict:
    """Physics, group, α, and fixed 64-train / 16-test measurement datasets."""
    if name == "inpainting":
        images = camera_crops(80)
        physics = Inpainting(SIZE, drop_rate=0.3)
        group, alpha = Shift(), 1.0
        description = "Inpainting(32, drop 0.3), camera crops, Shift, α=1"
    elif name == "ct":
        images = ellipse_phantoms(80)
        physics = CT(SIZE, n_views=12)
        group, alpha = Rotate(), 100.0
        description = "CT(32, 12 views, FBP A†), random ellipses, Rotate(1°…359°), α=100"
    else:
        raise ValueError(name)
    return {
        "name": name,
        "description": description,
        "physics": physics,
        "group": group,
        "alpha": alpha,
        "train": MeasurementDataset(images[:64], physics),
        "test": MeasurementDataset(images[64:], physics),
    }


# ----------------------------------------------------------------------------- training


def build(strategy: str, problem: dict, norm: str, args) -> L.LightningModule:
    physics, group, alpha = problem["physics"], problem["group"], problem["alpha"]
    net = UNet(1, widths=tuple(args.widths), norm=norm)
    common = {"lr": args.lr}
    if strategy == "mc":
        return MC(physics, net, **common)
    if strategy == "sup":
        return Sup(physics, net, **common)
    if strategy == "ei":
        return EI(physics, net, group, alpha=alpha, n_trans=args.n_trans, **common)
    if strategy == "ei_sup":
        return EISup(physics, net, group, alpha=alpha, n_trans=args.n_trans, **common)
    if strategy == "ei_adv":
        disc = PatchDiscriminator(1, widths=(16, 32), norm=args.disc_norm)
        return EIAdv(
            physics, net, group, disc, alpha=alpha, beta=args.beta, n_trans=args.n_trans, **common
        )
    raise ValueError(strategy)


class BatchCounter(L.Callback):
    """Counts training batches, so "steps" means batches for every strategy."""

    def __init__(self) -> None:
        self.batches = 0

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.batches += 1


@torch.no_grad()
def initial_losses(module, train_set, batch_size: int, seed: int) -> dict[str, float]:
    """Loss terms of the untrained network on the first batch (to check α's scale)."""
    torch.manual_seed(seed)
    batch = next(iter(DataLoader(train_set, batch_size=batch_size)))
    inputs = (batch["y"], batch["x"]) if module.uses_ground_truth else (batch["y"],)
    module.train()
    if isinstance(module, EIAdv):  # its terms are computed in training_step; use EI's
        losses = EI.training_losses(module, batch["y"])
    else:
        losses = module.training_losses(*inputs)
    return {k: float(v) for k, v in losses.items()}


def fit(module, train_set, steps: int, batch_size: int, seed: int) -> tuple[float, int, dict]:
    """Train for ``steps`` batches; return (wall s, batches seen, last-epoch mean losses)."""
    L.seed_everything(seed, verbose=False)
    counter = BatchCounter()
    # Lightning counts every optimizer.step() as a global step: EI_adv steps two optimizers.
    optimizers = 2 if isinstance(module, EIAdv) else 1
    trainer = L.Trainer(
        max_steps=steps * optimizers,
        max_epochs=-1,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[counter],
    )
    loader = DataLoader(
        train_set,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(seed),
    )
    start = time.perf_counter()
    trainer.fit(module, loader)
    wall = time.perf_counter() - start
    final = {
        k.removeprefix("train/"): float(v)
        for k, v in trainer.callback_metrics.items()
        if k.startswith("train/")
    }
    return wall, counter.batches, final


@torch.no_grad()
def evaluate(module, test_set) -> dict[str, float]:
    """Mean per-image test PSNR (data range 1) of f(y) in eval and train mode, and of A†y.

    Order matters: eval mode first, since a train-mode forward updates BatchNorm's running
    statistics.
    """
    x, y = test_set.images, test_set.measurements
    physics, network = module.physics, module.reconstructor.network
    x_dagger = physics.A_dagger(y)
    module.eval()
    results = {
        "psnr_adagger": psnr(x_dagger, x).mean().item(),
        "psnr_eval": psnr(network(x_dagger), x).mean().item(),
    }
    module.train()
    results["psnr_train_b16"] = psnr(network(x_dagger), x).mean().item()
    pairs = [network(x_dagger[i : i + 2]) for i in range(0, len(x), 2)]
    results["psnr_train_b2"] = psnr(torch.cat(pairs), x).mean().item()
    module.eval()
    return results


def run_one(problem: dict, strategy: str, norm: str, seed: int, steps: int, args) -> dict:
    torch.manual_seed(seed)
    module = build(strategy, problem, norm, args)
    start_losses = initial_losses(module, problem["train"], args.batch_size, seed)
    wall, batches, final_losses = fit(module, problem["train"], steps, args.batch_size, seed)
    record = {
        "problem": problem["name"],
        "strategy": strategy,
        "norm": norm,
        "seed": seed,
        "steps": batches,
        "batch_size": args.batch_size,
        "wall_s": wall,
        "initial_losses": start_losses,
        "final_losses": final_losses,
        **evaluate(module, problem["test"]),
    }
    print(
        f"  {problem['name']:10s} {strategy:7s} norm={norm:5s} seed={seed} steps={batches} "
        f"eval={record['psnr_eval']:.2f} train16={record['psnr_train_b16']:.2f} "
        f"train2={record['psnr_train_b2']:.2f} A†y={record['psnr_adagger']:.2f} "
        f"({wall:.1f}s) init={ {k: round(v, 4) for k, v in start_losses.items()} }",
        flush=True,
    )
    return record


# ----------------------------------------------------------------------------- tables


def mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}"


def norm_table(records: list[dict], problems: list[dict]) -> str:
    lines = [
        "| problem | strategy | norm | test PSNR eval mode | train mode, B=16 | "
        "train mode, B=2 | eval − train(B=16) | wall s / run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for problem in problems:
        for strategy in ("ei", "sup"):
            for norm in NORMS:
                rs = [
                    r
                    for r in records
                    if (r["problem"], r["strategy"], r["norm"]) == (problem["name"], strategy, norm)
                ]
                if not rs:
                    continue
                gap = [r["psnr_eval"] - r["psnr_train_b16"] for r in rs]
                lines.append(
                    f"| {problem['name']} | {LABELS[strategy]} | {norm} | "
                    f"{mean_sd([r['psnr_eval'] for r in rs])} | "
                    f"{mean_sd([r['psnr_train_b16'] for r in rs])} | "
                    f"{mean_sd([r['psnr_train_b2'] for r in rs])} | "
                    f"{mean_sd(gap)} | {np.mean([r['wall_s'] for r in rs]):.1f} |"
                )
        base = [r["psnr_adagger"] for r in records if r["problem"] == problem["name"]]
        if base:
            lines.append(f"| {problem['name']} | A†y | – | {base[0]:.2f} | | | | |")
    return "\n".join(lines)


def strategy_table(records: list[dict]) -> str:
    lines = [
        "| method | test PSNR (eval mode) | per seed | wall s / run |",
        "|---|---|---|---|",
    ]
    base = records[0]["psnr_adagger"]
    lines.append(f"| A†y | {base:.2f} | | 0 |")
    for strategy in TABLE_STRATEGIES:
        rs = [r for r in records if r["strategy"] == strategy]
        if not rs:
            continue
        values = [r["psnr_eval"] for r in rs]
        per_seed = ", ".join(f"{v:.2f}" for v in values)
        lines.append(
            f"| {LABELS[strategy]} | {mean_sd(values)} | {per_seed} | "
            f"{np.mean([r['wall_s'] for r in rs]):.1f} |"
        )
    return "\n".join(lines)


def loss_scale_table(records: list[dict]) -> str:
    """MC and α·EI terms of EI (seed means), at initialisation and in the last epoch."""
    lines = [
        "| problem | norm | initial loss_mc | initial α·loss_ei | ratio | "
        "final loss_mc | final α·loss_ei | ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    alphas = {"inpainting": 1.0, "ct": 100.0}
    for problem in ("inpainting", "ct"):
        for norm in NORMS:
            rs = [
                r
                for r in records
                if (r["problem"], r["strategy"], r["norm"]) == (problem, "ei", norm)
            ]
            if not rs:
                continue
            cells = []
            for when in ("initial_losses", "final_losses"):
                mc = np.mean([r[when]["loss_mc"] for r in rs])
                ei = alphas[problem] * np.mean([r[when]["loss_ei"] for r in rs])
                cells += [f"{mc:.3g}", f"{ei:.3g}", f"{ei / mc:.3g}"]
            lines.append(f"| {problem} | {norm} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        names = [line.split(":", 1)[1].strip() for line in out.splitlines() if "Model name" in line]
        return names[0] if names else platform.processor()
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", choices=("norm", "table", "all"), default="all")
    parser.add_argument(
        "--problems",
        nargs="+",
        choices=("inpainting", "ct"),
        default=["inpainting", "ct"],
        help="problems of the norm study",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--norm-steps", type=int, default=600)
    parser.add_argument("--table-steps", type=int, default=400)
    parser.add_argument("--table-norm", choices=NORMS, default="none")
    parser.add_argument("--table-seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--widths", nargs="+", type=int, default=[16, 32], help="U-Net widths")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--n-trans", type=int, default=2)
    parser.add_argument("--beta", type=float, default=1e-2, help="EI_adv's adversarial weight")
    parser.add_argument(
        "--disc-norm",
        choices=NORMS,
        default="batch",
        help="EI_adv discriminator norm (library default: batch)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--quick", action="store_true", help="20 steps, 1 seed: a smoke run")
    parser.add_argument("--out", type=Path, default=HERE / "results.md")
    args = parser.parse_args()
    if args.quick:
        args.norm_steps = args.table_steps = 20
        args.seeds = args.table_seeds = [0]

    torch.set_num_threads(args.threads)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*smaller than the logging interval.*")

    started = time.perf_counter()
    command = " ".join(["python", *[a if " " not in a else repr(a) for a in sys.argv]])
    sections = [
        "# Tiny-problem strategies study — results",
        "",
        f"- command: `{command}`",
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- machine: {machine()}, torch.set_num_threads({args.threads})",
        f"- torch {torch.__version__}, lightning {L.__version__}, "
        f"Python {platform.python_version()}",
        f"- U-Net widths {tuple(args.widths)}, residual, circular first conv; Adam lr {args.lr}; "
        f"batch size {args.batch_size}; EI n_trans {args.n_trans}; 64 train / 16 test images, "
        f"32×32; PSNR: mean over test images, data range 1, no clamping",
    ]
    records: list[dict] = []

    if args.study in ("norm", "all"):
        problems = [make_problem(name) for name in args.problems]
        print(f"norm study: {args.norm_steps} steps, seeds {args.seeds}", flush=True)
        norm_records = [
            run_one(problem, strategy, norm, seed, args.norm_steps, args)
            for problem in problems
            for strategy in ("ei", "sup")
            for norm in NORMS
            for seed in args.seeds
        ]
        records += norm_records
        sections += [
            "",
            f"## 1. U-Net norm at batch size {args.batch_size} "
            f"({args.norm_steps} steps, seeds {args.seeds}; mean ± sd over seeds)",
            "",
            *[f"- {p['name']}: {p['description']}" for p in problems],
            "",
            norm_table(norm_records, problems),
            "",
            "Eval mode: `module.eval()` (BatchNorm uses running statistics). Train mode: "
            "`module.train()` forward of the test images in one batch of 16, or in batches of 2; "
            "for group/none the modes are identical by construction.",
            "",
            "EI's loss terms: initial = untrained network on the first training batch (train "
            "mode); final = mean over the last training epoch. Ratio = α·EI / MC.",
            "",
            loss_scale_table(norm_records),
        ]

    if args.study in ("table", "all"):
        problem = make_problem("inpainting")
        print(f"strategy table: norm={args.table_norm}, {args.table_steps} steps", flush=True)
        table_records = [
            run_one(problem, strategy, args.table_norm, seed, args.table_steps, args)
            for strategy in TABLE_STRATEGIES
            for seed in args.table_seeds
        ]
        records += table_records
        sections += [
            "",
            f"## 2. Strategies on tiny inpainting (norm={args.table_norm}, "
            f"{args.table_steps} steps, batch {args.batch_size}, seeds {args.table_seeds})",
            "",
            f"- {problem['description']}; EI_adv: β={args.beta}, PatchDiscriminator widths "
            f"(16, 32), norm={args.disc_norm}",
            "",
            strategy_table(table_records),
        ]

    total = time.perf_counter() - started
    sections += ["", f"Total wall time: {total / 60:.1f} min.", ""]
    report = "\n".join(sections)
    print("\n" + report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    args.out.with_suffix(".json").write_text(json.dumps(records, indent=1))
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
