"""LightningDataModule: image splits -> fixed (x, y) pairs for training and evaluation."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from eilab.data.measurements import MeasurementDataset
from eilab.data.splits import ImageSplits


class MeasurementDataModule(L.LightningDataModule):
    """Simulates each split's measurements once (seeded, one draw per image) and serves them.

    Each split gets its own noise seed, so the test noise is not the training noise.
    :meth:`train_eval_dataloader` serves a fixed subset of the training pairs for evaluation,
    so training and validation PSNR can be compared (the paper's Fig. 5: Sup overfits).
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
        self.datasets: dict[str, Dataset] = {}

    def setup(self, stage: str | None = None) -> None:
        for offset, name in enumerate(("train", "val", "test")):
            if name not in self.datasets:
                images, seed = getattr(self.splits, name), self.noise_seed + offset
                self.datasets[name] = MeasurementDataset(images, self.physics, seed)
        if "train_eval" not in self.datasets:
            indices = train_eval_indices(
                len(self.splits.train), len(self.splits.val), self.n_train_eval
            )
            self.datasets["train_eval"] = Subset(self.datasets["train"], indices)

    def _loader(self, name: str, batch_size: int, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.datasets[name],
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size, shuffle=False)

    def train_eval_dataloader(self) -> DataLoader:
        """Fixed training pairs for evaluation only (log them as ``train_eval/psnr``).

        The pairs are the training set's own, measurements included (the same noise draw the
        strategies train on), so the gap to ``val/psnr`` measures overfitting; see
        :func:`train_eval_indices` for which images.
        """
        return self._loader("train_eval", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False)


def train_eval_indices(n_train: int, n_val: int, most: int = 8) -> list[int]:
    """min(n_val, most, n_train) training indices spread evenly from first to last.

    As many images as validation has (at most ``most``), so both means are equally noisy;
    spread over the set, since neighbouring training images often share a photograph or a
    slab of slices.
    """
    count = max(1, min(n_val, most, n_train))
    return torch.linspace(0, n_train - 1, count).round().long().tolist()
