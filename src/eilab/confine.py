"""Paths eilab writes or deletes under a run directory stay inside it: ``..`` and symlinks resolved.

A run directory is input too: it can be copied, edited or crafted, so a path read from one (a
checkpoint's callback state, a marker file) is checked here before eilab or Lightning acts on it.
"""

from __future__ import annotations

import os
from pathlib import Path


class UnsafePathError(RuntimeError):
    """A path eilab would write, append to or delete leaves its directory or is a symlink."""


def inside(path: str | os.PathLike, directory: str | os.PathLike) -> bool:
    """Whether ``path`` lies strictly inside ``directory`` once ``..`` and symlinks resolve."""
    return Path(os.path.realpath(directory)) in Path(os.path.realpath(path)).parents
