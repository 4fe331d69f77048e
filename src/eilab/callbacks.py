"""Lightning callbacks that keep long runs trustworthy."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from skimage.io import imsave

from eilab.confine import inside
from eilab.rundir import IDENTITY_KEY

#: The ModelCheckpoint state fields holding one checkpoint path each ("" when none).
PATH_FIELDS = ("best_model_path", "kth_best_model_path", "last_model_path")
log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class StopOnNonFiniteLoss(L.Callback):
    """Stop with a clear message when an epoch's training loss is NaN or infinite.

    It checks once per epoch (one device sync), at the end of the training epoch, before that
    epoch's validation and checkpoint: the last checkpoint on disk stays the last good one.
    """

    def __init__(self, monitor: str = "train/loss") -> None:
        self.monitor = monitor

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if value is None or bool(torch.isfinite(value)):
            return
        raise NonFiniteLossError(
            f"{self.monitor} is {float(value)} in epoch {trainer.current_epoch}: training stopped. "
            f"Last good checkpoint: {latest_checkpoint(trainer)}. "
            "Try a lower optim.lr or equivariance.alpha."
        )


def latest_checkpoint(trainer: L.Trainer) -> str:
    """The checkpoint to resume from: the last one, else the best one, else "none yet"."""
    files = checkpoint_files(trainer)
    return files.get("last") or files.get("best") or "none yet"


def checkpoint_files(trainer: L.Trainer) -> dict[str, str]:
    """The run's checkpoint files on disk by role: "last" from an unmonitored ModelCheckpoint
    (it saves every epoch), "best" from a monitored one."""
    files: dict[str, str] = {}
    for callback in trainer.checkpoint_callbacks:
        if callback.monitor is None:
            role, path = "last", callback.last_model_path or callback.best_model_path
        else:
            role, path = "best", callback.best_model_path
        if path and Path(path).is_file():
            files.setdefault(role, path)
    return files


class StampIdentity(L.Callback):
    """Store the run's identity (eilab.rundir.identity) in every checkpoint, so a resumption
    with another strategy, physics, size, model or data is refused before it trains."""

    def __init__(self, identity: dict) -> None:
        self.identity = identity

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict
    ) -> None:
        checkpoint[IDENTITY_KEY] = self.identity


class ConfineCheckpointState(L.Callback):
    """Before Lightning restores a resumed checkpoint's ModelCheckpoint states, drop (with a
    warning) every path in them outside that callback's directory: Lightning later deletes
    the old best or last checkpoint, recursively, after checking it lies inside ``dirpath``
    without resolving ``..``, so a crafted state could delete any folder."""

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict
    ) -> None:
        states = checkpoint.get("callbacks") or {}
        for callback in trainer.checkpoint_callbacks:
            for key in (callback.state_key, callback._legacy_state_key):
                if isinstance(states.get(key), dict):
                    dropped = confine_state(states[key], callback.dirpath)
                    if dropped:
                        log.warning(
                            "ignoring checkpoint callback state outside %s: %s",
                            callback.dirpath,
                            "; ".join(dropped),
                        )


def confine_state(state: dict[str, Any], dirpath: str) -> list[str]:
    """Reset the paths of a ModelCheckpoint ``state`` outside ``dirpath``; name those reset.

    The state's own ``dirpath`` is left: Lightning only compares it with the callback's.
    """

    def outside(path: object) -> bool:
        return not isinstance(path, str) or (path != "" and not inside(path, dirpath))

    dropped = []
    for field in PATH_FIELDS:
        if outside(state.get(field, "")):
            dropped.append(f"{field}={state[field]!r}")
            state[field] = ""
    models = state.get("best_k_models", {})
    if not isinstance(models, dict):
        dropped.append(f"best_k_models={models!r}")
        models = {}
    dropped += [f"best_k_models[{path!r}]" for path in models if outside(path)]
    state["best_k_models"] = {path: v for path, v in models.items() if not outside(path)}
    return dropped


class EpochTimer(L.Callback):
    """Log each training epoch's wall time as ``train/epoch_time_s`` (validation excluded)."""

    def __init__(self) -> None:
        self.start = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pl_module.log("train/epoch_time_s", time.perf_counter() - self.start, on_epoch=True)


class LogReconstructions(L.Callback):
    """Every ``every_n_epochs``, save a grid (ground truth | A†y | f(y)) of validation images.

    The grid goes to ``<dirpath>/epoch_XXXX.png`` and to TensorBoard / wandb when they log.
    """

    def __init__(self, dirpath: str, every_n_epochs: int = 10, n_images: int = 4) -> None:
        self.dirpath, self.every_n_epochs, self.n_images = Path(dirpath), every_n_epochs, n_images

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        if trainer.sanity_checking or not trainer.is_global_zero or epoch % self.every_n_epochs:
            return
        batch = next(iter(trainer.datamodule.val_dataloader()[0]))  # [1]: training pairs
        y = batch["y"][: self.n_images].to(pl_module.device)
        with torch.no_grad():
            x_dagger = pl_module.physics.A_dagger(y)
            x_hat = pl_module.reconstructor.network(x_dagger)
        grid = image_grid([batch["x"][: self.n_images], x_dagger.cpu(), x_hat.cpu()])
        self.dirpath.mkdir(parents=True, exist_ok=True)
        imsave(self.dirpath / f"epoch_{epoch:04d}.png", grid, check_contrast=False)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image("val/reconstructions", grid, epoch, dataformats="HWC")
            elif isinstance(logger, WandbLogger):
                logger.log_image("val/reconstructions", [grid], step=trainer.global_step)


def image_grid(rows: list[torch.Tensor]) -> np.ndarray:
    """Rows of (N, C, H, W) images in [0, 1] -> one uint8 (rows·H, N·W, 3) array."""

    def to_rgb(images: torch.Tensor) -> torch.Tensor:
        images = images[:, :3] if images.shape[1] >= 3 else images[:, :1].expand(-1, 3, -1, -1)
        return torch.cat(list(images.clamp(0, 1)), dim=-1)

    grid = torch.cat([to_rgb(r.float()) for r in rows], dim=-2)
    return (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
