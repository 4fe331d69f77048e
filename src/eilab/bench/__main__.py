"""``python -m eilab.bench``: run the chosen suites and print (and write) the markdown report."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

import torch

from eilab.bench import __doc__ as overview
from eilab.bench import peer_sure
from eilab.bench.ops import Case, ops_section
from eilab.bench.report import machine_lines, max_rss_line
from eilab.bench.timing import Budget, resolve_device
from eilab.bench.train_step import Variant, train_section

#: Every strategy config (``conf/strategy/*.yaml``), so a new strategy is benchmarked by name.
STRATEGIES = sorted(
    p.name[:-5] for p in (files("eilab.conf") / "strategy").iterdir() if p.name.endswith(".yaml")
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m eilab.bench",
        description=overview.split("\n")[0],
        epilog="Put Hydra overrides before the options, or after '--'.",
    )
    parser.add_argument("--suite", choices=("ops", "train", "sure", "all"), default="ops")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ops = parser.add_argument_group("ops suite")
    ops.add_argument("--sizes", type=int, nargs="+", default=[128], help="image sizes N")
    ops.add_argument("--views", type=int, nargs="+", default=[50], help="numbers of views")
    ops.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="batch sizes")
    train = parser.add_argument_group("train suite (configs: eilab-train experiment=ct_table1)")
    train.add_argument(
        "overrides",
        nargs="*",
        help="Hydra overrides of the train config, e.g. img_size=64 equivariance.n_trans=3",
    )
    train.add_argument(
        "--strategies", nargs="+", choices=STRATEGIES, default=["mc", "ei", "rei", "sup"]
    )
    train.add_argument("--channels-last", action="store_true", help="eilab rows: NHWC network")
    train.add_argument(
        "--bf16", action="store_true", help="eilab rows: bfloat16 autocast (as bf16-mixed)"
    )
    train.add_argument("--compile", action="store_true", help="eilab rows: torch.compile network")
    train.add_argument(
        "--graph", action="store_true", help="eilab rows: fast_step (CUDA graph + fused Adam)"
    )
    train.add_argument(
        "--packed",
        type=int,
        nargs="+",
        default=[],
        metavar="K",
        help="also each strategy as K models stepped in turn on K CUDA streams (total steps/s)",
    )
    sure = parser.add_argument_group("sure suite (eilab's SURE and REQ beside deepinv's)")
    sure.add_argument("--sure-draws", type=int, default=200, help="draws per Monte-Carlo row")
    timing = parser.add_argument_group("timing (torch.utils.benchmark adaptive_autorange)")
    timing.add_argument("--warmup", type=int, default=1, help="untimed calls per cell")
    timing.add_argument("--min-time", type=float, default=0.5, help="seconds timed at least")
    timing.add_argument("--max-time", type=float, default=10.0, help="seconds timed at most")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown here")
    args = parser.parse_args(argv)
    if args.warmup < 0 or args.min_time < 0 or args.max_time <= 0:
        parser.error("--warmup and --min-time must be >= 0, --max-time > 0")
    if any(k < 1 for k in args.packed):
        parser.error(f"--packed: each K must be >= 1, got {args.packed}")
    return args


def main(argv: Sequence[str] | None = None) -> str:
    """Run the suites ``argv`` asks for; print the report, write it to ``--out``, return it."""
    args = parse_args(argv)
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    budget = Budget(args.warmup, args.min_time, args.max_time)
    sections = ["# eilab benchmark", "", *machine_lines(device), ""]
    if args.suite in ("ops", "all"):
        cases = [Case(s, v, b) for s in args.sizes for v in args.views for b in args.batches]
        sections.append(ops_section(cases, budget, device))
    if args.suite in ("train", "all"):
        variant = Variant(args.channels_last, args.bf16, args.compile, args.graph)
        sections.append(
            train_section(args.strategies, args.overrides, variant, budget, device, args.packed)
        )
    if args.suite in ("sure", "all"):
        sections.append(peer_sure.report(args.sure_draws))
    text = "\n".join([*sections, max_rss_line()]) + "\n"
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return text


if __name__ == "__main__":
    main()
