"""Compressed sensing: m random Gaussian projections of the whole image."""

from __future__ import annotations

import math

import torch
from torch import nn

from eilab.physics.base import LinearPhysics


class CompressedSensing(LinearPhysics):
    """y = Φ vec(x) with a seeded Gaussian Φ of shape (m, n), entries N(0, 1/m), n = C·H·W.

    ``A_dagger`` applies the Moore-Penrose pseudo-inverse Φ⁺, computed once in float64 at
    construction. Both matrices are buffers in the default dtype: they follow
    ``module.to(device)`` (and ``module.double()`` for full float64 precision); an input of
    another floating dtype gets a cast copy of them, so float32 and float64 inputs both work.
    """

    signed = True  # measurements take either sign: photon-counting noise is refused

    def __init__(
        self,
        img_shape: tuple[int, int, int],
        m: int,
        seed: int = 0,
        noise: nn.Module | None = None,
    ) -> None:
        super().__init__(noise)
        if len(img_shape) != 3 or min(img_shape) <= 0:
            raise ValueError(
                f"CompressedSensing: img_shape must be (C, H, W) positive ints, got {img_shape}"
            )
        if m <= 0:
            raise ValueError(f"CompressedSensing: m must be a positive int, got {m}")
        self.img_shape = tuple(int(s) for s in img_shape)
        n = math.prod(self.img_shape)
        generator = torch.Generator().manual_seed(seed)
        matrix = torch.randn(m, n, generator=generator, dtype=torch.float64) / math.sqrt(m)
        dtype = torch.get_default_dtype()
        self.register_buffer("matrix", matrix.to(dtype))
        self.register_buffer("pinv", torch.linalg.pinv(matrix).to(dtype))

    def _check_image(self, x: torch.Tensor) -> None:
        """Reject images whose (C, H, W) differs from the operator's."""
        if tuple(x.shape[1:]) != self.img_shape:
            C, H, W = self.img_shape
            raise ValueError(
                f"CompressedSensing: expected images of shape (B, {C}, {H}, {W}), "
                f"got {tuple(x.shape)}"
            )

    def _check_measurement(self, y: torch.Tensor) -> None:
        """Reject measurements that are not (B, m)."""
        if y.ndim != 2 or y.shape[1] != self.matrix.shape[0]:
            raise ValueError(
                f"CompressedSensing: expected measurements of shape (B, {self.matrix.shape[0]}), "
                f"got {tuple(y.shape)}"
            )

    def A(self, x: torch.Tensor) -> torch.Tensor:
        """Project the flattened image: (B, C, H, W) -> (B, m)."""
        self._check_image(x)
        return x.flatten(1) @ self.matrix.to(x.dtype).T

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Apply Φᵀ: (B, m) -> (B, C, H, W)."""
        self._check_measurement(y)
        return (y @ self.matrix.to(y.dtype)).view(-1, *self.img_shape)

    def A_dagger(self, y: torch.Tensor) -> torch.Tensor:
        """Apply Φ⁺, the minimum-norm least-squares inverse: (B, m) -> (B, C, H, W)."""
        self._check_measurement(y)
        return (y @ self.pinv.to(y.dtype).T).view(-1, *self.img_shape)
