"""Noise models: parameters checked, draws seeded, moments as documented, what SURE needs."""

import math

import pytest
import torch

from eilab.physics import (
    MRI,
    CompressedSensing,
    GaussianNoise,
    Inpainting,
    LinearPhysics,
    PoissonGaussianNoise,
    PoissonNoise,
    SignedOperatorError,
    TransmissionNoise,
)

MODELS = {
    "gaussian": lambda: GaussianNoise(sigma=0.1),
    "poisson": lambda: PoissonNoise(gain=0.05),
    "poisson_gaussian": lambda: PoissonGaussianNoise(gain=0.05, sigma=0.05),
    "transmission": lambda: TransmissionNoise(I0=1e4, mu=0.2),
}


def noiseless(n: int = 20000) -> torch.Tensor:
    """Noiseless measurements: one value per column, n draws (rows) of each."""
    return torch.tensor([0.5, 2.0, 8.0], dtype=torch.float64).expand(n, 3)


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (lambda: GaussianNoise(sigma=-0.1), "sigma"),
        (lambda: GaussianNoise(sigma=float("nan")), "sigma"),
        (lambda: PoissonNoise(gain=0), "gain"),
        (lambda: PoissonGaussianNoise(gain=-1, sigma=0.1), "gain"),
        (lambda: PoissonGaussianNoise(gain=1, sigma=-0.1), "sigma"),
        (lambda: TransmissionNoise(I0=0), "I0"),
        (lambda: TransmissionNoise(mu=-0.1), "mu"),
        (lambda: TransmissionNoise(sigma=-1), "sigma"),
        (lambda: TransmissionNoise(eps=0), "eps"),
        (lambda: TransmissionNoise(I0=float("inf")), "I0"),
        (lambda: TransmissionNoise.for_field_of_view(0), "img_size"),
    ],
)
def test_bad_parameters_are_refused_by_name(make, named):
    with pytest.raises(ValueError, match=named):
        make()


@pytest.mark.parametrize("name", MODELS)
def test_draws_are_seeded(name):
    noise, z = MODELS[name](), noiseless(100)
    first = noise(z, generator=torch.Generator().manual_seed(3))
    again = noise(z, generator=torch.Generator().manual_seed(3))
    other = noise(z, generator=torch.Generator().manual_seed(4))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


@pytest.mark.parametrize("name", MODELS)
def test_draws_have_the_variance_that_sure_is_told(name):
    noise, z = MODELS[name](), noiseless()
    y = noise(z, generator=torch.Generator().manual_seed(0))
    # variance(y) estimates each entry's noise variance from the noisy y itself.
    assert torch.allclose(noise.variance(y).mean(0), y.var(0), rtol=0.05)
    assert torch.allclose(y.mean(0), z[0], atol=4 * float(y.std(0).max()) / math.sqrt(len(y)))


def test_poisson_variance_grows_with_the_signal_and_the_gain():
    z = noiseless()
    for gain in (0.01, 0.1):
        y = PoissonNoise(gain)(z, generator=torch.Generator().manual_seed(1))
        assert torch.allclose(y.var(0), gain * z[0], rtol=0.05)


@pytest.mark.parametrize("name", MODELS)
def test_scaled_multiplies_every_variance(name):
    noise, z = MODELS[name](), noiseless(10)
    y = noise(z, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(noise.scaled(2.5).variance(y), 2.5 * noise.variance(y))


def test_only_poisson_gaussian_has_a_second_order_sure_term():
    assert PoissonGaussianNoise(gain=0.2, sigma=0.5).second_order_weight == pytest.approx(0.05)
    for name in ("gaussian", "poisson", "transmission"):
        assert MODELS[name]().second_order_weight == 0


@pytest.mark.parametrize("name", MODELS)
def test_gradient_passes_through_a_draw_as_through_additive_noise(name):
    z = noiseless(4).clone().requires_grad_(True)
    MODELS[name]()(z).sum().backward()
    assert torch.equal(z.grad, torch.ones_like(z))


def test_transmission_is_the_post_log_of_photon_counts():
    noise = TransmissionNoise(I0=1e3, mu=0.5, eps=1.0)
    z = torch.tensor([0.0, 2.0, 40.0], dtype=torch.float64)
    y = noise(z.expand(20000, 3), generator=torch.Generator().manual_seed(0))
    counts = noise.I0 * torch.exp(-noise.mu * y)
    assert torch.allclose(counts, counts.round(), atol=1e-6)  # whole photons
    # 40 optical depths: no photon arrives, and the floor eps caps y at log(I0 / eps) / mu.
    assert torch.allclose(y[:, 2], torch.tensor(math.log(1e3) / 0.5, dtype=torch.float64))
    # A line integral z transmits exp(-mu z) of I0: the mean count is I0 exp(-mu z).
    assert counts[:, 1].mean() == pytest.approx(1e3 * math.exp(-1.0), rel=0.01)


def test_transmission_electronic_noise_makes_counts_fractional():
    noise = TransmissionNoise(I0=1e3, mu=0.5, sigma=5.0)
    y = noise(torch.ones(1000, dtype=torch.float64), generator=torch.Generator().manual_seed(0))
    counts = noise.I0 * torch.exp(-noise.mu * y)
    assert (counts - counts.round()).abs().max() > 0.1


def test_transmission_field_of_view_keeps_the_optical_depth_at_every_size():
    small, large = (TransmissionNoise.for_field_of_view(n) for n in (48, 128))
    assert small.mu * 48 == pytest.approx(large.mu * 128)
    # A pixel of value 0.4 (water in the head CT window) attenuates 0.019 per mm.
    assert 0.4 * small.mu / (245 / 48) == pytest.approx(0.0192)


class _Signed(LinearPhysics):
    """An operator whose measurements of a nonnegative image can be negative."""

    signed = True

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return -x

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return -y


@pytest.mark.parametrize("name", ["poisson", "poisson_gaussian", "transmission"])
def test_photon_counting_noise_is_refused_on_a_signed_operator(name):
    with pytest.raises(SignedOperatorError, match="_Signed"):
        _Signed(noise=MODELS[name]())


def test_gaussian_noise_is_accepted_on_a_signed_operator_and_poisson_on_inpainting():
    assert isinstance(_Signed(noise=GaussianNoise(0.1)).noise, GaussianNoise)
    assert isinstance(Inpainting(8, noise=PoissonNoise(0.1)).noise, PoissonNoise)


@pytest.mark.parametrize(
    "make",
    [
        lambda noise: CompressedSensing((1, 8, 8), m=16, noise=noise),
        lambda noise: MRI(8, noise=noise),
    ],
    ids=["cs", "mri"],
)
@pytest.mark.parametrize("noise", ["poisson", "poisson_gaussian", "transmission"])
def test_signed_operators_refuse_photon_counting_noise_and_take_gaussian(make, noise):
    with pytest.raises(SignedOperatorError, match="signed measurements"):
        make(MODELS[noise]())
    make(MODELS["gaussian"]())
