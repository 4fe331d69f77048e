"""Sup: supervised training on (x, y) pairs — the upper bound the others are measured by."""

from __future__ import annotations

import torch

from eilab.losses import SupLoss
from eilab.strategies.base import ReconstructionModule


class Sup(ReconstructionModule):
    """loss = MSE(f(y), x). Needs ground truth (FBPConvNet for CT)."""

    uses_ground_truth = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sup_loss = SupLoss()

    def training_losses(self, y: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        sup = self.sup_loss(self(y), x)
        return {"loss": sup, "loss_sup": sup}
