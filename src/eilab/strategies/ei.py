"""EI: measurement consistency plus equivariance, eq. (6) of the paper."""

from __future__ import annotations

import torch
from torch import nn

from eilab.groups.base import Group
from eilab.losses import EILoss
from eilab.strategies.base import ReconstructionModule


class EI(ReconstructionModule):
    """loss = MSE(A x1, y) + α·MSE(x3, x2), x1 = f(y), x2 = T_g x1, x3 = f(A x2)."""

    default_selection_metric = "val/cycle"

    def __init__(
        self,
        physics: nn.Module,
        network: nn.Module,
        group: Group,
        alpha: float = 1.0,
        n_trans: int = 1,
        **optim,
    ) -> None:
        super().__init__(physics, network, group=group, **optim)
        if alpha < 0:
            raise ValueError(f"{type(self).__name__}: alpha must be >= 0, got {alpha}")
        self.ei_loss = EILoss(group, n_trans)
        self.alpha = alpha

    def training_losses(self, y: torch.Tensor) -> dict[str, torch.Tensor]:
        x1 = self(y)
        mc = self.mc_loss(x1, y, self.physics)
        ei = self.ei_loss(x1, self.reconstructor, self.physics)
        return {"loss": mc + self.alpha * ei, "loss_mc": mc, "loss_ei": ei}
