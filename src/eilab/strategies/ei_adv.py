"""EI_adv: EI plus a least-squares adversarial term, eq. (7), with manual optimisation."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from eilab.groups.base import Group
from eilab.losses import AdversarialLoss
from eilab.strategies.ei import EI


class EIAdv(EI):
    """G minimises MC + α·EI + β·LSGAN(D(x2) → 1); D learns D(x1) → 1, D(x2) → 0.

    Two optimisers step in turn on every batch. Unlike the paper's code, the discriminator's
    own loss is not multiplied by β: β sets how much G listens to D, and scaling D's loss by
    β = 1e-8 (the code's default) would only push its Adam steps below Adam's epsilon.
    """

    def __init__(
        self,
        physics: nn.Module,
        network: nn.Module,
        group: Group,
        discriminator: nn.Module,
        alpha: float = 1.0,
        beta: float = 1e-2,
        n_trans: int = 1,
        lr_discriminator: float | None = None,
        **optim,
    ) -> None:
        super().__init__(physics, network, group, alpha, n_trans, **optim)
        if beta < 0:
            raise ValueError(f"EIAdv: beta must be >= 0, got {beta}")
        self.adversarial = AdversarialLoss(discriminator)
        self.beta = beta
        self.lr_discriminator = self.lr if lr_discriminator is None else lr_discriminator
        if self.fast_step:
            raise ValueError(
                "EIAdv: fast_step is not available: EI_adv steps two optimisers (the "
                "reconstructor's and the discriminator's) per batch; set fast_step=false"
            )
        self.automatic_optimization = False

    def training_losses(self, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """G's terms and total ("loss"), and D's own loss ("loss_disc", on detached images).

        Minimising "loss" trains f; "loss_disc" is stepped separately, by D's optimiser only.
        """
        x1 = self(y)
        x2, x3 = self.ei_loss.transformed_pair(x1, self.reconstructor, self.physics)
        mc = self.mc_loss(x1, y, self.physics)
        ei = F.mse_loss(x3, x2)
        adv = self.adversarial.generator_loss(x2)
        disc = self.adversarial.discriminator_loss(x1, x2)
        loss = mc + self.alpha * ei + self.beta * adv
        return {"loss": loss, "loss_mc": mc, "loss_ei": ei, "loss_adv": adv, "loss_disc": disc}

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Step G on "loss", then D on "loss_disc": two optimisers in turn on every batch."""
        opt_g, opt_d = self.optimizers()
        losses = self.training_losses(batch["y"])
        opt_g.zero_grad()
        self.manual_backward(losses["loss"])
        opt_g.step()
        opt_d.zero_grad()
        self.manual_backward(losses["loss_disc"])
        opt_d.step()
        self.log_losses("train", losses, len(batch["y"]))
        return losses["loss"]

    def configure_optimizers(self):
        generator = super().configure_optimizers()
        optimizer = torch.optim.Adam(self.adversarial.parameters(), lr=self.lr_discriminator)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, self.milestones, self.gamma)
        return [generator["optimizer"], optimizer], [
            generator["lr_scheduler"]["scheduler"],
            scheduler,
        ]
