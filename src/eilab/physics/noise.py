"""Measurement noise models: y = noise(A x)."""

from __future__ import annotations

import torch
from torch import nn


class GaussianNoise(nn.Module):
    """Additive white Gaussian noise with standard deviation ``sigma``."""

    def __init__(self, sigma: float = 0.1) -> None:
        super().__init__()
        if sigma < 0:
            raise ValueError(f"GaussianNoise: sigma must be >= 0, got {sigma}")
        self.sigma = float(sigma)

    def forward(self, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(y.shape, generator=generator, device=y.device, dtype=y.dtype)
        return y + self.sigma * noise


class PoissonNoise(nn.Module):
    """Poisson (photon-counting) noise: y = gain * Poisson(Ax / gain).

    A smaller ``gain`` means more photons per unit of signal, hence less noise. Negative
    inputs are clamped to zero, since a photon count cannot be negative.
    """

    def __init__(self, gain: float = 1.0) -> None:
        super().__init__()
        if gain <= 0:
            raise ValueError(f"PoissonNoise: gain must be > 0, got {gain}")
        self.gain = float(gain)

    def forward(self, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        rate = (y / self.gain).clamp_min(0)
        return self.gain * torch.poisson(rate, generator=generator)
