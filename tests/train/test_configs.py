"""Every yaml under conf/ composes and resolves, and every experiment builds in debug mode."""

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from omegaconf import OmegaConf

import eilab
from eilab.groups.base import Group
from eilab.physics.base import LinearPhysics
from eilab.train import build

CONF = Path(eilab.__file__).parent / "conf"
GROUPS = {
    group.name: sorted(p.stem for p in group.glob("*.yaml"))
    for group in sorted(CONF.iterdir())
    if group.is_dir() and not group.name.startswith("_")
}
CHECK_GROUPS = {"physics", "group"}
NEEDS_NOISE = {"rei"}  # strategies that stop before training without a noise model
OPTIONS = [(group, name) for group, names in GROUPS.items() for name in names]


def leaves(node: dict, prefix: str = "") -> dict:
    """A nested dict as {dotted.key: value}."""
    flat = {}
    for key, value in node.items():
        if isinstance(value, dict) and value:
            flat.update(leaves(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def own_values(group: str, name: str) -> dict:
    """The values a yaml sets, as dotted keys in the composed config (its defaults list aside)."""
    path = CONF / group / f"{name}.yaml"
    content = OmegaConf.to_container(OmegaConf.load(path))
    content.pop("defaults", None)
    is_global = path.read_text().startswith("# @package _global_")
    return leaves(content if is_global else {group: content})


def test_every_config_group_is_found():
    assert {"physics", "group", "model", "dataset", "strategy", "trainer", "logger"} <= set(GROUPS)
    assert {"ct_table1", "inpainting_table1"} <= set(GROUPS["experiment"])


@pytest.mark.parametrize(("group", "name"), OPTIONS)
def test_every_yaml_composes(group, name, compose_train):
    overrides = [f"{group}={name}"]
    if group == "physics" and name == "mri":
        overrides.append("channels=2")
    cfg = compose_train(*overrides)
    job = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
    OmegaConf.to_container(job, resolve=True)  # every interpolation points at a real key
    composed = leaves(OmegaConf.to_container(job))
    expected = own_values(group, name)
    assert expected, f"{group}/{name}.yaml sets nothing"
    lost = {key: value for key, value in expected.items() if composed.get(key, "<absent>") != value}
    assert not lost, f"{group}={name}: values overridden or dropped in the composed config"


@pytest.mark.parametrize("name", GROUPS["experiment"])
@pytest.mark.parametrize("strategy", GROUPS["strategy"])
def test_every_experiment_instantiates_shrunk(name, strategy, compose_train, request):
    cfg = compose_train(f"experiment={name}", f"strategy={strategy}", "debug=fast")
    if cfg.dataset._target_ == "eilab.data.head_ct.head_ct_splits":
        request.getfixturevalue("real_head_ct")  # skips, saying why, where it cannot be had
    if strategy in NEEDS_NOISE and cfg.physics.noise is None:  # rei_* experiments bring their own
        cfg = compose_train(
            f"experiment={name}",
            f"strategy={strategy}",
            "debug=fast",
            "noise=gaussian",
        )
    module, datamodule = build(cfg)
    instantiate(cfg.trainer)
    assert module.physics is module.reconstructor.physics is datamodule.physics
    # The pieces fit together: A takes the dataset's images, f returns images of that shape.
    x = datamodule.splits.train[:2]
    assert module(module.physics.A(x)).shape == x.shape


@pytest.mark.parametrize("name", GROUPS["experiment"])
def test_debug_fast_validates_every_epoch_of_every_experiment(name, compose_train):
    cfg = compose_train(f"experiment={name}", "debug=fast")
    assert cfg.trainer.check_val_every_n_epoch == 1
    assert cfg.trainer.limit_val_batches == cfg.trainer.limit_test_batches == 1


@pytest.mark.parametrize("strategy", GROUPS["strategy"])
def test_shared_settings_reach_every_strategy(strategy, compose_train):
    cfg = compose_train(
        f"strategy={strategy}",
        *(["noise=gaussian"] if strategy in NEEDS_NOISE else []),
        "debug=fast",
        "optim.lr=0.00123",
        "optim.weight_decay=0.0042",
        "optim.milestones=[3,7]",
        "optim.gamma=0.25",
        "equivariance.alpha=7.5",
        "equivariance.n_trans=3",
    )
    module, _ = build(cfg)
    optim = (module.lr, module.weight_decay, module.milestones, module.gamma)
    assert optim == (0.00123, 0.0042, [3, 7], 0.25)
    if hasattr(module, "ei_loss"):
        assert (module.alpha, module.ei_loss.n_trans) == (7.5, 3)


@pytest.mark.parametrize(("group", "name"), [(g, n) for g, n in OPTIONS if g in CHECK_GROUPS])
def test_check_builds_every_physics_and_group(group, name):
    overrides = [f"{group}={name}", *(["channels=2"] if name == "mri" else [])]
    with initialize_config_module("eilab.conf", version_base="1.3"):
        cfg = compose("check", overrides=overrides)
    x = torch.rand(1, cfg.channels, cfg.img_size, cfg.img_size)
    built = instantiate(cfg[group])
    if group == "physics":
        assert isinstance(built, LinearPhysics)
        assert built.A_adjoint(built.A(x)).shape == x.shape
    else:
        assert isinstance(built, Group)
        assert built.apply(x, built.sample(1, x.shape[-2:])).shape == x.shape


@pytest.mark.parametrize(
    ("strategy", "direction"), [("ei", "minimize"), ("ei_sup", "maximize"), ("sup", "maximize")]
)
def test_the_optuna_sweeper_optimises_in_the_strategys_selection_mode(strategy, direction):
    overrides = ["hydra/sweeper=optuna_alpha", f"strategy={strategy}"]
    with initialize_config_module("eilab.conf", version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    assert cfg.hydra.sweeper.direction == direction
