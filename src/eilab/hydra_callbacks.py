"""Hydra callbacks of ``eilab-train`` (``hydra.callbacks`` in train.yaml)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

#: The folder hydra-submitit-launcher names before any job id exists (``submitit_folder``
#: ends in ``%j``): submitit creates it as such and leaves it empty.
SUBMITIT_PATTERN = Path(".submitit") / "%j"


class RemoveSubmititPattern(Callback):
    """Remove the empty ``<sweep dir>/.submitit/%j`` folder that ``hydra/launcher=local`` makes
    before submitting; each job of the sweep tries as it starts, so the folder goes even when a
    job fails. Slurm jobs leave it alone: a requeued job runs its batch script again, and Slurm
    runs must not depend on what a callback removed."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if os.environ.get("SUBMITIT_EXECUTOR") != "local":
            return
        pattern = Path(config.hydra.sweep.dir) / SUBMITIT_PATTERN
        if pattern.is_dir() and not pattern.is_symlink():
            with contextlib.suppress(OSError):  # not empty, or another job removed it first
                pattern.rmdir()
