"""The five strategies: they train, their losses drop, and they rank as the paper says."""

import pytest
import torch
from tiny_inpainting import camera_crops, cpu_trainer, fit_and_test, quiet_trainer
from torch import nn
from torch.utils.data import DataLoader

from eilab.data import MeasurementDataset
from eilab.groups import Shift
from eilab.models import PatchDiscriminator, UNet
from eilab.physics import CT
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
# The total each strategy minimises, from the terms it reports (α = 3, β = 0.5 below).
TOTALS = {
    "mc": lambda t: t["loss_mc"],
    "ei": lambda t: t["loss_mc"] + 3 * t["loss_ei"],
    "ei_adv": lambda t: t["loss_mc"] + 3 * t["loss_ei"] + 0.5 * t["loss_adv"],
    "sup": lambda t: t["loss_sup"],
    "ei_sup": lambda t: t["loss_sup"] + 3 * t["loss_ei"],
}


class ConstantCritic(nn.Module):
    """A discriminator that gives every patch of every image the same score."""

    def __init__(self, score: float) -> None:
        super().__init__()
        self.score = score

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((len(x), 1, 2, 2), self.score)


@pytest.mark.parametrize("name", STRATEGIES)
def test_training_loss_drops_on_a_fixed_batch(name, inpainting_problem):
    physics, train_set, _ = inpainting_problem
    torch.manual_seed(0)  # the same initial weights whatever ran before
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


@pytest.mark.parametrize("name", STRATEGIES)
def test_training_losses_report_every_term_of_the_total(name, inpainting_problem):
    physics, train_set, _ = inpainting_problem
    module = build(name, physics)
    if hasattr(module, "alpha"):
        module.alpha = 3.0
    if hasattr(module, "beta"):
        module.beta = 0.5
    batch = next(iter(DataLoader(train_set, batch_size=4)))
    inputs = (batch["y"], batch["x"]) if module.uses_ground_truth else (batch["y"],)
    losses = module.training_losses(*inputs)
    assert torch.allclose(losses["loss"], TOTALS[name](losses), rtol=1e-6, atol=0)


def test_ei_adv_losses_are_lsgan_terms_of_its_discriminator(inpainting_problem):
    physics, train_set, _ = inpainting_problem
    module = EIAdv(physics, small_net(), Shift(), ConstantCritic(0.25), alpha=1.0, beta=0.5)
    batch = next(iter(DataLoader(train_set, batch_size=4)))
    losses = module.training_losses(batch["y"])
    assert float(losses["loss_adv"]) == pytest.approx((0.25 - 1) ** 2)  # G wants D(x2) = 1
    # D wants D(x1) = 1 and D(x2) = 0
    assert float(losses["loss_disc"]) == pytest.approx(((0.25 - 1) ** 2 + 0.25**2) / 2)


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
    physics, train_set, _ = inpainting_problem
    module = build("ei_adv", physics)
    generator_before = [p.detach().clone() for p in module.reconstructor.parameters()]
    critic_before = [p.detach().clone() for p in module.adversarial.parameters()]
    trainer = quiet_trainer(4)  # two batches: Lightning counts G's and D's steps
    trainer.fit(module, DataLoader(train_set, batch_size=4))
    assert {"train/loss_adv", "train/loss_disc"} <= set(trainer.callback_metrics)
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


@pytest.mark.parametrize("name", ["ei", "ei_adv", "ei_sup"])
def test_a_negative_alpha_is_refused_and_named(name, inpainting_problem):
    physics, _, _ = inpainting_problem
    cls = {"ei": EI, "ei_adv": EIAdv, "ei_sup": EISup}[name]
    extra = [PatchDiscriminator(1, widths=(16,))] if name == "ei_adv" else []
    with pytest.raises(ValueError, match="alpha"):
        cls(physics, small_net(), Shift(), *extra, alpha=-1.0)


def test_a_negative_beta_is_refused_and_named(inpainting_problem):
    physics, _, _ = inpainting_problem
    with pytest.raises(ValueError, match="beta"):
        EIAdv(physics, small_net(), Shift(), PatchDiscriminator(1, widths=(16,)), beta=-0.1)


@pytest.mark.parametrize("name", STRATEGIES)
def test_every_strategy_trains_on_ct_under_bf16_mixed(name):
    """The CT operator computes in float32 under autocast, also when the gradient reaching
    it is bfloat16 (EI_adv's discriminator sends one back through A)."""
    physics = CT(16, n_views=4, circle=False)
    torch.manual_seed(0)
    module = build(name, physics)
    before = [p.detach().clone() for p in module.parameters()]
    train_set = MeasurementDataset(camera_crops(4)[..., :16, :16], physics)
    cpu_trainer(max_steps=2, limit_val_batches=0, precision="bf16-mixed").fit(
        module, DataLoader(train_set, batch_size=2)
    )
    changed = [
        not torch.equal(a, b.detach()) for a, b in zip(before, module.parameters(), strict=True)
    ]
    assert all(changed)
