"""Where the unknown-noise level lands, against the true one (issue 23, point 2).

Four measurements, each printed as a markdown table:

- ``toy``: the two estimators trained jointly with a shrinkage network on signals that fill k of
  m coordinates (the setting of tests/losses/test_sure.py), against the closed forms: UNSURE's
  saddle point m / Σ 1/(σ² + λ) and the residual estimate Σ 1/(σ² + λ) / Σ 1/(σ² + λ)².
- ``spectrum``: the same closed forms for the CS task of ``rei_cs``, in a Gaussian model whose
  signal covariance is that of the clean training photographs' measurements (ground truth,
  read for this analysis only), at σ = 0.01, 0.1, 0.2.
- ``checkpoint RUN_DIR...``: a trained run's network held fixed, on its own training
  measurements at the configured (true) noise level: the residual estimate of the level (for
  powers q = 1, 2, 3 of the residual map, see residual_level_terms), and
  UNSURE's constraint, the weighted divergence Σ v ∂h/∂y per unit of Σ v, which UNSURE drives to
  zero (a good reconstructor has it positive: UNSURE must move away from it).
- ``runs RUN_DIR...``: the level each run estimated during training (train/noise_scale per
  epoch in logs/metrics.csv), as a multiple of the true level.

    PYTHONPATH=src python experiments/rei/unsure/unsure_bias.py toy
    PYTHONPATH=src python experiments/rei/unsure/unsure_bias.py spectrum
    PYTHONPATH=src python experiments/rei/unsure/unsure_bias.py checkpoint outputs/.../rei
    PYTHONPATH=src python experiments/rei/unsure/unsure_bias.py runs outputs/unsure/*/
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from torch import nn

from eilab.eval import load_config
from eilab.losses import UnknownNoiseSURELoss, UNSURELoss
from eilab.losses.sure import probe_step, residual_level_terms, weighted_divergence
from eilab.noise_level_toy import train_noise_level
from eilab.physics import GaussianNoise
from eilab.train import build


def toy_level(loss: nn.Module, m: int, k: int, sigma: float, steps: int = 1000) -> float:
    """The mean estimated variance over the last half of ``steps`` of joint training."""
    estimates = train_noise_level(loss, m, k, sigma, steps)
    return sum(estimates[steps // 2 :]) / (steps - steps // 2)


def toy_table() -> list[str]:
    """Both estimators over the signal's share k/m and the noise, as multiples of σ²."""
    lines = [
        "| k/m | σ | UNSURE learned | UNSURE closed form | residual learned "
        "| residual closed form |",
        "|---|---|---|---|---|---|",
    ]
    m = 64
    for k in (1, 16, 32, 48):
        for sigma in (0.1, 0.3):
            v = sigma**2
            inverse = [1 / (v + 1)] * k + [1 / v] * (m - k)
            unsure_form = m / sum(inverse) / v
            residual_form = sum(inverse) / sum(i**2 for i in inverse) / v
            unsure = toy_level(UNSURELoss(GaussianNoise(sigma), init_scale=4.0), m, k, sigma) / v
            residual = toy_level(UnknownNoiseSURELoss(GaussianNoise(sigma), 4.0), m, k, sigma) / v
            lines.append(
                f"| {k}/{m} | {sigma} | {unsure:.3f} | {unsure_form:.3f} | {residual:.3f} | "
                f"{residual_form:.3f} |"
            )
    return lines


def spectrum_table() -> list[str]:
    """The Gaussian model of the CS task: both estimators' values for measurements whose clean
    part has the covariance of ``rei_cs``'s photographs (768 training crops, ground truth read
    for this analysis only), at each noise level of the study, as multiples of σ²."""
    with initialize_config_module("eilab.conf", version_base="1.3"):
        cfg = compose("train", overrides=["experiment=rei_cs", "dataset.crops_per_photo=64"])
    physics, images = instantiate(cfg.physics), instantiate(cfg.dataset).train
    z = physics.A(images).double().flatten(1)
    z = z - z.mean(0)
    signal = torch.linalg.eigvalsh(z.T @ z / len(z)).clamp_min(0)
    lines = [
        "| σ | share of directions with λ < σ² | UNSURE m / Σ 1/(σ² + λ) "
        "| residual Σ 1/(σ² + λ) / Σ 1/(σ² + λ)² | floor (σ² + min λ) |",
        "|---|---|---|---|---|",
    ]
    for sigma in (0.01, 0.1, 0.2):
        v = sigma**2
        inverse = 1 / (v + signal)
        unsure = len(signal) / inverse.sum() / v
        residual = inverse.sum() / inverse.pow(2).sum() / v
        floor = (v + signal.min()) / v
        share = (signal < v).double().mean()
        lines.append(f"| {sigma} | {share:.2f} | {unsure:.2f} | {residual:.2f} | {floor:.2f} |")
    return lines


POWERS = (1, 2, 3)


def checkpoint_row(run_dir: Path) -> str:
    """The fixed network of ``run_dir`` on its training measurements at the true level: the
    residual estimate for each power q (× the true level) and UNSURE's constraint."""
    cfg = load_config(run_dir)
    cfg.check_identifiability = False
    module, datamodule = build(cfg)
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu")["state_dict"]
    prefix = "reconstructor."
    network = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    module.reconstructor.load_state_dict(network)
    module.eval()
    datamodule.setup("fit")
    physics, noise = module.physics, module.physics.noise
    generator = torch.Generator().manual_seed(0)
    sums = {key: 0.0 for key in ("divergence", "variance", *POWERS, *(-q for q in POWERS))}
    measure = lambda y_: physics.A(module.reconstructor(y_))  # noqa: E731
    with torch.no_grad():
        for y in datamodule.datasets["train"].measurements.split(cfg.batch_size):
            h, variance, tau = measure(y), noise.variance(y), probe_step(y, None)
            for q in POWERS:
                residual, freedom = residual_level_terms(y, h, variance, measure, tau, q, generator)
                sums[q] += float(residual)
                sums[-q] += float(freedom)
            divergence = weighted_divergence(y, h, variance, measure, tau, generator)
            sums["divergence"] += float(divergence)
            sums["variance"] += float(variance.sum())
    estimates = " | ".join(f"{sums[q] / sums[-q]:.3f}" for q in POWERS)
    divergence = sums["divergence"] / sums["variance"]
    return f"| {run_dir} | {noise_text(cfg)} | {estimates} | {divergence:+.3f} |"


def noise_text(cfg) -> str:
    """The configured noise, in one short phrase."""
    noise = dict(cfg.noise)
    target = noise.pop("_target_").rsplit(".", 1)[-1]
    return f"{target} " + ", ".join(f"{k} {v}" for k, v in noise.items() if v is not None)


def estimator_name(strategy) -> str:
    """Which level estimate a run used: UNSURE's (runs that saved noise_lr) or the residual."""
    if not strategy.get("unknown_noise", False):
        return "known level"
    if "noise_lr" in strategy:
        return "UNSURE"
    return f"residual, q = {strategy.get('noise_power', 1)}"


def run_row(run_dir: Path) -> str:
    """A run's estimated level (× the true one) at a few epochs and at the end, and its last
    weights' test PSNR."""
    cfg = load_config(run_dir)
    with open(run_dir / "logs" / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    levels = {
        int(r["epoch"]): float(r["train/noise_scale"]) for r in rows if r.get("train/noise_scale")
    }
    psnr = next(float(r["test/psnr"]) for r in rows if r.get("test/psnr"))
    name = f"{run_dir.parent.name}/{run_dir.name}"
    start = f"{noise_text(cfg)} | {estimator_name(cfg.strategy)}"
    if not levels:
        return f"| {name} | {start} | – | – | – | {psnr:.2f} |"
    init = cfg.strategy.get("noise_init_scale", 1.0)
    last = max(levels)
    marks = [e for e in (0, 4, 9, 19, 29) if e in levels]
    trace = ", ".join(f"{e + 1}: {levels[e]:.2f}" for e in marks)
    return f"| {name} | {start} | {init} | {trace} | {levels[last]:.2f} | {psnr:.2f} |"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["toy", "spectrum", "checkpoint", "runs"])
    parser.add_argument("run_dirs", nargs="*", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.time()
    if args.what == "toy":
        lines = toy_table()
    elif args.what == "spectrum":
        lines = spectrum_table()
    elif args.what == "checkpoint":
        lines = [
            "| run | noise (true) | residual estimate (× true), q = 1 | q = 2 | q = 3 "
            "| Σ v ∂h/∂y / Σ v |",
            "|---|---|---|---|---|---|",
        ] + [checkpoint_row(d) for d in args.run_dirs]
    else:
        lines = [
            "| run | noise (true) | level | first guess (× true) | level (× true) after epoch "
            "| last | test PSNR (dB) |",
            "|---|---|---|---|---|---|---|",
        ] + [run_row(d) for d in args.run_dirs]
    print("\n".join(lines))
    print(f"\n{time.time() - start:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
