"""One way to time a cell: ``torch.utils.benchmark``, reported as median and IQR in ms.

A cell is a :class:`Timing`, or a string saying why there is none: ``missing (reason)`` for a
peer that does not import here, ``failed (error)`` for a case that raised (out of memory, an
unsupported kernel), ``n/a (...)`` for what a library cannot do.
"""

from __future__ import annotations

import gc
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TypeVar

import torch
from torch.utils import benchmark


@dataclass(frozen=True)
class Budget:
    """How long each cell is timed: untimed warm-up calls, then ``adaptive_autorange``."""

    warmup: int = 1
    min_time: float = 0.5  # seconds of timed calls before the IQR may stop the measurement
    max_time: float = 10.0  # seconds after which it stops whatever the IQR

    def describe(self) -> str:
        """One line for the report: how the cells were timed."""
        return (
            f"timed by torch.utils.benchmark.Timer.adaptive_autorange (stops when IQR/median "
            f"< 0.1 after >= 4 blocks and {self.min_time:g} s, or after {self.max_time:g} s), "
            f"after {self.warmup} untimed warm-up call(s); cells: median ms (IQR ms)"
        )


@dataclass(frozen=True)
class Timing:
    """One callable's median and interquartile range per call (ms), and its first call (ms)."""

    median_ms: float
    iqr_ms: float
    first_ms: float | None = None

    def __str__(self) -> str:
        return f"{self.median_ms:.2f} ({self.iqr_ms:.2f})"


Cell = Timing | str
T = TypeVar("T")


class MissingPeerError(Exception):
    """A peer library that does not import here (its cell reads 'missing (reason)')."""


class NotApplicableError(Exception):
    """What a library cannot do (its cell reads 'n/a (reason)')."""


def timed_once(fn: Callable[[], T]) -> tuple[T, float]:
    """``fn()``'s result and the seconds one call took (the accelerator synchronised).

    ``Timer.timeit(1)`` would not do: it runs the statement twice more, untimed, first.
    """
    start = benchmark.timer()
    result = fn()
    return result, benchmark.timer() - start


def measure(fn: Callable[[], object], budget: Budget) -> Timing:
    """Time ``fn()`` after the warm-up calls (the first one's time is kept), with the torch
    threads of the caller (``Timer`` would use one)."""
    warm_ms = [1e3 * timed_once(fn)[1] for _ in range(budget.warmup)]
    timer = benchmark.Timer("fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    m = timer.adaptive_autorange(min_run_time=budget.min_time, max_run_time=budget.max_time)
    return Timing(1e3 * m.median, 1e3 * m.iqr, warm_ms[0] if warm_ms else None)


def short(err: BaseException) -> str:
    """The first line of an error, at most 70 characters."""
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return first if len(first) <= 70 else first[:67] + "..."


def attempt(fn: Callable[[], T]) -> T | str:
    """``fn()``, or the reason it has no result: one cell's failure does not stop a suite."""
    try:
        return fn()
    except MissingPeerError as err:
        return f"missing ({err})"
    except NotApplicableError as err:
        return f"n/a ({err})"
    except Exception as err:  # out of memory, an unsupported kernel: recorded in its cell
        return f"failed ({type(err).__name__}: {short(err)})"


def require(module: str) -> ModuleType:
    """Import a peer library, or raise :class:`MissingPeerError` with the reason.

    torchvision beside a mismatched torch raises a RuntimeError ("operator torchvision::nms
    does not exist"), not an ImportError.
    """
    try:
        return importlib.import_module(module)
    except (ImportError, RuntimeError) as err:
        raise MissingPeerError(short(err)) from err


def ratio(peer: Cell, ours: Cell) -> str:
    """Peer time / our time as '2.35x' (above 1: ours is faster); '-' without both."""
    if isinstance(peer, str) or isinstance(ours, str) or not ours.median_ms:
        return "-"
    return f"{peer.median_ms / ours.median_ms:.2f}x"


def free_memory(device: torch.device) -> None:
    """Drop what earlier cells left, and restart the peak-memory counter on CUDA."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def resolve_device(name: str) -> torch.device:
    """The torch device for ``--device``; a clear error when CUDA is asked for but absent."""
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            "eilab.bench: --device cuda, but torch.cuda.is_available() is False "
            f"(torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'}). "
            "Run on a machine with a GPU and a CUDA build of torch, or use --device cpu."
        )
    return torch.device(name)
