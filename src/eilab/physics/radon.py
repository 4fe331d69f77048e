"""Discrete parallel-beam Radon transform as sparse matrices, in scikit-image's geometry.

The forward projector reproduces ``skimage.transform.radon``: each view rotates the image
(bilinear interpolation, zero outside) about pixel (N//2, N//2) and sums along columns. Written
as a sparse matrix, its transpose is the exact adjoint (back-projection). The FBP back-projector
reproduces ``skimage.transform.iradon``: pixel-driven, linear interpolation along the detector.
Both accept any angles; only the FBP scale π/(2·views) assumes views evenly over [0°, 180°).

Memory: a matrix is built as CSR row blocks (a few detector bins, or a few pixels, for every view
at once); each block is summed, compressed and transposed before the next is computed, so the
build needs the stored size plus one block's work space, not several copies of the whole
matrix. ``estimate_memory`` predicts both before anything is allocated, and ``index_dtype``
keeps CSR indices exact past 2³¹ entries.
"""

from __future__ import annotations

import ctypes
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

# The CSR matrices here are built by torch itself and are valid by construction.
warnings.filterwarnings(
    "ignore", message="Sparse CSR tensor support is in beta", category=UserWarning
)

FILTERS = ("ramp", "shepp-logan", "cosine", "hamming", "hann")
INT32_MAX = 2**31 - 1

# Block sizes: up to BLOCK_SAMPLES ray samples (projector) or pixel-views (FBP) per block, unless
# that takes more than MAX_BLOCKS blocks: small problems (128² × 50 views) build in one block,
# large ones in at most MAX_BLOCKS, whose row pointers then cost < 1 % of the matrices.
BLOCK_SAMPLES = 2**21
MAX_BLOCKS = 64

# Calibration, measured on this module's matrices (see ``estimate_memory``): stored entries per
# pixel and view are at most 2.33 for the projector (2.03 when ``circle``; the maximum over
# angles, reached near 40°) and 2 for the FBP back-projector (two detector bins per pixel).
PROJECTOR_ENTRIES = {False: 2.35, True: 2.05}
FBP_ENTRIES = 2.0
# Peak bytes of temporaries per sample of one block while it is built (measured, rounded up).
WORK_BYTES_PER_SAMPLE = 360


# Build speed, stored entries (projector + FBP back-projector) per second: 2.2-2.9 million
# measured on a 2-core Xeon VM for 128² × 50 up to 256² × 360 views (1.3 to 47 s); the build
# runs mostly on one core, so more cores barely help. The lower bound, rounded down.
BUILD_ENTRIES_PER_S = 2.0e6


class MatrixMemory(NamedTuple):
    """Bytes the stored matrices hold at rest, and at the peak of building them."""

    rest: int
    peak: int


def n_detectors(img_size: int, circle: bool) -> int:
    """Number of detector bins: N inside the circle, else ceil(sqrt(2)·N) as scikit-image."""
    return img_size if circle else math.ceil(math.sqrt(2) * img_size)


def index_dtype(nnz: int, n_cols: int) -> torch.dtype:
    """int32 CSR indices while row pointers (<= nnz) and columns (< n_cols) fit, else int64."""
    return torch.int32 if max(nnz, n_cols - 1) <= INT32_MAX else torch.int64


def _block_groups(n_groups: int, samples_per_group: int) -> int:
    """How many groups (detector bins or pixels) one block takes."""
    n_blocks = math.ceil(n_groups * samples_per_group / BLOCK_SAMPLES)
    return math.ceil(n_groups / min(max(n_blocks, 1), MAX_BLOCKS))


def _matrix_bytes(nnz: float, n_rows: int, n_cols: int, n_groups: int, per_block: int) -> float:
    """Bytes of a matrix and its transpose stored as row blocks (values float32)."""
    n_blocks = math.ceil(n_groups / per_block)
    block_nnz = nnz / n_blocks
    entry = 2 * 4 + index_dtype(int(block_nnz), n_cols).itemsize + 4  # + transpose's column
    crows = 4 * (n_rows + n_blocks) + 4 * n_blocks * (n_cols + 1)
    return nnz * entry + crows


def estimate_memory(
    img_size: int, n_views: int, circle: bool, fbp: bool = True, det_spacing: float = 1.0
) -> MatrixMemory:
    """Bytes of the projector (and FBP back-projector) of ``img_size``² × ``n_views``.

    An upper estimate from the calibrated entry counts above: every stored entry costs a float32
    value and an int32 column index (int64 past 2³¹) in the matrix and in its transpose, plus
    the row pointers of every block. The build peak adds one block's temporaries. Denser rays
    (``det_spacing`` < 1) store proportionally more entries.
    """
    N, V = img_size, n_views
    D = n_detectors(N, circle)
    proj_nnz = PROJECTOR_ENTRIES[circle] * N * N * V / min(det_spacing, 1.0)
    per_bin = _block_groups(D, D * V)
    rest = _matrix_bytes(proj_nnz, D * V, N * N, D, per_bin)
    work = per_bin * D * V
    if fbp:
        bins = n_detectors(N, circle=False)
        per_pixel = _block_groups(N * N, V)
        rest += _matrix_bytes(FBP_ENTRIES * N * N * V, N * N, bins * V, N * N, per_pixel)
        work = max(work, per_pixel * V)
    return MatrixMemory(int(rest), int(rest + WORK_BYTES_PER_SAMPLE * work))


def estimate_build_seconds(img_size: int, n_views: int, circle: bool) -> float:
    """Seconds to build the projector and the FBP back-projector, predicted from their entry
    counts at BUILD_ENTRIES_PER_S (the build runs on the host, whatever the device)."""
    entries = (PROJECTOR_ENTRIES[circle] + FBP_ENTRIES) * img_size**2 * n_views
    return entries / BUILD_ENTRIES_PER_S


def available_memory() -> dict[str, int]:
    """Bytes free now: on the host (within its cgroup limit) and on the current CUDA device.

    The GPU entry, present only when CUDA is available, initialises CUDA to ask the driver.
    """
    available = {"cpu": host_available()}
    if torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info()
        available[f"cuda:{torch.cuda.current_device()}"] = free
    return available


def host_available() -> int:
    """MemAvailable from /proc/meminfo (else the OS's free pages), capped by a cgroup v2 limit."""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        line = next(x for x in meminfo.read_text().splitlines() if x.startswith("MemAvailable"))
        free = int(line.split()[1]) * 1024
    else:
        pages = "SC_AVPHYS_PAGES" if "SC_AVPHYS_PAGES" in os.sysconf_names else "SC_PHYS_PAGES"
        free = os.sysconf(pages) * os.sysconf("SC_PAGE_SIZE")
    limit, used = Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")
    if limit.exists() and used.exists() and limit.read_text().strip() != "max":
        free = min(free, int(limit.read_text()) - int(used.read_text()))
    return free


def memory_shortfall(
    need: MatrixMemory, available: dict[str, int], rest_share: float, peak_share: float
) -> str | None:
    """Why the matrices do not fit, or None when they do.

    They fit when building them takes at most ``peak_share`` of the host's available memory
    (they are built there) and holding them at most ``rest_share`` of every listed device's.
    """
    reasons = []
    if need.peak > peak_share * available["cpu"]:
        reasons.append(f"building them needs more than {peak_share:.0%} of the memory on cpu")
    for device, free in available.items():
        if need.rest > rest_share * free:
            reasons.append(
                f"holding them needs more than {rest_share:.0%} of the memory on {device}"
            )
    return " and ".join(reasons) or None


def gigabytes(n_bytes: float) -> str:
    """A byte count as '12.7 GB' (two decimals below 1 GB)."""
    return f"{n_bytes / 1e9:.{2 if n_bytes < 1e9 else 1}f} GB"


def _compact(coo: torch.Tensor) -> torch.Tensor:
    """CSR copy of a coalesced COO matrix: float32 values, the narrowest exact index type."""
    csr = coo.to_sparse_csr()
    dtype = index_dtype(coo.values().numel(), coo.shape[1])
    return torch.sparse_csr_tensor(
        csr.crow_indices().to(dtype),
        csr.col_indices().to(dtype),
        csr.values().to(torch.float32),
        csr.shape,
        check_invariants=False,
    )


def _block_pair(
    rows: list[torch.Tensor], cols: list[torch.Tensor], vals: list[torch.Tensor], shape
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum duplicate entries of one row block; return it and its transpose as CSR."""
    indices = torch.empty(2, sum(r.numel() for r in rows), dtype=torch.int64)
    torch.cat(rows, out=indices[0])
    torch.cat(cols, out=indices[1])
    rows.clear(), cols.clear()
    coo = torch.sparse_coo_tensor(indices, torch.cat(vals), shape, check_invariants=False)
    vals.clear()
    coo = coo.coalesce()
    pair = _compact(coo), _compact(coo.t().coalesce())
    del coo
    _release_freed_memory()
    return pair


# glibc's malloc_trim, where there is one (Linux); None elsewhere.
_MALLOC_TRIM = getattr(ctypes.CDLL(None), "malloc_trim", None) if sys.platform == "linux" else None


def _release_freed_memory() -> None:
    """Give the heap pages freed by a block's temporaries back to the OS.

    After the first large free, glibc serves allocations up to 32 MB from its heap and keeps
    them when freed: without this, the process stays about twice the matrices' size after the
    build (measured: 0.95 GB instead of 0.43 GB for 256² × 90 views).
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def projector_blocks(
    img_size: int,
    angles_deg: torch.Tensor,
    circle: bool,
    det_count: int | None = None,
    det_spacing: float = 1.0,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Row blocks (and their transposes) of the matrix mapping an image to its sinogram.

    The whole matrix has shape (det_count·n_views, N²); row ``d * n_views + v`` is detector bin
    d at view v, matching scikit-image's (det, view) sinogram layout. Bin d sits at
    (d - det_count//2)·det_spacing from the centre; each ray is sampled at unit steps over
    ``n_detectors(N, circle)`` points (``circle``: the image is zero outside the inscribed disk).
    Built in float64, stored as float32.
    """
    D = det_count or n_detectors(img_size, circle)
    L = n_detectors(img_size, circle)
    V = len(angles_deg)
    angles = torch.deg2rad(angles_deg.to(torch.float64)).view(V, 1, 1)
    step = _block_groups(D, V * L)
    for d0 in range(0, D, step):
        d1 = min(d0 + step, D)
        t = (torch.arange(d0, d1, dtype=torch.float64) - D // 2).view(1, -1, 1) * det_spacing
        s = (torch.arange(L, dtype=torch.float64) - L // 2).view(1, 1, L)
        col = torch.cos(angles) * t + torch.sin(angles) * s + img_size // 2
        row = -torch.sin(angles) * t + torch.cos(angles) * s + img_size // 2
        local_row = torch.arange(d1 - d0).view(1, -1, 1) * V + torch.arange(V).view(V, 1, 1)
        rows, cols, vals = _bilinear_entries(row, col, local_row.expand_as(row), img_size)
        yield _block_pair(rows, cols, vals, ((d1 - d0) * V, img_size**2))


def _bilinear_entries(
    row: torch.Tensor, col: torch.Tensor, matrix_row: torch.Tensor, N: int
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """Matrix entries spreading each sample (row, col) bilinearly onto the N×N pixels."""
    r0, c0 = torch.floor(row), torch.floor(col)
    fr, fc = row - r0, col - c0
    r0, c0 = r0.long(), c0.long()
    rows, cols, vals = [], [], []
    for dr, dc in ((0, 0), (0, 1), (1, 0), (1, 1)):
        w = (fr if dr else 1 - fr) * (fc if dc else 1 - fc)
        rr, cc = r0 + dr, c0 + dc
        keep = (rr >= 0) & (rr < N) & (cc >= 0) & (cc < N) & (w > 0)
        rows.append(matrix_row[keep])
        cols.append(rr[keep] * N + cc[keep])
        vals.append(w[keep])
    return rows, cols, vals


def fbp_backprojector_blocks(
    img_size: int, angles_deg: torch.Tensor, n_bins: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Row blocks of the (N², n_bins·n_views) matrix of iradon's pixel-driven back-projection."""
    N, V = img_size, len(angles_deg)
    angles = torch.deg2rad(angles_deg.to(torch.float64)).view(1, V)
    step = _block_groups(N * N, V)
    for p0 in range(0, N * N, step):
        pixel = torch.arange(p0, min(p0 + step, N * N)).view(-1, 1)
        x = (pixel // N - N // 2).to(torch.float64)
        y = (pixel % N - N // 2).to(torch.float64)
        u = y * torch.cos(angles) - x * torch.sin(angles) + n_bins // 2
        inside = (u >= 0) & (u <= n_bins - 1)
        i0 = torch.floor(u).long()
        frac = u - i0
        local_pixel = (pixel - p0).expand_as(u)
        rows, cols, vals = [], [], []
        for di, w in ((0, 1 - frac), (1, frac)):
            keep = inside & (w > 0) & (i0 + di <= n_bins - 1)
            rows.append(local_pixel[keep])
            cols.append(((i0 + di) * V + torch.arange(V))[keep])
            vals.append(w[keep])
        yield _block_pair(rows, cols, vals, (pixel.numel(), n_bins * V))


class _LinearMap(torch.autograd.Function):
    """y = apply(x) for a fixed linear map whose gradient is ``apply_t`` (its transpose).

    The gradient is computed in x's precision: under bf16 autocast one may arrive in bfloat16
    (e.g. from a discriminator fed A x), which the sparse kernels do not take."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, apply: Callable, apply_t: Callable) -> torch.Tensor:
        ctx.apply_t = apply_t
        ctx.dtype = x.dtype
        return apply(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        with torch.autocast(grad.device.type, enabled=False):
            return ctx.apply_t(grad.to(ctx.dtype)), None, None


class SparseOperator(nn.Module):
    """A fixed sparse matrix M held as CSR row blocks M_k, each with its transpose M_kᵀ.

    M x stacks the M_k x; Mᵀ y sums the M_kᵀ y_k. The index/value tensors are plain
    (non-persistent) buffers, so ``.to(device/dtype)`` and DDP treat them like any other
    buffer; the CSR views are assembled per call, which costs no copy. They are not saved in
    checkpoints: the matrix is rebuilt exactly from the operator's arguments.
    """

    def __init__(self, blocks: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> None:
        super().__init__()
        self.block_rows: list[int] = []
        for k, (block, block_t) in enumerate(blocks):
            for name, csr in ((f"m{k}", block), (f"mt{k}", block_t)):
                self.register_buffer(f"{name}_crow", csr.crow_indices(), False)
                self.register_buffer(f"{name}_col", csr.col_indices(), False)
                self.register_buffer(f"{name}_val", csr.values(), False)
            self.block_rows.append(block.shape[0])
        self.n_cols = block.shape[1]

    def _csr(self, name: str, shape: tuple[int, int], dtype: torch.dtype) -> torch.Tensor:
        crow, col = getattr(self, f"{name}_crow"), getattr(self, f"{name}_col")
        values = getattr(self, f"{name}_val").to(dtype)
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)

    def _stacked(self, x: torch.Tensor) -> torch.Tensor:
        """M x, one row block at a time (a single block costs no concatenation)."""
        parts = [
            self._csr(f"m{k}", (n, self.n_cols), x.dtype) @ x for k, n in enumerate(self.block_rows)
        ]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _summed(self, y: torch.Tensor) -> torch.Tensor:
        """Mᵀ y as the sum of every block's transpose times its rows of y."""
        out = None
        for k, part in enumerate(y.split(self.block_rows)):
            term = self._csr(f"mt{k}", (self.n_cols, part.shape[0]), y.dtype) @ part
            out = term if out is None else out.add_(term)
        return out

    def forward(self, x: torch.Tensor, transpose: bool = False) -> torch.Tensor:
        """Multiply the columns of ``x`` (shape (n, k)) by M, or by Mᵀ if ``transpose``."""
        if transpose:
            return _LinearMap.apply(x, self._summed, self._stacked)
        return _LinearMap.apply(x, self._stacked, self._summed)


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


def disk_mask(img_size: int) -> torch.Tensor:
    """Ones on the disk of radius N//2 about pixel (N//2, N//2), zeros outside (as iradon)."""
    coord = torch.arange(img_size) - img_size // 2
    return ((coord[:, None] ** 2 + coord[None, :] ** 2) <= (img_size // 2) ** 2).float()


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
