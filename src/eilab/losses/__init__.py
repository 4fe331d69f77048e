"""Training losses: measurement consistency, equivariance, adversarial, supervised."""

from eilab.losses.adversarial import AdversarialLoss
from eilab.losses.ei import EILoss
from eilab.losses.mc import MCLoss
from eilab.losses.sup import SupLoss

__all__ = ["AdversarialLoss", "EILoss", "MCLoss", "SupLoss"]
