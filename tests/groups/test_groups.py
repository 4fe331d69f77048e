"""Group actions: inverses, identities, known special cases, sampling."""

import pytest
import torch

from eilab.groups import Compose, Reflect, Rotate, Shift

EXACT_GROUPS = {
    "shift": Shift(),
    "shift_small": Shift(max_shift=2),
    "reflect": Reflect(dims=(-1, -2)),
    "quarter_turns": Rotate(degrees=[90, 180, 270]),
    "shift_then_reflect": Compose([Shift(), Reflect()]),
}
ALL_GROUPS = {**EXACT_GROUPS, "rotate": Rotate(), "rotate_nearest": Rotate(interpolation="nearest")}


def images(batch=4, size=10, device="cpu"):
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)


@pytest.mark.parametrize("name", EXACT_GROUPS)
def test_apply_then_inverse_is_identity(name, device):
    group = EXACT_GROUPS[name]
    x = images(device=device)
    params = group.sample(len(x), (10, 10), torch.Generator().manual_seed(1))
    assert group.is_exact((10, 10))
    assert torch.allclose(group.apply_inverse(group.apply(x, params), params), x, atol=1e-6)


@pytest.mark.parametrize("name", ALL_GROUPS)
def test_identity_element_comes_first_and_does_nothing(name, device):
    group = ALL_GROUPS[name]
    x = images(device=device)
    identity = group.elements((10, 10))[:1].expand(len(x), -1)
    assert torch.allclose(group.apply(x, identity), x, atol=1e-6)


@pytest.mark.parametrize("name", ALL_GROUPS)
def test_sample_draws_non_identity_elements_of_the_group(name):
    group = ALL_GROUPS[name]
    elements = group.elements((10, 10))
    params = group.sample(200, (10, 10), torch.Generator().manual_seed(2))
    assert params.shape == (200, group.param_dim)
    assert not (params == elements[0]).all(dim=1).any()
    assert all((row == elements).all(dim=1).any() for row in params)


def test_sampling_is_reproducible():
    first = Rotate().sample(8, (10, 10), torch.Generator().manual_seed(3))
    second = Rotate().sample(8, (10, 10), torch.Generator().manual_seed(3))
    assert torch.equal(first, second)


def test_rotation_by_90_degrees_equals_rot90(device):
    x = images(device=device)
    params = torch.full((len(x), 1), 90.0)
    for interpolation in ("bilinear", "nearest"):
        rotated = Rotate(interpolation=interpolation).apply(x, params)
        assert torch.allclose(rotated, torch.rot90(x, 1, dims=(-2, -1)), atol=1e-5)


def test_rotation_angles_differ_per_image():
    x = images(batch=2)
    params = torch.tensor([[90.0], [180.0]])
    rotated = Rotate().apply(x, params)
    assert torch.allclose(rotated[0], torch.rot90(x[0], 1, dims=(-2, -1)), atol=1e-5)
    assert torch.allclose(rotated[1], torch.rot90(x[1], 2, dims=(-2, -1)), atol=1e-5)


def test_rotation_of_a_smooth_centred_image_is_nearly_inverted():
    coord = torch.arange(32.0) - 16
    smooth = torch.exp(-(coord[:, None] ** 2 + 2 * coord[None, :] ** 2) / 60)[None, None]
    params = torch.tensor([[17.0]])
    group = Rotate()
    back = group.apply_inverse(group.apply(smooth, params), params)
    assert not group.is_exact((32, 32))
    assert (back - smooth).abs().max() < 0.03  # two bilinear interpolations blur slightly


def test_shift_equals_torch_roll_per_image(device):
    x = images(device=device)
    params = torch.tensor([[1.0, 2.0], [0.0, 9.0], [5.0, 0.0], [3.0, 3.0]])
    shifted = Shift().apply(x, params)
    for i, (dy, dx) in enumerate(params.long().tolist()):
        assert torch.equal(shifted[i], torch.roll(x[i], (dy, dx), dims=(-2, -1)))


def test_reflect_flips_the_chosen_axes():
    x = images(batch=2)
    params = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    flipped = Reflect(dims=(-1, -2)).apply(x, params)
    assert torch.equal(flipped[0], x[0].flip(-1))
    assert torch.equal(flipped[1], x[1].flip(-1).flip(-2))


def test_group_sizes():
    assert len(Rotate().elements((8, 8))) == 360
    assert len(Shift().elements((8, 6))) == 48
    assert len(Shift(max_shift=1).elements((8, 8))) == 9
    assert len(Reflect(dims=(-1, -2)).elements((8, 8))) == 4
    assert len(Compose([Shift(), Reflect()]).elements((4, 4))) == 32


@pytest.mark.parametrize(
    ("factory", "name"),
    [
        (lambda: Rotate(interpolation="bicubic"), "interpolation"),
        (lambda: Rotate(padding="wrap"), "padding"),
        (lambda: Shift(max_shift=-1), "max_shift"),
        (lambda: Reflect(dims=(0,)), "dims"),
    ],
)
def test_bad_arguments_are_named(factory, name):
    with pytest.raises(ValueError, match=name):
        factory()
