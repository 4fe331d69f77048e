"""eilab's SURE and REQ agree with deepinv's on the same network, input and probe.

The tests marked ``peer`` import deepinv and run in the bench environment
(``.bench-venv/bin/python -m pytest tests/bench/test_peer_sure.py``); they skip elsewhere.
The others check, in any environment, the tools the cross-check relies on.
"""

import math

import pytest
import torch

from eilab.bench import peer_sure
from eilab.bench.peer_sure import (
    SAME_PROBE_RTOL,
    FixedElements,
    ProbeReplayError,
    Recorder,
    Row,
    check_replay,
    injected_probes,
    problems,
    signs,
    two_point,
)
from eilab.groups.shift import Shift
from eilab.losses import SURELoss


@pytest.fixture(scope="module")
def dinv():
    return pytest.importorskip("deepinv")


@pytest.fixture(scope="module")
def probs():
    return problems()


def test_injected_probes_are_the_ones_eilab_sure_perturbs_y_with(probs):
    prob = probs["pg"]
    first = signs(torch.rand(prob.y.shape, dtype=torch.float64))
    second = two_point(torch.rand(prob.y.shape, dtype=torch.float64), peer_sure.DEEPINV_P)
    model = Recorder(prob.reconstruct)
    with torch.no_grad(), injected_probes(first, second):
        SURELoss(prob.noise, tau=1e-3)(prob.y, model(prob.y), model, prob.physics)
    expected = [prob.y, prob.y + 1e-3 * first, prob.y + 1e-2 * second, prob.y - 1e-2 * second]
    check_replay(model.inputs, expected)
    with pytest.raises(ProbeReplayError):
        check_replay(model.inputs, [prob.y, prob.y - 1e-3 * first, *expected[2:]])


def test_probe_laws_have_the_moments_sure_needs():
    uniform = torch.linspace(0, 1, 100_001, dtype=torch.float64)[:-1]
    b = signs(uniform)
    assert set(b.unique().tolist()) == {-1.0, 1.0} and abs(float(b.mean())) < 1e-4
    p = 0.5 + 0.5 / math.sqrt(5)
    c = two_point(uniform, p)
    moments = [float(c.pow(k).mean()) for k in (1, 2, 3)]
    assert moments == pytest.approx([0.0, 1.0, 1.0], abs=1e-4)


def test_fixed_elements_hand_the_given_shifts_to_eilab_ei():
    params = torch.tensor([[3.0, -2.0], [3.0, -2.0]])
    group = FixedElements(Shift(), params)
    assert torch.equal(group.sample(2, (8, 8)), params)
    x = torch.arange(128.0).view(2, 1, 8, 8)
    assert torch.equal(group.apply(x, params), torch.roll(x, (3, -2), (-2, -1)))
    with pytest.raises(ValueError, match="holds 2"):
        group.sample(3, (8, 8))


def test_row_verdicts():
    same = Row("l", "p", "same", 1.0, 1.0 + 1e-8, grad_rel=1e-9)
    assert same.agrees and same.grads_as_documented
    assert not Row("l", "p", "same", 1.0, 1.0 + 1e-4).agrees
    assert not Row("l", "p", "same", 1.0, 1.0, grad_rel=1e-2).grads_as_documented
    assert Row("l", "p", "same", 1.0, 1.0, grad_rel=1e-2, grads_equal=False).grads_as_documented
    assert Row("l", "p", "own", 1.0, 1.03, stderr=0.01).agrees
    assert not Row("l", "p", "own", 1.0, 1.05, stderr=0.01).agrees


@pytest.mark.parametrize(
    ("kind", "problem", "options"),
    [
        ("gaussian", "gaussian_inpainting", {}),
        ("gaussian", "gaussian_cs", {}),
        ("poisson", "poisson", {}),
        ("pg", "pg", {"second_derivative": True}),
    ],
)
def test_sure_agrees_with_deepinv_on_the_same_probe(dinv, probs, kind, problem, options):
    row = peer_sure.sure_same_probe(dinv, kind, probs[problem], **options)
    assert row.rel_diff <= SAME_PROBE_RTOL and row.grad_rel <= SAME_PROBE_RTOL


def test_req_agrees_with_deepinv_on_the_same_shift_and_noise(dinv, probs):
    gaussian = peer_sure.req_same_draw(dinv, probs["gaussian_inpainting"])
    assert gaussian.rel_diff <= SAME_PROBE_RTOL and gaussian.grad_rel <= SAME_PROBE_RTOL
    poisson = peer_sure.req_same_draw(dinv, probs["poisson"])
    assert poisson.rel_diff <= SAME_PROBE_RTOL
    assert poisson.grad_rel > 0.1  # torch.poisson passes no gradient; eilab's draw does


def test_each_library_with_its_own_probes_agrees_within_monte_carlo_error(dinv, probs):
    for kind, problem in (("gaussian", "gaussian_cs"), ("poisson", "poisson")):
        row = peer_sure.sure_own_probes(dinv, kind, probs[problem], draws=40)
        assert row.stderr > 0 and row.agrees, row


def test_deepinv_inpainting_measurements_bias_sure_by_the_masked_variance(dinv, probs):
    bias = peer_sure.masked_pixel_bias(draws=100)
    prob = probs["gaussian_inpainting"]
    dropped = float(1 - prob.physics.mask.mean())
    for name, expected in (("eilab", 0.0), ("deepinv", -(prob.noise.sigma**2) * dropped)):
        mean, stderr = bias[name]
        assert abs(mean - expected) <= 4 * stderr, (name, mean, expected, stderr)
    assert bias["deepinv"][0] < bias["eilab"][0] - 0.002


def test_bench_suite_sure_reports_every_row_in_agreement(dinv):
    from eilab.bench.__main__ import main

    text = main(["--suite", "sure", "--sure-draws", "10"])
    table = [line for line in text.splitlines() if line.startswith(("| Sure", "| EILoss"))]
    assert len(table) == 12
    assert all("agree" in line and "DIFFER" not in line for line in table)
    assert "Conventions (deepinv 0.5.0)" in text and "masks the noise" in text
