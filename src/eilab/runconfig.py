"""A saved run's YAML (``.hydra/config.yaml``, ``hydra.yaml``) read as data, never as a program.

A run directory may come from anyone. Before a YAML file is loaded its event stream is walked
once: a file over :data:`MAX_BYTES`, nested deeper than :data:`MAX_DEPTH` or expanding (aliases
counted as the nodes they repeat, so a "billion laughs" file is caught before it grows) to more
than :data:`MAX_NODES` nodes is an :class:`UnsafeRunConfigError`. Interpolations are kept
unresolved here; :func:`inert` makes literal text of those that call a resolver outside an
allowed set, so reading a run never reads the environment (``${oc.env:...}``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf, grammar_parser
from omegaconf.errors import GrammarParseError, OmegaConfBaseException
from omegaconf.grammar.gen.OmegaConfGrammarParser import OmegaConfGrammarParser

MAX_BYTES = 1_000_000
MAX_DEPTH = 64
MAX_NODES = 100_000
INTERPOLATION = OmegaConfGrammarParser.InterpolationContext


class RunConfigError(ValueError):
    """A saved run's YAML file cannot be read as a config."""


class UnsafeRunConfigError(RunConfigError):
    """A saved run's config asks for something eilab does not build, resolve or expand."""


def check_yaml(path: Path) -> None:
    """Refuse a YAML file too large, too deep or expanding to too many nodes (module doc)."""
    if path.stat().st_size > MAX_BYTES:
        raise UnsafeRunConfigError(f"{path} is larger than {MAX_BYTES} bytes")
    sizes: dict[str, int] = {}
    stack = [[0, None]]  # per open collection: nodes so far, its anchor
    with open(path, "rb") as handle:
        for event in yaml.parse(handle, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                stack.append([1, event.anchor])
                if len(stack) > MAX_DEPTH:
                    raise UnsafeRunConfigError(f"{path} nests deeper than {MAX_DEPTH} levels")
                continue
            if isinstance(event, yaml.CollectionEndEvent):
                count, anchor = stack.pop()
            elif isinstance(event, yaml.AliasEvent):
                count, anchor = sizes.get(event.anchor, 1), None
            elif isinstance(event, yaml.ScalarEvent):
                count, anchor = 1, event.anchor
            else:
                continue
            if anchor is not None:
                sizes[anchor] = count
            stack[-1][0] += count
            if stack[-1][0] > MAX_NODES:
                raise UnsafeRunConfigError(
                    f"{path} expands to more than {MAX_NODES} nodes (YAML aliases repeat nodes)"
                )


def load_yaml(path: Path) -> DictConfig:
    """A run's YAML mapping, checked (:func:`check_yaml`) and loaded unresolved."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    check_yaml(path)
    try:
        loaded = OmegaConf.load(path)
    except (yaml.YAMLError, OmegaConfBaseException, UnicodeDecodeError) as error:
        raise RunConfigError(f"{path} is not a readable config ({error})") from error
    if not isinstance(loaded, DictConfig):
        raise RunConfigError(f"{path} holds a {type(loaded).__name__}, not a mapping")
    return loaded


def resolvers_in(text: str) -> list[str]:
    """The resolver names an OmegaConf string calls ("?" for a name built by interpolation)."""
    names, stack = [], [grammar_parser.parse(text)]
    while stack:
        node = stack.pop()
        children = getattr(node, "children", None) or []  # none on a terminal symbol
        if isinstance(node, OmegaConfGrammarParser.ResolverNameContext):
            dynamic = any(isinstance(child, INTERPOLATION) for child in children)
            names.append("?" if dynamic else node.getText())
        stack.extend(children)
    return names


def leaves(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, value) of every leaf of nested dicts and lists."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from leaves(value, f"{path}[{index}]")
    else:
        yield path, node


def calls_only(text: str, allowed: tuple[str, ...]) -> bool:
    """Whether an OmegaConf string calls no resolver outside ``allowed`` (and parses)."""
    try:
        return all(name in allowed for name in resolvers_in(text))
    except GrammarParseError:
        return False


def inert(config: DictConfig, allowed: tuple[str, ...] = ("oc.select",)) -> DictConfig:
    """``config`` with every string that calls a resolver outside ``allowed`` made literal
    text (``\\${`` escapes): plain ``${key}`` interpolations still resolve within it."""

    def literal(value: Any) -> Any:
        if isinstance(value, str) and "${" in value and not calls_only(value, allowed):
            return value.replace("${", "\\${")
        return value

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(value) for value in node]
        return literal(node)

    return OmegaConf.create(walk(OmegaConf.to_container(config, resolve=False)))
