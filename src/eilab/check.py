"""eilab-check: is a (physics, group) pair able to learn beyond the range space? (Theorem 1)"""

from __future__ import annotations

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from eilab.theory import Identifiability, analyse


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


@hydra.main(version_base="1.3", config_path="conf", config_name="check")
def main(cfg: DictConfig) -> None:
    """Build the configured operator and group, analyse them, print numbers and verdict."""
    physics = instantiate(cfg.physics)
    group = instantiate(cfg.group)
    img_shape = (cfg.channels, cfg.img_size, cfg.img_size)
    print(f"physics: {OmegaConf.to_container(cfg.physics)}")
    print(f"group:   {OmegaConf.to_container(cfg.group)}")
    print(report(analyse(physics, group, img_shape)))


if __name__ == "__main__":
    main()
