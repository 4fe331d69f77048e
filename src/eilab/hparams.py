"""Send a run's resolved configuration to every logger, so dashboards can group and filter runs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf


def hydra_choices() -> dict[str, str | None]:
    """The config-group options of the current Hydra run (strategy=ei, physics=ct, ...).

    Hydra keeps them under ``hydra:runtime.choices``, outside the job's config; its own groups
    (``hydra/launcher``, ...) are left out. Empty when no Hydra run is active.
    """
    if not HydraConfig.initialized():
        return {}
    choices = HydraConfig.get().runtime.choices
    return {group: choice for group, choice in choices.items() if "/" not in group}


def flat_config(cfg: DictConfig, choices: Mapping[str, str | None]) -> dict[str, Any]:
    """The chosen options (``strategy: ei``) and every resolved value under a dotted key.

    Dotted keys (``equivariance.alpha``, ``optim.lr``, ``strategy.beta``) read the same in the
    CSV ``hparams.yaml``, TensorBoard's HParams tab and wandb's run table.
    """
    params: dict[str, Any] = dict(choices)
    stack = [("", OmegaConf.to_container(cfg, resolve=True))]
    while stack:
        prefix, node = stack.pop()
        for key, value in node.items():
            if isinstance(value, dict) and value:
                stack.append((f"{prefix}{key}.", value))
            else:
                params[f"{prefix}{key}"] = value
    return dict(sorted(params.items()))


def log_config(
    loggers: Iterable[Logger],
    cfg: DictConfig,
    choices: Mapping[str, str | None] | None = None,
) -> dict[str, Any]:
    """Log the flat configuration as hyper-parameters to each logger; return what was logged.

    ``choices`` defaults to the active Hydra run's (see ``hydra_choices``).
    """
    params = flat_config(cfg, hydra_choices() if choices is None else choices)
    for logger in loggers:
        logger.log_hyperparams(params)
    return params
