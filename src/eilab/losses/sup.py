"""Supervised loss: needs ground truth, so only Sup and EI_sup use it."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class SupLoss(nn.Module):
    """MSE(x1, x) between a reconstruction and the ground truth, both (B, C, H, W)."""

    def forward(self, x1: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(x1, x)
