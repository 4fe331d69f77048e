"""eilab-eval reads a run directory as data: no code runs from it, damaged inputs are named."""

import builtins
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

import eilab
from eilab.checkpoints import CorruptCheckpointError, UnsafeCheckpointError, load_checkpoint
from eilab.eval import EVAL_TARGETS, load_measurements, load_run
from eilab.train import build


class Marker:
    """Unpickling this creates ``path``: proof that a loaded file ran code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return builtins.open, (str(self.path), "w")


def saved_run(run_dir: Path, **changes) -> dict:
    """A run directory as eilab-train leaves it (debug=fast MC), with ``changes`` to its config."""
    with initialize_config_module("eilab.conf", version_base="1.3"):
        cfg = compose("train", overrides=["debug=fast", "strategy=mc"])
    config = {**OmegaConf.to_container(cfg, resolve=False), **changes}
    (run_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(config), run_dir / ".hydra" / "config.yaml")
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"")  # replaced where weights matter
    (run_dir / "run.json").write_text(
        json.dumps({"checkpoints": {"last": "checkpoints/last.ckpt"}})
    )
    return config


def routes(tmp_path: Path, marker: Path) -> dict[str, object]:
    """Each way a saved config could run code, as the value of its ``model`` node."""
    evil = tmp_path / "evil.pt"
    torch.save(Marker(marker), evil)
    np.save(tmp_path / "evil.npy", np.array([Marker(marker)], dtype=object), allow_pickle=True)
    hub = tmp_path / "hub"
    hub.mkdir()
    (hub / "hubconf.py").write_text(f"open({str(marker)!r}, 'w').close()\ndef model():\n    pass\n")
    return {
        "torch.load": {"_target_": "torch.load", "f": str(evil), "weights_only": False},
        "torch.hub.load": {
            "_target_": "torch.hub.load",
            "repo_or_dir": str(hub),
            "model": "model",
            "source": "local",
        },
        "cloud_io._load": {
            "_target_": "lightning.fabric.utilities.cloud_io._load",
            "path_or_url": str(evil),
            "weights_only": False,
        },
        "torch.save": {"_target_": "torch.save", "obj": 1, "f": str(marker)},
        "oc.create": "${oc.create:{_target_: numpy.load, file: "
        + str(tmp_path / "evil.npy")
        + ", allow_pickle: true}}",
    }


ROUTES = ["torch.load", "torch.hub.load", "cloud_io._load", "torch.save", "oc.create"]


@pytest.mark.parametrize("route", ROUTES)
def test_each_code_execution_route_is_refused_before_anything_is_built(route, tmp_path):
    marker = tmp_path / "marker"
    saved_run(tmp_path / "run", model=routes(tmp_path, marker)[route])
    with pytest.raises(ValueError, match="is not allowed"):
        load_run(tmp_path / "run", "last", "cpu")
    assert not marker.exists()


def test_a_dataset_from_the_command_line_does_not_lift_the_checks_on_the_run(tmp_path):
    marker = tmp_path / "marker"
    saved_run(tmp_path / "run", dataset=routes(tmp_path, marker)["torch.save"])
    with initialize_config_module("eilab.conf", version_base="1.3"):
        dataset = compose("eval", overrides=["run_dir=run", "dataset=ellipses"]).dataset
    refused = re.escape("dataset._target_ = 'torch.save' is not allowed")
    with pytest.raises(ValueError, match=refused):
        load_run(tmp_path / "run", "last", "cpu", dataset)  # the run's node it would replace
    assert not marker.exists()


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("${oc.env:HOME}", "resolver 'oc.env'"),
        ("${oc.decode:'{_target_: os.system, command: true}'}", "resolver 'oc.decode'"),
        ("\\${oc.create:{_target_: os.system}}", "an interpolation again"),
    ],
)
def test_resolvers_that_read_the_environment_or_build_config_are_refused(value, named, tmp_path):
    saved_run(tmp_path / "run", run_note=value)
    with pytest.raises(ValueError, match=re.escape(named)):
        load_run(tmp_path / "run", "last", "cpu")


def test_every_target_in_the_configs_is_on_the_list_except_what_eval_never_builds():
    """Eval never builds the trainer, loggers, callbacks or Hydra's own nodes (a saved run's
    config.yaml has no ``hydra`` node)."""
    conf = Path(eilab.__file__).parent / "conf"
    train_only = {conf / name for name in ("trainer", "logger", "callbacks", "hydra")}
    targets = {
        target
        for path in conf.rglob("*.yaml")
        if not train_only & set(path.parents)
        for target in re.findall(r"_target_:\s*([\w.]+)", without_hydra_node(path))
    }
    assert len(targets) > 20 and targets <= set(EVAL_TARGETS)
    assert all(target.startswith("eilab.") for target in EVAL_TARGETS)


def without_hydra_node(path: Path) -> str:
    """A config file as YAML text without its top-level ``hydra`` node."""
    content = OmegaConf.to_container(OmegaConf.load(path))
    content.pop("hydra", None)
    return OmegaConf.to_yaml(content)


def write_checkpoint(path: Path, module: torch.nn.Module, epoch: int) -> None:
    torch.save({"state_dict": module.state_dict(), "epoch": epoch}, path)


@pytest.fixture
def run_with_two_lasts(tmp_path) -> tuple[Path, dict]:
    """A run whose later attempt wrote last-v1.ckpt beside an older last.ckpt, and recorded it."""
    run = tmp_path / "run"
    cfg = OmegaConf.create(saved_run(run))
    module, _ = build(cfg)
    write_checkpoint(run / "checkpoints" / "last.ckpt", module, epoch=0)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(1.0)
    write_checkpoint(run / "checkpoints" / "last-v1.ckpt", module, epoch=5)
    (run / "run.json").write_text(json.dumps({"checkpoints": {"last": "checkpoints/last-v1.ckpt"}}))
    return run, module.state_dict()


def test_eval_loads_the_checkpoint_the_run_recorded_not_the_last_name(run_with_two_lasts):
    run, newest = run_with_two_lasts
    module, _, ckpt = load_run(run, "last", "cpu")
    assert ckpt == run / "checkpoints" / "last-v1.ckpt"
    for key, value in module.state_dict().items():
        assert torch.equal(value, newest[key]), key


def test_eval_names_a_truncated_checkpoint(run_with_two_lasts):
    run, _ = run_with_two_lasts
    ckpt = run / "checkpoints" / "last-v1.ckpt"
    os.truncate(ckpt, ckpt.stat().st_size // 2)
    with pytest.raises(RuntimeError, match=re.escape(f"checkpoint {ckpt} is truncated or corrupt")):
        load_run(run, "last", "cpu")


@pytest.mark.parametrize("suffix", [".pt", ".npy"])
def test_measurements_with_nan_or_inf_are_refused_with_the_file_and_the_count(suffix, tmp_path):
    y = torch.zeros(2, 1, 50, 23)
    y[0, 0, 3, :2] = float("nan")
    y[1, 0, 7, 5] = float("inf")
    path = tmp_path / f"y{suffix}"
    torch.save(y, path) if suffix == ".pt" else np.save(path, y.numpy())
    with pytest.raises(ValueError, match=re.escape(f"{path} holds 3 non-finite values")):
        load_measurements(path)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"y": torch.zeros(3)}, "holds a dict, not an array"),
        ([1.0, 2.0], "holds a list, not an array"),
        (torch.zeros(0, 1, 50, 23), "holds no values (shape torch.Size([0, 1, 50, 23]))"),
    ],
)
def test_measurements_that_are_no_array_or_empty_are_named(data, message, tmp_path):
    path = tmp_path / "y.pt"
    torch.save(data, path)
    with pytest.raises(ValueError, match=re.escape(f"measurements file {path} {message}")):
        load_measurements(path)


def test_a_symlinked_eval_folder_is_refused_and_its_target_untouched(tmp_path):
    run, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    saved_run(run)
    elsewhere.mkdir()
    (run / "eval").symlink_to(elsewhere)
    command = [sys.executable, "-m", "eilab.eval", f"run_dir={run}"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert f"UnsafePathError: {run / 'eval'} is a symlink (to {elsewhere})" in done.stderr
    assert list(elsewhere.iterdir()) == []  # no output folder, config, log or image there


def test_a_pickle_as_checkpoint_is_named_unsafe_without_torchs_advice(tmp_path):
    marker, ckpt = tmp_path / "ran", tmp_path / "last.ckpt"
    torch.save({"state_dict": {}, "hook": Marker(marker)}, ckpt)
    with pytest.raises(UnsafeCheckpointError) as error:
        load_checkpoint(ckpt)
    message = str(error.value)
    assert f"checkpoint {ckpt} holds pickled objects besides weights (io.open)" in message
    assert "weights_only" not in message and "truncated" not in message
    assert not marker.exists()


def test_eval_writes_no_identifiability_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EILAB_CACHE", str(tmp_path / "cache"))
    with initialize_config_module("eilab.conf", version_base="1.3"):
        ei = compose("train", overrides=["debug=fast", "strategy=ei"]).strategy
    run = tmp_path / "run"
    saved_run(run, strategy=OmegaConf.to_container(ei), check_identifiability=True)
    with pytest.raises(CorruptCheckpointError):  # the weights are read after the module is built
        load_run(run, "last", "cpu")
    assert not (tmp_path / "cache").exists()
