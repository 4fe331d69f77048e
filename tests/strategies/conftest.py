"""Fixtures for strategy tests."""

import pytest
from tiny_inpainting import SIZE, camera_crops

from eilab.data import MeasurementDataset
from eilab.physics import GaussianNoise, Inpainting


@pytest.fixture(scope="session")
def inpainting_problem():
    images = camera_crops(80)
    physics = Inpainting(SIZE, drop_rate=0.3)
    return (
        physics,
        MeasurementDataset(images[:64], physics),
        MeasurementDataset(images[64:], physics),
    )


@pytest.fixture(scope="session")
def noisy_inpainting_problem():
    """The tiny inpainting problem with Gaussian noise, sigma 0.1, drawn once per image."""
    images = camera_crops(80)
    physics = Inpainting(SIZE, drop_rate=0.3, noise=GaussianNoise(0.1))
    return (
        physics,
        MeasurementDataset(images[:64], physics),
        MeasurementDataset(images[64:], physics, seed=1),
    )
