"""Products of groups: T_(g1, g2) = T_g2 ∘ T_g1."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from eilab.groups.base import Group


class Compose(Group):
    """The direct product of groups, applied in order; parameters are concatenated."""

    def __init__(self, groups: Sequence[Group]) -> None:
        if not groups:
            raise ValueError("Compose: groups must not be empty")
        self.groups = list(groups)
        self.param_dim = sum(g.param_dim for g in self.groups)

    def _split(self, params: torch.Tensor) -> list[torch.Tensor]:
        return list(params.split([g.param_dim for g in self.groups], dim=1))

    def elements(self, img_shape: tuple[int, int]) -> torch.Tensor:
        product = self.groups[0].elements(img_shape)
        for group in self.groups[1:]:
            nxt = group.elements(img_shape)
            left = product.repeat_interleave(len(nxt), 0)
            product = torch.cat([left, nxt.repeat(len(product), 1)], 1)
        return product

    def is_exact(self, img_shape: tuple[int, int]) -> bool:
        return all(g.is_exact(img_shape) for g in self.groups)

    def apply(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        for group, p in zip(self.groups, self._split(params), strict=True):
            x = group.apply(x, p)
        return x

    def apply_inverse(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        pairs = list(zip(self.groups, self._split(params), strict=True))
        for group, p in reversed(pairs):
            x = group.apply_inverse(x, p)
        return x
