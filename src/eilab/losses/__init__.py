"""Training losses: measurement consistency, equivariance (and REQ), SURE (at a known, a
UNSURE-learned or an estimated noise level), adversarial, supervised; and cycle SURE, a
validation criterion."""

from eilab.losses.adversarial import AdversarialLoss
from eilab.losses.cycle import CycleSURE
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
    "CycleSURE",
    "EILoss",
    "MCLoss",
    "MissingNoiseError",
    "SURELoss",
    "SupLoss",
    "UNSURELoss",
    "UnknownNoiseSURELoss",
    "UnsupportedNoiseError",
]
