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


def _rms(w: torch.Tensor) -> torch.Tensor:
    """Root-mean-square of each measurement of the batch, broadcastable against it."""
    shape = (len(w),) + (1,) * (w.dim() - 1)
    rms = w.flatten(1).pow(2).mean(1).sqrt().clamp_min(torch.finfo(w.dtype).eps)
    return rms.view(shape)


def probe_step(y: torch.Tensor, tau: float | None) -> torch.Tensor:
    """Per-measurement finite-difference step: ``tau``, or TAU_SCALE × RMS(y_i)."""
    if tau is not None:
        shape = (len(y),) + (1,) * (y.dim() - 1)
        return torch.full(shape, tau, device=y.device, dtype=y.dtype)
    return TAU_SCALE * _rms(y.detach())


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
        noise = self.noise_estimate()
        terms = _FirstOrderTerms(y, x1, reconstruct, physics, noise, self.tau, generator)
        total = terms.residual - terms.variance + 2 * terms.divergence
        if noise.second_order_weight > 0:
            tau2 = SECOND_ORDER_TAU_FACTOR * terms.tau
            curvature = second_derivative(y, terms.h, terms.measure, tau2, generator)
            total = total - 2 * noise.second_order_weight * curvature
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

    The saddle point's level is not the noise level unless the signal fills a vanishing share
    of the measurement space (it is a harmonic mean, see :class:`UnknownNoiseSURELoss`, which
    REI uses): measured 2.25× the true variance on the CS task at σ = 0.2, 1.76× on CT.
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


def residual_map(
    y: torch.Tensor, h: torch.Tensor, measure: Reconstruct, tau: torch.Tensor, w: torch.Tensor
) -> torch.Tensor:
    """(I − J)w, J = ∂h/∂y at y, by a finite difference along w scaled to unit RMS (so the
    step ``tau`` keeps its meaning, see probe_step)."""
    scale = _rms(w)
    return w - scale * (measure(y + tau * w / scale) - h) / tau


def residual_level_terms(
    y: torch.Tensor,
    h: torch.Tensor,
    variance: torch.Tensor,
    measure: Reconstruct,
    tau: torch.Tensor,
    power: int = 1,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """‖(I − J)^(q−1)(y − h)‖² and a Monte-Carlo ‖(I − J)^q V^{1/2} b‖² over the batch.

    q = ``power``, V = diag(``variance``), b Rademacher. For a linear h = Jy that keeps the
    signal, (I − J)^(q−1)(y − h) = (I − J)^q n holds only noise, whose expected squared norm
    is the noise level times the second term: their ratio estimates the level.
    """
    freedom = variance.clamp_min(0).sqrt() * _rademacher(y, generator)
    residual = y - h
    for _ in range(power - 1):
        residual = residual_map(y, h, measure, tau, residual)
    for _ in range(power):
        freedom = residual_map(y, h, measure, tau, freedom)
    return residual.pow(2).sum(), freedom.pow(2).sum()


class UnknownNoiseSURELoss(SURELoss):
    """SURE at a noise level estimated from the measurements and the network being trained.

    The noise variance is s × the given model's v(y) (``noise`` fixes the type and the first
    guess ``init_scale``). The level is the residual variance per residual degree of freedom,

        s = ‖(I − J)^(q−1)(y − h(y))‖² / E_b ‖(I − J)^q V^{1/2} b‖²,
        h = A f,  J = ∂h/∂y,  V = diag v(y),  q = ``power``,

    for q = 1 the classical noise estimate of a linear smoother (residual sum of squares over
    tr((I − H)V(I − H)ᵀ)), read with the network's Jacobian. It is exact when h keeps the
    signal, ‖(I − J)A x‖ ≪ the noise, whatever the share of the measurement space the signal
    fills: the SURE-trained network passes the well-measured directions and removes the noise
    in the others, and the trace counts the noise left in the residual. Signal that the network
    fails to keep is counted as noise, so an imperfect network overestimates; a higher q weighs
    the directions the network removes outright (noise) above those it only shrinks (where the
    lost signal is), at the cost of 2q − 1 extra forward passes per training step instead of 1.

    Why not UNSURE's saddle point (:class:`UNSURELoss`): its level solves E Σ_i v_i ∂h_i/∂y_i
    = 0, which for signal variances λ_j along the directions of y gives the harmonic mean
    s = m / Σ_j 1/(σ² + λ_j) ≥ σ², i.e. σ² / (1 − k/m) when a signal fills k of the m
    directions well above the noise (2σ² at k = m/2), where q = 1 gives Σ 1/(σ² + λ) /
    Σ 1/(σ² + λ)²: 1.01σ² at k = m/2 and σ = 0.1λ^½. Measured values on the toy and on the
    study's tasks, including where neither reaches the true level: experiments/rei/unsure/.

    The estimate is a statistic, not a trained parameter: each training batch (the module in
    training mode) updates, without gradient, running means with ``momentum`` of the two
    terms, both per unit of Σ v(y); s is their ratio. They start at the first guess with one
    batch's worth of full residual freedom (ratio ``init_scale``, freedom 1), which the data
    outweigh once the network removes noise: a network that passes y unchanged (h = y, as at
    initialisation) has no residual freedom and moves nothing. The value returned is SURE at
    the current s; the running means are buffers, so checkpoints keep the estimate.
    """

    def __init__(
        self,
        noise: nn.Module | None,
        init_scale: float = 1.0,
        tau: float | None = None,
        momentum: float = 0.99,
        power: int = 1,
    ) -> None:
        super().__init__(noise, tau)
        if not (math.isfinite(init_scale) and init_scale > 0):
            raise ValueError(
                f"{type(self).__name__}: init_scale must be a finite number > 0, got {init_scale}"
            )
        if not 0 <= momentum < 1:
            raise ValueError(f"{type(self).__name__}: momentum must be in [0, 1), got {momentum}")
        if power < 1:
            raise ValueError(f"{type(self).__name__}: power must be an int >= 1, got {power}")
        self.momentum, self.power = momentum, power
        self.register_buffer("residual_mean", torch.tensor(float(init_scale), dtype=torch.float64))
        self.register_buffer("freedom_mean", torch.tensor(1.0, dtype=torch.float64))

    @property
    def scale(self) -> float:
        """Current estimate of (noise variance) / (the given model's variance)."""
        return float(self.residual_mean / self.freedom_mean.clamp_min(1e-12))

    def noise_estimate(self) -> NoiseModel:
        """The noise model at the current estimated level."""
        return self.noise.scaled(self.scale)

    @torch.no_grad()
    def update(
        self,
        y: torch.Tensor,
        x1: torch.Tensor,
        reconstruct: Reconstruct,
        physics: nn.Module,
        generator: torch.Generator | None = None,
    ) -> None:
        """Fold one batch's residual and residual degrees of freedom into the running means."""
        variance = self.noise.variance(y)
        total = variance.sum()
        if total <= 0:
            return
        h = physics.A(x1.detach())
        measure = lambda y_: physics.A(reconstruct(y_))  # noqa: E731
        tau = probe_step(y, self.tau)
        residual, freedom = residual_level_terms(
            y, h, variance, measure, tau, self.power, generator
        )
        for mean, value in ((self.residual_mean, residual), (self.freedom_mean, freedom)):
            mean.mul_(self.momentum).add_((1 - self.momentum) * (value / total).to(mean.dtype))

    def forward(
        self,
        y: torch.Tensor,
        x1: torch.Tensor,
        reconstruct: Reconstruct,
        physics: nn.Module,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        if self.training:
            self.update(y, x1, reconstruct, physics, generator)
        return super().forward(y, x1, reconstruct, physics, generator)
