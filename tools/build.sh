#!/usr/bin/env bash
# Configures and builds semaim (Release by default) after tools/setup.sh; extra args are passed to cmake --build.
# Env: BUILD_DIR (default build), BUILD_TYPE (default Release), JOBS (default: cores), CMAKE_ARGS (extra
# configure arguments, used when the build directory is first configured).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/tools/setup.sh"
BUILD_DIR="${BUILD_DIR:-$root/build}"
BUILD_TYPE="${BUILD_TYPE:-Release}"
JOBS="${JOBS:-$(nproc)}"
export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
export CCACHE_DIR="${CCACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/semaim/ccache}"
export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-5G}"
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$BUILD_DIR" "${gen[@]}" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" -DSEMAIM_VENV="$SEMAIM_VENV" ${CMAKE_ARGS:-}
fi
cmake --build "$BUILD_DIR" -j"$JOBS" "$@"
