"""REI on noisy measurements, and the ground-truth-free validation every self-supervised
strategy logs for model selection."""

import math

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from tiny_inpainting import cpu_trainer, quiet_trainer
from torch import nn
from torch.utils.data import DataLoader

from eilab.data import MeasurementDataset
from eilab.groups import Rotate, Shift
from eilab.losses import MissingNoiseError
from eilab.models import UNet
from eilab.physics import (
    CT,
    MRI,
    CompressedSensing,
    GaussianNoise,
    Inpainting,
    PoissonNoise,
    TransmissionNoise,
)
from eilab.strategies import EI, MC, REI, Sup


def small_net(channels: int = 1) -> UNet:
    return UNet(channels, widths=(16, 32), norm="none")


def rei(physics, **kwargs) -> REI:
    return REI(physics, small_net(), Shift(), alpha=1.0, n_trans=2, lr=1e-3, **kwargs)


def test_rei_never_reads_the_ground_truth(noisy_inpainting_problem):
    physics, train_set, _ = noisy_inpainting_problem
    poisoned = MeasurementDataset(train_set.images[:8], physics)
    poisoned.images = torch.full_like(poisoned.images, float("nan"))
    module = rei(physics, unknown_noise=True)
    trainer = quiet_trainer(2)
    trainer.fit(module, DataLoader(poisoned, batch_size=4))
    assert all(torch.isfinite(p).all() for p in module.parameters())
    assert torch.isfinite(trainer.callback_metrics["train/loss"])


def test_rei_loss_drops_on_a_fixed_batch(noisy_inpainting_problem):
    physics, train_set, _ = noisy_inpainting_problem
    torch.manual_seed(0)  # the network's initial weights do not depend on the tests run before
    module = rei(physics)
    y = next(iter(DataLoader(train_set, batch_size=4)))["y"]
    optimizer = torch.optim.Adam(module.reconstructor.parameters(), lr=1e-3)
    losses = []
    for _ in range(60):
        torch.manual_seed(0)  # the same group elements, noise and probes: a fixed objective
        loss = module.training_losses(y)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses[::10]


def test_rei_on_noiseless_physics_is_a_named_error():
    with pytest.raises(MissingNoiseError, match=r"REI.*noise=gaussian"):
        rei(Inpainting(8))


PHYSICS = {
    "ct-transmission": lambda: CT(16, n_views=8, noise=TransmissionNoise(I0=1e4, mu=0.1)),
    "ct-poisson": lambda: CT(16, n_views=8, noise=PoissonNoise(0.1)),
    "inpainting-poisson": lambda: Inpainting(16, noise=PoissonNoise(0.05)),
    "cs-gaussian": lambda: CompressedSensing((1, 16, 16), m=64, noise=GaussianNoise(0.05)),
    "mri-gaussian": lambda: MRI(16, noise=GaussianNoise(0.05)),
}


@pytest.mark.parametrize("name", PHYSICS)
def test_rei_trains_on_every_physics(name):
    physics = PHYSICS[name]()
    channels = 2 if name.startswith("mri") else 1
    module = REI(physics, small_net(channels), Rotate(), alpha=1.0, unknown_noise=True)
    x = torch.rand(2, channels, 16, 16, generator=torch.Generator().manual_seed(0))
    losses = module.training_losses(physics(x, torch.Generator().manual_seed(1)))
    losses["loss"].backward()
    assert set(losses) == {"loss", "sure", "loss_ei", "loss_mc", "noise_scale"}
    assert all(torch.isfinite(value) for value in losses.values())


def test_unknown_noise_level_moves_in_training_and_is_logged(noisy_inpainting_problem):
    physics, train_set, _ = noisy_inpainting_problem
    # A short memory: the first guess is otherwise held until the network removes noise.
    module = rei(physics, unknown_noise=True, noise_init_scale=4.0, noise_momentum=0.5)
    trainer = quiet_trainer(5)
    trainer.fit(module, DataLoader(train_set, batch_size=4))
    assert module.sure_loss.scale != pytest.approx(4.0, rel=0.1)
    assert torch.isfinite(trainer.callback_metrics["train/noise_scale"])  # the epoch's mean


def test_rei_refuses_a_noise_lr_and_builds_from_an_older_config(noisy_inpainting_problem):
    physics = noisy_inpainting_problem[0]
    with pytest.raises(ValueError, match="noise_momentum"):
        rei(physics, unknown_noise=True, noise_lr=0.01)
    assert rei(physics, noise_lr=None).sure_loss.noise is physics.noise


def test_rei_estimates_an_unknown_noise_level_within_10_percent():
    # Compressed sensing (m = 32 of n = 64) of signals on a random 16-dimensional subspace:
    # they fill half the measurement space, where UNSURE's saddle point sits at about twice
    # the noise variance. G is linear (it can represent the best reconstruction), starts as
    # the identity like the residual U-Net, and its step drops 10x after 600 steps: the
    # estimate counts the network's own jitter on the signal as noise. α = 0 (these signals
    # are not shift-invariant). First guess 4x the true variance.
    physics = CompressedSensing((1, 8, 8), m=32, noise=GaussianNoise(0.1))
    generator = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(64, 16, generator=generator))[0]
    network = nn.Sequential(nn.Flatten(), nn.Linear(64, 64, bias=False), nn.Unflatten(1, (1, 8, 8)))
    nn.init.eye_(network[1].weight)
    module = REI(physics, network, Shift(), alpha=0.0, unknown_noise=True, noise_init_scale=4.0)
    optimizer = torch.optim.Adam(module.parameter_groups(), lr=0.01)
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, [600], 0.1)
    scales = []
    for _ in range(900):
        x = (torch.randn(64, 16, generator=generator) @ basis.T).view(64, 1, 8, 8)
        loss = module.training_losses(physics(x, generator))["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        scales.append(module.sure_loss.scale)
    assert sum(scales[-100:]) / 100 == pytest.approx(1.0, rel=0.1)


def validate(module, dataset) -> dict[str, float]:
    loader = DataLoader(dataset, batch_size=8)
    results = cpu_trainer().validate(module, loader, verbose=False)
    return results[0]


@pytest.mark.parametrize("strategy", ["mc", "ei", "rei"])
def test_validation_logs_ground_truth_free_losses_with_the_same_draws(
    strategy, noisy_inpainting_problem
):
    physics, _, val_set = noisy_inpainting_problem
    torch.manual_seed(0)
    if strategy == "mc":
        module = MC(physics, small_net(), group=Shift())
    elif strategy == "ei":
        module = EI(physics, small_net(), Shift(), n_trans=2)
    else:
        module = rei(physics)
    first, second = validate(module, val_set), validate(module, val_set)
    criteria = {"val/sure", "val/equiv", "val/sure_equiv", "val/cycle"}
    assert {"val/loss", "val/loss_mc", *criteria} <= set(first)
    assert first["val/sure_equiv"] == pytest.approx((first["val/sure"] * first["val/equiv"]) ** 0.5)
    if strategy != "mc":
        assert "val/loss_ei" in first
    assert first == second
    # With noise, SURE is not the MC loss: it does not reward reproducing the noise.
    assert first["val/sure"] != pytest.approx(first["val/loss_mc"], rel=0.05)
    # The seeded draws come from a forked random state: training's sequence is untouched.
    y = val_set.measurements[:4]
    state = torch.get_rng_state()
    with torch.no_grad():
        module.ground_truth_free_losses(y, module(y), batch_idx=0)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("strategy", ["mc", "ei", "rei"])
def test_ground_truth_free_criteria_are_computed_without_ground_truth(
    strategy, noisy_inpainting_problem
):
    """NaN ground truth poisons the PSNR, and none of the criteria a user selects with."""
    physics, _, val_set = noisy_inpainting_problem
    poisoned = MeasurementDataset(val_set.images, physics, seed=1)
    poisoned.images = torch.full_like(poisoned.images, float("nan"))
    torch.manual_seed(0)
    group = Shift()
    module = {
        "mc": lambda: MC(physics, small_net(), group=group),
        "ei": lambda: EI(physics, small_net(), group),
        "rei": lambda: rei(physics),
    }[strategy]()
    results = validate(module, poisoned)
    assert math.isnan(results["val/psnr"])
    for key in ("val/sure", "val/equiv", "val/sure_equiv", "val/cycle"):
        assert math.isfinite(results[key]) and results[key] > 0, key


def test_val_equiv_sees_what_f_puts_in_the_null_space(inpainting_problem):
    """Two reconstructors that agree on the measured pixels and differ only on the dropped
    ones (the null space of A) have the same val/sure but not the same val/equiv."""
    physics, _, val_set = inpainting_problem
    module = MC(physics, small_net(), group=Shift())
    y = val_set.measurements[:4]
    with torch.no_grad():
        x_hat = module(y)
        keep_measured = module.ground_truth_free_losses(y, x_hat, 0)
        blind = 1 - physics.mask
        altered = module.ground_truth_free_losses(y, x_hat + blind, 0)
    assert altered["sure"] == pytest.approx(keep_measured["sure"])
    assert altered["equiv"] > 2 * keep_measured["equiv"]


def test_on_noiseless_data_val_sure_is_the_mc_loss(inpainting_problem):
    physics, _, val_set = inpainting_problem
    results = validate(MC(physics, small_net()), val_set)
    assert results["val/sure"] == pytest.approx(results["val/loss_mc"])


def test_supervised_strategies_select_on_psnr_mc_on_sure_and_ei_on_cycle(
    inpainting_problem, noisy_inpainting_problem
):
    physics = inpainting_problem[0]
    mc, sup = MC(physics, small_net()), Sup(physics, small_net())
    assert (mc.selection_metric, mc.selection_mode) == ("val/sure", "min")
    ei = EI(physics, small_net(), Shift())
    assert (ei.selection_metric, ei.selection_mode) == ("val/cycle", "min")
    assert rei(noisy_inpainting_problem[0]).selection_metric == "val/cycle"
    assert (sup.selection_metric, sup.selection_mode) == ("val/psnr", "max")
    assert "val/sure" not in validate(sup, inpainting_problem[2])
    with pytest.raises(ValueError, match="selection_mode"):
        MC(physics, small_net(), selection_mode="maximum")


def compose_train(*overrides: str):
    with initialize_config_module("eilab.conf", version_base="1.3"):
        return compose("train", overrides=["img_size=16", *overrides])


def test_rei_config_checkpoints_and_stops_on_val_cycle():
    cfg = compose_train("strategy=rei", "noise=gaussian", "callbacks=early_stopping")
    assert cfg.callbacks.best.monitor == cfg.callbacks.early_stopping.monitor == "val/cycle"
    assert cfg.callbacks.best.mode == cfg.callbacks.early_stopping.mode == "min"
    physics = instantiate(cfg.physics)
    module = instantiate(cfg.strategy, physics=physics, network=instantiate(cfg.model))
    assert isinstance(module, REI) and module.sure_loss.noise is physics.noise


def test_rei_config_without_noise_stops_before_training():
    cfg = compose_train("strategy=rei")
    with pytest.raises(Exception, match="REI needs a noise model") as error:
        instantiate(cfg.strategy, physics=instantiate(cfg.physics), network=small_net())
    assert isinstance(error.value.__cause__, MissingNoiseError)  # Hydra wraps it


def test_noise_limited_ct_config_is_rei_ct_at_64_pixels_and_60_views_and_its_alpha():
    with initialize_config_module("eilab.conf", version_base="1.3"):
        cfg = compose("train", overrides=["experiment=rei_ct64", "strategy=rei"])
        base = compose("train", overrides=["experiment=rei_ct", "strategy=rei"])
    assert (cfg.img_size, cfg.physics.n_views) == (64, 60)
    assert cfg.noise._target_ == base.noise._target_ and cfg.noise.I0 == base.noise.I0 == 1e3
    assert (cfg.strategy.alpha, base.strategy.alpha) == (30, 100)  # chosen on validation
    assert cfg.trainer == base.trainer
