"""``python -m eilab.reproduce_rei``: learning from noisy measurements, at CPU scale.

On each noisy task MC, EI, REI (SURE + α·REQ with the true noise level), REI with an unknown
noise level (estimated while training) and Sup (clean x, the same noisy y) are trained on the SAME
noisy measurements, drawn once per image (one acquisition each, as in practice). Tasks
(``src/eilab/conf/experiment/``):

- ``ct``: ``rei_ct``, the demo's head CT (48², 8 views) from photon counts, I0 = 1e3: the
  null space of A (79 % of the image) limits FBP, and mostly measures what EI fills in there;
- ``ct64``: ``rei_ct64``, the same head CT, noise and settings at 64² with 60 views: A has no
  null space and the noise limits FBP, which measures what robust EI (SURE, REQ) is for;
- ``inpainting_<gain>``: ``rei_inpainting``, photographs, 30 % dropped, Poisson noise of gain
  0.01, 0.05 or 0.1;
- ``cs_<sigma>``: ``rei_cs``, grey 32² photographs, 256 Gaussian measurements, σ 0.01, 0.1
  or 0.2.

Writes ``results.md`` / ``results.csv`` (test PSNR/SSIM, the issue's targets checked per task)
and one reconstruction grid per task under ``outputs/reproduce_rei/<time>/``.

    python -m eilab.reproduce_rei                              # every task
    python -m eilab.reproduce_rei --tasks ct inpainting_0.1    # some of them
    python -m eilab.reproduce_rei --fast                       # seconds (debug=fast), for tests
"""

from __future__ import annotations

import argparse
import shutil
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

#: Each task's Hydra overrides: an experiment and its noise level.
TASKS = {
    "ct": ["experiment=rei_ct"],
    "ct64": ["experiment=rei_ct64"],
    **{
        f"inpainting_{g}": ["experiment=rei_inpainting", f"noise.gain={g}"]
        for g in (0.01, 0.05, 0.1)
    },
    **{f"cs_{s}": ["experiment=rei_cs", f"noise.sigma={s}"] for s in (0.01, 0.1, 0.2)},
}
#: The strategies of every task, longest first; "rei_unknown" is REI with an unknown noise level.
STRATEGIES = ("rei", "rei_unknown", "ei", "mc", "sup")
STRATEGY_OVERRIDES = {"rei_unknown": ["strategy=rei", "strategy.unknown_noise=true"]}
#: The noise level of each task family, as named in its table.
NOISE = {
    "ct": "I0 = 1e3 photons, 48² × 8 views (null-space limited)",
    "ct64": "I0 = 1e3 photons, 64² × 60 views (noise limited)",
    "inpainting": "Poisson gain",
    "cs": "Gaussian σ",
}
PUBLISHED = ("results.md", "results.csv")


def is_ct(task: str) -> bool:
    """Whether a task is one of the CT tasks (their A†y is FBP; they read the head CT)."""
    return task.startswith("ct")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options; extra arguments are Hydra overrides applied to every run."""
    parser = run_parser(
        "python -m eilab.reproduce_rei", __doc__.split("\n")[0], Path("outputs/reproduce_rei")
    )
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    parser.add_argument("--publish", type=Path, help="also copy the tables and figures here")
    return parser.parse_args(argv)


def build_jobs(args: argparse.Namespace, out: Path, start: float) -> list[Job]:
    """Every task's strategies; all of one strategy before the next (REI runs are longest)."""
    dataset = ct_dataset_overrides() if any(map(is_ct, args.tasks)) else []
    jobs = []
    for strategy in STRATEGIES:
        for task in args.tasks:
            overrides = TASKS[task] + STRATEGY_OVERRIDES.get(strategy, [f"strategy={strategy}"])
            overrides += (dataset if is_ct(task) else []) + (["debug=fast"] if args.fast else [])
            overrides += args.overrides
            jobs.append(Job(task, strategy, tuple(overrides), out / task / strategy, start))
    return jobs


def target_lines(rows: list[dict]) -> list[str]:
    """The issue's targets at a task's noise level: REI − EI ≥ 2 dB, Sup − REI ≤ 1.5 dB,
    |REI unknown − REI| ≤ 0.5 dB, each with its measured value."""
    psnr = {row["strategy"]: row["test_psnr"] for row in rows}
    checks = [
        ("REI − EI", "rei", "ei", lambda d: d >= 2.0, "≥ +2 dB"),
        ("Sup − REI", "sup", "rei", lambda d: d <= 1.5, "≤ 1.5 dB"),
        ("REI unknown − REI", "rei_unknown", "rei", lambda d: abs(d) <= 0.5, "within ±0.5 dB"),
    ]
    lines = []
    for name, a, b, met, target in checks:
        if a in psnr and b in psnr:
            difference = psnr[a] - psnr[b]
            verdict = "met" if met(difference) else "missed"
            lines.append(f"- {name} = {difference:+.2f} dB (target {target}): {verdict}")
    return lines


def task_section(task: str, rows: list[dict], settings: str) -> str:
    """One task's markdown: settings, noise, the table and the targets."""
    family, _, level = task.partition("_")
    noise = NOISE[family] + (f" {level}" if level else "")
    lines = [f"## {task}: {noise}", "", settings, "", markdown_table(rows, RUN_COLUMNS)]
    return "\n".join([*lines, "", *target_lines(rows)])


def save_grid(task: str, results: list[dict], path: Path) -> None:
    """Ground truth | A†y | each strategy, on one test image of ``task``."""
    samples = {r["strategy"]: r["sample"] for r in results if r["task"] == task}
    first = next(iter(samples.values()))
    methods = {"A†y": first["x_dagger"]}
    methods.update({LABELS[s]: samples[s]["x_hat"] for s in LABELS if s in samples})
    save_reconstruction_grid(first["x"], methods, path)


def main(argv: list[str] | None = None) -> Path:
    """Train every task's strategies, write the tables and grids; return the output dir."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    start = time.time()
    out = new_output_dir(args.out)
    print(f"eilab reproduce_rei: tasks {', '.join(args.tasks)}; writing to {out}")
    command = " ".join(["python -m eilab.reproduce_rei", *argv])
    sections = [provenance("eilab: learning from noisy measurements", command, args.jobs, out)]
    sections.append(
        "Noise drawn once per measurement (fixed across epochs); Sup trains on the same noisy "
        "y with the clean x. Test PSNR/SSIM of the last weights."
    )
    results = run_jobs(build_jobs(args, out, start), args.jobs)
    tables = {}
    for task in args.tasks:
        adagger = "A†y (FBP)" if is_ct(task) else "A†y"
        tables[task] = table_rows(task, results, adagger)
        settings = next(r["settings"] for r in results if r["task"] == task)
        sections.append(task_section(task, tables[task], settings))
        save_grid(task, results, out / f"{task}.png")
    sections.append(wall_time_line(start, args.jobs))
    write_csv(out / "results.csv", [row for rows in tables.values() for row in rows], RUN_FIELDS)
    report = "\n\n".join(sections)
    (out / "results.md").write_text(report + "\n")
    print("\n" + report)
    if args.publish:
        args.publish.mkdir(parents=True, exist_ok=True)
        for name in (*PUBLISHED, *(f"{task}.png" for task in args.tasks)):
            shutil.copy2(out / name, args.publish / name)
        print(f"copied the tables and grids to {args.publish}")
    return out


if __name__ == "__main__":
    main()
