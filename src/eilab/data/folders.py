"""Users' own data: image folders, CT100 (.mat), Urban100 and DICOM series.

Every loader returns :class:`ImageSplits` with images in [0, 1], files taken in sorted order
so a run is reproducible, and raises an error that names the file it could not read: an empty
or undecodable file, or values that are NaN or infinite (with their count), which the [0, 1]
range check could not see (NaN fails every comparison).

Validation images are always held out from the training images, never taken from test, so
no setting chosen on validation has seen a test image. The paper's protocols (CT100,
Urban100: first 90 train, last 10 test) have no validation set: the last ``n_val`` of the 90
training images are held out (85 train + 5 validation with the shipped configs).

The original EI code never published how it built ``CT100_128x128.mat`` nor which Urban100
images it trained on; ``python -m eilab.data.folders`` writes both from a user's copy::

    python -m eilab.data.folders ct100 CT_SOURCE_DIR --out CT100_128x128.mat [--size 128]
    python -m eilab.data.folders urban100 URBAN100_DIR --out urban100_256

The first writes the .mat that :func:`ct100_mat_splits` reads (from DICOM files, windowed like
the head CT, or from image files); the second writes the cropped 256² PNGs into
``OUT/train`` and ``OUT/test`` for :func:`image_folder_splits` (``img_size=256, channels=3``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import scipy.io
import torch
from skimage import color, io

from eilab.data.head_ct import WIDE_WINDOW, slices_to_splits, square_resize, tissue_fraction
from eilab.data.splits import ImageSplits, split_by_count

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files under ``folder`` (any depth), sorted by their path relative to it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    files = [p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    if not files:
        raise FileNotFoundError(f"no {'/'.join(IMAGE_SUFFIXES)} images under {folder}")
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def require_finite(values: np.ndarray, source: object) -> np.ndarray:
    """Refuse NaN/Inf values, naming their source and count: they would pass any range check."""
    finite = np.isfinite(values)
    if not finite.all():
        n_nan = int(np.isnan(values).sum())
        n_inf = values.size - int(finite.sum()) - n_nan
        raise ValueError(
            f"{source} holds {n_nan} NaN and {n_inf} infinite values (of {values.size}): "
            "fix or remove it"
        )
    return values


def require_nonempty(path: str | os.PathLike) -> None:
    """Name an empty image file plainly (imageio would search for a backend and suggest pip)."""
    if Path(path).stat().st_size == 0:
        raise ValueError(f"cannot read image {path}: the file is empty (0 bytes)")


def decode_error(error: Exception) -> str:
    """The first line of a decoder's error, without imageio's plugin suggestions."""
    first = (str(error).splitlines() or [type(error).__name__])[0]
    if first.startswith("Could not find a backend"):  # no installed decoder accepts the bytes
        return "not a valid image file (no decoder recognises its content)"
    return first


def read_image(path: str | os.PathLike, channels: int) -> np.ndarray:
    """One image as float (H, W, channels); integer types are scaled to [0, 1], floats kept."""
    require_nonempty(path)
    try:
        image = np.asarray(io.imread(path))
    except Exception as error:  # decoders raise many types (OSError, ValueError, SyntaxError)
        raise ValueError(f"cannot read image {path}: {decode_error(error)}") from None
    if image.dtype == bool:
        image = image.astype(np.float64)
    elif np.issubdtype(image.dtype, np.integer):
        image = image.astype(np.float64) / np.iinfo(image.dtype).max
    elif not np.issubdtype(image.dtype, np.floating) or image.ndim not in (2, 3):
        raise ValueError(f"{path}: unsupported image of dtype {image.dtype}, shape {image.shape}")
    return convert_channels(require_finite(image.astype(np.float64), path), channels, path)


def convert_channels(image: np.ndarray, channels: int, name: object = "image") -> np.ndarray:
    """(H, W) or (H, W, C) -> (H, W, channels): RGBA drops alpha, RGB <-> grey as needed.

    ``channels=2`` is a complex image for MRI: the grey image as real part, zero imaginary part.
    """
    if image.ndim == 3 and image.shape[-1] == 4:
        image = image[..., :3]
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if channels in (1, 2) and image.ndim == 3:
        image = color.rgb2gray(image)
    if channels == 2:
        image = np.stack([image, np.zeros_like(image)], axis=-1)
    if channels == 3 and image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    image = image[..., None] if image.ndim == 2 else image
    if image.shape[-1] != channels:
        raise ValueError(f"{name}: cannot make {channels} channels from shape {image.shape}")
    return image


def to_tensors(stacks: list[list[np.ndarray]], rescale_note: str) -> list[torch.Tensor]:
    """(H, W, C) arrays -> (N, C, H, W) float32 in [0, 1], each list of arrays one tensor.

    Values outside [0, 1] are min/max-scaled with one scale for all lists, so the splits of a
    dataset keep the same intensities. Callers have refused NaN/Inf (require_finite).
    """
    arrays = [np.stack(images).astype(np.float32) for images in stacks]
    low = min(float(a.min()) for a in arrays)
    high = max(float(a.max()) for a in arrays)
    if low < 0 or high > 1:
        if high <= low:
            raise ValueError(f"{rescale_note}: constant images cannot be scaled to [0, 1]")
        arrays = [(a - low) / (high - low) for a in arrays]
    return [
        torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).clamp(0, 1) for a in arrays
    ]


def to_tensor(images: list[np.ndarray], rescale_note: str) -> torch.Tensor:
    """One stack of (H, W, C) arrays as (N, C, H, W) float32 in [0, 1] (see to_tensors)."""
    return to_tensors([images], rescale_note)[0]


def read_resized(files: list[Path], img_size: int, channels: int) -> list[np.ndarray]:
    """Read, centre-crop to square, resample to img_size² (anti-aliased)."""
    return [square_resize(read_image(f, channels), img_size) for f in files]


def load_images(files: list[Path], img_size: int, channels: int) -> torch.Tensor:
    """The files as one (N, C, H, W) tensor in [0, 1] (see read_resized, to_tensors)."""
    return to_tensor(read_resized(files, img_size, channels), f"images in {files[0].parent}")


def protocol_splits(images: torch.Tensor, n_train: int, n_val: int, n_test: int) -> ImageSplits:
    """First ``n_train`` images train (the last ``n_val`` held out), last ``n_test`` test."""
    if n_train < 1 or n_test < 1 or n_val < 0 or n_train + n_test > len(images):
        raise ValueError(
            f"cannot take {n_train} train and {n_test} test images (n_val={n_val}) "
            f"from {len(images)} images"
        )
    train, test = images[:n_train], images[len(images) - n_test :]
    return with_val(train, test, n_val)


def with_val(train: torch.Tensor, test: torch.Tensor, n_val: int) -> ImageSplits:
    """ImageSplits whose validation set is the last ``n_val`` training images, held out."""
    if n_val < 0 or n_val >= len(train):
        raise ValueError(f"n_val={n_val} leaves no training image of {len(train)}")
    cut = len(train) - n_val
    return ImageSplits(train=train[:cut], val=train[cut:], test=test)


def image_folder_splits(
    root: str,
    img_size: int,
    channels: int = 1,
    n_train: int | None = None,
    n_val: int = 5,
    n_test: int = 10,
) -> ImageSplits:
    """PNG/JPEG/TIFF/BMP images of a folder, centre-cropped square and resampled to img_size².

    Layout ``root/train`` + ``root/test`` (+ optional ``root/val``; images at any depth, as for
    torchvision's ImageFolder): those sets; without ``root/val`` the last ``n_val`` training
    images are held out for validation; ``n_train``/``n_test`` are then ignored. Otherwise
    every image under ``root`` in sorted order, split into contiguous blocks train | val | test
    of ``n_train`` (default: all the rest), ``n_val`` and ``n_test`` images. 8/16-bit images
    are scaled to [0, 1]; float images outside [0, 1] are min/max-scaled over all splits with
    one scale. ``channels=2`` gives grey images a zero imaginary channel (MRI).
    """
    root_path = Path(root)
    if (root_path / "train").is_dir() and (root_path / "test").is_dir():
        names = [n for n in ("train", "test", "val") if (root_path / n).is_dir()]
        stacks = [read_resized(list_images(root_path / n), img_size, channels) for n in names]
        loaded = dict(zip(names, to_tensors(stacks, f"images in {root}"), strict=True))
        if "val" in loaded:
            return ImageSplits(**loaded)
        return with_val(loaded["train"], loaded["test"], n_val)
    files = list_images(root_path)
    n_train = len(files) - n_val - n_test if n_train is None else n_train
    if n_train < 1:
        raise ValueError(f"{root}: {len(files)} images leave no training image")
    return split_by_count(load_images(files, img_size, channels), n_train, n_val, n_test)


def ct100_mat_splits(
    path: str,
    img_size: int = 128,
    n_train: int = 90,
    n_val: int = 5,
    n_test: int = 10,
) -> ImageSplits:
    """CT100 as the original EI code reads it: ``loadmat(path)['DATA']``, images on axis 0.

    ``DATA`` is (N, H, W) or (N, 1, H, W). First ``n_train`` images train, the last ``n_val``
    of them held out for validation, last ``n_test`` test (90 / 10 of 100 in the paper, which
    has no validation set). NaN/Inf values are refused. Values outside
    [0, 1] are min/max-scaled over the whole array (one scale for all images, so relative
    intensities survive). Images are resampled to img_size² if they are another size.
    """
    try:
        mat = scipy.io.loadmat(path)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"CT100 .mat file not found: {path}") from error
    except NotImplementedError as error:  # MATLAB v7.3 (HDF5)
        raise ValueError(f"{path}: MATLAB v7.3 files are not supported; save with -v7") from error
    except Exception as error:
        raise ValueError(f"{path}: not a readable .mat file: {error}") from error
    if "DATA" not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise ValueError(f"{path}: no variable 'DATA' (found {keys})")
    data = np.asarray(mat["DATA"])
    if data.ndim == 4 and data.shape[1] == 1:
        data = data[:, 0]
    if data.ndim != 3 or not np.issubdtype(data.dtype, np.number):
        raise ValueError(f"{path}: DATA must be numeric (N, H, W), got {data.dtype} {data.shape}")
    require_finite(data, f"{path}: DATA")
    images = [square_resize(image.astype(np.float64)[..., None], img_size) for image in data]
    return protocol_splits(to_tensor(images, str(path)), n_train, n_val, n_test)


def urban100_image(path: str | os.PathLike, img_size: int, crop: int, channels: int) -> np.ndarray:
    """The original preprocessing: RGB, centre crop crop², bilinear resize to img_size² (PIL)."""
    from PIL import Image

    require_nonempty(path)
    try:
        with Image.open(path) as opened:
            pixels, image = np.asarray(opened), opened.convert("RGB")
    except Exception as error:
        raise ValueError(f"cannot read image {path}: {decode_error(error)}") from None
    require_finite(pixels, path)  # a float TIFF's RGB conversion would hide NaN
    width, height = image.size
    if min(width, height) < crop:
        raise ValueError(f"{path}: {width}×{height} is smaller than the {crop}² centre crop")
    left, top = round((width - crop) / 2), round((height - crop) / 2)
    image = image.crop((left, top, left + crop, top + crop))
    image = image.resize((img_size, img_size), Image.Resampling.BILINEAR)
    return convert_channels(np.asarray(image, dtype=np.float64) / 255.0, channels, path)


def urban100_files(root: str | os.PathLike) -> tuple[list[Path], list[Path] | None]:
    """``root/train`` + ``root/test`` file lists if both exist, else (all files, None)."""
    root = Path(root)
    if (root / "train").is_dir() and (root / "test").is_dir():
        return list_images(root / "train"), list_images(root / "test")
    return list_images(root), None


def urban100_splits(
    root: str,
    img_size: int = 256,
    channels: int = 3,
    crop: int = 512,
    n_train: int = 90,
    n_val: int = 5,
    n_test: int = 10,
) -> ImageSplits:
    """Urban100 with the original EI preprocessing: centre crop 512², bilinear resize to 256².

    ``root`` holds either ``train/`` and ``test/`` folders (the original code's ImageFolder
    layout) or the 100 images; then, in sorted order, the first 90 train and the last 10 test.
    The last ``n_val`` training images are held out for validation (module doc).
    """
    train_files, test_files = urban100_files(root)

    def load(files: list[Path]) -> torch.Tensor:
        return to_tensor([urban100_image(f, img_size, crop, channels) for f in files], root)

    if test_files is not None:
        return with_val(load(train_files), load(test_files), n_val)
    return protocol_splits(load(train_files), n_train, n_val, n_test)


class MixedDicomSeriesError(ValueError):
    """A DICOM folder holds slices of more than one series."""


def refuse_mixed_series(entries: list[tuple], root: Path) -> None:
    """Refuse slices ``((series, ...), name, hu, file)`` of more than one series, naming each."""
    series: dict[str, list[np.ndarray]] = {}
    for (uid, *_), _, hu, _ in entries:
        series.setdefault(uid, []).append(hu)
    if len(series) > 1:
        listed = "; ".join(
            f"{uid or 'no SeriesInstanceUID'}: {len(slices)} slices of "
            f"{'/'.join(sorted({'x'.join(map(str, s.shape)) for s in slices}))}"
            for uid, slices in series.items()
        )
        raise MixedDicomSeriesError(
            f"{root} holds {len(series)} DICOM series ({listed}): point dataset.root at the "
            "folder of one series, or narrow dataset.pattern to its files"
        )


def read_dicom_stack(
    root: str | os.PathLike, pattern: str = "*.dcm"
) -> tuple[np.ndarray, list[Path]]:
    """Slices (N, H, W) in Hounsfield units (rescale slope/intercept applied), in scan order.

    Files matching ``pattern`` at any depth under ``root``; sorted by series, then position
    along the slice normal (ImagePositionPatient · normal of ImageOrientationPatient), then
    InstanceNumber, then file name. Slices of another size are centre-cropped and resampled to
    the first slice's size. Slices of more than one series are a :class:`MixedDicomSeriesError`.
    """
    try:
        import pydicom
    except ImportError as error:
        raise ImportError("reading DICOM needs pydicom: pip install pydicom") from error
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"DICOM folder not found: {root}")
    files = sorted(p for p in root.rglob(pattern) if p.is_file())
    if not files:
        raise FileNotFoundError(f"no DICOM files matching {pattern!r} under {root}")
    entries = []
    for file in files:
        try:
            ds = pydicom.dcmread(file)
            pixels = ds.pixel_array.astype(np.float64)
        except Exception as error:
            raise ValueError(f"cannot read DICOM file {file}: {error}") from error
        if pixels.ndim != 2:
            raise ValueError(f"{file}: expected one greyscale slice, got shape {pixels.shape}")
        hu = pixels * float(ds.get("RescaleSlope", 1) or 1) + float(ds.get("RescaleIntercept", 0))
        require_finite(hu, f"DICOM file {file}")
        position = 0.0
        if "ImagePositionPatient" in ds:
            orientation = np.asarray(ds.get("ImageOrientationPatient") or [1, 0, 0, 0, 1, 0], float)
            normal = np.cross(orientation[:3], orientation[3:])
            position = float(np.dot(np.asarray(ds.ImagePositionPatient, float), normal))
        key = (str(ds.get("SeriesInstanceUID", "")), position, int(ds.get("InstanceNumber") or 0))
        entries.append((key, file.as_posix(), hu, file))
    refuse_mixed_series(entries, root)
    entries.sort(key=lambda entry: entry[:2])
    size = min(entries[0][2].shape)
    stack = np.stack([square_resize(entry[2], size) for entry in entries])
    return stack, [entry[3] for entry in entries]


def dicom_folder_splits(
    root: str,
    img_size: int,
    n_val: int = 5,
    n_test: int = 10,
    window: tuple[float, float] | None = WIDE_WINDOW,
    gap: int = 4,
    min_tissue: float = 0.05,
    pattern: str = "*.dcm",
) -> ImageSplits:
    """A DICOM CT series (one per folder) as slabs of slices, exactly like the head CT.

    Slices in scan order (:func:`read_dicom_stack`), windowed to [0, 1] by ``window`` in
    Hounsfield units (``None``: min/max of the whole series, e.g. for MR), resampled to
    img_size², near-empty slices (under ``min_tissue`` of pixels above -200 HU) dropped, and
    split into train / validation / test slabs with ``gap`` slices between them.
    """
    stack, _ = read_dicom_stack(root, pattern)
    usable = np.flatnonzero(tissue_fraction(stack) >= min_tissue)
    return slices_to_splits(stack, usable, img_size, n_val, n_test, window, gap)


def write_ct100_mat(
    source: str, out: str, size: int = 128, window: tuple[float, float] | None = WIDE_WINDOW
) -> np.ndarray:
    """CT images of ``source`` -> ``out`` .mat with DATA (N, size, size) float32 in [0, 1].

    DICOM files (``*.dcm``) are windowed in Hounsfield units; otherwise image files are read
    in sorted order, converted to grey and min/max-scaled as in :func:`image_folder_splits`.
    """
    from eilab.data.head_ct import window_to_unit

    if any(Path(source).rglob("*.dcm")):
        stack, _ = read_dicom_stack(source)
        if window is None:
            window = (float(stack.min()), float(stack.max()))
        data = np.stack([square_resize(window_to_unit(s, window), size) for s in stack])
    else:
        data = load_images(list_images(source), size, channels=1)[:, 0].numpy()
    data = np.clip(data, 0, 1).astype(np.float32)
    scipy.io.savemat(out, {"DATA": data})
    return data


def write_urban100_folders(root: str, out: str, img_size: int = 256, crop: int = 512) -> int:
    """Preprocessed Urban100 PNGs into ``out/train`` and ``out/test`` (first 90 / last 10)."""
    from PIL import Image

    train_files, test_files = urban100_files(root)
    if test_files is None:
        if len(train_files) < 100:
            raise ValueError(f"{root}: expected the 100 Urban100 images, found {len(train_files)}")
        train_files, test_files = train_files[:90], train_files[-10:]
    for split, files in (("train", train_files), ("test", test_files)):
        (Path(out) / split).mkdir(parents=True, exist_ok=True)
        for file in files:
            image = urban100_image(file, img_size, crop, channels=3)
            pixels = np.round(image * 255).astype(np.uint8)
            Image.fromarray(pixels).save(Path(out) / split / f"{file.stem}.png")
    return len(train_files) + len(test_files)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m eilab.data.folders",
        description="Preprocess CT100 / Urban100 the way the original EI experiments need them.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    ct100 = commands.add_parser("ct100", help="CT slices (DICOM or images) -> CT100-style .mat")
    ct100.add_argument("source", help="folder of *.dcm files or of PNG/JPEG/TIFF images")
    ct100.add_argument("--out", required=True, help="output .mat (variable DATA)")
    ct100.add_argument("--size", type=int, default=128, help="output side (default 128)")
    urban = commands.add_parser("urban100", help="Urban100 -> centre-cropped 256² PNG folders")
    urban.add_argument("root", help="folder of the 100 images, or with train/ and test/")
    urban.add_argument("--out", required=True, help="output folder (gets train/ and test/)")
    urban.add_argument("--size", type=int, default=256, help="output side (default 256)")
    args = parser.parse_args(argv)
    if args.command == "ct100":
        data = write_ct100_mat(args.source, args.out, args.size)
        print(f"wrote {args.out}: DATA {data.shape} float32 in [0, 1]")
    else:
        count = write_urban100_folders(args.root, args.out, args.size)
        print(f"wrote {count} images to {args.out}/train and {args.out}/test")


if __name__ == "__main__":
    main()
