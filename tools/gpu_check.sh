#!/usr/bin/env bash
# The first run of semaim on an NVIDIA GPU (issue 20, docs/gpu.md): builds against the bundled dependencies
# (third_party/gpu-deps) for the device's architecture without OpenCV's codecs and MPI, runs the CUDA kernel
# tests, a 1-rank NCCL collective, 50 pretraining steps on the GPU against the CPU (same seed, final loss within
# 1e-3), the ordering-kernel benchmark and bench_pretrain_step at ViT-B/16 in bf16 (images/s, MFU).
# Every step logs to BUILD_DIR/gpu-check-logs/<step>.log; the first failure prints its log's tail and exits 1.
#
# usage: tools/gpu_check.sh [--cpu-dry-run]
#   --cpu-dry-run   the same steps on a machine without a GPU: the GPU runs are skipped, the CUDA tests must
#                   report themselves skipped, the benchmarks run small on the CPU.
# env: BUILD_DIR (build-gpu), PYTHON (python3 with torch), GPU_DEPS (the bundle tarball), JOBS (cores),
#      GPU_PEAK_TFLOPS (the device's dense bf16 peak, overrides the table), GPU_ARCH (overrides the compute
#      capability), BUILD_LOCK (a file: build each target under flock on it), PRETRAIN_SETS (extra --set
#      overrides for both pretraining runs, space separated).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mode=gpu
case "${1:-}" in
  --cpu-dry-run) mode=dry ;;
  "") ;;
  *) echo "usage: tools/gpu_check.sh [--cpu-dry-run]" >&2; exit 2 ;;
esac
BUILD_DIR="${BUILD_DIR:-$root/build-gpu}"
PYTHON="${PYTHON:-python3}"
GPU_DEPS="${GPU_DEPS:-$root/third_party/gpu-deps/gpu-deps.tar.xz}"
JOBS="${JOBS:-$(nproc)}"
BUILD_LOCK="${BUILD_LOCK:-}"
deps="$BUILD_DIR/deps"
logs="$BUILD_DIR/gpu-check-logs"
runs="$BUILD_DIR/gpu-check-runs"
mkdir -p "$logs"
rm -f "$logs"/*.figure
rows=()
t_start=$(date +%s)

summary() {
  printf '\n| step | status | figure | seconds |\n|---|---|---|---|\n'
  for r in "${rows[@]}"; do printf '%s\n' "$r"; done
  printf '\ntotal %d s (mode %s); logs in %s\n' "$(($(date +%s) - t_start))" "$mode" "$logs"
}

# step NAME FUNCTION: runs FUNCTION in a subshell with errexit (which an `if` would switch off), output to
# NAME.log; the function may write a one-line figure to $logs/NAME.figure.
step() {
  local name=$1 fn=$2 t0 rc figure=""
  t0=$(date +%s)
  echo "[gpu_check] $name ..."
  set +e
  (set -euo pipefail; "$fn") >"$logs/$name.log" 2>&1
  rc=$?
  set -e
  [ -f "$logs/$name.figure" ] && figure=$(head -1 "$logs/$name.figure")
  if [ $rc -ne 0 ]; then
    rows+=("| $name | FAIL (exit $rc) | $figure | $(($(date +%s) - t0)) |")
    echo "[gpu_check] $name failed; the end of $logs/$name.log:" >&2
    tail -n 40 "$logs/$name.log" >&2
    summary
    exit 1
  fi
  rows+=("| $name | ok | $figure | $(($(date +%s) - t0)) |")
}

skip() { rows+=("| $1 | skipped | $2 | 0 |"); echo "[gpu_check] $1 skipped: $2"; }

figure() { echo "$*" > "$logs/$current.figure"; }

# The bundled libraries must be found by protoc during the build and by every program at run time.
with_deps() { LD_LIBRARY_PATH="$deps/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$@"; }

s_deps() {
  current=deps
  [ -f "$GPU_DEPS" ] || { echo "no dependency bundle at $GPU_DEPS (tools/gpu_deps.sh makes it)"; exit 1; }
  local sum
  sum=$(sha256sum "$GPU_DEPS" | cut -d' ' -f1)
  if [ "$(cat "$deps/.bundle-sha256" 2>/dev/null)" != "$sum" ]; then
    rm -rf "$deps" && mkdir -p "$deps"
    tar -C "$deps" -xJf "$GPU_DEPS"
    echo "$sum" > "$deps/.bundle-sha256"
  fi
  cat "$deps/MANIFEST.txt"
  figure "$(du -sh "$deps" | cut -f1) unpacked"
}

s_configure() {
  current=configure
  local torch_prefix arch gen=()
  torch_prefix=$("$PYTHON" -c 'import torch; print(torch.utils.cmake_prefix_path)')
  "$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
  if [ -n "${GPU_ARCH:-}" ]; then
    arch=$GPU_ARCH
  elif [ $mode = gpu ]; then
    arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d ' ')
    [ -n "$arch" ] || arch=$("$PYTHON" -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())')
  else
    arch=9.0
  fi
  command -v ninja >/dev/null && gen=(-G Ninja)
  local cuda=()
  [ $mode = gpu ] && cuda=(-DSEMAIM_WITH_CUDA=ON)  # a missing nvcc fails here, not as skipped tests
  cmake -S "$root" -B "$BUILD_DIR" "${gen[@]}" "${cuda[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$deps;$torch_prefix" -DSEMAIM_WITH_OPENCV=OFF -DSEMAIM_WITH_MPI=OFF \
    -DSEMAIM_CUDA_ARCH_LIST="$arch" -DSEMAIM_PYTHON="$(command -v "$PYTHON")"
  figure "sm_${arch/./}"
}

targets=(semaim test_ordering test_models test_dist bench_ordering_kernels bench_pretrain_step)
s_build() {
  current=build
  local lock=()
  [ -n "$BUILD_LOCK" ] && lock=(flock "$BUILD_LOCK")
  for t in "${targets[@]}"; do
    echo "== $t"
    with_deps "${lock[@]}" cmake --build "$BUILD_DIR" --target "$t" -j "$JOBS"
  done
  figure "${#targets[@]} targets, -j$JOBS"
}

# gtest_run BINARY FILTER: on the GPU every selected test must pass, none may skip; in the dry run every one
# must skip (no device), so a test that would pass silently without a GPU is caught too.
gtest_run() {
  local out="$logs/$current.gtest"
  with_deps "$BUILD_DIR/$1" --gtest_filter="$2" --gtest_brief=0 | tee "$out"
  local passed skipped
  # One result line per test: "[       OK ] Suite.Name (12 ms)"; gtest's closing list repeats skips untimed.
  passed=$(grep -cE '^\[       OK \] .* \([0-9]+ ms\)$' "$out" || true)
  skipped=$(grep -cE '^\[  SKIPPED \] .* \([0-9]+ ms\)$' "$out" || true)
  [ $((passed + skipped)) -gt 0 ] || { echo "no test matched $2"; exit 1; }
  if [ $mode = gpu ] && [ "$skipped" -ne 0 ]; then echo "$skipped CUDA tests skipped on the GPU"; exit 1; fi
  if [ $mode = dry ] && [ "$passed" -ne 0 ]; then echo "$passed CUDA tests passed without a GPU"; exit 1; fi
  echo "$1: $passed passed, $skipped skipped" >> "$logs/$current.counts"
}

s_cuda_tests() {
  current=cuda_tests
  rm -f "$logs/cuda_tests.counts"
  gtest_run test_ordering '*.Cuda*'
  gtest_run test_models '*.Cuda*'
  figure "$(paste -sd';' "$logs/cuda_tests.counts")"
}

s_nccl() {
  current=nccl
  rm -f "$logs/nccl.counts"
  gtest_run test_dist 'Communicator.NcclOneRankCollectivesOnTheGpu'
  figure "$(cat "$logs/nccl.counts")"
}

# 50 pretraining steps of the Fashion-MNIST default (semantic ordering) on the bundled IDX subset, fp32 (TF32
# off in cuBLAS and cuDNN), one seed; prints the loss logged at step 50.
pretrain_run() {
  local device=$1 dir="$runs/pretrain-$1"
  rm -rf "$dir"
  # shellcheck disable=SC2086
  with_deps env NVIDIA_TF32_OVERRIDE=0 "$BUILD_DIR/semaim" pretrain "$root/configs/pretrain/aim-fmnist-p4_1xb128-semantic_fmnist.yaml" \
    --set run.output_dir="$runs" --set run.name="pretrain-$device" --set run.device="$device" --set run.seed=0 \
    --set data.root="$deps/share/datasets/fashion-mnist" --set pretrain.max_steps=50 --set pretrain.precision=fp32 \
    --set ordering.pass_dtype=fp32 --set log.every_steps=50 --set log.progress=off ${PRETRAIN_SETS:-} >&2
  "$PYTHON" - "$dir/metrics.jsonl" <<'PY'
import json, sys
losses = [r["loss"] for r in map(json.loads, open(sys.argv[1])) if r.get("step") == 50 and "loss" in r]
if not losses:
    sys.exit(f"{sys.argv[1]}: no loss logged at step 50")
print(f"{losses[0]:.6f}")
PY
}

s_pretrain_cpu() {
  current=pretrain_cpu
  pretrain_run cpu | tee "$logs/loss_cpu"
  figure "loss $(cat "$logs/loss_cpu")"
}

s_pretrain_gpu() {
  current=pretrain_gpu
  pretrain_run cuda | tee "$logs/loss_gpu"
  local cpu gpu
  cpu=$(cat "$logs/loss_cpu")
  gpu=$(cat "$logs/loss_gpu")
  figure "loss $gpu (cpu $cpu)"
  "$PYTHON" -c "import sys; d = abs($gpu - $cpu); print('|gpu - cpu| =', d); sys.exit(0 if d <= 1e-3 else 1)"
}

s_bench_ordering() {
  current=bench_ordering
  if [ $mode = gpu ]; then
    with_deps "$BUILD_DIR/bench_ordering_kernels" --repeats 3 | tee "$logs/bench_ordering.out"
    grep -qi 'cuda' "$logs/bench_ordering.out" || { echo "no CUDA rows in the benchmark's table"; exit 1; }
    figure "$(grep -ci 'cuda' "$logs/bench_ordering.out") CUDA rows"
  else
    with_deps "$BUILD_DIR/bench_ordering_kernels" --repeats 1 --only order_from_keys | tee "$logs/bench_ordering.out"
    figure "$(grep -c '^| ' "$logs/bench_ordering.out") table lines (CPU)"
  fi
}

# The device's dense bf16 peak in TFLOP/s from its name (vendor data sheets, SXM forms unless named).
peak_tflops() {
  if [ -n "${GPU_PEAK_TFLOPS:-}" ]; then echo "$GPU_PEAK_TFLOPS"; return; fi
  case "$1" in
    *H100*PCIe*) echo 756 ;;
    *H100*NVL*) echo 835 ;;
    *GH200* | *H200* | *H100* | *H800*) echo 989 ;;
    *B200*) echo 2250 ;;
    *A100* | *A800*) echo 312 ;;
    *L40S*) echo 362 ;;
    *) echo 0 ;;
  esac
}

s_bench_pretrain() {
  current=bench_pretrain
  local out="$logs/bench_pretrain.out" name peak row
  if [ $mode = gpu ]; then
    name=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
    peak=$(peak_tflops "$name")
    echo "device $name, dense bf16 peak ${peak} TFLOP/s (0: unknown, set GPU_PEAK_TFLOPS)"
    with_deps "$BUILD_DIR/bench_pretrain_step" "$root/configs/pretrain/aim-base-p16_8xb256-semantic-800e_in1k.yaml" \
      --device cuda --set pretrain.precision=bf16 --batch 128 --variants 1 --steps 10 --repeats 3 \
      --peak-tflops "$peak" | tee "$out"
  else
    with_deps "$BUILD_DIR/bench_pretrain_step" "$root/configs/pretrain/aim-fmnist-p4_1xb128-semantic_fmnist.yaml" \
      --device cpu --set pretrain.precision=bf16 --batch 32 --variants 1 --steps 2 --repeats 1 | tee "$out"
  fi
  # The first row of the table: | variant | images/s | min | max | ratio | model TFLOP/s | MFU |
  row=$(grep -m1 '^| semantic' "$out")
  figure "$(echo "$row" | awk -F'|' '{gsub(/ /,"",$3); gsub(/ /,"",$7); gsub(/ /,"",$8); print $3 " img/s, " $7 " TFLOP/s, MFU " $8}')"
}

if [ $mode = gpu ]; then
  command -v nvidia-smi >/dev/null || { echo "[gpu_check] no nvidia-smi: use --cpu-dry-run on a machine without a GPU" >&2; exit 1; }
  nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv,noheader
fi
step deps s_deps
step configure s_configure
step build s_build
step cuda_tests s_cuda_tests
step nccl s_nccl
step pretrain_cpu s_pretrain_cpu
if [ $mode = gpu ]; then step pretrain_gpu s_pretrain_gpu; else skip pretrain_gpu "no GPU (dry run)"; fi
step bench_ordering s_bench_ordering
step bench_pretrain s_bench_pretrain
summary
