"""``python -m eilab.reproduce_gpu``: Table 1 CT at the paper's setting, one GPU window at a time.

Each call trains the strategies it is given, one after another on one GPU, at
``experiment=ct_table1`` (128², 50 views, the 8.56 M U-Net, batch 2, α 100, n_trans 5;
5000 epochs with the rate ×0.1 at 40/60/80 % of them, the paper's 2000/3000/4000), each
stopped after ``--max-minutes`` (Lightning's ``max_time``: the run stops, then tests). Every run
leaves a record in ``<publish>/runs/<strategy>.json``: test metrics, epochs done of those
asked, steps, wall time, the machine, the settings and the validation curve. A run that stops
before its last epoch is *partial*: it never replaces a complete record, and the table leaves
it out (it is listed under the table with its epochs). The table, ``results.md``,
``results.csv`` and ``curves.png`` in ``<publish>`` are rebuilt from every record there, so
the table fills up one run per GPU window:

    python -m eilab.reproduce_gpu --strategies ei --max-minutes 12 fast_step=true
    make reproduce-gpu STRATEGIES=ei MAX_MINUTES=12

Extra arguments are Hydra overrides for every run; ``--fast`` runs tiny CPU runs (tests).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import sys
import time
from pathlib import Path

import torch
from omegaconf import DictConfig

from eilab.bench.report import cpu_model
from eilab.progress import read_progress
from eilab.reproduce import ADAGGER_NAMES, COLUMNS, FIELDS, task_section, with_paper_numbers
from eilab.runs import LABELS, Job, new_output_dir, settings_line, train_job, write_csv

STRATEGIES = ("mc", "ei", "ei_adv", "sup", "ei_sup")
#: The paper's milestones, 2000/3000/4000 of 5000 epochs, as shares of the run.
MILESTONE_SHARES = (0.4, 0.6, 0.8)
#: What a record adds to the run table's columns.
RECORD_COLUMNS = {**COLUMNS, "machine": ("machine", "s")}
FAST = ("debug=fast", "trainer.accelerator=cpu", "trainer.check_val_every_n_epoch=1")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options; extra arguments are Hydra overrides applied to every run."""
    parser = argparse.ArgumentParser(
        prog="python -m eilab.reproduce_gpu", description=__doc__.split("\n")[0]
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run")
    parser.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    parser.add_argument("--epochs", type=int, default=5000, help="epochs asked of each run")
    parser.add_argument("--max-minutes", type=float, default=None, help="stop each run after")
    parser.add_argument("--out", type=Path, default=Path("outputs/reproduce_gpu"))
    parser.add_argument("--publish", type=Path, default=Path("experiments/table1_gpu"))
    parser.add_argument("--fast", action="store_true", help="tiny CPU runs (debug=fast), tests")
    args = parser.parse_args(argv)
    if args.epochs < 1 or (args.max_minutes is not None and args.max_minutes <= 0):
        parser.error("--epochs must be >= 1 and --max-minutes > 0")
    return args


def run_overrides(args: argparse.Namespace, strategy: str) -> list[str]:
    """The Hydra overrides of one run: the paper's CT, its schedule scaled to --epochs."""
    milestones = [round(share * args.epochs) for share in MILESTONE_SHARES]
    overrides = [
        "experiment=ct_table1",
        f"strategy={strategy}",
        "trainer=gpu",
        "trainer.enable_progress_bar=false",
        f"trainer.max_epochs={args.epochs}",
        f"optim.milestones=[{','.join(map(str, milestones))}]",
    ]
    if args.max_minutes is not None:
        overrides.append(f"+trainer.max_time={max_time(args.max_minutes)}")
    return overrides + (list(FAST) if args.fast else []) + args.overrides


def max_time(minutes: float) -> str:
    """Lightning's ``max_time`` as "DD:HH:MM:SS", at least one second."""
    seconds = max(1, round(minutes * 60))
    days, rest = divmod(seconds, 86400)
    return f"{days:02d}:{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"


def machine() -> str:
    """The device the runs trained on, named."""
    return torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU {cpu_model()}"


def trained(run_dir: Path) -> tuple[int, int]:
    """Epochs the run trained to their end (a time limit may stop one after some batches) and
    batches trained, from its progress record (EI_adv's two optimisers count once)."""
    state = read_progress(run_dir)
    if state is None:
        return 0, 0
    batches = (state["epoch"] - 1) * state["batches_per_epoch"] + state["batches"]
    return state["epoch"] - (state["batches"] < state["batches_per_epoch"]), batches


def epoch_log(run_dir: Path) -> dict[str, list[float]]:
    """From a run's CSV log: the validation curve and the PSNR on the fixed training images."""
    with open(run_dir / "logs" / "metrics.csv", newline="") as handle:
        validated = [row for row in csv.DictReader(handle) if row.get("val/psnr")]
    return {
        "curve_epoch": [int(row["epoch"]) + 1 for row in validated],
        "curve_psnr": [float(row["val/psnr"]) for row in validated],
        "train_psnr": [float(row["train_eval/psnr"]) for row in validated],
    }


def record(job: Job, cfg: DictConfig, metrics: dict, seconds: float, epochs_asked: int) -> dict:
    """What the table keeps of one run (JSON), complete when it trained every epoch asked."""
    log, (epochs, batches) = epoch_log(job.run_dir), trained(job.run_dir)
    return {
        "strategy": job.strategy,
        "complete": epochs >= epochs_asked,
        "epochs": epochs,
        "epochs_asked": epochs_asked,
        "steps": batches,
        "train_time_s": seconds,
        "machine": machine(),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "settings": settings_line(cfg),
        "overrides": list(job.overrides),
        "run_dir": str(job.run_dir),
        "test": {k: v for k, v in metrics.items() if k.startswith("test/")},
        "curve": {"epoch": log["curve_epoch"], "psnr": log["curve_psnr"]},
        "train_psnr": log["train_psnr"][-1] if log["train_psnr"] else None,
    }


def keep(new: dict, path: Path) -> bool:
    """Whether ``new`` replaces the record at ``path``: a partial run never replaces a
    complete one."""
    if not path.is_file():
        return True
    return new["complete"] or not json.loads(path.read_text())["complete"]


def table_rows(records: list[dict]) -> list[dict]:
    """A†y (from any record's test), then each complete run, in the paper's order."""
    first = records[0]["test"]
    rows = [
        {
            "task": "ct",
            "strategy": "adagger",
            "method": ADAGGER_NAMES["ct"],
            "test_psnr": first["test/psnr_adagger"],
            "test_ssim": first.get("test/ssim_adagger"),
        }
    ]
    by_strategy = {r["strategy"]: r for r in records if r["complete"]}
    for strategy in (s for s in LABELS if s in by_strategy):
        run = by_strategy[strategy]
        rows.append(
            {
                "task": "ct",
                "strategy": strategy,
                "method": LABELS[strategy],
                "test_psnr": run["test"]["test/psnr"],
                "test_ssim": run["test"].get("test/ssim"),
                "train_psnr": run["train_psnr"],
                "train_test_gap": None
                if run["train_psnr"] is None
                else run["train_psnr"] - run["test"]["test/psnr"],
                "train_time_s": run["train_time_s"],
                "epochs": run["epochs"],
                "steps": run["steps"],
                "machine": run["machine"],
                "run_dir": run["run_dir"],
            }
        )
    return with_paper_numbers("ct", rows)


def partial_lines(records: list[dict]) -> list[str]:
    """One line per partial run: left out of the table, with how far it got."""
    return [
        f"- {LABELS[r['strategy']]}: partial, {r['epochs']} of {r['epochs_asked']} epochs in "
        f"{r['train_time_s'] / 60:.1f} min on {r['machine']} ({r['date']}): test PSNR "
        f"{r['test']['test/psnr']:.2f} dB, not in the table"
        for r in records
        if not r["complete"]
    ]


def save_curves(records: list[dict], path: Path) -> None:
    """Validation PSNR versus epoch of every recorded run (partial ones dashed)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.0, 4.0), layout="constrained")
    axis = figure.subplots()
    for run in records:
        label = LABELS[run["strategy"]] + ("" if run["complete"] else " (partial)")
        style = "-" if run["complete"] else "--"
        axis.plot(run["curve"]["epoch"], run["curve"]["psnr"], style, marker=".", label=label)
    axis.axhline(records[0]["test"]["test/psnr_adagger"], color="grey", ls=":", label="FBP")
    axis.set(title="CT, paper scale", xlabel="epoch", ylabel="validation PSNR (dB)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.savefig(path, dpi=120)


def write_table(publish: Path) -> str:
    """Rebuild results.md, results.csv and curves.png from every record; return the report."""
    records = [json.loads(p.read_text()) for p in sorted((publish / "runs").glob("*.json"))]
    rows = table_rows(records)
    section = task_section("ct", rows, records[0]["settings"], RECORD_COLUMNS, run_overrides={})
    partial = partial_lines(records) or ["- no partial runs"]
    report = "\n".join(
        ["# Table 1, CT at the paper's scale (eilab reproduce_gpu)", "", section, "", *partial]
    )
    (publish / "results.md").write_text(report + "\n")
    write_csv(publish / "results.csv", rows, (*FIELDS[:-1], "machine", "run_dir"))
    save_curves(records, publish / "curves.png")
    return report


def main(argv: list[str] | None = None) -> str:
    """Train each strategy asked for, record it, rebuild the table; return the report."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    start = time.time()
    out = new_output_dir(args.out)
    (args.publish / "runs").mkdir(parents=True, exist_ok=True)
    for strategy in args.strategies:
        job = Job("ct", strategy, tuple(run_overrides(args, strategy)), out / strategy, start)
        new = record(job, *train_job(job), args.epochs)
        path = args.publish / "runs" / f"{strategy}.json"
        if keep(new, path):
            path.write_text(json.dumps(new, indent=1) + "\n")
        state = "complete" if new["complete"] else "partial"
        print(f"{LABELS[strategy]}: {state}, {new['epochs']} of {args.epochs} epochs")
    report = write_table(args.publish)
    print("\n" + report)
    return report


if __name__ == "__main__":
    main()
