"""The residual U-Net, the discriminator and f = G ∘ A†."""

import pytest
import torch

from eilab.models import PatchDiscriminator, Reconstructor, UNet
from eilab.physics import Inpainting


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_paper_sized_networks_have_the_original_parameter_counts():
    # Counts of the parameters the original EI code actually uses (its unused Conv5 aside).
    assert n_params(UNet(1, norm="batch")) == 8_562_881
    assert n_params(UNet(3, norm="batch")) == 8_564_163
    assert n_params(PatchDiscriminator(1)) == 4_692_545


@pytest.mark.parametrize("norm", ["batch", "group", "none"])
def test_unet_shapes_and_residual(norm, device):
    net = UNet(2, widths=(8, 16, 32), norm=norm).to(device)
    x = torch.rand(3, 2, 16, 24, device=device)
    assert net(x).shape == x.shape
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.zero_()
    assert torch.equal(net.eval()(x), x)  # a zero residual branch is the identity


def test_first_convolution_is_circular_when_asked():
    assert UNet(1, widths=(8, 16)).encoders[0][0][0].padding_mode == "circular"
    assert UNet(1, widths=(8, 16), circular_padding=False).encoders[0][0][0].padding_mode == "zeros"


def test_unet_rejects_sizes_it_cannot_pool():
    with pytest.raises(ValueError, match="divisible by 4"):
        UNet(1, widths=(8, 16, 32))(torch.rand(1, 1, 18, 16))
    with pytest.raises(ValueError, match="norm"):
        UNet(1, norm="layer")


def test_discriminator_scores_patches():
    scores = PatchDiscriminator(3, widths=(8, 16, 32, 64))(torch.rand(2, 3, 64, 64))
    assert scores.shape == (2, 1, 4, 4)


def test_reconstructor_applies_the_network_to_the_pseudo_inverse():
    physics = Inpainting(8, drop_rate=0.5)
    y = physics.A(torch.rand(2, 1, 8, 8))
    f = Reconstructor(physics, torch.nn.Identity())
    assert torch.equal(f(y), physics.A_dagger(y))
