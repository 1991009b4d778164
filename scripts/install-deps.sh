#!/usr/bin/env bash
# Installs every Debian package quiver needs to build, test and demo.
# Idempotent: packages already present are skipped, so re-running is cheap.
# Usage: scripts/install-deps.sh [build|test|tcl-modules]
#   test = build + tools the tests drive (Lmod among them);
#   tcl-modules = Tcl environment-modules, which replaces Lmod (the Debian packages
#   conflict): scripts/test.sh runs the Tcl module tests with it, then `test` again.
set -euo pipefail
mode=${1:-test}

build_pkgs=(cmake g++ make ninja-build pkg-config
  libboost-program-options-dev libboost-serialization-dev
  libhdf5-dev libssl-dev libtomlplusplus-dev libspdlog-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libopenmpi-dev openmpi-bin libhdf5-openmpi-dev)
test_pkgs=(hdf5-tools python3-h5py openssh-server openssh-client
  clang-14 libclang-rt-14-dev procps psmisc
  lmod slurm-wlm slurmctld slurmd munge man-db)

want=("${build_pkgs[@]}")
[ "$mode" = test ] && want+=("${test_pkgs[@]}")
[ "$mode" = tcl-modules ] && want=(environment-modules)

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#want[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
