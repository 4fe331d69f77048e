"""Image sources, fixed (x, y) measurement datasets and the Lightning data module."""

from eilab.data.datamodule import MeasurementDataModule
from eilab.data.ellipses import ellipse_splits, random_ellipses
from eilab.data.measurements import MeasurementDataset, simulate
from eilab.data.splits import ImageSplits, split_by_count

__all__ = [
    "ImageSplits",
    "MeasurementDataModule",
    "MeasurementDataset",
    "ellipse_splits",
    "random_ellipses",
    "simulate",
    "split_by_count",
]
