"""REI: robust equivariant imaging from noisy measurements, SURE + α·REQ."""

from __future__ import annotations

import torch
from torch import nn

from eilab.groups.base import Group
from eilab.losses import EILoss, SURELoss, UnknownNoiseSURELoss
from eilab.losses.sure import check_noise
from eilab.strategies.base import ReconstructionModule


class REI(ReconstructionModule):
    """loss = SURE(f; y) + α·‖f(noise(A T_g x1)) − T_g x1‖², x1 = f(y) (Chen, Tachella &
    Davies, CVPR 2022).

    SURE replaces the MC loss, which on noisy y rewards reproducing the noise; REQ re-applies
    the noise before the equivariance check. The noise model is the physics' own
    (``physics.noise``): REI refuses physics without one. With ``unknown_noise`` the model
    gives only the noise type and a first guess of its level (× ``noise_init_scale``):
    :class:`~eilab.losses.UnknownNoiseSURELoss` estimates the level from each training batch's
    residual and its degrees of freedom (running means with ``noise_momentum``, residual map
    to the power ``noise_power``), and SURE and REQ use the current estimate. It replaced
    UNSURE's learned Lagrange multiplier, which sits at a harmonic mean of signal-plus-noise
    variances, 1.8-2.3× the true level on these tasks (experiments/rei/unsure/README.md).
    ``noise_lr``, that multiplier's step, is accepted only as null, the value every run saved
    before the change holds, so their configs still build. Never sees ground truth.
    """

    default_selection_metric = "val/cycle"

    def __init__(
        self,
        physics: nn.Module,
        network: nn.Module,
        group: Group,
        alpha: float = 1.0,
        n_trans: int = 1,
        unknown_noise: bool = False,
        noise_init_scale: float = 1.0,
        noise_momentum: float = 0.99,
        noise_power: int = 1,
        tau: float | None = None,
        noise_lr: None = None,
        **optim,
    ) -> None:
        noise = check_noise(getattr(physics, "noise", None), "REI")
        if noise_lr is not None:
            raise ValueError(
                "REI: noise_lr is gone: the unknown noise level is estimated, not learned by a "
                "step; set noise_momentum (running means of the estimate) instead"
            )
        super().__init__(physics, network, group=group, **optim)
        if alpha < 0:
            raise ValueError(f"REI: alpha must be >= 0, got {alpha}")
        self.ei_loss = EILoss(group, n_trans)
        self.alpha = alpha
        if self.fast_step and unknown_noise:
            raise ValueError(
                "REI: fast_step is not available with unknown_noise=true: the estimated noise "
                "level is read back to the host at every step (the noise model takes a float), "
                "which a CUDA graph cannot replay; set fast_step=false"
            )
        self.unknown_noise = unknown_noise
        self.sure_loss = (
            UnknownNoiseSURELoss(noise, noise_init_scale, tau, noise_momentum, noise_power)
            if unknown_noise
            else SURELoss(noise, tau)
        )

    def training_losses(self, y: torch.Tensor) -> dict[str, torch.Tensor]:
        x1 = self(y)
        sure = self.sure_loss(y, x1, self.reconstructor, self.physics)
        noise = self.sure_loss.noise_estimate()
        req = self.ei_loss(x1, self.reconstructor, self.physics, noise=noise)
        losses = {
            "loss": sure + self.alpha * req,
            "sure": sure,
            "loss_ei": req,
            "loss_mc": self.mc_loss(x1.detach(), y, self.physics),
        }
        if self.unknown_noise:
            losses["noise_scale"] = torch.tensor(self.sure_loss.scale, device=y.device)
        return losses
