"""Pairs (x, y) with measurements simulated once, with a seeded noise draw, then kept fixed."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset


@torch.no_grad()
def simulate(
    images: torch.Tensor, physics: nn.Module, seed: int = 0, chunk: int = 64
) -> torch.Tensor:
    """y = physics(x) for every image, in chunks, with one seeded noise draw per image."""
    generator = torch.Generator().manual_seed(seed)
    return torch.cat(
        [physics(images[i : i + chunk], generator) for i in range(0, len(images), chunk)]
    )


class MeasurementDataset(Dataset):
    """Images (N, C, H, W) and their measurements; items are {"x": x_i, "y": y_i}.

    One acquisition per image, as in the real world: the noise is drawn once here, not per
    epoch. Self-supervised strategies only ever read "y".
    """

    def __init__(self, images: torch.Tensor, physics: nn.Module, seed: int = 0) -> None:
        if images.dim() != 4:
            raise ValueError(
                f"MeasurementDataset: images must be (N, C, H, W), got {tuple(images.shape)}"
            )
        self.images = images
        self.measurements = simulate(images, physics, seed)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x": self.images[index], "y": self.measurements[index]}
