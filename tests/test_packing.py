"""eilab.packing: turns in order, each job's process state kept across the others' turns,
errors raised after every job ended, and the sweeps it refuses."""

import logging
import os
import random

import numpy as np
import pytest
import torch

from eilab import packing


def draws(run: packing.PackedRun | None, seed: int, steps: int) -> list[float]:
    """Seed every generator, then draw from each one per step, passing the turn in between."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    os.environ["PL_GLOBAL_SEED"] = str(seed)
    out = []
    for _ in range(steps):
        out += [torch.rand(()).item(), np.random.rand(), random.random()]
        out.append(float(os.environ["PL_GLOBAL_SEED"]))
        if run is not None:
            run.pass_turn()
    return out


def test_jobs_take_turns_and_each_draws_what_it_would_draw_alone():
    order: list[int] = []

    def job(seed: int):
        def run() -> list[float]:
            values = []
            torch.manual_seed(seed)
            for _ in range(3):
                order.append(seed)
                values.append(torch.rand(()).item())
                packing.current_run().pass_turn()
            return values

        return run

    packed = packing.run_packed([job(s) for s in (10, 11, 12)])
    alone = [torch.Generator().manual_seed(s) for s in (10, 11, 12)]
    assert order == [10, 11, 12] * 3
    assert packed == [[torch.rand((), generator=g).item() for _ in range(3)] for g in alone]


def test_every_generator_hydra_config_and_log_handler_is_kept_per_job():
    handlers = [logging.NullHandler(), logging.NullHandler()]

    def job(k: int):
        def run() -> tuple[list[float], logging.Handler]:
            logging.root.handlers[:] = [handlers[k]]
            values = draws(packing.current_run(), seed=k, steps=4)
            return values, logging.root.handlers[0]

        return run

    before = list(logging.root.handlers)
    (values_0, handler_0), (values_1, handler_1) = packing.run_packed([job(0), job(1)])
    assert values_0 == draws(None, seed=0, steps=4)
    assert values_1 == draws(None, seed=1, steps=4)
    assert (handler_0, handler_1) == (handlers[0], handlers[1])
    assert logging.root.handlers == before  # the launching thread's state comes back


def test_a_failing_job_lets_the_others_finish_then_its_error_is_raised():
    finished = []

    def fails():
        packing.current_run().pass_turn()
        raise RuntimeError("job 0 broke")

    def works():
        for _ in range(3):
            packing.current_run().pass_turn()
        finished.append(True)

    with pytest.raises(RuntimeError, match="job 0 broke"):
        packing.run_packed([fails, works])
    assert finished == [True]


def test_outside_a_packed_sweep_no_callbacks_are_added():
    assert packing.current_run() is None
    assert packing.turn_callbacks(progress_bar=True) == []


@pytest.mark.parametrize(
    ("jobs", "named"),
    [
        ([["strategy=mc"], ["strategy=ei"]], "strategy (mc, ei)"),
        ([["img_size=32"], ["img_size=64"]], "img_size"),
        ([["equivariance.n_trans=1"], ["equivariance.n_trans=2"]], "equivariance.n_trans"),
        ([["physics=ct"], ["physics=inpainting"]], "physics"),
        ([["a=1", "+extra=2"], ["a=1"]], "+extra (2, <default>)"),
    ],
)
def test_a_sweep_over_what_cannot_be_shared_is_refused_naming_the_key(jobs, named):
    with pytest.raises(packing.UnpackableSweepError, match="differ in") as refused:
        packing.check_packable(jobs)
    assert named in str(refused.value)


def test_per_run_values_and_shared_overrides_pack():
    packing.check_packable(
        [
            ["experiment=rei_ct", "equivariance.alpha=1", "seed=0", "optim.lr=1e-3"],
            ["experiment=rei_ct", "equivariance.alpha=10", "seed=1", "optim.lr=1e-4"],
        ]
    )


@pytest.mark.parametrize("trainer", [{"devices": 2}, {"devices": "auto"}, {"num_nodes": 2}])
def test_a_job_on_several_devices_is_refused(trainer):
    with pytest.raises(packing.UnpackableSweepError, match=r"trainer\.devices"):
        packing.check_one_device(trainer, "3")
