#!/usr/bin/env bash
# Epoch time of each strategy at the paper's CT settings (experiment=ct_table1) on one GPU,
# for a few epochs, plus EI under bf16 autocast. Prints one line per run.
#   bash experiments/paper_scale/throughput.sh [epochs]
set -euo pipefail
epochs=${1:-3}
run() {
  local name=$1; shift
  local dir=outputs/throughput/$name
  python3 -m eilab.train experiment=ct_table1 trainer=gpu "trainer.max_epochs=$epochs" \
    "trainer.check_val_every_n_epoch=$epochs" trainer.enable_progress_bar=false \
    "hydra.run.dir=$dir" "$@" > "$dir.log" 2>&1 || { tail -20 "$dir.log"; return 1; }
  python3 experiments/paper_scale/summarise.py "$dir" "$name"
}
mkdir -p outputs/throughput
for strategy in mc ei ei_adv sup ei_sup; do run "$strategy" "strategy=$strategy"; done
run ei_bf16 strategy=ei trainer.precision=bf16-mixed
