#!/usr/bin/env bash
# Table 1 (CT) at the paper's settings (experiment=ct_table1: 128², 50 views, paper-size U-Net,
# batch 2, n_trans 5, alpha 100, lr 5e-4) on one GPU, all five strategies at once (the GPU is
# far from saturated by one run), for EPOCHS epochs with the paper's milestones scaled to
# 40/60/80 % of the run, as in 2000/3000/4000 of 5000. One Hydra multirun: the submitit local
# launcher starts every job at once in its own process, each seeing GPU 0; then eilab-report.
#   bash experiments/paper_scale/table1_gpu.sh [epochs] [max_time DD:HH:MM:SS] [overrides...]
set -euo pipefail
epochs=${1:-5000}
max_time=${2:-null}
shift $(($# < 2 ? $# : 2))
milestones="[$((epochs * 2 / 5)),$((epochs * 3 / 5)),$((epochs * 4 / 5))]"
every=$((epochs / 6 > 0 ? epochs / 6 : 1))
out=outputs/table1_gpu
status=0
python3 -m eilab.train -m hydra/launcher=local hydra.launcher.gpus_per_node=1 \
  experiment=ct_table1 trainer=gpu strategy=mc,ei,ei_adv,sup,ei_sup \
  "trainer.max_epochs=$epochs" "+trainer.max_time=$max_time" "optim.milestones=$milestones" \
  "trainer.check_val_every_n_epoch=$every" trainer.enable_progress_bar=false \
  "hydra.sweep.dir=$out" "$@" || status=$?
# a failed job does not stop the others: tabulate whatever finished, then report the failure
python3 -m eilab.report "$out" --out "$out/report"
python3 experiments/paper_scale/summarise.py "$out"
exit "$status"
