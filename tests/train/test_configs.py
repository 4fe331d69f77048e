"""Every yaml under conf/ composes, and every experiment instantiates in debug mode."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import open_dict, read_write

import eilab
from eilab.train import build

CONF = Path(eilab.__file__).parent / "conf"
GROUPS = {
    group.name: sorted(p.stem for p in group.glob("*.yaml"))
    for group in sorted(CONF.iterdir())
    if group.is_dir() and not group.name.startswith("_")
}
CHECK_GROUPS = {"physics", "group"}
OPTIONS = [(group, name) for group, names in GROUPS.items() for name in names]


def compose_train(*overrides: str, tmp_path: Path | None = None):
    with initialize_config_module("eilab.conf", version_base="1.3"):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.runtime.output_dir = str(tmp_path or Path.cwd())
    HydraConfig.instance().set_config(cfg)
    return cfg


def test_every_config_group_is_found():
    assert {"physics", "group", "model", "dataset", "strategy", "trainer", "logger"} <= set(GROUPS)
    assert {"ct_table1", "inpainting_table1"} <= set(GROUPS["experiment"])


@pytest.mark.parametrize(("group", "name"), OPTIONS)
def test_every_yaml_composes(group, name, tmp_path):
    overrides = [f"{group}={name}"]
    if group == "physics" and name == "mri":
        overrides.append("channels=2")
    cfg = compose_train(*overrides, tmp_path=tmp_path)
    assert cfg[group] is not None if group not in ("debug", "experiment") else True


@pytest.mark.parametrize("name", GROUPS["experiment"])
@pytest.mark.parametrize("strategy", GROUPS["strategy"])
def test_every_experiment_instantiates_shrunk(name, strategy, tmp_path):
    cfg = compose_train(
        f"experiment={name}", f"strategy={strategy}", "debug=fast", tmp_path=tmp_path
    )
    module, datamodule = build(cfg)
    trainer = instantiate(cfg.trainer)
    assert module.physics is module.reconstructor.physics is datamodule.physics
    assert trainer.max_epochs == 2


@pytest.mark.parametrize(("group", "name"), [(g, n) for g, n in OPTIONS if g in CHECK_GROUPS])
def test_check_composes_every_physics_and_group(group, name):
    with initialize_config_module("eilab.conf", version_base="1.3"):
        cfg = compose("check", overrides=[f"{group}={name}"])
    assert cfg[group]._target_.startswith("eilab.")
