"""eilab-eval dataset=...: a run's physics and network scored on another dataset's split."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from skimage.draw import disk
from skimage.io import imsave
from test_eval_safety import saved_run

from eilab.data.folders import image_folder_splits
from eilab.data.measurements import simulate
from eilab.eval import DatasetMismatchError, evaluate, load_config, load_run
from eilab.metrics import psnr

FOLDER = ["dataset.n_val=1", "dataset.n_test=2"]  # 5 PNGs: 2 train, 1 val, 2 test
# One xdist worker runs this module, so its trained run (a module fixture) is trained once.
pytestmark = pytest.mark.xdist_group("cross_dataset_eval")


def eval_config(*overrides: str):
    with initialize_config_module("eilab.conf", version_base="1.3"):
        return compose("eval", overrides=["run_dir=unused", *overrides])


def write_pngs(root: Path, count: int = 5) -> Path:
    """``count`` grey 24² PNGs, each a bright disk of its own size and place."""
    root.mkdir()
    for i in range(count):
        image = np.zeros((24, 24), dtype=np.uint8)
        image[disk((8 + 2 * i, 12), 4 + i, shape=image.shape)] = 200 - 20 * i
        imsave(root / f"img_{i}.png", image, check_contrast=False)
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A debug=fast MC run on ellipses (16², 1 channel, 50-view CT)."""
    root = tmp_path_factory.mktemp("trained")
    command = [
        sys.executable,
        "-m",
        "eilab.train",
        "debug=fast",
        "strategy=mc",
        "hydra.run.dir=run",
    ]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return root / "run"


def test_eval_scores_the_run_on_a_png_folder_and_writes_the_metrics_csv(trained, tmp_path):
    pngs = write_pngs(tmp_path / "pngs")
    command = [sys.executable, "-m", "eilab.eval", f"run_dir={trained}", "hydra.run.dir=eval"]
    command += ["dataset=images", f"dataset.root={pngs}", *FOLDER]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    with open(tmp_path / "eval" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["index", "psnr", "psnr_adagger"]
    cfg = load_config(trained)  # recompute from the folder's test images, independently
    x = image_folder_splits(str(pngs), 16, 1, n_val=1, n_test=2).test
    y = simulate(x, instantiate(cfg.physics), seed=cfg.noise_seed + 2)
    module, _, _ = load_run(trained, "last", "cpu")
    with torch.no_grad():
        expected = psnr(module(y), x), psnr(module.physics.A_dagger(y), x)
    assert [float(row["psnr"]) for row in rows] == pytest.approx(expected[0].tolist(), abs=1e-4)
    assert [float(row["psnr_adagger"]) for row in rows] == pytest.approx(
        expected[1].tolist(), abs=1e-4
    )
    assert (tmp_path / "eval" / "recon_0001.png").exists()


def test_the_runs_own_dataset_config_gives_the_runs_own_images(trained):
    _, own, _ = load_run(trained, "last", "cpu")
    _, again, _ = load_run(trained, "last", "cpu", eval_config("dataset=ellipses").dataset)
    assert torch.equal(again.splits.test, own.splits.test)


@pytest.mark.parametrize(
    ("override", "shape"),
    [("dataset.channels=3", "(3, 16, 16)"), ("dataset.img_size=24", "(1, 24, 24)")],
)
def test_images_of_another_shape_are_refused_by_name_before_any_simulation(
    override, shape, trained, tmp_path
):
    pngs = write_pngs(tmp_path / "pngs")
    dataset = eval_config("dataset=images", f"dataset.root={pngs}", *FOLDER, override).dataset
    message = f"gives images of (channels, height, width) {shape}, but the run {trained}"
    with pytest.raises(DatasetMismatchError, match=re.escape(message)) as error:
        load_run(trained, "last", "cpu", dataset)
    assert "takes (1, 16, 16)" in str(error.value)


def test_grey_ct_slices_for_an_rgb_run_are_refused_by_name(tmp_path):
    saved_run(tmp_path / "run", channels=3)  # no weights needed: refused before reading them
    path = tmp_path / "ct.mat"
    scipy.io.savemat(path, {"DATA": np.random.default_rng(0).random((6, 16, 16))})
    sizes = ["dataset.n_train=4", "dataset.n_val=1", "dataset.n_test=2"]
    dataset = eval_config("dataset=ct100", f"dataset.path={path}", *sizes).dataset
    with pytest.raises(DatasetMismatchError, match=re.escape("(1, 16, 16), but the run")):
        load_run(tmp_path / "run", "last", "cpu", dataset)


def test_a_dataset_without_its_mandatory_root_is_named(trained):
    with pytest.raises(ValueError, match=re.escape("dataset.root must be given")):
        load_run(trained, "last", "cpu", eval_config("dataset=images").dataset)


def test_dataset_and_measurements_together_are_refused(trained, tmp_path):
    cfg = eval_config("dataset=ellipses", "measurements=y.pt")
    with pytest.raises(ValueError, match=r"either dataset= .* or measurements="):
        evaluate(cfg, tmp_path)
