"""Cycle SURE: unbiased for the cycle reconstruction's measurement-domain error, and moved by
what f puts in the null space of A, which SURE of f(y) does not see."""

import pytest
import torch
from sure_problems import PROBLEMS, SIZE, FixedNetwork

from eilab.groups import Rotate, Shift
from eilab.losses import CycleSURE, SURELoss
from eilab.physics import GaussianNoise, MaskedNoise, PoissonNoise, TransmissionNoise

DRAWS = 512
GROUPS = {"inpainting": Shift, "ct": Rotate}
CASES = [
    ("inpainting", GaussianNoise(0.1)),
    ("inpainting", PoissonNoise(0.05)),
    ("ct", GaussianNoise(0.5)),
    ("ct", TransmissionNoise.for_field_of_view(SIZE, I0=1e4)),
]


def reconstructor(physics, network):
    return lambda y: network(physics.A_dagger(y))


@pytest.mark.parametrize(
    ("problem", "noise"), CASES, ids=[f"{p}-{type(n).__name__}" for p, n in CASES]
)
def test_cycle_sure_is_unbiased_for_the_cycle_reconstructions_error(problem, noise):
    physics, x = PROBLEMS[problem]()
    reconstruct = reconstructor(physics, FixedNetwork())
    cycle = CycleSURE(GROUPS[problem]())
    z = physics.A(x.expand(DRAWS, -1, -1, -1))
    y = noise(z, generator=torch.Generator().manual_seed(0))
    x1 = reconstruct(y)
    estimate = cycle(y, x1, reconstruct, physics, SURELoss(noise), torch.Generator().manual_seed(1))
    params, normal = cycle.draws(x1, y, torch.Generator().manual_seed(1))
    x_cycle = cycle.cycle(reconstruct, physics, params, normal, noise)(x1)
    truth = (physics.A(x_cycle) - z).pow(2).sum() / y.numel()
    assert float(estimate) == pytest.approx(float(truth), rel=0.03)


def test_cycle_sure_sees_the_null_space_and_sure_does_not():
    """Two reconstructors agree on the measured pixels: one leaves the dropped ones at zero,
    the other fills them with the truth. They explain y equally well (same SURE); the cycle
    moves dropped pixels onto measured ones and back, so its SURE prefers the second."""
    physics, x = PROBLEMS["inpainting"]()
    noise = MaskedNoise(GaussianNoise(0.1), physics.mask)
    y = noise(physics.A(x.expand(8, -1, -1, -1)), generator=torch.Generator().manual_seed(0))
    fitted, blind = reconstructor(physics, FixedNetwork()), 1 - physics.mask
    zeros = lambda y_: fitted(y_) * physics.mask  # noqa: E731
    truth = lambda y_: zeros(y_) + x * blind  # noqa: E731
    sure, cycle = SURELoss(noise), CycleSURE(Shift(), n_trans=4)
    scores = {}
    for name, reconstruct in (("zeros", zeros), ("truth", truth)):
        seeded = torch.Generator().manual_seed(2)
        scores[name] = (
            float(sure(y, reconstruct(y), reconstruct, physics, torch.Generator().manual_seed(2))),
            float(cycle(y, reconstruct(y), reconstruct, physics, sure, seeded)),
        )
    assert scores["truth"][0] == pytest.approx(scores["zeros"][0], rel=1e-4)
    assert scores["truth"][1] < 0.75 * scores["zeros"][1]  # measured: 0.63×


def test_without_noise_cycle_sure_is_the_cycles_mc_loss():
    physics, x = PROBLEMS["ct"]()
    reconstruct = reconstructor(physics, FixedNetwork())
    cycle = CycleSURE(Rotate(), n_trans=2)
    y = physics.A(x.expand(3, -1, -1, -1))
    x1, zero_noise = reconstruct(y), SURELoss(GaussianNoise(0.0))
    mc = cycle(y, x1, reconstruct, physics, None, torch.Generator().manual_seed(0))
    sure = cycle(y, x1, reconstruct, physics, zero_noise, torch.Generator().manual_seed(0))
    assert torch.allclose(sure, mc)


def test_cycle_sure_refuses_no_group_elements():
    with pytest.raises(ValueError, match="n_trans"):
        CycleSURE(Shift(), n_trans=0)
