"""Shared fixtures: every device test runs on CPU, and on CUDA when selected and present;
train configs composed as ``eilab-train`` would, with this test's tmp_path as the run directory."""

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict, read_write

CUDA = pytest.param(
    "cuda",
    marks=[
        pytest.mark.gpu,
        pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
    ],
)


@pytest.fixture(params=["cpu", CUDA])
def device(request) -> str:
    return request.param


@pytest.fixture
def compose_train(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose ``train`` with overrides and the Hydra config, its output_dir set to tmp_path."""

    def compose_train_(*overrides: str) -> DictConfig:
        with initialize_config_module("eilab.conf", version_base="1.3"):
            cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
        with read_write(cfg.hydra), open_dict(cfg.hydra):
            cfg.hydra.runtime.output_dir = str(tmp_path)
        HydraConfig.instance().set_config(cfg)
        return cfg

    return compose_train_
