"""Least-squares adversarial losses of eq. (7): x1 = f(y) is "real", x2 = T_g x1 is "fake"."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _mse_to(scores: torch.Tensor, target: float) -> torch.Tensor:
    return F.mse_loss(scores, torch.full_like(scores, target))


class AdversarialLoss(nn.Module):
    """LSGAN losses: the generator wants D(x2) = 1; the discriminator wants D(x1)=1, D(x2)=0.

    If the reconstructed set is invariant, transformed reconstructions x2 are distributed like
    the reconstructions x1 themselves, and the discriminator cannot tell them apart.
    """

    def __init__(self, discriminator: nn.Module) -> None:
        super().__init__()
        self.discriminator = discriminator

    def generator_loss(self, x2: torch.Tensor) -> torch.Tensor:
        return _mse_to(self.discriminator(x2), 1.0)

    def discriminator_loss(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        real = _mse_to(self.discriminator(x1.detach()), 1.0)
        fake = _mse_to(self.discriminator(x2.detach()), 0.0)
        return 0.5 * (real + fake)
