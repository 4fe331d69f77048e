"""MC: measurement consistency only — cannot learn the null space of A (Proposition 1)."""

from __future__ import annotations

import torch

from eilab.strategies.base import ReconstructionModule


class MC(ReconstructionModule):
    """loss = MSE(A f(y), y)."""

    def training_losses(self, y: torch.Tensor) -> dict[str, torch.Tensor]:
        mc = self.mc_loss(self(y), y, self.physics)
        return {"loss": mc, "loss_mc": mc}
