"""Lightning callbacks that keep long runs trustworthy."""

from __future__ import annotations

import lightning as L
import torch


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
        checkpoint = getattr(trainer.checkpoint_callback, "last_model_path", "") or "none yet"
        raise NonFiniteLossError(
            f"{self.monitor} is {float(value)} in epoch {trainer.current_epoch}: training stopped. "
            f"Last good checkpoint: {checkpoint}. Try a lower optim.lr or equivariance.alpha."
        )
