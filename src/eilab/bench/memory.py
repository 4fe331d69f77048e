"""One scaling cell in a fresh child process: the time of its operators and its own peak memory.

A process's peak resident set only grows, and ``tracemalloc`` does not see torch's or ASTRA's
allocations, so each cell runs in a child interpreter (``python -m eilab.bench.memory SPEC``)
and reports its own ``ru_maxrss`` (Linux: VmHWM) at the end: the cell's peak, the interpreter,
torch and the input batch included (``base_gb`` is that part, measured before the operator is
built). On the CPU the child then limits its address space (``RLIMIT_AS``) to what it uses plus
``cap_gb``, so a cell that needs more fails with an allocation error instead of swapping the
shared machine. On CUDA the cap is torch's per-process memory fraction of the GPU, and the
cell also reports two GPU peaks: ``torch.cuda.max_memory_allocated`` (torch's tensors) and the
device-level use NVML sees (:mod:`eilab.bench.gpu_monitor`: ASTRA's buffers, cuFFT plans and
cuSPARSE work space too), above the level once CUDA was initialised.

One call = one forward ``A(x)`` (no_grad), one adjoint ``A_adjoint(y)`` and one FBP
``A_dagger(y)`` (no_grad), as :func:`eilab.bench.ops.calls` builds them. A first call of each
is timed; when the three take less than ``slow_s`` seconds each is then timed by
``adaptive_autorange`` (:func:`eilab.bench.timing.measure`), otherwise by at most ``repeats``
more calls while the cell stays within ``budget_s``, and the median is reported.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from eilab.bench.gpu_monitor import cuda_index, nvml_sampled
from eilab.bench.timing import Budget, MissingPeerError, measure, require, short, timed_once

OPS = ("forward", "adjoint", "fbp")
#: The line of the child's stdout that carries its result.
MARK = "eilab-bench-cell "


@dataclass(frozen=True)
class CellSpec:
    """What one child measures: a backend at N², views and batch, and its limits."""

    backend: str  # "torch" or "astra" (eilab CT), or "deepinv" (Tomography)
    size: int
    views: int
    batch: int
    device: str = "cpu"
    threads: int = 2
    cap_gb: float = 6.0  # memory the operator may add to the child's (address space on the CPU)
    budget_s: float = 90.0  # no further repeats once the cell has run this long
    slow_s: float = 1.0  # a first call slower than this is not timed adaptively
    repeats: int = 1  # at most this many calls after the first one of a slow cell
    min_time: float = 0.5  # adaptive timing of fast cells (see Budget)
    max_time: float = 10.0


@dataclass(frozen=True)
class CellResult:
    """A measured cell: median ms per operation, build and first-call seconds, peaks in GB.

    ``peak_gb`` and ``base_gb`` are the host's (ru_maxrss); on CUDA ``gpu_peak_gb`` is torch's
    peak and ``gpu_device_gb`` NVML's (None without NVML)."""

    ops_ms: dict[str, float]
    build_s: float
    first_s: float
    calls: str  # how the medians were taken: "adaptive", or the number of calls
    peak_gb: float
    base_gb: float
    gpu_peak_gb: float | None = None
    gpu_device_gb: float | None = None

    @property
    def total_ms(self) -> float:
        """Forward + adjoint + FBP: the sum of the three medians."""
        return sum(self.ops_ms.values())


def run_cell(spec: CellSpec, timeout_s: float) -> CellResult | str:
    """Measure ``spec`` in a fresh child; a string cell says why there is no result.

    ``stopped (...)`` when the child ran past ``timeout_s`` and was killed; the child's own
    ``missing``, ``out of memory`` or ``failed`` reason otherwise.
    """
    command = [sys.executable, "-m", "eilab.bench.memory", json.dumps(asdict(spec))]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return f"stopped (> {timeout_s:.0f} s)"
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    if not lines:
        error = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return f"failed ({short(RuntimeError(error))})"
    result = json.loads(lines[-1][len(MARK) :])
    return result if isinstance(result, str) else CellResult(**result)


def peak_gb() -> float:
    """This process's peak resident set so far, in GB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def address_space() -> int | None:
    """This process's current virtual size in bytes (VmSize), or None without /proc."""
    status = Path("/proc/self/status")
    if not status.exists():
        return None
    line = next(x for x in status.read_text().splitlines() if x.startswith("VmSize"))
    return int(line.split()[1]) * 1024


def limit_memory(spec: CellSpec, device: torch.device) -> None:
    """Let the operator add at most ``cap_gb`` to what the child holds now."""
    cap = int(spec.cap_gb * 1e9)
    if device.type == "cuda":
        index = cuda_index(device)
        total = torch.cuda.get_device_properties(index).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, cap / total), index)
        torch.cuda.reset_peak_memory_stats(index)
        return
    used = address_space()
    if used is not None:
        resource.setrlimit(resource.RLIMIT_AS, (used + cap, resource.RLIM_INFINITY))


def import_backend(backend: str) -> None:
    """Import what the backend needs before the cap is set (a shared library maps memory).

    Raises :class:`MissingPeerError` where it does not import here.
    """
    from eilab.physics import astra_radon

    if backend == "deepinv":
        require("deepinv")
    elif backend == "astra":
        try:
            astra_radon.import_astra()
        except astra_radon.AstraNotInstalledError as err:
            raise MissingPeerError(f"astra-toolbox: {short(err.__cause__ or err)}") from err


def operators(spec: CellSpec, device: torch.device):
    """The backend's operators: eilab ``CT`` as physics/ct.yaml configures it, or deepinv's."""
    from eilab.bench.ops import Operators, deepinv_operators
    from eilab.physics import CT

    if spec.backend == "deepinv":
        return deepinv_operators(spec.size, spec.views, device)
    ct = CT(spec.size, spec.views, circle=False, filter_name="ramp", backend=spec.backend)
    ct = ct.to(device)
    return Operators(ct.A, ct.A_adjoint, ct.A_dagger)


def time_calls(spec: CellSpec, ops, x: torch.Tensor, started: float) -> tuple[dict, float, str]:
    """Median ms of each operation, the first call's seconds, and how the medians were taken."""
    from eilab.bench.ops import calls

    timed = {op: fn for op, fn in calls(ops, x).items() if op in OPS}
    samples = {op: [timed_once(fn)[1]] for op, fn in timed.items()}
    first_s = sum(s[0] for s in samples.values())
    if first_s < spec.slow_s:
        budget = Budget(warmup=0, min_time=spec.min_time, max_time=spec.max_time)
        return {op: measure(fn, budget).median_ms for op, fn in timed.items()}, first_s, "adaptive"
    for _ in range(spec.repeats):
        if time.monotonic() - started + first_s > spec.budget_s:
            break
        for op, fn in timed.items():
            samples[op].append(timed_once(fn)[1])
    ms = {op: 1e3 * statistics.median(s) for op, s in samples.items()}
    return ms, first_s, str(len(samples["forward"]))


def measure_cell(spec: CellSpec) -> dict:
    """Build the operators under the memory cap and time them (runs in the child)."""
    from eilab.bench.ops import phantom_batch

    started = time.monotonic()
    device = torch.device(spec.device)
    torch.set_num_threads(spec.threads)
    x = phantom_batch(spec.size, spec.batch, device)
    import_backend(spec.backend)
    base = peak_gb()
    limit_memory(spec, device)
    with nvml_sampled(device, "memory") as gpu_device:
        ops, build_s = timed_once(lambda: operators(spec, device))
        ms, first_s, how = time_calls(spec, ops, x, started)
    if device.type != "cuda":
        return asdict(CellResult(ms, build_s, first_s, how, peak_gb(), base))
    gpu = torch.cuda.max_memory_allocated(cuda_index(device)) / 1e9
    device_gb = None if gpu_device is None else gpu_device.peak_above_start / 1e9
    return asdict(CellResult(ms, build_s, first_s, how, peak_gb(), base, gpu, device_gb))


def out_of_memory(err: BaseException) -> bool:
    """Whether an error is an allocation that did not fit (the cap, or the machine)."""
    text = str(err).lower()
    return isinstance(err, MemoryError) or "can't allocate" in text or "out of memory" in text


def main(argv: list[str] | None = None) -> None:
    """Child entry point: measure the cell given as JSON and print the result (or why not)."""
    spec = CellSpec(**json.loads((argv or sys.argv[1:])[0]))
    try:
        result: dict | str = measure_cell(spec)
    except MissingPeerError as err:
        result = f"missing ({err})"
    except Exception as err:  # recorded in its cell, as in eilab.bench.timing.attempt
        reason = f"{type(err).__name__}: {short(err)}"
        cap = f"out of memory (cap {spec.cap_gb:g} GB, {type(err).__name__})"
        result = cap if out_of_memory(err) else f"failed ({reason})"
    print(MARK + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
