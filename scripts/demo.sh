#!/usr/bin/env bash
# The demo: an MPI heat-diffusion parameter sweep whose runs are memoized through one cache.
# Installs what is missing, builds, then runs the demo twice with `mpirun -np 4`: the first
# pass computes, the second is served from the cache. Rank 0 starts the job's only cache
# server (`quiver serve --stdio`, a local subprocess over an HDF5 store: no ssh needed) and
# serves the other ranks over MPI.
#
# Usage: scripts/demo.sh [n [steps]]   (grid points per side, time steps; default 160 2500)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/install-deps.sh" build
"$here/scripts/build.sh" "$here/build"

ranks=${QUIVER_DEMO_RANKS:-4}
mpirun_flags=(-np "$ranks")
if mpirun --version 2>&1 | grep -q "Open MPI"; then
  mpirun_flags+=(--oversubscribe)  # more ranks than cores is fine for a demo
  if [ "$(id -u)" = 0 ]; then mpirun_flags+=(--allow-run-as-root); fi
fi

# A fresh cache of the demo's own: quiver.toml's default is a subprocess server that serves
# the [store] table of the same file, an HDF5 store under build/demo-cache.
demo=$here/build/demo-cache
rm -rf "$demo"
mkdir -p "$demo"
cat >"$demo/quiver.toml" <<TOML
[default]
cache = "demo"

# Rank 0 starts one server for the whole job and talks to it over stdin/stdout.
[demo]
type = "subprocess"
quiver = "$here/build/bin/quiver"
config = "$demo/quiver.toml"
cache_name = "store"

# What that server serves.
[store]
type = "hdf5"
path = "$demo/store"
TOML
export QUIVER_CONFIG=$demo/quiver.toml

# One pass of the demo; prints its wall time and leaves it (seconds) in $elapsed.
pass() {
  local t0 t1
  t0=$(date +%s.%N)
  mpirun "${mpirun_flags[@]}" "$here/build/bin/quiver_demo" "$@"
  t1=$(date +%s.%N)
  elapsed=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
  printf 'wall time of the pass: %.2f s\n' "$elapsed"
}

echo "== pass 1: empty cache ($demo/store)"
pass "$@"
first=$elapsed
echo
echo "== pass 2: same parameters"
pass "$@"
second=$elapsed
awk -v a="$first" -v b="$second" \
  'BEGIN { printf "\n== the cache saved %.2f s of %.2f s (second pass %.1fx faster)\n", a - b, a, a / b }'
echo
echo "== what the cache holds"
"$here/build/bin/quiver" ls
