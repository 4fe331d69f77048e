"""The paper's five learning strategies, and robust EI for noisy data, as LightningModules."""

from eilab.strategies.base import ReconstructionModule
from eilab.strategies.ei import EI
from eilab.strategies.ei_adv import EIAdv
from eilab.strategies.ei_sup import EISup
from eilab.strategies.mc import MC
from eilab.strategies.rei import REI
from eilab.strategies.sup import Sup

__all__ = ["EI", "MC", "REI", "EIAdv", "EISup", "ReconstructionModule", "Sup"]
