"""Procedural random-ellipse phantoms: always available, any size, seeded."""

from __future__ import annotations

import math

import torch

from eilab.data.splits import ImageSplits, split_by_count


def random_ellipses(count: int, img_size: int, n_ellipses: int = 8, seed: int = 0) -> torch.Tensor:
    """(count, 1, N, N) phantoms in [0, 1]: a body ellipse plus smaller ones of random intensity."""
    g = torch.Generator().manual_seed(seed)
    coord = torch.linspace(-1, 1, img_size)
    yy, xx = torch.meshgrid(coord, coord, indexing="ij")
    images = torch.zeros(count, 1, img_size, img_size)
    for i in range(count):
        image = 0.3 * _ellipse(xx, yy, 0, 0, 0.85, 0.7, float(torch.rand(1, generator=g)) * math.pi)
        for _ in range(n_ellipses):
            cx, cy = (torch.rand(2, generator=g) - 0.5) * 1.0
            a, b = 0.05 + torch.rand(2, generator=g) * 0.3
            angle = float(torch.rand(1, generator=g)) * math.pi
            value = float(torch.rand(1, generator=g)) * 0.7 - 0.2
            shape = (float(cx), float(cy), float(a), float(b), angle)
            image = image + value * _ellipse(xx, yy, *shape)
        images[i, 0] = image.clamp(0, 1)
    return images


def _ellipse(xx, yy, cx: float, cy: float, a: float, b: float, angle: float) -> torch.Tensor:
    cos, sin = math.cos(angle), math.sin(angle)
    u = (xx - cx) * cos + (yy - cy) * sin
    v = -(xx - cx) * sin + (yy - cy) * cos
    return ((u / a) ** 2 + (v / b) ** 2 <= 1).float()


def with_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Grey (N, 1, H, W) images as 1 channel, 2 (real, zero imaginary: MRI) or 3 (RGB)."""
    if channels == 2:
        return torch.cat([images, torch.zeros_like(images)], dim=1)
    if channels in (1, 3):
        return images.expand(-1, channels, -1, -1).contiguous()
    raise ValueError(f"ellipse phantoms come with 1, 2 (complex) or 3 channels, not {channels}")


def ellipse_splits(
    img_size: int,
    n_train: int = 90,
    n_val: int = 10,
    n_test: int = 10,
    seed: int = 0,
    channels: int = 1,
) -> ImageSplits:
    """Independent phantoms for train, validation and test, with ``channels`` channels."""
    images = random_ellipses(n_train + n_val + n_test, img_size, seed=seed)
    return split_by_count(with_channels(images, channels), n_train, n_val, n_test)
