"""``python -m eilab.reproduce``: the paper's Table 1 and Figs. 3-6, at CPU scale.

Trains all five strategies on both Table 1 tasks (``experiment=ct_table1_cpu``: the real
head CT; ``experiment=inpainting_table1_cpu``: scikit-image photographs) and MC, EI and Sup
on the Fig. 3 toy (``experiment=toy_fig3``), then writes under ``outputs/reproduce/<time>/``:

- ``results.md``, ``results.csv``: test PSNR/SSIM beside the paper's Table 1, and the shares
  of the MC→Sup gap (paper: 82.8 % CT, 93.4 % inpainting) and of the A†y→Sup gap (paper:
  84.5 % CT) that EI closes;
- ``curves.png``: validation PSNR versus epoch for every strategy (the paper's Fig. 5);
- ``generalisation.png``: PSNR on fixed training images beside validation PSNR, per strategy
  (the paper's Fig. 5 argument: Sup fits its training images better than unseen ones, EI
  does not); the tables give each run's final train PSNR and its train − test gap;
- ``ct.png``, ``inpainting.png``: three test images reconstructed by each method (Figs. 4, 6);
- ``toy.png``: test signals, A†y, MC, EI and Sup (Fig. 3).

    python -m eilab.reproduce                                # about 46 min on 2 CPU cores
    python -m eilab.reproduce --publish experiments/table1   # then copy the results there
    python -m eilab.reproduce --fast                         # seconds (debug=fast), for tests

Runs go to worker processes with one torch thread each (``--jobs``; see ``eilab.runs``).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from eilab.figures import save_reconstruction_grid
from eilab.report import markdown_table
from eilab.runs import (
    LABELS,
    RUN_COLUMNS,
    Job,
    ct_dataset_overrides,
    new_output_dir,
    provenance,
    run_jobs,
    run_parser,
    table_rows,
    wall_time_line,
    write_csv,
)

TASKS = {"ct": "ct_table1_cpu", "inpainting": "inpainting_table1_cpu", "toy": "toy_fig3"}
#: Longest runs first, so the last runs to finish are short ones.
STRATEGIES = {
    "ct": ("ei_adv", "ei_sup", "ei", "mc", "sup"),
    "inpainting": ("ei_adv", "ei_sup", "ei", "mc", "sup"),
    "toy": ("ei", "mc", "sup"),
}
ADAGGER_NAMES = {"ct": "A†y (FBP)", "inpainting": "A†y", "toy": "A†y"}
#: The paper's discriminator has 4.7 M parameters; at CPU scale it matches the small U-Net.
SMALL_DISCRIMINATOR = "strategy.discriminator.widths=[32,64,128]"
#: Per-run settings that differ from the task's experiment config. EI_sup's α was chosen on
#: validation. CT (experiments/table1/ei_sup_alpha_ct, float32, 200 epochs): best validation
#: PSNR with α 0.1, 1, 10: 32.59, 31.64, 28.67 dB, Sup 32.46; the paper's α = 100 lets the
#: equivariance term swamp the supervised one (21.96 dB on test). Inpainting (bf16-mixed, 100
#: epochs, validation PSNR at the last epoch): α 0.1 28.76, α 1 27.94, Sup 27.88 dB.
RUN_OVERRIDES = {
    ("ct", "ei_adv"): [SMALL_DISCRIMINATOR],
    ("inpainting", "ei_adv"): [SMALL_DISCRIMINATOR],
    ("ct", "ei_sup"): ["strategy.alpha=0.1"],
    ("inpainting", "ei_sup"): ["strategy.alpha=0.1"],
}
#: Test images per task in the reconstruction figures.
SAMPLES = {"ct": 3, "inpainting": 3, "toy": 4}
#: Table 1 of the paper (PSNR, dB; CT100 and Urban100 test sets).
PAPER_TABLE1 = {
    "ct": dict(adagger=30.24, mc=31.01, ei=36.94, ei_adv=36.96, sup=38.17, ei_sup=38.79),
    "inpainting": dict(adagger=5.84, mc=5.84, ei=25.14, ei_adv=23.26, sup=26.51, ei_sup=26.75),
}
#: The run table with the paper's PSNR after eilab's SSIM, then the final PSNR on the fixed
#: training images (``train_eval``) and its gap to the test PSNR.
_RUN_ITEMS = list(RUN_COLUMNS.items())
COLUMNS = dict(
    [
        *_RUN_ITEMS[:3],
        ("paper_psnr", ("paper (dB)", ".2f")),
        ("train_psnr", ("train PSNR (dB)", ".2f")),
        ("train_test_gap", ("train − test (dB)", "+.2f")),
        *_RUN_ITEMS[3:],
    ]
)
FIELDS = ("task", *COLUMNS, "run_dir")
#: Files copied by ``--publish`` (all small).
PUBLISHED = (
    "results.md",
    "results.csv",
    "curves.png",
    "generalisation.png",
    "ct.png",
    "inpainting.png",
    "toy.png",
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options; extra arguments are Hydra overrides applied to every run."""
    parser = run_parser(
        "python -m eilab.reproduce", __doc__.split("\n")[0], Path("outputs/reproduce")
    )
    parser.add_argument(
        "--publish", type=Path, help="also copy the tables and figures into this directory"
    )
    return parser.parse_args(argv)


def build_jobs(args: argparse.Namespace, out: Path, start: float) -> list[Job]:
    """Every task's strategies, longest first (EI_adv of both tasks, then EI_sup, ...)."""
    dataset = {"ct": ct_dataset_overrides()}
    fast = ["debug=fast", "trainer.check_val_every_n_epoch=1"] if args.fast else []
    jobs = []
    for rank in range(max(len(order) for order in STRATEGIES.values())):
        for task, order in STRATEGIES.items():
            if rank >= len(order):
                continue
            strategy = order[rank]
            overrides = [f"experiment={TASKS[task]}", f"strategy={strategy}"]
            overrides += RUN_OVERRIDES.get((task, strategy), [])
            overrides += dataset.get(task, []) + fast
            overrides += args.overrides
            run_dir = out / task / strategy
            jobs.append(Job(task, strategy, tuple(overrides), run_dir, start, SAMPLES[task]))
    return jobs


def gap_closed(rows: list[dict], start: str = "mc") -> float | None:
    """Share of the ``start``→Sup PSNR gap that EI closes, in %: 100·(EI − start) / (Sup −
    start); ``start`` is "mc" or "adagger" (A†y, FBP on CT)."""
    psnr = {row["strategy"]: row["test_psnr"] for row in rows}
    if not {start, "ei", "sup"} <= psnr.keys():
        return None
    return 100.0 * (psnr["ei"] - psnr[start]) / (psnr["sup"] - psnr[start])


def with_paper_numbers(task: str, rows: list[dict]) -> list[dict]:
    """The rows with the paper's PSNR for the same method (None for the toy)."""
    paper = PAPER_TABLE1.get(task, {})
    return [{**row, "paper_psnr": paper.get(row["strategy"])} for row in rows]


def task_section(
    task: str,
    rows: list[dict],
    settings: str,
    columns: dict = COLUMNS,
    run_overrides: dict = RUN_OVERRIDES,
) -> str:
    """One task's markdown: settings, the table, and the gaps EI closes here and in the paper."""
    lines = [f"## {task}", "", settings, ""]
    for (run_task, strategy), overrides in run_overrides.items():
        if run_task == task:
            lines.append(f"- {LABELS[strategy]} only: {' '.join(overrides)}")
    lines += ["", markdown_table(rows, columns), ""]
    paper_rows = [{"strategy": s, "test_psnr": v} for s, v in PAPER_TABLE1.get(task, {}).items()]
    for start, name in (("mc", "MC"), ("adagger", ADAGGER_NAMES[task])):
        closed = gap_closed(rows, start)
        if closed is not None:
            paper = gap_closed(paper_rows, start)
            versus = f" (paper: {paper:.1f} %)" if paper is not None else ""
            lines.append(f"- EI closes {closed:.1f} % of the {name}→Sup gap{versus}.")
    return "\n".join(lines)


def validation_log(run_dir: Path) -> dict[str, np.ndarray]:
    """Epochs (from 1), validation PSNR of f(y) and of A†y, and PSNR of f(y) on the fixed
    training images, from a run's CSV log."""
    path = run_dir / "logs" / "metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"no training log at {path} (the reproduce runs log to CSV)")
    with open(path, newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("val/psnr")]
    return {
        "epoch": np.array([int(row["epoch"]) + 1 for row in rows]),
        "psnr": np.array([float(row["val/psnr"]) for row in rows]),
        "psnr_adagger": np.array([float(row["val/psnr_adagger"]) for row in rows]),
        "train_psnr": np.array([float(row["train_eval/psnr"]) for row in rows]),
        "train_psnr_adagger": np.array([float(row["train_eval/psnr_adagger"]) for row in rows]),
    }


def with_train_psnr(rows: list[dict]) -> list[dict]:
    """The rows with each run's last PSNR on the fixed training images and its train − test
    gap (None for a run that never validated). A†y's row takes its values from any run's log:
    its gap is how much easier the training images are, with nothing learnt."""
    any_run = next(row["run_dir"] for row in rows if row["run_dir"])
    extended = []
    for row in rows:
        if row["run_dir"]:
            logged = validation_log(Path(row["run_dir"]))["train_psnr"]
        else:
            logged = validation_log(Path(any_run))["train_psnr_adagger"]
        train_psnr = float(logged[-1]) if len(logged) else None
        gap = None if train_psnr is None else train_psnr - row["test_psnr"]
        extended.append({**row, "train_psnr": train_psnr, "train_test_gap": gap})
    return extended


def save_curves(tables: dict[str, list[dict]], path: Path) -> None:
    """Validation PSNR versus epoch per strategy, one panel per task, A†y dashed (Fig. 5)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.0 * len(tables), 3.8), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(tables)))
    for axis, (task, rows) in zip(axes, tables.items(), strict=True):
        logs = {
            row["method"]: validation_log(Path(row["run_dir"]))
            for row in rows
            if row["strategy"] != "adagger"
        }
        for method, log in logs.items():
            axis.plot(log["epoch"], log["psnr"], marker=".", label=method)
        adagger = next((log["psnr_adagger"][0] for log in logs.values() if len(log["epoch"])), None)
        if adagger is not None:  # A†y does not train: one value, the same in every run's log
            axis.axhline(adagger, color="grey", linestyle="--", label=ADAGGER_NAMES[task])
        axis.set(title=task, xlabel="epoch", ylabel="validation PSNR (dB)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.savefig(path, dpi=120)


def save_generalisation(tables: dict[str, list[dict]], path: Path) -> None:
    """Per task (rows) and strategy (columns): PSNR on the fixed training images (dashed)
    and on validation (solid) versus epoch, the test PSNR marked at the last epoch."""
    from matplotlib.figure import Figure

    trained = {task: [r for r in rows if r["run_dir"]] for task, rows in tables.items()}
    columns = max(len(rows) for rows in trained.values())
    figure = Figure(figsize=(2.8 * columns, 2.4 * len(trained)), layout="constrained")
    axes = np.atleast_2d(figure.subplots(len(trained), columns, squeeze=False))
    for task_axes, (task, rows) in zip(axes, trained.items(), strict=True):
        for axis in task_axes[len(rows) :]:
            axis.set_visible(False)
        for axis, row in zip(task_axes, rows, strict=False):
            log = validation_log(Path(row["run_dir"]))
            axis.plot(log["epoch"], log["train_psnr"], "--", color="tab:orange", label="train")
            axis.plot(log["epoch"], log["psnr"], color="tab:blue", label="validation")
            axis.plot(log["epoch"][-1:], [row["test_psnr"]], "k*", label="test (last epoch)")
            axis.set(title=f"{task}: {row['method']}", xlabel="epoch", ylabel="PSNR (dB)")
            axis.grid(alpha=0.3)
        task_axes[0].legend(fontsize=7)
    figure.savefig(path, dpi=110)


def save_grids(tables: dict[str, list[dict]], results: list[dict], out: Path) -> None:
    """Reconstruction grids of the image tasks (Figs. 4 and 6)."""
    for task in tables:
        samples = {r["strategy"]: r["sample"] for r in results if r["task"] == task}
        first = next(iter(samples.values()))
        methods = {ADAGGER_NAMES[task]: first["x_dagger"]}
        methods.update({LABELS[s]: samples[s]["x_hat"] for s in LABELS if s in samples})
        save_reconstruction_grid(first["x"], methods, out / f"{task}.png")


def save_toy_figure(results: list[dict], path: Path) -> None:
    """Fig. 3: test signals with A†y (the observed samples), MC, EI and Sup overlaid."""
    from matplotlib.figure import Figure

    samples = {r["strategy"]: r["sample"] for r in results if r["task"] == "toy"}
    first = next(iter(samples.values()))
    truth = first["x"][:, 0, 0]
    figure = Figure(figsize=(3.2 * len(truth), 3.0), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(truth)))
    for index, axis in enumerate(axes):
        axis.plot(truth[index], color="black", linewidth=2.5, label="ground truth")
        axis.plot(first["x_dagger"][index, 0, 0], "o", color="grey", label="A†y (dropped: 0)")
        for strategy in ("mc", "ei", "sup"):
            if strategy in samples:
                axis.plot(samples[strategy]["x_hat"][index, 0, 0], label=LABELS[strategy])
        axis.set(xlabel="sample", title=f"test signal {index + 1}")
    axes[0].legend(fontsize=8)
    figure.savefig(path, dpi=120)


def publish(out: Path, target: Path) -> None:
    """Copy the small result files into ``target`` (e.g. experiments/table1)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in PUBLISHED:
        shutil.copy2(out / name, target / name)
    print(f"copied {', '.join(PUBLISHED)} to {target}")


def main(argv: list[str] | None = None) -> Path:
    """Train every task's strategies, write the tables and figures; return the output dir."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    start = time.time()
    out = new_output_dir(args.out)
    print(f"eilab reproduce: writing to {out}")
    command = " ".join(["python -m eilab.reproduce", *argv])
    sections = [provenance("eilab: Table 1 at CPU scale", command, args.jobs, out)]
    results = run_jobs(build_jobs(args, out, start), args.jobs)
    tables = {}
    for task in TASKS:
        rows = table_rows(task, results, ADAGGER_NAMES[task])
        rows = with_train_psnr(with_paper_numbers(task, rows))
        settings = next(r["settings"] for r in results if r["task"] == task)
        sections.append(task_section(task, rows, settings))
        tables[task] = rows
    sections.append(wall_time_line(start, args.jobs))
    write_csv(out / "results.csv", [row for rows in tables.values() for row in rows], FIELDS)
    report = "\n\n".join(sections)
    (out / "results.md").write_text(report + "\n")
    save_curves(tables, out / "curves.png")
    save_generalisation(tables, out / "generalisation.png")
    save_grids({task: tables[task] for task in ("ct", "inpainting")}, results, out)
    save_toy_figure(results, out / "toy.png")
    print("\n" + report)
    if args.publish:
        publish(out, args.publish)
    return out


if __name__ == "__main__":
    main()
