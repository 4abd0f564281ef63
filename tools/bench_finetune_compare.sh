#!/usr/bin/env bash
# Fine-tuning step, semaim vs timm: runs build/bench_finetune_step and tools/bench_timm_finetune.py alternately
# (C++ first in even rounds, Python first in odd ones, so drift in the shared machine's speed hits both) for R
# rounds per size, then prints a Markdown table per size and precision: images/s medians (min-max) over every
# timed repeat of every round, and semaim / timm as the ratio of the medians and the range of the per-round
# ratios. Same model, batch, recipe, threads, warm-up, steps and repeats on both sides.
#
# usage: tools/bench_finetune_compare.sh [--rounds R] [--sizes fmnist,small,base] [--steps N] [--repeats K]
#                                        [--warmup W] [--threads T]
# Environment: SEMAIM_BUILD (default build), SEMAIM_PYTHON (default the venv's python).
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3 sizes=fmnist,small steps=2 repeats=2 warmup=1 threads=2
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --sizes) sizes=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "bench_finetune_compare: unknown argument $1" >&2; exit 2 ;;
  esac
done
build=${SEMAIM_BUILD:-build}
python=${SEMAIM_PYTHON:-$HOME/.cache/semaim/venv-torch-2.11.0/bin/python}
[[ -x $build/bench_finetune_step ]] || { echo "bench_finetune_compare: $build/bench_finetune_step not built" >&2; exit 2; }

# Per size: the C++ arguments and the Python ones describing the same model and batch.
declare -A cpp_args py_args
cpp_args[fmnist]="configs/finetune/aim-fmnist-p4_1xb128-ft_fmnist.yaml --classes 10"
py_args[fmnist]="--model vit_fmnist_patch4 --classes 10 --batch 128"
cpp_args[small]="--model vit_small_patch16 --batch 16 --classes 1000"
py_args[small]="--model vit_small_patch16 --batch 16 --classes 1000"
cpp_args[base]="--model vit_base_patch16 --batch 8 --classes 1000"
py_args[base]="--model vit_base_patch16 --batch 8 --classes 1000"
common="--steps $steps --repeats $repeats --warmup $warmup --threads $threads"

results=$(mktemp)
trap 'rm -f "$results"' EXIT
echo "load before: $(uptime)"
IFS=, read -ra size_list <<< "$sizes"
for size in "${size_list[@]}"; do
  [[ -n ${cpp_args[$size]:-} ]] || { echo "bench_finetune_compare: unknown size $size" >&2; exit 2; }
  for ((r = 0; r < rounds; r++)); do
    run_cpp() {
      # shellcheck disable=SC2086
      "$build/bench_finetune_step" ${cpp_args[$size]} --set finetune.layer_decay=0.65 $common | tail -1 |
        sed "s/^{/{\"size\":\"$size\",\"round\":$r,/" >> "$results"
    }
    run_py() {
      # shellcheck disable=SC2086
      "$python" tools/bench_timm_finetune.py ${py_args[$size]} --layer-decay 0.65 $common | tail -1 |
        sed "s/^{/{\"size\":\"$size\",\"round\":$r,/" >> "$results"
    }
    if ((r % 2 == 0)); then run_cpp; run_py; else run_py; run_cpp; fi
    echo "size $size round $((r + 1))/$rounds done ($(uptime | sed 's/.*load/load/'))" >&2
  done
done
echo "load after: $(uptime)"
"$python" - "$results" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("\n| size | batch | precision | semaim img/s | timm img/s | semaim / timm (medians) | per-round ratios |")
print("|---|---|---|---|---|---|---|")
for size in dict.fromkeys(r["size"] for r in rows):
    for prec in ("fp32", "bf16"):
        got = {impl: [r for r in rows if r["size"] == size and r["impl"] == impl and prec in r["rates"]]
               for impl in ("semaim", "timm")}
        if not got["semaim"] or not got["timm"]:
            continue
        flat = {impl: [x for r in rs for x in r["rates"][prec]] for impl, rs in got.items()}
        med = {impl: statistics.median(v) for impl, v in flat.items()}
        per_round = sorted(statistics.median(a["rates"][prec]) / statistics.median(b["rates"][prec])
                           for a in got["semaim"] for b in got["timm"] if a["round"] == b["round"])
        cell = lambda i: f"{med[i]:.2f} ({min(flat[i]):.2f}-{max(flat[i]):.2f})"
        print(f"| {size} ({got['semaim'][0]['model']}) | {got['semaim'][0]['batch']} | {prec} | {cell('semaim')} | "
              f"{cell('timm')} | **{med['semaim'] / med['timm']:.2f}x** | {per_round[0]:.2f}-{per_round[-1]:.2f} |")
EOF
