"""The equivariance loss of eq. (6), f(A T_g x1) = T_g x1, and its robust form REQ.

REQ (robust equivariance, Chen, Tachella & Davies, CVPR 2022) re-applies the measurement noise
before reconstructing: ‖f(noise(A T_g x1)) − T_g x1‖², so f learns to be equivariant on
measurements that look like the real, noisy ones. Pass ``noise`` to get it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from eilab.groups.base import Group, draw


class EILoss(nn.Module):
    """α-free equivariance term MSE(x3, x2), with x2 = T_g x1 and x3 = f(A x2).

    Each of the B images gets ``n_trans`` independently drawn group elements, so x2 and x3 hold
    B·n_trans images, drawn on x1's device (a ``generator``, if given, must be there; on CUDA
    the draw needs no copy from the host). As in the paper's code, x2 is not detached:
    gradients flow through both x2 (into x1) and x3. With a ``noise`` model, x3 =
    f(noise(A x2)) (REQ); the noise is drawn from ``generator`` (else the global random state),
    and its gradient passes as for additive noise.
    """

    def __init__(self, group: Group, n_trans: int = 1) -> None:
        super().__init__()
        if n_trans < 1:
            raise ValueError(f"EILoss: n_trans must be >= 1, got {n_trans}")
        self.group = group
        self.n_trans = n_trans
        self._candidates: dict[tuple, torch.Tensor] = {}

    def candidates(self, img_shape: tuple[int, int], device: torch.device) -> torch.Tensor:
        """The group's candidates for ``img_shape`` on ``device``, copied there once."""
        key = (img_shape, device)
        if key not in self._candidates:
            self._candidates[key] = self.group.candidates(img_shape).to(device)
        return self._candidates[key]

    def transformed_pair(
        self,
        x1: torch.Tensor,
        reconstruct: Callable[[torch.Tensor], torch.Tensor],
        physics: nn.Module,
        generator: torch.Generator | None = None,
        noise: nn.Module | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (x2, x3): the transformed reconstructions and their re-reconstructions."""
        candidates = self.candidates(tuple(x1.shape[-2:]), x1.device)
        params = draw(candidates, len(x1) * self.n_trans, generator)
        x2 = self.group.apply(x1.repeat(self.n_trans, 1, 1, 1), params)
        measured = physics.A(x2)
        x3 = reconstruct(measured if noise is None else noise(measured, generator))
        return x2, x3

    def forward(
        self,
        x1: torch.Tensor,
        reconstruct: Callable[[torch.Tensor], torch.Tensor],
        physics: nn.Module,
        generator: torch.Generator | None = None,
        noise: nn.Module | None = None,
    ) -> torch.Tensor:
        x2, x3 = self.transformed_pair(x1, reconstruct, physics, generator, noise)
        return F.mse_loss(x3, x2)
