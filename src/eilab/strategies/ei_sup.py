"""EI_sup: supervised loss regularised by the equivariance term."""

from __future__ import annotations

import torch

from eilab.losses import SupLoss
from eilab.strategies.ei import EI


class EISup(EI):
    """loss = MSE(x1, x) + α·MSE(x3, x2): EI with data consistency replaced by supervision."""

    uses_ground_truth = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sup_loss = SupLoss()

    def training_losses(self, y: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x1 = self(y)
        sup = self.sup_loss(x1, x)
        ei = self.ei_loss(x1, self.reconstructor, self.physics)
        return {"loss": sup + self.alpha * ei, "loss_sup": sup, "loss_ei": ei}
