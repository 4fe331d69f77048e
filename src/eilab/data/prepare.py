"""``make data``: get the real head CT (Debian's invesalius-examples) and check that it loads.

    python -m eilab.data.prepare              # install if missing (root on Debian), then verify
    python -m eilab.data.prepare --no-install # only verify, say how to get it if missing
    python -m eilab.data.prepare --require    # exit 2 if the file cannot be had

Exit status: 0 when the scan loads, and also when it is missing but could not be installed
(the demo then falls back to random-ellipse phantoms), unless ``--require``; 1 when the file
is there but corrupt.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from eilab.data.head_ct import (
    GET_IT,
    UNPACK_DIR,
    find_head_ct,
    head_ct_splits,
    load_inv3,
    slab_split,
    tissue_fraction,
)

PACKAGE = "invesalius-examples"


def can_apt_install() -> bool:
    """Root on a Debian-like system with apt-get."""
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    return is_root and Path("/etc/debian_version").exists() and shutil.which("apt-get") is not None


def apt_install(package: str) -> bool:
    """``apt-get install -y package``; after a failure, ``apt-get update`` once and retry."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", package]
    print("$", " ".join(install), flush=True)
    if subprocess.run(install, env=env).returncode == 0:
        return True
    print("$ apt-get update", flush=True)
    subprocess.run(["apt-get", "update"], env=env)
    return subprocess.run(install, env=env).returncode == 0


def apt_unpack(package: str) -> bool:
    """``apt-get download`` the .deb and ``dpkg-deb -x`` it into UNPACK_DIR (no root needed)."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        print(f"$ apt-get download {package}  # then dpkg-deb -x into {UNPACK_DIR}", flush=True)
        if not _apt_download(package, tmp):
            return False
        debs = sorted(Path(tmp).glob(f"{package}_*.deb"))
        UNPACK_DIR.mkdir(parents=True, exist_ok=True)
        return (
            bool(debs) and subprocess.run(["dpkg-deb", "-x", debs[-1], UNPACK_DIR]).returncode == 0
        )


def _apt_download(package: str, folder: str) -> bool:
    """``apt-get download`` into ``folder``; as root, after a failure (package lists missing
    on a fresh image), ``apt-get update`` once and retry."""
    download = ["apt-get", "download", package]
    if subprocess.run(download, cwd=folder).returncode == 0:
        return True
    if not can_apt_install():
        return False
    print("$ apt-get update", flush=True)
    subprocess.run(["apt-get", "update"])
    return subprocess.run(download, cwd=folder).returncode == 0


def obtain(path: str | None, install: bool) -> Path | None:
    """The scan's path; if it is missing and ``install``, get it with apt first.

    As root on Debian/Ubuntu: ``apt-get install``. If the file is still missing (not root, or
    a slim image whose dpkg skips /usr/share/doc): unpack the downloaded .deb into UNPACK_DIR.
    """
    try:
        return find_head_ct(path)
    except FileNotFoundError as missing:
        print(missing, file=sys.stderr)
    if path is not None or not install:
        return None
    if can_apt_install():
        apt_install(PACKAGE)
    if find_head_ct_or_none() is None:
        apt_unpack(PACKAGE)
    found = find_head_ct_or_none()
    if found is None:
        print(
            f"Could not get {PACKAGE} with apt here. To get it: `sudo apt-get install {PACKAGE}`, "
            f"or {GET_IT}.",
            file=sys.stderr,
        )
    return found


def find_head_ct_or_none() -> Path | None:
    try:
        return find_head_ct()
    except FileNotFoundError:
        return None


def report(file: Path, img_size: int) -> None:
    """Load the scan, print its facts and the slice counts of the default splits."""
    start = time.perf_counter()
    volume, spacing = load_inv3(file)
    seconds = time.perf_counter() - start
    usable = np.flatnonzero(tissue_fraction(volume) >= 0.05)
    train, val, test = slab_split(usable, n_val=5, n_test=10, gap=4)
    print(f"head CT: {file}")
    hu = f"HU {volume.min()}..{volume.max()}"
    print(f"  volume {volume.shape} {volume.dtype}, spacing (x, y, z) {spacing} mm, {hu}")
    print(f"  read in {seconds:.2f} s")
    print(
        f"  usable slices {len(usable)} of {len(volume)} ({len(volume) - len(usable)} near-empty)"
    )
    print(f"  default splits: {len(train)} train, {len(val)} val, {len(test)} test slices")
    splits = head_ct_splits(img_size, path=str(file))
    print(f"  at {img_size}²: train {tuple(splits.train.shape)}, test {tuple(splits.test.shape)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m eilab.data.prepare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--path", help="a Cranium.inv3 to verify instead of searching for it")
    parser.add_argument("--no-install", action="store_true", help="never run apt-get")
    parser.add_argument("--require", action="store_true", help="exit 2 if the scan is missing")
    parser.add_argument("--img-size", type=int, default=128, help="side to test loading at")
    args = parser.parse_args(argv)
    file = obtain(args.path, install=not args.no_install)
    if file is None:
        print(
            "The real head CT is not available: demos that want it fall back to random-ellipse "
            "phantoms (dataset=ellipses).",
            file=sys.stderr,
        )
        return 2 if args.require else 0
    try:
        report(file, args.img_size)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
