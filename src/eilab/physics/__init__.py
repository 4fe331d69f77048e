"""Linear forward models y = A x (+ noise): CT, inpainting, compressed sensing, MRI."""

from eilab.physics.base import LinearPhysics, SignedOperatorError
from eilab.physics.cs import CompressedSensing
from eilab.physics.ct import CT
from eilab.physics.inpainting import Inpainting
from eilab.physics.mri import MRI
from eilab.physics.noise import (
    GaussianNoise,
    MaskedNoise,
    NoiseModel,
    PoissonGaussianNoise,
    PoissonNoise,
    TransmissionNoise,
)

__all__ = [
    "CT",
    "MRI",
    "CompressedSensing",
    "GaussianNoise",
    "Inpainting",
    "LinearPhysics",
    "MaskedNoise",
    "NoiseModel",
    "PoissonGaussianNoise",
    "PoissonNoise",
    "SignedOperatorError",
    "TransmissionNoise",
]
