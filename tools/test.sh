#!/usr/bin/env bash
# The test command: set-up, build, then the whole ctest suite. Extra args go to ctest (e.g. -R Config).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
start=$(date +%s)
"$root/tools/build.sh"
echo "[test] build finished in $(( $(date +%s) - start )) s"
cd "${BUILD_DIR:-$root/build}"
ctest --output-on-failure --timeout 900 -j1 "$@"
