"""Mirror reflections of the image."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch

from eilab.groups.base import Group


class Reflect(Group):
    """Flips along the given image axes (-1: left-right, -2: up-down); one bit per axis."""

    def __init__(self, dims: Sequence[int] = (-1,)) -> None:
        dims = tuple(int(d) for d in dims)
        if not dims or any(d not in (-1, -2) for d in dims) or len(set(dims)) != len(dims):
            raise ValueError(f"Reflect: dims must be distinct values from (-1, -2), got {dims}")
        self.dims = dims
        self.param_dim = len(dims)

    def elements(self, img_shape: tuple[int, int]) -> torch.Tensor:
        bits = list(itertools.product((0.0, 1.0), repeat=len(self.dims)))
        return torch.tensor(bits)

    def apply(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        out = x
        for column, dim in enumerate(self.dims):
            flip = params[:, column].to(x.device).bool().view(-1, 1, 1, 1)
            out = torch.where(flip, out.flip(dim), out)
        return out

    def apply_inverse(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return self.apply(x, params)
