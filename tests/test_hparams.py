"""The resolved config reaches every logger's files: CSV hparams.yaml, TensorBoard, wandb."""

import json
from pathlib import Path

import pytest
import yaml
from google.protobuf.json_format import MessageToDict
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import open_dict, read_write
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData
from wandb.proto.wandb_internal_pb2 import Record

from eilab.hparams import flat_config, log_config
from eilab.train import wandb_group

ALPHA = 7.5  # not any config's default, so finding it proves the override travelled


def compose_run(tmp_path: Path, *overrides: str):
    """Compose eilab-train's config as @hydra.main does, with tmp_path as the run directory."""
    with initialize_config_module("eilab.conf", version_base="1.3"):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    with read_write(cfg), open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(tmp_path)
        HydraConfig.instance().set_config(cfg)
        del cfg["hydra"]
    return cfg


def wandb_records(path: Path) -> list[Record]:
    """Decode a .wandb transaction log: a 7-byte header, then 32 KiB blocks of chunked records.

    Each chunk is crc32c (4 bytes), length (2, little-endian), type (1: full, 2: first,
    3: middle, 4: last) and the payload; a block's tail shorter than a chunk header is padding.
    """
    data, block = path.read_bytes(), 32768
    records, pending, pos = [], b"", 7
    while pos + 7 <= len(data):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            records.append(Record.FromString(pending))
            pending = b""
    return records


def tensorboard_hparams(log_dir: Path) -> dict:
    """The hyper-parameters of the HParams plugin's session-start record in an event file."""
    events = EventAccumulator(str(log_dir))
    events.Reload()
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = HParamsPluginData.FromString(content).session_start_info.hparams
    return {key: MessageToDict(value) for key, value in hparams.items()}


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    """wandb offline, with every file it writes kept under tmp_path."""
    for name in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb_home"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


def test_every_logger_records_alpha_and_the_strategy(tmp_path, offline_wandb):
    cfg = compose_run(
        tmp_path,
        "logger=[csv,tensorboard,wandb]",
        "experiment=ct_table1",
        "strategy=ei_adv",
        f"equivariance.alpha={ALPHA}",
    )
    loggers = instantiate(cfg.logger)
    log_config(loggers.values(), cfg)
    loggers["wandb"].experiment.finish()
    loggers["tensorboard"].finalize("success")
    loggers["csv"].finalize("success")

    csv = yaml.safe_load((tmp_path / "logs" / "hparams.yaml").read_text())
    tensorboard = tensorboard_hparams(tmp_path / "tensorboard")
    (wandb_file,) = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    records = wandb_records(wandb_file)
    (run,) = [record.run for record in records if record.HasField("run")]
    items = [item for record in records for item in record.config.update]
    wandb = {item.key: json.loads(item.value_json) for item in [*run.config.update, *items]}

    for logged in (csv, tensorboard, wandb):
        assert logged["equivariance.alpha"] == logged["strategy.alpha"] == ALPHA
        assert logged["strategy"] == "ei_adv"
        assert logged["physics"] == "ct"
        assert logged["group"] == "rotate"
        assert logged["optim.lr"] == pytest.approx(5e-4)
        assert logged["equivariance.n_trans"] == 5
    assert (run.run_group, run.job_type) == ("ct_table1", "ei_adv")


def test_flat_config_puts_choices_and_nested_values_under_dotted_keys(tmp_path):
    cfg = compose_run(tmp_path, "strategy=mc", "physics=inpainting", "group=shift")
    params = flat_config(cfg, {"strategy": "mc", "physics": "inpainting"})
    assert params["strategy"] == "mc"
    assert params["strategy._target_"] == "eilab.strategies.MC"
    assert params["physics.drop_rate"] == 0.3
    assert params["optim.milestones"] == []
    assert params["run_name"] == "mc-inpainting-shift"  # interpolations are resolved


@pytest.mark.parametrize(
    ("mode", "experiment", "group"),
    [
        ("MULTIRUN", None, "2026-01-02_sweep"),
        ("MULTIRUN", "ct_table1", "2026-01-02_sweep"),
        ("RUN", "ct_table1", "ct_table1"),
        ("RUN", None, None),
    ],
)
def test_wandb_groups_the_jobs_of_a_multirun_by_its_sweep(mode, experiment, group, compose_train):
    cfg = compose_train("logger=wandb", *([f"experiment={experiment}"] if experiment else []))
    with read_write(cfg.hydra):
        cfg.hydra.mode = RunMode[mode]
        cfg.hydra.sweep.dir = "outputs/multirun/2026-01-02_sweep"
    HydraConfig.instance().set_config(cfg)
    assert cfg.logger.wandb.group == group
    assert wandb_group(RunMode[mode], cfg.hydra.sweep.dir, experiment) == group
