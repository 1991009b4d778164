#!/usr/bin/env bash
# The sanitizer and fuzzing step of the test suite (docs/reliability.md), in build
# directories of their own beside the sources, compiled at -O1 -g1 (quick to build, still
# fast enough to run, stacks with file:line), the library and the CLI as unity builds:
#   asan  build-san: clang-14, -DQUIVER_SANITIZE=address,undefined,fuzzer-no-link; every
#         unit and integration test and the fuzz corpus replays, halting on the first
#         report, leaks included.
#   fuzz  build-san again (the same instrumented library): each libFuzzer target for
#         QUIVER_FUZZ_SECONDS (45), two at a time.
#   tsan  build-tsan: gcc, -DQUIVER_SANITIZE=thread; the tests that run threads against one
#         another (client pipelining, the server loop, concurrent store writers, memory
#         cache, reader deadlines and signals).
#   tsan-mpi  build-tsan again, with -DQUIVER_MPI=ON: rank 0's progress threads under
#         mpirun (mpi.cache_test, mpi.collective_timeout_test); Open MPI itself is not
#         instrumented (tests/sanitizers/tsan.supp says what is suppressed in it, and why).
# Usage: scripts/sanitize.sh [asan] [tsan] [tsan-mpi] [fuzz]     (no argument: all four)
# Environment: QUIVER_JOBS (2), QUIVER_FUZZ_SECONDS, QUIVER_SANITIZE_ROOT (where the build
# directories go; default: the source tree). Prints the time each step took.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${QUIVER_SANITIZE_ROOT:-$here}
jobs=${QUIVER_JOBS:-2}
supp=$here/tests/sanitizers
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(asan fuzz tsan tsan-mpi)

# Halt at the first report, with a stack; suppressions cover third-party code only.
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=0"
export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$supp/ubsan.supp"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$supp/tsan.supp"

configure() {  # configure DIR extra-args...
  local dir=$1 gen=()
  shift
  # Ninja for a new directory, as in scripts/build.sh. With Make, the targets named to one
  # `cmake --build --target a b ...` are built one after another (each test program on one core).
  [ ! -f "$dir/CMakeCache.txt" ] && command -v ninja >/dev/null && gen=(-G Ninja)
  cmake -S "$here" -B "$dir" "${gen[@]}" -DCMAKE_BUILD_TYPE=None -DCMAKE_C_FLAGS="-O1 -g1" \
    -DCMAKE_CXX_FLAGS="-O1 -g1" -DQUIVER_WERROR=ON -DQUIVER_UNITY_BUILD=ON \
    -DQUIVER_BUILD_BENCH=OFF -DQUIVER_BUILD_DEMO=OFF -DQUIVER_MPI=OFF "$@" >/dev/null
}

# The clang build shared by asan and fuzz: ASan+UBSan everywhere, plus libFuzzer's coverage
# instrumentation, so the fuzz targets link the very library the ASan tests ran.
san_build() {
  if ! command -v clang++-14 >/dev/null; then
    echo "sanitize: clang++-14 not found; this step needs it (scripts/install-deps.sh)"
    return 1
  fi
  configure "$out/build-san" -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
    -DQUIVER_SANITIZE=address,undefined,fuzzer-no-link \
    -DQUIVER_FUZZ_SECONDS="${QUIVER_FUZZ_SECONDS:-45}"
}

# The test programs of an area: tests/<area>/<name>_test.cpp -> <area>_<name>_test.
programs() {
  for src in "$here"/tests/"$1"/*_test.cpp; do
    echo "$1_$(basename "$src" .cpp)"
  done
}

status=0
# Inside `if`, errexit is off: the step functions return at their first failing command.
step() {  # step NAME command...: runs it, reports its time, remembers a failure
  local name=$1 t0=$SECONDS
  shift
  echo "== sanitize: $name"
  if "$@"; then
    echo "== sanitize: $name passed in $((SECONDS - t0)) s"
  else
    echo "== sanitize: $name FAILED after $((SECONDS - t0)) s"
    status=1
  fi
}

asan() {
  local b=$out/build-san
  san_build || return
  # shellcheck disable=SC2046
  cmake --build "$b" -j"$jobs" --target quiver_cli $(programs unit) $(programs integration) \
    fuzz_wire_corpus fuzz_value_corpus fuzz_digest_corpus fuzz_config_corpus || return
  # Left out: a garbage blob given to Boost.Serialization's binary_iarchive, which allocates
  # whatever length the garbage declares. Without ASan that throws std::bad_alloc, which
  # from_object reports as TypeError (the normal run tests it); ASan's operator new aborts on
  # an impossible size instead of throwing.
  (cd "$b" && ctest --output-on-failure -j"$jobs" --timeout 900 -L '^(unit|integration|fuzz)$' \
    -LE libfuzzer -E 'GarbageBlobIsATypeError/binary')
}

# The tests that exercise threads against one another, as ctest -R patterns.
tsan_tests='^unit\.(MemoryCache|RemoteServer|WireFrameReader|Hdf5StoreTest\.Concurrent|(Corrupt)?ChunkFile)|^integration\.(Remote|StoreConcurrency)'

tsan() {
  local b=$out/build-tsan
  configure "$b" -DQUIVER_SANITIZE=thread || return
  local targets=(quiver_cli unit_memory_cache_test unit_remote_server_test unit_wire_frame_test
    unit_hdf5_store_test unit_h5_chunks_test integration_store_concurrency_test)
  for p in $(programs integration); do
    case $p in integration_remote_*) targets+=("$p") ;; esac
  done
  cmake --build "$b" -j"$jobs" --target "${targets[@]}" || return
  # Thread-count leak checks are left out: the TSan runtime starts a thread of its own.
  (cd "$b" && ctest --output-on-failure -j"$jobs" --timeout 900 -R "$tsan_tests" \
    -E 'NothingLeaksAfterClose')
}

tsan_mpi() {
  if ! command -v mpirun >/dev/null; then
    echo "sanitize: mpirun not found; tsan-mpi needs MPI (scripts/install-deps.sh)"
    return 1
  fi
  local b=$out/build-tsan
  configure "$b" -DQUIVER_SANITIZE=thread -DQUIVER_MPI=ON || return
  cmake --build "$b" -j"$jobs" --target quiver_cli mpi_cache_test mpi_collective_timeout_test ||
    return
  (cd "$b" && ctest --output-on-failure --timeout 900 -R '^mpi\.(cache|collective_timeout)_test$')
}

fuzz() {
  local b=$out/build-san
  san_build || return
  cmake --build "$b" -j"$jobs" --target fuzz_wire fuzz_value fuzz_digest fuzz_config || return
  # Two targets at a time, one per core.
  (cd "$b" && ctest --output-on-failure -j"$jobs" -L libfuzzer)
}

total=$SECONDS
for s in "${steps[@]}"; do
  case $s in
    asan | tsan | fuzz) step "$s" "$s" ;;
    tsan-mpi) step "$s" tsan_mpi ;;
    *)
      echo "usage: $0 [asan] [tsan] [tsan-mpi] [fuzz]" >&2
      exit 2
      ;;
  esac
done
echo "== sanitize: done in $((SECONDS - total)) s"
exit $status
