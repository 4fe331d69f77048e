"""Fixtures for strategy tests."""

import pytest
from tiny_inpainting import SIZE, camera_crops

from eilab.data import MeasurementDataset
from eilab.physics import Inpainting


@pytest.fixture(scope="session")
def inpainting_problem():
    images = camera_crops(80)
    physics = Inpainting(SIZE, drop_rate=0.3)
    return (
        physics,
        MeasurementDataset(images[:64], physics),
        MeasurementDataset(images[64:], physics),
    )
