"""CT against scikit-image: same geometry, same sinograms, same FBP."""

import numpy as np
import pytest
import torch
from skimage.data import shepp_logan_phantom
from skimage.transform import iradon, radon, resize

from eilab.physics import CT
from eilab.physics.radon import FILTERS


def phantom(size: int, circle: bool) -> np.ndarray:
    image = resize(shepp_logan_phantom(), (size, size), anti_aliasing=True)
    if circle:
        coord = np.arange(size) - size // 2
        image = image * ((coord[:, None] ** 2 + coord[None, :] ** 2) <= (size // 2) ** 2)
    return image


def psnr(estimate: np.ndarray, truth: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((np.clip(estimate, 0, 1) - truth) ** 2)))


def as_batch(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array)[None, None]


@pytest.mark.parametrize("size", [64, 128])
@pytest.mark.parametrize("circle", [False, True])
def test_forward_agrees_with_skimage_radon(size, circle):
    image = phantom(size, circle)
    theta = np.arange(50) * 180 / 50
    reference = radon(image, theta, circle=circle)
    ours = CT(size, n_views=50, circle=circle).double().A(as_batch(image))[0, 0].numpy()
    assert ours.shape == reference.shape
    assert np.linalg.norm(ours - reference) / np.linalg.norm(reference) < 0.02


@pytest.mark.parametrize("size", [64, 128])
@pytest.mark.parametrize("circle", [False, True])
def test_fbp_matches_skimage_iradon(size, circle):
    image = phantom(size, circle)
    theta = np.arange(180) * 1.0
    sinogram = radon(image, theta, circle=circle)
    reference = iradon(sinogram, theta, circle=circle)
    ours = CT(size, n_views=180, circle=circle).double().A_dagger(as_batch(sinogram))[0, 0]
    assert abs(psnr(ours.numpy(), image) - psnr(reference, image)) < 0.5


@pytest.mark.parametrize("filter_name", FILTERS)
def test_every_filter_matches_skimage(filter_name):
    image = phantom(32, circle=False)
    theta = np.arange(20) * 180 / 20
    sinogram = radon(image, theta, circle=False)
    reference = iradon(sinogram, theta, circle=False, filter_name=filter_name)
    ct = CT(32, n_views=20, filter_name=filter_name).double()
    ours = ct.A_dagger(as_batch(sinogram))[0, 0].numpy()
    assert np.abs(ours - reference).max() < 1e-5 * np.abs(reference).max()


def test_detector_count_and_batching():
    ct = CT(20, n_views=6)
    assert ct.n_detectors == 29  # ceil(sqrt(2) * 20)
    x = torch.rand(4, 3, 20, 20)
    y = ct.A(x)
    assert y.shape == (4, 3, 29, 6)
    assert torch.allclose(y[2, 1], ct.A(x[2:3, 1:2])[0, 0])
    assert CT(20, n_views=6, circle=True).A(x).shape == (4, 3, 20, 6)


def test_fbp_of_a_constant_disk_is_close_to_the_constant():
    size = 64
    coord = torch.arange(size) - size // 2
    disk = ((coord[:, None] ** 2 + coord[None, :] ** 2) <= 20**2).double()[None, None]
    ct = CT(size, n_views=180).double()
    recon = ct.A_dagger(ct.A(disk))
    assert abs(float(recon[0, 0, size // 2, size // 2]) - 1) < 0.05


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"img_size": 1}, "img_size"),
        ({"n_views": 0}, "n_views"),
        ({"filter_name": "gauss"}, "filter_name"),
        ({"backend": "matrices"}, "backend"),
    ],
)
def test_bad_arguments_are_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        CT(**{"img_size": 16, **kwargs})


def test_wrong_shapes_are_rejected():
    ct = CT(16, n_views=5)
    with pytest.raises(ValueError, match="images of shape"):
        ct.A(torch.rand(1, 1, 15, 16))
    with pytest.raises(ValueError, match="sinograms of shape"):
        ct.A_adjoint(torch.rand(1, 1, 23, 4))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_inputs_are_projected_in_float32(dtype):
    ct = CT(16, n_views=5)
    x = torch.rand(2, 1, 16, 16)
    y = ct.A(x.to(dtype))
    assert y.dtype == torch.float32
    assert torch.allclose(y, ct.A(x.to(dtype).float()))


def test_autocast_does_not_lower_the_projections():
    ct = CT(16, n_views=5)
    x = torch.rand(2, 1, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = ct.A(x.bfloat16())
        fbp = ct.A_dagger(y.bfloat16())
    assert y.dtype == fbp.dtype == torch.float32
    assert torch.allclose(y, ct.A(x.bfloat16().float()))
    assert torch.allclose(fbp, ct.A_dagger(y.bfloat16().float()), atol=1e-5)
