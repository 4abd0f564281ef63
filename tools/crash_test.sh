#!/usr/bin/env bash
# Crash campaign (docs/reliability.md, "Crash test"): SIGKILLs at random moments of a tiny SemAIM pretraining, some
# inside checkpoint writes, a SIGTERM (exit 75) and a full disk; every interrupted run must continue with
# `--resume auto` to weights bitwise equal to an uninterrupted run. Exit 0 only when everything held.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: tools/crash_test.sh [--kills N] [--seed S] [--workdir DIR] [--keep] [--quick] [--config FILE]

  --kills N      SIGKILLs of the kill campaign (default 20; 3 with --quick)
  --seed S       seed of the kill moments (default: random, printed; pass it again to replay a campaign)
  --workdir DIR  where the runs go (default: a new /tmp/semaim-crash.XXXXXX); must not hold earlier runs
  --keep         keep the work directory (it is kept anyway when something failed)
  --quick        a smoke run: 3 kills, a shorter run of a smaller model
  --config FILE  pretraining config to crash instead of the generated one (run.name, run.output_dir,
                 log.every_steps=1 and log.progress=off are set on the command line); it needs at least
                 6 steps and checkpoint.every_steps small enough for two checkpoints before the end
Env: SEMAIM_BIN (default build/semaim), SEMAIM_VENV (python for tools/crash_util.py).
EOF
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
kills="" seed="" work="" keep=0 quick=0 config="" phase=""
while [ $# -gt 0 ]; do
  case "$1" in
    --kills) kills="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --workdir) work="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    --quick) quick=1; shift ;;
    --config) config="$2"; shift 2 ;;
    --phase) phase="$2"; shift 2 ;;  # internal: the full-disk phase re-run inside `unshare -m`
    -h|--help) usage; exit 0 ;;
    *) echo "crash_test.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
[ -n "$kills" ] || kills=$([ "$quick" = 1 ] && echo 3 || echo 20)
[ -n "$seed" ] || seed=$(( (RANDOM << 15) | RANDOM ))
[[ "$kills" =~ ^[0-9]+$ && "$kills" -ge 1 ]] || { echo "crash_test.sh: --kills needs a positive integer" >&2; exit 2; }
[[ "$seed" =~ ^[0-9]+$ ]] || { echo "crash_test.sh: --seed needs a non-negative integer" >&2; exit 2; }

bin="${SEMAIM_BIN:-${BUILD_DIR:-$root/build}/semaim}"
if [ ! -x "$bin" ]; then
  echo "crash_test.sh: no semaim binary at $bin (build it: cmake --build build --target semaim)" >&2
  exit 2
fi
py="${SEMAIM_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/semaim/venv-torch-2.11.0}/bin/python"
[ -x "$py" ] || py=python3
util() { "$py" "$root/tools/crash_util.py" "$@"; }

if [ -z "$work" ]; then
  work=$(mktemp -d /tmp/semaim-crash.XXXXXX)
elif [ -z "$phase" ]; then
  [ ! -e "$work/runs" ] || { echo "crash_test.sh: $work already holds runs; give a new --workdir" >&2; exit 2; }
  mkdir -p "$work"
fi
work="$(cd "$work" && pwd)"
mkdir -p "$work/logs"
mnt="$work/disk"

# ---- the run every phase crashes ----

# The default main job's config (semantic ordering) scaled down: a few hundred images, checkpoints every few steps,
# one thread so reruns compute bitwise the same.
write_config() {
  local limit=256 epochs=8 every=3 extra=""
  if [ "$quick" = 1 ]; then
    limit=128 epochs=5 every=2 extra=$'\n  depth: 2\n  decoder_depth: 2'
  fi
  cat > "$work/crash.yaml" <<EOF
_base_: $root/configs/pretrain/aim-fmnist-p4_1xb128-semantic_fmnist.yaml
run:
  threads: 1
data:
  limit: $limit
pretrain:
  batch_size: 32
  epochs: $epochs
checkpoint:
  every_steps: $every
  every_epochs: 0
  keep_last: 2
model:
  name: aim_fmnist_patch4$extra
EOF
}

# semaim pretrain on run NAME under output dir OUT (default $work/runs), extra args appended.
pretrain_cmd() {
  local name="$1" out="$2"
  shift 2
  printf '%s\0' "$bin" pretrain "$cfg" --set "run.name=$name" --set "run.output_dir=$out" \
    --set log.every_steps=1 --set log.progress=off "$@"
}
run_pretrain() {  # NAME OUT LOG [args...]: runs in the foreground, returns its exit code
  local name="$1" out="$2" log="$3"
  shift 3
  local -a cmd
  mapfile -d '' cmd < <(pretrain_cmd "$name" "$out" "$@")
  "${cmd[@]}" > "$log" 2>&1
}

final_weights() { printf '%s/checkpoints/step-%08d.weights.safetensors' "$1" "$steps"; }

# ---- phases ----

reference() {
  echo "== reference: an uninterrupted run"
  local t0 t1
  t0=$(date +%s.%N)
  if ! run_pretrain ref "$work/runs" "$work/logs/ref.log"; then
    echo "the reference run failed: $work/logs/ref.log"
    return 1
  fi
  t1=$(date +%s.%N)
  steps=$(sed -n 's/.*pretraining done: \([0-9]*\) steps.*/\1/p' "$work/logs/ref.log")
  [ -n "$steps" ] || { echo "no 'pretraining done' line in $work/logs/ref.log"; return 1; }
  [ "$steps" -ge 6 ] || { echo "the run has $steps steps; the campaign needs at least 6"; return 1; }
  ref_seconds=$(echo "$t1 - $t0" | bc)
  # Start-up (process start to the first step) and one step, from the records' training clock.
  local first last
  first=$(head -n 1 "$work/runs/ref/metrics.jsonl" | sed 's/.*"time":\([0-9.e+-]*\).*/\1/')
  last=$(tail -n 1 "$work/runs/ref/metrics.jsonl" | sed 's/.*"time":\([0-9.e+-]*\).*/\1/')
  step_seconds=$(echo "($last - $first) / ($steps - 1)" | bc -l)
  startup_seconds=$(echo "$ref_seconds - $last" | bc -l)
  ckpt_bytes=$(stat -c %s "$work/runs/ref/checkpoints/step-$(printf %08d "$steps")".* | paste -sd+ | bc)
  printf 'reference: %d steps in %.1f s (start-up %.1f s, %.2f s/step), checkpoint %.1f MB\n' \
    "$steps" "$ref_seconds" "$startup_seconds" "$step_seconds" "$(echo "$ckpt_bytes / 1000000" | bc -l)"
  printf 'steps=%s\nstep_seconds=%s\nstartup_seconds=%s\nckpt_bytes=%s\nref_seconds=%s\n' "$steps" \
    "$step_seconds" "$startup_seconds" "$ckpt_bytes" "$ref_seconds" > "$work/ref.env"
}

kill_campaign() {
  echo "== SIGKILL campaign: $kills kills, seed $seed"
  local -a cmd
  mapfile -d '' cmd < <(pretrain_cmd kill "$work/runs" --resume auto)
  local timeout
  timeout=$(echo "$ref_seconds * 5 + 60" | bc)
  util kills --run-dir "$work/runs/kill" --ref-dir "$work/runs/ref" --log-dir "$work/logs" \
    --report "$work/kills.json" --kills "$kills" --seed "$seed" --steps "$steps" --step-seconds "$step_seconds" \
    --startup-seconds "$startup_seconds" --timeout "$timeout" -- "${cmd[@]}"
}

sigterm_phase() {
  echo "== SIGTERM: the run saves the step in progress and exits 75"
  local run="$work/runs/term" log="$work/logs/term.log" target code n ck
  RANDOM=$seed
  target=$(( 2 + RANDOM % (steps - 3) ))  # a step in the middle, not the last: the run must stop early
  local -a cmd
  mapfile -d '' cmd < <(pretrain_cmd term "$work/runs")
  "${cmd[@]}" > "$log" 2>&1 &
  local pid=$!
  if ! util wait-step "$run" "$target" --pid "$pid" --timeout "$(echo "$ref_seconds * 3 + 60" | bc)"; then
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" || true
    echo "the run ended or stalled before step $target: $log"
    return 1
  fi
  kill -TERM "$pid"
  code=0
  wait "$pid" || code=$?
  term_result="exit $code"
  [ "$code" = 75 ] || { echo "SIGTERM after step $target: exit code $code, expected 75 ($log)"; return 1; }
  n=$(sed -n 's/.*preempted: stopped by SIGTERM at step \([0-9]*\): checkpoint \([^;]*\);.*/\1/p' "$log")
  ck=$(sed -n 's/.*preempted: stopped by SIGTERM at step \([0-9]*\): checkpoint \([^;]*\);.*/\2/p' "$log")
  if [ -z "$n" ] || [ ! -f "$ck" ]; then
    echo "no 'preempted ... checkpoint' message naming an existing file in $log"
    return 1
  fi
  [ "$(sed -n 's/.*"step": *\([0-9]*\).*/\1/p' "$ck")" = "$n" ] || { echo "$ck does not hold step $n"; return 1; }
  if [ "$n" -lt "$target" ] || [ "$n" -ge "$steps" ]; then
    echo "stopped at step $n: not between $target and $steps"
    return 1
  fi
  util metrics "$run" --max-step "$n" > /dev/null || { util metrics "$run" --max-step "$n"; return 1; }
  echo "SIGTERM after step $target: exit 75, saved step $n ($(basename "$ck"))"
  term_result="exit 75 at step $n; the resume failed, see above"
  code=0
  run_pretrain term "$work/runs" "$work/logs/term-resume.log" --resume auto || code=$?
  [ "$code" = 0 ] || { echo "the resume exited with $code: $work/logs/term-resume.log"; return 1; }
  if ! grep -q "resumed from $ck at step $n" "$work/logs/term-resume.log"; then
    echo "the resume did not continue from $ck"
    return 1
  fi
  check_finished "$run" || return 1
  term_result="exit 75 at step $n, resume equal"
}

# The finished run NAME must hold no leftovers, log every step once with the reference's losses, and end with
# the reference's weights.
check_finished() {
  local run="$1"
  util leftovers "$run" || return 1
  util metrics "$run" --steps "$steps" --ref "$work/runs/ref" || return 1
  util same-tensors "$(final_weights "$run")" "$(final_weights "$work/runs/ref")" || return 1
}

# Full disk: a tmpfs whose free space, after a filler file, holds one checkpoint and a half. The second
# checkpoint must fail naming the file and ENOSPC, leave no debris; after deleting the filler `--resume auto`
# continues from the first checkpoint to the reference's weights.
disk_phase() {
  echo "== full disk: a tmpfs that holds one and a half checkpoints"
  local size_k=$(( (ckpt_bytes * 4 + 64 * 1024 * 1024) / 1024 ))
  mkdir -p "$mnt"
  if ! mount -t tmpfs -o "size=${size_k}k" semaim-crash "$mnt" 2> "$work/logs/mount.log"; then
    echo "mount -t tmpfs: $(cat "$work/logs/mount.log")"
    return 3
  fi
  mounted=1
  local free_k filler_k run="$mnt/runs/disk" log="$work/logs/disk.log" code failed first
  free_k=$(df -k --output=avail "$mnt" | tail -n 1)
  filler_k=$(( free_k - ckpt_bytes * 3 / 2 / 1024 ))
  fallocate -l "${filler_k}k" "$mnt/filler" 2>/dev/null || head -c "$((filler_k * 1024))" /dev/zero > "$mnt/filler"
  free_k=$(df -k --output=avail "$mnt" | tail -n 1)
  echo "tmpfs of $((size_k / 1024)) MB, $((free_k / 1024)) MB free after the filler;" \
    "checkpoint $((ckpt_bytes / 1024 / 1024)) MB"
  code=0
  run_pretrain disk "$mnt/runs" "$log" || code=$?
  disk_result="exit $code"
  [ "$code" != 0 ] || { echo "the run finished on a full disk ($log)"; return 1; }
  failed=$code
  local msg
  msg=$(grep -m1 -E 'No space left on device' "$log" || true)
  [ -n "$msg" ] || { echo "exit $code without 'No space left on device' ($log):"; tail -n 5 "$log"; return 1; }
  echo "$msg" | grep -q "$run/" || { echo "the message names no file of the run: $msg"; return 1; }
  echo "exit $code: $msg"
  disk_result="ENOSPC exit $code; the checks after it failed, see above"
  util leftovers "$run" || { echo "debris after the failed save (above)"; return 1; }
  first=$(find "$run/checkpoints" -name 'step-*.json' -printf '%f\n' |
    sed -n 's/^step-0*\([0-9][0-9]*\)\.json$/\1/p' | sort -n | tail -n 1)
  [ -n "$first" ] || { echo "no complete checkpoint survived the full disk"; return 1; }
  echo "left on disk: $(find "$run/checkpoints" -type f -printf '%f\n' | sort | tr '\n' ' ')"
  rm -f "$mnt/filler"
  code=0
  run_pretrain disk "$mnt/runs" "$work/logs/disk-resume.log" --resume auto || code=$?
  [ "$code" = 0 ] || { echo "the resume after freeing space exited with $code: $work/logs/disk-resume.log"; return 1; }
  grep -q "resumed from $run/checkpoints/step-$(printf %08d "$first").json at step $first" \
    "$work/logs/disk-resume.log" || { echo "the resume did not continue from step $first"; return 1; }
  check_finished "$run" || return 1
  disk_result="ENOSPC exit $failed, clean; resumed from step $first, equal"
}

unmount() {
  if [ "${mounted:-0}" = 1 ]; then
    umount "$mnt" && mounted=0
  fi
}

# The full-disk phase, mounting directly, else in a private mount namespace (unshare -m, then with a user
# namespace for a non-root user: unshare -Urm), else skipped with a message.
run_disk_phase() {
  local rc=0 how
  local -a same=(--workdir "$work" --seed "$seed")
  [ "$quick" = 0 ] || same+=(--quick)
  [ -z "$config" ] || same+=(--config "$config")
  disk_phase || rc=$?
  unmount
  for how in -m -Urm; do
    [ "$rc" = 3 ] || break
    unshare "$how" true 2> /dev/null || continue
    echo "mount refused; retrying in a private mount namespace (unshare $how)"
    rc=0
    unshare "$how" --propagation private "$0" --phase disk "${same[@]}" || rc=$?
    disk_result="$(cat "$work/disk.result" 2> /dev/null || echo "no result") (in unshare $how)"
  done
  if [ "$rc" = 3 ]; then
    disk_result="skipped: neither mount -t tmpfs nor unshare -m / -Urm is permitted here"
    echo "$disk_result"
    rc=0
  fi
  return "$rc"
}

# ---- main ----

if [ -n "$config" ]; then
  cfg="$(cd "$(dirname "$config")" && pwd)/$(basename "$config")"
else
  cfg="$work/crash.yaml"
fi

if [ "$phase" = disk ]; then  # inside unshare -m: the mount is private to this process tree
  # shellcheck source=/dev/null
  source "$work/ref.env"
  disk_result="not run"
  trap unmount EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  rc=0
  disk_phase || rc=$?
  echo "$disk_result" > "$work/disk.result"
  exit "$rc"
fi

[ -n "$config" ] || write_config
trap unmount EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
echo "crash test: seed $seed, $kills kills, work dir $work, binary $bin"
t_start=$(date +%s)
kills_rc=0 term_rc=0 disk_rc=0 term_result="not run" disk_result="not run"
if ! reference; then
  echo "crash test: FAILED (no reference run); work dir kept: $work"
  exit 1
fi
kill_campaign || kills_rc=$?
sigterm_phase || term_rc=$?
[ "$term_rc" = 0 ] || term_result="FAILED (${term_result})"
run_disk_phase || disk_rc=$?
[ "$disk_rc" = 0 ] || disk_result="FAILED (${disk_result})"
wall=$(( $(date +%s) - t_start ))

field() {  # a field of the kill campaign's report; "?" when the campaign wrote none
  "$py" -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$work/kills.json" "$1" 2> /dev/null ||
    echo "?"
}
yesno() { [ "$(field "$1")" = True ] && echo yes || echo no; }
echo
replay="tools/crash_test.sh --kills $kills --seed $seed$([ "$quick" = 1 ] && echo ' --quick')"
echo "== crash test summary (seed $seed, replay: $replay)"
printf '| %-32s | %s |\n' "what" "result" "--------------------------------" "------"
printf '| %-32s | %s |\n' \
  "SIGKILLs" "$(field kills) of $kills ($(field early) during start-up)" \
  "kills inside a checkpoint write" "$(field in_write) (+ $(field between_files) between the files of a save)" \
  "resumes OK" "$(field resumes_ok) of $(field resumes)" \
  "final weights equal (bitwise)" "$(yesno weights_equal) (optimizer state: $(yesno state_equal))" \
  "metrics.jsonl each step once" "$(yesno metrics_ok)" \
  "no leftover files" "$(yesno leftovers_ok)" \
  "SIGTERM" "$term_result" \
  "full disk" "$disk_result" \
  "wall time" "${wall} s (reference run $(printf %.1f "$ref_seconds") s, $steps steps)"
if [ "$kills_rc" = 0 ] && [ "$term_rc" = 0 ] && [ "$disk_rc" = 0 ]; then
  echo "crash test: PASSED"
  if [ "$keep" = 1 ]; then
    echo "work dir kept: $work"
  else  # only what this script wrote: --workdir may name a directory that holds other files
    unmount
    rm -rf "$work/runs" "$work/logs" "$work/crash.yaml" "$work/ref.env" "$work/kills.json" "$work/disk.result"
    rmdir "$mnt" "$work" 2> /dev/null || true
  fi
  exit 0
fi
echo "crash test: FAILED; work dir kept: $work"
exit 1
