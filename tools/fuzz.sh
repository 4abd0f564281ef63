#!/usr/bin/env bash
# Builds the libFuzzer targets (clang; coverage + ASan + UBSan) in build-fuzz/ and runs each on a copy of its
# seed corpus (fuzz/corpus/<target>), then prints one line per target. Any finding (crash, sanitizer report,
# uncaught exception, leak, timeout, out-of-memory) is copied to fuzz/regressions/<target>/ and the exit code
# is 1. docs/reliability.md#fuzzing.
#   tools/fuzz.sh [--seconds N | --minutes N] [--jobs J] [--no-build] [target...]
# Targets: config idx safetensors checkpoint list image pth label_map coco_json (default: all). Default: 20
# seconds per target, 1 job; --no-build runs the targets already in the build directory.
# Env: FUZZ_BUILD_DIR (default build-fuzz), FUZZ_ARGS (extra libFuzzer flags).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
all_targets=(config idx safetensors checkpoint list image pth label_map coco_json)
seconds=20
jobs=1
build_it=1
targets=()
while (($#)); do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --minutes) seconds=$(($2 * 60)); shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --no-build) build_it=0; shift ;;
    -h|--help) sed -n '2,11p' "${BASH_SOURCE[0]}"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *)
      if [[ " ${all_targets[*]} " != *" $1 "* ]]; then
        echo "fuzz.sh: unknown target $1 (${all_targets[*]})" >&2
        exit 2
      fi
      targets+=("$1"); shift ;;
  esac
done
((${#targets[@]})) || targets=("${all_targets[@]}")

build="${FUZZ_BUILD_DIR:-$root/build-fuzz}"
if ((build_it)); then
  source "$root/tools/setup.sh"
  export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/semaim/ccache}"
  export CCACHE_SLOPPINESS="${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}"
  if [ ! -f "$build/CMakeCache.txt" ]; then
    gen=()
    command -v ninja >/dev/null && gen=(-G Ninja)
    CC=clang CXX=clang++ cmake -S "$root" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
      -DSEMAIM_VENV="$SEMAIM_VENV" -DSEMAIM_FUZZ=ON -DSEMAIM_WITH_CUDA=OFF -DSEMAIM_WITH_MPI=OFF \
      -DSEMAIM_BUILD_TESTS=OFF -DSEMAIM_BUILD_BENCH=OFF
  fi
  start=$(date +%s)
  # One build at a time on a shared machine (the lock is free elsewhere).
  flock "${SEMAIM_BUILD_LOCK:-/tmp/semaim-build.lock}" \
    cmake --build "$build" -j"${JOBS:-2}" --target "${targets[@]/#/fuzz_}"
  echo "[fuzz] build finished in $(($(date +%s) - start)) s"
fi

# Leaks of libraries semaim does not build (process-lifetime registries) are not findings; semaim's are.
export ASAN_OPTIONS="detect_leaks=1:detect_container_overflow=0:${ASAN_OPTIONS:-}"
export LSAN_OPTIONS="suppressions=$root/tools/sanitize/lsan.supp:print_suppressions=0:${LSAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
# One intra-op thread: an input runs the same way every time, and idle OpenMP workers do not spin on the cores.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
command -v llvm-symbolizer >/dev/null && export ASAN_SYMBOLIZER_PATH="$(command -v llvm-symbolizer)"

failed=0
summary=()
for t in "${targets[@]}"; do
  work="$build/work/$t"
  rm -rf "$work"
  # The targets' temporary files: libFuzzer ends a process without running destructors.
  mkdir -p "$work/corpus" "$work/artifacts" "$work/tmp"
  cp "$root/fuzz/corpus/$t/"* "$work/corpus/"
  seeds=$(find "$work/corpus" -type f | wc -l)
  args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1
        -artifact_prefix="$work/artifacts/")
  [ -f "$root/fuzz/$t.dict" ] && args+=(-dict="$root/fuzz/$t.dict")
  ((jobs > 1)) && args+=(-fork="$jobs")
  echo "[fuzz] fuzz_$t for ${seconds} s (${jobs} job(s)); log $work/log"
  set +e
  # shellcheck disable=SC2086
  (cd "$work" && TMPDIR="$work/tmp" "$build/fuzz/fuzz_$t" "${args[@]}" ${FUZZ_ARGS:-} "$work/corpus" </dev/null >"$work/log" 2>&1)
  rc=$?
  set -e
  # Executions and speed: libFuzzer's final stats (one process), else its last status line (fork mode).
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log" | tail -1)
  [ -n "$execs" ] || execs=$(grep -o '^#[0-9]*' "$work/log" | tail -1 | tr -d '#')
  [ -n "$speed" ] || speed=$(grep -o 'exec/s[: ]*[0-9]*' "$work/log" | tail -1 | grep -o '[0-9]*$')
  corpus=$(find "$work/corpus" -type f | wc -l)
  found=()
  for a in "$work"/artifacts/*; do
    [ -f "$a" ] || continue
    case "$(basename "$a")" in crash-*|leak-*|timeout-*|oom-*) ;; *) continue ;; esac
    mkdir -p "$root/fuzz/regressions/$t"
    cp "$a" "$root/fuzz/regressions/$t/"
    found+=("fuzz/regressions/$t/$(basename "$a")")
  done
  if ((rc != 0)) && ((${#found[@]} == 0)); then
    found+=("exit code $rc without an artifact: see $work/log")
  fi
  ((${#found[@]})) && failed=1
  crashes="0"
  ((${#found[@]})) && crashes="${#found[@]}: ${found[*]}"
  summary+=("fuzz_$t: ${execs:-0} executions, ${speed:-0} exec/s, corpus $seeds -> $corpus, crashes $crashes")
done
printf '%s\n' "${summary[@]}"
exit "$failed"
