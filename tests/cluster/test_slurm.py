"""eilab-train through hydra/launcher=slurm on a real single-node Slurm (tools/local_slurm.sh):
a sweep, a 2-task DDP job, a failed job, and a job that Slurm signals, requeues and resumes."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
from local_slurm import SCRIPT

from eilab.report import read_log

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("slurm")]
#: What the tests give the launcher: the partition tools/local_slurm.sh makes, and memory.
SITE = ["hydra/launcher=slurm", "hydra.launcher.partition=debug", "hydra.launcher.mem_gb=1"]


def sweep(*overrides: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    """Start ``eilab-train -m`` through the Slurm launcher, its sweep in ``cwd/sweep``."""
    command = [sys.executable, "-m", "eilab.train", "-m", *SITE, "hydra.sweep.dir=sweep"]
    return subprocess.Popen(
        [*command, *overrides],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(process: subprocess.Popen) -> tuple[int, str]:
    """The sweep's exit status and its stderr."""
    _, stderr = process.communicate(timeout=300)
    return process.returncode, stderr


def test_local_slurm_runs_a_command_and_stops_every_daemon_it_started(tmp_path, slurm):
    state = Path(tempfile.mkdtemp(prefix="eilab-slurm-"))  # munged must reach it: not tmp_path
    command = ["sh", "-c", 'sinfo -h -o %t; srun -n 2 echo task; cat "$0"/*.pid "$0"/*/*.pid']
    done = subprocess.run(
        [SCRIPT, state, *command, str(state)], capture_output=True, text=True, timeout=120
    )
    shutil.rmtree(state)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split()
    assert lines[:3] == ["idle", "task", "task"]
    pids = [int(pid) for pid in lines[3:]]
    assert len(pids) == 3  # slurmctld, slurmd and munged
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists(), f"daemon {pid} still running"


def test_a_sweep_of_two_strategies_completes_as_one_array_job(tmp_path, slurm):
    code, stderr = finished(sweep("debug=fast", "strategy=mc,ei", cwd=tmp_path, env=slurm))
    assert code == 0, stderr[-3000:]
    runs = sorted((tmp_path / "sweep").glob("*/metrics.json"))
    assert [run.parent.name for run in runs] == ["0_mc-ct-rotate", "1_ei-ct-rotate"]
    (script,) = (tmp_path / "sweep" / ".submitit").glob("*/*_submission.sh")
    asked = script.read_text()
    assert "--array=0-1" in asked and "--cpus-per-task=1" in asked
    assert "--ntasks-per-node=1" in asked and "gpus" not in asked


def test_a_ddp_job_runs_two_ranks_as_two_slurm_tasks(tmp_path, slurm):
    ddp = ["debug=fast", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]
    code, stderr = finished(sweep(*ddp, cwd=tmp_path, env=slurm))
    assert code == 0, stderr[-3000:]
    assert (tmp_path / "sweep" / "0_ei-ct-rotate" / "metrics.json").is_file()
    logs = sorted((tmp_path / "sweep" / ".submitit").glob("*/*_log.err"))
    assert len(logs) == 2  # one per task
    for rank, log in enumerate(logs):
        assert f"GLOBAL_RANK: {rank}, MEMBER: {rank + 1}/2" in log.read_text()
    assert "--ntasks-per-node=2" in next((tmp_path / "sweep").glob(".submitit/*/*.sh")).read_text()


def test_a_failed_job_is_reported_with_its_log_and_a_non_zero_exit(tmp_path, slurm):
    code, stderr = finished(sweep("debug=fast", "equivariance.alpha=-1", cwd=tmp_path, env=slurm))
    assert code != 0
    assert "equivariance.alpha must be a number >= 0, got -1" in stderr
    log = Path(stderr.split("its log: ")[1].split()[0])
    assert log.parent.parent == tmp_path / "sweep" / ".submitit"
    assert "equivariance.alpha must be a number >= 0" in log.read_text()


def log_tails(sweep_dir: Path, lines: int = 15) -> str:
    """The last lines of every job log of a sweep, for a failure message."""
    logs = sorted((sweep_dir / ".submitit").glob("*/*_log.*"))
    return "".join(
        f"--- {log.name}\n" + "\n".join(log.read_text().splitlines()[-lines:]) + "\n"
        for log in logs
    )


class RequeuedJobLostError(AssertionError):
    """Slurm's queue stayed empty while the sweep still waited for a job (seen with the local
    Slurm 22.05 under load: the requeued job left the queue without running again)."""


#: How long an empty queue under a running sweep means the requeued job is lost.
LOST_AFTER_S = 60


def finish_releasing_held_jobs(
    sweeping: subprocess.Popen, env: dict[str, str], sweep_dir: Path, timeout_s: float = 300
) -> tuple[bool, int, str]:
    """Wait for the sweep to end, starting at once every job Slurm holds after a requeue
    (about 2 min, reason BeginTime), each time it is held: an update that comes before Slurm
    sets its hold is undone by it. Whether a job was released, the exit status, stderr. On a
    timeout the message holds Slurm's queue and the tails of the jobs' logs."""
    deadline, released, empty_since = time.monotonic() + timeout_s, False, None
    while True:
        try:  # communicate() keeps reading the pipes, so the sweep never blocks on them
            _, stderr = sweeping.communicate(timeout=0.5)
            return released, sweeping.returncode, stderr
        except subprocess.TimeoutExpired:
            if time.monotonic() > deadline:
                sweeping.kill()
                queue = ["squeue", "-h", "-o", "%i %T %r %S"]
                jobs = subprocess.run(queue, env=env, capture_output=True, text=True).stdout
                message = (
                    f"sweep still running after {timeout_s} s; jobs:\n{jobs}\n"
                    f"job logs:\n{log_tails(sweep_dir)}"
                )
                raise AssertionError(message) from None
        queue = ["squeue", "-h", "-o", "%i %T %r"]
        jobs = subprocess.run(queue, env=env, capture_output=True, text=True).stdout
        empty_since = (empty_since or time.monotonic()) if not jobs.strip() else None
        if empty_since is not None and time.monotonic() - empty_since > LOST_AFTER_S:
            sweeping.kill()
            sweeping.communicate()
            message = f"Slurm's queue empty for {LOST_AFTER_S} s under a running sweep"
            raise RequeuedJobLostError(f"{message}; job logs:\n{log_tails(sweep_dir)}")
        pending = "\n".join(line for line in jobs.splitlines() if " PENDING " in line)
        for job in (line.split()[0] for line in pending.splitlines() if line.endswith("BeginTime")):
            update = ["scontrol", "update", f"JobId={job}", "StartTime=now"]
            released |= subprocess.run(update, env=env).returncode == 0


def test_a_signalled_job_is_requeued_and_resumes_to_the_uninterrupted_result(tmp_path, slurm):
    env = {**slurm, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    signal = ["+callbacks.signal._target_=signal_job.SignalAfterEpoch"]
    common = ["debug=fast", "strategy=ei", "trainer.max_epochs=4", *signal]
    for attempt in (1, 2):  # a second sweep only if Slurm lost the first one's requeued job
        folder = tmp_path / f"attempt_{attempt}"
        folder.mkdir()
        sweeping = sweep(*common, "+callbacks.signal.epoch=1,99", cwd=folder, env=env)
        try:
            released, code, stderr = finish_releasing_held_jobs(sweeping, env, folder / "sweep")
            break
        except RequeuedJobLostError:
            if attempt == 2:
                raise
    assert released and code == 0, stderr[-3000:]
    signalled, uninterrupted = (
        folder / "sweep" / "0_ei-ct-rotate",
        folder / "sweep" / "1_ei-ct-rotate",
    )
    starts = [json.loads(line) for line in (signalled / "runs.jsonl").read_text().splitlines()]
    starts = [entry for entry in starts if entry["event"] == "start"]
    assert [entry["resume_from"] for entry in starts] == [
        None,
        str(signalled / "checkpoints" / "last.ckpt"),
    ]
    expected = torch.load(uninterrupted / "checkpoints" / "last.ckpt", weights_only=True)
    actual = torch.load(signalled / "checkpoints" / "last.ckpt", weights_only=True)
    for key, value in expected["state_dict"].items():
        assert torch.equal(value, actual["state_dict"][key]), key
    metrics = [json.loads((run / "metrics.json").read_text()) for run in (uninterrupted, signalled)]
    # Allowed to differ: the wall time, and the best validation value: last.ckpt is written at
    # the end of a training epoch, before that epoch's validation, so a resumed run never
    # learns the validation value of the epoch it resumes after (epoch 1's is the best here).
    for run in metrics:
        assert run.pop("time/wall_s") > 0 and run.pop("best_val/cycle") > 0
    assert metrics[0] == metrics[1]
    attempt_log = next((signalled / "logs").glob("attempt-*/metrics.csv"))
    rows = read_log(signalled / "logs" / "metrics.csv") + read_log(attempt_log)
    assert rows_by_epoch(rows) == rows_by_epoch(read_log(uninterrupted / "logs" / "metrics.csv"))


def rows_by_epoch(rows: list[dict[str, float]]) -> dict[int, dict[str, float]]:
    """Each epoch's logged values but the epoch time (NaN-free, so they compare)."""
    merged: dict[int, dict[str, float]] = {}
    for row in rows:
        values = {k: v for k, v in row.items() if v == v and k != "train/epoch_time_s"}
        merged.setdefault(int(row["epoch"]), {}).update(values)
    return merged
