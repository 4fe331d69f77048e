"""LightningDataModule: image splits -> fixed (x, y) pairs for training and evaluation."""

from __future__ import annotations

import lightning as L
from torch import nn
from torch.utils.data import DataLoader

from eilab.data.measurements import MeasurementDataset
from eilab.data.splits import ImageSplits


class MeasurementDataModule(L.LightningDataModule):
    """Simulates each split's measurements once (seeded, one draw per image) and serves them.

    Each split gets its own noise seed, so the test noise is not the training noise.
    """

    def __init__(
        self,
        splits: ImageSplits,
        physics: nn.Module,
        batch_size: int = 2,
        eval_batch_size: int = 16,
        num_workers: int = 0,
        noise_seed: int = 0,
    ) -> None:
        super().__init__()
        if batch_size < 1 or eval_batch_size < 1:
            raise ValueError("MeasurementDataModule: batch sizes must be >= 1")
        self.splits, self.physics = splits, physics
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.num_workers, self.noise_seed = num_workers, noise_seed
        self.datasets: dict[str, MeasurementDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        for offset, name in enumerate(("train", "val", "test")):
            if name not in self.datasets:
                images, seed = getattr(self.splits, name), self.noise_seed + offset
                self.datasets[name] = MeasurementDataset(images, self.physics, seed)

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

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False)
