"""eilab.physics.torch_radon against torch-radon's documented semantics, and CT's backend choice."""

import logging
import math
import sys
import types

import numpy as np
import pytest
import torch
from skimage.data import shepp_logan_phantom
from skimage.transform import iradon, radon, resize

from eilab.physics import CT
from eilab.physics import torch_radon as shim
from eilab.physics.torch_radon import Radon


def phantom(size: int) -> np.ndarray:
    return resize(shepp_logan_phantom(), (size, size), anti_aliasing=True)


def psnr(estimate: np.ndarray, truth: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((np.clip(estimate, 0, 1) - truth) ** 2)))


def test_sinograms_are_angles_by_detectors_with_any_leading_dims():
    angles = np.linspace(0, np.pi, 10, endpoint=False)
    r = Radon(32, angles)
    assert r.det_count == 32  # det_count=-1: as many bins as the resolution
    assert r.forward(torch.rand(2, 3, 32, 32)).shape == (2, 3, 10, 32)
    assert r.forward(torch.rand(32, 32)).shape == (10, 32)
    assert Radon(32, angles, det_count=45).forward(torch.rand(4, 32, 32)).shape == (4, 10, 45)
    assert r.backprojection(torch.rand(2, 3, 10, 32)).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="sinograms of shape"):
        r.backprojection(torch.rand(2, 32, 10))


def test_angles_in_radians_match_skimage_radon_in_degrees():
    image = phantom(48)
    angles = np.array([0.0, 0.3, 1.1, 2.0, 3.0])  # not evenly spaced
    det_count = math.ceil(math.sqrt(2) * 48)
    ours = Radon(48, torch.tensor(angles), det_count=det_count).forward(torch.from_numpy(image))
    reference = radon(image, np.rad2deg(angles), circle=False)
    assert np.linalg.norm(ours.numpy().T - reference) < 1e-6 * np.linalg.norm(reference)


def test_views_at_right_angles_are_sums_along_the_image_axes():
    image = torch.zeros(17, 17, dtype=torch.float64)
    image[4, :] += 1
    image[:, 8] += 1
    views = Radon(17, [0.0, math.pi / 2, -math.pi / 2]).forward(image)
    assert torch.allclose(views[0], image.sum(0))
    assert torch.allclose(views[1], image.sum(1).flip(0))
    assert torch.allclose(views[2], image.sum(1))


@pytest.mark.parametrize("clip_to_circle", [False, True])
def test_backprojection_is_the_adjoint_of_forward(clip_to_circle, device):
    angles = torch.tensor([0.1, 0.7, 1.9, 2.5, 4.0])
    r = Radon(20, angles, det_count=23, det_spacing=1.3, clip_to_circle=clip_to_circle)
    r = r.to(device=device, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 20, 20, generator=g, dtype=torch.float64).to(device)
    y = torch.randn(3, 5, 23, generator=g, dtype=torch.float64).to(device)
    lhs, rhs = (r.forward(x) * y).sum(), (x * r.backprojection(y)).sum()
    assert abs(lhs - rhs) < 1e-10 * abs(lhs)
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad((r.forward(x) * y).sum(), x)
    assert torch.allclose(grad, r.backprojection(y))


def test_clip_to_circle_ignores_and_leaves_out_the_corners():
    r = Radon(16, np.linspace(0, np.pi, 8, endpoint=False), clip_to_circle=True)
    corners = torch.zeros(16, 16)
    corners[0, 0] = corners[15, 15] = corners[0, 15] = 1
    assert r.forward(corners).abs().max() == 0
    assert r.backprojection(torch.ones(8, 16))[0, 0] == 0


@pytest.mark.parametrize("size", [64, 65])
def test_filtered_backprojection_reconstructs_as_well_as_iradon(size):
    image = phantom(size)
    angles = np.linspace(0, np.pi, 90, endpoint=False)
    r = Radon(size, angles, det_count=math.ceil(math.sqrt(2) * size))
    fbp = r.backprojection(r.filter_sinogram(r.forward(torch.from_numpy(image))))
    theta = np.rad2deg(angles)
    reference = iradon(radon(image, theta, circle=False), theta, circle=False, output_size=size)
    assert psnr(fbp.numpy(), image) > psnr(reference, image) - 0.2
    assert psnr(fbp.numpy(), image) > 27


def test_filter_sinogram_scales_fbp_to_the_image():
    coord = torch.arange(64) - 32
    radius = (coord[:, None] ** 2 + coord[None, :] ** 2).sqrt()
    disk, inside = (radius <= 20).double(), radius <= 15
    r = Radon(64, np.linspace(0, np.pi, 180, endpoint=False), det_count=91)
    sinogram = r.forward(disk)
    for name in ("ramp", "hann"):
        fbp = r.backprojection(r.filter_sinogram(sinogram, name))
        assert abs(float(fbp[inside].mean()) - 1) < 0.01
        assert abs(float(fbp[radius > 25].mean())) < 0.01
    assert torch.equal(r.filter_sinogram(sinogram, "ram-lak"), r.filter_sinogram(sinogram))


def test_half_precision_is_computed_in_float32_and_returned_as_given():
    r = Radon(16, np.linspace(0, np.pi, 6, endpoint=False))
    x = torch.rand(4, 16, 16)
    y = r.forward(x.half())
    assert y.dtype == torch.float16
    assert torch.allclose(y.float(), r.forward(x.half().float()), rtol=1e-3, atol=1e-2)


def test_a_huge_radon_is_refused_before_allocating(monkeypatch):
    def never_build(*args, **kwargs):
        raise AssertionError("built although it cannot fit")

    monkeypatch.setattr(shim.radon, "projector_blocks", never_build)
    with pytest.raises(MemoryError, match="Radon 100000² × 50 angles"):
        Radon(100000, np.linspace(0, np.pi, 50))


def test_ct_backend_torch_radon_falls_back_to_this_module(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "torch_radon", None)  # import torch_radon fails
    with caplog.at_level(logging.INFO, logger="eilab.physics.torch_radon"):
        ct = CT(24, n_views=9, backend="torch_radon").double()
    assert "using eilab.physics.torch_radon" in caplog.text
    assert isinstance(ct.radon, Radon)
    builtin = CT(24, n_views=9, backend="torch").double()
    x = torch.rand(2, 1, 24, 24, dtype=torch.float64)
    y = ct.A(x)
    assert torch.allclose(y, builtin.A(x), atol=1e-12)
    assert torch.allclose(ct.A_adjoint(y), builtin.A_adjoint(y), atol=1e-10)
    fbp, reference = ct.A_dagger(y), builtin.A_dagger(y)
    assert torch.linalg.norm(fbp - reference) < 0.1 * torch.linalg.norm(reference)
    assert ct.float().A(x.bfloat16()).dtype == torch.float32  # CT computes in float32


def test_ct_backend_torch_radon_uses_the_package_when_importable(monkeypatch, caplog):
    calls = []

    class PackageRadon(Radon):
        def __init__(self, *args, **kwargs):
            calls.append((args, kwargs))
            super().__init__(*args, **kwargs)

    package = types.ModuleType("torch_radon")
    package.__file__ = "/site-packages/torch_radon/__init__.py"
    package.Radon = PackageRadon
    monkeypatch.setitem(sys.modules, "torch_radon", package)
    with caplog.at_level(logging.INFO, logger="eilab.physics.torch_radon"):
        ct = CT(16, n_views=4, circle=True, backend="torch_radon")
    assert "using the torch_radon package (/site-packages/torch_radon" in caplog.text
    assert isinstance(ct.radon, PackageRadon)
    (size, angles), kwargs = calls[0]
    assert size == 16 and kwargs == {"det_count": 16, "clip_to_circle": True}
    assert torch.allclose(angles, torch.tensor([0, 0.25, 0.5, 0.75], dtype=torch.float64) * math.pi)
