"""Stein's unbiased risk estimate (SURE) of the measurement-domain error, without ground truth.

For y = noise(z), z = A x, and h(y) = A f(y) with m entries per measurement, the noise models
of ``eilab.physics.noise`` have variance v_i = γ·z_i + σ² (Gaussian: γ = 0; Poisson: σ = 0;
Poisson–Gaussian: both). Stein's lemma (Gaussian part) and Hudson's identity (Poisson part,
to first order in γ) give (Le Montagner et al., ICASSP 2014, eq. 8)

    E ‖h(y) − z‖² / m = E [ ‖h(y) − y‖² − Σ_i v_i(y) + 2 Σ_i v_i(y) ∂h_i/∂y_i
                            − 2γσ² Σ_i ∂²h_i/∂y_i² ] / m,

with v(y) = γ·y + σ² computed from the noisy y. The divergence terms are Monte-Carlo finite
differences: with b Rademacher (E bbᵀ = I), Σ_i v_i ∂h_i/∂y_i ≈ (v ⊙ b)ᵀ(h(y + τb) − h(y)) / τ
(Ramani et al., 2008); with c a two-point variable with E c = 0, E c² = E c³ = 1,
Σ_i ∂²h_i/∂y_i² ≈ cᵀ(h(y + τ₂c) + h(y − τ₂c) − 2h(y)) / τ₂².

τ: by default 1e-3 × the root-mean-square of each measurement (TAU_SCALE), so the probe scales
with the data whatever their units (line integrals of tens, pixels in [0, 1]); τ₂ = 10·τ, since
a second difference loses precision as 1/τ₂². Normalisation: by m, every entry of y, as MCLoss
(masked inpainting pixels included: there h = z = 0 and they add nothing to the expectation).
Keep the network in 32-bit precision: bf16 rounding would swamp the finite differences.

Transmission (post-log CT) noise is handled through its delta-method variance ``variance(y)``,
an approximation that improves with the photon count.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from eilab.physics.noise import NoiseModel

TAU_SCALE = 1e-3
SECOND_ORDER_TAU_FACTOR = 10.0
# Two-point probe with E c = 0, E c² = 1, E c³ = 1: -sqrt((1-p)/p) w.p. p, sqrt(p/(1-p)) else.
_P = 0.5 + 0.5 / math.sqrt(5.0)

Reconstruct = Callable[[torch.Tensor], torch.Tensor]


class MissingNoiseError(ValueError):
    """SURE needs the noise model of the measurements, and none was given."""


class UnsupportedNoiseError(TypeError):
    """The noise model does not tell SURE its variance (it is not an eilab NoiseModel)."""


def check_noise(noise: nn.Module | None, owner: str) -> NoiseModel:
    """Return ``noise`` if SURE can use it; otherwise a named error saying what to do."""
    if noise is None:
        raise MissingNoiseError(
            f"{owner} needs a noise model, but the physics has none (physics.noise is None): "
            "select one, e.g. noise=gaussian noise.sigma=0.05"
        )
    if not isinstance(noise, NoiseModel):
        raise UnsupportedNoiseError(
            f"{owner} cannot handle {type(noise).__name__}: it needs an eilab.physics.noise."
            "NoiseModel (GaussianNoise, PoissonNoise, PoissonGaussianNoise, TransmissionNoise)"
        )
    return noise


def check_tau(tau: float | None, owner: str) -> float | None:
    """``tau`` must be None (scale with the data) or a finite number > 0."""
    if tau is not None and not (math.isfinite(tau) and tau > 0):
        raise ValueError(f"{owner}: tau must be a finite number > 0 (or null), got {tau}")
    return tau


def probe_step(y: torch.Tensor, tau: float | None) -> torch.Tensor:
    """Per-measurement finite-difference step: ``tau``, or TAU_SCALE × RMS(y_i)."""
    shape = (len(y),) + (1,) * (y.dim() - 1)
    if tau is not None:
        return torch.full(shape, tau, device=y.device, dtype=y.dtype)
    rms = y.detach().flatten(1).pow(2).mean(1).sqrt().clamp_min(torch.finfo(y.dtype).eps)
    return (TAU_SCALE * rms).view(shape)


def _rademacher(y: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    bits = torch.randint(0, 2, y.shape, generator=generator, device=y.device)
    return bits.to(y.dtype) * 2 - 1


def _skewed(y: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    uniform = torch.rand(y.shape, generator=generator, device=y.device, dtype=y.dtype)
    low, high = -math.sqrt((1 - _P) / _P), math.sqrt(_P / (1 - _P))
    return torch.where(uniform < _P, low, high).to(y.dtype)


def weighted_divergence(
    y: torch.Tensor,
    h: torch.Tensor,
    weights: torch.Tensor,
    measure: Reconstruct,
    tau: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Monte-Carlo Σ_i w_i ∂h_i/∂y_i over the batch, h = ``measure``(y) given as ``h``."""
    b = _rademacher(y, generator)
    return (weights * b * (measure(y + tau * b) - h) / tau).sum()


def second_derivative(
    y: torch.Tensor,
    h: torch.Tensor,
    measure: Reconstruct,
    tau: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Monte-Carlo Σ_i ∂²h_i/∂y_i² over the batch, by a central second difference."""
    c = _skewed(y, generator)
    return (c * (measure(y + tau * c) + measure(y - tau * c) - 2 * h) / tau**2).sum()


class SURELoss(nn.Module):
    """SURE of (1/m)‖A f(y) − A x‖², averaged over the batch, for a known noise model.

    ``forward(y, x1, reconstruct, physics)`` takes x1 = reconstruct(y) already computed. Its
    expectation over the noise (and the probes) is the true measurement-domain error; it is
    differentiable in the network, so it trains f like the MC loss does in the noiseless case.
    With zero noise it is exactly MCLoss.
    """

    def __init__(self, noise: nn.Module | None, tau: float | None = None) -> None:
        super().__init__()
        self.noise = check_noise(noise, type(self).__name__)
        self.tau = check_tau(tau, type(self).__name__)

    def noise_estimate(self) -> NoiseModel:
        """The noise model SURE assumes (REQ re-applies it)."""
        return self.noise

    def forward(
        self,
        y: torch.Tensor,
        x1: torch.Tensor,
        reconstruct: Reconstruct,
        physics: nn.Module,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        terms = _FirstOrderTerms(y, x1, reconstruct, physics, self.noise, self.tau, generator)
        total = terms.residual - terms.variance + 2 * terms.divergence
        if self.noise.second_order_weight > 0:
            tau2 = SECOND_ORDER_TAU_FACTOR * terms.tau
            curvature = second_derivative(y, terms.h, terms.measure, tau2, generator)
            total = total - 2 * self.noise.second_order_weight * curvature
        return total / y.numel()


class _FirstOrderTerms:
    """The batch sums SURE is made of: ‖h − y‖², Σ v(y) and Σ v ∂h/∂y, with h = A f(y)."""

    def __init__(
        self,
        y: torch.Tensor,
        x1: torch.Tensor,
        reconstruct: Reconstruct,
        physics: nn.Module,
        noise: NoiseModel,
        tau: float | None,
        generator: torch.Generator | None,
    ) -> None:
        self.h = physics.A(x1)
        self.tau = probe_step(y, tau)
        self.measure = lambda y_: physics.A(reconstruct(y_))
        variance = noise.variance(y)
        self.residual = (self.h - y).pow(2).sum()
        self.variance = variance.sum()
        self.divergence = weighted_divergence(
            y, self.h, variance, self.measure, self.tau, generator
        )


class _Ascend(torch.autograd.Function):
    """Identity forward, negated gradient: a descent step on it is an ascent step."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return -grad


class UNSURELoss(SURELoss):
    """SURE with an unknown noise level (UNSURE, Tachella, Davies & Jacques, ICLR 2025).

    The noise variance is s × the given model's (``noise`` fixes the type and the first guess
    ``init_scale``). The network minimises and s maximises

        L(f, s) = (1/m)[‖h(y) − y‖² + 2 s Σ_i v_i(y) ∂h_i/∂y_i],

    so s is the Lagrange multiplier of the constraint E Σ_i v_i ∂h_i/∂y_i = 0 (zero expected
    weighted divergence): at a saddle point the divergence term vanishes on average, whatever
    the true level. s = exp(``log_scale``), a parameter whose gradient is negated (``_Ascend``),
    so one optimiser descends on f and ascends on s. The value returned adds the offset
    −(s/m) Σ v_i(y) with s detached (it moves neither f nor s): the SURE at the estimated
    level. The Poisson–Gaussian second-derivative term is left out: its weight γσ² grows as s²,
    which would tie the constraint to s itself.
    """

    def __init__(
        self, noise: nn.Module | None, init_scale: float = 1.0, tau: float | None = None
    ) -> None:
        super().__init__(noise, tau)
        if not (math.isfinite(init_scale) and init_scale > 0):
            raise ValueError(
                f"UNSURELoss: init_scale must be a finite number > 0, got {init_scale}"
            )
        self.log_scale = nn.Parameter(torch.tensor(math.log(init_scale)))

    @property
    def scale(self) -> float:
        """Current estimate of (noise variance) / (the given model's variance)."""
        return float(self.log_scale.detach().exp())

    def noise_estimate(self) -> NoiseModel:
        """The noise model at the current estimated level."""
        return self.noise.scaled(self.scale)

    def forward(
        self,
        y: torch.Tensor,
        x1: torch.Tensor,
        reconstruct: Reconstruct,
        physics: nn.Module,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        terms = _FirstOrderTerms(y, x1, reconstruct, physics, self.noise, self.tau, generator)
        scale = self.log_scale.exp().to(y.dtype)
        offset = scale.detach() * terms.variance
        total = terms.residual - offset + 2 * _Ascend.apply(scale) * terms.divergence
        return total / y.numel()
