"""Loss terms: zero where the theory says zero, gradients where the paper says gradients."""

import pytest
import torch
from torch import nn

from eilab.groups import Rotate, Shift
from eilab.losses import AdversarialLoss, EILoss, MCLoss, SupLoss
from eilab.physics import GaussianNoise, Inpainting


def test_mc_loss_is_zero_for_the_truth_and_positive_otherwise():
    physics = Inpainting(8)
    x = torch.rand(2, 1, 8, 8)
    y = physics.A(x)
    assert MCLoss()(x, y, physics) == 0
    assert MCLoss()(torch.zeros_like(x), y, physics) > 0


def test_mc_loss_ignores_the_null_space():
    physics = Inpainting(8, drop_rate=0.5)
    x = torch.rand(2, 1, 8, 8)
    null_component = (1 - physics.mask) * torch.rand_like(x)
    assert MCLoss()(x + null_component, physics.A(x), physics) == 0


def test_ei_loss_is_zero_for_an_equivariant_system():
    # With nothing dropped and f the identity, f∘A is the identity: equivariant to any shift.
    physics = Inpainting(8, drop_rate=0.0)
    x1 = torch.rand(3, 1, 8, 8)
    assert EILoss(Shift(), n_trans=4)(x1, lambda y: y, physics) == 0


def test_ei_loss_is_positive_when_f_ignores_the_null_space():
    physics = Inpainting(8, drop_rate=0.5)
    x1 = torch.rand(3, 1, 8, 8)
    assert EILoss(Shift(), n_trans=2)(x1, physics.A_dagger, physics) > 0


def test_ei_pair_has_n_trans_copies_and_gradients_flow_through_x2():
    physics = Inpainting(8, drop_rate=0.3)
    x1 = torch.rand(3, 1, 8, 8, requires_grad=True)
    loss_fn = EILoss(Rotate(), n_trans=5)
    x2, x3 = loss_fn.transformed_pair(x1, physics.A_dagger, physics)
    assert x2.shape == x3.shape == (15, 1, 8, 8)
    # f = A† has no parameters, so any gradient on x1 must come through x2 and x3 (not detached).
    torch.nn.functional.mse_loss(x3, x2).backward()
    assert x1.grad is not None and x1.grad.abs().sum() > 0


def test_req_reapplies_the_noise_before_reconstructing():
    # f∘A is the identity: plain EI is zero, REQ measures the re-applied noise, σ² per pixel.
    physics = Inpainting(8, drop_rate=0.0)
    x1 = torch.rand(64, 1, 8, 8, requires_grad=True)
    loss_fn = EILoss(Shift(), n_trans=2)
    assert loss_fn(x1, lambda y: y, physics) == 0
    torch.manual_seed(0)
    req = loss_fn(x1, lambda y: y, physics, noise=GaussianNoise(0.1))
    assert float(req.detach()) == pytest.approx(0.01, rel=0.05)
    req.backward()  # the draw passes gradients like additive noise: x3 - x2 is the noise alone
    assert torch.allclose(x1.grad, torch.zeros_like(x1), atol=1e-7)


def test_adversarial_losses_follow_lsgan():
    constant = nn.Conv2d(1, 1, 1)
    nn.init.zeros_(constant.weight)
    nn.init.constant_(constant.bias, 0.25)
    adv = AdversarialLoss(constant)
    x = torch.rand(2, 1, 4, 4)
    assert torch.isclose(adv.generator_loss(x), torch.tensor((1 - 0.25) ** 2))
    expected = 0.5 * ((1 - 0.25) ** 2 + 0.25**2)
    assert torch.isclose(adv.discriminator_loss(x, x), torch.tensor(expected))


def test_discriminator_loss_does_not_reach_the_generator():
    adv = AdversarialLoss(nn.Conv2d(1, 1, 1))
    x1 = torch.rand(2, 1, 4, 4, requires_grad=True)
    adv.discriminator_loss(x1, x1 * 2).backward()
    assert x1.grad is None


def test_sup_loss_is_mse():
    x = torch.rand(2, 1, 4, 4)
    assert torch.isclose(SupLoss()(x + 0.5, x), torch.tensor(0.25))
