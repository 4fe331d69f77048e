"""Compressed sensing: the Gaussian matrix, exact adjoint and Moore-Penrose pseudo-inverse."""

import math

import pytest
import torch

from eilab.physics.cs import CompressedSensing

SHAPE = (2, 8, 6)
N = math.prod(SHAPE)
M = 40


def test_matrix_is_seeded_gaussian():
    a, b, c = (CompressedSensing(SHAPE, M, seed=s).matrix for s in (0, 0, 1))
    assert a.shape == (M, N)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert (a * math.sqrt(M)).std().item() == pytest.approx(1.0, abs=0.05)
    assert abs(a.mean().item()) < 0.05
    assert {"matrix", "pinv"} <= set(CompressedSensing(SHAPE, M).state_dict())


@pytest.mark.parametrize(
    ("args", "name"),
    [(((2, 8), 4), "img_shape"), (((2, 0, 8), 4), "img_shape"), ((SHAPE, 0), "m")],
)
def test_bad_arguments_are_named(args, name):
    with pytest.raises(ValueError, match=name):
        CompressedSensing(*args)


def test_wrong_shapes_are_rejected():
    physics = CompressedSensing(SHAPE, M)
    with pytest.raises(ValueError, match="images"):
        physics.A(torch.ones(1, 2, 6, 8))
    with pytest.raises(ValueError, match="measurements"):
        physics.A_adjoint(torch.ones(1, M + 1))
