#!/usr/bin/env bash
# Build the benchmark environment .bench-venv/ at the repo root (git-ignored).
#
# deepinv imports torchvision, and PyPI's torchvision does not import beside the project's
# torch 2.13.0 CPU build, so `make bench` runs in its own venv with torch 2.14.1 +
# torchvision 0.29.1 (CUDA builds from PyPI; they run on the CPU). eilab, deepinv and
# scikit-image are then all timed on the same torch. A first build took 245 s and 6.0 GB here.
# astra-toolbox (eilab's matrix-free CT backend, GPLv3) and pytest (tests/bench) come with it.
#
# Idempotent: does nothing when .bench-venv/.stamp is newer than pyproject.toml and this script.
# Usage: bash tools/setup_bench_env.sh [--force]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.bench-venv"
STAMP="$VENV/.stamp"
SELF="$ROOT/tools/setup_bench_env.sh"

if [[ "${1:-}" != "--force" && -f "$STAMP" && "$STAMP" -nt "$ROOT/pyproject.toml" \
      && "$STAMP" -nt "$SELF" ]]; then
    echo "bench env up to date: $VENV"
    exit 0
fi

if command -v python3.11 >/dev/null 2>&1; then PY=python3.11; else PY=python3; fi

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "creating $VENV with $PY"
    "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)

"${PIP[@]}" "torch==2.14.1" "torchvision==0.29.1"
"${PIP[@]}" "torch==2.14.1" "deepinv==0.5.0" scikit-image scipy numpy tqdm
# eilab's matrix-free CT backend (the scaling suite's 'astra' column) and pytest for the bench tests
"${PIP[@]}" "torch==2.14.1" "astra-toolbox==2.5.0" pytest
"${PIP[@]}" "torch==2.14.1" -e "$ROOT"   # eilab with its dependencies (Lightning, Hydra, ...)

"$VENV/bin/python" - <<'PY'
import astra, deepinv, skimage, torch, torchvision  # noqa: F401
import eilab  # noqa: F401
print(f"bench env ok: torch {torch.__version__}, torchvision {torchvision.__version__}, "
      f"deepinv {deepinv.__version__}, scikit-image {skimage.__version__}, "
      f"astra-toolbox {astra.__version__}")
PY
touch "$STAMP"
