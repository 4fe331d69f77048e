"""Many training runs from one command: compose each run's config, train it in a worker
process, and collect its test metrics, timing and sample reconstructions.

Used by ``python -m eilab.demo`` and ``python -m eilab.reproduce``. Each run is an ordinary
``eilab.train.train`` run in its own directory, so ``eilab-eval`` can reload it.

Runs go to worker processes with one torch thread each: on a 2-core CPU that something else
also uses, one process with two OpenMP threads ran the U-Net 10-80x slower than one thread
(threads wait for each other at every parallel op); two single-threaded processes use both
cores without that. Results are deterministic (seeded, one thread).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import ctypes
import ctypes.util
import datetime
import logging
import multiprocessing
import os
import platform
import signal
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from eilab.data.head_ct import find_head_ct
from eilab.eval import load_run
from eilab.progress import progress_text, read_progress
from eilab.train import train

#: How each strategy is named in tables and figures.
LABELS = {
    "mc": "MC",
    "ei": "EI",
    "ei_adv": "EI_adv",
    "rei": "REI",
    "rei_unknown": "REI (unknown noise)",
    "sup": "Sup",
    "ei_sup": "EI_sup",
}
#: The columns of a run table (row key -> header, format) and of its CSV.
RUN_COLUMNS = {
    "method": ("method", "s"),
    "test_psnr": ("test PSNR (dB)", ".2f"),
    "test_ssim": ("test SSIM", ".3f"),
    "train_time_s": ("train time (s)", ".0f"),
    "epochs": ("epochs", "d"),
    "steps": ("steps", "d"),
}
RUN_FIELDS = ("task", *RUN_COLUMNS, "run_dir")
#: Written by ``callbacks.last`` at the end of every training epoch: the final weights.
LAST_CHECKPOINT = Path("checkpoints/last.ckpt")
#: Seconds between two lines of progress of the runs in flight.
PROGRESS_EVERY_S = 60.0


@dataclass(frozen=True)
class Job:
    """One training run: a task, a strategy, its Hydra overrides and its own directory."""

    task: str
    strategy: str
    overrides: tuple[str, ...]
    run_dir: Path
    start: float  # time.time() when the command started, for progress messages
    samples: int = 1  # test images whose reconstructions come back with the result


def run_parser(prog: str, description: str, default_out: Path) -> argparse.ArgumentParser:
    """The options of every many-runs command: Hydra overrides, --fast, --jobs, --out."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run")
    parser.add_argument("--fast", action="store_true", help="tiny runs (debug=fast), for tests")
    parser.add_argument(
        "--jobs",
        type=positive_int,
        default=min(2, os.cpu_count() or 1),
        help="runs trained at once, each in a process with one torch thread; 1: in-process",
    )
    parser.add_argument("--out", type=Path, default=default_out, help="output root")
    return parser


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def say(line: str) -> None:
    """Print one progress line in a single write, so lines from worker processes and the
    parent never interleave within a line (print writes the text and its newline apart)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


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
        progress = {"_target_": "eilab.progress.ProgressFile", "dirpath": str(run_dir)}
        cfg.callbacks = {**(cfg.callbacks or {}), "progress": progress}
    return cfg


def save_config(cfg: DictConfig, run_dir: Path) -> None:
    """Write ``.hydra/config.yaml`` and ``hydra.yaml`` as eilab-train does, so eilab-eval can
    reload the run and eilab-report can name it by its choices (strategy=ei, ...)."""
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    OmegaConf.save({"hydra": HydraConfig.get()}, run_dir / ".hydra" / "hydra.yaml")


@torch.no_grad()
def sample_reconstructions(run_dir: Path, count: int) -> dict[str, np.ndarray]:
    """Ground truth, A†y and f(y) of ``count`` evenly spaced test images (final weights)."""
    module, datamodule, _ = load_run(run_dir, str(run_dir / LAST_CHECKPOINT), "cpu")
    datamodule.setup("test")
    dataset = datamodule.datasets["test"]
    indices = ((np.arange(count) + 0.5) * len(dataset) / count).astype(int)
    x, y = dataset.images[indices], dataset.measurements[indices]
    images = {"x": x, "x_dagger": module.physics.A_dagger(y), "x_hat": module(y)}
    return {name: image.numpy() for name, image in images.items()}


def settings_line(cfg: DictConfig) -> str:
    """The settings a reader needs to interpret a task's table, in one line."""
    physics = {k: v for k, v in cfg.physics.items() if k not in ("_target_", "img_size", "noise")}
    dataset = str(cfg.dataset._target_).rsplit(".", 1)[-1].removesuffix("_splits")
    size = cfg.physics.get("img_size", cfg.img_size)  # int (H = W) or (H, W): 1-D signals
    shape = f"{size}²" if isinstance(size, int) else "×".join(str(n) for n in size)
    return (
        f"dataset {dataset}, {shape} × {cfg.channels} channel(s), "
        f"physics {cfg.physics._target_.rsplit('.', 1)[-1]} {dict(physics)}, "
        f"group {cfg.group._target_.rsplit('.', 1)[-1]}, U-Net widths {list(cfg.model.widths)} "
        f"norm {cfg.model.norm}, batch {cfg.batch_size}, lr {cfg.optim.lr}, "
        f"milestones {list(cfg.optim.milestones)}, α {cfg.equivariance.alpha}, "
        f"n_trans {cfg.equivariance.n_trans}, seed {cfg.seed}{noise_text(cfg.physics.noise)}, "
        f"precision {cfg.trainer.precision}{', channels_last' if cfg.channels_last else ''} "
        "(epochs per run in the table)"
    )


def noise_text(noise: DictConfig | None) -> str:
    """ ", noise TransmissionNoise(I0=1000.0, ...)" for a table's settings line ("" if none)."""
    if noise is None:
        return ""
    name = str(noise._target_).split("noise.", 1)[-1]
    values = ", ".join(f"{k}={v}" for k, v in noise.items() if k != "_target_")
    return f", noise {name}({values})"


def train_job(job: Job) -> tuple[DictConfig, dict[str, float], float]:
    """Train and test one run, its output in ``train.log``; its config, test metrics and
    wall seconds."""
    say(f"{elapsed(job.start)} {job.task}/{job.strategy}: training in {job.run_dir}")
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
    return cfg, metrics, time.perf_counter() - began


def run_job(job: Job) -> dict:
    """Train and test one run (in a worker process or in-process); returns its results,
    with its final checkpoint's epochs and steps and sample reconstructions."""
    cfg, metrics, seconds = train_job(job)
    checkpoint = torch.load(job.run_dir / LAST_CHECKPOINT, weights_only=True)
    return {
        "task": job.task,
        "strategy": job.strategy,
        "metrics": metrics,
        "seconds": seconds,
        "steps": training_steps(checkpoint),
        "epochs": checkpoint["epoch"] + 1,
        "run_dir": str(job.run_dir),
        "settings": settings_line(cfg),
        "sample": sample_reconstructions(job.run_dir, job.samples),
    }


def training_steps(checkpoint: dict) -> int:
    """Batches trained on: Lightning's global_step counts every optimiser's updates (EI_adv
    steps its generator and its discriminator once per batch)."""
    return checkpoint["global_step"] // max(1, len(checkpoint["optimizer_states"]))


def quiet_lightning() -> None:
    """No Lightning info messages on the console (they would interleave between runs)."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


#: prctl(2) option: the signal a process gets when the thread that started it exits.
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent dies, so a killed demo leaves no workers."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def init_worker() -> None:
    """A worker process: one torch thread (see the module docstring), no Lightning chatter,
    and it ends with its parent."""
    die_with_parent()
    torch.set_num_threads(1)
    quiet_lightning()


def report_done(result: dict, start: float) -> None:
    """One progress line for a finished run."""
    metrics = result["metrics"]
    ssim = f", SSIM {metrics['test/ssim']:.3f}" if "test/ssim" in metrics else ""
    say(
        f"{elapsed(start)} {result['task']}/{result['strategy']}: done in "
        f"{result['seconds']:.0f} s ({result['steps']} steps), test PSNR "
        f"{metrics['test/psnr']:.2f} dB{ssim}"
    )


def run_jobs(jobs: list[Job], workers: int) -> list[dict]:
    """Run the jobs, ``workers`` at a time in spawned processes (in-process when 1).

    Each run's result line is printed as soon as it finishes, and every PROGRESS_EVERY_S a
    line gives the epoch and ETA of the runs in flight. Results come back in ``jobs`` order.
    """
    if workers == 1:
        quiet_lightning()
        results = []
        for job in jobs:
            results.append(run_job(job))
            report_done(results[-1], job.start)
        return results
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker) as pool:
        futures = {pool.submit(run_job, job): job for job in jobs}
        try:
            pending = set(futures)
            while pending:
                done, pending = wait(pending, PROGRESS_EVERY_S, return_when=FIRST_COMPLETED)
                for future in done:
                    report_done(future.result(), futures[future].start)
                if pending and not done:
                    # a queued job counts as running once handed to the pool's call queue;
                    # it has started when its worker created its run directory
                    report_in_flight([futures[f] for f in pending if futures[f].run_dir.exists()])
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return [future.result() for future in futures]


def report_in_flight(jobs: list[Job]) -> None:
    """One line: each running job's epoch k/N and ETA."""
    if jobs:
        states = [f"{j.task}/{j.strategy} {progress_text(read_progress(j.run_dir))}" for j in jobs]
        say(f"{elapsed(jobs[0].start)} running: {'; '.join(states)}")


def provenance(title: str, command: str, workers: int, out: Path) -> str:
    """A markdown header saying what ran where: command, date, machine, load, versions."""
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    how = f"{workers} worker processes, 1 torch thread each" if workers > 1 else "in-process"
    return "\n".join(
        [
            f"# {title}",
            "",
            f"- command: `{command}`",
            f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
            f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"load average at start {load} (1, 5, 15 min); runs: {how}",
            f"- torch {torch.__version__}, Python {platform.python_version()}",
            f"- runs: {out}",
        ]
    )


def wall_time_line(start: float, workers: int) -> str:
    """Total wall time and load at the end; what the time column means."""
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"train time: wall time of each run (data, fit, test), {workers} run(s) at a time.\n"
        f"Total wall time: {(time.time() - start) / 60:.1f} min "
        f"(load average at the end {load})."
    )


def table_rows(task: str, results: list[dict], adagger_name: str) -> list[dict]:
    """Rows of one task: A†y (its metrics come with every run's test), then each strategy.

    Strategies keep the order of ``LABELS`` (the paper's order); SSIM is None where a run
    did not compute it (1-D signals).
    """
    by_strategy = {r["strategy"]: r for r in results if r["task"] == task}
    any_run = next(iter(by_strategy.values()))["metrics"]
    rows = [
        {
            "task": task,
            "strategy": "adagger",
            "method": adagger_name,
            "test_psnr": any_run["test/psnr_adagger"],
            "test_ssim": any_run.get("test/ssim_adagger"),
            "train_time_s": None,
            "epochs": None,
            "steps": None,
            "run_dir": "",
        }
    ]
    for strategy, label in LABELS.items():
        if strategy in by_strategy:
            result = by_strategy[strategy]
            rows.append(
                {
                    "task": task,
                    "strategy": strategy,
                    "method": label,
                    "test_psnr": result["metrics"]["test/psnr"],
                    "test_ssim": result["metrics"].get("test/ssim"),
                    "train_time_s": result["seconds"],
                    "epochs": result["epochs"],
                    "steps": result["steps"],
                    "run_dir": result["run_dir"],
                }
            )
    return rows


def write_csv(path: Path, rows: list[dict], fields: tuple[str, ...]) -> None:
    """The rows' ``fields`` as a CSV file with a header line."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows({key: row.get(key) for key in fields} for row in rows)
