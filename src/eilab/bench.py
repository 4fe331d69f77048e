"""Time eilab's CT operator and training step beside their peers: ``python -m eilab.bench``.

Three suites (``--suite ops|train|scaling|all``), on ``--device cpu`` (default) or
``--device cuda``.

``ops`` — for each case (image size N, number of views, batch size), the median wall time of one
call, in milliseconds, of:

- eilab ``CT``: forward ``A``, adjoint ``A_adjoint``, FBP ``A_dagger``;
- deepinv ``Tomography`` (its defaults, except ``normalize=False`` so all three libraries work
  on the same un-normalised line integrals): ``A``, ``A_adjoint`` (deepinv's exact adjoint,
  computed by autograd: its default ``adjoint_via_backprop=True``), FBP ``A_dagger(y, fbp=True)``;
- scikit-image ``radon`` / ``iradon(filter_name='ramp')``, looped over the batch (it has no
  adjoint, and runs on the CPU only: "n/a (CPU only)" on CUDA).

Forward and FBP run inside ``torch.no_grad()``; the adjoint is called as is (deepinv's needs
autograd), on a sinogram that does not require grad. Building the operators is not timed.

``train`` — the median wall time of ONE optimisation step (zero_grad, forward, loss, backward,
Adam step) at the paper's CT settings (batch 2, 128x128, 50 views, circle=False, EI with
alpha = 100, ``n_trans`` = 5 rotations, Adam lr 5e-4), for MC, EI and Sup, with the SAME network
(eilab's paper-size residual U-Net) in both pipelines, so only the operator and loss code differ:

- eilab: ``CT`` + ``eilab.strategies.{MC,EI,Sup}.training_losses`` (group ``Rotate()``), called
  directly (no Lightning Trainer);
- deepinv: ``Tomography`` + ``deepinv.loss.{MCLoss,EILoss,SupLoss}`` with the model
  ``U-Net(physics.A_dagger(y, fbp=True))`` (FBP, not deepinv's iterative least squares) and
  ``EILoss(transform=Rotate(n_trans, interpolation_mode='bilinear'), weight=alpha,
  apply_noise=False)``;
- what bounds a step: the U-Net alone (zero_grad, forward, MSE to a target, backward; no
  physics, no optimiser) at batch B and B*n_trans (MC and Sup run the network at B, EI at B and
  B*n_trans), and Adam's update of its parameters alone.

deepinv's FBP uses its autograd adjoint, which it caches for one batch size; an EI step calls
FBP at batch B and B*n_trans, so it rebuilds that adjoint twice per step. That is deepinv's
default behaviour and is part of what is timed.

``scaling`` — the median wall time of one ``A`` then one ``A_adjoint`` call (as in ``ops``) of
eilab ``CT`` and deepinv ``Tomography`` versus image size (``--scaling-sizes`` at 50 views) and
versus number of views (``--scaling-views`` at 128x128), at batch ``--scaling-batch``, and the
one-off time to build eilab's ``CT`` (its sparse system matrices, on the CPU) and move it to the
device. scikit-image has no adjoint and is left out. A case that fails (out of memory) is a
"failed (reason)" cell. Besides its tables it writes a log-log plot (``--plot``, by default
``<out stem>_scaling.png`` beside ``--out``).

``--channels-last``, ``--bf16 [step|network]`` (bfloat16 autocast over the whole forward + loss,
as Lightning's ``bf16-mixed``, or around the U-Net only) and ``--compile`` (``torch.compile`` of
the U-Net, static shapes) add eilab and U-Net rows with those settings beside the float32 eager
ones; deepinv rows stay float32 eager. ``--strategies`` picks a subset of MC, EI, Sup.

Ratios are peer time / eilab time, so a ratio above 1 means eilab is faster. A peer that does
not import is reported as ``missing (reason)``. Timed calls are bracketed by
``torch.cuda.synchronize()`` on CUDA. Peak memory is ``torch.cuda.max_memory_allocated`` over a
row's warm-up and timed steps (reset before the row's model is built: it includes parameters,
Adam state, operators and activations); on the CPU there is no per-row figure and the report
ends with the process's maximum resident set size (``getrusage``). deepinv needs torchvision,
which does not import beside the project's CPU torch: run this in the bench environment built
by ``tools/setup_bench_env.sh`` (``.bench-venv/bin/python -m eilab.bench``).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import gc
import importlib.metadata
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

OPS = ("forward", "adjoint", "fbp")
LIBS = ("eilab", "deepinv", "skimage")
PEERS = ("deepinv", "skimage")
STRATEGIES = ("mc", "ei", "sup")
# What a peer that does not import raises: torchvision beside a mismatched torch raises a
# RuntimeError ("operator torchvision::nms does not exist"), not an ImportError.
IMPORT_ERRORS = (ImportError, RuntimeError)
CPU_ONLY = "n/a (CPU only)"


# --------------------------------------------------------------------------- timing, device


def resolve_device(name: str) -> torch.device:
    """The torch device for ``--device``; a clear error when CUDA is asked for but absent."""
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            "eilab.bench: --device cuda, but torch.cuda.is_available() is False "
            f"(torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'}). "
            "Run on a machine with a GPU and a CUDA build of torch, or use --device cpu."
        )
    return torch.device(name)


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels, so wall time covers the work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Timing:
    """Median and first-call wall time (ms) of a callable, and peak GPU memory (bytes)."""

    median_ms: float
    first_ms: float | None = None
    peak_bytes: int | None = None


def time_calls(fn: Callable[[], object], warmup: int, repeats: int, device: torch.device) -> Timing:
    """Time ``fn()``: ``warmup`` untimed-for-the-median calls, then ``repeats`` timed ones.

    ``first_ms`` is the first call (it includes torch.compile, cuDNN and allocator warm-up).
    """
    first = None
    for i in range(warmup):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        if i == 0:
            first = 1e3 * (time.perf_counter() - start)
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return Timing(1e3 * statistics.median(times), first)


def median_ms(
    fn: Callable[[], object], warmup: int, repeats: int, device: torch.device | None = None
) -> float:
    """Median wall time of ``fn()`` in milliseconds, after ``warmup`` untimed calls."""
    return time_calls(fn, warmup, repeats, device or torch.device("cpu")).median_ms


def free_memory(device: torch.device) -> None:
    """Drop what earlier rows left, and restart the peak-memory counter."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_bytes(device: torch.device) -> int | None:
    """Peak bytes allocated by tensors since the last reset (CUDA), else None."""
    return torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None


def max_rss_mib() -> str:
    """This process's maximum resident set size so far, from getrusage (Linux: KiB)."""
    try:
        import resource
    except ImportError:
        return "unknown"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"


# --------------------------------------------------------------------------- shared helpers


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
def _eilab_ct_cpu(size: int, views: int) -> nn.Module:
    from eilab.physics.ct import CT

    return CT(img_size=size, n_views=views, circle=False)


@functools.cache
def eilab_ct(size: int, views: int, device: str = "cpu") -> nn.Module:
    """eilab's CT operator on ``device`` (built once per geometry: building it is not timed)."""
    ct = _eilab_ct_cpu(size, views)
    return ct if device == "cpu" else copy.deepcopy(ct).to(device)


@functools.cache
def deepinv_tomography(size: int, views: int, device: str = "cpu") -> nn.Module:
    """deepinv's parallel-beam Tomography, un-normalised like eilab and scikit-image."""
    from deepinv.physics import Tomography

    return Tomography(angles=views, img_width=size, circle=False, normalize=False, device=device)


def phantom(size: int) -> torch.Tensor:
    """The Shepp-Logan phantom resized to ``size``, or a seeded random image without skimage."""
    try:
        from skimage.data import shepp_logan_phantom
        from skimage.transform import resize
    except IMPORT_ERRORS:
        return torch.rand(size, size, generator=torch.Generator().manual_seed(0))
    image = resize(shepp_logan_phantom(), (size, size), anti_aliasing=True)
    return torch.from_numpy(image.astype(np.float32))


def phantom_batch(size: int, batch: int, device: torch.device) -> torch.Tensor:
    """(batch, 1, size, size): the phantom, alternately flipped left-right, on ``device``."""
    image = phantom(size)
    images = [image if i % 2 == 0 else image.flip(-1) for i in range(batch)]
    return torch.stack(images)[:, None].contiguous().to(device)


# --------------------------------------------------------------------------- ops suite


def eilab_library(case: Case, x: torch.Tensor) -> Library:
    """eilab's forward, adjoint and FBP for ``case``."""
    try:
        ct = eilab_ct(case.size, case.views, str(x.device))
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
        physics = deepinv_tomography(case.size, case.views, str(x.device))
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
    """scikit-image's ``radon`` and ramp-filtered ``iradon``, one image at a time (CPU only)."""
    if x.device.type != "cpu":
        return Library("skimage", missing=CPU_ONLY)
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


Timings = dict[str, dict[str, float] | str]  # library -> {op: ms}, or "missing (reason)"


def time_case(case: Case, warmup: int, repeats: int, device: torch.device) -> Timings:
    """Median ms of every operation of every library for one case."""
    x = phantom(case.size).expand(case.batch, 1, case.size, case.size).contiguous().to(device)
    timings: Timings = {}
    for name, build in BUILDERS.items():
        lib = build(case, x)
        if lib.missing is not None:
            timings[name] = lib.missing if lib.missing == CPU_ONLY else f"missing ({lib.missing})"
            continue
        timings[name] = {op: median_ms(fn, warmup, repeats, device) for op, fn in lib.ops.items()}
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


def rel_l2(a: np.ndarray, ref: np.ndarray) -> float:
    """||a - ref|| / ||ref||."""
    return float(np.linalg.norm(a - ref) / np.linalg.norm(ref))


def geometry_lines(size: int, views: int, device: torch.device) -> list[str]:
    """Each library's sinogram and FBP of a Shepp-Logan phantom vs scikit-image's.

    Informational, computed on ``device`` (so a CUDA run also checks the GPU kernels). eilab
    follows ``radon`` exactly. deepinv rotates with ``grid_sample`` about the padded grid's
    geometric centre, scikit-image about pixel D//2 (D = ceil(sqrt(2) N)): they agree to float
    precision when D is odd (N = 64, 256) and differ by about 10% (a half-pixel shift) when D
    is even (N = 128). FBP is compared as each library's FBP of its own sinogram, FBP(A x).
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
            op = build(size, views, str(device))
        except IMPORT_ERRORS as err:
            lines.append(f"- N={size}, views={views}, {name}: missing ({_reason(err)})")
            continue
        with torch.no_grad():
            sino = op.A(image[None, None].to(device))
            fbp = op.A_dagger(sino, **fbp_kwargs)[0, 0].cpu().numpy()
        sino = sino[0, 0].cpu().numpy()
        lines.append(
            f"- N={size}, views={views}, {name}: forward vs skimage radon rel. L2 "
            f"{rel_l2(sino, ref_sino):.2e}; FBP(A x) vs skimage iradon(radon x) "
            f"rel. L2 {rel_l2(fbp, ref_fbp):.2e}; FBP(A x) vs phantom rel. L2 "
            f"{rel_l2(fbp, image.numpy()):.3f}"
        )
    return lines


def ops_report(cases: Sequence[Case], warmup: int, repeats: int, device: torch.device) -> str:
    """Run every case of the operator suite and return its markdown section."""
    rows = list(TABLE_HEADER)
    for case in cases:
        rows += table_rows(case, time_case(case, warmup, repeats, device))
    geometries = sorted({(c.size, c.views) for c in cases})
    geometry = [line for s, v in geometries for line in geometry_lines(s, v, device)]
    skimage_note = (
        "skimage loops over the batch and has no adjoint"
        if device.type == "cpu"
        else "skimage is CPU-only and not timed on CUDA"
    )
    return "\n".join(
        [
            f"## CT operator benchmark ({device.type.upper()}, float32, median ms per call)",
            "",
            f"- {warmup} warm-up + {repeats} timed calls per cell; ratio = peer ms / eilab ms "
            f"(>1: eilab faster); {skimage_note}",
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


# --------------------------------------------------------------------------- train suite


@dataclass(frozen=True)
class TrainConfig:
    """The paper's CT training settings (all configurable from the command line)."""

    size: int = 128
    views: int = 50
    batch: int = 2
    n_trans: int = 5
    alpha: float = 100.0
    lr: float = 5e-4
    weight_decay: float = 1e-8
    norm: str = "batch"


@dataclass(frozen=True)
class Variant:
    """How the eilab network runs: memory format, autocast precision, torch.compile."""

    channels_last: bool = False
    bf16: str = "off"  # "off", "step" (autocast the whole forward + loss) or "network"
    compile: bool = False

    @property
    def label(self) -> str:
        precision = {"off": "fp32", "step": "bf16 autocast (step)"}
        parts = [precision.get(self.bf16, "bf16 autocast (U-Net only)")]
        parts += ["channels_last"] if self.channels_last else []
        parts += ["torch.compile(U-Net)"] if self.compile else ["eager"]
        return ", ".join(parts)

    @property
    def is_baseline(self) -> bool:
        return self == Variant()


BASELINE = Variant()
Step = Callable[[], object]


def paper_unet(cfg: TrainConfig) -> nn.Module:
    """The paper's residual U-Net: widths 64-128-256-512, circular first conv, residual."""
    from eilab.models.unet import UNet

    return UNet(1, widths=(64, 128, 256, 512), norm=cfg.norm, circular_padding=True, residual=True)


def prepare_network(net: nn.Module, variant: Variant, device: torch.device) -> nn.Module:
    """Move ``net`` to ``device`` in the variant's memory format, compiled if asked."""
    net = net.to(device)
    if variant.channels_last:
        net = net.to(memory_format=torch.channels_last)
    net.train()
    if variant.compile:
        # Static shapes: EI runs the network at batch B and B*n_trans, two graphs compiled in
        # the first (warm-up) step rather than a dynamic-shape recompile later.
        net = torch.compile(net, dynamic=False)
    if variant.bf16 == "network":
        net = AutocastNetwork(net, device)
    return net


class AutocastNetwork(nn.Module):
    """Run a network under bfloat16 autocast and hand back float32 (``--bf16 network``)."""

    def __init__(self, network: nn.Module, device: torch.device) -> None:
        super().__init__()
        self.network = network
        self.device_type = device.type

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=self.device_type, dtype=torch.bfloat16):
            out = self.network(x)
        return out.float()


def autocast(variant: Variant, device: torch.device) -> contextlib.AbstractContextManager:
    """bfloat16 autocast over the whole forward + loss for ``--bf16 step``, else nothing."""
    if variant.bf16 != "step":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def adam(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser of every row: Adam as in the paper's code (and eilab's strategies)."""
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def optimisation_step(
    loss_fn: Callable[[], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    variant: Variant,
    device: torch.device,
    update: bool = True,
) -> Step:
    """zero_grad, forward + loss (under autocast if asked), backward, and (if ``update``) Adam."""

    def step() -> object:
        optimizer.zero_grad(set_to_none=True)
        with autocast(variant, device):
            loss = loss_fn()
        loss.backward()
        if update:
            optimizer.step()
        return loss

    return step


def unet_step(
    cfg: TrainConfig, variant: Variant, batch: int, device: torch.device, update: bool = False
) -> Step:
    """The U-Net alone: forward, MSE to a fixed target, backward (Adam step if ``update``)."""
    net = prepare_network(paper_unet(cfg), variant, device)
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 1, cfg.size, cfg.size, generator=generator).to(device)
    target = torch.rand(batch, 1, cfg.size, cfg.size, generator=generator).to(device)
    if variant.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = adam(net.parameters(), cfg)
    return optimisation_step(lambda: F.mse_loss(net(x), target), optimizer, variant, device, update)


def adam_step(cfg: TrainConfig, device: torch.device) -> Step:
    """Adam's update alone, on the U-Net's parameters with gradients already in place."""
    net = prepare_network(paper_unet(cfg), BASELINE, device)
    optimizer = adam(net.parameters(), cfg)
    x = torch.rand(cfg.batch, 1, cfg.size, cfg.size, generator=torch.Generator().manual_seed(0))
    net(x.to(device)).square().mean().backward()
    return optimizer.step


def eilab_module(strategy: str, cfg: TrainConfig, physics: nn.Module, net: nn.Module):
    """eilab's LightningModule for ``strategy`` (never given to a Trainer here)."""
    from eilab.groups import Rotate
    from eilab.strategies import EI, MC, Sup

    if strategy == "mc":
        return MC(physics, net, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if strategy == "ei":
        return EI(
            physics,
            net,
            Rotate(),
            alpha=cfg.alpha,
            n_trans=cfg.n_trans,
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
        )
    return Sup(physics, net, lr=cfg.lr, weight_decay=cfg.weight_decay)


def eilab_step(strategy: str, cfg: TrainConfig, variant: Variant, device: torch.device) -> Step:
    """One eilab training step: ``module.training_losses(y[, x])["loss"]``, backward, Adam."""
    physics = copy.deepcopy(_eilab_ct_cpu(cfg.size, cfg.views)).to(device)
    net = prepare_network(paper_unet(cfg), variant, device)
    module = eilab_module(strategy, cfg, physics, net).to(device)
    module.train()
    x = phantom_batch(cfg.size, cfg.batch, device)
    with torch.no_grad():
        y = physics.A(x)
    inputs = (y, x) if module.uses_ground_truth else (y,)
    optimizer = adam(module.reconstructor.parameters(), cfg)
    return optimisation_step(
        lambda: module.training_losses(*inputs)["loss"], optimizer, variant, device
    )


class DeepinvFBPNet(nn.Module):
    """deepinv's reconstructor for this benchmark: ``backbone(physics.A_dagger(y, fbp=True))``.

    Not ``deepinv.models.ArtifactRemoval(backbone, mode='pinv')``: that calls
    ``A_dagger(y)`` (deepinv's iterative least squares, not FBP, for Tomography) and passes
    the noise level to the backbone as a second argument, which eilab's U-Net does not take.
    """

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, y: torch.Tensor, physics: nn.Module, **kwargs) -> torch.Tensor:
        return self.backbone(physics.A_dagger(y, fbp=True))


def deepinv_step(strategy: str, cfg: TrainConfig, device: torch.device) -> Step:
    """One deepinv training step with its losses, float32 eager, same U-Net as eilab."""
    try:
        import deepinv
    except IMPORT_ERRORS as err:  # torchvision beside a mismatched torch: RuntimeError
        raise ImportError(_reason(err)) from err

    physics = deepinv.physics.Tomography(
        angles=cfg.views, img_width=cfg.size, circle=False, normalize=False, device=device
    )
    model = DeepinvFBPNet(prepare_network(paper_unet(cfg), BASELINE, device))
    mc = deepinv.loss.MCLoss()
    ei = deepinv.loss.EILoss(
        transform=deepinv.transform.Rotate(
            n_trans=cfg.n_trans,
            interpolation_mode="bilinear",
            rng=torch.Generator().manual_seed(0),
        ),
        weight=cfg.alpha,
        apply_noise=False,
    )
    sup = deepinv.loss.SupLoss()
    x = phantom_batch(cfg.size, cfg.batch, device)
    with torch.no_grad():
        y = physics.A(x)

    def loss() -> torch.Tensor:
        x_net = model(y, physics)
        if strategy == "sup":
            return sup(x_net=x_net, x=x)
        total = mc(y=y, x_net=x_net, physics=physics)
        if strategy == "ei":
            total = total + ei(x_net=x_net, physics=physics, model=model)
        return total

    return optimisation_step(loss, adam(model.parameters(), cfg), BASELINE, device)


@dataclass(frozen=True)
class TrainRow:
    """One row of the training table: what runs, and how to build its step."""

    step: str
    pipeline: str
    variant: Variant
    build: Callable[[], Step]


@dataclass
class TrainResult:
    row: TrainRow
    timing: Timing | None = None
    error: str | None = None  # "missing (reason)" or "failed (error)"


def train_rows(
    cfg: TrainConfig, strategies: Sequence[str], variants: Sequence[Variant], device: torch.device
) -> list[TrainRow]:
    """Every row of the training table, in display order."""
    rows = []
    batch_ei = cfg.batch * cfg.n_trans
    for batch in dict.fromkeys((cfg.batch, batch_ei)):
        for variant in variants:
            rows.append(
                TrainRow(
                    f"U-Net fwd+bwd, batch {batch}",
                    "eilab UNet (no physics)",
                    variant,
                    functools.partial(unet_step, cfg, variant, batch, device),
                )
            )
    rows.append(
        TrainRow(
            "Adam step alone",
            "torch.optim.Adam",
            BASELINE,
            functools.partial(adam_step, cfg, device),
        )
    )
    for strategy in strategies:
        name = strategy.upper() if strategy != "sup" else "Sup"
        for variant in variants:
            rows.append(
                TrainRow(
                    name,
                    "eilab",
                    variant,
                    functools.partial(eilab_step, strategy, cfg, variant, device),
                )
            )
        rows.append(
            TrainRow(
                name, "deepinv", BASELINE, functools.partial(deepinv_step, strategy, cfg, device)
            )
        )
    return rows


def run_train_row(row: TrainRow, warmup: int, repeats: int, device: torch.device) -> TrainResult:
    """Build a row's step (untimed), time it, and release it."""
    free_memory(device)
    try:
        step = row.build()
        timing = time_calls(step, warmup, repeats, device)
    except ImportError as err:
        result = TrainResult(row, error=f"missing ({_reason(err)})")
    except Exception as err:  # one row's failure (OOM, an unsupported kernel) is a table cell
        result = TrainResult(row, error=f"failed ({type(err).__name__}: {_reason(err)})")
    else:
        result = TrainResult(row, Timing(timing.median_ms, timing.first_ms, peak_bytes(device)))
        del step
    free_memory(device)
    return result


def _deepinv_ms(results: Sequence[TrainResult], step: str) -> float | None:
    for result in results:
        if result.row.step == step and result.row.pipeline == "deepinv" and result.timing:
            return result.timing.median_ms
    return None


def train_table(results: Sequence[TrainResult], device: torch.device) -> list[str]:
    """Markdown table of the training rows."""
    memory_header = "peak GPU MiB" if device.type == "cuda" else "peak memory"
    lines = [
        f"| step | pipeline | settings | ms / step | first step ms | {memory_header} "
        "| deepinv / this |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for result in results:
        row, timing = result.row, result.timing
        cells = [row.step, row.pipeline, row.variant.label]
        if timing is None:
            cells += [str(result.error), "-", "-", "-"]
        else:
            first = "-" if timing.first_ms is None else f"{timing.first_ms:.1f}"
            peak = "n/a" if timing.peak_bytes is None else f"{timing.peak_bytes / 2**20:.0f}"
            peer = _deepinv_ms(results, row.step) if row.pipeline.startswith("eilab") else None
            ratio = "-" if peer is None else f"{peer / timing.median_ms:.2f}x"
            cells += [f"{timing.median_ms:.1f}", first, peak, ratio]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def train_report(
    cfg: TrainConfig,
    strategies: Sequence[str],
    variant: Variant,
    warmup: int,
    repeats: int,
    device: torch.device,
) -> str:
    """Run the training-step suite and return its markdown section."""
    variants = [BASELINE] if variant.is_baseline else [BASELINE, variant]
    rows = train_rows(cfg, strategies, variants, device)
    results = []
    for row in rows:
        print(f"[bench] timing {row.step} / {row.pipeline} / {row.variant.label}", file=sys.stderr)
        results.append(run_train_row(row, warmup, repeats, device))
    n_params = sum(p.numel() for p in paper_unet(cfg).parameters())
    memory_note = (
        "peak GPU MiB = torch.cuda.max_memory_allocated over the row's steps, reset before its "
        "model is built (parameters + Adam state + operator + activations)"
        if device.type == "cuda"
        else "no per-row memory on the CPU (see the process max RSS below)"
    )
    return "\n".join(
        [
            f"## Training-step benchmark ({device.type.upper()}, median ms per optimisation step)",
            "",
            f"- CT {cfg.size}x{cfg.size}, {cfg.views} views, circle=False, batch {cfg.batch}; "
            f"EI: alpha {cfg.alpha:g}, n_trans {cfg.n_trans} rotations; Adam lr {cfg.lr:g}, "
            f"weight decay {cfg.weight_decay:g}",
            f"- network in BOTH pipelines: eilab UNet(1), widths 64-128-256-512, {cfg.norm} norm, "
            f"circular first conv, residual ({n_params:,} parameters); only operators and "
            "losses differ",
            "- step = zero_grad + forward + loss + backward + Adam step; "
            f"{warmup} warm-up + {repeats} timed steps; 'first step' is the first warm-up step "
            "(includes torch.compile / cuDNN warm-up)",
            "- eilab: CT + eilab.strategies.{MC,EI,Sup}.training_losses (group Rotate(): "
            "integer degrees, bilinear, one angle per image and copy), no Trainer",
            "- deepinv: Tomography(normalize=False; default adjoint_via_backprop=True) + "
            "deepinv.loss.{MCLoss,EILoss,SupLoss}; model U-Net(A_dagger(y, fbp=True)); "
            "EILoss(Rotate(n_trans, bilinear), weight=alpha, apply_noise=False): one angle per "
            "copy, shared by the batch; deepinv caches its autograd adjoint for one batch size, "
            f"so an EI step rebuilds it twice (batch {cfg.batch} and "
            f"{cfg.batch * cfg.n_trans}). deepinv rows are always fp32 eager",
            "- what bounds a step: 'U-Net fwd+bwd' = zero_grad + forward + MSE + backward of "
            "the network alone (no physics, no optimiser); 'Adam step alone' = the update of "
            f"its {n_params:,} parameters. MC and Sup run the network once at batch "
            f"{cfg.batch}, EI at batch {cfg.batch} and {cfg.batch * cfg.n_trans}: step minus "
            "those rows is the operators' + losses' share",
            f"- ratio = deepinv fp32 ms / this row's ms (>1: this row faster); {memory_note}",
            "",
            *train_table(results, device),
            "",
        ]
    )


# --------------------------------------------------------------------------- scaling suite


SCALING_LIBS = ("eilab", "deepinv")
Cell = float | str  # a measurement, or "missing (reason)" / "failed (error)"


@dataclass(frozen=True)
class ScalingConfig:
    """The scaling sweeps: ``sizes`` at ``fixed_views`` views, ``views`` at ``fixed_size``."""

    sizes: tuple[int, ...] = (64, 128, 256, 512)
    views: tuple[int, ...] = (25, 50, 90, 180, 360)
    batch: int = 8
    fixed_size: int = 128
    fixed_views: int = 50

    def size_cases(self) -> list[Case]:
        """The image-size sweep."""
        return [Case(size, self.fixed_views, self.batch) for size in self.sizes]

    def view_cases(self) -> list[Case]:
        """The number-of-views sweep."""
        return [Case(self.fixed_size, views, self.batch) for views in self.views]


@dataclass(frozen=True)
class ScalingResult:
    """One geometry's forward+adjoint ms per library and eilab's build time (s)."""

    ms: dict[str, Cell]
    build_s: Cell


def drop_operators() -> None:
    """Forget the cached operators: frees their memory, and the next build starts afresh."""
    for cached in (_eilab_ct_cpu, eilab_ct, deepinv_tomography):
        cached.cache_clear()


def attempt(fn: Callable[[], Cell]) -> Cell:
    """``fn()``, or 'failed (error)' when it raises (out of memory, an unsupported kernel)."""
    try:
        return fn()
    except Exception as err:  # one cell's failure is recorded, and the sweep goes on
        return f"failed ({type(err).__name__}: {_reason(err)})"


def eilab_build_s(case: Case, device: torch.device) -> float:
    """Seconds to build eilab's CT (its sparse system matrices, on the CPU) onto ``device``."""
    drop_operators()
    synchronize(device)
    start = time.perf_counter()
    eilab_ct(case.size, case.views, str(device))
    synchronize(device)
    return time.perf_counter() - start


def forward_adjoint_ms(
    name: str, case: Case, x: torch.Tensor, warmup: int, repeats: int, device: torch.device
) -> Cell:
    """Median ms of one ``A`` then one ``A_adjoint`` call of a library, or why it is missing."""
    lib = BUILDERS[name](case, x)
    if lib.missing is not None:
        return f"missing ({lib.missing})"
    forward, adjoint = lib.ops["forward"], lib.ops["adjoint"]
    return median_ms(lambda: (forward(), adjoint()), warmup, repeats, device)


def time_scaling_case(case: Case, warmup: int, repeats: int, device: torch.device) -> ScalingResult:
    """Build eilab's CT (timed once), then time forward+adjoint of each library, then free."""
    print(f"[bench] scaling N={case.size} views={case.views}", file=sys.stderr)
    free_memory(device)
    build_s = attempt(functools.partial(eilab_build_s, case, device))
    x = phantom_batch(case.size, case.batch, device)
    ms = {
        name: attempt(functools.partial(forward_adjoint_ms, name, case, x, warmup, repeats, device))
        for name in SCALING_LIBS
    }
    del x
    drop_operators()
    free_memory(device)
    return ScalingResult(ms, build_s)


def _cell(value: Cell) -> str:
    """A measurement to two decimals, or the reason there is none."""
    return value if isinstance(value, str) else f"{value:.2f}"


def _ratio(peer: Cell, eilab: Cell) -> str:
    """Peer / eilab as '2.35x'; '-' when either is not a measurement."""
    if isinstance(peer, str) or isinstance(eilab, str) or not eilab:
        return "-"
    return f"{peer / eilab:.2f}x"


def scaling_table(label: str, keys: Sequence[int], results: Sequence[ScalingResult]) -> list[str]:
    """Markdown table: one row per size (or view count), ms, ratio and eilab build time."""
    lines = [
        f"| {label} | eilab ms | deepinv ms | deepinv / eilab | eilab build s |",
        "|---:|---:|---:|---:|---:|",
    ]
    for key, result in zip(keys, results, strict=True):
        eilab, deepinv = result.ms["eilab"], result.ms["deepinv"]
        cells = [str(key), _cell(eilab), _cell(deepinv), _ratio(deepinv, eilab)]
        lines.append("| " + " | ".join([*cells, _cell(result.build_s)]) + " |")
    return lines


def scaling_plot(
    path: Path,
    cfg: ScalingConfig,
    by_size: Sequence[ScalingResult],
    by_views: Sequence[ScalingResult],
    device: torch.device,
) -> None:
    """Two log-log panels, forward+adjoint ms vs image size and vs views, a line per library."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), layout="constrained")
    panels = (
        (cfg.sizes, by_size, f"image size N ({cfg.fixed_views} views)"),
        (cfg.views, by_views, f"number of views ({cfg.fixed_size}x{cfg.fixed_size})"),
    )
    for ax, (keys, results, xlabel) in zip(fig.subplots(1, 2), panels, strict=True):
        for name in SCALING_LIBS:
            points = [(k, r.ms[name]) for k, r in zip(keys, results, strict=True)]
            points = [(k, ms) for k, ms in points if not isinstance(ms, str)]
            if points:
                ax.plot(*zip(*points, strict=True), "o-", label=name)
        ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel="A + A_adjoint, median ms")
        ax.set_xticks(keys, [str(k) for k in keys])
        ax.set_xticks([], minor=True)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"CT forward + adjoint, batch {cfg.batch}, {device.type.upper()}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def scaling_report(
    cfg: ScalingConfig, warmup: int, repeats: int, device: torch.device, plot: Path
) -> str:
    """Run the scaling sweeps, write their plot to ``plot``, return their markdown section."""
    cases = dict.fromkeys([*cfg.size_cases(), *cfg.view_cases()])
    results = {case: time_scaling_case(case, warmup, repeats, device) for case in cases}
    by_size = [results[case] for case in cfg.size_cases()]
    by_views = [results[case] for case in cfg.view_cases()]
    scaling_plot(plot, cfg, by_size, by_views, device)
    return "\n".join(
        [
            f"## CT operator scaling ({device.type.upper()}, float32, median ms of A then "
            f"A_adjoint, batch {cfg.batch})",
            "",
            f"- {warmup} warm-up + {repeats} timed calls per cell; one call = one forward A(x) "
            "(no_grad) then one adjoint A_adjoint(y); ratio = deepinv ms / eilab ms (>1: eilab "
            "faster); scikit-image has no adjoint and is not in this suite",
            "- eilab build s = one-off wall time of CT(N, views) (precomputes its sparse system "
            "matrices, on the CPU) and its copy to the device; not part of the ms",
            f"- plot: {plot}",
            "",
            f"### vs image size ({cfg.fixed_views} views, batch {cfg.batch})",
            "",
            *scaling_table("N", cfg.sizes, by_size),
            "",
            f"### vs number of views ({cfg.fixed_size}x{cfg.fixed_size}, batch {cfg.batch})",
            "",
            *scaling_table("views", cfg.views, by_views),
            "",
        ]
    )


def default_plot(out: Path | None, device: torch.device) -> Path:
    """The scaling plot's path: ``<out stem>_scaling.png`` beside ``--out``, else the bench dir."""
    if out is not None:
        return out.with_name(f"{out.stem}_scaling.png")
    return Path("experiments/bench") / f"scaling_{device.type}.png"


# --------------------------------------------------------------------------- machine, CLI


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


def gpu_lines(device: torch.device) -> list[str]:
    """The GPU, its CUDA/cuDNN versions and the TF32 settings, on CUDA."""
    if device.type != "cuda":
        return []
    props = torch.cuda.get_device_properties(device)
    return [
        f"- GPU: {torch.cuda.get_device_name(device)} (compute capability "
        f"{props.major}.{props.minor}, {props.total_memory / 2**30:.1f} GiB); CUDA "
        f"{torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}",
        f"- TF32: cudnn.allow_tf32={torch.backends.cudnn.allow_tf32}, "
        f"cuda.matmul.allow_tf32={torch.backends.cuda.matmul.allow_tf32}; "
        f"cudnn.benchmark={torch.backends.cudnn.benchmark}",
    ]


def machine_lines(device: torch.device) -> list[str]:
    """What the numbers were measured on."""
    versions = ", ".join(
        f"{pkg} {version(pkg)}"
        for pkg in ("eilab", "deepinv", "torchvision", "lightning", "scikit-image", "numpy")
    )
    return [
        f"- device: {device.type}",
        *gpu_lines(device),
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


def report(
    cases: Sequence[Case],
    warmup: int,
    repeats: int,
    device: torch.device | None = None,
    suite: str = "ops",
    train: TrainConfig | None = None,
    strategies: Sequence[str] = STRATEGIES,
    variant: Variant = BASELINE,
    scaling: ScalingConfig | None = None,
    plot: Path | None = None,
) -> str:
    """Run the chosen suite(s) and return the markdown report (and the scaling plot)."""
    device = device or torch.device("cpu")
    sections = ["# eilab benchmark", "", *machine_lines(device), ""]
    if suite in ("ops", "all"):
        sections.append(ops_report(cases, warmup, repeats, device))
    if suite in ("train", "all"):
        sections.append(
            train_report(train or TrainConfig(), strategies, variant, warmup, repeats, device)
        )
    if suite in ("scaling", "all"):
        sections.append(
            scaling_report(
                scaling or ScalingConfig(),
                warmup,
                repeats,
                device,
                plot or default_plot(None, device),
            )
        )
    sections.append(f"- process max RSS (getrusage) at the end: {max_rss_mib()}")
    return "\n".join(sections) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m eilab.bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--suite", choices=("ops", "train", "scaling", "all"), default="ops")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ops = parser.add_argument_group("ops suite")
    ops.add_argument("--sizes", type=int, nargs="+", default=[128], help="image sizes N")
    ops.add_argument("--views", type=int, nargs="+", default=[50], help="numbers of views")
    ops.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="batch sizes")
    train = parser.add_argument_group("train suite (defaults: the paper's CT settings)")
    train.add_argument("--train-size", type=int, default=128, help="image size N")
    train.add_argument("--train-views", type=int, default=50, help="number of views")
    train.add_argument("--train-batch", type=int, default=2, help="batch size")
    train.add_argument("--n-trans", type=int, default=5, help="EI transformations per image")
    train.add_argument("--alpha", type=float, default=100.0, help="EI weight")
    train.add_argument("--norm", choices=("batch", "group", "none"), default="batch")
    train.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    train.add_argument(
        "--channels-last", action="store_true", help="eilab rows: channels_last U-Net"
    )
    train.add_argument(
        "--bf16",
        nargs="?",
        const="step",
        default="off",
        choices=("off", "step", "network"),
        help="eilab rows: bfloat16 autocast over the whole forward + loss ('step', as "
        "Lightning's bf16-mixed; the default of a bare --bf16) or around the U-Net only",
    )
    train.add_argument("--compile", action="store_true", help="eilab rows: torch.compile U-Net")
    scaling = parser.add_argument_group("scaling suite (forward + adjoint vs size and views)")
    scaling.add_argument(
        "--scaling-sizes", type=int, nargs="+", default=[64, 128, 256, 512], help="at 50 views"
    )
    scaling.add_argument(
        "--scaling-views", type=int, nargs="+", default=[25, 50, 90, 180, 360], help="at 128x128"
    )
    scaling.add_argument("--scaling-batch", type=int, default=8, help="batch size")
    scaling.add_argument(
        "--plot",
        type=Path,
        default=None,
        help="scaling plot PNG (default: <out stem>_scaling.png beside --out, else "
        "experiments/bench/scaling_<device>.png)",
    )
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per cell")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls per cell")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown here")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")
    if args.train_size % 8:
        parser.error(f"--train-size must be divisible by 8 (4-scale U-Net), got {args.train_size}")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m eilab.bench``."""
    args = parse_args(argv)
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cases = [Case(s, v, b) for s in args.sizes for v in args.views for b in args.batches]
    train = TrainConfig(
        size=args.train_size,
        views=args.train_views,
        batch=args.train_batch,
        n_trans=args.n_trans,
        alpha=args.alpha,
        norm=args.norm,
    )
    variant = Variant(args.channels_last, args.bf16, args.compile)
    scaling = ScalingConfig(
        tuple(args.scaling_sizes), tuple(args.scaling_views), args.scaling_batch
    )
    text = report(
        cases,
        args.warmup,
        args.repeats,
        device,
        args.suite,
        train,
        args.strategies,
        variant,
        scaling,
        args.plot or default_plot(args.out, device),
    )
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
