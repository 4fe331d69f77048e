"""Discrete parallel-beam Radon transform as sparse matrices, in scikit-image's geometry.

The forward projector reproduces ``skimage.transform.radon``: each view rotates the image
(bilinear interpolation, zero outside) about pixel (N//2, N//2) and sums along columns. Written
as a sparse matrix, its transpose is the exact adjoint (back-projection). The FBP back-projector
reproduces ``skimage.transform.iradon``: pixel-driven, linear interpolation along the detector.
"""

from __future__ import annotations

import math
import warnings

import torch

# The CSR matrices here are built by torch itself and are valid by construction.
warnings.filterwarnings(
    "ignore", message="Sparse CSR tensor support is in beta", category=UserWarning
)

FILTERS = ("ramp", "shepp-logan", "cosine", "hamming", "hann")


def n_detectors(img_size: int, circle: bool) -> int:
    """Number of detector bins: N inside the circle, else ceil(sqrt(2)·N) as scikit-image."""
    return img_size if circle else math.ceil(math.sqrt(2) * img_size)


def _coalesced_csr(
    rows: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor, shape: tuple[int, int]
) -> torch.Tensor:
    """Sum duplicate entries and return a float32 CSR matrix with int32 indices."""
    indices = torch.stack([rows, cols])
    coo = torch.sparse_coo_tensor(indices, vals, shape, check_invariants=False).coalesce()
    csr = coo.to_sparse_csr()
    return torch.sparse_csr_tensor(
        csr.crow_indices().to(torch.int32),
        csr.col_indices().to(torch.int32),
        csr.values().to(torch.float32),
        shape,
        check_invariants=False,
    )


def projector_matrix(img_size: int, angles_deg: torch.Tensor, circle: bool) -> torch.Tensor:
    """Sparse matrix of shape (n_det·n_views, N²) mapping an image to its sinogram.

    Row ``d * n_views + v`` is detector bin d at view v, matching scikit-image's (det, view)
    sinogram layout. Built in float64, stored as float32.
    """
    N = img_size
    D = n_detectors(N, circle)
    center = D // 2
    offset = 0 if circle else (D // 2 - N // 2)
    det = torch.arange(D, dtype=torch.float64) - center
    along = torch.arange(D, dtype=torch.float64) - center
    t, s = torch.meshgrid(det, along, indexing="ij")
    rows, cols, vals = [], [], []
    for view, angle in enumerate(torch.deg2rad(angles_deg.to(torch.float64))):
        cos_a, sin_a = torch.cos(angle), torch.sin(angle)
        col = cos_a * t + sin_a * s + center - offset
        row = -sin_a * t + cos_a * s + center - offset
        r0, c0 = torch.floor(row), torch.floor(col)
        fr, fc = row - r0, col - c0
        det_index = torch.arange(D).view(D, 1).expand(D, D)
        for dr, dc, w in (
            (0, 0, (1 - fr) * (1 - fc)),
            (0, 1, (1 - fr) * fc),
            (1, 0, fr * (1 - fc)),
            (1, 1, fr * fc),
        ):
            rr, cc = r0.long() + dr, c0.long() + dc
            keep = (rr >= 0) & (rr < N) & (cc >= 0) & (cc < N) & (w > 0)
            rows.append(det_index[keep] * len(angles_deg) + view)
            cols.append(rr[keep] * N + cc[keep])
            vals.append(w[keep])
    shape = (D * len(angles_deg), N * N)
    return _coalesced_csr(torch.cat(rows), torch.cat(cols), torch.cat(vals), shape)


def fbp_backprojector_matrix(img_size: int, angles_deg: torch.Tensor, n_bins: int) -> torch.Tensor:
    """Sparse matrix (N², n_bins·n_views): iradon's pixel-driven back-projection."""
    N = img_size
    radius = N // 2
    xpr, ypr = torch.meshgrid(
        torch.arange(N, dtype=torch.float64) - radius,
        torch.arange(N, dtype=torch.float64) - radius,
        indexing="ij",
    )
    pixel = torch.arange(N * N)
    rows, cols, vals = [], [], []
    for view, angle in enumerate(torch.deg2rad(angles_deg.to(torch.float64))):
        u = (ypr * torch.cos(angle) - xpr * torch.sin(angle)).flatten() + n_bins // 2
        inside = (u >= 0) & (u <= n_bins - 1)
        i0 = torch.floor(u).long()
        frac = u - i0
        for di, w in ((0, 1 - frac), (1, frac)):
            keep = inside & (w > 0) & (i0 + di <= n_bins - 1)
            rows.append(pixel[keep])
            cols.append((i0[keep] + di) * len(angles_deg) + view)
            vals.append(w[keep])
    shape = (N * N, n_bins * len(angles_deg))
    return _coalesced_csr(torch.cat(rows), torch.cat(cols), torch.cat(vals), shape)


def fourier_filter(size: int, filter_name: str) -> torch.Tensor:
    """Ramp filter (Kak & Slaney eq. 61) times an optional window, as in scikit-image."""
    if filter_name not in FILTERS:
        raise ValueError(f"filter_name must be one of {FILTERS}, got {filter_name!r}")
    n = torch.cat([torch.arange(1, size // 2 + 1, 2), torch.arange(size // 2 - 1, 0, -2)]).to(
        torch.float64
    )
    f = torch.zeros(size, dtype=torch.float64)
    f[0] = 0.25
    f[1::2] = -1 / (math.pi * n) ** 2
    ramp = 2 * torch.fft.fft(f).real
    freq = torch.fft.fftfreq(size, dtype=torch.float64)
    if filter_name == "shepp-logan":
        omega = math.pi * freq[1:]
        ramp[1:] *= torch.sin(omega) / omega
    elif filter_name == "cosine":
        ramp *= torch.fft.fftshift(
            torch.sin(torch.linspace(0, math.pi, size + 1, dtype=torch.float64)[:-1])
        )
    elif filter_name == "hamming":
        ramp *= torch.fft.fftshift(torch.hamming_window(size, periodic=False, dtype=torch.float64))
    elif filter_name == "hann":
        ramp *= torch.fft.fftshift(torch.hann_window(size, periodic=False, dtype=torch.float64))
    return ramp
