"""PatchGAN-style discriminator for EI_adv (the ESRGAN discriminator of the paper's code)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from eilab.models.unet import normalization


class PatchDiscriminator(nn.Module):
    """Stride-2 conv blocks ending in a 1-channel score map of size H/2^k × W/2^k (no sigmoid).

    Each block: conv3×3 → norm (none in the first block) → LeakyReLU(0.2) → conv3×3 stride 2
    → norm → LeakyReLU(0.2). The score map suits a least-squares (LSGAN) loss.
    """

    def __init__(
        self, in_channels: int = 1, widths: Sequence[int] = (64, 128, 256, 512), norm: str = "batch"
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for i, width in enumerate(widths):
            layers += [nn.Conv2d(c_in, width, 3, padding=1)]
            layers += [] if i == 0 else [normalization(norm, width)]
            layers += [nn.LeakyReLU(0.2, inplace=True), nn.Conv2d(width, width, 3, 2, 1)]
            layers += [normalization(norm, width), nn.LeakyReLU(0.2, inplace=True)]
            c_in = width
        layers.append(nn.Conv2d(c_in, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
