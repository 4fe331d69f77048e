"""GPU memory of a benchmark cell: the device's index, and its peak use as the driver sees it.

torch's ``max_memory_allocated`` counts torch's own tensors only; ASTRA's CUDA buffers, cuFFT
plans, cuSPARSE work space and the CUDA context are invisible to it. :class:`DeviceMemoryPeak`
samples the device-level use through NVML (``nvidia-ml-py``, imported as ``pynvml``) from a
thread and keeps its maximum above the level when sampling began (after CUDA's context was
made): on a GPU that nothing else uses, what the cell added. A spike shorter than the
sampling interval (1 ms) can be missed; buffers that live through a call are not.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

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


def nvml_reader(device: torch.device | str) -> Callable[[], int]:
    """A function returning the bytes in use on ``device`` now, as NVML reports them.

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
    return lambda: int(pynvml.nvmlDeviceGetMemoryInfo(handle).used)


class DeviceMemoryPeak:
    """Context manager: the peak of ``read()`` above its value at entry, sampled by a thread.

    ``peak_bytes`` is valid after exit. ``read`` is any function returning bytes in use
    (``nvml_reader(device)`` on a GPU; tests pass their own).
    """

    def __init__(self, read: Callable[[], int], interval_s: float = INTERVAL_S) -> None:
        self.read, self.interval_s = read, interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._note(self.read())
            self._stop.wait(self.interval_s)

    def _note(self, used: int) -> None:
        self.peak_bytes = max(self.peak_bytes, used - self.start_bytes)

    def __enter__(self) -> DeviceMemoryPeak:
        self.start_bytes = self.read()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self._note(self.read())
