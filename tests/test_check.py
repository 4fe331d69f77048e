"""The eilab-check command composes its config and prints numbers and a verdict."""

import subprocess
import sys

import pytest
from hydra import compose, initialize_config_module

from eilab import check, preflight
from eilab.preflight import ConfigError


def run_check(*overrides: str) -> str:
    command = [sys.executable, "-m", "eilab.check", *overrides]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def compose_check(*overrides: str):
    with initialize_config_module("eilab.conf", version_base="1.3"):
        return compose("check", overrides=list(overrides))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (("img_size=8",), "necessary condition holds"),
        (("physics=mri", "group=shift", "img_size=8"), "Corollary 1 holds"),  # no channels=2
        (("physics=ct", "physics.n_views=4", "group=rotate", "img_size=8"), "rank 64 = n"),
    ],
)
def test_check_prints_a_verdict_from_the_numbers(overrides, expected):
    output = run_check(*overrides)
    assert "rank([A T_g]_g)" in output
    assert expected in output
    assert "'img_size': 8" in output and "${" not in output  # resolved values


def test_unknown_key_is_named():
    command = [sys.executable, "-m", "eilab.check", "physics.n_view=3"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode != 0
    assert "n_view" in done.stderr


def test_physics_mri_alone_analyses_complex_images(capsys):
    cfg = compose_check("physics=mri", "group=shift", "img_size=6")
    assert cfg.channels == 2
    result = check.run(cfg)
    assert result.n == 2 * 6 * 6 and result.range_invariant


def test_analysis_too_large_for_memory_is_refused_with_the_number(monkeypatch, capsys):
    monkeypatch.setattr(preflight, "available_bytes", lambda: 16 * 10**9)
    cfg = compose_check("img_size=256")  # inpainting: n = m = 65536
    with pytest.raises(ConfigError, match=r"n = 65536 .* needs about 378\.0 GB, .* has 16\.0 GB"):
        check.run(cfg)
    assert "rank(A)" not in capsys.readouterr().out


def test_type_errors_are_named_before_building(capsys):
    with pytest.raises(ConfigError, match=r"physics\.n_views must be an integer, got 'abc'"):
        check.run(compose_check("physics=ct", "physics.n_views=abc"))


def test_progress_reports_elements_and_time_left(capsys):
    progress = check.Progress(every=0.0)
    progress(0, 40)
    progress(10, 40)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("SVD of A done after")
    assert lines[1].startswith("group element 10/40, about") and lines[1].endswith("left")
    quiet = check.Progress(every=60.0)
    quiet(0, 40)
    quiet(10, 40)
    assert capsys.readouterr().out == ""  # a short analysis prints nothing extra
    assert [check.duration(s) for s in (42, 210, 32760)] == ["42 s", "3.5 min", "9.1 h"]


def test_zero_channels_are_named_before_building():
    with pytest.raises(ConfigError, match="channels must be an integer >= 1, got 0"):
        check.run(compose_check("channels=0"))
