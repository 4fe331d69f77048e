#!/usr/bin/env bash
# Epoch time of each strategy at the paper's CT settings (experiment=ct_table1) on one GPU,
# for a few epochs, plus EI under bf16 autocast. Hydra's basic launcher runs the jobs one
# after another, so no run shares the GPU; eilab-report tabulates them, summarise.py prints
# each run's epoch time.
#   bash experiments/paper_scale/throughput.sh [epochs] [overrides...]
set -euo pipefail
epochs=${1:-3}
shift $(($# < 1 ? $# : 1))
out=outputs/throughput
common=(experiment=ct_table1 trainer=gpu "trainer.max_epochs=$epochs"
  "trainer.check_val_every_n_epoch=$epochs" trainer.enable_progress_bar=false)
python3 -m eilab.train -m "${common[@]}" strategy=mc,ei,ei_adv,sup,ei_sup \
  "hydra.sweep.dir=$out/fp32" "$@"
python3 -m eilab.train -m "${common[@]}" strategy=ei trainer.precision=bf16-mixed \
  "hydra.sweep.dir=$out/bf16" "$@"
python3 -m eilab.report "$out" --out "$out/report"
python3 experiments/paper_scale/summarise.py "$out"
