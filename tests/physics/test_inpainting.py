"""Inpainting: the mask, exact adjoint and pseudo-inverse, and acquisition noise."""

import pytest
import torch

from eilab.physics.inpainting import Inpainting
from eilab.physics.noise import GaussianNoise, PoissonNoise

SIZE = (16, 12)  # non-square, so a swapped H/W shows up


def test_mask_is_seeded_and_exact():
    a, b, c = (Inpainting(SIZE, drop_rate=0.3, seed=s).mask for s in (0, 0, 1))
    assert a.shape == (1, 1, *SIZE)
    assert a.dtype.is_floating_point
    assert set(a.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert int((a == 0).sum()) == round(0.3 * 16 * 12) == int((c == 0).sum())
    assert "mask" in Inpainting(SIZE).state_dict()


@pytest.mark.parametrize("drop_rate", [0.0, 0.1, 0.5, 0.9])
def test_drop_rate_is_exact(drop_rate):
    mask = Inpainting(20, drop_rate=drop_rate).mask
    assert int((mask == 0).sum()) == round(drop_rate * 400)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"img_size": 8, "drop_rate": 1.0}, "drop_rate"),
        ({"img_size": 8, "drop_rate": -0.1}, "drop_rate"),
        ({"img_size": 0}, "img_size"),
        ({"img_size": (8, -2)}, "img_size"),
    ],
)
def test_bad_arguments_are_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Inpainting(**kwargs)


def test_wrong_image_size_is_rejected():
    with pytest.raises(ValueError, match="spatial size"):
        Inpainting(SIZE).A(torch.ones(1, 1, 12, 16))


def test_mask_is_shared_by_channels(device):
    physics = Inpainting(SIZE).to(device)
    assert physics.mask.device.type == device
    y = physics.A(torch.ones(2, 3, *SIZE, device=device))
    assert torch.equal(y[:, 0], y[:, 1]) and torch.equal(y[:, 0], y[:, 2])
    assert torch.equal(y[0, 0], physics.mask[0, 0])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_output_keeps_the_input_dtype(dtype):
    assert Inpainting(SIZE).A(torch.ones(1, 1, *SIZE, dtype=dtype)).dtype == dtype


def test_poisson_noise_counts_photons(device):
    gain = 0.05
    physics = Inpainting(SIZE, noise=PoissonNoise(gain=gain)).to(device)
    x = torch.rand(2, 3, *SIZE, device=device)
    y = physics(x, generator=torch.Generator(device=device).manual_seed(0))
    counts = y / gain
    assert (y >= 0).all()
    assert torch.allclose(counts, counts.round(), atol=1e-4)
    assert not torch.equal(y, physics.A(x))


def test_noise_on_the_kept_pixels_only_leaves_zeros_where_nothing_was_measured():
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    everywhere = Inpainting(32, drop_rate=0.3, noise=GaussianNoise(0.1))
    kept_only = Inpainting(32, drop_rate=0.3, noise=GaussianNoise(0.1), noise_on_dropped=False)
    dropped = kept_only.mask[0, 0] == 0
    generator = torch.Generator().manual_seed(1)
    y_everywhere, y_kept = everywhere(x, generator), kept_only(x, generator)
    assert y_everywhere[:, :, dropped].std() == pytest.approx(0.1, rel=0.1)
    assert torch.all(y_kept[:, :, dropped] == 0)
    assert (y_kept - kept_only.A(x))[:, :, ~dropped].std() == pytest.approx(0.1, rel=0.1)
    # What SURE and REQ (with UNSURE's scaled level) read from the physics' noise model:
    for noise in (kept_only.noise, kept_only.noise.scaled(4.0)):
        assert torch.all(noise.variance(y_kept)[:, :, dropped] == 0)
        assert torch.all(noise(kept_only.A(x))[:, :, dropped] == 0)
    scaled = kept_only.noise.scaled(4.0).variance(y_kept)[:, :, ~dropped]
    assert torch.allclose(scaled, torch.full_like(scaled, 0.04))
