"""Theorem 1 and Corollary 1 on small discrete operators."""

import torch

from eilab.groups import Reflect, Rotate, Shift
from eilab.physics import CT, MRI, CompressedSensing, Inpainting
from eilab.theory import analyse, operator_matrix


def test_operator_matrix_of_a_known_map():
    matrix = torch.tensor([[1.0, 2.0, 0.0], [0.0, -1.0, 3.0]], dtype=torch.float64)
    recovered = operator_matrix(lambda x: x @ matrix.t(), (3,))
    assert torch.equal(recovered, matrix)


def test_mri_with_cyclic_shifts_keeps_the_rank_of_A():
    result = analyse(MRI(16, acceleration=4), Shift(), (2, 16, 16))
    assert result.rank_A < result.n
    assert result.rank_stacked == result.rank_A
    assert result.range_invariant and result.range_leakage < 1e-10
    assert "Corollary 1" in result.verdict()


def test_inpainting_with_shifts_has_full_rank():
    result = analyse(Inpainting(12, drop_rate=0.3), Shift(), (1, 12, 12))
    assert result.rank_A < result.n and result.full_rank
    assert result.sigma_ratio > 0.5  # every pixel is seen under most shifts
    assert "necessary condition holds" in result.verdict()


def test_ct_with_rotations_has_full_rank():
    result = analyse(CT(16, n_views=8), Rotate(), (1, 16, 16))
    assert result.rank_A < result.n and result.full_rank
    assert 1e-3 < result.sigma_ratio < 0.2
    assert result.range_leakage > 0.1


def test_fig3_toy_inpainting_a_1d_signal_with_cyclic_shifts_has_full_rank():
    physics = Inpainting((1, 32), drop_rate=0.5, seed=1)
    result = analyse(physics, Shift(), (1, 1, 32))
    assert result.rank_A == 16
    assert result.full_rank


def test_too_small_a_group_fails_theorem_1():
    # m = 40 measurements and |G| = 2 reflections: 2·40 < n = 100 cannot reach full rank.
    result = analyse(CompressedSensing((1, 10, 10), m=40), Reflect(), (1, 10, 10))
    assert result.rank_A == 40 < result.rank_stacked < result.n
    assert "fails" in result.verdict()


def test_full_rank_operator_needs_no_group():
    result = analyse(Inpainting(6, drop_rate=0.0), Shift(), (1, 6, 6))
    assert result.rank_A == result.n
    assert "MC already suffices" in result.verdict()


def test_progress_is_reported_after_the_svd_and_each_group_element():
    calls = []
    analyse(Inpainting(4, drop_rate=0.25), Shift(), (1, 4, 4), progress=lambda *a: calls.append(a))
    assert calls == [(done, 16) for done in range(17)]
