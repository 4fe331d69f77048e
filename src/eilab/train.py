"""eilab-train: fit a reconstruction strategy and test it, from a Hydra configuration."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig, OmegaConf, open_dict

from eilab import packing, rundir, slurm
from eilab.callbacks import ConfineCheckpointState, StampIdentity, checkpoint_files
from eilab.checkpoints import AtomicCheckpointIO
from eilab.data import MeasurementDataModule
from eilab.guard import check_group_helps
from eilab.hparams import log_config
from eilab.preflight import check_added_keys, check_config

#: Logger targets that delete an existing metrics.csv in their log folder.
CSV_LOGGERS = (
    "lightning.pytorch.loggers.CSVLogger",
    "lightning.pytorch.loggers.csv_logs.CSVLogger",
)


def build(cfg: DictConfig) -> tuple[L.LightningModule, MeasurementDataModule]:
    """Instantiate everything the run needs; any bad key or value fails here, before training."""
    check_group_helps(cfg)
    physics = instantiate(cfg.physics)
    network = instantiate(cfg.model)
    if cfg.channels_last:
        network = network.to(memory_format=torch.channels_last)
    fast_step = cfg.get("fast_step", False)  # runs saved before the key: False
    module = instantiate(cfg.strategy, physics=physics, network=network, fast_step=fast_step)
    datamodule = MeasurementDataModule(
        instantiate(cfg.dataset),
        physics,
        batch_size=cfg.batch_size,
        eval_batch_size=cfg.eval_batch_size,
        num_workers=cfg.num_workers,
        noise_seed=cfg.noise_seed,
        fresh_noise=cfg.get("fresh_noise", False),  # runs saved before the key: False
        resident=fast_step,
    )
    return module, datamodule


def check_trainer(cfg: DictConfig) -> None:
    """Refuse trainer settings that would train nothing, before any work."""
    max_epochs = cfg.trainer.get("max_epochs")
    if isinstance(max_epochs, int) and (max_epochs == 0 or max_epochs < -1):
        raise ValueError(
            f"trainer.max_epochs={max_epochs} trains nothing: give a positive number of epochs "
            "(or -1 with trainer.max_steps)"
        )


def logger_configs(logger: DictConfig, version: str) -> DictConfig:
    """The loggers' configs; a resumed attempt's CSVLogger writes a new version folder
    (``logs/<attempt>/``), because CSVLogger deletes an existing metrics.csv."""
    loggers = copy.deepcopy(logger)
    with open_dict(loggers):
        for node in loggers.values():
            if version and node.get("_target_") in CSV_LOGGERS:
                node.version = version
    return loggers


def make_trainer(cfg: DictConfig, run_dir: Path, attempt: rundir.Attempt) -> L.Trainer:
    """The configured Trainer, with atomic checkpoint saves recorded in run.json, every
    checkpoint stamped with the run's identity and resumed checkpoint paths confined."""
    loggers = (
        list(instantiate(logger_configs(cfg.logger, attempt.log_version)).values())
        if cfg.logger
        else False
    )
    callbacks = list(instantiate(cfg.callbacks).values()) if cfg.callbacks else []
    callbacks += [StampIdentity(rundir.identity(cfg)), ConfineCheckpointState()]
    callbacks += packing.turn_callbacks(cfg.trainer.get("enable_progress_bar", True))
    trainer: L.Trainer | None = None

    def record() -> None:
        rundir.record_checkpoints(attempt, checkpoint_files(trainer))

    trainer = instantiate(
        cfg.trainer,
        logger=loggers,
        callbacks=callbacks,
        default_root_dir=str(run_dir),
        plugins=[AtomicCheckpointIO(after_save=record)],
    )
    return trainer


def best_selection_value(trainer: L.Trainer) -> dict[str, float]:
    """``{"best_<metric>": value}`` of the checkpoint callback that selects a model, if any:
    the value a sweeper optimises (ground-truth-free for self-supervised strategies)."""
    for callback in trainer.checkpoint_callbacks:
        if callback.monitor and callback.best_model_score is not None:
            return {f"best_{callback.monitor}": float(callback.best_model_score)}
    return {}


def finish_wandb_runs(trainer: L.Trainer) -> None:
    """End the run's wandb runs, so the next job of a multirun process starts its own."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.finish()


def hydra_attempt() -> tuple[list[str], str | None]:
    """This attempt's Hydra overrides and the subdirectory holding its saved config."""
    if not HydraConfig.initialized():
        return [], None
    hydra_cfg = HydraConfig.get()
    return list(hydra_cfg.overrides.task), hydra_cfg.output_subdir


def train(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    """Fit (resuming when asked: see conf/train.yaml), test the last weights, write metrics.json.

    ``run_dir`` belongs to this run while it trains (eilab.rundir): an earlier run there is
    resumed only when asked (or when Slurm requeued its job), with the same identity, and
    its files are kept.
    """
    check_config(cfg)
    check_trainer(cfg)
    resume = cfg.resume or slurm.requeued(run_dir)
    with rundir.claim(run_dir, resume, cfg.ckpt_path, rundir.identity(cfg)) as attempt:
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        module, datamodule = build(cfg)
        rundir.record_start(attempt, cfg, *hydra_attempt())
        trainer = make_trainer(cfg, run_dir, attempt)
        log_config(trainer.loggers, cfg)
        began = time.perf_counter()
        trainer.fit(module, datamodule=datamodule, ckpt_path=attempt.resume_from, weights_only=True)
        results = trainer.test(module, datamodule=datamodule, verbose=False)[0]
        results.update(best_selection_value(trainer))
        results["time/wall_s"] = time.perf_counter() - began
        if trainer.is_global_zero:
            rundir.write_json(run_dir / rundir.METRICS_FILE, results)
            rundir.record_end(attempt, results)
            print(json.dumps({"run_dir": str(run_dir), **results}, indent=2))
        finish_wandb_runs(trainer)
    return results


def direction(selection_mode: str) -> str:
    """Resolver: a sweeper's direction ("minimize" / "maximize") for a selection mode."""
    if selection_mode not in ("min", "max"):
        raise ValueError(f"strategy.selection_mode={selection_mode!r}: use min or max")
    return f"{selection_mode}imize"


def wandb_group(mode: object, sweep_dir: str, experiment: str | None) -> str | None:
    """Resolver: the wandb group, the sweep directory's name for the jobs of a multirun (so
    they share one), else the experiment (None without one)."""
    return Path(sweep_dir).name if str(mode).endswith("MULTIRUN") else experiment


OmegaConf.register_new_resolver("eilab.direction", direction, replace=True)
OmegaConf.register_new_resolver("eilab.wandb_group", wandb_group, replace=True)
OmegaConf.register_new_resolver("eilab.slurm_gpus_per_node", slurm.gpus_per_node, replace=True)
OmegaConf.register_new_resolver("eilab.slurm_tasks_per_node", slurm.tasks_per_node, replace=True)
OmegaConf.register_new_resolver("eilab.slurm_cpus_per_task", slurm.cpus_per_task, replace=True)
# Hydra resolves hydra.output_subdir (conf/train.yaml) just before writing the run's config:
# the resolver claims the run directory there, so a refused attempt never touches .hydra/.
OmegaConf.register_new_resolver("eilab.hydra_subdir", rundir.hydra_subdir, replace=True)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Console entry point; returns the best validation value of the strategy's selection
    metric (never a test metric), which Hydra sweepers such as optuna optimise."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    with slurm.naming_log():
        check_added_keys(cfg)
        OmegaConf.resolve(cfg)
        results = train(cfg, run_dir)
    return next((value for key, value in results.items() if key.startswith("best_")), None)


if __name__ == "__main__":
    main()
