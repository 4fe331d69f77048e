"""Shared fixtures: every device test runs on CPU, and on CUDA when selected and present;
train configs composed as ``eilab-train`` would, with this test's tmp_path as the run directory.
Under pytest-xdist (``make test`` runs ``-n 2``) the workers share the cores instead of each
starting one torch thread per core."""

import os
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


def pytest_configure(config: pytest.Config) -> None:
    """Give each xdist worker, and the eilab processes it starts, its share of the cores.

    Two workers each running one torch thread per core oversubscribe the CPU: OpenMP threads
    then wait on preempted peers (on a loaded 2-core machine, test_sup_overfits_one_batch took
    40 s with two threads and 3.6 s with one).
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        threads = max(1, len(os.sched_getaffinity(0)) // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)  # inherited by subprocesses
        torch.set_num_threads(threads)


@pytest.fixture
def real_head_ct() -> Path:
    """The real head CT's path; the test is skipped, saying why, where it cannot be had
    (`make test` runs `make data` first, which gets it as root on Debian or from the .deb)."""
    from eilab.data.head_ct import find_head_ct

    try:
        return find_head_ct()
    except FileNotFoundError as missing:
        pytest.skip(f"needs the real head CT, which `make data` could not get here: {missing}")


@pytest.fixture(autouse=True)
def seeded_torch() -> None:
    """Every test starts from the same global random state: under xdist a test's initial
    weights would otherwise depend on which tests ran before it in its worker."""
    torch.manual_seed(0)


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
