"""SURE: unbiased for the measurement-domain error, biased with a wrong noise level; the
unknown-level variants (UNSURE, the residual estimate) and where their levels land."""

import pytest
import torch
from sure_problems import PROBLEMS, SIZE, FixedNetwork, phantom
from torch import nn

from eilab.losses import (
    MCLoss,
    MissingNoiseError,
    SURELoss,
    UnknownNoiseSURELoss,
    UnsupportedNoiseError,
    UNSURELoss,
)
from eilab.losses.sure import probe_step
from eilab.noise_level_toy import Denoising, train_noise_level
from eilab.physics import (
    GaussianNoise,
    Inpainting,
    PoissonGaussianNoise,
    PoissonNoise,
    TransmissionNoise,
)

DRAWS = 512  # the relative error of the mean then has a spread of about 0.5 %

# Noise levels of the order of the signal's fluctuations (inpainting pixels in [0, 1]; CT line
# integrals of a few units). Transmission at I0 = 1e4: at least 300 photons per detector bin.
CASES = [
    ("inpainting", GaussianNoise(0.1)),
    ("inpainting", PoissonNoise(0.05)),
    ("inpainting", PoissonGaussianNoise(0.05, 0.05)),
    ("ct", GaussianNoise(0.5)),
    ("ct", PoissonNoise(0.2)),
    ("ct", PoissonGaussianNoise(0.2, 0.3)),
    ("ct", TransmissionNoise.for_field_of_view(SIZE, I0=1e4)),
]


def sure_and_truth(problem: str, noise, assumed=None, seed: int = 0) -> tuple[float, float]:
    """Mean SURE over DRAWS noisy measurements of one image, and the mean true error."""
    physics, x = PROBLEMS[problem]()
    network = FixedNetwork(seed)
    reconstruct = lambda y: network(physics.A_dagger(y))  # noqa: E731
    generator = torch.Generator().manual_seed(seed)
    z = physics.A(x.expand(DRAWS, -1, -1, -1))
    y = noise(z, generator=generator)
    x1 = reconstruct(y)
    truth = (physics.A(x1) - z).pow(2).sum() / y.numel()  # (1/m)‖A f(y) − A x‖², averaged
    sure = SURELoss(assumed or noise)(y, x1, reconstruct, physics, generator=generator)
    return float(sure), float(truth)


@pytest.mark.parametrize(
    ("problem", "noise"), CASES, ids=[f"{p}-{type(n).__name__}" for p, n in CASES]
)
def test_sure_is_unbiased_for_the_measurement_domain_error(problem, noise):
    sure, truth = sure_and_truth(problem, noise)
    assert sure == pytest.approx(truth, rel=0.02)


def test_sure_with_a_wrong_sigma_is_biased():
    # Measured: σ twice too large gives 1.97x the true error, half as large 0.75x (inpainting).
    sure, truth = sure_and_truth("inpainting", GaussianNoise(0.1), assumed=GaussianNoise(0.2))
    assert sure > 1.5 * truth
    sure, truth = sure_and_truth("inpainting", GaussianNoise(0.1), assumed=GaussianNoise(0.05))
    assert sure < 0.85 * truth


def test_the_mc_loss_is_not_the_error_on_noisy_data():
    # SURE assuming no noise is the MC loss: f reproduces part of the noise and MC rewards it.
    sure, truth = sure_and_truth("ct", GaussianNoise(0.5), assumed=GaussianNoise(0.0))
    assert sure < 0.85 * truth


def test_sure_with_zero_noise_is_the_mc_loss():
    physics, x = PROBLEMS["inpainting"]()
    network = FixedNetwork()
    y = physics.A(x.expand(4, -1, -1, -1))
    x1 = network(physics.A_dagger(y))
    sure = SURELoss(GaussianNoise(0.0))(y, x1, lambda y_: network(physics.A_dagger(y_)), physics)
    assert torch.allclose(sure, MCLoss()(x1, y, physics))


def test_sure_trains_the_network():
    physics, x = PROBLEMS["inpainting"]()
    network = FixedNetwork().requires_grad_(True)
    y = GaussianNoise(0.1)(physics.A(x), generator=torch.Generator().manual_seed(0))
    reconstruct = lambda y_: network(physics.A_dagger(y_))  # noqa: E731
    SURELoss(GaussianNoise(0.1))(y, reconstruct(y), reconstruct, physics).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in network.parameters())


def test_default_tau_scales_with_the_measurements():
    y = torch.rand(3, 1, 4, 4)
    assert torch.allclose(probe_step(10 * y, None), 10 * probe_step(y, None))
    assert torch.allclose(probe_step(y, 0.5), torch.full((3, 1, 1, 1), 0.5))


@pytest.mark.parametrize("loss", [SURELoss, UNSURELoss, UnknownNoiseSURELoss])
def test_bad_sure_inputs_are_named_errors(loss):
    with pytest.raises(MissingNoiseError, match="noise=gaussian"):
        loss(None)
    with pytest.raises(UnsupportedNoiseError, match="Identity"):
        loss(nn.Identity())
    for tau in (0.0, -1e-3, float("nan")):
        with pytest.raises(ValueError, match="tau"):
            loss(GaussianNoise(0.1), tau=tau)


@pytest.mark.parametrize("loss", [UNSURELoss, UnknownNoiseSURELoss])
def test_an_unknown_level_refuses_a_nonpositive_first_guess(loss):
    with pytest.raises(ValueError, match="init_scale"):
        loss(GaussianNoise(0.1), init_scale=0.0)


def test_the_estimated_level_refuses_a_bad_momentum_or_power():
    with pytest.raises(ValueError, match="momentum"):
        UnknownNoiseSURELoss(GaussianNoise(0.1), momentum=1.0)
    with pytest.raises(ValueError, match="power"):
        UnknownNoiseSURELoss(GaussianNoise(0.1), power=0)


@pytest.mark.parametrize("init_scale", [4.0, 0.25])
def test_unsure_learns_the_noise_level_by_ascent(init_scale):
    # Signals on the first k of m coordinates, x_1..k ~ N(0, 1), with Gaussian noise σ. For
    # this f the UNSURE saddle point is 1 − a = s/(σ² + 1), 1 − b = s/σ² and
    # k·a + (m − k)·b = 0, so the estimated variance is s* = m / (k/(σ² + 1) + (m − k)/σ²),
    # which tends to σ² as k/m → 0 (here 1.6 % above it).
    m, k, sigma = 64, 1, 0.1
    loss = UNSURELoss(GaussianNoise(sigma), init_scale=init_scale)
    # The multiplier moves slower than the network (a smaller Adam step): no cycling.
    estimates = train_noise_level(loss, m, k, sigma)
    s_star = m / (k / (sigma**2 + 1) + (m - k) / sigma**2)
    assert sum(estimates[500:]) / 500 == pytest.approx(s_star, rel=0.02)
    assert estimates[-1] == pytest.approx(s_star, rel=0.05)
    assert loss.noise_estimate().sigma ** 2 == pytest.approx(estimates[-1])


@pytest.mark.parametrize("noise", [GaussianNoise(0.1), PoissonGaussianNoise(0.05, 0.05)])
def test_sure_is_unbiased_when_dropped_pixels_hold_zeros(noise):
    """Inpainting with noise on the kept pixels only (noise_on_dropped=false): the physics'
    MaskedNoise tells SURE that the dropped pixels carry no variance."""
    physics = Inpainting(SIZE, drop_rate=0.3, noise=noise, noise_on_dropped=False)
    x, network = phantom(1.0), FixedNetwork(0)
    reconstruct = lambda y: network(physics.A_dagger(y))  # noqa: E731
    generator = torch.Generator().manual_seed(0)
    z = physics.A(x.expand(DRAWS, -1, -1, -1))
    y = physics.noise(z, generator=generator)
    assert torch.all(y[:, :, physics.mask[0, 0] == 0] == 0)
    x1 = reconstruct(y)
    truth = float((physics.A(x1) - z).pow(2).sum() / y.numel())
    sure = float(SURELoss(physics.noise)(y, x1, reconstruct, physics, generator=generator))
    assert sure == pytest.approx(truth, rel=0.02)
    unmasked = float(SURELoss(noise)(y, x1, reconstruct, physics, generator=generator))
    assert unmasked != pytest.approx(truth, rel=0.02)  # it subtracts variance that is not there


@pytest.mark.parametrize(("init_scale", "power"), [(4.0, 1), (0.25, 1), (4.0, 2)])
def test_the_estimated_level_converges_where_the_signal_fills_half_the_space(init_scale, power):
    # k = m/2: UNSURE's saddle point is m / (k/(σ² + 1) + (m − k)/σ²) = 1.98σ² (see above);
    # the residual over its degrees of freedom is Σ 1/(σ² + λ) / Σ 1/(σ² + λ)² = 1.010σ².
    m, k, sigma = 64, 32, 0.1
    loss = UnknownNoiseSURELoss(GaussianNoise(sigma), init_scale=init_scale, power=power)
    estimates = train_noise_level(loss, m, k, sigma)
    assert sum(estimates[500:]) / 500 == pytest.approx(sigma**2, rel=0.1)
    assert estimates[-1] == pytest.approx(sigma**2, rel=0.1)
    assert loss.noise_estimate().sigma ** 2 == pytest.approx(estimates[-1])


def test_unsure_overestimates_where_the_signal_fills_half_the_space():
    m, k, sigma = 64, 32, 0.1
    estimates = train_noise_level(UNSURELoss(GaussianNoise(sigma), init_scale=4.0), m, k, sigma)
    s_star = m / (k / (sigma**2 + 1) + (m - k) / sigma**2)
    assert s_star > 1.9 * sigma**2
    assert sum(estimates[500:]) / 500 == pytest.approx(s_star, rel=0.05)


def test_the_estimate_moves_only_in_training_mode():
    loss = UnknownNoiseSURELoss(GaussianNoise(0.1), init_scale=4.0).eval()
    y = torch.randn(8, 16)
    loss(y, 0.5 * y, lambda y_: 0.5 * y_, Denoising())
    assert loss.scale == 4.0
    loss.train()(y, 0.5 * y, lambda y_: 0.5 * y_, Denoising())
    assert loss.scale != 4.0
