"""Matrix-free parallel-beam Radon transform on the ASTRA Toolbox, in scikit-image's geometry.

``CT(backend="astra")`` computes its projections here instead of storing matrices, so its memory
is that of the images and sinograms only (clinical 512² × 720 views and beyond). ASTRA
(astra-toolbox on PyPI, GPLv3) is an optional extra, ``pip install "eilab[astra]"``, imported
only when this backend is built; eilab's own code stays MIT, but whoever distributes eilab
together with astra-toolbox distributes a combined work under the GPLv3.

Geometry: the same rays as ``skimage.transform.radon`` and eilab's built-in matrices. View v at
θ = angles_deg[v] integrates along (sin θ, -cos θ) in (x = column, y = -row) coordinates; detector
bin d lies (d - n_detectors//2) pixels along (cos θ, sin θ) from the rotation centre, pixel
(N//2, N//2). ASTRA's ``parallel_vec`` geometry takes those vectors per view, and the volume
window is shifted so that its origin is that pixel's centre (ASTRA's default centres are half
a pixel away for even sizes). ``circle=True`` treats the image as zero outside the disk inscribed
in it (the image is masked before projecting and after back-projecting).

Projectors: on the CPU ASTRA's ``linear`` projector (Joseph's method: linear interpolation
along the pixel rows or columns each ray crosses), whose back-projection is its exact transpose:
<Ax, y> = <x, Aᵀy> to float32 rounding (relative error 3e-10 to 2e-7 measured at 33²-256²).
Its sinograms are within 0.2-0.6 % (relative L2, 256²-64²) of scikit-image's bilinear
rotate-and-sum, and FBP through it within 0.3 dB PSNR of ``iradon``. On CUDA
tensors ASTRA's ``cuda`` projector pair runs on the tensor's GPU with zero-copy DLPack; its
back-projection is pixel-driven, not the exact transpose of its ray-driven forward (a relative
mismatch near 1e-3 was reported for it), so adjointness there holds only to about that. That
path is checked by the tests marked ``gpu`` only: it was written without a GPU to run them.
ASTRA computes in float32: other float dtypes are computed in float32 and cast back.

Cost, measured on a 2-core CPU for a batch of 8: at 256² × 180 views the forward takes 1.4 s
and the back-projection 0.8 s (the built-in matrices: 0.7 s and 0.9 s, after an 80 s build,
1.65 GB peak); at 512² × 720 views 23 s and 15 s, 0.58 GB peak for the whole process (0.92
GB beside the bench environment's CUDA build of torch: experiments/bench/scaling_cpu.md).
ASTRA's CPU projectors run on one thread.

Both directions are ``torch.autograd.Function``s whose backward is the other direction, so
gradients (and gradients of gradients) flow through ``A``, ``A_adjoint`` and FBP.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import torch

from eilab.physics import radon

PACKAGE = "astra-toolbox==2.5.0"


class AstraNotInstalledError(ImportError):
    """CT's ``astra`` backend was asked for but the astra-toolbox package does not import."""


def import_astra() -> ModuleType:
    """The ``astra`` module (with ``astra.experimental``), or AstraNotInstalledError saying how."""
    try:
        importlib.import_module("astra.experimental")
        return importlib.import_module("astra")
    except ImportError as error:
        raise AstraNotInstalledError(
            f"CT backend 'astra' needs the ASTRA Toolbox, which is not importable ({error}). "
            f"Install it with: pip install 'eilab[astra]' (or pip install {PACKAGE}); "
            "it is GPLv3-licensed."
        ) from error


def is_available() -> bool:
    """Whether the astra-toolbox package imports here."""
    try:
        import_astra()
    except AstraNotInstalledError:
        return False
    return True


def working_memory(img_size: int, n_detectors: int, n_views: int) -> int:
    """Bytes for one image: CT's two masks, float32 images and sinograms in and out."""
    return 4 * (4 * img_size**2 + 2 * n_detectors * n_views)


def volume_geometry(img_size: int) -> dict:
    """ASTRA volume geometry whose origin is the centre of pixel (N//2, N//2), as scikit-image."""
    N, c = img_size, img_size // 2
    return import_astra().create_vol_geom(N, N, -c - 0.5, N - c - 0.5, c + 0.5 - N, c + 0.5)


def projection_geometry(angles_deg: torch.Tensor, n_detectors: int) -> dict:
    """ASTRA ``parallel_vec`` geometry: per view the ray, detector centre and bin direction."""
    theta = torch.deg2rad(angles_deg.detach().cpu().to(torch.float64))
    cos, sin = torch.cos(theta), torch.sin(theta)
    # ASTRA centres bin (D-1)/2 on the detector centre; scikit-image centres bin D//2.
    shift = (n_detectors - 1) / 2 - n_detectors // 2
    vectors = torch.stack([sin, -cos, shift * cos, shift * sin, cos, sin], dim=1)
    return import_astra().create_proj_geom("parallel_vec", n_detectors, vectors.numpy())


class AstraRadon:
    """Radon transform of (B, C, N, N) images to (B, C, n_detectors, n_views) sinograms.

    Holds only the geometry: an ASTRA projector is created for each call on the tensor's device
    (about 1 ms) and deleted after it, so instances copy, pickle and move between devices freely.
    """

    def __init__(
        self, img_size: int, angles_deg: torch.Tensor, n_detectors: int, circle: bool
    ) -> None:
        import_astra()
        self.img_size, self.n_views, self.n_detectors = img_size, len(angles_deg), n_detectors
        self.volume = volume_geometry(img_size)
        self.projection = projection_geometry(angles_deg, n_detectors)
        self.mask = radon.disk_mask(img_size) if circle else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Sinograms of the images, differentiable (backward: the back-projection)."""
        return _Project.apply(x, self)

    def backproject(self, y: torch.Tensor) -> torch.Tensor:
        """Back-projection of the sinograms, differentiable (backward: the projection)."""
        return _Backproject.apply(y, self)

    def project_(self, x: torch.Tensor) -> torch.Tensor:
        """Forward projection without autograd: (B, C, N, N) -> (B, C, n_det, n_views)."""
        B, C = x.shape[:2]
        images = self._masked(x.detach().to(torch.float32)).reshape(-1, *x.shape[-2:])
        images = images.contiguous()
        sinograms = images.new_zeros(images.shape[0], self.n_views, self.n_detectors)
        with _Projector(self, x.device) as (astra, projector):
            for image, sinogram in zip(images, sinograms, strict=True):
                astra.experimental.direct_FP2D(projector, image, sinogram)
        return sinograms.transpose(-1, -2).reshape(B, C, self.n_detectors, self.n_views).to(x)

    def backproject_(self, y: torch.Tensor) -> torch.Tensor:
        """Back-projection without autograd: (B, C, n_det, n_views) -> (B, C, N, N)."""
        B, C = y.shape[:2]
        sinograms = y.detach().to(torch.float32).transpose(-1, -2)
        sinograms = sinograms.reshape(-1, self.n_views, self.n_detectors).contiguous()
        images = sinograms.new_zeros(sinograms.shape[0], self.img_size, self.img_size)
        with _Projector(self, y.device) as (astra, projector):
            for image, sinogram in zip(images, sinograms, strict=True):
                astra.experimental.direct_BP2D(projector, image, sinogram)
        return self._masked(images).reshape(B, C, self.img_size, self.img_size).to(y)

    def _masked(self, images: torch.Tensor) -> torch.Tensor:
        """Images times the disk mask when ``circle``, else unchanged."""
        return images if self.mask is None else images * self.mask.to(images.device)


class _Projector:
    """Context: an ASTRA projector for the device, deleted on exit (CUDA synchronised around)."""

    def __init__(self, radon_: AstraRadon, device: torch.device) -> None:
        self.radon, self.device = radon_, device

    def __enter__(self) -> tuple[ModuleType, int]:
        astra = import_astra()
        kind = "linear"
        if self.device.type == "cuda":
            if not astra.use_cuda():
                raise RuntimeError(
                    "CT backend 'astra' got CUDA tensors but this astra-toolbox build has no "
                    "CUDA support (astra.use_cuda() is False); move the data to the CPU."
                )
            astra.set_gpu_index(self.device.index or 0)
            torch.cuda.synchronize(self.device)  # ASTRA runs on its own stream
            kind = "cuda"
        elif self.device.type != "cpu":
            raise RuntimeError(f"CT backend 'astra' runs on cpu and cuda, not {self.device.type}")
        self.astra = astra
        self.id = astra.create_projector(kind, self.radon.projection, self.radon.volume)
        return astra, self.id

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.astra.projector.delete(self.id)


class _Project(torch.autograd.Function):
    """y = A x on ASTRA; the gradient is the back-projection of the output's gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, op: AstraRadon) -> torch.Tensor:
        ctx.op = op
        return op.project_(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return _Backproject.apply(grad, ctx.op), None


class _Backproject(torch.autograd.Function):
    """x = Aᵀ y on ASTRA; the gradient is the projection of the output's gradient."""

    @staticmethod
    def forward(ctx, y: torch.Tensor, op: AstraRadon) -> torch.Tensor:
        ctx.op = op
        return op.backproject_(y)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return _Project.apply(grad, ctx.op), None
