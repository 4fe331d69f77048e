"""LightningDataModule: image splits -> fixed (x, y) pairs for training and evaluation."""

from __future__ import annotations

from collections.abc import Iterator

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from eilab.data.measurements import FreshNoiseDataset, MeasurementDataset
from eilab.data.splits import ImageSplits


class MeasurementDataModule(L.LightningDataModule):
    """Simulates each split's measurements once (seeded, one draw per image) and serves them.

    Each split gets its own noise seed, so the test noise is not the training noise.
    :meth:`train_eval_dataloader` serves a fixed subset of the training pairs for evaluation,
    so training and validation PSNR can be compared (the paper's Fig. 5: Sup overfits);
    :meth:`val_dataloader` serves it second, after the validation pairs.

    ``fresh_noise=True`` (simulation studies) redraws the training noise every epoch
    (:class:`FreshNoiseDataset`, seeded by noise seed, epoch and index); validation, test and
    the training subset for evaluation keep one fixed draw. The epoch reaches the dataset
    through :meth:`set_epoch`, which the LightningModule calls at each training epoch start,
    and :meth:`train_dataloader`, which reads it from the trainer (a resumed run builds its
    first iterator before that hook). DataLoader workers hold copies of the dataset, so the
    training loader then starts fresh workers each epoch (no ``persistent_workers``): they
    copy the dataset, epoch included, when the epoch's iterator starts them.

    ``resident=True`` keeps the training pairs on the trainer's device and serves them as
    :class:`ResidentBatches` (no workers, no copy per step), in the order a shuffling
    DataLoader would give; it needs fixed measurements (not ``fresh_noise``) and one device.
    """

    def __init__(
        self,
        splits: ImageSplits,
        physics: nn.Module,
        batch_size: int = 2,
        eval_batch_size: int = 16,
        num_workers: int = 0,
        noise_seed: int = 0,
        n_train_eval: int = 8,
        fresh_noise: bool = False,
        resident: bool = False,
    ) -> None:
        super().__init__()
        if batch_size < 1 or eval_batch_size < 1:
            raise ValueError("MeasurementDataModule: batch sizes must be >= 1")
        if n_train_eval < 1:
            raise ValueError(
                f"MeasurementDataModule: n_train_eval must be >= 1, got {n_train_eval}"
            )
        self.splits, self.physics = splits, physics
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.num_workers, self.noise_seed = num_workers, noise_seed
        self.n_train_eval = n_train_eval
        if fresh_noise and getattr(physics, "noise", None) is None:
            raise ValueError(
                "MeasurementDataModule: fresh_noise=true redraws the noise each epoch, but the "
                "physics has no noise model (choose one with noise=gaussian|poisson|...)"
            )
        if resident and fresh_noise:
            raise ValueError(
                "MeasurementDataModule: resident (fast_step=true) keeps fixed training pairs on "
                "the device, but fresh_noise=true redraws their noise every epoch; set one false"
            )
        self.fresh_noise, self.resident = fresh_noise, resident
        self.epoch = 0
        self.datasets: dict[str, Dataset] = {}

    def setup(self, stage: str | None = None) -> None:
        for offset, name in enumerate(("train", "val", "test")):
            if name not in self.datasets:
                images, seed = getattr(self.splits, name), self.noise_seed + offset
                fresh = self.fresh_noise and name == "train"
                dataset = (FreshNoiseDataset if fresh else MeasurementDataset)(
                    images, self.physics, seed
                )
                self.datasets[name] = dataset
        if "train_eval" not in self.datasets:
            indices = train_eval_indices(
                len(self.splits.train), len(self.splits.val), self.n_train_eval
            )
            self.datasets["train_eval"] = (
                MeasurementDataset(self.splits.train[indices], self.physics, self.noise_seed)
                if self.fresh_noise
                else Subset(self.datasets["train"], indices)
            )
        self.set_epoch(self.epoch)

    def set_epoch(self, epoch: int) -> None:
        """The training epoch about to start: with fresh_noise, its noise draws depend on it."""
        self.epoch = epoch
        train = self.datasets.get("train")
        if isinstance(train, FreshNoiseDataset):
            train.epoch = epoch

    def _loader(
        self,
        name: str,
        batch_size: int,
        shuffle: bool,
        persistent: bool = True,
        generator: torch.Generator | None = None,
    ) -> DataLoader:
        return DataLoader(
            self.datasets[name],
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=persistent and self.num_workers > 0,
            generator=generator,
        )

    def train_dataloader(self) -> DataLoader | ResidentBatches:
        if self.resident:
            device = self.device()  # first: a multi-process trainer is refused before any work
            return ResidentBatches(self.datasets["train"], self.batch_size, device)
        if not self.fresh_noise:
            return self._loader("train", self.batch_size, shuffle=True)
        if self.trainer is not None:  # the epoch a resumed run continues with
            self.set_epoch(self.trainer.fit_loop.epoch_progress.current.processed)
        return self._loader("train", self.batch_size, shuffle=True, persistent=False)

    def device(self) -> torch.device:
        """The device the trainer trains on (the CPU without a trainer)."""
        if self.trainer is None:
            return torch.device("cpu")
        if self.trainer.world_size > 1:
            raise ValueError(
                "MeasurementDataModule: resident (fast_step=true) keeps the training set on "
                f"one device, but the trainer runs {self.trainer.world_size} processes; set "
                "fast_step=false for multi-device training"
            )
        return self.trainer.strategy.root_device

    def val_dataloader(self) -> list[DataLoader]:
        """The validation pairs, then the fixed training subset of :meth:`train_eval_dataloader`
        (``validation_step``'s ``dataloader_idx`` 0 and 1)."""
        return [
            self._loader("val", self.eval_batch_size, shuffle=False),
            self.train_eval_dataloader(),
        ]

    def train_eval_dataloader(self) -> DataLoader:
        """Fixed training pairs for evaluation only (log them as ``train_eval/psnr``).

        The pairs are the training set's own, measurements included (the same noise draw the
        strategies train on; with fresh_noise, one fixed draw), so the gap to ``val/psnr``
        measures overfitting; see :func:`train_eval_indices` for which images. The loader has
        its own random generator: starting its iterator draws a worker seed, which from the
        global generator would shift the training's shuffles and group elements.
        """
        return self._loader(
            "train_eval", self.eval_batch_size, shuffle=False, generator=torch.Generator()
        )

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False)


class ResidentBatches:
    """Training pairs held on one device, served in shuffled batches without a DataLoader.

    Each epoch takes its order from a shuffling DataLoader over the indices (the same draws
    from the global random state as the DataLoader of the pairs themselves), copies it to
    the device once, and gathers each batch there: no worker, no copy from the host per step.
    """

    def __init__(self, dataset: MeasurementDataset, batch_size: int, device: torch.device):
        self.x = dataset.images.to(device)
        self.y = dataset.measurements.to(device)
        self.order = DataLoader(range(len(self.x)), batch_size=batch_size, shuffle=True)

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        batches = list(self.order)
        order = torch.cat(batches).to(self.x.device)
        for indices in order.split([len(batch) for batch in batches]):
            yield {"x": self.x[indices], "y": self.y[indices]}


def train_eval_indices(n_train: int, n_val: int, most: int = 8) -> list[int]:
    """min(n_val, most, n_train) training indices spread evenly from first to last.

    As many images as validation has (at most ``most``), so both means are equally noisy;
    spread over the set, since neighbouring training images often share a photograph or a
    slab of slices.
    """
    count = max(1, min(n_val, most, n_train))
    return torch.linspace(0, n_train - 1, count).round().long().tolist()
