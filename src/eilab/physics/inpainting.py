"""Inpainting: observe a fixed random subset of the pixels."""

from __future__ import annotations

import torch
from torch import nn

from eilab.physics.base import LinearPhysics, image_size
from eilab.physics.noise import MaskedNoise, NoiseModel


class Inpainting(LinearPhysics):
    """Pixel-wise masking y = mask ⊙ x with a seeded mask dropping exactly ``drop_rate`` of pixels.

    The mask has shape (1, 1, H, W) (1 = kept) and is shared by all channels. ``A`` is a
    diagonal 0/1 matrix, so it is its own adjoint and its own pseudo-inverse: ``A_adjoint`` and
    ``A_dagger`` (the base-class default) both return the masked image. The mask follows
    ``module.to(device)``; an input of another floating dtype gets a cast copy of it.

    ``noise_on_dropped``: true (default, the simulation convention of eilab's noisy studies)
    draws noise on every pixel, so the dropped ones hold pure noise; false draws it on the kept
    pixels only and leaves zeros where nothing was measured, as a real masked acquisition (and
    deepinv) gives: the noise model is then wrapped in :class:`MaskedNoise`, which SURE and
    REQ use as they use any noise model.
    """

    def __init__(
        self,
        img_size: int | tuple[int, int],
        drop_rate: float = 0.3,
        seed: int = 0,
        noise: nn.Module | None = None,
        noise_on_dropped: bool = True,
    ) -> None:
        H, W = image_size(img_size)
        if not 0 <= drop_rate < 1:
            raise ValueError(f"Inpainting: drop_rate must be in [0, 1), got {drop_rate}")
        generator = torch.Generator().manual_seed(seed)
        dropped = torch.randperm(H * W, generator=generator)[: round(drop_rate * H * W)]
        mask = torch.ones(H * W)
        mask[dropped] = 0
        mask = mask.view(1, 1, H, W)
        if noise is not None and not noise_on_dropped:
            noise = MaskedNoise(check_noise_model(noise), mask)
        super().__init__(noise)
        self.register_buffer("mask", mask)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        """Zero the dropped pixels of every channel."""
        if x.shape[-2:] != self.mask.shape[-2:]:
            raise ValueError(
                f"Inpainting: input spatial size {tuple(x.shape[-2:])} does not match the "
                f"mask's {tuple(self.mask.shape[-2:])}"
            )
        return x * self.mask.to(x.dtype)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Masking is self-adjoint."""
        return self.A(y)


def check_noise_model(noise: nn.Module) -> NoiseModel:
    """``noise`` if it is an eilab NoiseModel (MaskedNoise needs its sample and variance)."""
    if not isinstance(noise, NoiseModel):
        raise TypeError(
            f"Inpainting: noise_on_dropped=false needs an eilab.physics.noise model, "
            f"got {type(noise).__name__}"
        )
    return noise
