"""The reconstruction function f = G ∘ A†: a network applied to the linear inverse."""

from __future__ import annotations

import torch
from torch import nn


class Reconstructor(nn.Module):
    """f(y) = G(A† y): A† lifts measurements to image space, G learns the rest."""

    def __init__(self, physics: nn.Module, network: nn.Module) -> None:
        super().__init__()
        self.physics = physics
        self.network = network

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.network(self.physics.A_dagger(y))
