"""Measurement noise models: y = noise(A x).

Every model draws with an optional ``torch.Generator`` (seeded simulation) and tells the SURE
losses what they need: ``variance(y)``, an estimate from the noisy measurement itself of each
entry's noise variance whose mean is the true variance, and ``second_order_weight``, the weight
of SURE's second-derivative term (non-zero only for Poisson–Gaussian noise). ``scaled(s)`` is
the same model with every variance multiplied by ``s``: the unknown-level SURE losses estimate
``s`` when the level is unknown.

A draw is differentiable as additive noise: when ``y`` requires grad, ``forward`` returns
``y + (draw - y).detach()``, so gradients reach ``y`` unchanged for every model (REQ re-applies
noise inside the loss); otherwise it returns the draw itself.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _check(owner: str, name: str, value: float, strictly_positive: bool) -> float:
    """``value`` as a float if finite and > 0 (or >= 0); otherwise a ValueError naming it."""
    value = float(value)
    ok = value > 0 if strictly_positive else value >= 0
    if not (ok and math.isfinite(value)):
        bound = "> 0" if strictly_positive else ">= 0"
        raise ValueError(f"{owner}: {name} must be a finite number {bound}, got {value}")
    return value


class NoiseModel(nn.Module):
    """A noise distribution for measurements y = noise(A x).

    ``requires_nonnegative``: the model counts photons, so the noiseless measurements must be
    nonnegative; a ``LinearPhysics`` whose operator is ``signed`` refuses it at construction.
    """

    requires_nonnegative: bool = False
    second_order_weight: float = 0.0

    def sample(self, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One noisy draw around the noiseless measurements ``y``."""
        raise NotImplementedError

    def variance(self, y: torch.Tensor) -> torch.Tensor:
        """Per-entry noise variance estimated from the noisy ``y`` (unbiased for its mean)."""
        raise NotImplementedError

    def scaled(self, scale: float) -> NoiseModel:
        """The same model with every noise variance multiplied by ``scale``."""
        raise NotImplementedError

    def forward(self, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw noise around ``y``; the gradient passes through as for additive noise."""
        draw = self.sample(y, generator)
        return y + (draw - y).detach() if y.requires_grad else draw


def _normal(y: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(y.shape, generator=generator, device=y.device, dtype=y.dtype)


class GaussianNoise(NoiseModel):
    """Additive white Gaussian noise, y = Ax + σ·n with n ~ N(0, I): variance σ²."""

    def __init__(self, sigma: float = 0.1) -> None:
        super().__init__()
        self.sigma = _check("GaussianNoise", "sigma", sigma, strictly_positive=False)

    def sample(self, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return y + self.sigma * _normal(y, generator)

    def variance(self, y: torch.Tensor) -> torch.Tensor:
        return torch.full_like(y, self.sigma**2)

    def scaled(self, scale: float) -> GaussianNoise:
        return GaussianNoise(self.sigma * math.sqrt(scale))


class PoissonNoise(NoiseModel):
    """Poisson (photon-counting) noise: y = γ·Poisson(Ax / γ), mean Ax and variance γ·Ax.

    A smaller ``gain`` γ means more photons per unit of signal, hence less noise. Negative
    inputs are clamped to zero, since a photon count cannot be negative.
    """

    requires_nonnegative = True

    def __init__(self, gain: float = 1.0) -> None:
        super().__init__()
        self.gain = _check("PoissonNoise", "gain", gain, strictly_positive=True)

    def sample(self, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        rate = (y / self.gain).clamp_min(0)
        return self.gain * torch.poisson(rate, generator=generator)

    def variance(self, y: torch.Tensor) -> torch.Tensor:
        return self.gain * y

    def scaled(self, scale: float) -> PoissonNoise:
        return PoissonNoise(self.gain * scale)


class PoissonGaussianNoise(NoiseModel):
    """y = γ·Poisson(Ax / γ) + σ·n: photon counts read out with Gaussian electronic noise.

    Variance γ·Ax + σ². SURE for it has a second-derivative term of weight γσ²
    (Le Montagner et al., ICASSP 2014), exposed as ``second_order_weight``.
    """

    requires_nonnegative = True

    def __init__(self, gain: float = 1.0, sigma: float = 0.1) -> None:
        super().__init__()
        self.gain = _check("PoissonGaussianNoise", "gain", gain, strictly_positive=True)
        self.sigma = _check("PoissonGaussianNoise", "sigma", sigma, strictly_positive=False)

    @property
    def second_order_weight(self) -> float:
        return self.gain * self.sigma**2

    def sample(self, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        rate = (y / self.gain).clamp_min(0)
        counts = torch.poisson(rate, generator=generator)
        return self.gain * counts + self.sigma * _normal(y, generator)

    def variance(self, y: torch.Tensor) -> torch.Tensor:
        return self.gain * y + self.sigma**2

    def scaled(self, scale: float) -> PoissonGaussianNoise:
        return PoissonGaussianNoise(self.gain * scale, self.sigma * math.sqrt(scale))


class TransmissionNoise(NoiseModel):
    """CT photon counts and the post-log sinogram that clinical pipelines hand to FBP.

    For a noiseless line integral z = (Ax)_i the detector counts c = Poisson(I0·exp(−μ·z)) +
    σ·n, n ~ N(0, 1), and the measurement is y = −log(max(c, ε) / I0) / μ, in the units of z.

    Units: eilab's CT gives un-normalised line integrals, z = Σ (pixel value) × (path length
    in pixels), so ``mu`` is the attenuation, per pixel length, of a pixel of value 1: μ·z is
    the optical depth (dimensionless) and exp(−μ·z) the transmitted fraction.
    :meth:`for_field_of_view` derives μ from a physical pixel size, so that the same object
    gives the same counts at any image size. ``I0`` is the unattenuated photon count per
    detector bin and view, ``sigma`` the electronic noise in photons, and ``eps`` (photons) the
    floor applied to the counts before the log: a detector that counts zero (or a negative
    value, with electronic noise) reads as ε, so y never exceeds log(I0 / ε) / μ.

    ``variance`` is the delta-method variance of y, (c + σ²) / (μ·c)², evaluated at the
    measured counts c = I0·exp(−μ·y): SURE with it is exact only as the counts grow (the
    post-log y is itself biased by about 1 / (2μ·c)). Measured on a 16² CT with 8 views, a
    fixed random network, 4 × 1024 draws: SURE's mean matched the true error within 0.1 % for
    median counts of 130 to 13000 per bin; at a median of 13 photons the mean of 1024 draws
    spread by 11 %, and at about 3 photons SURE overestimated the error by 15 to 30 %.
    """

    requires_nonnegative = True

    def __init__(
        self, I0: float = 1e4, mu: float = 0.25, sigma: float = 0.0, eps: float = 1.0
    ) -> None:
        super().__init__()
        self.I0 = _check("TransmissionNoise", "I0", I0, strictly_positive=True)
        self.mu = _check("TransmissionNoise", "mu", mu, strictly_positive=True)
        self.sigma = _check("TransmissionNoise", "sigma", sigma, strictly_positive=False)
        self.eps = _check("TransmissionNoise", "eps", eps, strictly_positive=True)

    @classmethod
    def for_field_of_view(
        cls,
        img_size: int,
        fov_mm: float = 245.0,
        mu_per_mm: float = 0.048,
        I0: float = 1e4,
        sigma: float = 0.0,
        eps: float = 1.0,
    ) -> TransmissionNoise:
        """μ = ``mu_per_mm`` × pixel size, for ``img_size`` pixels across ``fov_mm``.

        Defaults: the 245 mm field of view of eilab's head CT, whose [0, 1] window puts water
        (0.019 /mm at about 70 keV) at 0.4, so a pixel of value 1 attenuates 0.048 /mm. A head
        is then about 3.4 optical depths thick (3 % transmitted) at every image size.
        """
        _check("TransmissionNoise", "img_size", img_size, strictly_positive=True)
        _check("TransmissionNoise", "fov_mm", fov_mm, strictly_positive=True)
        return cls(I0, mu_per_mm * fov_mm / img_size, sigma, eps)

    def sample(self, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        expected = self.I0 * torch.exp(-self.mu * y)
        counts = torch.poisson(expected, generator=generator)
        if self.sigma > 0:
            counts = counts + self.sigma * _normal(y, generator)
        return -torch.log(counts.clamp_min(self.eps) / self.I0) / self.mu

    def variance(self, y: torch.Tensor) -> torch.Tensor:
        counts = self.I0 * torch.exp(-self.mu * y)
        return (counts + self.sigma**2) / (self.mu * counts) ** 2

    def scaled(self, scale: float) -> TransmissionNoise:
        return TransmissionNoise(self.I0 / scale, self.mu, self.sigma / math.sqrt(scale), self.eps)


class MaskedNoise(NoiseModel):
    """``noise`` on the entries where ``mask`` is 1, none where it is 0.

    A masked acquisition (inpainting's dropped pixels) records zeros where it measured nothing,
    as deepinv's inpainting does, rather than noise around zero. SURE and REQ see it through
    ``variance`` (zero on the dropped entries) and ``sample``. ``mask`` broadcasts against y.
    """

    def __init__(self, noise: NoiseModel, mask: torch.Tensor) -> None:
        super().__init__()
        self.noise = noise
        self.requires_nonnegative = noise.requires_nonnegative
        self.register_buffer("mask", mask.detach().clone(), persistent=False)

    @property
    def second_order_weight(self) -> float:
        return self.noise.second_order_weight

    def sample(self, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        kept = self.mask.to(y.dtype)
        return self.noise.sample(y, generator) * kept + y * (1 - kept)

    def variance(self, y: torch.Tensor) -> torch.Tensor:
        return self.noise.variance(y) * self.mask.to(y.dtype)

    def scaled(self, scale: float) -> MaskedNoise:
        return MaskedNoise(self.noise.scaled(scale), self.mask)
