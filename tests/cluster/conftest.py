"""A single-node Slurm (tools/local_slurm.sh) shared by the `cluster` tests of one session."""

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_slurm import SCRIPT, wait_until_ready


@pytest.fixture(scope="session")
def slurm() -> Iterator[dict[str, str]]:
    """The environment of a process that submits to the local Slurm (SLURM_CONF set), which is
    started once per session and stopped, every daemon, at its end."""
    # munged (user munge) must reach its socket: not below pytest's 0700 tmp folders
    state = Path(tempfile.mkdtemp(prefix="eilab-slurm-"))
    with tempfile.TemporaryFile("w+") as output:
        process = subprocess.Popen([SCRIPT, state], stdout=output, stderr=subprocess.STDOUT)
        try:
            wait_until_ready(process, state / "ready", output)
            yield {**os.environ, "SLURM_CONF": str(state / "slurm.conf")}
        finally:
            process.terminate()
            process.wait(timeout=60)
            shutil.rmtree(state, ignore_errors=True)
