"""Train / validation / test image tensors, the common output of every dataset source."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ImageSplits:
    """Disjoint image sets, each (N, C, H, W) with values in [0, 1]."""

    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor

    def __post_init__(self) -> None:
        shapes = {name: tuple(getattr(self, name).shape[1:]) for name in ("train", "val", "test")}
        if len(set(shapes.values())) != 1 or any(len(s) != 3 for s in shapes.values()):
            raise ValueError(f"ImageSplits: every split must be (N, C, H, W) alike, got {shapes}")


def split_by_count(images: torch.Tensor, n_train: int, n_val: int, n_test: int) -> ImageSplits:
    """Contiguous blocks train | val | test from the front of ``images``."""
    needed = n_train + n_val + n_test
    if needed > len(images):
        raise ValueError(f"asked for {needed} images (train+val+test) but only {len(images)} exist")
    return ImageSplits(
        train=images[:n_train],
        val=images[n_train : n_train + n_val],
        test=images[n_train + n_val : needed],
    )
