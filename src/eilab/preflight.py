"""Refuse a configuration before anything is built, naming the key that cannot work.

Four checks, each cheap: a ``+key`` override that no config node reads is a typo
(:func:`check_added_keys`, called before the config is resolved); every argument given to a
``_target_`` fits the simple type hints of the callable it goes to (int, float, bool, str,
lists of those, ``X | None``); α and the learning rate are finite and not negative, the image
size and channels at least 1; the dataset images and the physics operator fit in the memory
this machine has free (estimates measured on CPU, stated below).
"""

from __future__ import annotations

import difflib
import inspect
import logging
import math
import os
import re
import types
import typing
from collections.abc import Callable, Sequence
from os import PathLike
from pathlib import Path

from hydra._internal.utils import _locate
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from eilab.physics import CT, MRI, CompressedSensing, Inpainting
from eilab.runconfig import leaves

HYDRA_KEYS = {"_target_", "_partial_", "_convert_", "_recursive_", "_args_"}
TRUSTED_PACKAGES = ("eilab", "lightning", "torch")
GB = 1e9
#: Top-level values that must be integers >= 1 where a config has them.
POSITIVE_INTEGERS = ("img_size", "channels", "batch_size", "eval_batch_size")
log = logging.getLogger(__name__)
SIMPLE = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
PLURAL = {int: "integers", float: "numbers", bool: "booleans", str: "strings"}


class ConfigError(ValueError):
    """A configuration value that cannot work, named by its key."""


def check_config(cfg: DictConfig) -> None:
    """Refuse wrong argument types, a negative or NaN α or lr, sizes below 1 and sizes that
    cannot fit in memory."""
    for key, value in OmegaConf.to_container(cfg, resolve=False).items():
        if key != "hydra" and isinstance(value, dict):  # resolve nodes only: run_name needs Hydra
            node = OmegaConf.to_container(cfg[key], resolve=True, throw_on_missing=True)
            check_targets(str(key), node)
    check_numbers(cfg)
    check_memory(cfg)


#: An interpolation's node reference: ``${a.b}`` or ``${oc.select:a.b,default}``.
REFERENCE = re.compile(r"\$\{\s*(?:oc\.select:\s*)?([A-Za-z_][\w.]*)\s*[},]")


def check_added_keys(cfg: DictConfig) -> None:
    """Refuse a ``+key=value`` override that no config node reads (a typo such as
    ``+optim.lrr`` would train the defaults), naming the nearest existing key.

    A key is read when an interpolation refers to it or to a node above it, or when it lies
    under a ``_target_`` node (whose arguments :func:`check_arguments` checks). Call it before
    the config is resolved: resolving removes the interpolations.
    """
    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    raw = OmegaConf.to_container(cfg, resolve=False)
    trees = (raw, OmegaConf.to_container(hydra_cfg, resolve=False))
    texts = [value for tree in trees for _, value in leaves(tree) if isinstance(value, str)]
    read = {key for text in texts for key in REFERENCE.findall(text)}
    for override in OverridesParser.create().parse_overrides(list(hydra_cfg.overrides.task)):
        key = override.key_or_group
        if (override.is_add() or override.is_force_add()) and not is_read(raw, key, read):
            raise ConfigError(
                f"+{key}: no config node reads {key}, so it would change nothing{nearest(raw, key)}"
            )


def is_read(raw: dict, key: str, read: set[str]) -> bool:
    """Whether dotted ``key`` is no value of ``raw`` (e.g. a group: +noise=...), is referenced
    (itself or a node above it) by an interpolation, or lies under a ``_target_`` node."""
    parts, node = key.split("."), raw
    for depth, part in enumerate(parts, 1):
        if not isinstance(node, dict) or part not in node:
            return True
        if "_target_" in node or ".".join(parts[:depth]) in read:
            return True
        node = node[part]
    return False


def nearest(raw: dict, key: str) -> str:
    """ " (did you mean optim.lr?)": the closest other key beside ``key``, or "" if none is."""
    parent, _, name = key.rpartition(".")
    node = raw
    for part in parent.split(".") if parent else []:
        node = node[part]
    match = difflib.get_close_matches(name, [k for k in node if k != name], n=1)
    return f" (did you mean {parent + '.' if parent else ''}{match[0]}?)" if match else ""


def check_targets(path: str, value: object) -> None:
    """Check the arguments of every ``_target_`` node at or below ``path``."""
    if isinstance(value, dict):
        if value.get("_partial_") is True:
            raise ConfigError(
                f"{path}._partial_=true: eilab builds {path} as an object, not as a partial "
                "function; remove _partial_"
            )
        if "_target_" in value:
            check_arguments(path, value)
        for key, item in value.items():
            check_targets(f"{path}.{key}", item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_targets(f"{path}[{index}]", item)


def locate(node: dict) -> Callable | None:
    """The callable a node's ``_target_`` names, or None (instantiate then names the error).

    Locating imports the target's module, so only the packages eilab's configs use are looked
    up: a config from elsewhere cannot make this check import arbitrary code.
    """
    target = node["_target_"]
    if not isinstance(target, str) or target.split(".")[0] not in TRUSTED_PACKAGES:
        return None
    try:
        return _locate(target)
    except ImportError:
        return None


def check_arguments(path: str, node: dict) -> None:
    """Refuse keys the target does not take and values that do not fit its type hints."""
    target = locate(node)
    if target is None:
        return
    try:
        parameters = inspect.signature(target).parameters
        hints = typing.get_type_hints(target.__init__ if inspect.isclass(target) else target)
    except (NameError, TypeError, ValueError):  # no readable signature: nothing to check
        return
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    for key, value in node.items():
        if key in HYDRA_KEYS:
            continue
        if key not in parameters and not takes_any:
            raise ConfigError(
                f"{path}.{key} is not an argument of {node['_target_']} "
                f"(it takes {', '.join(parameters)})"
            )
        if key in hints and not fits(value, hints[key]):
            raise ConfigError(f"{path}.{key} must be {describe(hints[key])}, got {value!r}")


def fits(value: object, hint: object) -> bool:
    """Whether a config value fits a simple annotation; annotations not understood pass."""
    if isinstance(value, dict) and "_target_" in value:
        return True  # an object built by instantiate: its own node is checked
    if hint is type(None):
        return value is None
    if hint in (int, float) and isinstance(value, bool):
        return False
    if hint is float:
        return isinstance(value, int | float)
    if hint in SIMPLE:
        return isinstance(value, hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, arg) for arg in args)
    if origin in (tuple, list, Sequence):
        if not isinstance(value, list | tuple):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(map(fits, value, args))
        return all(fits(item, args[0]) for item in value) if args else True
    if inspect.isclass(hint):  # e.g. nn.Module: only a node with _target_ builds one
        return isinstance(value, hint) or (isinstance(value, str) and issubclass(hint, PathLike))
    return True  # Literal, Callable, type variables...: the callable itself judges those


def describe(hint: object) -> str:
    """An annotation in words: ``int | None`` -> 'an integer or null'."""
    if hint is type(None):
        return "null"
    if hint in SIMPLE:
        return SIMPLE[hint]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(arg) for arg in sorted(args, key=lambda a: a is type(None)))
    if origin in (tuple, list, Sequence) and args:
        if origin is tuple and args[-1] is not Ellipsis:
            return f"a list of {len(args)} {PLURAL.get(args[0], 'values')}"
        return f"a list of {PLURAL.get(args[0], 'values')}"
    if inspect.isclass(hint):
        return f"a {hint.__name__} (a node with _target_)"
    return str(hint)


def check_numbers(cfg: DictConfig) -> None:
    """α and the learning rate finite numbers >= 0 (a negative α rewards breaking EI; lr = 0
    is a warning: nothing would train), and the image size and channels integers >= 1."""
    for key in ("equivariance.alpha", "optim.lr"):
        value = OmegaConf.select(cfg, key)
        if value is not None and not (fits(value, float) and math.isfinite(value) and value >= 0):
            raise ConfigError(f"{key} must be a number >= 0, got {value!r}")
    if OmegaConf.select(cfg, "optim.lr") == 0:
        log.warning("optim.lr=0: the network's weights will not change")
    for key in POSITIVE_INTEGERS:
        value = cfg.get(key)
        if value is not None and not (fits(value, int) and value >= 1):
            raise ConfigError(f"{key} must be an integer >= 1, got {value!r}")


# --- memory --------------------------------------------------------------------------------


def available_bytes() -> int:
    """Memory free for a new process: MemAvailable, capped by a cgroup v2 limit if there is one."""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        fields = dict(line.split(":", 1) for line in meminfo.read_text().splitlines())
        free = int(fields["MemAvailable"].split()[0]) * 1024
    else:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    limit, used = Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")
    if limit.exists() and used.exists() and limit.read_text().strip() != "max":
        free = min(free, int(limit.read_text()) - int(used.read_text()))
    return free


def require_memory(needed: float, what: str) -> None:
    """Refuse ``what`` if it needs more bytes than this machine has available."""
    available = available_bytes()
    if needed > available:
        raise ConfigError(
            f"{what} needs about {needed / GB:.1f} GB, this machine has "
            f"{available / GB:.1f} GB available"
        )


def with_defaults(target: Callable, node: dict) -> dict:
    """The node's arguments over the target's defaults."""
    parameters = inspect.signature(target).parameters.items()
    defaults = {k: p.default for k, p in parameters if p.default is not p.empty}
    return defaults | {k: v for k, v in node.items() if k not in HYDRA_KEYS}


def pixels(img_size: int | Sequence[int]) -> int:
    """H·W of an ``int`` or ``(H, W)`` size."""
    return img_size**2 if isinstance(img_size, int) else math.prod(img_size)


# Peak bytes while building each operator, measured with ru_maxrss on CPU: CT's sparse Radon
# matrices 280-520 bytes per pixel and view at 64²-128² with 50-100 views (67 once built);
# compressed sensing about 6 float64 m × n matrices (Φ, its SVD, Φ⁺, float32 copies);
# inpainting a float32 mask and an int64 permutation per pixel; MRI a float32 mask.
OPERATOR_BYTES: dict[type, Callable[[dict], float]] = {
    CT: lambda a: 455 * a["img_size"] ** 2 * a["n_views"],
    CompressedSensing: lambda a: 6 * 8 * a["m"] * math.prod(a["img_shape"]),
    Inpainting: lambda a: 12 * pixels(a["img_size"]),
    MRI: lambda a: 4 * pixels(a["img_size"]),
}


def physics_bytes(physics: dict) -> float:
    """Peak bytes of building the configured operator (0 for operators not listed above)."""
    target = locate(physics)
    estimate = OPERATOR_BYTES.get(target)
    return estimate(with_defaults(target, physics)) if estimate else 0.0


def dataset_bytes(dataset: dict) -> float:
    """float32 bytes of the dataset images, where the config gives their count and size."""
    counts = [dataset.get(key) for key in ("n_train", "n_val", "n_test")]
    if "img_size" not in dataset or not all(isinstance(c, int) for c in counts):
        return 0.0
    return 4.0 * sum(counts) * dataset.get("channels", 1) * pixels(dataset["img_size"])


def check_memory(cfg: DictConfig) -> None:
    """Refuse a run whose dataset images and operator alone exceed the available memory."""
    parts = {
        "the dataset images": dataset_bytes(resolved(cfg, "dataset")),
        "the physics operator": physics_bytes(resolved(cfg, "physics")),
    }
    needed = sum(parts.values())
    detail = ", ".join(f"{name} {size / GB:.1f} GB" for name, size in parts.items() if size)
    require_memory(needed, f"img_size={OmegaConf.select(cfg, 'img_size')} ({detail})")


def resolved(cfg: DictConfig, key: str) -> dict:
    """A top-level node as a resolved dict, empty if the config has none."""
    node = cfg.get(key)
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_dict(node) else {}
