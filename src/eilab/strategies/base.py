"""The LightningModule every learning strategy shares; strategies differ only in their loss."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
from torch import nn
from torch.nn import functional as F
from torchmetrics import MeanMetric

from eilab.captured_step import CapturedStep
from eilab.groups.base import Group
from eilab.losses import CycleSURE, EILoss, MCLoss, SURELoss
from eilab.metrics import image_metrics
from eilab.models.reconstructor import Reconstructor

#: Seed of the random draws (group elements, re-applied noise, SURE probes) behind the
#: ground-truth-free validation losses: the same draws at every validation, so that the values
#: of two epochs (or two runs) differ only because the network did.
VALIDATION_SEED = 0
#: Group elements drawn per validation image for the ``equiv`` criterion.
VALIDATION_TRANSFORMS = 4
SELECTION_MODES = ("min", "max")


class ReconstructionModule(L.LightningModule):
    """Holds the physics, f = G ∘ A†, the metrics and the optimiser settings.

    Subclasses implement ``training_losses``: it receives only the measurements y unless the
    class sets ``uses_ground_truth``, so a self-supervised strategy cannot read x even by
    mistake. Validation and test evaluate f(y) and the A†y baseline against the ground truth
    (PSNR, SSIM); that is the only place self-supervised strategies meet x.

    Self-supervised strategies also log ground-truth-free losses on the held-out measurements:
    their training losses (``loss``, ``loss_mc``, ``loss_ei``, ...) and ``sure``, the SURE of
    the measurement-domain error under the physics' noise model (the MC loss when there is no
    noise), all with seeded random draws (VALIDATION_SEED). Given a ``group``, they also log
    ``equiv``, an image-domain criterion that sees the null space of A: the error with which f
    reconstructs its own transformed outputs from their re-simulated measurements,
    ‖f(noise(A T_g f(y))) − T_g f(y)‖² (see :meth:`equivariance_error`), and ``sure_equiv``,
    the geometric mean √(sure · equiv) of their validation means, a combination free of
    either term's units (a ranking by it does not change when either is rescaled), and
    ``cycle``, cycle SURE (:meth:`cycle_error`): SURE of A T_g⁻¹ f(noise(A T_g f(y))), the
    measurements predicted after a round trip through a transformed image, against the real
    ones, so it sees the null space and is scored on data, not on f's own outputs.
    ``selection_metric`` and ``selection_mode`` name the logged value that selects a model
    (best checkpoint, early stopping, the sweep objective train() returns): by default
    ``default_selection_metric`` (min) for self-supervised strategies, which a user without
    ground truth can compute, and ``val/psnr`` (max) for those that use it.
    Measurement-domain criteria cannot see the null space of A: they rank how well f explains
    the measurements, not what it invents where A is blind. ``equiv`` sees it, but EI and REI
    minimise it with weight α, so across an α sweep it falls as α grows and selects the
    largest α, and ``sure_equiv`` inherits that bias where equiv varies more than sure.
    ``cycle`` is the default of the strategies that fill the null space with a group (EI,
    EI_adv, REI): on REI's α sweeps it ranked α as the validation ground truth does where A
    has a null space (CT 48² with 8 views, inpainting: ρ 1.0 and 0.9; ``sure`` 0.6 and 0.7),
    and below ``sure`` where it has none (CT 64², 60 views: 0.6 against 0.7), where its two
    reconstructions and the group's interpolation only add noise (experiments/rei/selection).

    Validation may have a second loader (``dataloader_idx`` 1), a fixed subset of the training
    pairs: its PSNR/SSIM are logged as ``train_eval/...`` beside ``val/...`` (the paper's
    Fig. 5: training vs held-out PSNR), and nothing else, so every ``val/`` value, the
    selection metric included, is the validation measurements' alone.

    ``fast_step``: the step is optimised by hand (Lightning's manual optimisation): on CUDA its
    forward, losses and backward are one CUDA graph replay (:class:`CapturedStep`) and Adam is
    fused; elsewhere the step is the eager one. The losses it returns equal the eager step's
    up to floating-point order (tests/strategies/test_fast_step.py).
    """

    uses_ground_truth: bool = False
    #: The ground-truth-free criterion that selects a model unless ``selection_metric`` is set.
    default_selection_metric: str = "val/sure"

    def __init__(
        self,
        physics: nn.Module,
        network: nn.Module,
        lr: float = 5e-4,
        weight_decay: float = 1e-8,
        milestones: Sequence[int] = (),
        gamma: float = 0.1,
        ssim: bool = True,
        selection_metric: str | None = None,
        selection_mode: str | None = None,
        fast_step: bool = False,
        group: Group | None = None,
    ) -> None:
        super().__init__()
        self.fast_step = fast_step
        self.automatic_optimization = not fast_step
        self.captured_step: CapturedStep | None = None
        self.physics = physics
        self.reconstructor = Reconstructor(physics, network)
        self.mc_loss = MCLoss()
        noise = getattr(physics, "noise", None)
        self.sure_loss = None if self.uses_ground_truth or noise is None else SURELoss(noise)
        self.equivariance_check = (
            None
            if self.uses_ground_truth or group is None
            else EILoss(group, VALIDATION_TRANSFORMS)
        )
        self.cycle_check = (
            None
            if self.uses_ground_truth or group is None
            else CycleSURE(group, VALIDATION_TRANSFORMS)
        )
        self.criterion_means = nn.ModuleDict({"sure": MeanMetric(), "equiv": MeanMetric()})
        default = (
            ("val/psnr", "max")
            if self.uses_ground_truth
            else (self.default_selection_metric, "min")
        )
        self.selection_metric = selection_metric or default[0]
        self.selection_mode = selection_mode or default[1]
        if self.selection_mode not in SELECTION_MODES:
            raise ValueError(
                f"{type(self).__name__}: selection_mode must be one of {SELECTION_MODES}, "
                f"got {self.selection_mode!r}"
            )
        self.lr, self.weight_decay = lr, weight_decay
        self.milestones, self.gamma = list(milestones), gamma
        self.metrics = nn.ModuleDict(
            {
                "val": image_metrics("val/", ssim=ssim),
                "val_adagger": image_metrics("val/", "_adagger", ssim),
                "train_eval": image_metrics("train_eval/", ssim=ssim),
                "train_eval_adagger": image_metrics("train_eval/", "_adagger", ssim),
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

    def on_train_epoch_start(self) -> None:
        """Tell the datamodule which epoch starts: with fresh_noise it draws its noise anew."""
        set_epoch = getattr(self.trainer.datamodule, "set_epoch", None)
        if set_epoch is not None:
            set_epoch(self.current_epoch)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        inputs = (batch["y"], batch["x"]) if self.uses_ground_truth else (batch["y"],)
        losses = self.optimised_step(inputs) if self.fast_step else self.training_losses(*inputs)
        self.log_losses("train", losses, len(batch["y"]))
        return losses["loss"]

    def optimised_step(self, inputs: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        """fast_step: forward, losses and backward (one CUDA graph replay on CUDA), then the
        optimiser's step; the losses, detached."""
        optimizer = self.optimizers()
        if self.device.type == "cuda":
            if self.captured_step is None:
                self.captured_step = CapturedStep(self.training_losses, self, self.network_state)
            losses = self.captured_step(*inputs)
        else:
            optimizer.zero_grad()
            losses = self.training_losses(*inputs)
            self.manual_backward(losses["loss"])
        optimizer.step()
        return {name: value.detach().clone() for name, value in losses.items()}

    @property
    def network_state(self) -> nn.Module:
        """The modules whose buffers a training forward changes (BatchNorm statistics)."""
        return self.reconstructor.network

    def on_train_epoch_end(self) -> None:
        """Under manual optimisation (fast_step, EI_adv) Lightning leaves the learning-rate
        schedules to the module: step them once per epoch, as automatic optimisation does."""
        if self.automatic_optimization:
            return
        schedulers = self.lr_schedulers()
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
            scheduler.step()

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

    def validation_step(
        self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """Loader 0: the validation pairs; loader 1: the fixed training pairs (train_eval)."""
        self.evaluate(("val", "train_eval")[dataloader_idx], batch, batch_idx)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.evaluate("test", batch, batch_idx)

    def evaluate(self, stage: str, batch: dict[str, torch.Tensor], batch_idx: int = 0) -> None:
        """Update PSNR/SSIM of f(y) and of A†y against the ground truth; on validation and
        test, also log the MC loss on y, and for self-supervised strategies their
        ground-truth-free losses ("train_eval" logs the image metrics only).

        Keys carry no ``/dataloader_idx_N`` suffix: the stage prefix says which loader."""
        y, x = batch["y"], batch["x"]
        x_dagger = self.physics.A_dagger(y)
        x_hat = self.reconstructor.network(x_dagger)
        model_metrics, baseline_metrics = self.metrics[stage], self.metrics[f"{stage}_adagger"]
        with torch.autocast(self.device.type, enabled=False):  # bf16-mixed: score in float32
            model_metrics.update(x_hat.float(), x.float())
            baseline_metrics.update(x_dagger.float(), x.float())
        log_options = {"on_epoch": True, "batch_size": len(y), "add_dataloader_idx": False}
        losses = {} if stage == "train_eval" else self.measurement_losses(y, x_hat, batch_idx)
        for name, value in losses.items():
            self.log(f"{stage}/{name}", value, **log_options)
        if stage == "val" and "equiv" in losses:
            for name, mean in self.criterion_means.items():
                mean.update(losses[name], len(y))
        self.log_dict(model_metrics, prog_bar=stage != "train_eval", **log_options)
        self.log_dict(baseline_metrics, **log_options)

    def measurement_losses(
        self, y: torch.Tensor, x_hat: torch.Tensor, batch_idx: int
    ) -> dict[str, torch.Tensor]:
        """The losses evaluation logs on y: the MC loss for strategies that use ground truth,
        the ground-truth-free losses for the others."""
        if self.uses_ground_truth:
            return {"loss_mc": self.mc_loss(x_hat, y, self.physics)}
        return self.ground_truth_free_losses(y, x_hat, batch_idx)

    def ground_truth_free_losses(
        self, y: torch.Tensor, x_hat: torch.Tensor, batch_idx: int
    ) -> dict[str, torch.Tensor]:
        """The training losses on held-out measurements, plus ``sure`` if they lack it, and
        ``equiv`` with a group.

        Their random draws come from VALIDATION_SEED + batch_idx, in a forked random state:
        the training's own random sequence is left as it was.
        """
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(VALIDATION_SEED + batch_idx)
            losses = self.training_losses(y)
            if "sure" not in losses:
                losses["sure"] = (
                    self.mc_loss(x_hat, y, self.physics)
                    if self.sure_loss is None
                    else self.sure_loss(y, x_hat, self.reconstructor, self.physics)
                )
        if self.equivariance_check is not None:
            losses["equiv"] = self.equivariance_error(x_hat, batch_idx)
            losses["cycle"] = self.cycle_error(y, x_hat, batch_idx)
        return losses

    def on_validation_epoch_end(self) -> None:
        """Log ``val/sure_equiv`` = √(mean sure · mean equiv) over the validation set."""
        if self.equivariance_check is None or not self.criterion_means["sure"].update_called:
            return
        sure, equiv = (mean.compute() for mean in self.criterion_means.values())
        self.log("val/sure_equiv", (sure * equiv).sqrt())
        for mean in self.criterion_means.values():
            mean.reset()

    def equivariance_error(self, x_hat: torch.Tensor, batch_idx: int) -> torch.Tensor:
        """‖f(noise(A T_g x̂)) − T_g x̂‖² for the reconstructions x̂ = f(y) of a validation batch.

        If f(y) is close to x, T_g f(y) is another plausible image (the data are invariant to
        the group) with a known answer, and this is f's error on it in the image domain, null
        space included, which no measurement-domain criterion sees. The physics' noise is
        re-applied, as REQ does, so f is scored on measurements that look like the real ones.
        The group elements and the noise come from their own generator, seeded with
        VALIDATION_SEED + batch_idx: every strategy and every run is scored on the same draws.
        It rewards an f whose outputs are easy to reconstruct (over-smoothed ones): it is meant
        beside ``sure``, which penalises them.
        """
        generator = torch.Generator(x_hat.device).manual_seed(VALIDATION_SEED + batch_idx)
        noise = getattr(self.physics, "noise", None)
        x2, x3 = self.equivariance_check.transformed_pair(
            x_hat, self.reconstructor, self.physics, generator, noise
        )
        return F.mse_loss(x3, x2)

    def cycle_error(self, y: torch.Tensor, x_hat: torch.Tensor, batch_idx: int) -> torch.Tensor:
        """Cycle SURE of the validation batch y, x̂ = f(y) (:class:`eilab.losses.CycleSURE`):
        SURE of A T_g⁻¹ f(noise(A T_g f(y))) against A x, scored on the real measurements, so
        it sees what f puts in the null space without rewarding outputs easy to reconstruct
        again. Under the strategy's own SURE (an estimated noise level included), with the
        equivariance error's seeded draws."""
        generator = torch.Generator(y.device).manual_seed(VALIDATION_SEED + batch_idx)
        return self.cycle_check(
            y, x_hat, self.reconstructor, self.physics, self.sure_loss, generator
        )

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

    def parameter_groups(self) -> list[dict]:
        """What Adam trains: the reconstructor (a strategy may add groups with their own lr)."""
        return [{"params": list(self.reconstructor.parameters())}]

    def configure_optimizers(self):
        """Adam with weight decay and a MultiStepLR schedule stepped per epoch (paper's code)."""
        fused = (self.fast_step and self.device.type == "cuda") or None  # None: torch's default
        optimizer = torch.optim.Adam(
            self.parameter_groups(), lr=self.lr, weight_decay=self.weight_decay, fused=fused
        )
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, self.milestones, self.gamma)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }
