"""One optimisation step of eilab's strategies, built from the train configs, beside deepinv's.

A step is zero_grad, forward, loss, backward and the optimiser's update, without a Trainer.
eilab's rows compose ``train`` with ``experiment=ct_table1 strategy=<name>`` (plus the
command's Hydra overrides) and instantiate physics, network and strategy as ``eilab-train``
does; the loss is ``module.training_losses(y[, x])["loss"]`` and the optimiser is the module's
own (``configure_optimizers``; for ei_adv the generator's). The measurements are simulated as
training simulates them, ``physics(x)`` with the configured noise: none, except for REI, whose
rows add ``noise=gaussian`` (σ = 0.1, in line-integral units) unless the command sets ``noise=``.

deepinv's rows run the SAME network (``model`` of the config) on ``A_dagger(y, fbp=True)``
with ``Tomography(normalize=False)``, Adam with the config's lr and weight decay, always
float32 eager, and its losses: ``MCLoss``, ``SupLoss``, ``EILoss(Rotate(n_trans, bilinear),
weight=alpha, apply_noise=False)``; for REI ``SureGaussianLoss(σ)`` (its default τ = 0.01;
eilab's is 1e-3 × RMS(y)) + ``EILoss(..., apply_noise=True)`` on ``Tomography(noise_model=
GaussianNoise(σ))``. Each term is averaged over the batch, as deepinv's Trainer does.
deepinv caches its autograd adjoint for one batch size; an EI step calls FBP at batch B and
B·n_trans, so it rebuilds that adjoint twice per step: its default behaviour, part of what is
timed.

What bounds a step: the network alone (forward, MSE to a target, backward; no physics, no
update) at batch B and B·n_trans (MC and Sup run it at B, EI at both), and Adam's update alone.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn
from torch.nn import functional as F

from eilab.bench import BASE_OVERRIDES, compose_train
from eilab.bench.gpu_monitor import nvml_sampled
from eilab.bench.ops import phantom_batch
from eilab.bench.report import section, table
from eilab.bench.timing import (
    Budget,
    NotApplicableError,
    attempt,
    free_memory,
    measure,
    ratio,
    require,
)
from eilab.captured_step import CapturedStep
from eilab.strategies.base import ReconstructionModule

Step = Callable[[], object]
#: Strategies with a deepinv counterpart in this suite.
DEEPINV_STRATEGIES = ("mc", "ei", "sup", "rei")
#: What a strategy's rows add to the config: REI needs a noise model (Gaussian, so deepinv's
#: SureGaussianLoss is its counterpart); a ``noise=`` among the command's overrides wins.
STRATEGY_OVERRIDES = {"rei": ("noise=gaussian",)}


@dataclass(frozen=True)
class Variant:
    """How eilab's step runs: memory format, bfloat16 autocast, torch.compile, CUDA graph."""

    channels_last: bool = False
    bf16: bool = False  # autocast over forward + loss, as Lightning's bf16-mixed
    compile: bool = False
    graph: bool = False  # fast_step=true: CapturedStep + fused Adam (on CUDA; eager elsewhere)

    @property
    def label(self) -> str:
        """The settings column of the table."""
        parts = ["bf16 autocast" if self.bf16 else "fp32"]
        parts += ["channels_last"] if self.channels_last else []
        parts += ["torch.compile(network)" if self.compile else "eager"]
        parts += ["fast_step (CUDA graph, fused Adam)"] if self.graph else []
        return ", ".join(parts)


BASELINE = Variant()


@dataclass(frozen=True)
class Row:
    """One row of the table: its step, pipeline and settings, and how to build its step."""

    step: str
    pipeline: str
    variant: Variant
    build: Callable[[], Step]
    packed: int = 1  # optimisation steps per call of the built step (K models in turn)


def network(cfg: DictConfig, variant: Variant, device: torch.device) -> nn.Module:
    """The config's network as eilab-train builds it, on ``device``, compiled if asked."""
    net = instantiate(cfg.model)
    if cfg.channels_last:
        net = net.to(memory_format=torch.channels_last)
    net = net.to(device).train()
    # Static shapes: EI runs the network at batch B and B*n_trans, two graphs compiled in the
    # first (warm-up) step rather than a dynamic-shape recompile later.
    return torch.compile(net, dynamic=False) if variant.compile else net


def images(cfg: DictConfig, batch: int) -> torch.Tensor:
    """(batch, channels, N, N) phantoms on the CPU, the config's image size and channels."""
    return phantom_batch(cfg.img_size, batch, torch.device("cpu")).repeat(1, cfg.channels, 1, 1)


def step(
    loss_fn: Callable[[], torch.Tensor],
    params: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    variant: Variant,
    device: torch.device,
) -> Step:
    """zero_grad, forward + loss (under bf16 autocast if asked), backward, update if any."""

    def run() -> torch.Tensor:
        params.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=variant.bf16):
            loss = loss_fn()
        loss.backward()
        if optimizer is not None:
            optimizer.step()
        return loss

    return run


def network_step(cfg: DictConfig, variant: Variant, batch: int, device: torch.device) -> Step:
    """The network alone: forward, MSE to a fixed target, backward; no physics, no update."""
    net = network(cfg, variant, device)
    x = images(cfg, batch).to(device)
    if cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    target = torch.rand_like(x)
    return step(lambda: F.mse_loss(net(x), target), net, None, variant, device)


def adam_step(cfg: DictConfig, device: torch.device) -> Step:
    """Adam's update alone, on the network's parameters with gradients already in place."""
    net = network(cfg, BASELINE, device)
    optimizer = torch.optim.Adam(
        net.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay
    )
    net(images(cfg, cfg.batch_size).to(device)).square().mean().backward()
    return optimizer.step


def strategy_module(
    cfg: DictConfig, variant: Variant, device: torch.device
) -> tuple[ReconstructionModule, tuple[torch.Tensor, ...]]:
    """The configured strategy as eilab-train builds it, on ``device``, and its step's inputs."""
    physics = instantiate(cfg.physics)
    net = network(cfg, variant, device)
    module = instantiate(cfg.strategy, physics=physics, network=net, fast_step=variant.graph)
    x = images(cfg, cfg.batch_size)
    with torch.no_grad():
        y = physics(x, torch.Generator().manual_seed(cfg.noise_seed))
    inputs = (y, x) if module.uses_ground_truth else (y,)
    return module.to(device).train(), tuple(t.to(device) for t in inputs)


def eilab_step(cfg: DictConfig, variant: Variant, device: torch.device) -> Step:
    """One step of the configured strategy: ``training_losses(y[, x])["loss"]``, its optimiser
    (with ``variant.graph`` on CUDA: forward, losses and backward as one CUDA graph replay)."""
    module, inputs = strategy_module(cfg, variant, device)
    optimizers = module.configure_optimizers()
    optimizer = optimizers["optimizer"] if isinstance(optimizers, dict) else optimizers[0][0]
    if variant.graph and device.type == "cuda":
        return captured_step(module, inputs, optimizer, variant)
    loss = lambda: module.training_losses(*inputs)["loss"]  # noqa: E731
    return step(loss, module, optimizer, variant, device)


def captured_step(
    module: ReconstructionModule,
    inputs: tuple[torch.Tensor, ...],
    optimizer: torch.optim.Optimizer,
    variant: Variant,
) -> Step:
    """The fast_step of a training run: a CapturedStep replay, then the (fused) Adam step."""
    captured = CapturedStep(module.training_losses, module, module.network_state)

    def run() -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=variant.bf16):
            losses = captured(*inputs)
        optimizer.step()
        return losses["loss"]

    return run


def packed_step(cfg: DictConfig, variant: Variant, packed: int, device: torch.device) -> Step:
    """``packed`` independent models of the configured strategy (each its own weights and
    optimiser) stepped in turn, each on its own CUDA stream: what the GPU is given by
    ``hydra/launcher=packed`` (eilab.packing), without its threads' hand-overs."""
    steps = [eilab_step(cfg, variant, device) for _ in range(packed)]
    streams = [torch.cuda.Stream(device) if device.type == "cuda" else None for _ in steps]
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # the inputs were made on the default stream

    def run() -> None:
        for stream, one in zip(streams, steps, strict=True):
            with torch.cuda.stream(stream):
                one()

    return run


class DeepinvFBPNet(nn.Module):
    """deepinv's reconstructor here: ``backbone(physics.A_dagger(y, fbp=True))``.

    Not ``deepinv.models.ArtifactRemoval(backbone, mode='pinv')``: that calls ``A_dagger(y)``
    (iterative least squares, not FBP, for Tomography) and passes the noise level to the
    backbone as a second argument, which eilab's U-Net does not take.
    """

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, y: torch.Tensor, physics: nn.Module, **kwargs) -> torch.Tensor:
        return self.backbone(physics.A_dagger(y, fbp=True))


def deepinv_losses(dinv, strategy: str, cfg: DictConfig) -> list[nn.Module]:
    """deepinv's losses for ``strategy`` with the config's α and n_trans (REI: its σ)."""
    rotate = dinv.transform.Rotate(
        n_trans=cfg.equivariance.n_trans,
        interpolation_mode="bilinear",
        rng=torch.Generator().manual_seed(0),
    )

    def ei(apply_noise: bool) -> nn.Module:
        return dinv.loss.EILoss(rotate, weight=cfg.equivariance.alpha, apply_noise=apply_noise)

    if strategy == "rei":
        return [dinv.loss.SureGaussianLoss(gaussian_sigma(cfg)), ei(True)]
    return {"mc": [dinv.loss.MCLoss()], "ei": [dinv.loss.MCLoss(), ei(False)]}.get(
        strategy, [dinv.loss.SupLoss()]
    )


def gaussian_sigma(cfg: DictConfig) -> float:
    """σ of the physics' Gaussian noise: deepinv's REI counterpart is SURE for Gaussian noise."""
    noise = cfg.physics.get("noise")
    if noise is None or noise._target_ != "eilab.physics.noise.GaussianNoise":
        raise NotApplicableError("deepinv's REI row needs noise=gaussian")
    return float(noise.sigma)


def deepinv_step(strategy: str, cfg: DictConfig, device: torch.device) -> Step:
    """One deepinv step with its losses for ``strategy``, on the config's network and CT."""
    if cfg.physics._target_ != "eilab.physics.CT":
        raise NotApplicableError("deepinv rows are CT only")
    dinv = require("deepinv")
    losses = deepinv_losses(dinv, strategy, cfg)
    noise = dinv.physics.GaussianNoise(gaussian_sigma(cfg)) if strategy == "rei" else None
    physics = dinv.physics.Tomography(
        angles=cfg.physics.n_views,
        img_width=cfg.img_size,
        circle=cfg.physics.circle,
        normalize=False,
        device=device,
        noise_model=noise,
    )
    model = DeepinvFBPNet(network(cfg, BASELINE, device))
    x = images(cfg, cfg.batch_size).to(device)
    with torch.no_grad():
        y = physics(x)  # A x, plus the noise draw for REI

    def loss() -> torch.Tensor:
        x_net = model(y, physics)
        terms = (fn(x_net=x_net, x=x, y=y, physics=physics, model=model) for fn in losses)
        return sum(term.mean() for term in terms)  # deepinv's Trainer averages each term

    optimizer = torch.optim.Adam(
        model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay
    )
    return step(loss, model, optimizer, BASELINE, device)


def rows(
    strategies: Sequence[str],
    overrides: Sequence[str],
    variants: Sequence[Variant],
    device: torch.device,
    packed: Sequence[int] = (),
) -> list[Row]:
    """Every row of the table, in display order, each with the config it is built from; with
    ``packed``, each strategy also stepped as K models in turn (the last variant's settings)."""

    def config(variant: Variant, *extra: str) -> DictConfig:
        return compose_train([f"channels_last={variant.channels_last}", *extra, *overrides])

    def row(step: str, pipeline: str, variant: Variant, build: Callable, *args, k: int = 1) -> Row:
        return Row(step, pipeline, variant, functools.partial(build, *args, device), k)

    base = config(BASELINE)
    batches = dict.fromkeys((base.batch_size, base.batch_size * base.equivariance.n_trans))
    net = "eilab network (no physics)"
    network_variants = dict.fromkeys(replace(v, graph=False) for v in variants)
    plan = [
        row(f"network fwd+bwd, batch {b}", net, v, network_step, config(v), v, b)
        for b in batches
        for v in network_variants
    ]
    plan.append(row("Adam step alone", "torch.optim.Adam", BASELINE, adam_step, base))
    for name in strategies:
        extra = (f"strategy={name}", *STRATEGY_OVERRIDES.get(name, ()))
        plan += [row(name, "eilab", v, eilab_step, config(v, *extra), v) for v in variants]
        last = variants[-1]
        plan += [
            row(
                f"{name}, {k} packed",
                "eilab",
                last,
                packed_step,
                config(last, *extra),
                last,
                k,
                k=k,
            )
            for k in packed
        ]
        if name in DEEPINV_STRATEGIES:
            peer = config(BASELINE, *extra)
            plan.append(row(name, "deepinv", BASELINE, deepinv_step, name, peer))
    return plan


def time_row(row: Row, budget: Budget, device: torch.device) -> list[object]:
    """A row's cells: build its step (untimed), time it while NVML samples how busy the GPU
    is, read CUDA's peak memory, release."""
    free_memory(device)
    step_fn = attempt(row.build)
    with nvml_sampled(device, "utilisation", interval_s=0.01) as busy:
        timing = step_fn if isinstance(step_fn, str) else attempt(lambda: measure(step_fn, budget))
    peak = busy_percent = "n/a"
    if device.type == "cuda" and not isinstance(timing, str):
        peak = f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f}"
        busy_percent = "-" if busy is None else f"{busy.mean:.0f}"
    free_memory(device)
    first = "-" if isinstance(timing, str) or timing.first_ms is None else f"{timing.first_ms:.1f}"
    rate = "-" if isinstance(timing, str) else f"{1e3 * row.packed / timing.median_ms:.1f}"
    return [row.step, row.pipeline, row.variant.label, timing, rate, first, peak, busy_percent]


def train_section(
    strategies: Sequence[str],
    overrides: Sequence[str],
    variant: Variant,
    budget: Budget,
    device: torch.device,
    packed: Sequence[int] = (),
) -> str:
    """Time every row and return the markdown section, with the settings it ran at."""
    variants = [BASELINE] if variant == BASELINE else [BASELINE, variant]
    results = []
    for row in rows(strategies, overrides, variants, device, packed):
        print(f"[bench] {row.step} / {row.pipeline} / {row.variant.label}", file=sys.stderr)
        results.append((row, time_row(row, budget, device)))
    deepinv = {row.step: cells[3] for row, cells in results if row.pipeline == "deepinv"}
    lines = [
        [*cells, ratio(deepinv.get(row.step, "-"), cells[3]) if row.pipeline == "eilab" else "-"]
        for row, cells in results
    ]
    cfg = compose_train(overrides)
    n_params = sum(p.numel() for p in instantiate(cfg.model).parameters())
    memory = (
        "peak GPU MiB = torch.cuda.max_memory_allocated over the row's steps, reset before its "
        "model is built (parameters, optimiser state, operator, activations)"
        if device.type == "cuda"
        else "no per-row memory on the CPU (see the process max RSS below)"
    )
    header = ["step", "pipeline", "settings", "ms / call (IQR)", "steps / s", "first call ms"]
    header.append("peak GPU MiB")
    header.append("GPU busy %")
    return section(
        f"Training-step benchmark ({device.type.upper()}, ms per optimisation step)",
        [
            "config: `eilab-train " + " ".join([*BASE_OVERRIDES, *overrides]) + " strategy=<step>`"
            f": {cfg.physics._target_} {cfg.img_size}x{cfg.img_size}, n_views "
            f"{cfg.physics.get('n_views', '-')}, batch {cfg.batch_size}; equivariance alpha "
            f"{cfg.equivariance.alpha:g}, n_trans {cfg.equivariance.n_trans}; Adam lr "
            f"{cfg.optim.lr:g}, weight decay {cfg.optim.weight_decay:g}",
            f"network in every row: {cfg.model._target_} ({n_params:,} parameters)",
            budget.describe() + "; 'first call' is the first warm-up call (includes "
            "torch.compile and cuDNN warm-up)",
            "a call is one optimisation step, except in the 'K packed' rows: one step of each of K "
            "independent models in turn, each on its own CUDA stream (hydra/launcher=packed); "
            "steps / s counts all K",
            f"ratio = deepinv fp32 median / this row's median (>1: this row faster); {memory}",
            "GPU busy % = the mean of NVML's utilisation (share of time a kernel ran) sampled "
            "every 10 ms while the row was timed, warm-up included ('-' without nvidia-ml-py)",
        ],
        table([*header, "deepinv / this"], lines, numeric_from=3),
    )
