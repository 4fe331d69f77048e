"""MRI: the Cartesian k-space mask, exact adjoint and zero-filled pseudo-inverse."""

import pytest
import torch

from eilab.physics.mri import MRI

SIZE = (12, 20)  # non-square, so columns (W) and rows (H) cannot be confused


def columns(physics: MRI) -> torch.Tensor:
    """The sampled columns as a 0/1 vector, checking the mask is constant along H."""
    mask = physics.mask[0, 0]
    assert torch.equal(mask, mask[:1].expand_as(mask))
    return mask[0]


def test_mask_is_seeded():
    a, b, c = (MRI(64, seed=s).mask for s in (0, 0, 1))
    assert a.shape == (1, 1, 64, 64)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert "mask" in MRI(64).state_dict()


@pytest.mark.parametrize(
    ("width", "acceleration", "center_fraction"),
    [(64, 4.0, 0.08), (64, 8.0, 0.04), (20, 4.0, 0.08), (33, 3.0, 0.2), (64, 1.0, 0.08)],
)
def test_sampled_columns(width, acceleration, center_fraction):
    physics = MRI((10, width), acceleration=acceleration, center_fraction=center_fraction)
    cols = columns(physics)
    assert int(cols.sum()) == round(width / acceleration)
    n_center = round(center_fraction * width)
    frequency = torch.fft.fftfreq(width, d=1 / width).round().long()  # of each column of fft2
    centre = range(-(n_center // 2), n_center - n_center // 2)
    assert all(cols[frequency == f] == 1 for f in centre)


@pytest.mark.parametrize("width", [20, 21, 64, 65])
@pytest.mark.parametrize("n_center", [5, 6])
def test_centre_only_mask_is_the_low_frequencies(width, n_center):
    physics = MRI((4, width), acceleration=width / n_center, center_fraction=n_center / width)
    frequency = torch.fft.fftfreq(width, d=1 / width).round().long()
    sampled = sorted(frequency[columns(physics) == 1].tolist())
    assert sampled == list(range(-(n_center // 2), n_center - n_center // 2))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"acceleration": 0.5}, "acceleration"),
        ({"center_fraction": 1.5}, "center_fraction"),
        ({"acceleration": 16.0, "center_fraction": 0.5}, "center_fraction"),
        ({"img_size": (8, 0)}, "img_size"),
    ],
)
def test_bad_arguments_are_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        MRI(**{"img_size": 16, **kwargs})


def test_real_image_is_rejected_with_advice():
    physics = MRI(SIZE)
    with pytest.raises(ValueError, match="imaginary"):
        physics.A(torch.ones(1, 1, *SIZE))
    with pytest.raises(ValueError, match="spatial size"):
        physics.A(torch.ones(1, 2, 20, 12))


def test_forward_is_masked_unitary_fft(device):
    physics = MRI(SIZE).to(device)
    x = torch.randn(2, 2, *SIZE, dtype=torch.float64, device=device)
    k = torch.fft.fft2(torch.complex(x[:, 0], x[:, 1]), norm="ortho") * physics.mask[:, 0]
    assert torch.allclose(physics.A(x), torch.stack([k.real, k.imag], dim=1))
    unsampled = physics.mask.expand(2, 2, *SIZE) == 0
    assert (physics.A(x)[unsampled] == 0).all()


def test_full_sampling_is_invertible(device):
    physics = MRI(SIZE, acceleration=1.0).to(device)
    x = torch.randn(2, 2, *SIZE, dtype=torch.float64, device=device)
    assert torch.allclose(physics.A_dagger(physics.A(x)), x)
