"""The LightningModule every learning strategy shares; strategies differ only in their loss."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
from torch import nn

from eilab.losses import MCLoss
from eilab.metrics import image_metrics
from eilab.models.reconstructor import Reconstructor


class ReconstructionModule(L.LightningModule):
    """Holds the physics, f = G ∘ A†, the metrics and the optimiser settings.

    Subclasses implement ``training_losses``: it receives only the measurements y unless the
    class sets ``uses_ground_truth``, so a self-supervised strategy cannot read x even by
    mistake. Validation and test evaluate f(y) and the A†y baseline against the ground truth
    (PSNR, SSIM); that is the only place self-supervised strategies meet x.
    """

    uses_ground_truth: bool = False

    def __init__(
        self,
        physics: nn.Module,
        network: nn.Module,
        lr: float = 5e-4,
        weight_decay: float = 1e-8,
        milestones: Sequence[int] = (),
        gamma: float = 0.1,
        ssim: bool = True,
    ) -> None:
        super().__init__()
        self.physics = physics
        self.reconstructor = Reconstructor(physics, network)
        self.mc_loss = MCLoss()
        self.lr, self.weight_decay = lr, weight_decay
        self.milestones, self.gamma = list(milestones), gamma
        self.metrics = nn.ModuleDict(
            {
                "val": image_metrics("val/", ssim=ssim),
                "val_adagger": image_metrics("val/", "_adagger", ssim),
                "test": image_metrics("test/", ssim=ssim),
                "test_adagger": image_metrics("test/", "_adagger", ssim),
            }
        )

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """Reconstruct images from measurements: f(y) = G(A† y)."""
        return self.reconstructor(y)

    def training_losses(
        self, y: torch.Tensor, *ground_truth: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The strategy's loss terms; "loss" is the total that is minimised."""
        raise NotImplementedError

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        inputs = (batch["y"], batch["x"]) if self.uses_ground_truth else (batch["y"],)
        losses = self.training_losses(*inputs)
        self.log_losses("train", losses, len(batch["y"]))
        return losses["loss"]

    def log_losses(self, stage: str, losses: dict[str, torch.Tensor], batch_size: int) -> None:
        for name, value in losses.items():
            self.log(
                f"{stage}/{name}",
                value.detach(),
                on_step=False,
                on_epoch=True,
                prog_bar=name == "loss",
                batch_size=batch_size,
            )

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.evaluate("val", batch)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.evaluate("test", batch)

    def evaluate(self, stage: str, batch: dict[str, torch.Tensor]) -> None:
        """Update PSNR/SSIM of f(y) and of A†y against the ground truth; log MC loss on y."""
        y, x = batch["y"], batch["x"]
        x_dagger = self.physics.A_dagger(y)
        x_hat = self.reconstructor.network(x_dagger)
        model_metrics, baseline_metrics = self.metrics[stage], self.metrics[f"{stage}_adagger"]
        model_metrics.update(x_hat, x)
        baseline_metrics.update(x_dagger, x)
        mc = self.mc_loss(x_hat, y, self.physics)
        self.log(f"{stage}/loss_mc", mc, on_epoch=True, batch_size=len(y))
        self.log_dict(model_metrics, on_epoch=True, prog_bar=True, batch_size=len(y))
        self.log_dict(baseline_metrics, on_epoch=True, batch_size=len(y))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Store the random state, so a resumed run draws the same batches and group elements."""
        checkpoint["rng_state"] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            checkpoint["rng_state"]["cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("rng_state", {})
        if "torch" in state:
            torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])

    def configure_optimizers(self):
        """Adam with weight decay and a MultiStepLR schedule stepped per epoch (paper's code)."""
        optimizer = torch.optim.Adam(
            self.reconstructor.parameters(), lr=self.lr, weight_decay=self.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, self.milestones, self.gamma)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }
