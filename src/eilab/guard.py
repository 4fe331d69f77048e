"""Before training EI, check at a small proxy size that the group can help (Corollary 1).

The proxy analysis takes seconds to a minute, so its numbers are cached on disk
(``$EILAB_CACHE`` or ``~/.cache/eilab``, under ``theory/``), keyed by the physics and group
configs, the channels, the proxy size, eilab's version and a hash of the code the numbers
come from (``eilab.physics``, ``eilab.groups``, ``eilab.theory``). An entry is used only if it
holds exactly the expected fields with the expected types, its key is this check's key, its
n, m and |G| match the operator and group built for this check, and its checksum matches its
content; anything else (truncated, edited, written by other code) is a miss: recomputed and
rewritten atomically (a cache that cannot be written, e.g. ``$EILAB_CACHE`` a file, is skipped
with a warning). The checksum catches corruption and edits, not a forger who recomputes
it: the cache is the user's own directory.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import typing
from dataclasses import asdict
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import eilab
from eilab.atomic import atomic_file
from eilab.theory import WEAK_CONDITIONING, Identifiability, analyse

PROXY_SIZE = 12
CODE_PACKAGES = ("physics", "groups", "theory.py")  # under src/eilab: what the numbers depend on
FIELD_TYPES = typing.get_type_hints(Identifiability)
log = logging.getLogger(__name__)


class UselessGroupError(ValueError):
    """The group leaves range(Aᵀ) invariant: EI can learn nothing more than MC."""


def cache_dir() -> Path:
    return Path(os.environ.get("EILAB_CACHE", Path.home() / ".cache" / "eilab")) / "theory"


@functools.cache
def code_hash() -> str:
    """sha256 of the source files of the operators, groups and the analysis."""
    root = Path(eilab.__file__).parent
    digest = hashlib.sha256()
    for name in CODE_PACKAGES:
        files = sorted((root / name).rglob("*.py")) if (root / name).is_dir() else [root / name]
        for file in files:
            digest.update(file.relative_to(root).as_posix().encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def checksum(key: dict, result: dict) -> str:
    return hashlib.sha256(json.dumps([key, result], sort_keys=True).encode()).hexdigest()


def entry_problem(entry: object, key: dict, expected: dict) -> str | None:
    """Why a cache entry cannot be used, or None if it can."""
    if not isinstance(entry, dict) or set(entry) != {"key", "result", "sha256"}:
        return "not an eilab cache entry"
    result = entry["result"]
    if not isinstance(result, dict) or set(result) != set(FIELD_TYPES):
        return f"fields are not {sorted(FIELD_TYPES)}"
    for name, value in result.items():
        number = (int,) if FIELD_TYPES[name] is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, number):
            return f"{name} is {value!r}, not of type {FIELD_TYPES[name].__name__}"
    if entry["key"] != key:
        return "written for another configuration or code version"
    if any(result[name] != value for name, value in expected.items()):
        return f"n, m or |G| differ from this operator's {expected}"
    if entry["sha256"] != checksum(key, result):
        return "checksum does not match its content"
    return None


def read_entry(path: Path, key: dict, expected: dict) -> Identifiability | None:
    """The cached result at ``path`` if it is valid; None (a miss) otherwise."""
    if not path.exists():
        return None
    try:
        entry = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        problem = f"unreadable ({error})"
    else:
        problem = entry_problem(entry, key, expected)
    if problem is None:
        return Identifiability(**entry["result"])
    log.warning("ignoring the cached identifiability check %s: %s; recomputing", path, problem)
    return None


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically: never half a file (eilab.atomic)."""
    with atomic_file(path) as file:
        file.write(text)


def proxy_analysis(
    physics_cfg: DictConfig, group_cfg: DictConfig, channels: int
) -> Identifiability:
    """Analyse the configured physics and group at PROXY_SIZE², cached on disk (module doc)."""
    physics_dict = OmegaConf.to_container(physics_cfg, resolve=True)
    physics_dict["img_size"] = PROXY_SIZE
    group_dict = OmegaConf.to_container(group_cfg, resolve=True)
    key = {
        "physics": physics_dict,
        "group": group_dict,
        "channels": channels,
        "proxy_size": PROXY_SIZE,
        "eilab": eilab.__version__,
        "code": code_hash(),
    }
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    cached = cache_dir() / f"{name}.json"
    physics, group = instantiate(physics_dict), instantiate(group_dict)
    shape = (channels, PROXY_SIZE, PROXY_SIZE)
    expected = {
        "n": math.prod(shape),
        "m": physics.A(torch.zeros(1, *shape)).numel(),
        "group_size": len(group.elements(shape[1:])),
    }
    result = read_entry(cached, key, expected)
    if result is None:
        result = analyse(physics, group, shape)
        found = asdict(result)
        entry = json.dumps({"key": key, "result": found, "sha256": checksum(key, found)})
        try:
            write_atomic(cached, entry)
        except OSError as error:  # EILAB_CACHE a file, unwritable, full: run without the cache
            log.warning("cannot write the identifiability cache %s (%s); not cached", cached, error)
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
