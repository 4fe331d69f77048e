"""Sparse-view parallel-beam CT: y = Radon(x), A† = filtered back-projection."""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
from torch import nn

from eilab.physics import radon
from eilab.physics.base import LinearPhysics

BACKENDS = ("auto", "torch", "torch_radon")


class _SparseMatmul(torch.autograd.Function):
    """y = M x for a fixed sparse M, whose gradient uses the precomputed transpose Mᵀ."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, M: torch.Tensor, Mt: torch.Tensor) -> torch.Tensor:
        ctx.Mt = Mt
        return M @ x

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return ctx.Mt @ grad, None, None


class _SparseOperator(nn.Module):
    """A fixed sparse matrix and its transpose kept as plain (non-persistent) buffers.

    The index/value tensors are dense buffers, so ``.to(device/dtype)`` and DDP treat them like
    any other buffer; the CSR views are assembled per call, which costs no copy. They are not
    saved in checkpoints: the matrix is rebuilt exactly from the operator's arguments.
    """

    def __init__(self, matrix: torch.Tensor) -> None:
        super().__init__()
        transpose = matrix.to_sparse_coo().t().coalesce().to_sparse_csr()
        self.shape = tuple(matrix.shape)
        for name, csr in (("m", matrix), ("mt", transpose)):
            self.register_buffer(f"{name}_crow", csr.crow_indices().to(torch.int32), False)
            self.register_buffer(f"{name}_col", csr.col_indices().to(torch.int32), False)
            self.register_buffer(f"{name}_val", csr.values().to(torch.float32), False)

    def _csr(self, name: str, shape: tuple[int, int], dtype: torch.dtype) -> torch.Tensor:
        crow, col = getattr(self, f"{name}_crow"), getattr(self, f"{name}_col")
        values = getattr(self, f"{name}_val").to(dtype)
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)

    def forward(self, x: torch.Tensor, transpose: bool = False) -> torch.Tensor:
        """Multiply the columns of ``x`` (shape (n, k)) by M, or by Mᵀ if ``transpose``."""
        rows, cols = self.shape
        M = self._csr("m", (rows, cols), x.dtype)
        Mt = self._csr("mt", (cols, rows), x.dtype)
        if transpose:
            M, Mt = Mt, M
        return _SparseMatmul.apply(x, M, Mt)


def _apply_to_images(
    op: _SparseOperator, x: torch.Tensor, out_hw: tuple[int, int], transpose: bool
) -> torch.Tensor:
    """Apply a sparse operator to every (batch, channel) image of a (B, C, H, W) tensor."""
    B, C = x.shape[:2]
    with full_precision(x) as x:
        columns = x.reshape(B * C, -1).t()
        return op(columns, transpose).t().reshape(B, C, *out_hw)


@contextmanager
def full_precision(x: torch.Tensor):
    """Compute in float32 (or the input's float64) even under autocast.

    Sparse kernels and FFTs do not support half/bfloat16 everywhere, and line integrals lose
    too much in 8 mantissa bits; autocast would otherwise lower the matmuls again.
    """
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    with torch.autocast(x.device.type, enabled=False):
        yield x


class CT(LinearPhysics):
    """2-D parallel-beam Radon transform with ``n_views`` angles evenly over [0°, 180°).

    Geometry, detector count and FBP scaling follow scikit-image's ``radon``/``iradon``, so
    sinograms (shape (B, C, n_detectors, n_views)) are interchangeable with it. Values are
    un-normalised line integrals (a pixel contributes its value per unit path length), as in
    the original EI code; the paper's α assumes that scale. ``A_adjoint`` is the exact
    transpose of ``A``; ``A_dagger`` is FBP with a ramp filter and an optional window.
    """

    def __init__(
        self,
        img_size: int,
        n_views: int = 50,
        circle: bool = False,
        filter_name: str = "ramp",
        backend: str = "auto",
        noise: nn.Module | None = None,
    ) -> None:
        super().__init__(noise)
        _validate(img_size, n_views, filter_name, backend)
        self.img_size, self.n_views, self.circle = img_size, n_views, circle
        self.backend = _resolve_backend(backend)
        angles = torch.arange(n_views, dtype=torch.float64) * (180.0 / n_views)
        self.register_buffer("angles_deg", angles.float(), persistent=False)
        self.n_detectors = radon.n_detectors(img_size, circle)
        self.fbp_bins = radon.n_detectors(img_size, circle=False)
        self.projector = _SparseOperator(radon.projector_matrix(img_size, angles, circle))
        self.backprojector = _SparseOperator(
            radon.fbp_backprojector_matrix(img_size, angles, self.fbp_bins)
        )
        padded = max(64, 2 ** math.ceil(math.log2(2 * self.fbp_bins)))
        self.register_buffer("filter", radon.fourier_filter(padded, filter_name).float(), False)
        self.register_buffer("fbp_mask", self._fbp_mask(), persistent=False)

    def _fbp_mask(self) -> torch.Tensor:
        """Ones, or zeros outside the reconstruction circle when ``circle`` (as iradon)."""
        if not self.circle:
            return torch.ones(self.img_size, self.img_size)
        coord = torch.arange(self.img_size) - self.img_size // 2
        return ((coord[:, None] ** 2 + coord[None, :] ** 2) <= (self.img_size // 2) ** 2).float()

    def A(self, x: torch.Tensor) -> torch.Tensor:
        """Sinogram of each image: (B, C, N, N) -> (B, C, n_detectors, n_views)."""
        self._check_image(x)
        return _apply_to_images(self.projector, x, (self.n_detectors, self.n_views), False)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Exact back-projection (transpose of ``A``): (B, C, n_det, n_views) -> (B, C, N, N)."""
        self._check_sinogram(y, self.n_detectors)
        return _apply_to_images(self.projector, y, (self.img_size, self.img_size), True)

    def A_dagger(self, y: torch.Tensor) -> torch.Tensor:
        """Filtered back-projection, scaled like ``skimage.transform.iradon``."""
        self._check_sinogram(y, self.n_detectors)
        filtered = self.filter_sinogram(y)
        image = _apply_to_images(self.backprojector, filtered, (self.img_size,) * 2, False)
        return image * self.fbp_mask.to(image.dtype) * (math.pi / (2 * self.n_views))

    def filter_sinogram(self, y: torch.Tensor) -> torch.Tensor:
        """Ramp-filter each projection along the detector axis (zero-padded FFT)."""
        pad_before = self.fbp_bins // 2 - self.n_detectors // 2
        pad_after = self.filter.numel() - self.n_detectors - pad_before
        with full_precision(y) as y:
            padded = nn.functional.pad(y, (0, 0, pad_before, pad_after))
            spectrum = torch.fft.fft(padded, dim=-2) * self.filter.to(y.dtype)[:, None]
            return torch.fft.ifft(spectrum, dim=-2).real[..., : self.fbp_bins, :]

    def _check_image(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[-2:] != (self.img_size, self.img_size):
            raise ValueError(
                f"CT expects images of shape (B, C, {self.img_size}, {self.img_size}), "
                f"got {tuple(x.shape)}"
            )

    def _check_sinogram(self, y: torch.Tensor, n_det: int) -> None:
        if y.dim() != 4 or y.shape[-2:] != (n_det, self.n_views):
            raise ValueError(
                f"CT expects sinograms of shape (B, C, {n_det}, {self.n_views}), "
                f"got {tuple(y.shape)}"
            )


def _validate(img_size: int, n_views: int, filter_name: str, backend: str) -> None:
    if img_size < 2:
        raise ValueError(f"CT: img_size must be >= 2, got {img_size}")
    if n_views < 1:
        raise ValueError(f"CT: n_views must be >= 1, got {n_views}")
    if filter_name not in radon.FILTERS:
        raise ValueError(f"CT: filter_name must be one of {radon.FILTERS}, got {filter_name!r}")
    if backend not in BACKENDS:
        raise ValueError(f"CT: backend must be one of {BACKENDS}, got {backend!r}")


def _resolve_backend(backend: str) -> str:
    """Only the built-in backend is implemented; say so plainly when another is requested."""
    if backend == "torch_radon":
        raise NotImplementedError(
            "CT backend 'torch_radon' is not available in eilab yet: use backend='torch' "
            "(the built-in sparse Radon transform, CPU and CUDA)."
        )
    return "torch"
