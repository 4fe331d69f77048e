"""CT(backend="astra"): ASTRA's matrix-free projector against scikit-image and its own adjoint."""

import logging
import sys

import numpy as np
import pytest
import torch
from skimage.data import shepp_logan_phantom
from skimage.transform import iradon, radon, resize

from eilab.physics import CT
from eilab.physics import radon as eilab_radon
from eilab.physics.astra_radon import AstraNotInstalledError

# <Ax, y> = <x, Aᵀy> relative error allowed per device: the CPU pair is an exact transpose
# (float32 rounding only); ASTRA's CUDA back-projector is not its forward's transpose.
ADJOINT_TOLERANCE = {"cpu": 1e-5, "cuda": 1e-2}


@pytest.fixture
def astra():
    return pytest.importorskip("astra")


def phantom(size: int, circle: bool) -> np.ndarray:
    image = resize(shepp_logan_phantom(), (size, size), anti_aliasing=True)
    return image * eilab_radon.disk_mask(size).numpy() if circle else image


def psnr(estimate: np.ndarray, truth: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((np.clip(estimate, 0, 1) - truth) ** 2)))


@pytest.mark.parametrize("circle", [False, True])
def test_backprojection_is_the_adjoint(astra, device, circle):
    ct = CT(33, n_views=12, circle=circle, backend="astra").to(device)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 33, 33, generator=g).to(device)
    y = torch.rand(2, 1, ct.n_detectors, 12, generator=g).to(device)
    lhs = (ct.A(x).double() * y.double()).sum()
    rhs = (x.double() * ct.A_adjoint(y).double()).sum()
    assert abs(lhs - rhs) <= ADJOINT_TOLERANCE[device] * abs(lhs)


@pytest.mark.parametrize(("size", "circle"), [(64, False), (65, False), (64, True)])
def test_forward_matches_skimage_radon(astra, size, circle):
    image = phantom(size, circle)
    ct = CT(size, n_views=30, circle=circle, backend="astra")
    ours = ct.A(torch.from_numpy(image)[None, None].float())[0, 0].double().numpy()
    reference = radon(image, ct.angles_deg.numpy(), circle=circle)
    assert ours.shape == reference.shape
    assert np.linalg.norm(ours - reference) < 0.01 * np.linalg.norm(reference)


@pytest.mark.parametrize(("size", "circle"), [(64, False), (65, True)])
def test_fbp_matches_iradon(astra, size, circle):
    image = phantom(size, circle)
    ct = CT(size, n_views=30, circle=circle, backend="astra")
    sinogram = radon(image, ct.angles_deg.numpy(), circle=circle)
    ours = ct.A_dagger(torch.from_numpy(sinogram)[None, None].float())[0, 0].double().numpy()
    reference = iradon(sinogram, ct.angles_deg.numpy(), circle=circle, filter_name="ramp")
    assert abs(psnr(ours, image) - psnr(reference, image)) < 0.5


def test_gradients_flow_through_the_autograd_functions(astra):
    ct = CT(8, n_views=3, backend="astra")
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    y = torch.rand(1, 1, ct.n_detectors, 3, dtype=torch.float64, requires_grad=True)
    # ASTRA computes in float32: finite differences of these linear maps need a large step.
    check = {"eps": 0.1, "atol": 1e-4, "rtol": 1e-4}
    assert torch.autograd.gradcheck(ct.A, (x,), **check)
    assert torch.autograd.gradcheck(ct.A_adjoint, (y,), **check)
    assert torch.autograd.gradcheck(ct.A_dagger, (y,), **check)
    assert torch.autograd.gradgradcheck(ct.A, (x,), **check)


def test_batch_and_channels_are_independent_images(astra):
    ct = CT(20, n_views=7, backend="astra")
    x = torch.rand(2, 3, 20, 20)
    y = ct.A(x)
    assert y.shape == (2, 3, ct.n_detectors, 7)
    assert torch.allclose(y[1, 2], ct.A(x[1:2, 2:3])[0, 0])
    assert torch.allclose(ct.A_adjoint(y)[0, 1], ct.A_adjoint(y[0:1, 1:2])[0, 0])
    assert ct.A_dagger(y).shape == x.shape


def test_matches_the_builtin_backend(astra):
    x = torch.rand(2, 1, 24, 24)
    astra_ct, torch_ct = CT(24, 10, backend="astra"), CT(24, 10, backend="torch")
    y = torch_ct.A(x)
    assert torch.linalg.norm(astra_ct.A(x) - y) < 0.02 * torch.linalg.norm(y)


def test_auto_chooses_astra_when_the_matrices_would_not_fit(astra, monkeypatch, caplog):
    monkeypatch.setattr(eilab_radon, "available_memory", lambda: {"cpu": 1000})
    with caplog.at_level(logging.INFO, logger="eilab.physics.ct"):
        ct = CT(32, n_views=9)
    assert ct.backend == "astra"
    assert "backend 'astra' (auto: the stored matrices would not fit" in caplog.text
    assert not hasattr(ct, "projector")


def test_a_missing_astra_is_named_with_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "astra", None)
    monkeypatch.setitem(sys.modules, "astra.experimental", None)
    with pytest.raises(AstraNotInstalledError, match=r"pip install 'eilab\[astra\]'"):
        CT(16, n_views=4, backend="astra")
    monkeypatch.setattr(eilab_radon, "available_memory", lambda: {"cpu": 1000})
    with pytest.raises(MemoryError, match="matrix-free backend='astra'"):
        CT(16, n_views=4)
