"""eilab's SURE losses and REQ term beside deepinv 0.5's: ``python -m eilab.bench.peer_sure``.

Every row evaluates both libraries on the SAME network f = G(A† y) (a seeded two-scale eilab
U-Net, float64), the same image x and the same noisy y, then compares the values and the
gradients with respect to the network's weights. Two kinds of rows:

- **same probe**: both sides see identical random vectors, so they must agree to rounding.
  deepinv draws its probes inside ``forward`` from the ``rng`` generator it is given; we seed
  that generator, draw the same vectors from an identically seeded one in deepinv's order
  (:func:`peer_draws`) and hand them to eilab by replacing its probe functions for the call
  (:func:`injected_probes`). Every input deepinv feeds the network is recorded
  (:class:`Recorder`) and checked against ``y + τ·probe``: a wrong replay stops the run. REQ's
  group element is drawn by deepinv's ``Shift`` and given to eilab (:class:`FixedElements`);
  its noise is drawn by deepinv's noise model from a seeded generator and by eilab's from the
  global generator seeded alike, and the re-noised measurements are checked equal.
- **own probes**: each library with its own probe law and default τ, over many draws: the means
  must agree within Monte-Carlo error (|difference| ≤ 4 standard errors).

The conventions that differ (read in deepinv 0.5.0's source, measured by the rows) are
:data:`CONVENTIONS`, printed in the report. ``python -m eilab.bench --suite sure`` runs it
from the bench; it needs deepinv (the bench environment, ``tools/setup_bench_env.sh``).
"""

from __future__ import annotations

import argparse
import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from unittest import mock

import torch
from torch import nn

from eilab.bench.report import machine_lines, section, table
from eilab.bench.timing import require
from eilab.groups.base import Group
from eilab.groups.shift import Shift
from eilab.losses import EILoss, SURELoss
from eilab.losses import sure as eilab_sure
from eilab.models.reconstructor import Reconstructor
from eilab.models.unet import UNet
from eilab.physics.cs import CompressedSensing
from eilab.physics.inpainting import Inpainting
from eilab.physics.noise import GaussianNoise, NoiseModel, PoissonGaussianNoise, PoissonNoise

#: Convention differences between eilab and deepinv 0.5.0, as the report lists them.
CONVENTIONS = (
    "normalisation: deepinv returns one value per image, the mean over its m entries; eilab "
    "sums over the batch and divides by y.numel(): equal after deepinv's batch mean (its "
    "Trainer's), since every image has the same m. Masked inpainting pixels count in m on both "
    "sides (m = C·H·W, not the number of observed pixels)",
    "masked pixels: deepinv's Inpainting masks the noise too, y = mask ⊙ (A x + n), so a "
    "dropped pixel reads 0; eilab's, y = A x + n, leaves noise there. The SURE formulas agree, "
    "but summed over all m entries the Gaussian (and Poisson–Gaussian) offset −σ² at dropped "
    "pixels has no residual to balance it on deepinv's measurements: SURE is then low by "
    "σ²·(dropped fraction) (measured below). A constant: no effect on the gradients",
    "constants and signs: both subtract the noise variance (σ², γ·mean(y), or both) and add "
    "+2 Σ v ∂h/∂y (Monte-Carlo) and −2γσ² Σ ∂²h/∂y²",
    "probes: deepinv's SureGaussianLoss uses a Gaussian probe b ~ N(0, I); its Poisson and "
    "Poisson–Gaussian losses, and eilab everywhere, a Rademacher one (both E bbᵀ = I). The "
    "second-order probe is the same two-point law, deepinv with p rounded to 0.7236 (eilab "
    "0.5 + 0.5/√5)",
    "τ: deepinv's is absolute (SureGaussianLoss 1e-2; SurePoissonLoss and SurePGLoss τ₁ = 1e-3, "
    "τ₂ = 1e-2), eilab's 1e-3 × RMS(y) per measurement with τ₂ = 10 τ",
    "Poisson–Gaussian: deepinv's SurePGLoss leaves the second-derivative term out by default "
    "(second_derivative=False); eilab always keeps it",
    "REQ: deepinv's EILoss(apply_noise=True) re-noises with physics(x2), eilab with its noise "
    "model: values agree, gradients for Gaussian noise too; through a Poisson draw eilab passes "
    "the gradient as for additive noise, torch.poisson (deepinv) passes none",
    "negative inputs to Poisson noise (x2 = T_g f(y) can have some): eilab clamps them to 0; "
    "deepinv's PoissonNoise raises unless clip_positive=True (set here)",
    "group draws: deepinv's Shift draws one shift per transformed copy for the whole batch "
    "(identity included), eilab one non-identity shift per image",
    "precision: deepinv keeps its Rademacher probes and noise levels in float32 whatever y's "
    "dtype (relative differences of 1e-8 to 1e-7 in float64)",
)

#: deepinv's default τ: SureGaussianLoss; SurePoissonLoss and SurePGLoss's τ₁ (τ₂ = 10 τ₁).
DEEPINV_TAU_GAUSSIAN = 1e-2
DEEPINV_TAU_POISSON = 1e-3
DEEPINV_TAU2 = 1e-2
#: deepinv's rounded p of the two-point second-order probe.
DEEPINV_P = 0.7236
#: Same-probe rows must agree to this relative difference (float64 rounding).
SAME_PROBE_RTOL = 1e-6
#: deepinv's network inputs must equal eilab's to this absolute tolerance (a wrong replay is off
#: by O(τ) or O(σ)): deepinv keeps some numbers in float32 whatever y's dtype, its Rademacher
#: probes (so its step is float32(τ), rel. 5e-8) and its noise levels σ, γ (rel. 1.5e-8).
REPLAY_ATOL = 1e-7
#: Own-probe rows agree when |eilab − deepinv| ≤ this many standard errors of the difference.
MC_SIGMAS = 4.0

#: deepinv's SURE class for each noise kind.
PEER_LOSSES = {"gaussian": "SureGaussianLoss", "poisson": "SurePoissonLoss", "pg": "SurePGLoss"}

IMG = 16
BATCH = 2
DEFAULT_OUT = Path("experiments/bench/sure_crosscheck.md")


class ProbeReplayError(RuntimeError):
    """The probes replayed for eilab are not the ones deepinv drew."""


@dataclass(frozen=True)
class Problem:
    """One measurement problem: operator, noise, network, image and noisy measurement."""

    name: str
    physics: nn.Module
    noise: NoiseModel
    reconstruct: nn.Module
    x: torch.Tensor
    y: torch.Tensor


def problem(name: str, physics: nn.Module, noise: NoiseModel, seed: int = 0) -> Problem:
    """A seeded float64 U-Net on ``physics``, an image in [0.1, 0.9] and its noisy measurement."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        network = UNet(1, widths=(8, 16))
    physics = physics.double()
    x = 0.1 + 0.8 * torch.rand(BATCH, 1, IMG, IMG, generator=generator, dtype=torch.float64)
    y = noise(physics.A(x), generator=generator)
    return Problem(name, physics, noise, Reconstructor(physics, network).double(), x, y)


def problems() -> dict[str, Problem]:
    """The measurement problems of the cross-check, by noise model."""
    inpainting = Inpainting(IMG, drop_rate=0.3, seed=0)
    cs = CompressedSensing((1, IMG, IMG), m=128, seed=0)
    return {
        "gaussian_inpainting": problem(
            "inpainting 16², 30 % dropped", inpainting, GaussianNoise(0.1)
        ),
        "gaussian_cs": problem("CS 16², m = 128", cs, GaussianNoise(0.1)),
        "poisson": problem("inpainting 16², 30 % dropped", inpainting, PoissonNoise(0.1)),
        "pg": problem("inpainting 16², 30 % dropped", inpainting, PoissonGaussianNoise(0.05, 0.05)),
    }


class Recorder(nn.Module):
    """f(y) for both libraries (deepinv calls ``model(y, physics)``); records every input."""

    def __init__(self, reconstruct: nn.Module) -> None:
        super().__init__()
        self.reconstruct = reconstruct
        self.inputs: list[torch.Tensor] = []

    def forward(self, y: torch.Tensor, physics: object = None, **kwargs) -> torch.Tensor:
        self.inputs.append(y.detach().clone())
        return self.reconstruct(y)


class FixedElements(Group):
    """A group whose ``sample`` returns given elements: eilab draws deepinv's transformation."""

    def __init__(self, group: Group, params: torch.Tensor) -> None:
        self.group = group
        self.params = params
        self.param_dim = group.param_dim

    def elements(self, img_shape: tuple[int, int]) -> torch.Tensor:
        return self.group.elements(img_shape)

    def apply(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return self.group.apply(x, params)

    def sample(
        self, batch: int, img_shape: tuple[int, int], generator: torch.Generator | None = None
    ) -> torch.Tensor:
        if batch != len(self.params):
            raise ValueError(f"FixedElements holds {len(self.params)} elements, asked {batch}")
        return self.params


@contextlib.contextmanager
def injected_probes(first: torch.Tensor, second: torch.Tensor | None = None) -> Iterator[None]:
    """eilab's SURE uses ``first`` as its divergence probe b and ``second`` as its c."""
    patches = [mock.patch.object(eilab_sure, "_rademacher", lambda y, generator: first)]
    if second is not None:
        patches.append(mock.patch.object(eilab_sure, "_skewed", lambda y, generator: second))
    with contextlib.ExitStack() as stack:
        for patch in patches:
            stack.enter_context(patch)
        yield


def signs(uniform: torch.Tensor) -> torch.Tensor:
    """±1 from uniforms: +1 where u > 1/2 (deepinv's Rademacher draw)."""
    return torch.where(uniform > 0.5, 1.0, -1.0).to(uniform.dtype)


def two_point(uniform: torch.Tensor, p: float) -> torch.Tensor:
    """−√((1−p)/p) where u < p, else √(p/(1−p)): mean 0, second and third moments 1."""
    return torch.where(uniform < p, -math.sqrt((1 - p) / p), math.sqrt(p / (1 - p))).to(
        uniform.dtype
    )


def peer_draws(kind: str, y: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The probes deepinv's SURE of ``kind`` draws from a generator seeded with ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    if kind == "gaussian":
        return torch.empty_like(y).normal_(generator=generator), None
    first = signs(torch.empty_like(y).uniform_(generator=generator))
    if kind == "poisson":
        return first, None
    return first, two_point(torch.empty_like(y).uniform_(generator=generator), DEEPINV_P)


def deepinv_sure(dinv: ModuleType, kind: str, noise: NoiseModel, rng=None, **options) -> nn.Module:
    """deepinv's SURE loss for ``kind`` at eilab's noise level."""
    levels = {"gaussian": ("sigma",), "poisson": ("gain",), "pg": ("sigma", "gain")}[kind]
    args = [getattr(noise, level) for level in levels]
    return getattr(dinv.loss, PEER_LOSSES[kind])(*args, rng=rng, **options)


def peer_physics(dinv: ModuleType, prob: Problem, noise_model: nn.Module | None = None):
    """deepinv's own Inpainting on eilab's mask; for CS, eilab's operator (SURE reads only A)."""
    if isinstance(prob.physics, Inpainting):
        mask = prob.physics.mask[0]
        return dinv.physics.Inpainting(mask.shape, mask=mask, noise_model=noise_model)
    return prob.physics


def with_grad(loss: Callable[[], torch.Tensor], network: nn.Module) -> tuple[float, torch.Tensor]:
    """A loss value and its gradient with respect to ``network``'s weights, flattened."""
    network.zero_grad(set_to_none=True)
    value = loss()
    value.backward()
    grad = torch.cat([p.grad.flatten() for p in network.parameters()])
    return float(value.detach()), grad


def relative(a: float | torch.Tensor, b: float | torch.Tensor) -> float:
    """|a − b| / |b| (norms for vectors)."""
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


@dataclass(frozen=True)
class Row:
    """eilab beside deepinv on one loss: values, their spread and the gradients' difference."""

    loss: str
    problem: str
    probe: str
    eilab: float
    deepinv: float
    stderr: float = 0.0  # standard error of eilab − deepinv (0: same probe)
    grad_rel: float | None = None
    grads_equal: bool = True  # False where a documented convention makes the gradients differ

    @property
    def rel_diff(self) -> float:
        return relative(self.eilab, self.deepinv)

    @property
    def agrees(self) -> bool:
        """Same probe: within rounding; own probes: within MC_SIGMAS standard errors."""
        if self.stderr == 0.0:
            return self.rel_diff <= SAME_PROBE_RTOL
        return abs(self.eilab - self.deepinv) <= MC_SIGMAS * self.stderr

    @property
    def grads_as_documented(self) -> bool:
        """Gradients equal to rounding, or different where the conventions say so."""
        return self.grad_rel is None or (self.grad_rel <= SAME_PROBE_RTOL) == self.grads_equal

    def cells(self) -> list[object]:
        grad = "-" if self.grad_rel is None else f"{self.grad_rel:.1e}"
        spread = "0 (same probe)" if self.stderr == 0.0 else f"{self.stderr:.2e}"
        verdict = "agree" if self.agrees and self.grads_as_documented else "DIFFER"
        if not self.grads_equal:
            verdict += " (gradients differ by convention)"
        return [
            self.loss,
            self.problem,
            self.probe,
            f"{self.eilab:.6e}",
            f"{self.deepinv:.6e}",
            f"{self.rel_diff:.1e}",
            spread,
            grad,
            verdict,
        ]


def check_replay(recorded: Sequence[torch.Tensor], expected: Sequence[torch.Tensor]) -> None:
    """deepinv's network inputs must be the ones the replayed probes give."""
    if len(recorded) != len(expected) or not all(
        torch.allclose(r, e, rtol=0, atol=REPLAY_ATOL)
        for r, e in zip(recorded, expected, strict=False)
    ):
        raise ProbeReplayError("deepinv's network inputs differ from y + τ·(replayed probe)")


def sure_same_probe(dinv: ModuleType, kind: str, prob: Problem, seed: int = 1, **peer) -> Row:
    """eilab's SURELoss and deepinv's Sure*Loss with deepinv's τ and the very same probes."""
    tau = DEEPINV_TAU_GAUSSIAN if kind == "gaussian" else DEEPINV_TAU_POISSON
    first, second = peer_draws(kind, prob.y, seed)
    model = Recorder(prob.reconstruct)
    physics = peer_physics(dinv, prob)
    loss = deepinv_sure(dinv, kind, prob.noise, torch.Generator().manual_seed(seed), **peer)
    y = prob.y.clone()  # deepinv's hutch code may flag y as requiring grad; keep ours clean

    def theirs() -> torch.Tensor:
        model.inputs.clear()
        return loss(y=y, x_net=model(y, physics), physics=physics, model=model).mean()

    deepinv, deepinv_grad = with_grad(theirs, prob.reconstruct)
    expected = [prob.y, prob.y + tau * first]
    if second is not None and peer.get("second_derivative"):
        expected += [prob.y + DEEPINV_TAU2 * second, prob.y - DEEPINV_TAU2 * second]
    check_replay(model.inputs, expected)
    ours_loss = SURELoss(prob.noise, tau=tau)

    def ours() -> torch.Tensor:
        with injected_probes(first, second):
            return ours_loss(prob.y, prob.reconstruct(prob.y), prob.reconstruct, prob.physics)

    eilab, eilab_grad = with_grad(ours, prob.reconstruct)
    probe = "same (Gaussian)" if kind == "gaussian" else "same (Rademacher)"
    return Row(
        loss_name(kind, peer),
        prob.name,
        probe,
        eilab,
        deepinv,
        0.0,
        relative(eilab_grad, deepinv_grad),
    )


def loss_name(kind: str, peer: dict) -> str:
    """The row's label: deepinv's class, with its non-default options."""
    options = ", ".join(f"{k}={v}" for k, v in peer.items())
    return f"{PEER_LOSSES[kind]}({options})"


def mean_and_stderr(values: Sequence[float]) -> tuple[float, float]:
    """Sample mean and its standard error."""
    t = torch.tensor(values, dtype=torch.float64)
    return float(t.mean()), float(t.std() / math.sqrt(len(t)))


def sure_own_probes(dinv: ModuleType, kind: str, prob: Problem, draws: int, **peer) -> Row:
    """Each library with its own probe law and default τ; means over ``draws`` probes each."""
    model = Recorder(prob.reconstruct)
    physics = peer_physics(dinv, prob)
    generator = torch.Generator().manual_seed(2)
    loss = deepinv_sure(dinv, kind, prob.noise, generator, **peer)
    ours_loss = SURELoss(prob.noise)
    theirs, ours = [], []
    with torch.no_grad():
        x1 = prob.reconstruct(prob.y)
        for _ in range(draws):
            theirs.append(float(loss(y=prob.y, x_net=x1, physics=physics, model=model).mean()))
            model.inputs.clear()
            ours.append(float(ours_loss(prob.y, x1, prob.reconstruct, prob.physics, generator)))
    (a, sa), (b, sb) = mean_and_stderr(ours), mean_and_stderr(theirs)
    label = f"own, {draws} draws each"
    return Row(loss_name(kind, peer), prob.name, label, a, b, math.hypot(sa, sb))


def peer_noise(dinv: ModuleType, noise: NoiseModel, rng: torch.Generator) -> nn.Module:
    """deepinv's noise model equal to eilab's ``noise``, drawing from ``rng``."""
    if isinstance(noise, GaussianNoise):
        return dinv.physics.GaussianNoise(noise.sigma, rng=rng)
    return dinv.physics.PoissonNoise(noise.gain, clip_positive=True, rng=rng)


def req_same_draw(dinv: ModuleType, prob: Problem, seed: int = 3) -> Row:
    """REQ: eilab's EILoss(noise=...) and deepinv's EILoss(apply_noise=True), same g and noise."""
    physics = peer_physics(dinv, prob, peer_noise(dinv, prob.noise, torch.Generator()))
    shift = dinv.transform.Shift(n_trans=1, rng=torch.Generator().manual_seed(seed))
    params = shift.get_params(prob.x)
    model = Recorder(prob.reconstruct)
    loss = dinv.loss.EILoss(lambda x: shift(x, **params), apply_noise=True)

    def theirs() -> torch.Tensor:
        physics.noise_model.rng.manual_seed(seed)
        model.inputs.clear()
        x1 = model(prob.y, physics)
        return loss(x_net=x1, physics=physics, model=model)

    deepinv, deepinv_grad = with_grad(theirs, prob.reconstruct)
    their_inputs = list(model.inputs)
    element = torch.stack([params["y_shift"], params["x_shift"]], 1).double()
    group = FixedElements(Shift(), element.repeat(BATCH, 1))

    def ours() -> torch.Tensor:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model.inputs.clear()
            return EILoss(group)(prob.reconstruct(prob.y), model, prob.physics, noise=prob.noise)

    eilab, eilab_grad = with_grad(ours, prob.reconstruct)
    seen = [prob.physics.A_dagger(y) for y in (model.inputs[0], their_inputs[-1])]
    if not torch.allclose(*seen, rtol=0, atol=REPLAY_ATOL):
        raise ProbeReplayError("deepinv's re-noised measurement differs from eilab's")
    label = f"EILoss(apply_noise=True), {type(prob.noise).__name__}"
    return Row(
        label,
        prob.name,
        "same g, same noise",
        eilab,
        deepinv,
        0.0,
        relative(eilab_grad, deepinv_grad),
        grads_equal=not isinstance(prob.noise, PoissonNoise),
    )


def req_own_draws(dinv: ModuleType, prob: Problem, draws: int) -> Row:
    """REQ with each library drawing its own shifts and noise; means over ``draws`` each."""
    generator = torch.Generator().manual_seed(4)
    physics = peer_physics(dinv, prob, peer_noise(dinv, prob.noise, generator))
    model = Recorder(prob.reconstruct)
    loss = dinv.loss.EILoss(dinv.transform.Shift(n_trans=1, rng=generator), apply_noise=True)
    ours_loss = EILoss(Shift())
    theirs, ours = [], []
    with torch.no_grad():
        x1 = prob.reconstruct(prob.y)
        for _ in range(draws):
            theirs.append(float(loss(x_net=x1, physics=physics, model=model)))
            model.inputs.clear()
            ours.append(float(ours_loss(x1, prob.reconstruct, prob.physics, generator, prob.noise)))
    (a, sa), (b, sb) = mean_and_stderr(ours), mean_and_stderr(theirs)
    label = f"EILoss(apply_noise=True), {type(prob.noise).__name__}"
    return Row(label, prob.name, f"own, {draws} draws each", a, b, math.hypot(sa, sb))


def crosscheck(draws: int = 200) -> list[Row]:
    """Every row: each SURE and REQ with the same probe, then with each library's own."""
    dinv = require("deepinv")
    probs = problems()
    full = {"second_derivative": True}
    return [
        sure_same_probe(dinv, "gaussian", probs["gaussian_inpainting"]),
        sure_same_probe(dinv, "gaussian", probs["gaussian_cs"]),
        sure_same_probe(dinv, "poisson", probs["poisson"]),
        sure_same_probe(dinv, "pg", probs["pg"], **full),
        req_same_draw(dinv, probs["gaussian_inpainting"]),
        req_same_draw(dinv, probs["poisson"]),
        sure_own_probes(dinv, "gaussian", probs["gaussian_inpainting"], draws),
        sure_own_probes(dinv, "gaussian", probs["gaussian_cs"], draws),
        sure_own_probes(dinv, "poisson", probs["poisson"], draws),
        sure_own_probes(dinv, "pg", probs["pg"], draws, **full),
        sure_own_probes(dinv, "pg", probs["pg"], draws),
        req_own_draws(dinv, probs["gaussian_inpainting"], draws),
    ]


def masked_pixel_bias(draws: int = 200) -> dict[str, tuple[float, float]]:
    """Mean and standard error of SURE − (1/m)‖A f(y) − A x‖² over Gaussian noise draws, on
    eilab's inpainting measurements (noise on dropped pixels) and deepinv's (masked noise)."""
    dinv = require("deepinv")
    prob = problems()["gaussian_inpainting"]
    generator = torch.Generator().manual_seed(5)
    peer = peer_physics(dinv, prob, dinv.physics.GaussianNoise(prob.noise.sigma, rng=generator))
    z = prob.physics.A(prob.x)
    sure_loss = SURELoss(prob.noise)
    gaps: dict[str, list[float]] = {"eilab": [], "deepinv": []}
    with torch.no_grad():
        for _ in range(draws):
            for name, y in (("eilab", prob.noise(z, generator)), ("deepinv", peer(prob.x))):
                x1 = prob.reconstruct(y)
                true = (prob.physics.A(x1) - z).pow(2).mean()
                sure = sure_loss(y, x1, prob.reconstruct, prob.physics, generator)
                gaps[name].append(float(sure - true))
    return {name: mean_and_stderr(values) for name, values in gaps.items()}


def masked_section(bias: dict[str, tuple[float, float]]) -> str:
    """The masked-pixel table: SURE's bias on each library's inpainting measurements."""
    prob = problems()["gaussian_inpainting"]
    dropped = float(1 - prob.physics.mask.mean())
    expected = {"eilab": 0.0, "deepinv": -(prob.noise.sigma**2) * dropped}
    lines = [
        [
            f"{name}'s Inpainting + GaussianNoise",
            f"{mean:.2e}",
            f"{err:.1e}",
            f"{expected[name]:.2e}",
        ]
        for name, (mean, err) in bias.items()
    ]
    return section(
        "Masked pixels: SURE's bias on each library's inpainting measurements",
        [
            "eilab's SURELoss (deepinv's gives the same values, above) minus the true error "
            f"(1/m)‖A f(y) − A x‖², averaged over noise draws; σ = {prob.noise.sigma:g}, "
            f"{dropped:.0%} of pixels dropped",
            "expected: 0 on eilab's measurements, −σ² × dropped fraction on deepinv's",
        ],
        table(["measurements", "mean SURE − true", "std. error", "expected"], lines, 1),
    )


def sure_section(rows: Sequence[Row]) -> str:
    """The cross-check table, with how to read it."""
    header = [
        "loss (deepinv)",
        "problem",
        "probe",
        "eilab",
        "deepinv",
        "rel. diff",
        "MC std. error of diff",
        "grad rel. diff",
        "verdict",
    ]
    return section(
        "SURE and REQ: eilab beside deepinv (same network, input and probe)",
        [
            f"network: eilab UNet(widths=(8, 16)) on A† y, float64, seed 0; batch {BATCH} "
            f"images {IMG}², x uniform in [0.1, 0.9]; noise: Gaussian σ = 0.1, Poisson "
            "γ = 0.1, Poisson–Gaussian γ = 0.05, σ = 0.05; inpainting drops 30 % of pixels",
            "values are batch means (deepinv's per-image values averaged, as its Trainer does); "
            "'grad rel. diff' = ‖∇eilab − ∇deepinv‖ / ‖∇deepinv‖ over the network's weights",
            "same-probe rows: deepinv's τ on both sides, probes replayed into eilab, deepinv's "
            "network inputs checked; own-probe rows: each library's default τ and probes",
            f"verdict on the values: same probe, rel. diff ≤ {SAME_PROBE_RTOL:g}; own probes, "
            f"|diff| ≤ {MC_SIGMAS:g} standard errors",
        ],
        table(header, [row.cells() for row in rows], numeric_from=3),
    )


def report(draws: int = 200) -> str:
    """The markdown sections: cross-check table, masked-pixel bias, conventions."""
    conventions = section("Conventions (deepinv 0.5.0)", CONVENTIONS, [])
    return "\n".join(
        [sure_section(crosscheck(draws)), masked_section(masked_pixel_bias(draws)), conventions]
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m eilab.bench.peer_sure", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--draws", type=int, default=200, help="draws per Monte-Carlo row")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="markdown report")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> str:
    """Run the cross-check, print the report and write it to ``--out``."""
    args = parse_args(argv)
    torch.set_num_threads(2)
    header = ["# eilab vs deepinv: SURE and REQ", "", *machine_lines(torch.device("cpu")), ""]
    command = f"command: `python -m eilab.bench.peer_sure --draws {args.draws}`"
    text = "\n".join([*header, command, "", report(args.draws)])
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return text


if __name__ == "__main__":
    main()
