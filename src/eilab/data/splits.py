"""Train / validation / test image tensors, the common output of every dataset source."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from itertools import combinations

import torch

SPLITS = ("train", "val", "test")


class SplitOverlapError(ValueError):
    """Two splits share a source (photograph, slice, file): held-out numbers would leak."""


def check_disjoint(items: Mapping[str, Iterable[Hashable]], what: str) -> None:
    """Raise SplitOverlapError naming every pair of splits that share one of ``what``."""
    sets = {name: set(values) for name, values in items.items()}
    clashes = [
        f"{a} and {b} share {sorted(map(str, sets[a] & sets[b]))}"
        for a, b in combinations(sets, 2)
        if sets[a] & sets[b]
    ]
    if clashes:
        raise SplitOverlapError(f"{what} in two splits: " + "; ".join(clashes))


@dataclass(frozen=True)
class ImageSplits:
    """Disjoint image sets, each (N, C, H, W) with values in [0, 1].

    ``sources``, when a loader knows them, names where each image came from, per split (a
    photograph's name for every crop of it, a slice's index): they must not repeat across
    splits, which is checked here, so a loader cannot hand out a leaking split.
    """

    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    sources: Mapping[str, tuple[str, ...]] | None = None

    def __post_init__(self) -> None:
        shapes = {name: tuple(getattr(self, name).shape[1:]) for name in SPLITS}
        if len(set(shapes.values())) != 1 or any(len(s) != 3 for s in shapes.values()):
            raise ValueError(f"ImageSplits: every split must be (N, C, H, W) alike, got {shapes}")
        if self.sources is not None:
            counts = {
                name: (len(self.sources.get(name, ())), len(getattr(self, name))) for name in SPLITS
            }
            if any(n_sources != n_images for n_sources, n_images in counts.values()):
                raise ValueError(f"ImageSplits: sources and images differ in number: {counts}")
            check_disjoint(self.sources, "image sources")


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
