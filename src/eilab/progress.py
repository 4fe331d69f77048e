"""Live progress of runs trained elsewhere (worker processes, launchers): epoch k/N and an ETA.

Each run's :class:`ProgressFile` callback rewrites a tiny ``progress.json`` in its directory at
the end of every training epoch; a command watching many runs reads them back with
:func:`read_progress` and prints one line now and then, so nothing floods a log file.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning as L

from eilab.atomic import atomic_file

PROGRESS_FILE = "progress.json"


class ProgressFile(L.Callback):
    """Write ``{"epoch", "max_epochs", "elapsed_s", "batches", "batches_per_epoch"}`` to
    ``<dirpath>/progress.json`` per epoch; ``batches`` counts the ones this epoch trained (fewer
    than ``batches_per_epoch`` when a time limit stopped it)."""

    def __init__(self, dirpath: str) -> None:
        self.path = Path(dirpath) / PROGRESS_FILE
        self.start, self.first_epoch = time.perf_counter(), 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.perf_counter()
        self.first_epoch = trainer.current_epoch  # > 0 when resumed

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        state = {
            "epoch": trainer.current_epoch + 1,
            "first_epoch": self.first_epoch,
            "max_epochs": trainer.max_epochs,
            "elapsed_s": time.perf_counter() - self.start,
            "batches": trainer.fit_loop.epoch_loop.batch_progress.current.completed,
            "batches_per_epoch": trainer.num_training_batches,
        }
        with atomic_file(self.path) as file:
            file.write(json.dumps(state))


def read_progress(run_dir: Path) -> dict | None:
    """A run's last progress record, or None before its first epoch ends."""
    try:
        return json.loads((run_dir / PROGRESS_FILE).read_text())
    except (OSError, ValueError):
        return None


def progress_text(state: dict | None) -> str:
    """'epoch 12/100, ETA 7 min' from a progress record ('starting' before the first)."""
    if state is None:
        return "starting"
    if state["max_epochs"] < 0:  # bounded by steps or time, not epochs
        return f"epoch {state['epoch']}"
    done = state["epoch"] - state["first_epoch"]
    left = state["max_epochs"] - state["epoch"]
    eta = state["elapsed_s"] / max(done, 1) * left
    when = f"{eta / 60:.0f} min" if eta >= 90 else f"{eta:.0f} s"
    return f"epoch {state['epoch']}/{state['max_epochs']}, ETA {when}"
