"""What hydra/launcher=slurm asks Slurm for, resolved from the run's trainer (eilab.slurm)."""

import pytest
from omegaconf import OmegaConf

import eilab.train  # noqa: F401  (registers the eilab.slurm_* resolvers)
from eilab.slurm import device_count

ASKED = ("nodes", "tasks_per_node", "gpus_per_node", "cpus_per_task", "mem_gb")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ([], (1, 1, None, 1, 16)),
        (["trainer=gpu"], (1, 1, 1, 1, 16)),
        (["trainer=ddp", "trainer.devices=4", "num_workers=3"], (1, 4, 4, 4, 16)),
        (["trainer=ddp", "trainer.accelerator=cpu"], (1, 2, None, 1, 16)),
        (["trainer=ddp", "trainer.num_nodes=2", "trainer.devices=[0,1,2]"], (2, 3, 3, 1, 16)),
        (
            ["trainer=gpu", "hydra.launcher.gpus_per_node=2", "hydra.launcher.mem_gb=64"],
            (1, 1, 2, 1, 64),
        ),
    ],
)
def test_the_slurm_request_follows_the_trainer(overrides, expected, compose_train):
    cfg = compose_train("hydra/launcher=slurm", *overrides)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert tuple(launcher[key] for key in ASKED) == expected


@pytest.mark.parametrize("devices", ["auto", -1, 0])
def test_a_device_count_slurm_cannot_be_asked_for_is_named(devices):
    with pytest.raises(ValueError, match=f"trainer.devices={devices!r}"):
        device_count(devices)
