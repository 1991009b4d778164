#!/usr/bin/env bash
# Builds quiver's benchmarks (Release) and runs them in a scratch directory on the same
# file system as the build (or --dir), then prints one markdown table:
#   benchmark | measured | floor | ratio | goal | met
# Every floor is measured in the same run, in the same directory. Goals are reported, never
# asserted: the exit status only says whether the benchmarks ran. See docs/performance.md.
#
# Usage: scripts/bench.sh [options]
#   --dir DIR         where the benchmarks write (default: a scratch dir in the build dir)
#   --build-dir DIR   build directory (default: $QUIVER_BENCH_BUILD_DIR or <repo>/build-bench)
#   --bytes N         array size of store_io, K/M/G suffixes (default 1G)
#   --entries N       entries of store_ops (default 100000)
#   --reps N          repetitions of each store_io measurement (default 3)
#   --cache MODE      store_io loads with the page cache warm, cold or both (default warm)
#   --only NAME       run only store_io, store_ops, remote or mpi
#   --mpi-ranks N     ranks of the mpi benchmark (default 4; fewer cores than ranks are
#                     oversubscribed)
#   --cipher NAME     ssh cipher of the remote benchmark, for quiver and its floor alike
#                     (default: ssh's choice)
#   --keep-store      keep store_ops' filled store in <build-dir>/bench-store and reuse it on
#                     later runs with the same --entries (skips the setup; delete it by hand
#                     after changing the entry format)
#   --no-build        use the binaries already in the build directory
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${QUIVER_BENCH_BUILD_DIR:-$repo/build-bench}
work_parent=""
bytes=1G
entries=100000
reps=3
cache=warm
only=""
cipher=""
mpi_ranks=4
keep_store=0
build=1

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case $1 in
    --dir) work_parent=$2; shift 2 ;;
    --build-dir) build_dir=$2; shift 2 ;;
    --bytes) bytes=$2; shift 2 ;;
    --entries) entries=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --cache) cache=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --cipher) cipher=$2; shift 2 ;;
    --mpi-ranks) mpi_ranks=$2; shift 2 ;;
    --keep-store) keep_store=1; shift ;;
    --no-build) build=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case $only in ""|store_io|store_ops|remote|mpi) ;; *) echo "bench.sh: --only takes store_io, store_ops, remote or mpi" >&2; exit 2 ;; esac
wants() { [ -z "$only" ] || [ "$only" = "$1" ]; }

targets=()
wants store_io && targets+=(bench_store_io)
wants store_ops && targets+=(bench_store_ops)
wants remote && targets+=(bench_remote quiver_cli)
wants mpi && targets+=(bench_mpi quiver_cli)

if [ $build = 1 ]; then
  configure=(-DCMAKE_BUILD_TYPE=Release -DQUIVER_BUILD_BENCH=ON)
  # A fresh directory builds only what the benchmarks need.
  [ -f "$build_dir/CMakeCache.txt" ] || configure+=(-DQUIVER_BUILD_TESTS=OFF -DQUIVER_BUILD_DEMO=OFF)
  echo "bench.sh: building ${targets[*]} (Release) in $build_dir" >&2
  cmake -S "$repo" -B "$build_dir" "${configure[@]}" >/dev/null
  cmake --build "$build_dir" -j "$(nproc)" --target "${targets[@]}" >&2
fi
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build_dir/CMakeCache.txt")
[ "$build_type" = Release ] || echo "bench.sh: warning: $build_dir is a $build_type build" >&2

# Scratch space on the same file system as the build (or under --dir). It is removed after
# the table is printed: deleting 100,000 small files can take minutes on a busy disk.
mkdir -p "${work_parent:-$build_dir}"
work=$(mktemp -d "${work_parent:-$build_dir}/bench-run-XXXXXX")
cleanup() {
  "$repo/scripts/sshd-fixture.sh" stop "$work/ssh-fixture.env"
  echo "bench.sh: removing $work" >&2
  rm -rf "$work"
}
trap cleanup EXIT
ops_dir=$work
if [ $keep_store = 1 ]; then
  ops_dir=${work_parent:-$build_dir}/bench-store
  mkdir -p "$ops_dir"
fi

rows=""
status=0
# run NAME DIR ARGS...: runs bench_NAME (under the command in the array `launch`, if any)
# and collects its table rows.
launch=()
run() {
  local name=$1 dir=$2 t0=$SECONDS out
  shift 2
  if out=$("${launch[@]}" "$build_dir/bin/bench_$name" --dir "$dir" --no-header "$@"); then
    rows+=$out$'\n'
    echo "bench.sh: $name took $((SECONDS - t0)) s" >&2
  else
    echo "bench.sh: $name failed (exit $?)" >&2
    status=1
  fi
}
start=$SECONDS
load_start=$(cut -d' ' -f1 /proc/loadavg)
wants store_io && run store_io "$work" --bytes "$bytes" --reps "$reps" --cache "$cache"
# --keep: the program leaves its store for the cleanup above (or for reuse).
wants store_ops && run store_ops "$ops_dir" --entries "$entries" --keep
# remote and mpi: over a local pipe, and over ssh to a private sshd on 127.0.0.1 (started
# here as for the ssh tests, stopped by the cleanup above; needs root).
ssh_ready=0
if wants remote || wants mpi; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bench.sh: benchmarks over ssh need root (private sshd); local pipe rows only" >&2
  elif "$repo/scripts/sshd-fixture.sh" start "$work/ssh-fixture.env" \
    --quiver "$build_dir/bin/quiver" >&2; then
    . "$work/ssh-fixture.env"
    ssh_ready=1
  else
    echo "bench.sh: the sshd fixture did not start" >&2
    status=1
  fi
fi
if wants remote; then
  remote_args=()
  if [ $ssh_ready = 1 ]; then
    remote_args=(--host "$QUIVER_SSH_HOST" --ssh-config "$QUIVER_SSH_CONFIG"
      --remote-quiver "$QUIVER_SSH_QUIVER" --remote-dir "$QUIVER_SSH_REMOTE_DIR")
    [ -z "$cipher" ] || remote_args+=(--cipher "$cipher")
  fi
  run remote "$work" --reps "$reps" --bytes "$bytes" "${remote_args[@]}"
fi
# mpi: bench_mpi under mpirun, rank 0's cache a server subprocess; then (with the sshd)
# an ssh cache to it, as a job's shared layer would be.
if wants mpi; then
  launch=(mpirun -np "$mpi_ranks")
  [ "$(nproc)" -ge "$mpi_ranks" ] || launch+=(--oversubscribe)
  [ "$(id -u)" -ne 0 ] || launch+=(--allow-run-as-root)
  run mpi "$work"
  if [ $ssh_ready = 1 ]; then
    server_toml=$QUIVER_SSH_REMOTE_DIR/mpi-server.toml
    printf '[default]\ncache = "store"\n\n[store]\ntype = "hdf5"\npath = "%s"\nfsync = false\n' \
      "$QUIVER_SSH_REMOTE_DIR/mpi-store" >"$server_toml"
    chmod a+r "$server_toml"
    ssh_options="\"-F\", \"$QUIVER_SSH_CONFIG\""
    [ -z "$cipher" ] || ssh_options+=", \"-c\", \"$cipher\""
    printf '[default]\ncache = "ssh"\n\n[ssh]\ntype = "ssh"\nhost = "%s"\nssh_options = [%s]\nquiver = "%s"\nconfig = "%s"\n' \
      "$QUIVER_SSH_HOST" "$ssh_options" "$QUIVER_SSH_QUIVER" "$server_toml" >"$work/mpi-ssh.toml"
    run mpi "$work" --config "$work/mpi-ssh.toml" --label "ssh to 127.0.0.1" --latency-us 0
  fi
  launch=()
fi

mem_gib=$(awk '/^MemTotal:/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
fs_type=$(stat -f -c %T "$work")
command -v findmnt >/dev/null && fs_type+=" (mounted as $(findmnt -no FSTYPE -T "$work"))"
echo
echo "quiver benchmarks, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -sr), $(nproc) cores," \
  "${mem_gib} GiB memory, file system $fs_type at $(dirname "$work")," \
  "load average $load_start at start, $(cut -d' ' -f1 /proc/loadavg) at end, $((SECONDS - start)) s"
echo
echo "| benchmark | measured | floor | ratio | goal | met |"
echo "|---|---|---|---|---|---|"
printf '%s' "$rows"
exit $status
