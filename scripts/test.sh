#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds with warnings as errors (libquiver and
# the CLI as unity builds, which take less time from scratch), and runs every test (unit,
# integration) through CTest.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${QUIVER_TEST_BUILD:-$here/build-test}
"$here/scripts/install-deps.sh" test
"$here/scripts/build.sh" "$build" -DQUIVER_UNITY_BUILD=ON
cd "$build"
ctest --output-on-failure -j"${QUIVER_JOBS:-2}" --timeout 600 "$@"

# Sanitizers and fuzzing (scripts/sanitize.sh): ASan+UBSan over the unit and integration
# tests, TSan over the concurrent ones, each libFuzzer target for a bounded time, in build
# directories beside $build. QUIVER_SANITIZERS=0 leaves this step out.
san_status=0
if [ "${QUIVER_SANITIZERS:-1}" = 1 ] && [ $# -eq 0 ]; then
  QUIVER_SANITIZE_ROOT=${QUIVER_SANITIZE_ROOT:-$(dirname "$build")} \
    "$here/scripts/sanitize.sh" || san_status=$?
fi

# Tcl environment-modules and Lmod conflict (installing one removes the other), so the Tcl
# module tests (label tcl; skipped above, as Lmod is installed) run in a step of their own.
# Lmod is put back afterwards, even when they fail, so the machine is left as found.
# QUIVER_TCL_MODULES=0 leaves this step out.
if [ "${QUIVER_TCL_MODULES:-1}" = 1 ] && [ $# -eq 0 ]; then
  tcl_status=0
  "$here/scripts/install-deps.sh" tcl-modules
  ctest --output-on-failure --timeout 600 -L tcl || tcl_status=$?
  "$here/scripts/install-deps.sh" test
  exit $((tcl_status ? tcl_status : san_status))
fi
exit $san_status
