#!/usr/bin/env bash
# Download, into .whl/ (git-ignored), the wheels `make gpu-check` needs on a GPU machine that has
# torch, Lightning, torchmetrics, scikit-image, matplotlib and pytest but no network (the lent
# H200 image: Python 3.12). Run it here, where PyPI is reachable; then on the GPU machine:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
#   PYTHONPATH=/tmp/site:src make gpu-check PYTHON=python3
# PY_VERSION picks the target interpreter (default 3.12).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/.whl"
PY_VERSION=${PY_VERSION:-3.12}
# One version each: eilab's own dependencies the lent image lacks, and
# the CT peers (astra-toolbox with the CUDA-12 runtime it links, deepinv with natsort).
PACKAGES=(hydra-core==1.3.2 omegaconf==2.3.0 astra-toolbox==2.5.0
  nvidia-cuda-runtime-cu12==12.9.79 deepinv==0.5.0 natsort==8.4.0)
PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64
  manylinux2014_x86_64 manylinux1_x86_64)
mkdir -p "$OUT"
args=(--no-deps --only-binary=:all: --python-version "$PY_VERSION" --implementation cp -d "$OUT")
for platform in "${PLATFORMS[@]}"; do args+=(--platform "$platform"); done
python3 -m pip download --quiet "${args[@]}" "${PACKAGES[@]}"
# antlr4's runtime (omegaconf's parser) is published as a source package only: build it.
python3 -m pip wheel --quiet --no-deps antlr4-python3-runtime==4.9.3 -w "$OUT"
ls -la "$OUT"
