"""Training losses: measurement consistency, equivariance (and REQ), SURE (at a known, a
UNSURE-learned or an estimated noise level), adversarial, supervised."""

from eilab.losses.adversarial import AdversarialLoss
from eilab.losses.ei import EILoss
from eilab.losses.mc import MCLoss
from eilab.losses.sup import SupLoss
from eilab.losses.sure import (
    MissingNoiseError,
    SURELoss,
    UnknownNoiseSURELoss,
    UnsupportedNoiseError,
    UNSURELoss,
)

__all__ = [
    "AdversarialLoss",
    "EILoss",
    "MCLoss",
    "MissingNoiseError",
    "SURELoss",
    "SupLoss",
    "UNSURELoss",
    "UnknownNoiseSURELoss",
    "UnsupportedNoiseError",
]
