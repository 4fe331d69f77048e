"""Checkpoint files that are whole or absent, and loads that name a damaged file.

Lightning's own ``TorchCheckpointIO`` writes through fsspec, which stages the file in /tmp and
copies it over the target: on a full disk a partial ``best-epoch=0.ckpt`` stayed behind.
:class:`AtomicCheckpointIO` writes a temporary file in the checkpoint's own directory, fsyncs it
and renames it over the target (``os.replace`` is atomic within one filesystem), so a failed
save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from eilab.atomic import atomic_file
from eilab.confine import UnsafePathError

#: What torch.load raises on a truncated, cut or garbled file (an empty file: EOFError; a cut
#: zip: RuntimeError from the zip reader or OSError [Errno 22]; garbage: UnpicklingError).
DAMAGED = (EOFError, RuntimeError, OSError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile)


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file cannot be read back: truncated, cut short or not a checkpoint."""


class UnsafeCheckpointError(CorruptCheckpointError):
    """A checkpoint holds pickled objects besides weights: loading them could run code."""


def corrupt(path: str | os.PathLike, error: BaseException) -> CorruptCheckpointError:
    """The named error for a checkpoint that failed to load, with the reader's first line;
    one that torch's weights-only reader refused is an :class:`UnsafeCheckpointError`."""
    if "Weights only load failed" in str(error):
        found = re.search(r"Unsupported (?:global: GLOBAL )?(\S+)", str(error))
        return UnsafeCheckpointError(
            f"checkpoint {path} holds pickled objects besides weights"
            f"{f' ({found.group(1)})' if found else ''}: eilab loads weights only and never "
            "unpickles such objects, which could run code; use a checkpoint eilab-train wrote"
        )
    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    return CorruptCheckpointError(f"checkpoint {path} is truncated or corrupt ({reason[:200]})")


def load_checkpoint(
    path: str | os.PathLike, map_location: Any = "cpu", mmap: bool = False
) -> dict[str, Any]:
    """A Lightning checkpoint read with ``weights_only=True``; a damaged file is named."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except DAMAGED as error:
        raise corrupt(path, error) from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise corrupt(path, ValueError("no state_dict: not a Lightning checkpoint"))
    return checkpoint


def atomic_save(checkpoint: dict[str, Any], path: Path) -> None:
    """torch.save to a temporary file beside ``path``, fsync, then rename it over ``path``."""
    with atomic_file(path, "wb") as file:
        torch.save(checkpoint, file)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning CheckpointIO for local files: atomic saves, loads that name a damaged file,
    removals of one file only (Lightning's own removes recursively).

    ``after_save`` runs after each completed save (eilab-train records the run's checkpoints).
    """

    def __init__(self, after_save: Callable[[], None] | None = None) -> None:
        self.after_save = after_save

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO.save_checkpoint takes no storage_options")
        atomic_save(checkpoint, Path(path))
        if self.after_save is not None:
            self.after_save()

    def load_checkpoint(self, path: str | os.PathLike, *args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            return super().load_checkpoint(path, *args, **kwargs)
        except (FileNotFoundError, PermissionError, IsADirectoryError):
            raise
        except DAMAGED as error:
            raise corrupt(path, error) from error

    def remove_checkpoint(self, path: str | os.PathLike) -> None:
        """Delete one checkpoint file (a symlink itself, not its target); refuse a directory."""
        path = Path(path)
        if path.is_dir() and not path.is_symlink():
            raise UnsafePathError(f"refusing to delete {path}: a directory, not a checkpoint file")
        path.unlink(missing_ok=True)
