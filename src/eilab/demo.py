"""``python -m eilab.demo``: the paper's Table 1 at CPU scale, in minutes.

Two tasks, each a set of ordinary ``eilab.train.train`` runs composed from an experiment config:

- ``ct`` (``experiment=demo_ct``): sparse-view CT of the real head CT; ellipse phantoms
  (``dataset=ellipses``) when the head CT file is not installed;
- ``inpainting`` (``experiment=demo_inpainting``): scikit-image photographs, 30 % of the
  pixels dropped, cyclic shifts.

MC, EI and Sup are trained (A†y needs no training; its numbers come with every run), each in
its own directory under ``outputs/demo/<timestamp>/<task>/<strategy>``. Then it prints one
markdown table per task and writes ``results.csv``, ``results.md``, ``ct.png`` and
``inpainting.png`` (one test image: ground truth | A†y | MC | EI | Sup) beside them.

    python -m eilab.demo                       # the full demo: 7 min on 2 CPU cores
    python -m eilab.demo --fast                # seconds: debug=fast (tiny images and networks)
    python -m eilab.demo trainer.max_epochs=10 --tasks ct   # Hydra overrides for every run

Runs go to worker processes with one torch thread each (``--jobs``; see ``eilab.runs``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from eilab.figures import save_reconstruction_grid
from eilab.report import markdown_table
from eilab.runs import (
    LABELS,
    RUN_COLUMNS,
    RUN_FIELDS,
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

TASKS = {"ct": "demo_ct", "inpainting": "demo_inpainting"}
#: EI first: it is the longest run of a task, so it should start first.
STRATEGIES = ("ei", "mc", "sup")
#: Runs that stop before their experiment's epochs, to keep the demo under 10 minutes; every
#: table shows each run's epochs and steps. On CT, Sup learns fastest (validation PSNR 30.78 dB
#: after 50 epochs, 31.44 after 100) and MC's validation PSNR is flat from epoch 60 to 300
#: (24.4-24.5 dB); on inpainting MC cannot learn the dropped pixels (Proposition 1): it
#: stays near A†y.
SHORTER_RUNS = {
    ("ct", "sup"): ["trainer.max_epochs=50"],
    ("ct", "mc"): ["trainer.max_epochs=100"],
    ("inpainting", "mc"): ["trainer.max_epochs=40"],
}
#: What A†y is called in each task's table and figure.
ADAGGER_NAMES = {"ct": "A†y (FBP)", "inpainting": "A†y"}


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options; extra arguments are Hydra overrides applied to every run."""
    parser = run_parser("python -m eilab.demo", __doc__.split("\n")[0], Path("outputs/demo"))
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    return parser.parse_args(argv)


def save_figure(task: str, results: list[dict], path: Path) -> None:
    """Ground truth | A†y | MC | EI | Sup of one test image, each titled with its PSNR."""
    samples = {r["strategy"]: r["sample"] for r in results if r["task"] == task}
    first = samples.get("ei") or next(iter(samples.values()))
    methods = {ADAGGER_NAMES[task]: first["x_dagger"]}
    methods.update({LABELS[s]: samples[s]["x_hat"] for s in ("mc", "ei", "sup") if s in samples})
    save_reconstruction_grid(first["x"], methods, path)


def write_results(out: Path, tables: dict[str, list[dict]], report: str) -> None:
    """results.csv (one row per task and method) and results.md (the printed report)."""
    write_csv(out / "results.csv", [row for rows in tables.values() for row in rows], RUN_FIELDS)
    (out / "results.md").write_text(report + "\n")


def build_jobs(args: argparse.Namespace, out: Path, start: float) -> list[Job]:
    """One job per task and strategy, EI runs first (they take longest)."""
    common = ["debug=fast"] if args.fast else []
    dataset = {"ct": ct_dataset_overrides() if "ct" in args.tasks else []}
    jobs = []
    for strategy in STRATEGIES:
        for task in args.tasks:
            overrides = [f"experiment={TASKS[task]}", f"strategy={strategy}"]
            overrides += [] if args.fast else SHORTER_RUNS.get((task, strategy), [])
            overrides += dataset.get(task, []) + common + list(args.overrides)
            jobs.append(Job(task, strategy, tuple(overrides), out / task / strategy, start))
    return jobs


def main(argv: list[str] | None = None) -> Path:
    """Train every task's strategies, print and write the tables and figures; return the dir."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    start = time.time()
    out = new_output_dir(args.out)
    print(f"eilab demo: tasks {', '.join(args.tasks)}; writing to {out}")
    command = " ".join(["python -m eilab.demo", *argv])
    intro = provenance("eilab demo", command, args.jobs, out)
    results = run_jobs(build_jobs(args, out, start), args.jobs)
    tables = {task: table_rows(task, results, ADAGGER_NAMES[task]) for task in args.tasks}
    sections = [intro]
    for task, rows in tables.items():
        settings = next(r["settings"] for r in results if r["task"] == task)
        sections.append(f"## {task}\n\n{settings}\n\n{markdown_table(rows, RUN_COLUMNS)}")
        save_figure(task, results, out / f"{task}.png")
    report = "\n\n".join([*sections, wall_time_line(start, args.jobs)])
    write_results(out, tables, report)
    print("\n" + report)
    return out


if __name__ == "__main__":
    main()
