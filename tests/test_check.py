"""The eilab-check command composes its config and prints numbers and a verdict."""

import subprocess
import sys

import pytest


def run_check(*overrides: str) -> str:
    command = [sys.executable, "-m", "eilab.check", *overrides]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (("img_size=8",), "necessary condition holds"),
        (("physics=mri", "group=shift", "channels=2", "img_size=8"), "Corollary 1 holds"),
        (("physics=ct", "physics.n_views=4", "group=rotate", "img_size=8"), "rank 64 = n"),
    ],
)
def test_check_prints_a_verdict_from_the_numbers(overrides, expected):
    output = run_check(*overrides)
    assert "rank([A T_g]_g)" in output
    assert expected in output


def test_unknown_key_is_named():
    command = [sys.executable, "-m", "eilab.check", "physics.n_view=3"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode != 0
    assert "n_view" in done.stderr
