"""Pairs (x, y): measurements simulated once with a seeded noise draw and kept fixed, or, for
simulation studies, noise drawn anew each epoch from a seed of (noise seed, epoch, index)."""

from __future__ import annotations

import numpy as np
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


@torch.no_grad()
def noiseless(images: torch.Tensor, physics: nn.Module, chunk: int = 64) -> torch.Tensor:
    """A x for every image, in chunks: the measurements before any noise."""
    return torch.cat([physics.A(images[i : i + chunk]) for i in range(0, len(images), chunk)])


def check_images(owner: str, images: torch.Tensor) -> None:
    """Refuse anything but a (N, C, H, W) stack of images, naming the shape."""
    if images.dim() != 4:
        raise ValueError(f"{owner}: images must be (N, C, H, W), got {tuple(images.shape)}")


def draw_seed(seed: int, epoch: int, index: int) -> int:
    """A 64-bit seed for item ``index`` in ``epoch``: well mixed, so no two items share a stream."""
    entropy = [seed % 2**64, epoch, index]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0])


class MeasurementDataset(Dataset):
    """Images (N, C, H, W) and their measurements; items are {"x": x_i, "y": y_i}.

    One acquisition per image, as in the real world: the noise is drawn once here, not per
    epoch. Self-supervised strategies only ever read "y".
    """

    def __init__(self, images: torch.Tensor, physics: nn.Module, seed: int = 0) -> None:
        check_images("MeasurementDataset", images)
        self.images = images
        self.measurements = simulate(images, physics, seed)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x": self.images[index], "y": self.measurements[index]}


class FreshNoiseDataset(Dataset):
    """Images and their noiseless A x; each item's noise is drawn when it is read.

    For simulation studies (``fresh_noise: true``): item ``i`` in epoch ``e`` is
    ``physics.noise(A x_i)`` drawn with a generator seeded by (``seed``, e, i), so a network
    never sees the same noise twice, yet two runs (or a run and its resumption) draw the same.
    ``epoch`` is set by :meth:`MeasurementDataModule.set_epoch` before each epoch's loader
    iterator exists; DataLoader workers copy the dataset when that iterator starts them.
    """

    def __init__(self, images: torch.Tensor, physics: nn.Module, seed: int = 0) -> None:
        check_images("FreshNoiseDataset", images)
        if getattr(physics, "noise", None) is None:
            raise ValueError(
                "FreshNoiseDataset: the physics has no noise model, so there is no noise to "
                "redraw each epoch (choose one with noise=gaussian|poisson|...)"
            )
        self.images, self.noise, self.seed = images, physics.noise, seed
        self.noiseless = noiseless(images, physics)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.images)

    @torch.no_grad()
    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(draw_seed(self.seed, self.epoch, int(index)))
        y = self.noise(self.noiseless[index][None], generator=generator)[0]
        return {"x": self.images[index], "y": y}
