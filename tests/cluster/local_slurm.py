"""Starting tools/local_slurm.sh from a test: where it is, and waiting for its idle node."""

import os
import subprocess
import time
from pathlib import Path
from typing import TextIO

import pytest

ROOT = Path(__file__).parents[2]
SCRIPT = ROOT / "tools" / "local_slurm.sh"
CANNOT_START = 3  # tools/local_slurm.sh's exit status where Slurm cannot start


def wait_until_ready(
    process: subprocess.Popen, ready: Path, output: TextIO, timeout_s: float = 60
) -> None:
    """Wait for the script to write ``ready``, or to exit (then skip or fail, saying why, from
    its ``output``; EILAB_REQUIRE_SLURM=1, as .ci/run sets, makes "cannot start" a failure)."""
    deadline = time.monotonic() + timeout_s
    while not ready.exists():
        if process.poll() is not None:
            output.seek(0)
            said = output.read()
            if process.returncode == CANNOT_START and not os.environ.get("EILAB_REQUIRE_SLURM"):
                pytest.skip(said.strip().splitlines()[-1])
            pytest.fail(f"{SCRIPT} exited with {process.returncode}:\n{said}")
        if time.monotonic() > deadline:
            pytest.fail(f"{SCRIPT}: no idle node after {timeout_s} s")
        time.sleep(0.1)
