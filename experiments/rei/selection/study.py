"""Ground-truth-free selection of α and of the checkpoint, against test PSNR (issue 23, point 3).

For every finished run below the given directories (an α sweep of one task) and every
checkpoint it kept (``snapshots/*.ckpt``, if the run saved them, and
``checkpoints/last.ckpt``), this re-validates the weights with the current code, which logs
every ground-truth-free criterion (``val/sure``, ``val/equiv``, ``val/sure_equiv``,
``val/cycle``: see ``eilab.strategies.base``), and tests them. Runs trained before a
criterion existed are scored on it this way without retraining. Then, per criterion (lower
is better):

- α selection, last weights: Spearman's ρ(−criterion, test PSNR) over the α values, and
  ρ(−criterion, validation PSNR) on the same images, the α the criterion selects and the dB it
  loses against the best α by test PSNR, beside the ground-truth validation PSNR's own;
- checkpoint selection, per run: the dB lost by the checkpoint the criterion selects against
  the run's best checkpoint by test PSNR.

Each run's scores are kept in its ``selection_scores.csv`` (read back by the next call, so a
sweep can be scored run by run as it finishes). Test PSNR is only reported, never used to
choose. Writes ``selection.md``, ``selection.csv``
and ``selection.png`` into ``--out``.

    python experiments/rei/selection/study.py RUN_DIR [RUN_DIR ...] --out DIR [--task NAME]
"""

from __future__ import annotations

import argparse
import csv
import re
import time
from pathlib import Path

import lightning as L
import torch
from scipy.stats import spearmanr

from eilab.eval import load_run
from eilab.report import find_run_dirs, markdown_table, rank_agreement, write_csv

CRITERIA = ("val/sure", "val/equiv", "val/sure_equiv", "val/cycle")
#: Needs ground truth: reported beside the criteria as the best a validation set allows.
REFERENCE = "val/psnr"
SCORES = "selection_scores.csv"
SWEEP_KEY = "alpha"


def checkpoints_of(run_dir: Path) -> list[tuple[int, Path]]:
    """(epoch, path) of every snapshot the run kept and of its last weights, by epoch."""
    found = {}
    for path in sorted((run_dir / "snapshots").glob("epoch=*.ckpt")):
        found[int(re.search(r"epoch=(\d+)", path.name).group(1)) + 1] = path
    last = run_dir / "checkpoints" / "last.ckpt"
    epochs = int(torch.load(last, map_location="cpu", weights_only=True)["epoch"]) + 1
    found[epochs] = last
    return sorted(found.items())


def score(run_dir: Path, checkpoint: Path) -> dict[str, float]:
    """Validation criteria and test PSNR of one checkpoint, with the current code."""
    module, datamodule, _ = load_run(run_dir, str(checkpoint), "cpu")
    trainer = L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    validated = trainer.validate(module, datamodule, verbose=False)[0]
    tested = trainer.test(module, datamodule, verbose=False)[0]
    row = {key: validated[key] for key in (*CRITERIA, REFERENCE)}
    return {**row, "test/psnr": tested["test/psnr"], "alpha": float(module.alpha)}


def parsed(row: dict[str, str]) -> dict:
    """A cached score row: the run's directory, its epoch and float scores."""
    numbers = {key: float(value) for key, value in row.items() if key != "run_dir"}
    return {**numbers, "run_dir": row["run_dir"], "epoch": int(numbers["epoch"])}


def score_run(run_dir: Path) -> list[dict]:
    """One row per checkpoint of a run, kept in ``run_dir/SCORES`` and read back from there
    on the next call if it holds every criterion (delete it to score again)."""
    cache = run_dir / SCORES
    if cache.is_file():
        with open(cache, newline="") as handle:
            cached = [parsed(row) for row in csv.DictReader(handle)]
        if all(criterion in row for row in cached for criterion in CRITERIA):
            return cached
    rows = []
    for epoch, checkpoint in checkpoints_of(run_dir):
        start = time.time()
        rows.append({"run_dir": str(run_dir), "epoch": epoch, **score(run_dir, checkpoint)})
        print(f"{run_dir} epoch {epoch}: {rows[-1]} ({time.time() - start:.0f} s)", flush=True)
    write_csv(cache, rows)
    return rows


def score_runs(paths: list[Path]) -> list[dict]:
    """One row per (finished run, checkpoint)."""
    run_dirs = [d for d in find_run_dirs(paths) if (d / "metrics.json").is_file()]
    return [row for run_dir in run_dirs for row in score_run(run_dir)]


def alpha_rows(rows: list[dict], criterion: str) -> list[dict]:
    """The last weights of each α, in the shape report.rank_agreement reads (lower is better:
    the reference val/psnr enters negated)."""
    last = {}
    for row in rows:
        if row["epoch"] >= last.get(row["alpha"], {"epoch": -1})["epoch"]:
            last[row["alpha"]] = row
    sign = -1 if criterion == REFERENCE else 1
    return [
        {**row, "criterion": criterion, "criterion_value": sign * row[criterion]}
        | {"test_psnr": row["test/psnr"]}
        for _, row in sorted(last.items())
    ]


def alpha_selection(rows: list[dict]) -> list[dict]:
    """Per criterion (and the ground-truth reference): Spearman ρ against test PSNR and
    against validation PSNR over α, the α selected, the dB it loses."""
    lines = []
    for criterion in (*CRITERIA, REFERENCE):
        table = alpha_rows(rows, criterion)
        agreement = rank_agreement(table)
        if agreement is None:
            continue
        selected, best = agreement["selected"], agreement["best"]
        values = [-row["criterion_value"] for row in table]
        lines.append(
            {
                "criterion": criterion,
                "rho": agreement["rho"],
                "rho_val": float(spearmanr(values, [row["val/psnr"] for row in table]).statistic),
                "n": agreement["n"],
                "selected_alpha": selected[SWEEP_KEY],
                "selected_psnr": selected["test_psnr"],
                "best_alpha": best[SWEEP_KEY],
                "best_psnr": best["test_psnr"],
                "lost_db": best["test_psnr"] - selected["test_psnr"],
            }
        )
    return lines


def checkpoint_selection(rows: list[dict]) -> list[dict]:
    """Per run and criterion: the dB lost by the checkpoint the criterion selects."""
    lines = []
    for alpha in sorted({row["alpha"] for row in rows}):
        run = [row for row in rows if row["alpha"] == alpha]
        best = max(run, key=lambda r: r["test/psnr"])
        line = {"alpha": alpha, "checkpoints": len(run), "best_epoch": best["epoch"]}
        for criterion in (*CRITERIA, REFERENCE):
            pick = (max if criterion == REFERENCE else min)(run, key=lambda r: r[criterion])
            line[f"{criterion} epoch"] = pick["epoch"]
            line[f"{criterion} lost"] = best["test/psnr"] - pick["test/psnr"]
        lines.append(line)
    return lines


def save_plot(rows: list[dict], path: Path) -> None:
    """Test PSNR and each criterion (last weights) against α."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.0 * (1 + len(CRITERIA)), 3.4), layout="constrained")
    axes = figure.subplots(1, 1 + len(CRITERIA))
    table = alpha_rows(rows, CRITERIA[0])
    alphas = [r[SWEEP_KEY] for r in table]
    axes[0].plot(alphas, [r["test_psnr"] for r in table], "o-")
    axes[0].set(xscale="log", xlabel="α", ylabel="test PSNR (dB), reported only")
    for axis, criterion in zip(axes[1:], CRITERIA, strict=True):
        axis.plot(alphas, [r[criterion] for r in table], "o-", color="C1")
        axis.set(xscale="log", yscale="log", xlabel="α", ylabel=f"{criterion} (lower selects)")
    figure.savefig(path, dpi=120)


ALPHA_COLUMNS = {
    "criterion": ("criterion", "s"),
    "rho": ("Spearman ρ(−criterion, test PSNR)", ".2f"),
    "rho_val": ("ρ(−criterion, val PSNR)", ".2f"),
    "n": ("α values", "d"),
    "selected_alpha": ("selected α", "g"),
    "selected_psnr": ("its test PSNR", ".2f"),
    "best_alpha": ("best α (test)", "g"),
    "best_psnr": ("best test PSNR", ".2f"),
    "lost_db": ("dB lost", ".2f"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--task", default="", help="the task's name, for the title")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.time()
    rows = score_runs(args.paths)
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "selection.csv", rows)
    save_plot(rows, args.out / "selection.png")
    per_run = checkpoint_selection(rows)
    run_columns = {"alpha": ("α", "g"), "checkpoints": ("checkpoints", "d")}
    run_columns["best_epoch"] = ("best epoch (test)", "d")
    for criterion in (*CRITERIA, REFERENCE):
        run_columns[f"{criterion} epoch"] = (f"{criterion}: epoch", "d")
        run_columns[f"{criterion} lost"] = ("dB lost", ".2f")
    scores = {
        "alpha": ("α", "g"),
        "epoch": ("epoch", "d"),
        **{key: (key, ".4g") for key in (*CRITERIA, REFERENCE)},
        "test/psnr": ("test PSNR (reported only)", ".2f"),
    }
    text = "\n\n".join(
        [
            f"# Ground-truth-free selection{': ' + args.task if args.task else ''}",
            f"Runs: {', '.join(str(p) for p in args.paths)}. Re-validated and tested with the "
            f"current code in {time.time() - start:.0f} s.",
            "## α, by the last weights (val/psnr: with ground truth, for reference)",
            markdown_table(alpha_selection(rows), ALPHA_COLUMNS),
            "## The checkpoint, per α (val/psnr: with ground truth, for reference)",
            markdown_table(per_run, run_columns),
            "## Every checkpoint",
            markdown_table(rows, scores),
        ]
    )
    (args.out / "selection.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
