"""What the driver says about a GPU while a benchmark runs: its memory in use and how busy it is.

torch's ``max_memory_allocated`` counts torch's own tensors only; ASTRA's CUDA buffers, cuFFT
plans, cuSPARSE work space and the CUDA context are invisible to it. :class:`Sampled` reads
NVML (``nvidia-ml-py``, imported as ``pynvml``) from a thread: the device-level memory in use
(its peak above the level when sampling began, after CUDA's context was made: on a GPU that
nothing else uses, what the benchmark added; a spike shorter than the 1 ms interval can be
missed) and the utilisation, the share of time a kernel was running (NVML's own sampling
period is 1/6 to 1 s, so a busy fraction needs a run of a second or more).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

#: Seconds between two NVML readings.
INTERVAL_S = 1e-3


def cuda_index(device: torch.device | str) -> int:
    """The index of a CUDA device; ``cuda`` without one means the current device."""
    device = torch.device(device)
    if device.type != "cuda":
        raise ValueError(f"not a CUDA device: {device}")
    return torch.cuda.current_device() if device.index is None else device.index


class NvmlUnavailableError(RuntimeError):
    """NVML (the ``pynvml`` module of ``nvidia-ml-py``) cannot read this device."""


def nvml_readers(device: torch.device | str) -> tuple[Callable[[], int], Callable[[], int]]:
    """Two functions: the bytes in use on ``device`` now, and its utilisation (percent).

    The device is found by its UUID, so CUDA_VISIBLE_DEVICES' renumbering does not matter.
    """
    try:
        import pynvml

        pynvml.nvmlInit()
        uuid = str(torch.cuda.get_device_properties(cuda_index(device)).uuid)
        uuid = uuid if uuid.startswith("GPU-") else f"GPU-{uuid}"
        handle = pynvml.nvmlDeviceGetHandleByUUID(uuid)
    except Exception as err:  # ImportError, NVMLError, a torch without .uuid: all mean "no"
        raise NvmlUnavailableError(f"{type(err).__name__}: {err}") from err
    return (
        lambda: int(pynvml.nvmlDeviceGetMemoryInfo(handle).used),
        lambda: int(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu),
    )


class Sampled:
    """Context manager: ``read()`` at entry, every ``interval_s`` from a thread, and at exit.

    After exit, ``values`` holds every reading; ``peak_above_start`` and ``mean`` sum them up.
    ``read`` is any function returning a number (an NVML reader on a GPU; tests pass theirs).
    """

    def __init__(self, read: Callable[[], int], interval_s: float = INTERVAL_S) -> None:
        self.read, self.interval_s = read, interval_s
        self.values: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.values.append(self.read())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> Sampled:
        self.values.append(self.read())
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.values.append(self.read())

    @property
    def peak_above_start(self) -> int:
        """The highest reading minus the first one (for memory: what the block added)."""
        return max(self.values) - self.values[0]

    @property
    def mean(self) -> float:
        """The mean of the readings (for utilisation: the busy percentage)."""
        return sum(self.values) / len(self.values)


@contextmanager
def nvml_sampled(
    device: torch.device, what: str, interval_s: float = INTERVAL_S
) -> Iterator[Sampled | None]:
    """NVML's readings of ``what`` ("memory" in bytes, or "utilisation" in percent) on
    ``device`` while the block runs; None on the CPU, or without NVML (said on stderr)."""
    if device.type != "cuda":
        yield None
        return
    try:
        memory, utilisation = nvml_readers(device)
    except NvmlUnavailableError as err:
        print(f"no NVML {what} readings: {err}", file=sys.stderr)
        yield None
        return
    with Sampled({"memory": memory, "utilisation": utilisation}[what], interval_s) as sampled:
        yield sampled
