"""How the suites write their results: markdown tables, the machine they ran on, a plot."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import resource
from collections.abc import Sequence
from pathlib import Path

import torch

#: A plot panel: x label, x values, and one (x, y) series per line label.
Panel = tuple[str, Sequence[int], dict[str, list[tuple[int, float]]]]


def table(header: Sequence[str], rows: Sequence[Sequence[object]], numeric_from: int) -> list[str]:
    """A markdown table; columns from ``numeric_from`` on are right-aligned."""
    align = ["---" if i < numeric_from else "---:" for i in range(len(header))]
    return ["| " + " | ".join(map(str, line)) + " |" for line in (header, align, *rows)]


def section(title: str, notes: Sequence[str], body: Sequence[str]) -> str:
    """A report section: a heading, its bullet notes, then its tables and lines."""
    return "\n".join([f"## {title}", "", *(f"- {note}" for note in notes), "", *body, ""])


def version(package: str) -> str:
    """An installed distribution's version, or 'not installed'."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, else what platform reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_lines(device: torch.device) -> list[str]:
    """What the numbers were measured on: device, CPU, versions, load."""
    lines = [f"- device: {device.type}"]
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        lines += [
            f"- GPU: {props.name} (compute capability {props.major}.{props.minor}, "
            f"{props.total_memory / 2**30:.1f} GiB); CUDA {torch.version.cuda}, cuDNN "
            f"{torch.backends.cudnn.version()}; TF32: cudnn {torch.backends.cudnn.allow_tf32}, "
            f"matmul {torch.backends.cuda.matmul.allow_tf32}",
        ]
    packages = ("eilab", "deepinv", "torchvision", "lightning", "scikit-image", "numpy")
    return [
        *lines,
        f"- CPU: {cpu_model()} ({len(os.sched_getaffinity(0))} logical cores visible)",
        f"- torch {torch.__version__}, {torch.get_num_threads()} torch threads; "
        f"Python {platform.python_version()}",
        "- " + ", ".join(f"{pkg} {version(pkg)}" for pkg in packages),
        f"- load average at start: {os.getloadavg()[0]:.2f} (other work skews timings)",
    ]


def max_rss_line() -> str:
    """This process's maximum resident set size so far (Linux reports KiB)."""
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return f"- process max RSS (getrusage) at the end: {rss_mib:.0f} MiB"


def loglog_plot(path: Path, title: str, ylabel: str, panels: Sequence[Panel]) -> None:
    """Side-by-side log-log panels, one line per label, written to ``path`` as PNG."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5 * len(panels), 4), layout="constrained")
    for ax, (xlabel, ticks, series) in zip(fig.subplots(1, len(panels)), panels, strict=True):
        for label, points in series.items():
            if points:
                ax.plot(*zip(*points, strict=True), "o-", label=label)
        ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel=ylabel)
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.set_xticks([], minor=True)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
