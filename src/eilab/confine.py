"""Paths eilab writes or deletes under a run directory stay inside it: ``..`` and symlinks resolved.

A run directory is input too: it can be copied, edited or crafted, so a path read from one (a
checkpoint's callback state, a marker file) is checked here before eilab or Lightning acts on it.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path


class UnsafePathError(RuntimeError):
    """A path eilab would write, append to or delete leaves its directory or is a symlink."""


def inside(path: str | os.PathLike, directory: str | os.PathLike) -> bool:
    """Whether ``path`` lies strictly inside ``directory`` once ``..`` and symlinks resolve."""
    return Path(os.path.realpath(directory)) in Path(os.path.realpath(path)).parents


def refuse_symlink(path: str | os.PathLike) -> None:
    """Raise :class:`UnsafePathError` naming ``path`` when it is a symlink (dangling or not)."""
    if os.path.islink(path):
        raise UnsafePathError(
            f"{path} is a symlink (to {os.readlink(path)}): eilab never writes through one; "
            "remove it or use another directory"
        )


def open_nofollow(path: str | os.PathLike, flags: int, mode: int = 0o644) -> int:
    """``os.open`` that refuses (UnsafePathError) a symlink as the last component of ``path``."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as error:
        if error.errno == errno.ELOOP:
            refuse_symlink(path)
        raise
