"""The five strategies: they train, their losses drop, and they rank as the paper says."""

import pytest
import torch
from tiny_inpainting import fit_and_test, quiet_trainer
from torch.utils.data import DataLoader

from eilab.data import MeasurementDataset
from eilab.groups import Shift
from eilab.models import PatchDiscriminator, UNet
from eilab.strategies import EI, MC, EIAdv, EISup, Sup


def small_net() -> UNet:
    return UNet(1, widths=(16, 32), norm="none")


def build(name: str, physics):
    """Each strategy on the tiny inpainting problem, with the paper's inpainting α = 1."""
    group = Shift()
    common = {"lr": 1e-3}
    if name == "mc":
        return MC(physics, small_net(), **common)
    if name == "sup":
        return Sup(physics, small_net(), **common)
    if name == "ei":
        return EI(physics, small_net(), group, alpha=1.0, n_trans=2, **common)
    if name == "ei_sup":
        return EISup(physics, small_net(), group, alpha=1.0, n_trans=2, **common)
    discriminator = PatchDiscriminator(1, widths=(16, 32))
    return EIAdv(physics, small_net(), group, discriminator, alpha=1.0, n_trans=2, **common)


STRATEGIES = ["mc", "ei", "ei_adv", "sup", "ei_sup"]


@pytest.mark.parametrize("name", STRATEGIES)
def test_training_loss_drops_on_a_fixed_batch(name, inpainting_problem):
    physics, train_set, _ = inpainting_problem
    module = build(name, physics)
    batch = next(iter(DataLoader(train_set, batch_size=8)))
    inputs = (batch["y"], batch["x"]) if module.uses_ground_truth else (batch["y"],)
    optimizer = torch.optim.Adam(module.reconstructor.parameters(), lr=1e-3)
    losses = []
    for _ in range(60):
        torch.manual_seed(0)  # the same group elements every step: a fixed objective
        loss = module.training_losses(*inputs)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses[::10]


def test_ei_learns_the_null_space_and_mc_does_not(inpainting_problem):
    physics, train_set, test_set = inpainting_problem
    mc = fit_and_test(build("mc", physics), train_set, test_set, steps=150)
    ei = fit_and_test(build("ei", physics), train_set, test_set, steps=150)
    baseline = mc["test/psnr_adagger"]
    # MC only sees the observed pixels: it cannot beat the masked image A†y (Proposition 1).
    assert mc["test/psnr"] < baseline + 1.0
    assert ei["test/psnr"] > mc["test/psnr"] + 8.0


def test_sup_overfits_one_batch(inpainting_problem):
    physics, train_set, _ = inpainting_problem
    one_batch = torch.utils.data.Subset(train_set, range(4))
    module = build("sup", physics)
    results = fit_and_test(module, one_batch, one_batch, steps=200)
    assert results["test/psnr"] > results["test/psnr_adagger"] + 12.0


def test_ei_adv_updates_both_networks(inpainting_problem):
    physics, train_set, test_set = inpainting_problem
    module = build("ei_adv", physics)
    generator_before = [p.detach().clone() for p in module.reconstructor.parameters()]
    critic_before = [p.detach().clone() for p in module.adversarial.parameters()]
    fit_and_test(module, train_set, test_set, steps=3)
    generator_after = list(module.reconstructor.parameters())
    critic_after = list(module.adversarial.parameters())
    generator_moved = zip(generator_before, generator_after, strict=True)
    critic_moved = zip(critic_before, critic_after, strict=True)
    assert any(not torch.equal(a, b) for a, b in generator_moved)
    assert any(not torch.equal(a, b) for a, b in critic_moved)


@pytest.mark.parametrize("name", ["mc", "ei", "ei_adv"])
def test_self_supervised_strategies_never_read_the_ground_truth(name, inpainting_problem):
    physics, train_set, _ = inpainting_problem
    poisoned = MeasurementDataset(train_set.images[:8], physics)
    poisoned.images = torch.full_like(poisoned.images, float("nan"))
    module = build(name, physics)
    trainer = quiet_trainer(4)
    trainer.fit(module, DataLoader(poisoned, batch_size=4))
    assert all(torch.isfinite(p).all() for p in module.reconstructor.parameters())
    assert torch.isfinite(trainer.callback_metrics["train/loss"])


@pytest.mark.parametrize("name", ["sup", "ei_sup"])
def test_supervised_strategies_do_read_the_ground_truth(name, inpainting_problem):
    physics, train_set, _ = inpainting_problem
    module = build(name, physics)
    batch = next(iter(DataLoader(train_set, batch_size=2)))
    loss = module.training_losses(batch["y"], torch.full_like(batch["x"], float("nan")))["loss"]
    assert torch.isnan(loss)
