"""A callback that has Slurm signal its job the way it does before the job's time limit."""

import os
import subprocess
import time

import lightning as L


class SignalAfterEpoch(L.Callback):
    """At the start of epoch ``epoch + 1`` of the job's first run (last.ckpt then holds epoch
    ``epoch``), ask Slurm to send the job USR2, as ``--signal=USR2@…`` does, and wait for it."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        first_run = int(os.environ.get("SLURM_RESTART_COUNT") or 0) == 0
        if first_run and trainer.current_epoch == self.epoch + 1:
            subprocess.run(["scancel", "--signal=USR2", os.environ["SLURM_JOB_ID"]], check=True)
            time.sleep(60)  # submitit's handler requeues the job and exits
