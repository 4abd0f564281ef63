#!/usr/bin/env bash
# The main job on a fresh machine: set-up, Release build, SemAIM pretraining on Fashion-MNIST, a linear probe of the
# pretrained encoder and of the same architecture at random init, then a summary table.
# Env: CONFIG (default the Fashion-MNIST config), RUN_NAME (default quickstart), extra args go to `semaim pretrain`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
CONFIG="${CONFIG:-configs/pretrain/aim-fmnist-p4_1xb128-semantic_fmnist.yaml}"
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
"$SEMAIM_VENV/bin/python" tools/summarize_run.py "$run_dir" --pretrain-seconds $((t1 - t0)) --probe-seconds $((t2 - t1))
