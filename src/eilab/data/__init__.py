"""Datasets of (image, measurement) pairs."""

from eilab.data.measurements import MeasurementDataset, simulate

__all__ = ["MeasurementDataset", "simulate"]
