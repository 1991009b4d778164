#!/usr/bin/env bash
# The demo: a heat-diffusion parameter sweep memoized through the embedded default cache.
# Installs what is missing, builds, then runs the sweep twice: the first pass computes,
# the second is served from the cache.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/install-deps.sh" build
"$here/scripts/build.sh" "$here/build"

# The embedded default cache lives under $XDG_CACHE_HOME/quiver; give the demo its own,
# fresh one so the first pass really computes.
export XDG_CACHE_HOME="$here/build/demo-cache"
unset QUIVER_CONFIG
rm -rf "$XDG_CACHE_HOME"
echo "== pass 1: empty cache ($XDG_CACHE_HOME/quiver)"
"$here/build/bin/quiver_demo" "$@"
echo
echo "== pass 2: same parameters"
"$here/build/bin/quiver_demo" "$@"
echo
echo "== what the cache holds"
"$here/build/bin/quiver" ls
