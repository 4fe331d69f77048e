"""check_config refuses a config that cannot work, by key, before anything is built."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import eilab
from eilab import preflight
from eilab.preflight import ConfigError, check_config

CONF = Path(eilab.__file__).parent / "conf"
GB = 1e9


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["physics.n_views=abc"], "physics.n_views must be an integer, got 'abc'"),
        (["physics.n_views=2.5"], "physics.n_views must be an integer, got 2.5"),
        (["physics=cs", "physics.m=true"], "physics.m must be an integer, got True"),
        (["physics=inpainting", "physics.drop_rate=abc"], "physics.drop_rate must be a number"),
        (["physics=inpainting", "physics.img_size=[4,x]"], "an integer or a list of 2 integers"),
        (["physics.filter_name=1"], "physics.filter_name must be a string, got 1"),
        (["equivariance.n_trans=many"], "strategy.n_trans must be an integer, got 'many'"),
        (
            ["physics.noise=3"],
            "physics.noise must be a Module (a node with _target_) or null, got 3",
        ),
        (["+physics.n_view=3"], "physics.n_view is not an argument of eilab.physics.CT"),
        (["+physics._partial_=true"], "physics._partial_=true: eilab builds physics as an obj"),
        (["+group._partial_=true"], "group._partial_=true: eilab builds group as an object"),
        (["equivariance.alpha=-1"], "equivariance.alpha must be a number >= 0, got -1"),
        (["equivariance.alpha=nan"], "equivariance.alpha must be a number >= 0, got nan"),
        (["optim.lr=-1e-3"], "optim.lr must be a number >= 0, got -0.001"),
        (["channels=0"], "channels must be an integer >= 1, got 0"),
        (["img_size=-4"], "img_size must be an integer >= 1, got -4"),
    ],
)
def test_wrong_values_are_named_by_key(overrides, message, compose_train):
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_config(compose_train(*overrides))


def test_a_zero_learning_rate_is_a_warning(compose_train, caplog):
    check_config(compose_train("optim.lr=0"))
    assert "optim.lr=0: the network's weights will not change" in caplog.text


def test_ints_pass_for_floats_and_zero_alpha_is_allowed(compose_train):
    check_config(compose_train("physics=mri", "physics.acceleration=4"))
    check_config(compose_train("equivariance.alpha=0"))


GROUPS = ("physics", "group", "model", "dataset", "strategy", "trainer", "logger", "callbacks")
GROUPS += ("debug", "experiment")
FILES = {"images": "root", "urban100": "root", "dicom": "root", "ct100": "path"}


def every_shipped_option() -> list[list[str]]:
    """One override per yaml of every config group (with a path where a dataset needs one)."""
    cases = []
    for group in GROUPS:
        for option in sorted(p.stem for p in (CONF / group).glob("*.yaml")):
            given = [f"dataset.{FILES[option]}=/data"] if option in FILES else []
            cases.append([f"{group}={option}", *given])
    return cases


def test_every_shipped_config_passes(compose_train):
    for overrides in every_shipped_option():
        check_config(compose_train(*overrides))


def test_absurd_image_size_is_refused_with_the_estimate(compose_train):
    with pytest.raises(ConfigError) as error:
        check_config(compose_train("img_size=100000"))
    message = str(error.value)
    assert "the dataset images 4400.0 GB" in message  # 110 ellipse images of 10⁵ × 10⁵ float32
    assert "the physics operator 227500.0 GB" in message  # CT: 455 bytes × N² × 50 views
    assert "this machine has" in message and "GB available" in message


@pytest.mark.parametrize(
    ("overrides", "needed_gb"),
    [
        (["img_size=256"], 1.49 + 0.03),  # CT 455 × 256² × 50 + 110 images of 256²
        (["physics=cs", "physics.m=2000", "img_size=128"], 1.57 + 0.01),  # 6 × 8 × m × n
        (["physics=inpainting", "img_size=8192"], 0.81 + 29.5),  # 12 B/pixel + 110 images
    ],
)
def test_memory_estimate_against_what_is_available(
    overrides, needed_gb, compose_train, monkeypatch
):
    cfg = compose_train(*overrides)
    monkeypatch.setattr(preflight, "available_bytes", lambda: int(1.01 * needed_gb * GB))
    check_config(cfg)
    monkeypatch.setattr(preflight, "available_bytes", lambda: int(0.99 * needed_gb * GB))
    with pytest.raises(ConfigError, match=rf"needs about {needed_gb:.1f} GB, this machine has"):
        check_config(cfg)


def test_available_memory_is_read_from_the_system():
    total = next(
        int(line.split()[1]) * 1024
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    assert 0 < preflight.available_bytes() <= total


def test_targets_outside_eilab_lightning_torch_are_not_imported(tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "stranger_module.py").write_text(f"open({str(marker)!r}, 'w').close()\nx = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    preflight.check_targets("model", {"_target_": "stranger_module.x", "width": "abc"})
    assert not marker.exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+optim.lrr=1e-3", "+optim.lrr: no config node reads optim.lrr, so it would change "),
        ("+equivariance.alphaa=10", "(did you mean equivariance.alpha?)"),
        ("+batchsize=4", "(did you mean batch_size?)"),
    ],
)
def test_an_added_key_that_nothing_reads_is_refused_naming_the_nearest(
    override, message, compose_train
):
    with pytest.raises(ConfigError, match=re.escape(message)):
        preflight.check_added_keys(compose_train(override))


@pytest.mark.parametrize(
    "overrides",
    [
        ["+callbacks.extra._target_=eilab.callbacks.EpochTimer"],  # a _target_ node: its own check
        ["+trainer.max_time=00:00:01:00"],
        ["++optim.lr=1e-3"],  # an existing key, read by the strategies
        ["+tag=mine", "run_name=${tag}"],  # read by an interpolation
    ],
)
def test_added_keys_that_something_reads_pass(overrides, compose_train):
    preflight.check_added_keys(compose_train(*overrides))
