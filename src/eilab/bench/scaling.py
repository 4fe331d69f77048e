"""How the CT backends scale: time and peak memory of forward + adjoint + FBP vs N and views.

Three backends on one grid of image sizes N × numbers of views: eilab ``CT(backend="torch")``
(stored sparse matrices), eilab ``CT(backend="astra")`` (matrix-free, ASTRA Toolbox) and
deepinv ``Tomography`` (the named peer, as in :mod:`eilab.bench.ops`). Each cell runs in a
fresh child process (:mod:`eilab.bench.memory`), so its peak memory is its own. Then the
issue's CPU target: 512² × 720 views, batch 8, within 4 GB.

What keeps the grid within a shared machine's memory and time, cell by cell:

- ``refused``: a built-in cell whose CT memory estimate (``radon.estimate_memory``) to build
  exceeds ``cap_gb`` is never built; the cell shows the estimate (this rule comes first);
- ``out of memory``: any other cell may add at most ``cap_gb`` to its child (address space);
- ``skipped``: a cell that contains (N and views both at least) a cell of the same backend that
  ran out of memory or was stopped, or whose predicted seconds exceed ``budget_s``: the build +
  first call of the largest measured cell it contains, scaled by N² × views (the cost of all
  three backends grows as N² × views);
- ``stopped``: the child is killed after ``2 budget_s + 30`` seconds.

``python -m eilab.bench.scaling`` runs it on the CPU and on CUDA when a GPU is there;
``--quick`` at tiny sizes (tests).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from eilab.bench.memory import CellResult, CellSpec, run_cell
from eilab.bench.report import machine_lines, section, table
from eilab.bench.timing import Budget
from eilab.physics import radon

BACKENDS = ("torch", "astra", "deepinv")
#: Results that make every larger cell of the same backend pointless.
PROPAGATES = ("out of memory", "stopped", "skipped")


@dataclass(frozen=True)
class Refused:
    """A built-in cell not built: CT's estimate of its memory (GB) exceeds the cap."""

    rest_gb: float
    build_gb: float

    def __str__(self) -> str:
        return f"est. {self.build_gb:.1f} ({self.rest_gb:.1f} at rest)"


Cell = CellResult | Refused | str


@dataclass(frozen=True)
class Sweeps:
    """The grid ``sizes`` × ``views`` at ``batch``, the target cell, and the per-cell limits."""

    sizes: tuple[int, ...] = (128, 256, 512, 1024)
    views: tuple[int, ...] = (50, 90, 180, 360, 720, 1000)
    batch: int = 1
    target: tuple[int, int, int] = (512, 720, 8)  # N, views, batch (issue 15's CPU target)
    target_gb: float = 4.0
    cap_gb: float = 6.0
    budget_s: float = 90.0
    slow_s: float = 1.0
    repeats: int = 1

    @property
    def timeout_s(self) -> float:
        """When a child is killed: twice the budget, plus its start-up."""
        return 2 * self.budget_s + 30


#: Tiny sizes for tests: every backend, the memory column and the plot, in seconds.
QUICK = Sweeps(sizes=(16, 32), views=(4,), target=(32, 8, 2), target_gb=1.0, budget_s=20)


def refusal(size: int, views: int, cap_gb: float) -> Refused | None:
    """CT's estimate of the built-in matrices when building them exceeds the cap, else None."""
    need = radon.estimate_memory(size, views, circle=False)
    return Refused(need.rest / 1e9, need.peak / 1e9) if need.peak > cap_gb * 1e9 else None


def skip_reason(
    backend: str, size: int, views: int, done: dict[tuple[str, int, int], Cell], budget_s: float
) -> str | None:
    """Why not to run this cell, from the backend's cells already done; None to run it."""
    mine = {(s, v): r for (b, s, v), r in done.items() if b == backend}
    missing = [r for r in mine.values() if isinstance(r, str) and r.startswith("missing")]
    if missing:
        return missing[0]
    inside = {(s, v): r for (s, v), r in mine.items() if s <= size and v <= views}
    for (s, v), r in inside.items():
        if isinstance(r, str) and r.startswith(PROPAGATES):
            return f"skipped (after {s}x{v}: {r.split(' (')[0]})"
    measured = {key: r for key, r in inside.items() if isinstance(r, CellResult)}
    if not measured:
        return None
    s, v = max(measured, key=lambda key: key[0] ** 2 * key[1])
    r = measured[s, v]
    predicted = (r.build_s + r.first_s) * size**2 * views / (s**2 * v)
    if predicted > budget_s:
        return f"skipped (about {predicted:.0f} s from {s}x{v} > {budget_s:g} s)"
    return None


def measure(
    backend: str, case: tuple[int, int, int], config: Sweeps, budget: Budget, device: str
) -> Cell:
    """One backend at (N, views, batch) in a child, unless the built-in one is refused."""
    size, views, batch = case
    if backend == "torch" and (refused := refusal(size, views, config.cap_gb)):
        return refused
    spec = CellSpec(backend, size, views, batch, device, torch.get_num_threads())
    spec = replace(spec, cap_gb=config.cap_gb, budget_s=config.budget_s, slow_s=config.slow_s)
    spec = replace(spec, repeats=config.repeats, min_time=budget.min_time, max_time=budget.max_time)
    return run_cell(spec, config.timeout_s)


def run_grid(config: Sweeps, budget: Budget, device: str) -> dict[tuple[str, int, int], Cell]:
    """Every cell of the grid, sizes then views ascending, each backend in turn."""
    done: dict[tuple[str, int, int], Cell] = {}
    for size in config.sizes:
        for views in config.views:
            for backend in BACKENDS:
                case = (size, views, config.batch)
                refused = backend == "torch" and refusal(size, views, config.cap_gb)
                why = refused or skip_reason(backend, size, views, done, config.budget_s)
                cell = why or measure(backend, case, config, budget, device)
                done[backend, size, views] = cell
                print(
                    f"[bench] {device} {backend} {size}x{views}: {summary(cell)}", file=sys.stderr
                )
    return done


#: A backend's columns: on the CPU time and peak RSS; on CUDA also torch's and NVML's GPU peaks.
UNITS = {False: ("ms", "GB"), True: ("ms", "host GB", "torch GB", "device GB")}


def gigabytes(value: float | None) -> str:
    """A peak in GB for a table cell; '-' where it was not measured (no NVML)."""
    return "-" if value is None else f"{value:.2f}"


def summary(cell: Cell) -> str:
    """A cell as 'ms, GB' for the log (on CUDA, with the device-level GPU peak)."""
    if isinstance(cell, CellResult):
        gpu = "" if cell.gpu_peak_gb is None else f", GPU {gigabytes(cell.gpu_device_gb)} GB"
        return f"{cell.total_ms:.1f} ms, {cell.peak_gb:.2f} GB{gpu}"
    return f"refused, {cell}" if isinstance(cell, Refused) else cell


def time_and_memory(cell: Cell, gpu: bool = False) -> list[str]:
    """A backend's table cells: total ms and peak GB(s), or what stands for them."""
    if isinstance(cell, CellResult):
        peaks = [cell.peak_gb, cell.gpu_peak_gb, cell.gpu_device_gb] if gpu else [cell.peak_gb]
        return [f"{cell.total_ms:.1f}", *map(gigabytes, peaks)]
    blanks = ["-"] * (len(UNITS[gpu]) - 2)
    return ["refused", str(cell), *blanks] if isinstance(cell, Refused) else [cell, "-", *blanks]


def grid_table(
    config: Sweeps, done: dict[tuple[str, int, int], Cell], gpu: bool = False
) -> list[str]:
    """One row per (N, views): each backend's ms and peak GB(s), and the built-in's build s."""
    header = ["N", "views", *(f"{b} {unit}" for b in BACKENDS for unit in UNITS[gpu])]
    rows = []
    for size in config.sizes:
        for views in config.views:
            torch_cell = done["torch", size, views]
            build = f"{torch_cell.build_s:.1f}" if isinstance(torch_cell, CellResult) else "-"
            cells = [c for b in BACKENDS for c in time_and_memory(done[b, size, views], gpu)]
            rows.append([size, views, *cells, build])
    return table([*header, "torch build s"], rows, numeric_from=0)


def counted_peak(cell: CellResult) -> float:
    """The peak a target and the plot count: the GPU's on CUDA (NVML's, else torch's), else
    the host's."""
    if cell.gpu_peak_gb is None:
        return cell.peak_gb
    return cell.gpu_peak_gb if cell.gpu_device_gb is None else cell.gpu_device_gb


def target_lines(config: Sweeps, results: dict[str, Cell], device: str) -> list[str]:
    """The target's table: each backend's split, peak(s), and whether it meets the target."""
    size, views, batch = config.target
    gpu = device.startswith("cuda")
    rows = []
    for backend, cell in results.items():
        if isinstance(cell, CellResult):
            met = "yes" if counted_peak(cell) <= config.target_gb else "no"
            split = [f"{cell.ops_ms[op]:.1f}" for op in ("forward", "adjoint", "fbp")]
            measured = [*time_and_memory(cell, gpu), f"{cell.build_s:.1f}"]
            rows.append([backend, *split, *measured, met])
        else:
            rows.append([backend, "-", "-", "-", *time_and_memory(cell, gpu), "-", "no"])
    peak = "GPU peak (device GB)" if gpu else "peak"
    title = (
        f"### {device.upper()} target: {size}² × {views} views, batch {batch}, "
        f"{peak} ≤ {config.target_gb:g} GB"
    )
    units = ["total ms", *(UNITS[gpu][1:] if gpu else ["peak GB"])]
    header = ["backend", "forward ms", "adjoint ms", "FBP ms", *units, "build s"]
    return ["", title, "", *table([*header, "target met"], rows, numeric_from=1)]


def plot(path: Path, title: str, config: Sweeps, done: dict[tuple[str, int, int], Cell]) -> None:
    """Log-log: total ms and peak GB vs N² × views, per backend (refused: CT's estimate)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    time_ax, memory_ax = fig.subplots(1, 2)
    for backend, color in zip(BACKENDS, ("C0", "C1", "C2"), strict=True):
        cells = sorted(
            ((s * s * v, r) for (b, s, v), r in done.items() if b == backend),
            key=lambda pair: pair[0],
        )
        measured = [(pv, r) for pv, r in cells if isinstance(r, CellResult)]
        if measured:
            pvs = [pv for pv, _ in measured]
            style = {"color": color, "label": backend}
            time_ax.plot(pvs, [r.total_ms for _, r in measured], "o-", **style)
            memory_ax.plot(pvs, [counted_peak(r) for _, r in measured], "o-", **style)
        refused = [(pv, r.build_gb) for pv, r in cells if isinstance(r, Refused)]
        if refused:
            label = f"{backend} refused (CT estimate to build)"
            memory_ax.plot(*zip(*refused, strict=True), "o--", color=color, mfc="none", label=label)
    memory_ax.axhline(config.cap_gb, color="grey", ls=":", label=f"cap {config.cap_gb:g} GB")
    labels = ((time_ax, "forward + adjoint + FBP, ms"), (memory_ax, "peak GB (CUDA: the GPU's)"))
    for ax, ylabel in labels:
        ax.set(xscale="log", yscale="log", xlabel="N² × views", ylabel=ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def scaling_section(config: Sweeps, budget: Budget, device: torch.device, plot_path: Path) -> str:
    """Run the grid and the target, write the plot to ``plot_path``, return the markdown."""
    started, load = time.monotonic(), os.getloadavg()[0]
    done = run_grid(config, budget, str(device))
    target = {b: measure(b, config.target, config, budget, str(device)) for b in BACKENDS}
    where = f"{str(device).upper()}, batch {config.batch}"
    plot(plot_path, f"CT forward + adjoint + FBP, {where}", config, done)
    minutes = (time.monotonic() - started) / 60
    bases = [r.base_gb for r in [*done.values(), *target.values()] if isinstance(r, CellResult)]
    base = f"{min(bases):.2f}-{max(bases):.2f} GB" if bases else "-"
    notes = [
        "one call = forward A(x) (no_grad) + adjoint A_adjoint(y) + FBP A_dagger(y) "
        "(no_grad); ms = the sum of the three medians; torch = eilab CT(backend='torch') "
        "(stored sparse matrices), astra = eilab CT(backend='astra') (matrix-free), "
        "deepinv = deepinv Tomography(normalize=False) (adjoint by autograd, FBP fbp=True)",
        "GB (host GB on CUDA) = peak resident memory (ru_maxrss) of a fresh child process per "
        "cell, its interpreter, torch and the input included; on CUDA, torch GB = "
        "torch.cuda.max_memory_allocated (torch's tensors only) and device GB = the peak of "
        "the GPU's use as NVML reports it, sampled every 1 ms, above its level once CUDA was "
        "initialised (ASTRA's buffers, cuFFT plans, cuSPARSE work space included; '-' without "
        "nvidia-ml-py); "
        f"each child may add at most {config.cap_gb:g} GB (address-space limit on the CPU); "
        f"a child's own part before the operator is built (imports, input): {base}",
        f"timing: a first call of each operation; under {config.slow_s:g} s in all, each is "
        f"then timed by adaptive_autorange ({budget.min_time:g}-{budget.max_time:g} s), "
        f"else by at most {config.repeats} more call(s) within {config.budget_s:g} s; "
        "the median of the calls",
        f"refused = the built-in backend's CT estimate to build (radon.estimate_memory, "
        f"GB, at rest in brackets) exceeds {config.cap_gb:g} GB: never built",
        f"skipped = predicted over the {config.budget_s:g} s per-cell budget (build + first "
        "call of a smaller measured cell × N² × views), or a smaller cell of the same "
        f"backend ran out of memory or was stopped; stopped = killed after "
        f"{config.timeout_s:g} s",
        f"load average {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end; "
        f"{minutes:.1f} min in all (other work on the machine skews timings)",
    ]
    body = [f"- plot: {plot_path}", "", *grid_table(config, done, device.type == "cuda")]
    body += target_lines(config, target, str(device))
    title = f"CT backend scaling: time and peak memory ({where}, float32)"
    return section(title, notes, body)


def device_name(text: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N`` (argparse type)."""
    if re.fullmatch(r"cpu|cuda(:[0-9]+)?", text) is None:
        raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N, got {text!r}")
    return text


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m eilab.bench.scaling", description=__doc__)
    defaults = Sweeps()
    parser.add_argument("--quick", action="store_true", help="tiny grid and timing (tests)")
    parser.add_argument(
        "--devices", nargs="+", type=device_name, default=["cpu", "cuda"], help="cpu, cuda, cuda:N"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=list(defaults.sizes))
    parser.add_argument("--views", type=int, nargs="+", default=list(defaults.views))
    parser.add_argument("--batch", type=int, default=defaults.batch)
    parser.add_argument("--target", type=int, nargs=3, default=list(defaults.target))
    parser.add_argument("--cap-gb", type=float, default=defaults.cap_gb)
    parser.add_argument("--budget-s", type=float, default=defaults.budget_s)
    parser.add_argument("--repeats", type=int, default=defaults.repeats)
    parser.add_argument("--min-time", type=float, default=0.2, help="adaptive timing, s")
    parser.add_argument("--max-time", type=float, default=1.0, help="adaptive timing, s")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads per cell (ASTRA's CPU uses one)"
    )
    parser.add_argument(
        "--out-dir", type=Path, default=None, help="write scaling_<device>.md and .png there"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> str:
    """Run the grid on each device asked for and present; print (and write) the reports."""
    args = parse_args(argv)
    grid = (tuple(args.sizes), tuple(args.views), args.batch, tuple(args.target))
    config = Sweeps(*grid, cap_gb=args.cap_gb, budget_s=args.budget_s, repeats=args.repeats)
    budget = Budget(0, args.min_time, args.max_time)
    if args.quick:
        config, budget = replace(QUICK, cap_gb=args.cap_gb), Budget(0, 0.0, 0.01)
    torch.set_num_threads(args.threads)
    out_dir = args.out_dir or Path(tempfile.mkdtemp(prefix="eilab-scaling-"))
    reports = []
    for name in args.devices:
        if name.startswith("cuda") and not torch.cuda.is_available():
            reports.append(f"# eilab scaling benchmark\n\n- {name}: not available here\n")
            continue
        device, stem = torch.device(name), f"scaling_{name.replace(':', '')}"
        head = ["# eilab scaling benchmark", "", *machine_lines(device), ""]
        section_text = scaling_section(config, budget, device, out_dir / f"{stem}.png")
        text = "\n".join([*head, section_text])
        if args.out_dir is not None:
            (out_dir / f"{stem}.md").write_text(text)
        reports.append(text)
    text = "\n".join(reports)
    print(text)
    return text


if __name__ == "__main__":
    main()
