"""Where a training step's time goes: ``python -m eilab.bench.profile_step``.

Profiles a few eager steps of one strategy (built as the train suite builds them) with
torch.profiler and writes the operators by self device time (CUDA kernels on a GPU, CPU time
elsewhere), with the step's wall time beside the sum of its kernel times. On a GPU that sum is
the floor a CUDA graph can reach (the graph removes the launches, not the kernels): a wall time
far above it means the step is launch-bound, close to it means only cheaper kernels (bf16,
fewer transforms) can make the step faster.

    python -m eilab.bench.profile_step --device cuda --strategy ei img_size=128 model=unet
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from eilab.bench import BASE_OVERRIDES, compose_train
from eilab.bench.timing import resolve_device
from eilab.bench.train_step import Variant, eilab_step


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m eilab.bench.profile_step")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the train config")
    parser.add_argument("--strategy", default="ei")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    parser.add_argument("--channels-last", action="store_true", help="NHWC network")
    parser.add_argument("--warmup", type=int, default=3, help="unprofiled steps first")
    parser.add_argument("--steps", type=int, default=10, help="profiled steps")
    parser.add_argument("--rows", type=int, default=25, help="operators listed")
    parser.add_argument("--out", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)
    if args.warmup < 0 or args.steps < 1:
        parser.error("--warmup must be >= 0 and --steps >= 1")
    return args


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: Sequence[str] | None = None) -> str:
    """Profile the steps, print the report, write it to ``--out``, return it."""
    args = parse_args(argv)
    device = resolve_device(args.device)
    overrides = [f"strategy={args.strategy}", f"channels_last={args.channels_last}"]
    cfg = compose_train([*overrides, *args.overrides])
    step = eilab_step(cfg, Variant(channels_last=args.channels_last, bf16=args.bf16), device)
    for _ in range(args.warmup):
        step()
    synchronize(device)
    activities = [ProfilerActivity.CPU]
    activities += [ProfilerActivity.CUDA] if device.type == "cuda" else []
    with profile(activities=activities) as profiled:
        began = time.perf_counter()
        for _ in range(args.steps):
            step()
        synchronize(device)
        wall_ms = 1e3 * (time.perf_counter() - began) / args.steps
    averages = profiled.key_averages()
    kind = "device" if device.type == "cuda" else "cpu"
    busy_ms = sum(getattr(event, f"self_{kind}_time_total") for event in averages) / 1e3
    busy_ms /= args.steps
    text = "\n".join(
        [
            f"# Profile of one {args.strategy} step ({device.type}, eager)",
            "",
            "config: `eilab-train "
            + " ".join([*BASE_OVERRIDES, *overrides, *args.overrides])
            + f"`; bf16 autocast {args.bf16}; {args.steps} steps after {args.warmup} warm-up",
            "",
            f"- wall time per step: {wall_ms:.2f} ms (under the profiler)",
            f"- sum of the operators' self {kind} time per step: {busy_ms:.2f} ms",
            "",
            "```",
            averages.table(sort_by=f"self_{kind}_time_total", row_limit=args.rows),
            "```",
        ]
    )
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return text


if __name__ == "__main__":
    main()
