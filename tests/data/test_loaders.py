"""Real-data loaders on small files made here: head CT (.inv3), folders, CT100 .mat, DICOM."""

from __future__ import annotations

import hashlib
import io
import plistlib
import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from omegaconf import OmegaConf
from skimage import io as skio

import eilab
from eilab.data import ellipse_splits, folders, head_ct
from eilab.data.splits import ImageSplits

CONF = Path(eilab.__file__).parent / "conf" / "dataset"
WINDOW = head_ct.WIDE_WINDOW


# --- helpers -------------------------------------------------------------------------------


def write_inv3(path: Path, volume: np.ndarray, matrix_bytes: bytes | None = None) -> Path:
    """A minimal InVesalius project: main.plist + int16 little-endian matrix.dat in a tar.gz."""
    plist = {
        "modality": "CT",
        "matrix": {"dtype": "int16", "filename": "matrix.dat", "shape": list(volume.shape)},
        "spacing": [0.5, 0.5, 1.5],
    }
    members = {
        "main.plist": plistlib.dumps(plist),
        "matrix.dat": volume.astype("<i2").tobytes() if matrix_bytes is None else matrix_bytes,
    }
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(f"tmpabc/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


EMPTY_SLICES = (5, 22, 23)


def synthetic_volume(n_slices: int = 24, size: int = 32) -> np.ndarray:
    """Air everywhere; slice i holds a disk of 20·i HU (so its index can be read back),
    except the EMPTY_SLICES, which are air only."""
    yy, xx = np.mgrid[:size, :size] - size / 2 + 0.5
    disk = xx**2 + yy**2 <= (size / 3) ** 2
    volume = np.full((n_slices, size, size), -1024, dtype=np.int16)
    for i in range(n_slices):
        if i not in EMPTY_SLICES:
            volume[i][disk] = 20 * i
    return volume


def slice_indices(images: torch.Tensor, step: float = 20.0) -> list[int]:
    """Read back the slice index encoded as the centre pixel's HU (see synthetic_volume)."""
    low, high = WINDOW
    centre = images[:, 0, images.shape[-2] // 2, images.shape[-1] // 2].double()
    return [round(float(v) * (high - low) + low) // int(step) for v in centre]


def assert_slabs_apart(train, val, test, gap: int) -> None:
    for a, b in ((train, val), (train, test), (val, test)):
        for i in a:
            for j in b:
                assert abs(i - j) > gap, (i, j)


def write_pngs(folder: Path, count: int, shape: tuple[int, ...], seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for k in range(count):
        # names whose sorted order is not the creation order
        path = folder / f"img_{(k * 7) % count:03d}.png"
        skio.imsave(path, rng.integers(0, 256, shape, dtype=np.uint8), check_contrast=False)
        paths.append(path)
    return paths


ALL_PAIRS = (("train", "val"), ("train", "test"), ("val", "test"))


def assert_disjoint(splits: ImageSplits) -> None:
    """No image in two splits."""
    for a, b in ALL_PAIRS:
        x, y = getattr(splits, a).flatten(1), getattr(splits, b).flatten(1)
        if len(x) and len(y):
            assert torch.cdist(x, y).min() > 0, f"{a} and {b} share an image"


def assert_unit(splits: ImageSplits) -> None:
    for images in (splits.train, splits.val, splits.test):
        assert images.dtype == torch.float32
        assert float(images.min()) >= 0 and float(images.max()) <= 1


# --- head CT -------------------------------------------------------------------------------


def test_slab_split_keeps_gap_between_all_splits():
    for n, gap, n_val, n_test in [(40, 0, 3, 5), (40, 3, 0, 4), (103, 4, 5, 10), (12, 1, 2, 3)]:
        usable = np.arange(n)
        train, val, test = head_ct.slab_split(usable, n_val, n_test, gap)
        assert (len(val), len(test)) == (n_val, n_test)
        assert len(train) == n - n_val - n_test - gap * (2 + (n_val > 0))
        assert_slabs_apart(train.tolist(), val.tolist(), test.tolist(), gap)
    with pytest.raises(ValueError, match="usable slices cannot hold"):
        head_ct.slab_split(np.arange(10), 3, 5, 2)


def test_head_ct_splits_synthetic_slabs_are_apart_and_drop_empty_slices(tmp_path):
    file = write_inv3(tmp_path / "tiny.inv3", synthetic_volume())
    splits = head_ct.head_ct_splits(32, n_val_slices=2, n_test_slices=3, path=str(file), gap=2)
    train, val, test = (slice_indices(s) for s in (splits.train, splits.val, splits.test))
    assert (len(val), len(test)) == (2, 3)
    assert not set(EMPTY_SLICES) & set(train + val + test)
    assert len(set(train + val + test)) == len(train + val + test)
    assert_slabs_apart(train, val, test, gap=2)
    assert_unit(splits)
    again = head_ct.head_ct_splits(32, n_val_slices=2, n_test_slices=3, path=str(file), gap=2)
    assert torch.equal(splits.train, again.train) and torch.equal(splits.test, again.test)


def test_head_ct_resamples_and_windows(tmp_path):
    file = write_inv3(tmp_path / "tiny.inv3", synthetic_volume())
    splits = head_ct.head_ct_splits(16, 2, 3, window=(-100.0, 100.0), path=str(file), gap=1)
    assert splits.train.shape[1:] == (1, 16, 16)
    assert_unit(splits)
    assert float(splits.train.max()) == 1.0  # disks of 100+ HU saturate the narrow window


def test_head_ct_missing_file_says_how_to_get_it(tmp_path):
    missing = tmp_path / "nowhere" / "Cranium.inv3"
    with pytest.raises(FileNotFoundError, match="make data") as error:
        head_ct.head_ct_splits(16, path=str(missing))
    assert str(missing) in str(error.value)
    assert "apt-get install invesalius-examples" in str(error.value)


def test_head_ct_corrupt_files_name_the_file(tmp_path):
    garbage = tmp_path / "garbage.inv3"
    garbage.write_bytes(b"not a tar.gz at all" * 10)
    with pytest.raises(ValueError, match=r"garbage\.inv3"):
        head_ct.load_inv3(garbage)
    short = write_inv3(tmp_path / "short.inv3", synthetic_volume(), matrix_bytes=b"\0" * 100)
    with pytest.raises(ValueError, match=r"short\.inv3.*matrix\.dat holds 100 bytes"):
        head_ct.load_inv3(short)
    truncated = tmp_path / "truncated.inv3"
    truncated.write_bytes(write_inv3(tmp_path / "ok.inv3", synthetic_volume()).read_bytes()[:300])
    with pytest.raises(ValueError, match=r"truncated\.inv3"):
        head_ct.load_inv3(truncated)


def test_find_head_ct_searches_env_then_debian_then_unpack_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("EILAB_HEAD_CT", str(tmp_path / "none.inv3"))
    monkeypatch.setattr(head_ct, "UNPACK_DIR", tmp_path / "unpacked")
    target = tmp_path / "unpacked" / head_ct.DEBIAN_FILE
    target.parent.mkdir(parents=True)
    write_inv3(target, synthetic_volume())
    found = head_ct.find_head_ct()
    assert found in (Path("/") / head_ct.DEBIAN_FILE, target)
    monkeypatch.setenv("EILAB_HEAD_CT", str(target))
    assert head_ct.find_head_ct() == target


def test_real_head_ct_if_installed():
    try:
        file = head_ct.find_head_ct()
    except FileNotFoundError:
        pytest.skip("Cranium.inv3 not installed (make data / apt-get install invesalius-examples)")
    volume, spacing = head_ct.load_inv3(file)
    assert volume.shape == (108, 256, 256) and volume.dtype == np.dtype("<i2")
    assert spacing[2] == pytest.approx(1.5)
    assert int(volume.min()) == -1024 and int(volume.max()) > 1500
    splits = head_ct.head_ct_splits(32, path=str(file))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (76, 5, 10)
    assert_unit(splits)
    assert_disjoint(splits)


# --- image folders -------------------------------------------------------------------------


def test_image_folder_one_folder_split_by_counts(tmp_path):
    write_pngs(tmp_path / "imgs", 12, (20, 24))
    splits = folders.image_folder_splits(str(tmp_path / "imgs"), 16, 1, n_val=2, n_test=3)
    assert [len(s) for s in (splits.train, splits.val, splits.test)] == [7, 2, 3]
    assert splits.train.shape[1:] == (1, 16, 16)
    assert_unit(splits)
    assert_disjoint(splits)
    again = folders.image_folder_splits(str(tmp_path / "imgs"), 16, 1, n_val=2, n_test=3)
    assert torch.equal(splits.test, again.test)
    # sorted names: the first training image is img_000.png, centre-cropped to 20² and resized
    first = folders.read_image(tmp_path / "imgs" / "img_000.png", 1)[:, 2:22]
    expected = torch.from_numpy(folders.square_resize(first, 16)).float().permute(2, 0, 1)
    assert torch.allclose(splits.train[0], expected, atol=1e-6)


def test_image_folder_train_test_layout_rgb(tmp_path):
    write_pngs(tmp_path / "train" / "class0", 6, (16, 16, 3), seed=1)
    write_pngs(tmp_path / "test", 4, (16, 16, 3), seed=2)
    from_train = folders.image_folder_splits(str(tmp_path), 8, 3, n_val=2)
    assert [len(s) for s in (from_train.train, from_train.val, from_train.test)] == [4, 2, 4]
    assert_disjoint(from_train)
    write_pngs(tmp_path / "val", 3, (16, 16, 3), seed=3)
    with_val = folders.image_folder_splits(str(tmp_path), 8, 1)
    assert [len(s) for s in (with_val.train, with_val.val, with_val.test)] == [6, 3, 4]
    assert with_val.train.shape[1] == 1


def test_image_folder_errors_name_the_file(tmp_path):
    paths = write_pngs(tmp_path / "imgs", 6, (16, 16))
    paths[2].write_bytes(paths[2].read_bytes()[:60])
    with pytest.raises(ValueError, match=paths[2].name):
        folders.image_folder_splits(str(tmp_path / "imgs"), 8, 1, n_val=1, n_test=1)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        folders.image_folder_splits(str(tmp_path / "nowhere"), 8, 1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no .*images under"):
        folders.image_folder_splits(str(tmp_path / "empty"), 8, 1)


# --- CT100 .mat ----------------------------------------------------------------------------


def test_ct100_mat_first_train_last_test_and_minmax_scaling(tmp_path):
    data = np.random.default_rng(0).uniform(-1000, 1000, (12, 16, 16)).astype(np.float32)
    scipy.io.savemat(tmp_path / "ct.mat", {"DATA": data})
    splits = folders.ct100_mat_splits(str(tmp_path / "ct.mat"), 16, n_train=8, n_val=2, n_test=4)
    assert [len(s) for s in (splits.train, splits.val, splits.test)] == [6, 2, 4]
    scaled = (data - data.min()) / (data.max() - data.min())
    assert torch.allclose(splits.train[0, 0], torch.from_numpy(scaled[0]), atol=1e-6)
    assert torch.allclose(splits.val[-1, 0], torch.from_numpy(scaled[7]), atol=1e-6)
    assert torch.allclose(splits.test[-1, 0], torch.from_numpy(scaled[-1]), atol=1e-6)
    assert_unit(splits)
    assert_disjoint(splits)
    scipy.io.savemat(tmp_path / "ct4.mat", {"DATA": data[:, None] / 2000 + 0.5})
    small = folders.ct100_mat_splits(str(tmp_path / "ct4.mat"), 8, 8, 1, 4)
    assert small.train.shape == (7, 1, 8, 8) and small.test.shape == (4, 1, 8, 8)


def test_ct100_mat_errors_name_the_file(tmp_path):
    scipy.io.savemat(tmp_path / "nodata.mat", {"IMAGES": np.zeros((3, 4, 4))})
    with pytest.raises(ValueError, match=r"nodata\.mat.*no variable 'DATA'.*IMAGES"):
        folders.ct100_mat_splits(str(tmp_path / "nodata.mat"))
    (tmp_path / "junk.mat").write_bytes(b"\x00garbage" * 50)
    with pytest.raises(ValueError, match=r"junk\.mat"):
        folders.ct100_mat_splits(str(tmp_path / "junk.mat"))
    with pytest.raises(FileNotFoundError, match=r"missing\.mat"):
        folders.ct100_mat_splits(str(tmp_path / "missing.mat"))
    scipy.io.savemat(tmp_path / "few.mat", {"DATA": np.zeros((5, 4, 4))})
    with pytest.raises(ValueError, match="from 5 images"):
        folders.ct100_mat_splits(str(tmp_path / "few.mat"), 4)


def test_ct100_command_writes_a_mat_the_loader_reads(tmp_path):
    write_pngs(tmp_path / "src", 6, (24, 24))
    folders.main(["ct100", str(tmp_path / "src"), "--out", str(tmp_path / "o.mat"), "--size", "8"])
    data = scipy.io.loadmat(tmp_path / "o.mat")["DATA"]
    assert data.shape == (6, 8, 8) and data.dtype == np.float32
    splits = folders.ct100_mat_splits(str(tmp_path / "o.mat"), 8, n_train=4, n_val=1, n_test=2)
    assert torch.allclose(torch.cat([splits.train, splits.val])[:, 0], torch.from_numpy(data[:4]))


# --- Urban100 ------------------------------------------------------------------------------


def test_urban100_centre_crop_resize_and_protocol(tmp_path):
    write_pngs(tmp_path / "urban", 12, (40, 48, 3))
    splits = folders.urban100_splits(
        str(tmp_path / "urban"), 16, crop=32, n_train=9, n_val=2, n_test=3
    )
    assert [len(s) for s in (splits.train, splits.val, splits.test)] == [7, 2, 3]
    assert splits.train.shape[1:] == (3, 16, 16)
    assert_unit(splits)
    eight_bit = splits.train * 255  # PIL works in 8 bits, as the original's torchvision did
    assert torch.allclose(eight_bit, eight_bit.round(), atol=1e-3)
    with pytest.raises(ValueError, match=r"img_000\.png.*smaller than the 64² centre crop"):
        folders.urban100_splits(str(tmp_path / "urban"), 16, crop=64, n_train=9, n_test=3)


def test_urban100_command_output_reads_back_identically(tmp_path):
    write_pngs(tmp_path / "u" / "train", 4, (40, 40, 3), seed=1)
    write_pngs(tmp_path / "u" / "test", 2, (40, 40, 3), seed=2)
    out = tmp_path / "out"
    folders.write_urban100_folders(str(tmp_path / "u"), str(out), img_size=16, crop=32)
    direct = folders.urban100_splits(str(tmp_path / "u"), 16, crop=32, n_val=1)
    stored = folders.image_folder_splits(str(out), 16, 3, n_val=1)
    for name in ("train", "val", "test"):
        assert torch.allclose(getattr(direct, name), getattr(stored, name), atol=1e-6)


# --- DICOM ---------------------------------------------------------------------------------


def write_dicom_series(folder: Path, n_slices: int) -> None:
    """CT_small.dcm repeated along z, slice i with 10·i HU in its centre, names shuffled."""
    pydicom = pytest.importorskip("pydicom", reason="DICOM tests need pydicom")
    source = pydicom.data.get_testdata_file("CT_small.dcm")
    if source is None:
        pytest.skip("pydicom's test file CT_small.dcm is not installed")
    folder.mkdir(parents=True, exist_ok=True)
    names = np.random.default_rng(0).permutation(n_slices)
    for i in range(n_slices):
        ds = pydicom.dcmread(source)
        pixels = ds.pixel_array.copy()
        slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        pixels[60:68, 60:68] = round((10 * i - intercept) / slope)
        ds.PixelData = pixels.tobytes()
        ds.ImagePositionPatient = [0.0, 0.0, 5.0 * i]
        ds.InstanceNumber = int(names[i])
        ds.save_as(folder / f"slice_{names[i]:02d}.dcm")


def test_dicom_series_sorted_by_position_windowed_and_slabbed(tmp_path):
    write_dicom_series(tmp_path / "series", 16)
    splits = folders.dicom_folder_splits(
        str(tmp_path / "series"), 128, n_val=2, n_test=3, gap=1, min_tissue=0.0
    )
    train, val, test = (slice_indices(s, step=10) for s in (splits.train, splits.val, splits.test))
    assert len(set(train + val + test)) == 13 and set(train + val + test) <= set(range(16))
    assert (len(val), len(test), len(train)) == (2, 3, 16 - 5 - 3)
    assert_slabs_apart(train, val, test, gap=1)
    assert train == sorted(train)
    assert_unit(splits)
    small = folders.dicom_folder_splits(str(tmp_path / "series"), 32, 2, 3, gap=1, min_tissue=0.0)
    assert small.test.shape == (3, 1, 32, 32)


def test_a_folder_of_two_dicom_series_is_refused_naming_both(tmp_path):
    pydicom = pytest.importorskip("pydicom", reason="DICOM tests need pydicom")
    write_dicom_series(tmp_path / "series", 4)
    ds = pydicom.dcmread(tmp_path / "series" / "slice_00.dcm")
    first, pixels = ds.SeriesInstanceUID, np.ascontiguousarray(ds.pixel_array[:48, :40])
    ds.SeriesInstanceUID, ds.Rows, ds.Columns = "1.2.826.0.1.2", 48, 40
    ds.PixelData = pixels.tobytes()
    ds.save_as(tmp_path / "series" / "other.dcm")
    with pytest.raises(folders.MixedDicomSeriesError) as error:
        folders.dicom_folder_splits(str(tmp_path / "series"), 32, 1, 1, gap=0, min_tissue=0.0)
    message = str(error.value)
    assert f"{tmp_path / 'series'} holds 2 DICOM series" in message
    assert (
        f"{first}: 4 slices of 128x128" in message and "1.2.826.0.1.2: 1 slices of 48x40" in message
    )


def test_dicom_errors_name_the_file(tmp_path):
    pytest.importorskip("pydicom", reason="DICOM tests need pydicom")
    write_dicom_series(tmp_path / "series", 6)
    (tmp_path / "series" / "broken.dcm").write_bytes(b"garbage" * 40)
    with pytest.raises(ValueError, match=r"broken\.dcm"):
        folders.dicom_folder_splits(str(tmp_path / "series"), 32, 1, 1, gap=1, min_tissue=0.0)
    with pytest.raises(FileNotFoundError, match="no DICOM files"):
        folders.dicom_folder_splits(str(tmp_path), 32, pattern="*.none")


# --- configs -------------------------------------------------------------------------------


def instantiate_dataset(name: str, **overrides) -> ImageSplits:
    cfg = OmegaConf.create({"img_size": 16, "channels": 1, "dataset": OmegaConf.load(CONF / name)})
    for key, value in overrides.items():
        cfg.dataset[key] = value
    return instantiate(cfg.dataset)


def test_dataset_configs_instantiate(tmp_path):
    scipy.io.savemat(tmp_path / "ct.mat", {"DATA": np.random.default_rng(0).random((100, 8, 8))})
    splits = instantiate_dataset("ct100.yaml", path=str(tmp_path / "ct.mat"))
    assert [len(s) for s in (splits.train, splits.val, splits.test)] == [85, 5, 10]
    write_pngs(tmp_path / "imgs", 18, (16, 16))
    assert len(instantiate_dataset("images.yaml", root=str(tmp_path / "imgs")).train) == 3
    file = write_inv3(tmp_path / "tiny.inv3", synthetic_volume(60))
    assert len(instantiate_dataset("head_ct.yaml", path=str(file)).test) == 10
    with pytest.raises(Exception, match="root"):
        instantiate_dataset("urban100.yaml")


# --- non-finite, empty and undecodable inputs ------------------------------------------------


def write_float_tiffs(folder: Path, count: int, bad: float, index: int = 2) -> Path:
    """Float32 TIFFs; image ``index`` has 3 pixels set to ``bad`` (NaN or inf)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for k in range(count):
        image = rng.random((40, 40)).astype(np.float32)
        if k == index:
            image[0, :3] = bad
        skio.imsave(folder / f"t{k}.tif", image, check_contrast=False)
    return folder / f"t{index}.tif"


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_image_folder_refuses_non_finite_pixels_naming_file_and_count(tmp_path, bad):
    culprit = write_float_tiffs(tmp_path / "imgs", 6, bad)
    count = "3 NaN and 0 infinite" if np.isnan(bad) else "0 NaN and 3 infinite"
    with pytest.raises(ValueError, match=rf"{culprit.name} holds {count} values"):
        folders.image_folder_splits(str(tmp_path / "imgs"), 16, 1, n_val=1, n_test=1)


def test_urban100_refuses_non_finite_pixels(tmp_path):
    culprit = write_float_tiffs(tmp_path / "urban", 6, np.nan)
    with pytest.raises(ValueError, match=rf"{culprit.name} holds 3 NaN"):
        folders.urban100_splits(str(tmp_path / "urban"), 8, crop=32, n_train=4, n_test=1)


@pytest.mark.parametrize(("bad", "count"), [(np.nan, "2 NaN and 0"), (-np.inf, "0 NaN and 2")])
def test_ct100_refuses_non_finite_values_naming_file_and_count(tmp_path, bad, count):
    data = np.random.default_rng(0).random((12, 8, 8))
    data[3, 1, :2] = bad
    scipy.io.savemat(tmp_path / "ct.mat", {"DATA": data})
    with pytest.raises(ValueError, match=rf"ct\.mat: DATA holds {count} infinite values"):
        folders.ct100_mat_splits(str(tmp_path / "ct.mat"), 8, n_train=8, n_val=1, n_test=2)


def test_dicom_refuses_non_finite_values_naming_the_file(tmp_path):
    pydicom = pytest.importorskip("pydicom", reason="DICOM tests need pydicom")
    write_dicom_series(tmp_path / "series", 6)
    culprit = sorted((tmp_path / "series").glob("*.dcm"))[3]
    ds = pydicom.dcmread(culprit)
    ds.RescaleIntercept = "1e400"  # reads back as inf
    ds.save_as(culprit)
    pixels = ds.Rows * ds.Columns
    expected = rf"DICOM file .*{culprit.name} holds 0 NaN and {pixels} infinite"
    with pytest.raises(ValueError, match=expected):
        folders.dicom_folder_splits(str(tmp_path / "series"), 32, 1, 1, gap=1, min_tissue=0.0)


@pytest.mark.parametrize("loader", ["images", "urban100"])
def test_empty_or_undecodable_image_is_named_without_decoder_noise(tmp_path, loader):
    paths = write_pngs(tmp_path / "imgs", 6, (40, 40, 3))
    load = {
        "images": lambda: folders.image_folder_splits(str(tmp_path / "imgs"), 8, 1, 1, 1, 1),
        "urban100": lambda: folders.urban100_splits(str(tmp_path / "imgs"), 8, 3, 32, 4, 1, 1),
    }[loader]
    paths[1].write_bytes(b"")
    with pytest.raises(ValueError, match=rf"{paths[1].name}: the file is empty \(0 bytes\)") as err:
        load()
    paths[1].write_text("this is not a PNG")
    with pytest.raises(ValueError, match=paths[1].name) as err:
        load()
    assert err.value.__cause__ is None and err.value.__suppress_context__  # no chained decoder
    assert "pip install" not in str(err.value) and "backend" not in str(err.value)


def test_float_train_and_test_folders_share_one_intensity_scale(tmp_path):
    for split, offset in (("train", 0.0), ("test", 100.0)):
        (tmp_path / split).mkdir()
        for k in range(3):
            image = np.full((8, 8), offset + k, dtype=np.float32)
            skio.imsave(tmp_path / split / f"{k}.tif", image, check_contrast=False)
    splits = folders.image_folder_splits(str(tmp_path), 8, 1, n_val=1)
    levels = [float(x.mean()) for x in (*splits.train, *splits.val, *splits.test)]
    expected = [v / 102 for v in (0, 1, 2, 100, 101, 102)]
    assert levels == pytest.approx(expected, abs=1e-6)


# --- channels ------------------------------------------------------------------------------


def test_channels_two_gives_a_zero_imaginary_channel(tmp_path):
    ellipses = ellipse_splits(16, n_train=4, n_val=1, n_test=1, channels=2)
    grey = ellipse_splits(16, n_train=4, n_val=1, n_test=1)
    assert ellipses.train.shape == (4, 2, 16, 16)
    assert torch.equal(ellipses.train[:, :1], grey.train) and not ellipses.train[:, 1].any()
    write_pngs(tmp_path / "imgs", 4, (16, 16, 3))
    images = folders.image_folder_splits(str(tmp_path / "imgs"), 8, 2, n_val=1, n_test=1)
    greys = folders.image_folder_splits(str(tmp_path / "imgs"), 8, 1, n_val=1, n_test=1)
    assert images.train.shape[1] == 2 and not images.train[:, 1].any()
    assert torch.equal(images.train[:, :1], greys.train)


def test_physics_mri_alone_composes_two_channel_images():
    with initialize_config_module("eilab.conf", version_base="1.3"):
        cfg = compose("train", overrides=["physics=mri", "img_size=16"])
    assert cfg.channels == 2  # physics/mri.yaml sets it: needs `_self_` first in train.yaml
    splits = instantiate(cfg.dataset)
    assert splits.train.shape[1:] == (2, 16, 16) and not splits.train[:, 1].any()
    assert instantiate(cfg.physics).A(splits.test).shape == splits.test.shape


# --- every split apart, for every dataset config here -----------------------------------------


def image_hashes(images: torch.Tensor) -> set[str]:
    return {hashlib.sha256(image.contiguous().numpy().tobytes()).hexdigest() for image in images}


def folder_configs(tmp_path: Path) -> dict[str, dict]:
    """Overrides that point each dataset config at small files written here."""
    write_pngs(tmp_path / "one", 18, (16, 16))
    write_pngs(tmp_path / "layout" / "train", 8, (40, 40, 3), seed=1)
    write_pngs(tmp_path / "layout" / "test", 3, (40, 40, 3), seed=2)
    data = np.random.default_rng(0).random((100, 8, 8))
    scipy.io.savemat(tmp_path / "ct.mat", {"DATA": data})
    return {
        "images (one folder)": {"file": "images.yaml", "root": str(tmp_path / "one")},
        "images (train/test)": {"file": "images.yaml", "root": str(tmp_path / "layout")},
        "ct100": {"file": "ct100.yaml", "path": str(tmp_path / "ct.mat")},
        "urban100": {"file": "urban100.yaml", "root": str(tmp_path / "layout"), "crop": 32},
        "ellipses": {"file": "ellipses.yaml"},
        "triangles": {"file": "triangles.yaml"},
        "dicom": {"file": "dicom.yaml", "root": str(tmp_path / "series"), "min_tissue": 0.0},
    }


@pytest.mark.parametrize(
    "name",
    [
        "images (one folder)",
        "images (train/test)",
        "ct100",
        "urban100",
        "ellipses",
        "triangles",
        "dicom",
    ],
)
def test_no_image_is_shared_between_any_two_splits(tmp_path, name):
    overrides = folder_configs(tmp_path)[name]
    if name == "dicom":
        write_dicom_series(tmp_path / "series", 40)
    splits = instantiate_dataset(overrides.pop("file"), **overrides)
    hashes = {split: image_hashes(getattr(splits, split)) for split in ("train", "val", "test")}
    assert all(hashes.values()), {split: len(h) for split, h in hashes.items()}
    for a, b in ALL_PAIRS:
        assert not hashes[a] & hashes[b], f"{name}: {a} and {b} share an image"
