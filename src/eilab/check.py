"""eilab-check: is a (physics, group) pair able to learn beyond the range space? (Theorem 1)"""

from __future__ import annotations

import math
import time

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from eilab.preflight import GB, check_config, require_memory
from eilab.theory import Identifiability, analyse, dense_bytes


def report(result: Identifiability) -> str:
    """The checker's numbers and verdict as printable lines."""
    lines = [
        f"signal dimension n          {result.n}",
        f"measurements m              {result.m}",
        f"group elements |G|          {result.group_size}",
        f"rank(A)                     {result.rank_A}",
        f"rank([A T_g]_g)             {result.rank_stacked}",
        f"sigma_min / sigma_max       {result.sigma_ratio:.3e}",
        f"range(Aᵀ) moved to null(A)  {result.range_leakage:.3e}  (0: Corollary 1 holds)",
        "",
        f"verdict: {result.verdict()}",
    ]
    return "\n".join(lines)


class Progress:
    """Prints how far :func:`analyse` is and the time left, every ``every`` seconds once slow."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self.start = self.loop_start = self.last = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done == 0:
            self.loop_start = now
        if now - self.last < self.every:
            return
        self.last = now
        if done == 0:
            print(f"SVD of A done after {duration(now - self.start)}", flush=True)
            return
        left = (now - self.loop_start) / done * (total - done)
        print(f"group element {done}/{total}, about {duration(left)} left", flush=True)


def duration(seconds: float) -> str:
    """Seconds in the largest sensible unit: '42 s', '3.5 min', '9.1 h'."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def run(cfg: DictConfig) -> Identifiability:
    """Check the config, refuse an analysis that cannot fit in memory, analyse and print."""
    check_config(cfg)
    img_shape = (cfg.channels, cfg.img_size, cfg.img_size)
    print(f"physics: {OmegaConf.to_container(cfg.physics, resolve=True)}")
    print(f"group:   {OmegaConf.to_container(cfg.group, resolve=True)}")
    physics, group = instantiate(cfg.physics), instantiate(cfg.group)
    n, m = math.prod(img_shape), physics.A(torch.zeros(1, *img_shape)).numel()
    needed = dense_bytes(n, m)
    what = f"the dense analysis of img_size={cfg.img_size} (n = {n} unknowns, m = {m} measurements)"
    require_memory(needed, what)
    elements = len(group.elements(img_shape[1:]))
    print(f"{what}: about {needed / GB:.2f} GB; an SVD of A, then {elements} group elements")
    print("(a long analysis prints its progress and the time left every 10 s)", flush=True)
    result = analyse(physics, group, img_shape, progress=Progress())
    print(report(result))
    return result


@hydra.main(version_base="1.3", config_path="conf", config_name="check")
def main(cfg: DictConfig) -> None:
    """Build the configured operator and group, analyse them, print numbers and verdict."""
    run(cfg)


if __name__ == "__main__":
    main()
