"""The toy on which the unknown-noise SURE losses' levels are measured against closed forms.

Signals fill the first k of m coordinates (x_1..k ~ N(0, 1), the rest 0), measured by A = I
with the loss's own noise model, and reconstructed by a two-parameter shrinkage trained
jointly with the loss. UNSURE's level lands on m / Σ 1/(σ² + λ) and the residual estimate's
on Σ 1/(σ² + λ) / Σ 1/(σ² + λ)² (λ = 1 on the signal coordinates, 0 elsewhere): used by
tests/losses/test_sure.py and experiments/rei/unsure/unsure_bias.py.
"""

from __future__ import annotations

import torch
from torch import nn

BATCH = 64


class Denoising(nn.Module):
    """A = I."""

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Shrinkage(nn.Module):
    """f(y) = (a·y_1..k, b·y_k+1..m): the best f for signals on the first k coordinates."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k
        self.a = nn.Parameter(torch.tensor(1.0))
        self.b = nn.Parameter(torch.tensor(1.0))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.a * y[:, : self.k], self.b * y[:, self.k :]], dim=1)


def train_noise_level(loss: nn.Module, m: int, k: int, sigma: float, steps: int = 1000) -> list:
    """Train Shrinkage with ``loss`` (Adam 0.05; the loss's own parameters, if any, 0.01, so a
    learned level moves slower than the network) and return the estimated noise variance,
    ``loss.scale`` × σ², after each step."""
    generator = torch.Generator().manual_seed(0)
    network = Shrinkage(k)
    groups = [{"params": network.parameters()}, {"params": loss.parameters(), "lr": 0.01}]
    optimizer = torch.optim.Adam(groups, lr=0.05)
    estimates = []
    for _ in range(steps):
        x = torch.zeros(BATCH, m)
        x[:, :k] = torch.randn(BATCH, k, generator=generator)
        y = loss.noise(x, generator)
        value = loss(y, network(y), network, Denoising(), generator=generator)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        estimates.append(loss.scale * sigma**2)
    return estimates
