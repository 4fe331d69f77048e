"""The CT operators of eilab, deepinv and scikit-image, one call of each timed per case.

- eilab ``CT`` is instantiated from the ``physics`` node of the train config (so its backend
  and filter are what training uses);
- deepinv ``Tomography`` runs with its defaults except ``normalize=False``, so all three
  libraries work on the same un-normalised line integrals: its adjoint is computed by autograd
  (``adjoint_via_backprop=True``), its FBP is ``A_dagger(y, fbp=True)``;
- scikit-image ``radon`` / ``iradon(filter_name='ramp')`` loop over the batch; it has no
  adjoint and runs on the CPU only.

Forward and FBP run under ``torch.no_grad()``; the adjoint is called as is (deepinv's needs
autograd) on a sinogram that does not require grad; ``forward+adjoint`` is one forward then one
adjoint call. Building the operators is not timed here (the scaling suite times eilab's).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from hydra.utils import instantiate

from eilab.bench import compose_train
from eilab.bench.report import section, table
from eilab.bench.timing import Budget, Cell, NotApplicableError, attempt, measure, ratio, require

OPS = ("forward", "adjoint", "fbp", "forward+adjoint")
LIBS = ("eilab", "deepinv", "skimage")


@dataclass(frozen=True)
class Case:
    """One operator configuration: image size N, number of views, batch size."""

    size: int
    views: int
    batch: int


class Operators(NamedTuple):
    """A library's forward, adjoint (None where it has none) and FBP, for one geometry."""

    forward: Callable
    adjoint: Callable | None
    fbp: Callable


def phantom(size: int) -> torch.Tensor:
    """The Shepp-Logan phantom resized to ``size``, or a seeded random image without skimage."""
    try:
        from skimage.data import shepp_logan_phantom
        from skimage.transform import resize
    except ImportError:
        return torch.rand(size, size, generator=torch.Generator().manual_seed(0))
    image = resize(shepp_logan_phantom(), (size, size), anti_aliasing=True)
    return torch.from_numpy(image.astype(np.float32))


def phantom_batch(size: int, batch: int, device: torch.device) -> torch.Tensor:
    """(batch, 1, size, size): the phantom, alternately flipped left-right, on ``device``."""
    image = phantom(size)
    images = [image if i % 2 == 0 else image.flip(-1) for i in range(batch)]
    return torch.stack(images)[:, None].contiguous().to(device)


def eilab_operators(size: int, views: int, device: torch.device) -> Operators:
    """eilab's CT from the train config's physics node, built on the CPU, moved to ``device``."""
    cfg = compose_train([f"img_size={size}", f"physics.n_views={views}"])
    ct = instantiate(cfg.physics).to(device)
    return Operators(ct.A, ct.A_adjoint, ct.A_dagger)


def deepinv_operators(size: int, views: int, device: torch.device) -> Operators:
    """deepinv's parallel-beam Tomography, un-normalised like eilab and scikit-image."""
    physics = require("deepinv").physics.Tomography(
        angles=views, img_width=size, circle=False, normalize=False, device=device
    )
    return Operators(physics.A, physics.A_adjoint, functools.partial(physics.A_dagger, fbp=True))


def skimage_operators(size: int, views: int, device: torch.device) -> Operators:
    """scikit-image's radon and ramp-filtered iradon, one image at a time (CPU only)."""
    if device.type != "cpu":
        raise NotApplicableError("CPU only")
    transform = require("skimage.transform")
    theta = np.arange(views) * (180.0 / views)

    def forward(x: torch.Tensor) -> list[np.ndarray]:
        return [transform.radon(img, theta=theta, circle=False) for img in x[:, 0].numpy()]

    def fbp(sinograms: list[np.ndarray]) -> list[np.ndarray]:
        return [
            transform.iradon(s, theta=theta, circle=False, filter_name="ramp") for s in sinograms
        ]

    return Operators(forward, None, fbp)


BUILDERS = {"eilab": eilab_operators, "deepinv": deepinv_operators, "skimage": skimage_operators}


def calls(ops: Operators, x: torch.Tensor) -> dict[str, Callable[[], object]]:
    """The timed calls of one library on the batch ``x``: each operation in ``OPS`` it has."""
    with torch.no_grad():
        y = ops.forward(x)

    def no_grad(fn: Callable, arg: object) -> Callable[[], object]:
        return torch.no_grad()(functools.partial(fn, arg))

    timed = {"forward": no_grad(ops.forward, x), "fbp": no_grad(ops.fbp, y)}
    if ops.adjoint is not None:
        timed["adjoint"] = functools.partial(ops.adjoint, y)
        timed["forward+adjoint"] = lambda: (timed["forward"](), timed["adjoint"]())
    return timed


def time_ops(
    ops: Operators | str, x: torch.Tensor, budget: Budget, names: Sequence[str] = OPS
) -> dict[str, Cell]:
    """The timing of each operation in ``names``; the reason, where the library is missing."""
    if isinstance(ops, str):
        return dict.fromkeys(names, ops)
    timed = calls(ops, x)
    return {
        op: attempt(functools.partial(measure, timed[op], budget)) if op in timed else "n/a"
        for op in names
    }


def geometry_lines(
    size: int, views: int, libraries: dict[str, Operators | str], device: torch.device
) -> list[str]:
    """eilab's and deepinv's sinogram and FBP of the phantom, against scikit-image's.

    Informational, on the suite's device (scikit-image on the CPU). eilab follows ``radon``
    exactly. deepinv rotates with ``grid_sample`` about the padded grid's centre, scikit-image
    about pixel D//2 (D = ceil(sqrt(2) N)): they agree when D is odd (N = 64, 256) and differ by
    about 10 % (a half-pixel shift) when D is even (N = 128). FBP is each library's FBP of its
    own sinogram.
    """
    where = f"- N={size}, views={views}"
    reference = attempt(functools.partial(skimage_operators, size, views, torch.device("cpu")))
    if isinstance(reference, str):
        return [f"{where}: no scikit-image reference ({reference})"]
    image = phantom(size)[None, None]
    ref_sino = reference.forward(image)[0]
    ref_fbp = reference.fbp([ref_sino])[0]

    def rel(a: np.ndarray, ref: np.ndarray) -> float:
        return float(np.linalg.norm(a - ref) / np.linalg.norm(ref))

    lines = [
        f"{where}, skimage: FBP(A x) vs phantom rel. L2 {rel(ref_fbp, image[0, 0].numpy()):.3f}"
    ]
    for name in ("eilab", "deepinv"):
        ops = libraries[name]
        if isinstance(ops, str):
            lines.append(f"{where}, {name}: {ops}")
            continue
        with torch.no_grad():
            sino = ops.forward(image.to(device))
            fbp = ops.fbp(sino)[0, 0].cpu().numpy()
        lines.append(
            f"{where}, {name}: forward vs skimage radon rel. L2 "
            f"{rel(sino[0, 0].cpu().numpy(), ref_sino):.2e}; FBP(A x) vs skimage "
            f"iradon(radon x) rel. L2 {rel(fbp, ref_fbp):.2e}; FBP(A x) vs phantom rel. L2 "
            f"{rel(fbp, image[0, 0].numpy()):.3f}"
        )
    return lines


def ops_section(cases: Sequence[Case], budget: Budget, device: torch.device) -> str:
    """Time every case (operators built once per geometry) and return the markdown section."""
    rows, geometry = [], []
    for size, views in dict.fromkeys((c.size, c.views) for c in cases):
        libraries = {
            name: attempt(functools.partial(build, size, views, device))
            for name, build in BUILDERS.items()
        }
        for batch in [c.batch for c in cases if (c.size, c.views) == (size, views)]:
            x = phantom_batch(size, batch, device)
            cells = {name: time_ops(ops, x, budget) for name, ops in libraries.items()}
            rows += [
                [size, views, batch, op, *(cells[lib][op] for lib in LIBS)]
                + [ratio(cells[peer][op], cells["eilab"][op]) for peer in LIBS[1:]]
                for op in OPS
            ]
        geometry += geometry_lines(size, views, libraries, device)
    header = ["N", "views", "batch", "operation", *(f"{lib} ms (IQR)" for lib in LIBS)]
    header += [f"{peer} / eilab" for peer in LIBS[1:]]
    return section(
        f"CT operator benchmark ({device.type.upper()}, float32, ms per call)",
        [budget.describe(), "ratio = peer median / eilab median (>1: eilab faster)"],
        [
            *table(header, rows, numeric_from=4),
            "",
            "Geometry check (informational; deepinv's rotation centre differs from"
            " scikit-image's by half a pixel when ceil(sqrt(2) N) is even):",
            "",
            *geometry,
        ],
    )
