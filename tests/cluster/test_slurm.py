"""The single-node Slurm of tools/local_slurm.sh."""

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from local_slurm import SCRIPT

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("slurm")]


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
