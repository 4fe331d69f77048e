"""The paper's five learning strategies as LightningModules."""

from eilab.strategies.base import ReconstructionModule
from eilab.strategies.ei import EI
from eilab.strategies.ei_adv import EIAdv
from eilab.strategies.ei_sup import EISup
from eilab.strategies.mc import MC
from eilab.strategies.sup import Sup

__all__ = ["EI", "MC", "EIAdv", "EISup", "ReconstructionModule", "Sup"]
