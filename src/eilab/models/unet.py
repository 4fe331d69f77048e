"""The residual U-Net G of the paper's code: output = input + U-Net(input)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

NORMS = ("batch", "group", "none")


def normalization(kind: str, channels: int) -> nn.Module:
    """BatchNorm (the paper's choice), GroupNorm (batch-size independent) or nothing."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


def conv_norm_relu(c_in: int, c_out: int, norm: str, padding_mode: str = "zeros") -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, padding_mode=padding_mode),
        normalization(norm, c_out),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """U-Net with ``len(widths)`` scales, max-pool down, nearest-upsample + conv up, skip concat.

    The paper uses widths (64, 128, 256, 512), batch norm, circular padding on the first conv
    and a residual output (8.56 M parameters for one channel). The default norm is "none":
    with the paper's batch sizes of 1-2 it beat batch norm in 9 of 10 small-scale comparisons
    (experiments/tiny_strategies). Input height and width must be divisible by
    2**(len(widths) - 1).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int | None = None,
        widths: Sequence[int] = (64, 128, 256, 512),
        norm: str = "none",
        circular_padding: bool = True,
        residual: bool = True,
    ) -> None:
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        if residual and out_channels != in_channels:
            raise ValueError("UNet: a residual U-Net needs out_channels == in_channels")
        if norm not in NORMS:
            raise ValueError(f"UNet: norm must be one of {NORMS}, got {norm!r}")
        widths = list(widths)
        first_padding = "circular" if circular_padding else "zeros"
        self.residual = residual
        self.depth = len(widths)
        self.encoders = nn.ModuleList()
        for i, width in enumerate(widths):
            c_in = in_channels if i == 0 else widths[i - 1]
            padding = first_padding if i == 0 else "zeros"
            self.encoders.append(
                nn.Sequential(
                    conv_norm_relu(c_in, width, norm, padding), conv_norm_relu(width, width, norm)
                )
            )
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for i in reversed(range(1, len(widths))):
            self.ups.append(
                nn.Sequential(
                    nn.Upsample(scale_factor=2), conv_norm_relu(widths[i], widths[i - 1], norm)
                )
            )
            self.decoders.append(
                nn.Sequential(
                    conv_norm_relu(2 * widths[i - 1], widths[i - 1], norm),
                    conv_norm_relu(widths[i - 1], widths[i - 1], norm),
                )
            )
        self.head = nn.Conv2d(widths[0], out_channels, 1)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factor = 2 ** (self.depth - 1)
        if x.shape[-1] % factor or x.shape[-2] % factor:
            raise ValueError(
                f"UNet with {self.depth} scales needs H and W divisible by {factor}, "
                f"got {tuple(x.shape[-2:])}"
            )
        skips = []
        h = x
        for i, encoder in enumerate(self.encoders):
            h = encoder(h if i == 0 else self.pool(h))
            skips.append(h)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips[:-1]), strict=True):
            h = decoder(torch.cat([skip, up(h)], dim=1))
        out = self.head(h)
        return x + out if self.residual else out
