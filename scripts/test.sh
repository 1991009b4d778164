#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds with warnings as errors, and runs
# every test (unit, integration) through CTest.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${QUIVER_TEST_BUILD:-$here/build-test}
"$here/scripts/install-deps.sh" test
"$here/scripts/build.sh" "$build"
cd "$build"
ctest --output-on-failure -j"${QUIVER_JOBS:-2}" --timeout 600 "$@"
