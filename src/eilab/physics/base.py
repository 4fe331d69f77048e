"""The linear forward model every imaging problem in eilab is built on."""

from __future__ import annotations

import torch
from torch import nn


def image_size(img_size: int | tuple[int, int]) -> tuple[int, int]:
    """Normalise an ``int`` or ``(H, W)`` size to a validated pair of positive ints."""
    H, W = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
    if H <= 0 or W <= 0:
        raise ValueError(f"img_size must be positive, got {img_size}")
    return int(H), int(W)


class SignedOperatorError(ValueError):
    """Photon-counting noise on an operator whose noiseless measurements can be negative."""


class LinearPhysics(nn.Module):
    """A linear measurement operator y = A x (+ noise).

    Subclasses implement ``A`` and its exact adjoint ``A_adjoint``; ``A_dagger`` is an
    approximate inverse (pseudo-inverse, FBP, ...) and defaults to the adjoint. Images are
    tensors of shape (B, C, H, W). Fixed tensors (masks, matrices, filters) are buffers built
    from a seed, so ``.to(device)`` moves them and every process builds the same operator.

    ``signed`` is True for operators whose measurements of a nonnegative image can be negative
    (compressed sensing, Fourier sampling): a noise model that counts photons
    (``requires_nonnegative``, e.g. Poisson) is refused for them at construction.
    """

    signed: bool = False

    def __init__(self, noise: nn.Module | None = None) -> None:
        super().__init__()
        if self.signed and getattr(noise, "requires_nonnegative", False):
            raise SignedOperatorError(
                f"{type(self).__name__} gives signed measurements, but {type(noise).__name__} "
                "counts photons and needs A x >= 0: use GaussianNoise with this operator"
            )
        self.noise = noise

    def A(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the noiseless forward operator."""
        raise NotImplementedError

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Apply the exact adjoint (transpose) of ``A``."""
        raise NotImplementedError

    def A_dagger(self, y: torch.Tensor) -> torch.Tensor:
        """Apply an approximate inverse of ``A``; the adjoint unless a subclass knows better."""
        return self.A_adjoint(y)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Simulate an acquisition: A x, plus a draw of the noise model when there is one."""
        y = self.A(x)
        if self.noise is not None:
            y = self.noise(y, generator=generator)
        return y
