"""The paper's Fig. 3 toy: 1-D signals that are scaled copies of one triangle."""

from __future__ import annotations

import torch

from eilab.data.splits import ImageSplits, split_by_count


def triangle_signals(
    count: int, length: int = 32, width: int = 8, shift_invariant: bool = True, seed: int = 0
) -> torch.Tensor:
    """(count, 1, 1, length) signals: a triangle of random height in (0.2, 1].

    With ``shift_invariant`` each triangle sits at a random cyclic position, so the set is
    invariant to shifts (Fig. 3, right); otherwise all sit at the same place (Fig. 3, left).
    """
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length, dtype=torch.float32)
    triangle = (1 - (t - width).abs() / width).clamp_min(0)
    heights = 0.2 + 0.8 * torch.rand(count, generator=g)
    shifts = torch.randint(length, (count,), generator=g) if shift_invariant else torch.zeros(count)
    signals = [h * torch.roll(triangle, int(s)) for h, s in zip(heights, shifts, strict=True)]
    return torch.stack(signals)[:, None, None, :]


def triangle_splits(
    length: int = 32,
    width: int = 8,
    shift_invariant: bool = True,
    n_train: int = 90,
    n_val: int = 10,
    n_test: int = 10,
    seed: int = 0,
) -> ImageSplits:
    """Independent triangle signals for train, validation and test."""
    count = n_train + n_val + n_test
    signals = triangle_signals(count, length, width, shift_invariant, seed)
    return split_by_count(signals, n_train, n_val, n_test)
