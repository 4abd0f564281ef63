#!/usr/bin/env bash
# The test command: set-up, build, then the whole ctest suite. Extra args go to ctest (e.g. -R Config).
#   tools/test.sh              Release build in build/, every test
#   tools/test.sh --sanitize   AddressSanitizer + UndefinedBehaviorSanitizer build in build-asan/ (CPU only,
#                              no benches), every test; any sanitizer report fails the test that caused it
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "${1:-}" = "--sanitize" ]; then
  shift
  export BUILD_DIR="${BUILD_DIR:-$root/build-asan}"
  export CMAKE_ARGS="-DSEMAIM_SANITIZE=ON -DSEMAIM_WITH_CUDA=OFF -DSEMAIM_BUILD_BENCH=OFF"
  # libtorch and OpenMPI are not instrumented and keep process-lifetime allocations: leak reports are limited
  # to what tools/sanitize/lsan.supp does not name. Container overflow checks need every library instrumented.
  export ASAN_OPTIONS="detect_leaks=1:detect_container_overflow=0:abort_on_error=0:halt_on_error=1:${ASAN_OPTIONS:-}"
  export LSAN_OPTIONS="suppressions=$root/tools/sanitize/lsan.supp:print_suppressions=0:${LSAN_OPTIONS:-}"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$root/tools/sanitize/ubsan.supp:${UBSAN_OPTIONS:-}"
fi
start=$(date +%s)
"$root/tools/build.sh"
echo "[test] build finished in $(( $(date +%s) - start )) s"
cd "${BUILD_DIR:-$root/build}"
ctest --output-on-failure --timeout 900 -j1 "$@"
