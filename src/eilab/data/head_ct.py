"""Real head CT: the InVesalius example skull scan shipped by Debian's ``invesalius-examples``.

``Cranium.inv3`` (GPL-2) is a tar.gz holding ``main.plist`` (shape, dtype, voxel spacing) and
``matrix.dat``: a raw volume (slices, rows, columns) of int16 little-endian Hounsfield units,
108 × 256 × 256 axial slices of 0.957 mm pixels, 1.5 mm apart. ``make data``
(``python -m eilab.data.prepare``) installs it.

Slices are windowed to [0, 1] and resampled to img_size². Neighbouring slices 1.5 mm apart are
nearly the same image, so the splits are contiguous slabs of slices with ``gap`` slices thrown
away between any two of them: no slice of one split lies within ``gap`` slices of a slice of
another (see :func:`slab_split`, which checks it).
"""

from __future__ import annotations

import functools
import logging
import os
import plistlib
import tarfile
import zlib
from itertools import combinations
from pathlib import Path

import numpy as np
import torch
from skimage.transform import resize

from eilab.data.splits import SPLITS, ImageSplits, SplitOverlapError

log = logging.getLogger(__name__)

#: Where Debian's ``invesalius-examples`` puts the scan, relative to the root it unpacks into.
DEBIAN_FILE = "usr/share/doc/invesalius-examples/examples/Cranium.inv3"
#: Where ``make data`` unpacks the package when apt cannot install its docs (non-root, or a
#: slim image whose dpkg excludes /usr/share/doc).
UNPACK_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "eilab" / "debian"
#: Air (-1000 HU) -> 0, water (0 HU) -> 0.4, dense cortical bone (1500 HU) -> 1. A wide window
#: keeps air, soft tissue and the skull's inner structure; only teeth, metal and the densest
#: petrous bone (0.6 % of the head's voxels in Cranium.inv3) saturate. The scan's own
#: soft-tissue window (level -18, width 406) would flatten the whole skull to white.
WIDE_WINDOW = (-1000.0, 1500.0)
#: Hounsfield units above which a pixel counts as tissue (fat, soft tissue, bone), not air.
TISSUE_HU = -200.0
GET_IT = (
    "run `make data` (python -m eilab.data.prepare), or as root on Debian/Ubuntu "
    "`apt-get install invesalius-examples`; elsewhere extract that package's .deb "
    "(`dpkg-deb -x invesalius-examples_*.deb DIR`) and set EILAB_HEAD_CT to the Cranium.inv3 in it"
)


def find_head_ct(path: str | os.PathLike | None = None) -> Path:
    """The Cranium.inv3 file: ``path`` if given, else the first that exists of
    ``$EILAB_HEAD_CT``, Debian's installed place, and the package unpacked under UNPACK_DIR.
    """
    if path is not None:
        candidates = [Path(path)]
    else:
        env = os.environ.get("EILAB_HEAD_CT")
        candidates = [Path(env)] if env else []
        candidates += [Path("/") / DEBIAN_FILE, UNPACK_DIR / DEBIAN_FILE]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    searched = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"head CT file not found (searched: {searched}); to get it, {GET_IT}")


def load_inv3(path: str | os.PathLike) -> tuple[np.ndarray, tuple[float, ...]]:
    """Volume (slices, rows, columns) in Hounsfield units and spacing from an InVesalius .inv3.

    The result is read-only and cached per (file, size, mtime) within the process: reading the
    108-slice example takes about 0.15 s, so there is no on-disk cache.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"head CT file not found: {path}; to get it, {GET_IT}")
    stat = path.stat()
    return _load_inv3(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _load_inv3(path: str, size: int, mtime_ns: int) -> tuple[np.ndarray, tuple[float, ...]]:
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:gz") as archive:
            for member in archive:
                name = Path(member.name).name
                if member.isfile() and name in ("main.plist", "matrix.dat"):
                    members[name] = archive.extractfile(member).read()
                    if len(members) == 2:
                        break
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise ValueError(f"{path}: not a readable .inv3 (tar.gz) file: {error}") from error
    if len(members) < 2:
        missing = sorted({"main.plist", "matrix.dat"} - set(members))
        raise ValueError(f"{path}: not an InVesalius project, it lacks {missing}")
    try:
        info = plistlib.loads(members["main.plist"])
        shape = tuple(int(n) for n in info["matrix"]["shape"])
        dtype = np.dtype(info["matrix"].get("dtype", "int16")).newbyteorder("<")
        spacing = tuple(float(s) for s in info.get("spacing", (1.0, 1.0, 1.0)))
    except (plistlib.InvalidFileException, KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: main.plist has no usable matrix shape/dtype: {error}") from error
    raw = members["matrix.dat"]
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(shape) != 3 or len(raw) != expected:
        raise ValueError(
            f"{path}: matrix.dat holds {len(raw)} bytes but main.plist announces shape {shape} "
            f"of {dtype.name} ({expected} bytes); the file is truncated or corrupt"
        )
    volume = np.frombuffer(raw, dtype=dtype).reshape(shape)
    volume.setflags(write=False)
    return volume, spacing


def window_to_unit(values: np.ndarray, window: tuple[float, float] | None) -> np.ndarray:
    """Clip to ``window`` = (low, high) Hounsfield units and scale to [0, 1] (float32).

    ``window=None`` scales by the array's own min and max instead (for non-CT data).
    """
    values = np.asarray(values, dtype=np.float32)
    low, high = (values.min(), values.max()) if window is None else map(float, window)
    if not high > low:
        raise ValueError(f"window must be (low, high) with high > low, got {(low, high)}")
    return np.clip((values - low) / (high - low), 0.0, 1.0)


def square_resize(image: np.ndarray, img_size: int) -> np.ndarray:
    """Centre-crop (H, W[, C]) to a square, then resample to img_size² with anti-aliasing."""
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    image = image[top : top + side, left : left + side]
    if side == img_size:
        return image
    shape = (img_size, img_size, *image.shape[2:])
    return resize(image, shape, order=1, anti_aliasing=side > img_size, preserve_range=True)


def slab_split(
    usable: np.ndarray, n_val: int, n_test: int, gap: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slice indices (train, val, test) as slabs along the scan axis.

    ``usable`` holds the sorted indices of the slices worth keeping. The test slab sits in the
    middle of them (for a head: brain and skull, not the jaw or the vertex), the validation slab
    just above it, and training takes every remaining usable slice on both sides. Any two slices
    of different splits are more than ``gap`` indices apart, so with ``gap >= 1`` no held-out
    slice has a training neighbour.
    """
    usable = np.asarray(usable, dtype=np.int64)
    if n_test < 1 or n_val < 0 or gap < 0:
        raise ValueError(f"need n_test >= 1, n_val >= 0, gap >= 0; got {n_test}, {n_val}, {gap}")
    start = max(0, (len(usable) - n_test - n_val - gap) // 2)
    test = usable[start : start + n_test]
    after = usable[usable > test[-1] + gap] if len(test) == n_test else usable[:0]
    val = after[:n_val]
    held_out = np.concatenate([test, val])
    distance = np.abs(usable[:, None] - held_out[None, :]).min(axis=1)
    train = usable[distance > gap]
    if len(test) < n_test or len(val) < n_val or len(train) == 0:
        raise ValueError(
            f"{len(usable)} usable slices cannot hold {n_test} test and {n_val} validation "
            f"slices, gaps of {gap} slices, and at least one training slice"
        )
    check_slab_gaps({"train": train, "val": val, "test": test}, gap)
    return train, val, test


def check_slab_gaps(slabs: dict[str, np.ndarray], gap: int) -> None:
    """Raise SplitOverlapError unless slices of different splits are more than ``gap`` apart."""
    for (a, first), (b, second) in combinations(slabs.items(), 2):
        if len(first) and len(second):
            distance = int(np.abs(first[:, None] - second[None, :]).min())
            if distance <= gap:
                raise SplitOverlapError(
                    f"slices of {a} and {b} are only {distance} apart, need more than gap={gap}"
                )


def tissue_fraction(hu_slices: np.ndarray) -> np.ndarray:
    """Per slice, the fraction of pixels above TISSUE_HU (-200 HU): 0 for a slice of air."""
    return (np.asarray(hu_slices) > TISSUE_HU).mean(axis=(1, 2))


def slices_to_splits(
    slices: np.ndarray,
    usable: np.ndarray,
    img_size: int,
    n_val: int,
    n_test: int,
    window: tuple[float, float] | None,
    gap: int,
) -> ImageSplits:
    """Window, resample and slab-split a stack (slices, H, W) into (N, 1, img_size, img_size).

    Each image's source is its index in ``slices`` ("slice 42"), so ImageSplits checks that
    no slice is in two splits.
    """
    indices = slab_split(usable, n_val, n_test, gap)
    if window is None:  # one min/max for the whole stack, so slices keep relative intensities
        window = (float(slices.min()), float(slices.max()))

    def images(index: np.ndarray) -> torch.Tensor:
        stack = [square_resize(window_to_unit(slices[i], window), img_size) for i in index]
        out = np.stack(stack) if stack else np.zeros((0, img_size, img_size))
        return torch.from_numpy(out.astype(np.float32)).clamp(0, 1).unsqueeze(1)

    train, val, test = (images(i) for i in indices)
    sources = {
        split: tuple(f"slice {i}" for i in index)
        for split, index in zip(SPLITS, indices, strict=True)
    }
    return ImageSplits(train=train, val=val, test=test, sources=sources)


def head_ct_splits(
    img_size: int,
    n_val_slices: int = 5,
    n_test_slices: int = 10,
    window: tuple[float, float] = WIDE_WINDOW,
    path: str | None = None,
    gap: int = 4,
    min_tissue: float = 0.05,
) -> ImageSplits:
    """Axial slices of the real head CT as (N, 1, img_size, img_size) images in [0, 1].

    Slices with less than ``min_tissue`` of their pixels above -200 HU are dropped as near
    empty (in Cranium.inv3: the 5 slices above the vertex, leaving 103 of 108). Held-out
    slabs follow :func:`slab_split`; with the defaults: 76 train, 5 validation, 10 test slices.
    ``window`` is in Hounsfield units, see WIDE_WINDOW. ``path=None`` searches
    ``$EILAB_HEAD_CT`` and then Debian's location (see :func:`find_head_ct`).
    """
    file = find_head_ct(path)
    volume, _ = load_inv3(file)
    fraction = tissue_fraction(volume)
    usable = np.flatnonzero(fraction >= min_tissue)
    n = len(volume)
    dropped = n - len(usable)
    log.info("%s: %d of %d slices usable, %d near-empty dropped", file, len(usable), n, dropped)
    return slices_to_splits(volume, usable, img_size, n_val_slices, n_test_slices, window, gap)
