#!/usr/bin/env bash
# The demo's command line: --help prints its usage and exits 0; bad arguments print it on
# stderr and exit 2 before any cache is opened (the embedded default's store is not created).
# usage: demo_arguments.sh MPIEXEC FLAGS DEMO   (FLAGS: mpiexec flags as a CMake ;-list)
set -u
mpiexec=$1
IFS=';' read -r -a flags <<< "$2"
demo=$3
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export XDG_CACHE_HOME=$scratch/cache XDG_CONFIG_HOME=$scratch/config HOME=$scratch
unset QUIVER_CONFIG
cd "$scratch"
fail() { echo "FAIL: $*" >&2; exit 1; }

out=$("$mpiexec" -np 2 "${flags[@]}" "$demo" --help 2>"$scratch/err") || fail "--help exited $?"
grep -q '^usage: mpirun -np N quiver_demo \[n\] \[steps\]' <<< "$out" || fail "no usage on stdout: $out"
[ "$(grep -c '^usage:' <<< "$out")" = 1 ] || fail "usage printed by more than rank 0: $out"

for args in "0" "abc" "160 -5" "160 10 extra"; do
  # shellcheck disable=SC2086
  "$mpiexec" -np 2 "${flags[@]}" "$demo" $args > "$scratch/out" 2> "$scratch/err"
  status=$?
  [ "$status" = 2 ] || fail "'$args' exited $status, not 2"
  grep -q 'quiver_demo: bad arguments' "$scratch/err" || fail "'$args': no error on stderr"
  grep -q '^usage:' "$scratch/err" || fail "'$args': no usage on stderr"
done
[ ! -e "$scratch/cache/quiver" ] || fail "bad arguments opened the cache: $(ls -R "$scratch/cache")"
echo "ok"
