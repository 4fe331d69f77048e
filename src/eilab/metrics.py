"""Image quality: standard PSNR/SSIM, and PSNR exactly as the original EI code computes it."""

from __future__ import annotations

import torch
from torchmetrics import MetricCollection
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure


def psnr(estimate: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image PSNR in dB of (B, C, H, W) tensors, peak ``data_range``, no clamping."""
    mse = (estimate - target).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse)


def psnr_ei_code(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR as ``cal_psnr`` in edongdongchen/EI: one value for the whole batch.

    20·log10(sqrt(H·W)·max|target| / ||target − estimate||₂), the norm over the whole tensor.
    This equals the standard PSNR with peak max|target| minus 10·log10(B·C): the same for one
    grey image, 4.77 dB lower for one RGB image. Use it only to compare with published numbers.
    """
    scale = (target.shape[-1] * target.shape[-2]) ** 0.5
    peak = target.abs().max()
    return 20 * torch.log10(scale * peak / torch.linalg.vector_norm(target - estimate))


def image_metrics(prefix: str, postfix: str = "", ssim: bool = True) -> MetricCollection:
    """PSNR (per image, data range 1, then the mean) and SSIM; states sync under DDP.

    SSIM's 11×11 Gaussian window needs images of at least 11×11: pass ``ssim=False`` for
    smaller ones (e.g. 1-D signals).
    """
    metrics = {"psnr": PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3))}
    if ssim:
        metrics["ssim"] = StructuralSimilarityIndexMeasure(data_range=1.0)
    return MetricCollection(metrics, prefix=prefix, postfix=postfix)
