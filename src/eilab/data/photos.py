"""Natural photographs shipped inside scikit-image, as deterministic crops (for inpainting)."""

from __future__ import annotations

import numpy as np
import torch
from skimage import color, data
from skimage.transform import rescale

from eilab.data.splits import ImageSplits, check_disjoint

# Photographs of scikit-image's data module (all ship in its wheel, none is downloaded).
SKIMAGE_PHOTOS = (
    "astronaut",
    "brick",
    "camera",
    "cell",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
)


def load_photo(name: str, channels: int) -> np.ndarray:
    """One photograph as float (H, W, channels) in [0, 1], converted to grey or RGB."""
    if name not in SKIMAGE_PHOTOS:
        raise ValueError(f"unknown photograph {name!r}; choose from {SKIMAGE_PHOTOS}")
    image = np.asarray(getattr(data, name)())
    image = image.astype(np.float64) / (255.0 if image.dtype == np.uint8 else image.max())
    if image.ndim == 3 and image.shape[-1] == 4:
        image = image[..., :3]
    if channels == 1 and image.ndim == 3:
        image = color.rgb2gray(image)
    if channels == 3 and image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return image[..., None] if image.ndim == 2 else image


def photo_crops(
    names: list[str], img_size: int, crops_per_photo: int, scale: float, channels: int, seed: int
) -> torch.Tensor:
    """Seeded random img_size² crops of each photograph, after rescaling it by ``scale``.

    Crops of one photograph may overlap each other; they always go to the same split.
    """
    rng = np.random.default_rng(seed)
    crops = []
    for name in names:
        photo = rescale(load_photo(name, channels), scale, channel_axis=-1, anti_aliasing=True)
        height, width = photo.shape[:2]
        if min(height, width) < img_size:
            raise ValueError(f"photograph {name!r} rescaled by {scale} is smaller than {img_size}")
        for _ in range(crops_per_photo):
            i, j = rng.integers(0, height - img_size + 1), rng.integers(0, width - img_size + 1)
            crops.append(photo[i : i + img_size, j : j + img_size])
    return torch.tensor(np.stack(crops), dtype=torch.float32).permute(0, 3, 1, 2).clamp(0, 1)


def photo_splits(
    img_size: int,
    train: list[str],
    val: list[str],
    test: list[str],
    crops_per_photo: int = 4,
    scale: float = 0.5,
    channels: int = 3,
    seed: int = 0,
) -> ImageSplits:
    """Train, validation and test crops come from three disjoint sets of photographs.

    Every photograph gives ``crops_per_photo`` crops to its own split only, so no validation or
    test pixel is ever trained on, and choosing settings on validation never looks at a test
    photograph. A photograph named in two lists raises SplitOverlapError.
    """
    names = {"train": list(train), "val": list(val), "test": list(test)}
    check_disjoint(names, "photographs")
    empty = [split for split, photos in names.items() if not photos]
    if empty:
        raise ValueError(f"photo_splits: no photograph for {empty}")
    crops = {
        split: photo_crops(photos, img_size, crops_per_photo, scale, channels, seed)
        for split, photos in names.items()
    }
    sources = {
        split: tuple(name for name in photos for _ in range(crops_per_photo))
        for split, photos in names.items()
    }
    return ImageSplits(**crops, sources=sources)
