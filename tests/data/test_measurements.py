"""fresh_noise: training noise drawn anew each epoch, deterministically; nothing else moves."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from eilab.data import MeasurementDataModule, ellipse_splits
from eilab.data.measurements import FreshNoiseDataset
from eilab.models import UNet
from eilab.physics import GaussianNoise, Inpainting
from eilab.strategies import MC

SIGMA = 0.1


def physics() -> Inpainting:
    return Inpainting(16, drop_rate=0.3, noise=GaussianNoise(SIGMA))


def datamodule(fresh_noise: bool, **options) -> MeasurementDataModule:
    splits = ellipse_splits(16, n_train=6, n_val=3, n_test=3)
    module = MeasurementDataModule(splits, physics(), fresh_noise=fresh_noise, **options)
    module.setup("fit")
    return module


def measurements(datamodule: MeasurementDataModule, split: str) -> torch.Tensor:
    dataset = datamodule.datasets[split]
    return torch.stack([dataset[i]["y"] for i in range(len(dataset))])


def test_fresh_noise_redraws_the_training_noise_each_epoch_and_repeats_it_for_the_same_epoch():
    first, second = datamodule(fresh_noise=True), datamodule(fresh_noise=True)
    first.set_epoch(0)
    epoch0 = measurements(first, "train")
    assert torch.equal(measurements(first, "train"), epoch0)  # reading again: the same draw
    first.set_epoch(1)
    epoch1 = measurements(first, "train")
    second.set_epoch(1)
    assert torch.equal(measurements(second, "train"), epoch1)  # another run: the same draws
    noiseless = physics().A(first.splits.train)
    noise0, noise1 = epoch0 - noiseless, epoch1 - noiseless
    assert (noise0 != noise1).float().mean() > 0.99  # a new draw for (almost) every entry
    for noise in (noise0, noise1):  # each draw is the physics' noise model
        assert noise.mean().abs() < 0.01 and abs(noise.std() - SIGMA) < 0.01


def test_without_fresh_noise_the_training_noise_is_one_fixed_draw():
    module = datamodule(fresh_noise=False)
    module.set_epoch(0)
    epoch0 = measurements(module, "train")
    module.set_epoch(5)
    assert torch.equal(measurements(module, "train"), epoch0)


def test_validation_test_and_train_eval_keep_one_draw_with_fresh_noise():
    fixed, fresh = datamodule(fresh_noise=False), datamodule(fresh_noise=True)
    for split in ("val", "test"):  # the very draw they had before fresh_noise existed
        assert torch.equal(measurements(fresh, split), measurements(fixed, split))
    fresh.set_epoch(0)
    train_eval = measurements(fresh, "train_eval")
    fresh.set_epoch(3)
    assert torch.equal(measurements(fresh, "train_eval"), train_eval)


def test_fresh_noise_without_a_noise_model_is_refused_by_name():
    splits = ellipse_splits(16, n_train=6, n_val=3, n_test=3)
    with pytest.raises(ValueError, match=r"fresh_noise=true .* no noise model"):
        MeasurementDataModule(splits, Inpainting(16), fresh_noise=True)


class Record(L.Callback):
    """Each training batch's measurements, by epoch and training image index."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images, self.seen = images, {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        for x, y in zip(batch["x"], batch["y"], strict=True):
            index = int((self.images == x).flatten(1).all(1).nonzero())
            self.seen[(trainer.current_epoch, index)] = y.clone()


def fit(max_epochs: int, num_workers: int, root: Path, ckpt_path: Path | None = None) -> dict:
    """Train MC with fresh noise (no validation); the measurements each epoch fed it."""
    L.seed_everything(0, verbose=False)
    data = datamodule(fresh_noise=True, batch_size=2, num_workers=num_workers)
    record = Record(data.splits.train)
    trainer = L.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        logger=False,
        callbacks=[record, ModelCheckpoint(dirpath=root, filename="last")],
        limit_val_batches=0,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    module = MC(data.physics, UNet(1, widths=(4,)))
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path, weights_only=True)
    return record.seen


@pytest.mark.parametrize("num_workers", [0, 2])
def test_trainer_epochs_reach_the_draws_in_workers_and_after_a_resume(num_workers, tmp_path):
    whole = fit(3, num_workers, tmp_path / "whole")
    fit(1, num_workers, tmp_path / "part")
    resumed = fit(3, num_workers, tmp_path / "resumed", tmp_path / "part" / "last.ckpt")
    assert sorted(whole) == [(epoch, i) for epoch in range(3) for i in range(6)]
    reference = FreshNoiseDataset(datamodule(fresh_noise=True).splits.train, physics())
    for (epoch, index), y in whole.items():  # the draw of (noise seed, epoch, index)
        reference.epoch = epoch
        assert torch.equal(y, reference[index]["y"]), (epoch, index)
    assert sorted(resumed) == [(epoch, i) for epoch in (1, 2) for i in range(6)]
    for key, y in resumed.items():
        assert torch.equal(y, whole[key]), key
