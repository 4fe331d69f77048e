#!/usr/bin/env bash
# Table 1 (CT) at the paper's settings (experiment=ct_table1: 128², 50 views, paper-size U-Net,
# batch 2, n_trans 5, alpha 100, lr 5e-4) on one GPU, all five strategies at once (the GPU is
# far from saturated by one run), for EPOCHS epochs with the paper's milestones scaled to
# 40/60/80 % of the run, as in 2000/3000/4000 of 5000.
#   bash experiments/paper_scale/table1_gpu.sh [epochs] [max_time DD:HH:MM:SS]
set -euo pipefail
epochs=${1:-5000}
max_time=${2:-null}
milestones="[$((epochs * 2 / 5)),$((epochs * 3 / 5)),$((epochs * 4 / 5))]"
every=$(( epochs / 6 > 0 ? epochs / 6 : 1 ))
mkdir -p outputs/table1_gpu
for strategy in mc ei ei_adv sup ei_sup; do
  python3 -m eilab.train experiment=ct_table1 trainer=gpu "strategy=$strategy" \
    "trainer.max_epochs=$epochs" "+trainer.max_time=$max_time" "optim.milestones=$milestones" \
    "trainer.check_val_every_n_epoch=$every" trainer.enable_progress_bar=false \
    "hydra.run.dir=outputs/table1_gpu/$strategy" > "outputs/table1_gpu/$strategy.log" 2>&1 &
done
wait
for strategy in mc ei ei_adv sup ei_sup; do
  python3 experiments/paper_scale/summarise.py "outputs/table1_gpu/$strategy" "$strategy" \
    || tail -5 "outputs/table1_gpu/$strategy.log"
done
