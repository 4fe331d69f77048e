"""Where noise, not the null space, limits FBP on the head CT: validation FBP PSNR per setting.

For each image size, number of views and photon count I0 (post-log transmission noise, as
``noise=transmission``), the mean PSNR of FBP on the VALIDATION slices (test slices are never
read here), noiseless and from one seeded noisy acquisition per slice, and the share of the
image in the null space of A (1 − rank(A)/N², from the singular values of the small
operators). A task where FBP without noise is good but FBP with noise is far below it measures
what robust EI is for (issue 23); the 48² / 8-view task measures the null space instead.

    python experiments/noisy_ct/fbp_noise_levels.py [--sizes 48 64] [--views 8 30 45 60]
"""

from __future__ import annotations

import argparse
import time

import torch

from eilab.data.head_ct import head_ct_splits
from eilab.metrics import psnr
from eilab.physics import CT, TransmissionNoise

LEVELS = (1e3, 3e3, 1e4, 3e4, 1e5)


def null_space_share(ct: CT) -> float:
    """1 − rank(A)/N² for the operator's matrix (dense, so only for small sizes)."""
    n = ct.img_size
    basis = torch.eye(n * n).view(n * n, 1, n, n)
    matrix = torch.cat([ct.A(basis[i : i + 256]).flatten(1) for i in range(0, n * n, 256)])
    singular = torch.linalg.svdvals(matrix.double())
    rank = int((singular > singular[0] * 1e-6).sum())
    return 1 - rank / (n * n)


def row(size: int, views: int, images: torch.Tensor) -> list[str]:
    """One table row: size, views, null-space share, FBP PSNR noiseless and at every I0."""
    ct = CT(size, n_views=views)
    clean = float(psnr(ct.A_dagger(ct.A(images)), images).mean())
    cells = [str(size), str(views), f"{100 * null_space_share(ct):.0f} %", f"{clean:.2f}"]
    for level in LEVELS:
        noise = TransmissionNoise.for_field_of_view(size, I0=level)
        noisy = noise(ct.A(images), generator=torch.Generator().manual_seed(0))
        cells.append(f"{float(psnr(ct.A_dagger(noisy), images).mean()):.2f}")
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[48, 64])
    parser.add_argument("--views", type=int, nargs="+", default=[8, 30, 45, 60])
    args = parser.parse_args()
    started = time.perf_counter()
    header = ["N", "views", "null space", "FBP noiseless", *(f"I0 {level:.0e}" for level in LEVELS)]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for size in args.sizes:
        images = head_ct_splits(size).val
        for views in args.views:
            print("| " + " | ".join(row(size, views, images)) + " |", flush=True)
    print(f"\nvalidation slices only; {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
