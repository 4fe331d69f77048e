"""eilab-report: turn any set of eilab-train run directories into tables, curves and sweep plots.

    eilab-report outputs/multirun/<sweep>                      # every run found below it
    eilab-report RUN_DIR [RUN_DIR ...] --out report --sweep equivariance.alpha

A run directory is one ``eilab-train`` wrote (``.hydra/config.yaml``, ``metrics.json``,
``logs/metrics.csv``); directories holding many runs (a Hydra multirun, a demo) are searched.
It writes ``runs.md`` / ``runs.csv`` (one row per run: test PSNR/SSIM, the A†y baseline, the
ground-truth-free validation criterion, wall time, epochs, steps) and ``curves.png``
(validation PSNR per epoch). Each run is named by its strategy/physics/group, and by the
overrides (``.hydra/overrides.yaml``) whose values differ between the runs reported, such as
``equivariance.alpha=10`` in an α sweep. With ``--sweep KEY`` it also writes ``sweep.png``
and a section saying how each ground-truth-free criterion the runs logged (GROUND_TRUTH_FREE, or
those named by ``--criterion``) ranks the swept values against test PSNR (Spearman's ρ) and how
many dB selecting by it loses (a user without ground truth can only select by a criterion).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from omegaconf import DictConfig, OmegaConf
from scipy.stats import spearmanr

from eilab.checkpoints import CorruptCheckpointError, load_checkpoint
from eilab.runconfig import RunConfigError, check_yaml, inert, load_yaml

#: Ground-truth-free validation criteria, preferred in this order when neither named nor the
#: run's own selection metric (lower is better): the SURE estimate of the measurement error,
#: then measurement consistency.
CRITERIA = ("val/sure", "val/loss_mc")
#: Every ground-truth-free validation criterion the strategies log (eilab.strategies.base):
#: measurement-domain (sure, loss_mc), cycle SURE (cycle), image-domain (equiv) and the
#: combination (sure_equiv).
GROUND_TRUTH_FREE = ("val/sure", "val/cycle", "val/equiv", "val/sure_equiv", "val/loss_mc")
#: Config groups every run's label names (so overrides of them never need to).
LABELLED = ("strategy", "physics", "group", "experiment")


@dataclass
class Run:
    """What one finished run left on disk."""

    run_dir: Path
    config: DictConfig
    choices: dict[str, str]
    test: dict[str, float]
    log: list[dict[str, float]] = field(default_factory=list)
    epochs: int | None = None
    steps: int | None = None
    wall_s: float | None = None
    overrides: dict[str, str] = field(default_factory=dict)
    differs: list[str] = field(default_factory=list)  # override keys that tell runs apart

    @property
    def label(self) -> str:
        """strategy/physics/group, the experiment when there is one, and the overrides in
        :attr:`differs` (``key=value``)."""
        parts = [self.choices.get(k, "?") for k in LABELLED[:3]]
        experiment = self.choices.get("experiment", "None")
        label = "/".join(parts) + (f" ({experiment})" if experiment != "None" else "")
        return " ".join([label, *(f"{k}={self.overrides.get(k, '–')}" for k in self.differs)])

    def value(self, key: str):
        """A config value by dotted key (``equivariance.alpha``), or None."""
        return OmegaConf.select(self.config, key, default=None)

    def series(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """Epochs (from 1) and values of a logged metric, in logging order."""
        rows = [row for row in self.log if not math.isnan(row.get(key, math.nan))]
        return (
            np.array([int(row["epoch"]) + 1 for row in rows]),
            np.array([row[key] for row in rows]),
        )

    def last(self, key: str) -> float | None:
        """The last logged value of a metric (the final weights' validation), or None."""
        _, values = self.series(key)
        return float(values[-1]) if len(values) else None


def find_run_dirs(paths: Iterable[Path]) -> list[Path]:
    """Run directories at or below ``paths`` (those holding ``.hydra/config.yaml``), sorted."""
    found = set()
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"no such run directory: {path}")
        found.update(config.parent.parent for config in path.glob("**/.hydra/config.yaml"))
    return sorted(found)


def is_number(value: object) -> bool:
    """Whether ``value`` is an int or float (a bool is not)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def shown(value: object) -> str:
    """A config value as text: numbers in ``g`` format, anything else (a list, a name) as is."""
    return format(value, "g") if is_number(value) else str(value)


class UnreadableRunError(ValueError):
    """A file of a run directory cannot be read; the message names the file and why."""


#: What reading one run may raise; the report leaves that run out with one line saying why.
UNREADABLE = (UnreadableRunError, RunConfigError, CorruptCheckpointError, OSError)


def read_log(path: Path) -> list[dict[str, float]]:
    """The rows of a Lightning CSV log, every cell a float (NaN where empty)."""
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    try:
        return [{key: float(cell) if cell else math.nan for key, cell in r.items()} for r in rows]
    except (TypeError, ValueError) as error:
        raise UnreadableRunError(f"{path}: a cell is not a number ({error})") from error


def read_metrics(path: Path) -> dict[str, float]:
    """``metrics.json``: a JSON object of numbers."""
    try:
        metrics = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise UnreadableRunError(f"{path}: not JSON ({error})") from error
    if not (isinstance(metrics, dict) and all(map(is_number, metrics.values()))):
        raise UnreadableRunError(f"{path}: not a JSON object of numbers")
    return metrics


def read_choices(path: Path) -> dict[str, str]:
    """The config group choices ``hydra.yaml`` records, as written (never resolved)."""
    if not path.is_file():
        return {}
    choices = OmegaConf.to_container(load_yaml(path), resolve=False)
    for key in ("hydra", "runtime", "choices"):
        choices = choices.get(key) if isinstance(choices, dict) else None
    if not isinstance(choices, dict):
        raise UnreadableRunError(f"{path}: no hydra.runtime.choices mapping")
    return {str(key): str(value) for key, value in choices.items()}


def read_overrides(path: Path) -> dict[str, str]:
    """The task overrides ``overrides.yaml`` records, as {key: value} (``+``/``++`` dropped)."""
    if not path.is_file():
        return {}
    check_yaml(path)
    try:
        overrides = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise UnreadableRunError(f"{path}: not YAML ({error})") from error
    if not (isinstance(overrides, list) and all(isinstance(item, str) for item in overrides)):
        raise UnreadableRunError(f"{path}: not a list of overrides")
    pairs = (item.partition("=") for item in overrides)
    return {key.lstrip("+"): value for key, _, value in pairs}


def differing(runs: list[Run], leave_out: Iterable[str] = ()) -> list[str]:
    """The override keys whose value is not the same in every run, in first-seen order."""
    keys = dict.fromkeys(key for run in runs for key in run.overrides)
    skipped = {*LABELLED, *leave_out}
    return [
        key
        for key in keys
        if key not in skipped and len({run.overrides.get(key) for run in runs}) > 1
    ]


def read_counters(path: Path) -> tuple[int | None, int | None]:
    """Epochs and optimiser steps from the run's last checkpoint (None, None without one)."""
    if not path.is_file():
        return None, None
    checkpoint = load_checkpoint(path, mmap=True)
    try:
        # global_step counts every optimiser's updates (EI_adv steps two per batch)
        steps = checkpoint["global_step"] // max(1, len(checkpoint["optimizer_states"]))
        return checkpoint["epoch"] + 1, steps
    except (KeyError, TypeError) as error:
        raise UnreadableRunError(f"{path}: no epoch, global_step or optimizer_states") from error


def read_run(run_dir: Path) -> Run | None:
    """One run's config, test metrics, log and checkpoint counters; None if it never finished.

    Interpolations that call a resolver other than oc.select stay text (eilab.runconfig.inert).
    """
    metrics_file = run_dir / "metrics.json"
    if not metrics_file.is_file():
        return None
    config_file = run_dir / ".hydra" / "config.yaml"
    test = read_metrics(metrics_file)
    config = inert(load_yaml(config_file))
    choices = read_choices(run_dir / ".hydra" / "hydra.yaml")
    run = Run(run_dir, config, choices, test, read_log(run_dir / "logs" / "metrics.csv"))
    # runs record their wall time; older ones are timed from the config file to metrics.json
    started = config_file.stat().st_mtime
    run.wall_s = test.pop("time/wall_s", metrics_file.stat().st_mtime - started)
    run.epochs, run.steps = read_counters(run_dir / "checkpoints" / "last.ckpt")
    run.overrides = read_overrides(run_dir / ".hydra" / "overrides.yaml")
    return run


def criterion_of(run: Run, name: str | None) -> str | None:
    """The named criterion; else the run's own selection metric if it is ground-truth-free
    and logged; else the first of CRITERIA that the run logged."""
    if name is not None:
        return name
    own = run.value("strategy.selection_metric")
    preferred = ([own] if own in GROUND_TRUTH_FREE else []) + list(CRITERIA)
    return next((key for key in preferred if run.last(key) is not None), None)


def criterion_values(run: Run, criterion: str | None) -> dict:
    """A row's criterion columns: its name and its last validation value (None, None)."""
    return {"criterion": criterion, "criterion_value": run.last(criterion) if criterion else None}


def summary_row(run: Run, criterion: str | None, keys: Iterable[str]) -> dict:
    """One table row: who the run is, its test metrics and its ground-truth-free criterion."""
    chosen = criterion_of(run, criterion)
    row = {
        "run": run.label,
        **{key: run.value(key) for key in keys},
        "test_psnr": run.test.get("test/psnr"),
        "test_ssim": run.test.get("test/ssim"),
        "adagger_psnr": run.test.get("test/psnr_adagger"),
        "val_psnr": run.last("val/psnr"),
        **criterion_values(run, chosen),
        "wall_s": run.wall_s,
        "epochs": run.epochs,
        "steps": run.steps,
        "run_dir": str(run.run_dir),
    }
    return row


#: Table columns: row key -> (header, format).
COLUMNS = {
    "test_psnr": ("test PSNR (dB)", ".2f"),
    "test_ssim": ("test SSIM", ".3f"),
    "adagger_psnr": ("A†y PSNR (dB)", ".2f"),
    "val_psnr": ("val PSNR (dB)", ".2f"),
    "criterion": ("GT-free criterion", "s"),
    "criterion_value": ("its value (val)", ".4g"),
    "wall_s": ("wall (s)", ".0f"),
    "epochs": ("epochs", "d"),
    "steps": ("steps", "d"),
}


def markdown_table(rows: list[dict], columns: dict[str, tuple[str, str]]) -> str:
    """A markdown table: ``columns`` maps a row key to (header, format spec); None -> "–"."""
    lines = ["| " + " | ".join(header for header, _ in columns.values()) + " |"]
    lines.append("|" + "---|" * len(columns))
    for row in rows:
        cells = [
            "–" if row.get(key) is None else format(row[key], spec)
            for key, (_, spec) in columns.items()
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_csv(path: Path, rows: list[dict]) -> None:
    """The rows as a CSV file with a header line (the first row's keys)."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def rank_agreement(rows: list[dict]) -> dict | None:
    """How the criterion (lower is better) ranks runs against test PSNR (higher is better).

    Returns Spearman's ρ between −criterion and PSNR (1: same ranking), the run the criterion
    selects and the best run by PSNR; None with fewer than 3 runs that logged the criterion.
    """
    scored = [r for r in rows if r["criterion_value"] is not None and r["test_psnr"] is not None]
    if len(scored) < 3:
        return None
    criterion = np.array([r["criterion_value"] for r in scored])
    psnr = np.array([r["test_psnr"] for r in scored])
    rho = spearmanr(-criterion, psnr).statistic
    return {
        "rho": float(rho),
        "n": len(scored),
        "selected": scored[int(np.argmin(criterion))],
        "best": scored[int(np.argmax(psnr))],
    }


def logged_criteria(runs: list[Run]) -> list[str]:
    """The ground-truth-free criteria (GROUND_TRUTH_FREE) that some run logged on validation."""
    return [key for key in GROUND_TRUTH_FREE if any(run.last(key) is not None for run in runs)]


def sweep_section(rows_by_criterion: dict[str, list[dict]], key: str) -> str:
    """Per criterion and group of runs that differ only in ``key``: the criterion's ranking
    against test PSNR and the dB selecting by it loses."""
    lines = [f"## Sweep over {key}", ""]
    for criterion, rows in rows_by_criterion.items():
        lines.extend(criterion_lines(rows, key, criterion))
    return "\n".join(lines)


def criterion_lines(rows: list[dict], key: str, criterion: str) -> list[str]:
    """One line per group of runs: how ``criterion`` ranks and selects ``key``."""
    lines = []
    for label in dict.fromkeys(row["run"] for row in rows):
        group = sorted((r for r in rows if r["run"] == label), key=lambda r: r[key])
        agreement = rank_agreement(group)
        if agreement is None:
            lines.append(f"- {label}: fewer than 3 runs that logged {criterion}")
            continue
        selected, best = agreement["selected"], agreement["best"]
        lines.append(
            f"- {label}: Spearman ρ(−{criterion}, test PSNR) = "
            f"{agreement['rho']:.2f} over {agreement['n']} values; the criterion selects "
            f"{key} = {shown(selected[key])} ({selected['test_psnr']:.2f} dB), the best by test "
            f"PSNR is {key} = {shown(best[key])} ({best['test_psnr']:.2f} dB): "
            f"{best['test_psnr'] - selected['test_psnr']:.2f} dB lost by selecting without "
            "ground truth."
        )
    return lines


def save_sweep_plot(rows: list[dict], key: str, path: Path) -> None:
    """Test PSNR (left) and the ground-truth-free criterion (right) against the swept value."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9.0, 3.6), layout="constrained")
    psnr_axis, criterion_axis = figure.subplots(1, 2)
    for label in dict.fromkeys(row["run"] for row in rows):
        group = sorted((r for r in rows if r["run"] == label), key=lambda r: r[key])
        values = [r[key] for r in group]
        psnr_axis.plot(values, [r["test_psnr"] for r in group], "o-", label=label)
        scored = [r for r in group if r["criterion_value"] is not None]
        if scored:
            criterion_axis.plot(
                [r[key] for r in scored], [r["criterion_value"] for r in scored], "o-", label=label
            )
            criterion_axis.set_ylabel(f"{scored[0]['criterion']} (validation, lower is better)")
    adagger = rows[0]["adagger_psnr"]
    if adagger is not None:
        psnr_axis.axhline(adagger, color="grey", linestyle="--", label="A†y")
    psnr_axis.set(xlabel=key, ylabel="test PSNR (dB)")
    criterion_axis.set(xlabel=key)
    if all(is_number(r[key]) and r[key] > 0 for r in rows):
        psnr_axis.set_xscale("log")
        criterion_axis.set_xscale("log")
    psnr_axis.legend(fontsize=7)
    figure.savefig(path, dpi=120)


def save_curves(runs: list[Run], path: Path) -> None:
    """Validation PSNR against epoch for every run (the paper's Fig. 5)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.0, 4.0), layout="constrained")
    axis = figure.subplots()
    for run in runs:
        epochs, psnr = run.series("val/psnr")
        if len(epochs):
            axis.plot(epochs, psnr, marker=".", label=str(run.run_dir.name))
    axis.set(xlabel="epoch", ylabel="validation PSNR (dB)")
    axis.grid(alpha=0.3)
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=7)
    figure.savefig(path, dpi=120)


def read_runs(run_dirs: list[Path]) -> tuple[list[Run], list[str]]:
    """The finished runs, and one line (also printed to stderr) per run that cannot be read."""
    runs, unreadable = [], []
    for run_dir in run_dirs:
        try:
            run = read_run(run_dir)
        except UNREADABLE as error:
            unreadable.append(f"skipped {run_dir}: {error}")
            print(unreadable[-1], file=sys.stderr)
            continue
        if run is not None:
            runs.append(run)
    return runs, unreadable


def report(
    paths: list[Path], out: Path, sweep: str | None = None, criteria: list[str] | None = None
) -> str:
    """Read every finished run under ``paths``, write the report files into ``out``.

    The table shows the first of ``criteria`` (default: the first of CRITERIA a run logged);
    the sweep section ranks by each of them (default: every criterion the runs logged)."""
    run_dirs = find_run_dirs(paths)
    runs, unreadable = read_runs(run_dirs)
    if not runs:
        raise SystemExit(f"no finished runs (metrics.json) under {[str(p) for p in paths]}")
    keys = [sweep] if sweep else []
    differs = differing(runs, leave_out=keys)
    for run in runs:
        run.differs = differs
    criterion = criteria[0] if criteria else None
    rows = [summary_row(run, criterion, keys) for run in runs]
    if sweep:
        missing = [row["run_dir"] for row in rows if row[sweep] is None]
        if missing:
            raise SystemExit(f"--sweep {sweep}: no such config value in {missing[0]}")
        if not all(is_number(row[sweep]) for row in rows):  # e.g. model.norm, model.widths
            for row in rows:
                row[sweep] = shown(row[sweep])
        rows.sort(key=lambda r: (r["run"], r[sweep]))
    spec = "g" if all(is_number(row[k]) for row in rows for k in keys) else "s"
    columns = {"run": ("run", "s"), **{k: (k, spec) for k in keys}, **COLUMNS}
    sections = [f"# eilab report: {len(runs)} finished runs", markdown_table(rows, columns)]
    unfinished = len(run_dirs) - len(runs) - len(unreadable)
    if unfinished:
        sections.append(f"{unfinished} run(s) without metrics.json (unfinished) left out.")
    if unreadable:
        listed = "\n".join(f"- {line}" for line in unreadable)
        sections.append(f"{len(unreadable)} unreadable run(s) left out:\n\n{listed}")
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "runs.csv", rows)
    save_curves(runs, out / "curves.png")
    if sweep:
        run_of = {str(run.run_dir): run for run in runs}
        by_criterion = {
            name: [{**row, **criterion_values(run_of[row["run_dir"]], name)} for row in rows]
            for name in criteria or logged_criteria(runs)
        }
        sections.append(sweep_section(by_criterion, sweep))
        save_sweep_plot(rows, sweep, out / "sweep.png")
    text = "\n\n".join(sections) + "\n"
    (out / "runs.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="eilab-report", description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="run directories or their parents")
    parser.add_argument("--out", type=Path, default=Path("outputs/report"))
    parser.add_argument("--sweep", help="config key that was swept, e.g. equivariance.alpha")
    parser.add_argument(
        "--criterion",
        nargs="+",
        help=f"logged ground-truth-free metrics; the table shows the first (default: first of "
        f"{CRITERIA}), a sweep ranks by each (default: every one of {GROUND_TRUTH_FREE} logged)",
    )
    args = parser.parse_args(argv)
    print(report(args.paths, args.out, args.sweep, args.criterion))
    print(f"wrote runs.md, runs.csv, curves.png{', sweep.png' if args.sweep else ''} to {args.out}")


if __name__ == "__main__":
    main()
