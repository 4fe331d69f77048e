"""Measurement consistency: the reconstruction must explain its own measurements."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class MCLoss(nn.Module):
    """MSE(A x1, y) for a reconstruction x1 (B, C, H, W) of measurements y (any shape)."""

    def forward(self, x1: torch.Tensor, y: torch.Tensor, physics: nn.Module) -> torch.Tensor:
        return F.mse_loss(physics.A(x1), y)
