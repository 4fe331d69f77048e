"""Rotations of the image plane about its centre."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F

from eilab.groups.base import Group

INTERPOLATIONS = ("bilinear", "nearest")
PADDINGS = ("zeros", "border", "reflection")


class Rotate(Group):
    """Rotations by angles (degrees, counter-clockwise as displayed) from a finite set.

    The default set is every integer degree, the paper's |G| = 360 group for CT. Rotations
    other than multiples of 90° interpolate (bilinear or nearest) and fill the corners by
    ``padding``, so they are invertible only approximately; ``is_exact`` says which case holds.
    """

    def __init__(
        self,
        degrees: Sequence[float] | None = None,
        interpolation: str = "bilinear",
        padding: str = "zeros",
    ) -> None:
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"Rotate: interpolation must be one of {INTERPOLATIONS}")
        if padding not in PADDINGS:
            raise ValueError(f"Rotate: padding must be one of {PADDINGS}, got {padding!r}")
        angles = list(range(360)) if degrees is None else [float(d) % 360 for d in degrees]
        if not angles:
            raise ValueError("Rotate: degrees must not be empty")
        self.degrees = torch.tensor(sorted(set(angles) | {0.0}), dtype=torch.float64)
        self.interpolation = interpolation
        self.padding = padding

    def elements(self, img_shape: tuple[int, int]) -> torch.Tensor:
        return self.degrees.float()[:, None]

    def is_exact(self, img_shape: tuple[int, int]) -> bool:
        half_turns = bool(torch.all(self.degrees % 180 == 0))
        quarter_turns = bool(torch.all(self.degrees % 90 == 0))
        return half_turns or (quarter_turns and img_shape[0] == img_shape[1])

    def apply(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return self._rotate(x, params[:, 0])

    def apply_inverse(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return self._rotate(x, -params[:, 0])

    def _rotate(self, x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
        radians = torch.deg2rad(degrees.to(device=x.device, dtype=torch.float64))
        cos, sin = torch.cos(radians), torch.sin(radians)
        zero = torch.zeros_like(cos)
        rows = [torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)]
        theta = torch.stack(rows, 1)
        grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
        return F.grid_sample(
            x, grid, mode=self.interpolation, padding_mode=self.padding, align_corners=False
        )
