"""Circular (cyclic) integer shifts of the image on both axes."""

from __future__ import annotations

import torch

from eilab.groups.base import Group


class Shift(Group):
    """Cyclic shifts by (dy, dx) pixels; the paper's group for inpainting.

    Parameters are (dy, dx) rows. ``max_shift`` limits the shifts to |d| <= max_shift on each
    axis (None: every shift, the full group of H·W elements).
    """

    param_dim = 2

    def __init__(self, max_shift: int | None = None) -> None:
        if max_shift is not None and max_shift < 0:
            raise ValueError(f"Shift: max_shift must be >= 0 or None, got {max_shift}")
        self.max_shift = max_shift

    def _axis_shifts(self, size: int) -> torch.Tensor:
        if self.max_shift is None or 2 * self.max_shift + 1 >= size:
            return torch.arange(size)
        d = torch.arange(-self.max_shift, self.max_shift + 1)
        return d[d.abs().argsort(stable=True)]

    def elements(self, img_shape: tuple[int, int]) -> torch.Tensor:
        dy, dx = torch.meshgrid(
            self._axis_shifts(img_shape[0]), self._axis_shifts(img_shape[1]), indexing="ij"
        )
        return torch.stack([dy.flatten(), dx.flatten()], 1).float()

    def apply(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return _roll_each(x, params.long())

    def apply_inverse(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return _roll_each(x, -params.long())


def _roll_each(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Roll image i of the batch by shifts[i] = (dy, dx), using one gather for the batch."""
    B, _, H, W = x.shape
    shifts = shifts.to(x.device)
    rows = (torch.arange(H, device=x.device)[None, :] - shifts[:, :1]) % H
    cols = (torch.arange(W, device=x.device)[None, :] - shifts[:, 1:]) % W
    index = rows[:, :, None] * W + cols[:, None, :]
    flat = x.reshape(B, x.shape[1], H * W)
    gathered = flat.gather(2, index.reshape(B, 1, H * W).expand(-1, x.shape[1], -1))
    return gathered.reshape(x.shape)
