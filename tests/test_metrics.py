"""PSNR / SSIM against scikit-image, and the original EI code's PSNR."""

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from eilab.metrics import image_metrics, psnr, psnr_ei_code


def noisy_pair(channels: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(4, channels, 32, 32, generator=g, dtype=torch.float64)
    estimate = (target + 0.05 * torch.randn(target.shape, generator=g, dtype=torch.float64)).clamp(
        0, 1
    )
    return estimate, target


@pytest.mark.parametrize("channels", [1, 3])
def test_psnr_matches_skimage_per_image(channels):
    estimate, target = noisy_pair(channels)
    ours = psnr(estimate, target)
    reference = [
        peak_signal_noise_ratio(t.numpy(), e.numpy(), data_range=1.0)
        for e, t in zip(estimate, target, strict=True)
    ]
    assert np.allclose(ours.numpy(), reference)
    collection = image_metrics("val/")
    collection.update(estimate.float(), target.float())
    assert abs(float(collection.compute()["val/psnr"]) - np.mean(reference)) < 1e-3


def test_ssim_matches_skimage_gaussian_ssim():
    estimate, target = noisy_pair(1)
    collection = image_metrics("test/")
    collection.update(estimate.float(), target.float())
    reference = [
        structural_similarity(
            t[0].numpy(),
            e[0].numpy(),
            data_range=1.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        for e, t in zip(estimate, target, strict=True)
    ]
    assert abs(float(collection.compute()["test/ssim"]) - np.mean(reference)) < 2e-3


def test_ei_code_psnr_equals_standard_psnr_for_one_grey_image():
    estimate, target = noisy_pair(1)
    e, t = estimate[:1], target[:1] / target[:1].max()  # peak 1, as the standard PSNR assumes
    assert torch.isclose(psnr_ei_code(e, t), psnr(e, t)[0])


def test_ei_code_psnr_is_lower_by_10_log10_of_batch_times_channels():
    estimate, target = noisy_pair(3)
    target = target / target.max()
    pooled = 10 * torch.log10(1 / (estimate - target).pow(2).mean())
    assert torch.isclose(psnr_ei_code(estimate, target), pooled - 10 * np.log10(4 * 3))
