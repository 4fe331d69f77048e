"""A callback that corrupts the network's weights with NaN at the start of an epoch."""

import lightning as L
import torch


class PoisonWeights(L.Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            with torch.no_grad():
                next(pl_module.reconstructor.parameters()).fill_(float("nan"))
