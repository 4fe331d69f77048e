"""The train suite builds its steps from the train configs, and the timer reports real time."""

import time
from dataclasses import replace

import pytest
import torch

from eilab.bench import compose_train
from eilab.bench.__main__ import main
from eilab.bench.timing import Budget, attempt, measure, require, timed_once
from eilab.bench.train_step import BASELINE, eilab_step, rows, strategy_module, time_row
from eilab.strategies import EI, MC, Sup

TINY = ["img_size=16", "model.widths=[8,16]", "physics.n_views=4", "equivariance.n_trans=3"]


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_measure_reports_median_and_iqr_of_a_known_duration():
    timing = measure(lambda: time.sleep(0.01), Budget(warmup=1, min_time=0.05, max_time=0.5))
    assert 10 <= timing.median_ms < 100
    assert 0 <= timing.iqr_ms < timing.median_ms
    assert timing.first_ms >= 10


def test_first_call_is_the_first_warm_up_call_and_a_build_runs_once():
    """A slow first call (compilation) shows in first_ms and stays out of the median."""
    durations = iter([0.05])
    timing = measure(lambda: time.sleep(next(durations, 0.001)), Budget(2, 0.01, 0.2))
    assert timing.first_ms >= 50 > timing.median_ms
    calls = []
    result, seconds = timed_once(lambda: calls.append(time.sleep(0.01)) or "built")
    assert (result, len(calls)) == ("built", 1) and seconds >= 0.01


def test_a_failing_cell_says_why_and_the_suite_goes_on():
    assert attempt(lambda: 1 / 0) == "failed (ZeroDivisionError: division by zero)"
    assert attempt(lambda: require("eilab_no_such_peer")).startswith("missing (No module named")


def test_rows_follow_the_config_overrides():
    """batch_size 2 and n_trans 3 from the overrides: the network runs at batch 2 and 6."""
    plan = rows(["ei"], TINY, [BASELINE], torch.device("cpu"))
    steps = [(row.step, row.pipeline) for row in plan]
    assert steps[:2] == [
        ("network fwd+bwd, batch 2", "eilab network (no physics)"),
        ("network fwd+bwd, batch 6", "eilab network (no physics)"),
    ]
    assert ("ei", "eilab") in steps and ("ei", "deepinv") in steps


@pytest.mark.parametrize("name, cls", [("mc", MC), ("ei", EI), ("sup", Sup)])
def test_strategies_are_built_from_the_train_config(name, cls):
    """The module is the configured strategy, with the overrides' values and its inputs."""
    cfg = compose_train([*TINY, f"strategy={name}"])
    module, inputs = strategy_module(cfg, BASELINE, torch.device("cpu"))
    assert type(module) is cls
    # y: batch 2, ceil(sqrt(2) 16) = 23 detectors, 4 views; x (Sup only): 16x16 images
    shapes = [(2, 1, 23, 4), (2, 1, 16, 16)][: 2 if name == "sup" else 1]
    assert [tuple(t.shape) for t in inputs] == shapes
    if name == "ei":
        assert module.alpha == 100 and module.ei_loss.n_trans == 3
    assert torch.isfinite(eilab_step(cfg, BASELINE, torch.device("cpu"))())


@pytest.mark.parametrize(
    "overrides, noise",
    [
        ([], "eilab.physics.noise.GaussianNoise"),
        (["noise=poisson"], "eilab.physics.noise.PoissonNoise"),
    ],
)
def test_rei_rows_get_a_noise_model_and_train(overrides, noise):
    """REI needs noise: its rows add noise=gaussian, unless the command names another."""
    plan = rows(["rei"], [*TINY, *overrides], [BASELINE], torch.device("cpu"))
    (eilab_row,) = [row for row in plan if row.step == "rei" and row.pipeline == "eilab"]
    assert [row.pipeline for row in plan if row.step == "rei"] == ["eilab", "deepinv"]
    cfg = eilab_row.build.args[0]
    assert cfg.physics.noise._target_ == noise
    assert torch.isfinite(eilab_row.build()())


def test_train_suite_reports_the_configured_network(tmp_path, restore_threads):
    out = tmp_path / "train.md"
    args = ["--suite", "train", *TINY, "--strategies", "mc"]
    args += ["--min-time", "0", "--max-time", "0.01", "--threads", "1", "--out", str(out)]
    text = main(args)
    assert out.read_text() == text
    # the overrides reach the network: UNet(1, widths 8-16) has 7,209 parameters, the
    # paper-size U-Net of experiment=ct_table1 8,562,881
    assert "eilab.models.UNet (7,209 parameters)" in text
    assert "| network fwd+bwd, batch 6 |" in text and "| mc | eilab | fp32, eager | " in text


def test_packed_rows_step_k_models_and_count_all_their_steps():
    """A 'K packed' row builds K models stepped in turn; its steps / s counts all K steps."""
    plan = rows(["ei"], TINY, [BASELINE], torch.device("cpu"), packed=[3])
    (packed,) = [row for row in plan if row.packed != 1]
    assert (packed.step, packed.packed) == ("ei, 3 packed", 3)
    packed.build()()
    sleepy = replace(packed, build=lambda: lambda: time.sleep(0.01))
    cells = time_row(sleepy, Budget(warmup=1, min_time=0.05, max_time=0.3), torch.device("cpu"))
    milliseconds, rate = cells[3].median_ms, float(cells[4])
    assert rate == pytest.approx(3e3 / milliseconds, rel=1e-2)
