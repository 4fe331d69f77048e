"""Time eilab's CT operator beside its peers: ``python -m eilab.bench``.

For each case (image size N, number of views, batch size) it reports the median wall time of
one call, in milliseconds, of:

- eilab ``CT``: forward ``A``, adjoint ``A_adjoint``, FBP ``A_dagger``;
- deepinv ``Tomography`` (its defaults, except ``normalize=False`` so all three libraries work
  on the same un-normalised line integrals): ``A``, ``A_adjoint`` (deepinv's exact adjoint,
  computed by autograd), FBP ``A_dagger(y, fbp=True)``;
- scikit-image ``radon`` / ``iradon(filter_name='ramp')``, looped over the batch (it has no
  adjoint).

Forward and FBP run inside ``torch.no_grad()``; the adjoint is called as is (deepinv's needs
autograd), on a sinogram that does not require grad. Building the operators is not timed.
Ratios are peer time / eilab time, so a ratio above 1 means eilab is faster. A peer that does
not import is reported as ``missing (reason)``. deepinv needs torchvision, which does not import
beside the project's CPU torch: run this in the bench environment built by
``tools/setup_bench_env.sh`` (``.bench-venv/bin/python -m eilab.bench``).
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

OPS = ("forward", "adjoint", "fbp")
LIBS = ("eilab", "deepinv", "skimage")
PEERS = ("deepinv", "skimage")
# What a peer that does not import raises: torchvision beside a mismatched torch raises a
# RuntimeError ("operator torchvision::nms does not exist"), not an ImportError.
IMPORT_ERRORS = (ImportError, RuntimeError)


@dataclass(frozen=True)
class Case:
    """One benchmark configuration."""

    size: int
    views: int
    batch: int


@dataclass
class Library:
    """One library's timed operations for a case, or the reason it could not be built."""

    name: str
    ops: dict[str, Callable[[], object]] = field(default_factory=dict)
    missing: str | None = None


def angles_deg(views: int) -> np.ndarray:
    """``views`` angles evenly over [0, 180) degrees, as all three libraries use."""
    return np.arange(views) * (180.0 / views)


def no_grad(fn: Callable[[torch.Tensor], torch.Tensor], arg: torch.Tensor) -> Callable[[], object]:
    """A closure calling ``fn(arg)`` inside ``torch.no_grad()``."""

    def call() -> object:
        with torch.no_grad():
            return fn(arg)

    return call


def _reason(err: BaseException) -> str:
    """A short, one-line reason for a missing library."""
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return first if len(first) <= 70 else first[:67] + "..."


@functools.cache
def eilab_ct(size: int, views: int) -> torch.nn.Module:
    """eilab's CT operator (built once per geometry: building it is not timed)."""
    from eilab.physics.ct import CT

    return CT(img_size=size, n_views=views, circle=False)


@functools.cache
def deepinv_tomography(size: int, views: int) -> torch.nn.Module:
    """deepinv's parallel-beam Tomography, un-normalised like eilab and scikit-image."""
    from deepinv.physics import Tomography

    return Tomography(angles=views, img_width=size, circle=False, normalize=False, device="cpu")


def eilab_library(case: Case, x: torch.Tensor) -> Library:
    """eilab's forward, adjoint and FBP for ``case``."""
    try:
        ct = eilab_ct(case.size, case.views)
    except ImportError as err:
        return Library("eilab", missing=_reason(err))
    y = no_grad(ct.A, x)()
    ops = {
        "forward": no_grad(ct.A, x),
        "adjoint": lambda: ct.A_adjoint(y),
        "fbp": no_grad(ct.A_dagger, y),
    }
    return Library("eilab", ops)


def deepinv_library(case: Case, x: torch.Tensor) -> Library:
    """deepinv's forward, adjoint and FBP (``A_dagger(y, fbp=True)``) for ``case``."""
    try:
        physics = deepinv_tomography(case.size, case.views)
    except IMPORT_ERRORS as err:
        return Library("deepinv", missing=_reason(err))
    y = no_grad(physics.A, x)()
    ops = {
        "forward": no_grad(physics.A, x),
        "adjoint": lambda: physics.A_adjoint(y),
        "fbp": no_grad(functools.partial(physics.A_dagger, fbp=True), y),
    }
    return Library("deepinv", ops)


def skimage_library(case: Case, x: torch.Tensor) -> Library:
    """scikit-image's ``radon`` and ramp-filtered ``iradon``, one image at a time."""
    try:
        from skimage.transform import iradon, radon
    except IMPORT_ERRORS as err:
        return Library("skimage", missing=_reason(err))
    theta = angles_deg(case.views)
    images = list(x[:, 0].numpy())
    sinos = [radon(img, theta=theta, circle=False) for img in images]

    def forward() -> object:
        return [radon(img, theta=theta, circle=False) for img in images]

    def fbp() -> object:
        return [iradon(s, theta=theta, circle=False, filter_name="ramp") for s in sinos]

    return Library("skimage", {"forward": forward, "fbp": fbp})


BUILDERS: dict[str, Callable[[Case, torch.Tensor], Library]] = {
    "eilab": eilab_library,
    "deepinv": deepinv_library,
    "skimage": skimage_library,
}


def median_ms(fn: Callable[[], object], warmup: int, repeats: int) -> float:
    """Median wall time of ``fn()`` in milliseconds, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def phantom(size: int) -> torch.Tensor:
    """The Shepp-Logan phantom resized to ``size``, or a seeded random image without skimage."""
    try:
        from skimage.data import shepp_logan_phantom
        from skimage.transform import resize
    except IMPORT_ERRORS:
        return torch.rand(size, size, generator=torch.Generator().manual_seed(0))
    image = resize(shepp_logan_phantom(), (size, size), anti_aliasing=True)
    return torch.from_numpy(image.astype(np.float32))


Timings = dict[str, dict[str, float] | str]  # library -> {op: ms}, or "missing (reason)"


def time_case(case: Case, warmup: int, repeats: int) -> Timings:
    """Median ms of every operation of every library for one case."""
    x = phantom(case.size).expand(case.batch, 1, case.size, case.size).contiguous()
    timings: Timings = {}
    for name, build in BUILDERS.items():
        lib = build(case, x)
        if lib.missing is not None:
            timings[name] = f"missing ({lib.missing})"
            continue
        timings[name] = {op: median_ms(fn, warmup, repeats) for op, fn in lib.ops.items()}
    return timings


def op_ms(timings: Timings, lib: str, op: str) -> float | None:
    """The time of ``op`` for ``lib``, summing ops joined by '+'; None if not measured."""
    entry = timings[lib]
    if isinstance(entry, str) or not all(part in entry for part in op.split("+")):
        return None
    return sum(entry[part] for part in op.split("+"))


def time_cell(timings: Timings, lib: str, op: str) -> str:
    """A table cell: ms, 'missing (reason)', or 'n/a' for an op the library lacks."""
    if isinstance(timings[lib], str):
        return str(timings[lib])
    ms = op_ms(timings, lib, op)
    return "n/a" if ms is None else f"{ms:.2f}"


def ratio_cell(timings: Timings, peer: str, op: str) -> str:
    """Peer time / eilab time, formatted as '2.35x'; '-' when either is not measured."""
    peer_ms, eilab_ms = op_ms(timings, peer, op), op_ms(timings, "eilab", op)
    if peer_ms is None or not eilab_ms:
        return "-"
    return f"{peer_ms / eilab_ms:.2f}x"


def table_rows(case: Case, timings: Timings) -> list[str]:
    """Markdown rows for one case: the three operations and forward+adjoint."""
    rows = []
    for op in (*OPS, "forward+adjoint"):
        cells = [str(case.size), str(case.views), str(case.batch), op]
        cells += [time_cell(timings, lib, op) for lib in LIBS]
        cells += [ratio_cell(timings, peer, op) for peer in PEERS]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


TABLE_HEADER = [
    "| N | views | batch | operation | eilab ms | deepinv ms | skimage ms "
    "| deepinv / eilab | skimage / eilab |",
    "|---:|---:|---:|---|---:|---:|---:|---:|---:|",
]


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, else what platform reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def version(package: str) -> str:
    """An installed distribution's version, or 'not installed'."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_lines() -> list[str]:
    """What the numbers were measured on."""
    versions = ", ".join(
        f"{pkg} {version(pkg)}" for pkg in ("eilab", "deepinv", "scikit-image", "numpy")
    )
    return [
        f"- CPU: {cpu_model()} ({_cpu_count()} logical cores visible)",
        f"- torch {torch.__version__}, {torch.get_num_threads()} torch threads; "
        f"Python {platform.python_version()}",
        f"- {versions}",
        f"- load average at start: {_load_average()} (other work on the machine skews timings)",
    ]


def _load_average() -> str:
    """The 1-minute load average, or 'unknown'."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


def _cpu_count() -> int:
    """Logical cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def rel_l2(a: np.ndarray, ref: np.ndarray) -> float:
    """||a - ref|| / ||ref||."""
    return float(np.linalg.norm(a - ref) / np.linalg.norm(ref))


def geometry_lines(size: int, views: int) -> list[str]:
    """Each library's sinogram and FBP of a Shepp-Logan phantom vs scikit-image's.

    Informational. eilab follows ``radon`` exactly. deepinv rotates with ``grid_sample`` about
    the padded grid's geometric centre, scikit-image about pixel D//2 (D = ceil(sqrt(2) N)):
    they agree to float precision when D is odd (N = 64, 256) and differ by about 10% (a
    half-pixel shift) when D is even (N = 128). FBP is compared as each library's FBP of its
    own sinogram, FBP(A x).
    """
    try:
        from skimage.transform import iradon, radon
    except IMPORT_ERRORS as err:
        return [f"- N={size}, views={views}: no scikit-image reference ({_reason(err)})"]
    image = phantom(size)
    theta = angles_deg(views)
    ref_sino = radon(image.numpy(), theta=theta, circle=False)
    ref_fbp = iradon(ref_sino, theta=theta, circle=False, filter_name="ramp")
    lines = [
        f"- N={size}, views={views}, scikit-image: FBP(A x) vs phantom rel. L2 "
        f"{rel_l2(ref_fbp, image.numpy()):.3f}"
    ]
    for name, build, fbp_kwargs in (
        ("eilab", eilab_ct, {}),
        ("deepinv", deepinv_tomography, {"fbp": True}),
    ):
        try:
            op = build(size, views)
        except IMPORT_ERRORS as err:
            lines.append(f"- N={size}, views={views}, {name}: missing ({_reason(err)})")
            continue
        with torch.no_grad():
            sino = op.A(image[None, None])
            fbp = op.A_dagger(sino, **fbp_kwargs)[0, 0].numpy()
        lines.append(
            f"- N={size}, views={views}, {name}: forward vs skimage radon rel. L2 "
            f"{rel_l2(sino[0, 0].numpy(), ref_sino):.2e}; FBP(A x) vs skimage iradon(radon x) "
            f"rel. L2 {rel_l2(fbp, ref_fbp):.2e}; FBP(A x) vs phantom rel. L2 "
            f"{rel_l2(fbp, image.numpy()):.3f}"
        )
    return lines


def report(cases: Sequence[Case], warmup: int, repeats: int) -> str:
    """Run every case and return the markdown report."""
    machine = machine_lines()
    rows = list(TABLE_HEADER)
    for case in cases:
        rows += table_rows(case, time_case(case, warmup, repeats))
    geometries = sorted({(c.size, c.views) for c in cases})
    geometry = [line for size, views in geometries for line in geometry_lines(size, views)]
    return "\n".join(
        [
            "## CT operator benchmark (CPU, float32, median ms per call)",
            "",
            *machine,
            f"- {warmup} warm-up + {repeats} timed calls per cell; ratio = peer ms / eilab ms "
            "(>1: eilab faster); skimage loops over the batch and has no adjoint",
            "",
            *rows,
            "",
            "Geometry check (informational; deepinv's rotation centre differs from"
            " scikit-image's by half a pixel when ceil(sqrt(2) N) is even):",
            "",
            *geometry,
            "",
        ]
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m eilab.bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[128], help="image sizes N")
    parser.add_argument("--views", type=int, nargs="+", default=[50], help="numbers of views")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="batch sizes")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per cell")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls per cell")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m eilab.bench``."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    cases = [Case(s, v, b) for s in args.sizes for v in args.views for b in args.batches]
    text = report(cases, args.warmup, args.repeats)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
