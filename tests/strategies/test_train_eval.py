"""PSNR on a fixed subset of training images beside validation (the paper's Fig. 5)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from skimage.io import imread
from tiny_inpainting import cpu_trainer

from eilab.callbacks import image_grid
from eilab.data import MeasurementDataModule, ellipse_splits
from eilab.eval import load_config
from eilab.metrics import psnr
from eilab.models import UNet
from eilab.physics import GaussianNoise, Inpainting
from eilab.strategies import MC

IMAGE_METRICS = {"psnr", "ssim", "psnr_adagger", "ssim_adagger"}


def problem(datamodule_class: type = MeasurementDataModule) -> tuple[MC, MeasurementDataModule]:
    """MC on noisy 16² inpainting (so val/sure is a SURE), 12 training and 4 validation images."""
    torch.manual_seed(0)
    physics = Inpainting(16, drop_rate=0.3, noise=GaussianNoise(0.1))
    datamodule = datamodule_class(
        ellipse_splits(16, n_train=12, n_val=4, n_test=2), physics, batch_size=4
    )
    return MC(physics, UNet(1, widths=(4,))), datamodule


def test_validation_logs_train_eval_image_metrics_and_leaves_every_val_value_as_it_was():
    module, datamodule = problem()
    both = cpu_trainer().validate(module, datamodule=datamodule, verbose=False)
    keys = set(both[0]) | set(both[1])
    assert {f"train_eval/{name}" for name in IMAGE_METRICS} <= keys
    assert {key for key in keys if key.startswith("train_eval/")} == {
        f"train_eval/{name}" for name in IMAGE_METRICS
    }  # no ground-truth-free loss for the training images
    assert not any("dataloader_idx" in key for key in keys)
    val_only = cpu_trainer().validate(module, datamodule.val_dataloader()[0], verbose=False)[0]
    val_keys = {key for key in keys if key.startswith("val/")}
    assert val_keys == set(val_only) and {"val/sure", "val/psnr", "val/loss_mc"} <= val_keys
    for key in val_keys:
        assert both[0][key] == pytest.approx(val_only[key], rel=1e-6), key
    pairs = datamodule.datasets["train_eval"]
    x = torch.stack([pairs[i]["x"] for i in range(len(pairs))])
    y = torch.stack([pairs[i]["y"] for i in range(len(pairs))])
    with torch.no_grad():
        expected = psnr(module(y), x).mean()
    assert both[1]["train_eval/psnr"] == pytest.approx(float(expected), abs=1e-4)


class ValidationOnly(MeasurementDataModule):
    """The datamodule as it was: one validation loader."""

    def val_dataloader(self):
        return super().val_dataloader()[0]


def test_evaluating_the_training_images_does_not_change_training():
    weights = []
    for datamodule_class in (ValidationOnly, MeasurementDataModule):
        L.seed_everything(0, verbose=False)
        module, datamodule = problem(datamodule_class)
        cpu_trainer(max_epochs=3).fit(module, datamodule=datamodule)
        weights.append(module.state_dict())
    for key, value in weights[0].items():
        assert torch.equal(value, weights[1][key]), key


def test_debug_fast_run_logs_train_eval_psnr_beside_val_psnr_and_selects_as_before(tmp_path):
    command = [sys.executable, "-m", "eilab.train", "debug=fast", "strategy=mc"]
    done = subprocess.run(
        [*command, "hydra.run.dir=run"], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    run = tmp_path / "run"
    with open(run / "logs" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    validated = [row for row in rows if row["val/psnr"]]
    assert len(validated) == 2  # debug=fast: two epochs
    assert all(row["train_eval/psnr"] for row in validated)
    assert not any("dataloader_idx" in column or "train_eval/sure" in column for column in rows[0])
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["best_val/sure"] == pytest.approx(
        min(float(row["val/sure"]) for row in validated)
    )
    splits = instantiate(load_config(Path(run)).dataset)  # the grid shows validation images
    grid = imread(run / "images" / "epoch_0000.png")
    assert np.array_equal(grid[:16], image_grid([splits.val[:4]]))


def test_bf16_mixed_validation_scores_in_float32():
    """Under bf16 autocast, SSIM's convolution would run in bfloat16: A†y's scores, which do
    not depend on the network, must match those of a float32 validation."""
    module, datamodule = problem()
    full = cpu_trainer().validate(module, datamodule=datamodule, verbose=False)[0]
    mixed = cpu_trainer(precision="bf16-mixed").validate(
        module, datamodule=datamodule, verbose=False
    )[0]
    for key in ("val/psnr_adagger", "val/ssim_adagger"):
        assert mixed[key] == pytest.approx(full[key], rel=1e-6), key
