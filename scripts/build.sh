#!/usr/bin/env bash
# Configures and builds quiver into a build directory (default: build/).
# Usage: scripts/build.sh [BUILD_DIR] [extra cmake args...]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
shift || true
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQUIVER_WERROR=ON "$@" >/dev/null
cmake --build "$build" -j"${QUIVER_JOBS:-2}"
