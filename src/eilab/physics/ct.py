"""Sparse-view parallel-beam CT: y = Radon(x), A† = filtered back-projection."""

from __future__ import annotations

import logging
import math

import torch
from torch import nn

from eilab.physics import astra_radon, radon, torch_radon
from eilab.physics.base import LinearPhysics
from eilab.physics.radon import SparseOperator, full_precision

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "torch_radon", "astra")
# backend="auto" builds the stored matrices only while holding them takes at most REST_SHARE of
# the available memory of the host and of the current CUDA device, and building them (on the
# host) at most PEAK_SHARE of the host's: the rest is left to data, network and optimiser.
# Past that it chooses the matrix-free "astra" backend when astra-toolbox imports.
REST_SHARE = 0.5
PEAK_SHARE = 0.8
# backend="auto" also chooses "astra", when it imports, over matrices whose build is predicted
# (radon.estimate_build_seconds) to take longer than this: 256² × 720 views, about 100 s.
AUTO_BUILD_LIMIT_S = 30.0


def _apply_to_images(
    op: SparseOperator, x: torch.Tensor, out_hw: tuple[int, int], transpose: bool
) -> torch.Tensor:
    """Apply a sparse operator to every (batch, channel) image of a (B, C, H, W) tensor."""
    B, C = x.shape[:2]
    with full_precision(x) as x:
        columns = x.reshape(B * C, -1).t()
        return op(columns, transpose).t().reshape(B, C, *out_hw)


class CT(LinearPhysics):
    """2-D parallel-beam Radon transform with ``n_views`` angles evenly over [0°, 180°).

    Geometry, detector count and FBP scaling follow scikit-image's ``radon``/``iradon``, so
    sinograms (shape (B, C, n_detectors, n_views)) are interchangeable with it. Values are
    un-normalised line integrals (a pixel contributes its value per unit path length), as in
    the original EI code; the paper's α assumes that scale. ``A_adjoint`` is the exact
    transpose of ``A``; ``A_dagger`` is FBP with a ramp filter and an optional window.

    Backends: ``"torch"`` stores the operator as sparse matrices (CPU and CUDA), about 70 bytes
    × N² × views, built in blocks on the host; it refuses only when building cannot fit in the
    host's available memory. ``"astra"`` stores nothing: it projects with the ASTRA Toolbox
    (``eilab.physics.astra_radon``; optional extra ``pip install "eilab[astra]"``, GPLv3) on
    the CPU and on CUDA, in the same geometry, and its ``A_dagger`` is the same filter followed
    by its exact back-projection. ``"auto"`` is ``"torch"`` while the matrices fit the rule above
    (REST_SHARE, PEAK_SHARE) and build within AUTO_BUILD_LIMIT_S, else ``"astra"`` when
    astra-toolbox imports; matrices that do not fit are otherwise refused, with the numbers,
    before allocating. The chosen backend is logged.
    ``"torch_radon"`` uses the torch_radon package when it is importable and
    ``eilab.physics.torch_radon`` (the same API on eilab's matrices) otherwise; its ``A_dagger``
    is torch-radon's FBP: ``filter_sinogram`` then the exact back-projection.
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
        self.filter_name = filter_name
        self.backend = _resolve_backend(backend, img_size, n_views, circle)
        angles = torch.arange(n_views, dtype=torch.float64) * (180.0 / n_views)
        self.register_buffer("angles_deg", angles.float(), persistent=False)
        self.n_detectors = radon.n_detectors(img_size, circle)
        self.fbp_bins = radon.n_detectors(img_size, circle=False)
        self.radon = self.engine = None
        if self.backend == "astra":
            self.engine = astra_radon.AstraRadon(img_size, angles, self.n_detectors, circle)
        elif self.backend == "torch_radon":
            self.radon = torch_radon.radon_class()(
                img_size, torch.deg2rad(angles), det_count=self.n_detectors, clip_to_circle=circle
            )
        else:
            self.projector = SparseOperator(radon.projector_blocks(img_size, angles, circle))
            self.backprojector = SparseOperator(
                radon.fbp_backprojector_blocks(img_size, angles, self.fbp_bins)
            )
        padded = max(64, 2 ** math.ceil(math.log2(2 * self.fbp_bins)))
        self.register_buffer("filter", radon.fourier_filter(padded, filter_name).float(), False)
        mask = radon.disk_mask(img_size) if circle else torch.ones(img_size, img_size)
        self.register_buffer("fbp_mask", mask, persistent=False)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        """Sinogram of each image: (B, C, N, N) -> (B, C, n_detectors, n_views)."""
        self._check_image(x)
        if self.engine is not None:
            with full_precision(x) as x:
                return self.engine.forward(x)
        if self.radon is not None:
            with full_precision(x) as x:
                return self.radon.forward(x).transpose(-1, -2)
        return _apply_to_images(self.projector, x, (self.n_detectors, self.n_views), False)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Exact back-projection (transpose of ``A``): (B, C, n_det, n_views) -> (B, C, N, N)."""
        self._check_sinogram(y, self.n_detectors)
        if self.engine is not None:
            with full_precision(y) as y:
                return self.engine.backproject(y)
        if self.radon is not None:
            with full_precision(y) as y:
                return self.radon.backprojection(y.transpose(-1, -2).contiguous())
        return _apply_to_images(self.projector, y, (self.img_size, self.img_size), True)

    def A_dagger(self, y: torch.Tensor) -> torch.Tensor:
        """Filtered back-projection, scaled like ``skimage.transform.iradon``."""
        self._check_sinogram(y, self.n_detectors)
        if self.radon is not None:
            with full_precision(y) as y:
                sinograms = y.transpose(-1, -2).contiguous()
                image = self.radon.backprojection(
                    self.radon.filter_sinogram(sinograms, self.filter_name)
                )
                return image * self.fbp_mask.to(image.dtype)
        filtered = self.filter_sinogram(y)
        if self.engine is not None:  # the bins of the sinogram itself: the disk's when circle
            first = self.fbp_bins // 2 - self.n_detectors // 2
            image = self.engine.backproject(filtered[..., first : first + self.n_detectors, :])
        else:
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


def _resolve_backend(backend: str, img_size: int, n_views: int, circle: bool) -> str:
    """The backend to build; refuse, before allocating, stored matrices that cannot fit."""
    if backend == "torch_radon":
        log.info("CT %d² × %d views: backend 'torch_radon'", img_size, n_views)
        return backend
    if backend == "astra":
        return _matrix_free(img_size, n_views, circle, "")
    need = radon.estimate_memory(img_size, n_views, circle)
    available = radon.available_memory()
    if backend == "auto":
        shortfall = radon.memory_shortfall(need, available, REST_SHARE, PEAK_SHARE)
    else:
        shortfall = radon.memory_shortfall(need, {"cpu": available["cpu"]}, 1.0, 1.0)
    if shortfall and backend == "auto" and astra_radon.is_available():
        why = f" (auto: the stored matrices would not fit: {shortfall})"
        return _matrix_free(img_size, n_views, circle, why)
    build_s = radon.estimate_build_seconds(img_size, n_views, circle)
    slow = build_s > AUTO_BUILD_LIMIT_S
    if slow and not shortfall and backend == "auto" and astra_radon.is_available():
        why = f" (auto: building the stored matrices would take about {build_s:.0f} s)"
        return _matrix_free(img_size, n_views, circle, why)
    if shortfall:
        raise MemoryError(_refusal(img_size, n_views, need, available, shortfall))
    log.log(
        logging.WARNING if slow else logging.INFO,
        "CT %d² × %d views: backend 'torch' (%s at rest, about %.0f s to build)",
        *(img_size, n_views, radon.gigabytes(need.rest), build_s),
    )
    return "torch"


def _matrix_free(img_size: int, n_views: int, circle: bool, why: str) -> str:
    """Choose "astra" (logging why) unless one image and its sinogram cannot fit in the host."""
    need = astra_radon.working_memory(img_size, radon.n_detectors(img_size, circle), n_views)
    available = radon.host_available()
    if need > available:
        raise MemoryError(
            f"CT {img_size}² × {n_views} views with backend 'astra' needs about "
            f"{radon.gigabytes(need)} for one image and its sinogram; available "
            f"{radon.gigabytes(available)} on cpu. Use a smaller size or fewer views."
        )
    log.info("CT %d² × %d views: backend 'astra'%s", img_size, n_views, why)
    return "astra"


def _refusal(
    img_size: int, n_views: int, need: radon.MatrixMemory, available: dict[str, int], why: str
) -> str:
    """The refusal message: sizes, memory needed and available, the rule that failed, a way out."""
    free = ", ".join(f"{radon.gigabytes(b)} on {device}" for device, b in available.items())
    return (
        f"CT {img_size}² × {n_views} views needs about {radon.gigabytes(need.rest)} at rest "
        f"({radon.gigabytes(need.peak)} to build); available {free}: {why}. Use a smaller "
        "size or fewer views, or the matrix-free backend='astra', which stores no matrices "
        "(install it with pip install 'eilab[astra]'; backend='auto' then chooses it by "
        "itself)."
    )
