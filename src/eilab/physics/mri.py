"""Single-coil accelerated MRI: a Cartesian subsampling of the 2-D Fourier transform."""

from __future__ import annotations

import torch
from torch import nn

from eilab.physics.base import LinearPhysics, image_size


class MRI(LinearPhysics):
    """y = M ⊙ FFT2_ortho(x): k-space sampled on a seeded set of full columns (phase encodes).

    Complex images and k-space are 2 real channels (real, imag): x and y are (B, 2, H, W).
    The mask keeps the centre ``round(center_fraction·W)`` columns of the centred (fftshift)
    spectrum plus random other columns, ``round(W / acceleration)`` in all. It is stored, shape
    (1, 1, H, W), in the unshifted layout of ``torch.fft.fft2`` (DC at index 0): the centred
    mask after ``ifftshift``. F is unitary and M a 0/1 projection, so the adjoint
    IFFT2_ortho(M ⊙ y) is also the pseudo-inverse: ``A_dagger`` is the base-class default, the
    zero-filled inverse FFT. The mask follows ``module.to(device)``; an input of another
    floating dtype gets a cast copy of it.
    """

    signed = True  # measurements take either sign: photon-counting noise is refused

    def __init__(
        self,
        img_size: int | tuple[int, int],
        acceleration: float = 4.0,
        center_fraction: float = 0.08,
        seed: int = 0,
        noise: nn.Module | None = None,
    ) -> None:
        super().__init__(noise)
        H, W = image_size(img_size)
        if acceleration < 1:
            raise ValueError(f"MRI: acceleration must be >= 1, got {acceleration}")
        if not 0 <= center_fraction <= 1:
            raise ValueError(f"MRI: center_fraction must be in [0, 1], got {center_fraction}")
        n_lines, n_center = round(W / acceleration), round(center_fraction * W)
        if n_lines < 1:
            raise ValueError(f"MRI: acceleration {acceleration} keeps none of the {W} columns")
        if n_center > n_lines:
            raise ValueError(
                f"MRI: center_fraction {center_fraction} asks for {n_center} centre columns, "
                f"more than the {n_lines} that acceleration {acceleration} allows"
            )
        start = W // 2 - n_center // 2  # fftshift puts DC at W // 2: frequencies -n//2 .. n-1-n//2
        centred = torch.zeros(W)
        centred[start : start + n_center] = 1
        generator = torch.Generator().manual_seed(seed)
        others = torch.nonzero(centred == 0).squeeze(1)
        chosen = others[torch.randperm(others.numel(), generator=generator)[: n_lines - n_center]]
        centred[chosen] = 1
        mask = torch.fft.ifftshift(centred).expand(H, W).reshape(1, 1, H, W)
        self.register_buffer("mask", mask)

    def _to_complex(self, t: torch.Tensor, name: str) -> torch.Tensor:
        """Check a (B, 2, H, W) tensor against the mask and view it as complex (B, H, W)."""
        if t.ndim != 4 or t.shape[1] != 2:
            raise ValueError(
                f"MRI: {name} must be (B, 2, H, W) with channels (real, imag), got "
                f"{tuple(t.shape)}; give a real image a zero imaginary channel, "
                "e.g. torch.cat([x, torch.zeros_like(x)], dim=1)"
            )
        if t.shape[-2:] != self.mask.shape[-2:]:
            raise ValueError(
                f"MRI: {name} spatial size {tuple(t.shape[-2:])} does not match the mask's "
                f"{tuple(self.mask.shape[-2:])}"
            )
        return torch.complex(t[:, 0], t[:, 1])

    def A(self, x: torch.Tensor) -> torch.Tensor:
        """Sample k-space: mask ⊙ FFT2_ortho(x), zeros at unsampled locations."""
        k = torch.fft.fft2(self._to_complex(x, "x"), norm="ortho")
        return torch.stack([k.real, k.imag], dim=1) * self.mask.to(x.dtype)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Zero-filled reconstruction: IFFT2_ortho(mask ⊙ y)."""
        masked = y * self.mask.to(y.dtype)
        z = torch.fft.ifft2(self._to_complex(masked, "y"), norm="ortho")
        return torch.stack([z.real, z.imag], dim=1)
