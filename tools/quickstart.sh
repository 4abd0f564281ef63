#!/usr/bin/env bash
# The main job on a fresh machine: set-up, Release build, SemAIM pretraining on Fashion-MNIST, then the pretrained
# encoder against the same architecture at random init under three protocols -- linear probe, weighted k-NN and
# fine-tuning at the same budget -- and a summary table.
# Env: CONFIG (default the Fashion-MNIST config), FT_CONFIG (the fine-tuning config), RUN_NAME (default quickstart);
# extra args go to `semaim pretrain`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
CONFIG="${CONFIG:-configs/pretrain/aim-fmnist-p4_1xb128-semantic_fmnist.yaml}"
FT_CONFIG="${FT_CONFIG:-configs/finetune/aim-fmnist-p4_1xb128-ft_fmnist.yaml}"
RUN_NAME="${RUN_NAME:-quickstart}"
source tools/setup.sh
tools/build.sh --target semaim
bin="${BUILD_DIR:-$root/build}/semaim"
run_dir="runs/$RUN_NAME"
t0=$(date +%s)
"$bin" pretrain "$CONFIG" --set run.name="$RUN_NAME" --resume auto "$@"
t1=$(date +%s)
"$bin" linprobe "$CONFIG" --set run.name="$RUN_NAME"
"$bin" linprobe "$CONFIG" --set run.name="$RUN_NAME" --random-init
t2=$(date +%s)
"$bin" knn "$CONFIG" --set run.name="$RUN_NAME"
"$bin" knn "$CONFIG" --set run.name="$RUN_NAME" --random-init
t3=$(date +%s)
"$bin" finetune "$FT_CONFIG" --set run.name="$RUN_NAME-finetune" --set finetune.init="$run_dir" --resume auto
"$bin" finetune "$FT_CONFIG" --set run.name="$RUN_NAME-finetune-random" --resume auto
t4=$(date +%s)
"$SEMAIM_VENV/bin/python" tools/summarize_run.py "$run_dir" --pretrain-seconds $((t1 - t0)) --probe-seconds $((t2 - t1)) \
  --knn-seconds $((t3 - t2)) --finetune-seconds $((t4 - t3)) --finetune-dir "runs/$RUN_NAME-finetune" \
  --finetune-random-dir "runs/$RUN_NAME-finetune-random"
