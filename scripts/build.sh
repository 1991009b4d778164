#!/usr/bin/env bash
# Configures and builds quiver into a build directory (default: build/).
# Usage: scripts/build.sh [BUILD_DIR] [extra cmake args...]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
shift || true
# A new build directory uses Ninja when it is installed: it keeps both cores busy across
# targets (Make waits for the whole library before compiling the CLI). An existing directory
# keeps its generator.
gen=()
[ ! -f "$build/CMakeCache.txt" ] && command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S "$here" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQUIVER_WERROR=ON \
  "$@" >/dev/null
cmake --build "$build" -j"${QUIVER_JOBS:-2}"
