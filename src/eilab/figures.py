"""Figures of reconstructions: ground truth beside each method, PSNR in every title."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from eilab.metrics import psnr


def to_display(image: np.ndarray) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W) grey or (H, W, 3) RGB for imshow."""
    image = np.clip(image, 0.0, 1.0)
    return image.transpose(1, 2, 0) if image.shape[0] == 3 else image[0]


def save_reconstruction_grid(truth: np.ndarray, methods: dict[str, np.ndarray], path: Path) -> None:
    """One row per image: ground truth, then each method's reconstruction with its PSNR.

    ``truth`` and every entry of ``methods`` are (N, C, H, W) arrays of the same N images.
    """
    from matplotlib.figure import Figure

    columns = [("ground truth", truth), *methods.items()]
    rows = len(truth)
    figure = Figure(figsize=(2.4 * len(columns), 2.6 * rows + 0.4), layout="constrained")
    axes = np.asarray(figure.subplots(rows, len(columns), squeeze=False))
    for row in range(rows):
        for axis, (name, images) in zip(axes[row], columns, strict=True):
            axis.imshow(to_display(images[row]), cmap="gray", vmin=0.0, vmax=1.0)
            axis.set_axis_off()
            if images is truth:
                axis.set_title(name, fontsize=10)
                continue
            estimate, reference = (torch.from_numpy(a[row : row + 1]) for a in (images, truth))
            value = psnr(estimate, reference)
            axis.set_title(f"{name}\n{float(value):.2f} dB", fontsize=10)
    figure.savefig(path, dpi=120, bbox_inches="tight")
