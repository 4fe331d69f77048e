"""Theorem 1 and Corollary 1 of the paper as numbers computed from the discrete operators.

Theorem 1: recovering the signal model from measurements alone needs the stacked operator
M = [A T_1; ...; A T_|G|] to have rank n. Corollary 1: if the group leaves range(Aᵀ) invariant,
M has the rank of A, and EI cannot learn more than measurement consistency (MC).
Everything here is dense linear algebra, meant for small sizes (e.g. 16×16 images, 1-D signals).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from eilab.groups.base import Group

WEAK_CONDITIONING = 1e-3
RANK_RTOL = 1e-6  # singular values below this fraction of the largest count as zero


@dataclass(frozen=True)
class Identifiability:
    """What Theorem 1 and Corollary 1 say about one (operator, group, image size)."""

    n: int
    m: int
    group_size: int
    rank_A: int
    rank_stacked: int
    sigma_ratio: float
    range_leakage: float

    @property
    def full_rank(self) -> bool:
        return self.rank_stacked == self.n

    @property
    def range_invariant(self) -> bool:
        return self.rank_stacked == self.rank_A

    def verdict(self) -> str:
        """A short verdict in words, derived only from the numbers above."""
        if self.rank_A == self.n:
            return "A alone has full rank: nothing lies in its null space, MC already suffices."
        if self.range_invariant:
            return (
                f"Corollary 1 holds: the group leaves range(Aᵀ) invariant (rank stays {self.rank_A}"
                f" of {self.n}); EI cannot learn more than MC with this group."
            )
        if not self.full_rank:
            return (
                f"The group enlarges the range (rank {self.rank_A} -> {self.rank_stacked}) but "
                f"Theorem 1's necessary condition fails: rank {self.rank_stacked} < n = {self.n}."
            )
        strength = "well" if self.sigma_ratio >= WEAK_CONDITIONING else "badly"
        return (
            f"Theorem 1's necessary condition holds (rank {self.n} = n); the stacked operator is "
            f"{strength} conditioned (smallest/largest singular value {self.sigma_ratio:.1e})."
        )


def operator_matrix(fn, in_shape: tuple[int, ...]) -> torch.Tensor:
    """Dense matrix (outputs × inputs) of a linear map, by applying it to the standard basis."""
    n = int(torch.tensor(in_shape).prod())
    basis = torch.eye(n, dtype=torch.float64).reshape(n, *in_shape)
    return fn(basis).reshape(n, -1).t()


def dense_bytes(n: int, m: int) -> int:
    """Peak memory of :func:`analyse` for n unknowns and m measurements (float64 matrices).

    About eight n × n matrices (basis, T_g, Gram, SVD factors, copies) and three m × n ones;
    measured peaks on CPU were 0.85-1.0 times this (inpainting, CT, MRI at 32²-64²).
    """
    return 8 * (8 * n * n + 3 * m * n)


def _rank(singular_values: torch.Tensor) -> int:
    return int((singular_values > RANK_RTOL * singular_values.max()).sum())


def analyse(
    physics: nn.Module,
    group: Group,
    img_shape: tuple[int, int, int],
    progress: Callable[[int, int], None] | None = None,
) -> Identifiability:
    """Rank, conditioning and range leakage of [A T_g]_g for images of shape (C, H, W).

    ``range_leakage`` is the largest, over g, fraction of range(Aᵀ) that T_g moves into the null
    space of A: ||P_N T_g V||_F / ||V||_F for an orthonormal basis V of range(Aᵀ). Zero means
    Corollary 1 holds for every g. The stacked operator's singular values come from the
    eigenvalues of Σ_g (A T_g)ᵀ(A T_g), which needs only n × n memory. ``progress(done,
    total)`` is called after the SVD of A (done = 0) and after each of the total group elements.
    """
    A_op = copy.deepcopy(physics).double()
    A = operator_matrix(A_op.A, img_shape)
    m, n = A.shape
    _, s_A, Vh = torch.linalg.svd(A, full_matrices=False)
    rank_A = _rank(s_A)
    V_range = Vh[:rank_A].t()

    gram = torch.zeros(n, n, dtype=torch.float64)
    leakage = 0.0
    elements = group.elements(img_shape[1:])
    if progress is not None:
        progress(0, len(elements))
    for done, params in enumerate(elements, start=1):
        T = operator_matrix(lambda x, p=params: group.apply(x, p.expand(len(x), -1)), img_shape)
        AT = A @ T
        gram += AT.t() @ AT
        TV = T @ V_range
        moved_to_null = TV - V_range @ (V_range.t() @ TV)
        leakage = max(leakage, float(torch.linalg.norm(moved_to_null) / rank_A**0.5))
        if progress is not None:
            progress(done, len(elements))
    singular = torch.linalg.eigvalsh(gram).clamp_min(0).sqrt()
    rank_stacked = _rank(singular)
    return Identifiability(
        n=n,
        m=m,
        group_size=len(elements),
        rank_A=rank_A,
        rank_stacked=rank_stacked,
        sigma_ratio=float(singular.min() / singular.max()),
        range_leakage=leakage,
    )
