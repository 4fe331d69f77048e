"""Before training EI, check at a small proxy size that the group can help (Corollary 1)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from eilab.theory import WEAK_CONDITIONING, Identifiability, analyse

PROXY_SIZE = 12
log = logging.getLogger(__name__)


class UselessGroupError(ValueError):
    """The group leaves range(Aᵀ) invariant: EI can learn nothing more than MC."""


def cache_dir() -> Path:
    return Path(os.environ.get("EILAB_CACHE", Path.home() / ".cache" / "eilab")) / "theory"


def proxy_analysis(
    physics_cfg: DictConfig, group_cfg: DictConfig, channels: int
) -> Identifiability:
    """Analyse the configured physics and group at PROXY_SIZE², cached on disk by config."""
    physics_dict = OmegaConf.to_container(physics_cfg, resolve=True)
    physics_dict["img_size"] = PROXY_SIZE
    group_dict = OmegaConf.to_container(group_cfg, resolve=True)
    key = json.dumps([physics_dict, group_dict, channels, PROXY_SIZE], sort_keys=True)
    cached = cache_dir() / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
    if cached.exists():
        return Identifiability(**json.loads(cached.read_text()))
    physics, group = instantiate(physics_dict), instantiate(group_dict)
    result = analyse(physics, group, (channels, PROXY_SIZE, PROXY_SIZE))
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(result.__dict__))
    return result


def check_group_helps(cfg: DictConfig) -> Identifiability | None:
    """Stop an EI-family run whose group cannot help; warn when it helps only weakly.

    Skipped when the strategy uses no group, when the physics has no ``img_size`` to shrink,
    or when ``check_identifiability`` is false.
    """
    if not cfg.check_identifiability or "group" not in cfg.strategy:
        return None
    if "img_size" not in cfg.physics:
        log.info("identifiability check skipped: physics has no img_size to shrink")
        return None
    result = proxy_analysis(cfg.physics, cfg.strategy.group, cfg.channels)
    where = f"(checked at {PROXY_SIZE}x{PROXY_SIZE}: rank(A) {result.rank_A}, rank with the group "
    where += f"{result.rank_stacked} of n = {result.n})"
    if result.rank_A < result.n and result.range_invariant:
        raise UselessGroupError(
            f"{result.verdict()} {where}. Choose another group (e.g. group=rotate), or set "
            "check_identifiability=false to train anyway."
        )
    if result.full_rank and result.rank_A < result.n and result.sigma_ratio < WEAK_CONDITIONING:
        log.warning("the group helps only weakly: %s %s", result.verdict(), where)
    return result
