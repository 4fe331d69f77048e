"""Transformation groups: rotations, cyclic shifts, reflections and their products."""

from eilab.groups.base import Group
from eilab.groups.compose import Compose
from eilab.groups.reflect import Reflect
from eilab.groups.rotate import Rotate
from eilab.groups.shift import Shift

__all__ = ["Compose", "Group", "Reflect", "Rotate", "Shift"]
