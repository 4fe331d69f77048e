"""Cycle SURE: a ground-truth-free risk estimate that sees what f puts in the null space of A.

For x1 = f(y) and a group element g, the cycle reconstruction is

    c(y) = T_g⁻¹ f(A T_g f(y) + v(A T_g f(y))^½ ⊙ ε),

f applied to the re-simulated measurements of its own transformed output, mapped back. T_g
moves what x1 holds in the null space of A into directions A measures and the reverse, so
A c(y) predicts y only as well as f fills the null space: inpainting a dropped pixel, or CT
lines between the views. Cycle SURE is SURE of (1/m)‖A c(y) − A x‖², an unbiased estimate of
that error against the real measurements (not against x1, as the equivariance error is, so an
f cannot lower it by outputs that are merely easy to reconstruct again).

The noise is re-applied as its Gaussian approximation with the model's variance v and a
fixed draw ε: c is then smooth in y, as SURE's finite-difference divergence needs (a Poisson
draw jumps by whole photons when its rate moves). g and ε are drawn once per call from the
given generator, so two networks scored with one seed see the same cycle.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from eilab.groups.base import Group, draw
from eilab.losses.sure import SURELoss
from eilab.physics.noise import NoiseModel

Reconstruct = Callable[[torch.Tensor], torch.Tensor]


class CycleSURE(nn.Module):
    """SURE of the cycle reconstruction's measurement-domain error, ``n_trans`` group
    elements per measurement, averaged; its MC loss ‖A c(y) − y‖² / m without noise."""

    def __init__(self, group: Group, n_trans: int = 1) -> None:
        super().__init__()
        if n_trans < 1:
            raise ValueError(f"CycleSURE: n_trans must be >= 1, got {n_trans}")
        self.group = group
        self.n_trans = n_trans

    def cycle(
        self,
        reconstruct: Reconstruct,
        physics: nn.Module,
        params: torch.Tensor,
        normal: torch.Tensor,
        noise: NoiseModel | None,
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        """The map x1 = f(y) ↦ c(y), for the group elements ``params`` and the standard normal
        draw ``normal``."""

        def cycle_from(x1: torch.Tensor) -> torch.Tensor:
            measured = physics.A(self.group.apply(x1, params))
            if noise is not None:
                measured = measured + noise.variance(measured).clamp_min(0).sqrt() * normal
            return self.group.apply_inverse(reconstruct(measured), params)

        return cycle_from

    def draws(
        self, x1: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The group elements and the standard normal draw of the cycles of the n_trans copies
        of the reconstructions x1 = f(y) and their measurements y."""
        copies = self.n_trans * len(y)
        candidates = self.group.candidates(tuple(x1.shape[-2:])).to(y.device)
        params = draw(candidates, copies, generator)
        shape = (copies, *y.shape[1:])
        normal = torch.randn(shape, generator=generator, device=y.device, dtype=y.dtype)
        return params, normal

    def forward(
        self,
        y: torch.Tensor,
        x1: torch.Tensor,
        reconstruct: Reconstruct,
        physics: nn.Module,
        sure: SURELoss | None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Cycle SURE of the batch y, x1 = ``reconstruct``(y) already computed, under
        ``sure``'s noise model (None: noiseless)."""
        copies = y.repeat(self.n_trans, *(1,) * (y.dim() - 1))
        params, normal = self.draws(x1, y, generator)
        noise = None if sure is None else sure.noise_estimate()
        cycle_from = self.cycle(reconstruct, physics, params, normal, noise)
        x_cycle = cycle_from(x1.repeat(self.n_trans, *(1,) * (x1.dim() - 1)))
        if sure is None:
            return F.mse_loss(physics.A(x_cycle), copies)
        cycle_of = lambda y_: cycle_from(reconstruct(y_))  # noqa: E731
        return sure(copies, x_cycle, cycle_of, physics, generator)
