#!/usr/bin/env bash
# `make gpu-check`: the GPU path in one command (at most about 10 minutes on one GPU), every
# result in one folder: the CUDA tests, the paper-scale training-step bench (eager, fast_step
# and packed), a profile of EI's step, a short paper-scale CT training (eager, fast_step, and a
# packed 4-point α sweep), and the CUDA scaling grid with its GPU memory columns.
#   bash tools/gpu_check.sh [OUT_DIR]          (default outputs/gpu_check/<time>)
# Runs on a machine with torch (CUDA), Lightning, torchmetrics, scikit-image, scipy, matplotlib,
# pytest, pytest-timeout, pytest-xdist and nvidia-ml-py but no network: eilab runs from src/ (not installed).
# The rest comes as wheels (tools/gpu_wheels.sh downloads them where PyPI is reachable):
# hydra-core, omegaconf, antlr4-python3-runtime (eilab), astra-toolbox and deepinv + natsort
# (the CT peers the benches measure). A missing one stops the check before any work, naming it.
# The real head CT is used where `find_head_ct` finds it (set EILAB_HEAD_CT), else ellipses.
# PYTHON picks the interpreter (default python3). Exit status: non-zero if any step failed.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON=${PYTHON:-python3}
OUT=${1:-outputs/gpu_check/$(date +%Y-%m-%d_%H-%M-%S)}
mkdir -p "$OUT"
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

modules=(torch lightning torchmetrics skimage scipy matplotlib pytest pytest_timeout xdist pynvml
  hydra omegaconf antlr4 astra deepinv natsort)
missing=$("$PYTHON" - "${modules[@]}" <<'PY'
import importlib.util, sys
print(" ".join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))
PY
)
if [[ -n $missing ]]; then
    echo "gpu-check: missing Python modules: $missing" >&2
    echo "  bring them as wheels (tools/gpu_wheels.sh) or pip install them" >&2
    exit 2
fi
if ! "$PYTHON" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    echo "gpu-check: torch sees no CUDA device" >&2
    exit 2
fi
if "$PYTHON" -c "from eilab.data.head_ct import find_head_ct; find_head_ct()" 2>/dev/null; then
    dataset=head_ct
else
    dataset=ellipses
fi

# A copy of the tree may carry another .git than its files: name the files by their hash too.
src_hash() {
    find src -name '*.py' -o -name '*.yaml' | LC_ALL=C sort | xargs cat | sha1sum | cut -c1-12
}

status=0
# step NAME SECONDS COMMAND...: run with a time limit, output to OUT/NAME.log, note the result.
step() {
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    local line="$name: exit $rc in $((SECONDS - start)) s (limit $limit s)"
    echo "$line" | tee -a "$OUT/summary.txt"
    ((rc == 0)) || status=1
}

{
    echo "# eilab gpu-check $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
    "$PYTHON" -c "import torch, lightning; print('torch', torch.__version__, 'CUDA', \
torch.version.cuda, 'lightning', lightning.__version__)"
    echo "git $(git rev-parse --short HEAD 2>/dev/null || echo '?'), src/ sha1 $(src_hash)"
    echo "dataset for training: $dataset"
} | tee "$OUT/summary.txt"

paper=(experiment=ct_table1 "dataset=$dataset" trainer=gpu trainer.enable_progress_bar=false)
step pytest_gpu 150 "$PYTHON" -m pytest -m gpu -q -p no:cacheprovider -n 4 \
    --ignore=tests/test_hparams.py tests
# Paper scale (128², 50 views, the 8.56 M U-Net, batch 2): every strategy's step, eager fp32 and
# fast_step (CUDA graph + fused Adam), beside deepinv; then EI fast_step in bf16 + channels_last.
step bench_train 200 "$PYTHON" -m eilab.bench --suite train --device cuda img_size=128 \
    model=unet --strategies mc ei rei sup --graph --min-time 0.3 --max-time 1 \
    --out "$OUT/bench_train.md"
step bench_train_bf16 90 "$PYTHON" -m eilab.bench --suite train --device cuda img_size=128 \
    model=unet --strategies ei --graph --bf16 --channels-last --min-time 0.3 --max-time 1 \
    --out "$OUT/bench_train_bf16.md"
# Where EI's step time goes: kernel time per step beside wall time, fp32 then bf16 + NHWC.
step profile_ei 60 "$PYTHON" -m eilab.bench.profile_step --device cuda --strategy ei \
    img_size=128 model=unet --out "$OUT/profile_ei.md"
step profile_ei_bf16 60 "$PYTHON" -m eilab.bench.profile_step --device cuda --strategy ei \
    --bf16 --channels-last img_size=128 model=unet --out "$OUT/profile_ei_bf16.md"
# Packed steps: K EI / MC models stepped in turn on K CUDA streams, total steps per second.
step bench_packed 200 "$PYTHON" -m eilab.bench --suite train --device cuda img_size=128 \
    model=unet --strategies ei mc --graph --packed 1 4 8 --min-time 0.3 --max-time 1 \
    --out "$OUT/bench_packed.md"
# A short paper-scale EI training in Lightning, eager then fast_step: epoch times, test PSNR;
# then a 4-point α sweep of the same packed into one process (its epoch time against the
# single fast_step run's is the packed sweep's time against one run's).
for fast in false true; do
    step "train_ct_table1_fast_step_$fast" 120 "$PYTHON" -m eilab.train "${paper[@]}" \
        strategy=ei trainer.max_epochs=10 trainer.check_val_every_n_epoch=5 "fast_step=$fast" \
        "hydra.run.dir=$OUT/train/fast_step_$fast"
done
step train_packed_alpha_sweep 240 "$PYTHON" -m eilab.train -m hydra/launcher=packed \
    "${paper[@]}" strategy=ei trainer.max_epochs=10 trainer.check_val_every_n_epoch=5 \
    fast_step=true equivariance.alpha=1,10,100,1000 "hydra.sweep.dir=$OUT/packed_sweep"
step epoch_times 30 "$PYTHON" experiments/paper_scale/summarise.py "$OUT/train" \
    "$OUT/packed_sweep"
step scaling_cuda 150 "$PYTHON" -m eilab.bench.scaling --devices cuda --sizes 128 512 \
    --views 50 720 --budget-s 20 --min-time 0.1 --max-time 0.3 --out-dir "$OUT"
echo "gpu-check: results in $OUT" | tee -a "$OUT/summary.txt"
exit $status
