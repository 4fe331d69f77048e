"""No image, photograph or slice is in two splits, for every dataset config under conf/dataset."""

from __future__ import annotations

import hashlib
import io
import plistlib
import tarfile
from collections.abc import Callable
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from PIL import Image

import eilab
from eilab.data import MeasurementDataModule, ellipse_splits
from eilab.data.head_ct import check_slab_gaps, find_head_ct, slab_split
from eilab.data.photos import SKIMAGE_PHOTOS, photo_splits
from eilab.data.splits import SPLITS, ImageSplits, SplitOverlapError
from eilab.physics.inpainting import Inpainting
from eilab.physics.noise import GaussianNoise

CONF = Path(eilab.__file__).parent / "conf" / "dataset"
CONFIGS = sorted(p.stem for p in CONF.glob("*.yaml"))


# --- small files for the folder-based configs -------------------------------------------------


def write_pngs(folder: Path, count: int, size: int, seed: int) -> None:
    """``count`` distinct random RGB PNGs of size², seeded."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img_{i:03d}.png")


def write_inv3(path: Path, n_slices: int, size: int = 16) -> Path:
    """A minimal InVesalius project whose slice i holds a disk of 10·i HU in air."""
    yy, xx = np.mgrid[:size, :size] - size / 2 + 0.5
    volume = np.full((n_slices, size, size), -1024, dtype="<i2")
    for i in range(n_slices):
        volume[i][xx**2 + yy**2 <= (size / 3) ** 2] = 10 * i
    plist = {"matrix": {"dtype": "int16", "shape": list(volume.shape)}, "spacing": [1.0] * 3}
    members = {"main.plist": plistlib.dumps(plist), "matrix.dat": volume.tobytes()}
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def write_dicom_series(folder: Path, n_slices: int) -> None:
    """pydicom's CT_small.dcm along z, slice i with 10·i HU in a square of its centre."""
    pydicom = pytest.importorskip("pydicom", reason="the dicom config needs pydicom")
    source = pydicom.data.get_testdata_file("CT_small.dcm")
    if source is None:
        pytest.skip("the dicom config's test needs pydicom's CT_small.dcm, not installed")
    folder.mkdir(parents=True)
    for i in range(n_slices):
        ds = pydicom.dcmread(source)
        pixels = ds.pixel_array.copy()
        pixels[56:72, 56:72] = round((10 * i - float(ds.RescaleIntercept)) / float(ds.RescaleSlope))
        ds.PixelData = pixels.tobytes()
        ds.ImagePositionPatient = [0.0, 0.0, 2.0 * i]
        ds.InstanceNumber = i + 1
        ds.save_as(folder / f"slice_{i:03d}.dcm")


# --- one builder per config: Hydra overrides (small sizes, files made in tmp_path) -------------


def photos(tmp_path: Path) -> list[str]:
    return ["img_size=16", "channels=3"]


def head_ct(tmp_path: Path) -> list[str]:
    try:
        return ["img_size=16", f"dataset.path={find_head_ct()}"]
    except FileNotFoundError:
        pytest.skip("the real head CT is not installed (`make data`)")


def ellipses(tmp_path: Path) -> list[str]:
    return ["img_size=16", "dataset.n_train=20"]


def triangles(tmp_path: Path) -> list[str]:
    return []


def images(tmp_path: Path) -> list[str]:
    write_pngs(tmp_path / "train", 12, 16, seed=0)
    write_pngs(tmp_path / "test", 10, 16, seed=1)
    return ["img_size=16", "channels=3", f"dataset.root={tmp_path}"]


def ct100(tmp_path: Path) -> list[str]:
    data = np.random.default_rng(0).random((100, 16, 16))
    scipy.io.savemat(tmp_path / "ct100.mat", {"DATA": data})
    return ["img_size=16", f"dataset.path={tmp_path / 'ct100.mat'}"]


def urban100(tmp_path: Path) -> list[str]:
    write_pngs(tmp_path, 100, 32, seed=0)
    return ["img_size=16", "channels=3", "dataset.crop=32", f"dataset.root={tmp_path}"]


def dicom(tmp_path: Path) -> list[str]:
    write_dicom_series(tmp_path / "series", 40)
    return ["img_size=16", f"dataset.root={tmp_path / 'series'}"]


BUILDERS: dict[str, Callable[[Path], list[str]]] = {
    "photos": photos,
    "head_ct": head_ct,
    "ellipses": ellipses,
    "triangles": triangles,
    "images": images,
    "ct100": ct100,
    "urban100": urban100,
    "dicom": dicom,
}
#: Configs this test cannot build offline, with the reason (none today).
SKIPPED: dict[str, str] = {}
#: Configs whose loader names each image's source: a photograph or a slice.
WITH_SOURCES = {"photos", "head_ct", "dicom"}


def case(name: str):
    if name in SKIPPED:
        return pytest.param(name, marks=pytest.mark.skip(reason=SKIPPED[name]))
    return name


def build(name: str, tmp_path: Path) -> tuple[ImageSplits, object]:
    """Compose train.yaml with dataset=name and the builder's overrides; instantiate it."""
    overrides = [f"dataset={name}", *BUILDERS[name](tmp_path)]
    with initialize_config_module("eilab.conf", version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    return instantiate(cfg.dataset), cfg.dataset


def image_hashes(images: torch.Tensor) -> set[str]:
    return {hashlib.sha1(image.numpy().tobytes()).hexdigest() for image in images}


def shared(items: dict[str, set]) -> dict[tuple[str, str], set]:
    return {(a, b): items[a] & items[b] for a, b in combinations(items, 2) if items[a] & items[b]}


# --- tests ------------------------------------------------------------------------------------


def test_every_dataset_config_is_handled_or_skipped_with_a_reason():
    assert set(CONFIGS) == set(BUILDERS) | set(SKIPPED), "add a builder (or a skip) for new yamls"
    assert not set(BUILDERS) & set(SKIPPED)


@pytest.mark.parametrize("name", [case(name) for name in CONFIGS])
def test_no_image_is_in_two_splits(name, tmp_path):
    splits, cfg = build(name, tmp_path)
    assert all(len(getattr(splits, split)) for split in SPLITS)
    assert shared({split: image_hashes(getattr(splits, split)) for split in SPLITS}) == {}
    if name in WITH_SOURCES:
        assert splits.sources is not None
        assert shared({split: set(splits.sources[split]) for split in SPLITS}) == {}
    if name == "photos":
        for split in SPLITS:
            assert set(splits.sources[split]) == set(cfg[split])
    if name in ("head_ct", "dicom"):
        slices = {s: np.array([int(n.split()[-1]) for n in splits.sources[s]]) for s in SPLITS}
        check_slab_gaps(slices, cfg.gap)


def test_photograph_lists_are_disjoint_and_cover_skimage():
    with initialize_config_module("eilab.conf", version_base="1.3"):
        cfg = compose("train", overrides=["dataset=photos"]).dataset
    names = [name for split in SPLITS for name in cfg[split]]
    assert sorted(names) == sorted(SKIMAGE_PHOTOS)
    assert len(cfg.train) >= 10 and len(cfg.val) >= 2
    assert list(cfg.test) == ["retina", "rocket", "text"]  # published test numbers stay valid


def test_a_photograph_in_two_splits_is_a_named_error():
    with pytest.raises(SplitOverlapError, match=r"val and test share \['rocket'\]"):
        photo_splits(16, ["camera"], ["rocket"], ["rocket", "text"], crops_per_photo=1)
    with pytest.raises(SplitOverlapError, match=r"train and val share \['camera'\]"):
        photo_splits(16, ["camera"], ["camera"], ["text"], crops_per_photo=1)


def test_image_splits_refuse_a_source_in_two_splits():
    images = torch.zeros(2, 1, 4, 4)
    sources = {"train": ("a", "b"), "val": ("c", "d"), "test": ("b", "e")}
    with pytest.raises(SplitOverlapError, match=r"train and test share \['b'\]"):
        ImageSplits(images, images, images, sources=sources)
    with pytest.raises(ValueError, match="differ in number"):
        ImageSplits(images, images, images[:1], sources=sources)


def test_slabs_closer_than_the_gap_are_a_named_error():
    train, val, test = slab_split(np.arange(40), n_val=3, n_test=5, gap=2)
    check_slab_gaps({"train": train, "val": val, "test": test}, gap=2)
    with pytest.raises(SplitOverlapError, match="train and val are only 3 apart"):
        check_slab_gaps({"train": train, "val": val, "test": test}, gap=3)
    with pytest.raises(SplitOverlapError, match="only 0 apart"):
        check_slab_gaps({"train": np.array([1, 2]), "val": np.array([2])}, gap=0)


def test_synthetic_head_ct_slabs_keep_their_gap(tmp_path):
    file = write_inv3(tmp_path / "head.inv3", 40)
    overrides = ["dataset=head_ct", "img_size=16", f"dataset.path={file}"]
    with initialize_config_module("eilab.conf", version_base="1.3"):
        cfg = compose("train", overrides=overrides).dataset
    splits = instantiate(cfg)
    slices = {s: np.array([int(n.split()[-1]) for n in splits.sources[s]]) for s in SPLITS}
    assert [len(slices[s]) for s in SPLITS] == [40 - 15 - 3 * cfg.gap, 5, 10]
    check_slab_gaps(slices, cfg.gap)
    low, high = cfg.window
    for s in SPLITS:  # slice i holds 10·i HU, so its brightest pixel says which slice it is
        brightest = getattr(splits, s).flatten(1).amax(1)
        expected = (torch.tensor(10.0 * slices[s]) - low) / (high - low)
        assert torch.allclose(brightest, expected.float(), atol=1e-4)


def test_train_eval_is_a_fixed_subset_of_the_training_pairs():
    splits = ellipse_splits(16, n_train=20, n_val=10, n_test=5)
    physics = Inpainting(16, drop_rate=0.3, noise=GaussianNoise(0.1))
    datamodule = MeasurementDataModule(splits, physics, eval_batch_size=3)
    datamodule.setup("fit")
    batches = list(datamodule.train_eval_dataloader())
    x = torch.cat([batch["x"] for batch in batches])
    y = torch.cat([batch["y"] for batch in batches])
    train = datamodule.datasets["train"]
    indices = [0, 3, 5, 8, 11, 14, 16, 19]  # min(n_val, 8) = 8, spread over the 20
    assert torch.equal(x, splits.train[indices])
    assert torch.equal(y, train.measurements[indices])  # the training noise draw, not a new one
    again = torch.cat([batch["y"] for batch in datamodule.train_eval_dataloader()])
    assert torch.equal(again, y)
    few = MeasurementDataModule(ImageSplits(splits.train, splits.val[:2], splits.test), physics)
    few.setup("fit")
    assert len(few.datasets["train_eval"]) == 2
