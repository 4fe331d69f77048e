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

    python -m eilab.demo                       # the full demo: 6.4 min on 2 idle CPU cores
    python -m eilab.demo --fast                # seconds: debug=fast (tiny images and networks)
    python -m eilab.demo trainer.max_epochs=10 --tasks ct   # Hydra overrides for every run

Runs go to worker processes with one torch thread each (``--jobs``): on a 2-core CPU that
something else also uses, one process with two OpenMP threads ran the U-Net 10-80x slower
than one thread (threads wait for each other at every parallel op); two single-threaded
processes use both cores without that. Results are deterministic (seeded, one thread).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import logging
import multiprocessing
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from eilab.data.head_ct import find_head_ct
from eilab.eval import load_run
from eilab.metrics import psnr
from eilab.train import train

TASKS = {"ct": "demo_ct", "inpainting": "demo_inpainting"}
#: EI first: it is the longest run of a task, so it should start first.
STRATEGIES = ("ei", "mc", "sup")
LABELS = {"adagger": "A†y", "mc": "MC", "ei": "EI", "sup": "Sup"}
#: What A†y is called in each task's table and figure.
ADAGGER_NAMES = {"ct": "A†y (FBP)", "inpainting": "A†y"}
#: Written by the experiment configs' ``callbacks.final`` at the end of every training epoch.
FINAL_CHECKPOINT = Path("checkpoints/final.ckpt")
FIELDS = ("task", "method", "test_psnr", "test_ssim", "train_time_s", "steps", "run_dir")


@dataclass(frozen=True)
class Job:
    """One training run: a task, a strategy, its Hydra overrides and its own directory."""

    task: str
    strategy: str
    overrides: tuple[str, ...]
    run_dir: Path
    start: float  # time.time() at the start of the demo, for progress messages


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options; extra arguments are Hydra overrides applied to every run."""
    parser = argparse.ArgumentParser(
        prog="python -m eilab.demo", description=__doc__.split("\n")[0]
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run")
    parser.add_argument("--fast", action="store_true", help="tiny runs (debug=fast), for tests")
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="runs trained at once, each in a process with one torch thread; 1: in-process",
    )
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"), help="output root")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    return args


def elapsed(start: float) -> str:
    """Seconds since ``start`` as a fixed-width progress stamp."""
    return f"[{time.time() - start:6.1f} s]"


def ct_dataset_overrides() -> list[str]:
    """No override when the real head CT is installed; else fall back to ellipse phantoms."""
    try:
        path = find_head_ct()
    except FileNotFoundError as error:
        print(f"head CT not found ({error}).\nThe CT task falls back to dataset=ellipses.")
        return ["dataset=ellipses"]
    print(f"head CT: {path}")
    return []


def new_output_dir(root: Path) -> Path:
    """A fresh ``root/<timestamp>`` directory; an existing one is never reused."""
    stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    for suffix in ("", *(f"-{i}" for i in range(1, 100))):
        path = root / f"{stamp}{suffix}"
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free output directory under {root} for {stamp}")


def compose_run(overrides: tuple[str, ...], run_dir: Path) -> DictConfig:
    """Compose the train config as eilab-train would, with ``run_dir`` as Hydra's output dir.

    As under ``@hydra.main``, the ``hydra`` node goes to ``HydraConfig`` (for ``${hydra:...}``
    interpolations) and is removed from the returned config.
    """
    with initialize_config_module("eilab.conf", version_base="1.3"):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    with read_write(cfg), open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
        HydraConfig.instance().set_config(cfg)
        del cfg["hydra"]
    return cfg


def save_config(cfg: DictConfig, run_dir: Path) -> None:
    """Write ``.hydra/config.yaml`` as eilab-train does, so eilab-eval can reload the run."""
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")


@torch.no_grad()
def sample_reconstructions(run_dir: Path) -> dict[str, np.ndarray]:
    """Ground truth, A†y and f(y) of the middle test image, with the run's final weights."""
    module, datamodule, _ = load_run(run_dir, str(run_dir / FINAL_CHECKPOINT), "cpu")
    datamodule.setup("test")
    dataset = datamodule.datasets["test"]
    index = len(dataset) // 2
    x, y = dataset.images[index : index + 1], dataset.measurements[index : index + 1]
    images = {"x": x, "x_dagger": module.physics.A_dagger(y), "x_hat": module(y)}
    return {name: image[0].numpy() for name, image in images.items()}


def run_job(job: Job) -> dict:
    """Train and test one run (in a worker process or in-process); returns its results."""
    print(f"{elapsed(job.start)} {job.task}/{job.strategy}: training in {job.run_dir}", flush=True)
    job.run_dir.mkdir(parents=True)
    cfg = compose_run(job.overrides, job.run_dir)
    save_config(cfg, job.run_dir)
    OmegaConf.resolve(cfg)
    began = time.perf_counter()
    log_file = job.run_dir / "train.log"
    with (
        open(log_file, "w") as log,
        contextlib.redirect_stdout(log),
        contextlib.redirect_stderr(log),
    ):
        try:
            metrics = train(cfg, job.run_dir)
        except Exception as error:
            raise RuntimeError(f"{job.task}/{job.strategy} failed; see {log_file}") from error
    seconds = time.perf_counter() - began
    checkpoint = torch.load(job.run_dir / FINAL_CHECKPOINT, weights_only=True)
    return {
        "task": job.task,
        "strategy": job.strategy,
        "metrics": metrics,
        "seconds": seconds,
        "steps": checkpoint["global_step"],
        "run_dir": str(job.run_dir),
        "settings": settings_line(cfg),
        "sample": sample_reconstructions(job.run_dir),
    }


def settings_line(cfg: DictConfig) -> str:
    """The settings a reader needs to interpret a task's table, in one line."""
    physics = {k: v for k, v in cfg.physics.items() if k not in ("_target_", "img_size", "noise")}
    dataset = str(cfg.dataset._target_).rsplit(".", 1)[-1].removesuffix("_splits")
    return (
        f"dataset {dataset}, {cfg.img_size}² × {cfg.channels} channel(s), "
        f"physics {cfg.physics._target_.rsplit('.', 1)[-1]} {dict(physics)}, "
        f"group {cfg.group._target_.rsplit('.', 1)[-1]}, U-Net widths {list(cfg.model.widths)} "
        f"norm {cfg.model.norm}, batch {cfg.batch_size}, lr {cfg.optim.lr}, "
        f"α {cfg.equivariance.alpha}, n_trans {cfg.equivariance.n_trans}, "
        f"{cfg.trainer.max_epochs} epochs, seed {cfg.seed}"
    )


def quiet_lightning() -> None:
    """No Lightning info messages on the console (they would interleave between runs)."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


def init_worker() -> None:
    """A worker process: one torch thread (see the module docstring), no Lightning chatter."""
    torch.set_num_threads(1)
    quiet_lightning()


def run_jobs(jobs: list[Job], workers: int) -> list[dict]:
    """Run the jobs, ``workers`` at a time in spawned processes (in-process when 1)."""
    results = []

    def report(result: dict) -> None:
        results.append(result)
        metrics, start = result["metrics"], jobs[0].start
        print(
            f"{elapsed(start)} {result['task']}/{result['strategy']}: done in "
            f"{result['seconds']:.0f} s ({result['steps']} steps), test PSNR "
            f"{metrics['test/psnr']:.2f} dB, SSIM {metrics['test/ssim']:.3f}",
            flush=True,
        )

    if workers == 1:
        quiet_lightning()
        for job in jobs:
            report(run_job(job))
        return results
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker) as pool:
        futures = [pool.submit(run_job, job) for job in jobs]
        try:
            for future in futures:
                report(future.result())
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return results


def table_rows(task: str, results: list[dict]) -> list[dict]:
    """A†y, MC, EI, Sup rows of one task (A†y's metrics come from the EI run's test)."""
    by_strategy = {r["strategy"]: r for r in results if r["task"] == task}
    first = by_strategy.get("ei") or next(iter(by_strategy.values()))
    metrics = first["metrics"]
    rows = [dict(zip(FIELDS, (task, ADAGGER_NAMES[task], None, None, None, None, ""), strict=True))]
    rows[0].update(test_psnr=metrics["test/psnr_adagger"], test_ssim=metrics["test/ssim_adagger"])
    for strategy in ("mc", "ei", "sup"):
        if strategy in by_strategy:
            result = by_strategy[strategy]
            values = (result["metrics"]["test/psnr"], result["metrics"]["test/ssim"])
            values += (result["seconds"], result["steps"], result["run_dir"])
            rows.append(dict(zip(FIELDS, (task, LABELS[strategy], *values), strict=True)))
    return rows


def markdown_table(rows: list[dict]) -> str:
    """method | test PSNR | test SSIM | train time s | steps, as a markdown table."""
    lines = [
        "| method | test PSNR (dB) | test SSIM | train time (s) | steps |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        trained = row["steps"] is not None
        time_s = f"{row['train_time_s']:.0f}" if trained else "–"
        steps = str(row["steps"]) if trained else "–"
        lines.append(
            f"| {row['method']} | {row['test_psnr']:.2f} | {row['test_ssim']:.3f} "
            f"| {time_s} | {steps} |"
        )
    return "\n".join(lines)


def to_display(image: np.ndarray) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W) grey or (H, W, 3) RGB for imshow."""
    image = np.clip(image, 0.0, 1.0)
    return image.transpose(1, 2, 0) if image.shape[0] == 3 else image[0]


def save_figure(task: str, results: list[dict], path: Path) -> None:
    """Ground truth | A†y | MC | EI | Sup of one test image, each titled with its PSNR."""
    from matplotlib.figure import Figure

    by_strategy = {r["strategy"]: r["sample"] for r in results if r["task"] == task}
    first = by_strategy.get("ei") or next(iter(by_strategy.values()))
    truth = first["x"]
    panels = [("ground truth", truth), (ADAGGER_NAMES[task], first["x_dagger"])]
    panels += [
        (LABELS[s], by_strategy[s]["x_hat"]) for s in ("mc", "ei", "sup") if s in by_strategy
    ]
    figure = Figure(figsize=(2.4 * len(panels), 3.0), layout="constrained")
    for axis, (name, image) in zip(figure.subplots(1, len(panels)), panels, strict=True):
        axis.imshow(to_display(image), cmap="gray", vmin=0.0, vmax=1.0)
        axis.set_axis_off()
        if image is truth:
            axis.set_title(name, fontsize=10)
        else:
            value = psnr(torch.from_numpy(image)[None], torch.from_numpy(truth)[None])
            axis.set_title(f"{name}\n{float(value):.2f} dB", fontsize=10)
    figure.savefig(path, dpi=120, bbox_inches="tight")


def write_results(out: Path, tables: dict[str, list[dict]], report: str) -> None:
    """results.csv (one row per task and method) and results.md (the printed report)."""
    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        for rows in tables.values():
            writer.writerows({key: row[key] for key in FIELDS} for row in rows)
    (out / "results.md").write_text(report + "\n")


def build_jobs(args: argparse.Namespace, out: Path, start: float) -> list[Job]:
    """One job per task and strategy, EI runs first (they take longest)."""
    common = ["debug=fast"] if args.fast else []
    dataset = {"ct": ct_dataset_overrides() if "ct" in args.tasks else []}
    jobs = []
    for strategy in STRATEGIES:
        for task in args.tasks:
            overrides = [f"experiment={TASKS[task]}", f"strategy={strategy}"]
            overrides += dataset.get(task, []) + common + list(args.overrides)
            jobs.append(Job(task, strategy, tuple(overrides), out / task / strategy, start))
    return jobs


def header(argv: list[str], jobs: int, out: Path) -> str:
    """What ran where: command, date, machine, load."""
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    workers = f"{jobs} worker processes, 1 torch thread each" if jobs > 1 else "in-process"
    return "\n".join(
        [
            "# eilab demo",
            "",
            f"- command: `{' '.join(['python -m eilab.demo', *argv])}`",
            f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
            f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"load average at start {load} (1, 5, 15 min); runs: {workers}",
            f"- torch {torch.__version__}, Python {platform.python_version()}",
            f"- runs: {out}",
        ]
    )


def footer(start: float, jobs: int) -> str:
    """Total wall time and load; what the time column means."""
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"train time: wall time of each run (data, fit, test), {jobs} run(s) at a time.\n"
        f"Total wall time: {(time.time() - start) / 60:.1f} min "
        f"(load average at the end {load})."
    )


def main(argv: list[str] | None = None) -> Path:
    """Train every task's strategies, print and write the tables and figures; return the dir."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    start = time.time()
    out = new_output_dir(args.out)
    print(f"eilab demo: tasks {', '.join(args.tasks)}; writing to {out}")
    intro = header(argv, args.jobs, out)
    results = run_jobs(build_jobs(args, out, start), args.jobs)
    tables = {task: table_rows(task, results) for task in args.tasks}
    sections = [intro]
    for task, rows in tables.items():
        settings = next(r["settings"] for r in results if r["task"] == task)
        sections.append(f"## {task}\n\n{settings}\n\n{markdown_table(rows)}")
        save_figure(task, results, out / f"{task}.png")
    report = "\n\n".join([*sections, footer(start, args.jobs)])
    write_results(out, tables, report)
    print("\n" + report)
    return out


if __name__ == "__main__":
    main()
