"""eilab-train: fit a reconstruction strategy and test it, from a Hydra configuration."""

from __future__ import annotations

import json
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from eilab.data import MeasurementDataModule
from eilab.guard import check_group_helps


def build(cfg: DictConfig) -> tuple[L.LightningModule, MeasurementDataModule]:
    """Instantiate everything the run needs; any bad key or value fails here, before training."""
    check_group_helps(cfg)
    physics = instantiate(cfg.physics)
    network = instantiate(cfg.model)
    if cfg.channels_last:
        network = network.to(memory_format=torch.channels_last)
    module = instantiate(cfg.strategy, physics=physics, network=network)
    datamodule = MeasurementDataModule(
        instantiate(cfg.dataset),
        physics,
        batch_size=cfg.batch_size,
        eval_batch_size=cfg.eval_batch_size,
        num_workers=cfg.num_workers,
        noise_seed=cfg.noise_seed,
    )
    return module, datamodule


def train(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    """Fit (resuming from ``cfg.ckpt_path`` if set), test the last weights, write metrics.json."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    module, datamodule = build(cfg)
    loggers = list(instantiate(cfg.logger).values()) if cfg.logger else False
    callbacks = list(instantiate(cfg.callbacks).values()) if cfg.callbacks else []
    trainer = instantiate(
        cfg.trainer, logger=loggers, callbacks=callbacks, default_root_dir=str(run_dir)
    )
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=True)
    results = trainer.test(module, datamodule=datamodule, verbose=False)[0]
    if trainer.is_global_zero:
        (run_dir / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps({"run_dir": str(run_dir), **results}, indent=2))
    return results


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float:
    """Console entry point; returns test PSNR so Hydra sweepers can optimise it."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    OmegaConf.resolve(cfg)
    return train(cfg, run_dir)["test/psnr"]


if __name__ == "__main__":
    main()
