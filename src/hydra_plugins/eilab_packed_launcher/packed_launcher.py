"""``hydra/launcher=packed``: the jobs of a multirun train together in this process, in turns
(eilab.packing). Hydra finds launchers only in the ``hydra_plugins`` package, hence this module;
the config is eilab's ``conf/hydra/launcher/packed.yaml``."""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path

from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

from eilab import packing

log = logging.getLogger(__name__)


class PackedLauncher(Launcher):
    """Checks that the jobs can share one device, then runs them with eilab.packing."""

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.hydra_context, self.task_function, self.config = hydra_context, task_function, config

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        packing.check_packable(job_overrides)
        configs = [
            self._job_config(overrides, initial_job_idx + k)
            for k, overrides in enumerate(job_overrides)
        ]
        for config in configs:
            packing.check_one_device(config.trainer, str(config.hydra.job.num))
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        log.info(f"Packing {len(configs)} jobs into this process")
        for config, overrides in zip(configs, job_overrides, strict=True):
            log.info(f"\t#{config.hydra.job.num} : {' '.join(filter_overrides(overrides))}")
        jobs = [
            functools.partial(
                run_job,
                hydra_context=self.hydra_context,
                task_function=self.task_function,
                config=config,
                job_dir_key="hydra.sweep.dir",
                job_subdir_key="hydra.sweep.subdir",
            )
            for config in configs
        ]
        returns = packing.run_packed(jobs)
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return returns

    def _job_config(self, overrides: Sequence[str], index: int) -> DictConfig:
        config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(config):
            config.hydra.job.id = index
            config.hydra.job.num = index
        return config
