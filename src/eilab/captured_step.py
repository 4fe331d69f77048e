"""A training step's forward, losses and backward replayed as one CUDA graph.

At the paper's CT scale a step launches hundreds of small kernels (a U-Net at batch 2 and 10,
the Radon transform, FFTs, rotations) and the GPU waits on Python between them: measured on an
H200, the network's forward + backward took the same time at batch 2 and 10. A CUDA graph
records those launches once and replays them with one call (PyTorch's "whole network capture",
torch.cuda.graphs). The optimiser's step stays outside the graph: Lightning counts it, the
learning-rate schedule changes its rate, and a fused Adam is a few kernels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

Losses = dict[str, torch.Tensor]


@dataclass
class _Graph:
    """One captured step: its graph, the tensors its inputs are copied into, its outputs."""

    graph: torch.cuda.CUDAGraph
    inputs: tuple[torch.Tensor, ...]
    losses: Losses
    grads: list[tuple[nn.Parameter, torch.Tensor]]  # each parameter, its gradient's tensor


class CapturedStep:
    """``losses(*inputs)`` and the backward of its ``"loss"``, captured on CUDA, replayed after.

    The first call captures the graph for its input shapes, after ``warmup`` eager calls on a
    side stream (cuDNN's algorithm choice, cuFFT plans and the gradients' first allocation
    happen there, outside the graph). ``module`` holds the parameters; ``stateful`` (default:
    ``module``) the buffers a forward changes. Warm-up and capture leave no trace: those
    buffers (BatchNorm statistics) and the random states are restored, so the first replay
    computes what the eager step would have. Calls with other shapes (a short last batch) run
    eagerly.
    Either way the gradients are left in ``param.grad``, in the graph's own tensors; each call
    first points ``param.grad`` back at them, since a ``zero_grad(set_to_none=True)`` between
    calls (Lightning's before every validation) drops the link and the replays would then write
    gradients no optimiser reads.

    Under autocast (bf16-mixed) the graph is captured with autocast's weight cache off, as
    torch.cuda.graphs requires: a cached cast would freeze the weights of its first use.

    The returned losses are the graph's own output tensors, overwritten by the next call.
    """

    def __init__(
        self,
        losses: Callable[..., Losses],
        module: nn.Module,
        stateful: nn.Module | None = None,
        warmup: int = 3,
    ) -> None:
        if warmup < 1:
            raise ValueError(f"CapturedStep: warmup must be >= 1, got {warmup}")
        self.losses, self.module, self.warmup = losses, module, warmup
        self.stateful = module if stateful is None else stateful
        self.captured: _Graph | None = None

    def __call__(self, *inputs: torch.Tensor) -> Losses:
        if self.captured is None:
            self.captured = self._capture(inputs)
        for param, grad in self.captured.grads:
            param.grad = grad
        if [t.shape for t in inputs] != [t.shape for t in self.captured.inputs]:
            return self._eager(inputs)
        for static, new in zip(self.captured.inputs, inputs, strict=True):
            static.copy_(new)
        self.captured.graph.replay()
        return self.captured.losses

    def _eager(self, inputs: tuple[torch.Tensor, ...]) -> Losses:
        """The same step without the graph, its gradients written into the graph's tensors."""
        for _, grad in self.captured.grads:
            grad.zero_()
        losses = self.losses(*inputs)
        losses["loss"].backward()
        return {name: value.detach() for name, value in losses.items()}

    def _capture(self, inputs: tuple[torch.Tensor, ...]) -> _Graph:
        device = inputs[0].device
        buffers = {name: b.clone() for name, b in self.stateful.named_buffers()}
        rng = torch.get_rng_state(), torch.cuda.get_rng_state(device)
        static = tuple(t.clone() for t in inputs)
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side), _no_autocast_cache():
            for _ in range(self.warmup):
                self.module.zero_grad(set_to_none=True)
                self.losses(*static)["loss"].backward()
        torch.cuda.current_stream(device).wait_stream(side)
        self.module.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        # thread_local: the other jobs of a packed sweep (eilab.packing) live in other threads
        with torch.cuda.graph(graph, capture_error_mode="thread_local"), _no_autocast_cache():
            losses = self.losses(*static)
            losses["loss"].backward()
            losses = {name: value.detach() for name, value in losses.items()}
        with torch.no_grad():
            for name, buffer in self.stateful.named_buffers():
                buffer.copy_(buffers[name])
        torch.set_rng_state(rng[0])
        torch.cuda.set_rng_state(rng[1], device)
        grads = [(p, p.grad) for p in self.module.parameters() if p.grad is not None]
        return _Graph(graph, static, losses, grads)


def _no_autocast_cache() -> torch.autocast:
    """Autocast as it is now on CUDA (on or off, same dtype), with its weight cache off."""
    return torch.autocast(
        "cuda",
        dtype=torch.get_autocast_dtype("cuda"),
        enabled=torch.is_autocast_enabled("cuda"),
        cache_enabled=False,
    )
