"""What ``hydra/launcher=slurm`` asks Slurm for, and how a requeued job continues its run.

The launcher config (conf/hydra/launcher/slurm.yaml) takes its GPUs, tasks and CPUs from the
run's trainer through the resolvers below (registered by eilab.train). A job that Slurm requeues
(preempted, or signalled before its time limit: submitit then requeues it) runs the same Hydra
job again in the same run directory; eilab-train then resumes from the run's last checkpoint
(:func:`requeued`); a failed run's error names the job's log (:func:`naming_log`).
"""

from __future__ import annotations

import contextlib
import os
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omegaconf import ListConfig

from eilab import rundir


def device_count(devices: Any) -> int:
    """How many devices ``trainer.devices`` names on each node (a count, or a list of ids)."""
    if isinstance(devices, list | tuple | ListConfig):
        return len(devices)
    if isinstance(devices, int) and devices > 0:
        return devices
    if isinstance(devices, str) and devices.isdigit() and int(devices) > 0:
        return int(devices)
    raise ValueError(
        f"trainer.devices={devices!r}: hydra/launcher=slurm needs a device count or a list of "
        "ids to know what to ask for (or set hydra.launcher.gpus_per_node and tasks_per_node)"
    )


def gpus_per_node(accelerator: str, devices: Any) -> int | None:
    """GPUs to ask for: none (no --gpus-per-node) for a CPU trainer, else one per device."""
    return None if accelerator == "cpu" else device_count(devices)


def tasks_per_node(strategy: str, devices: Any) -> int:
    """Slurm tasks per node: one per device for DDP (Lightning's rank per task), else one."""
    return device_count(devices) if str(strategy).startswith("ddp") else 1


def cpus_per_task(num_workers: int) -> int:
    """CPUs per task: one for the training process and one per data-loader worker."""
    return 1 + int(num_workers)


def restart_count() -> int:
    """How many times Slurm has requeued this job (0 outside Slurm)."""
    return int(os.environ.get("SLURM_RESTART_COUNT") or 0)


def requeued(run_dir: Path) -> bool:
    """Whether this is a requeued Slurm job whose run directory records a last checkpoint."""
    if restart_count() == 0:
        return False
    record = rundir.read_record(Path(run_dir))
    return "last" in record.get("checkpoints", {})


@contextlib.contextmanager
def naming_log() -> Iterator[None]:
    """In a submitit job (Slurm, or hydra/launcher=local), print any error raised inside to the
    job's log and name that log in the error (Hydra shows the error where the sweep was
    launched, without the traceback)."""
    try:
        yield
    except Exception as error:
        executor = os.environ.get("SUBMITIT_EXECUTOR")
        if executor in ("slurm", "local"):
            import submitit

            traceback.print_exc()
            environment = submitit.JobEnvironment()
            error.add_note(
                f"{executor.capitalize()} job {environment.job_id} failed; its log: "
                f"{environment.paths.stderr} (stdout: {environment.paths.stdout})"
            )
        raise
