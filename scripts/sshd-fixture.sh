#!/usr/bin/env bash
# A private OpenSSH server on 127.0.0.1 for quiver's real-ssh tests and benchmarks.
#
#   scripts/sshd-fixture.sh start STATE [--quiver PATH]
#   scripts/sshd-fixture.sh stop STATE
#
# start (as root) makes a fresh directory /tmp/quiver-sshd-XXXXXX holding its own ed25519
# host and client keys, an sshd_config listening on a free port of 127.0.0.1 only, an
# ssh_config for it (host alias "quiver-sshd", BatchMode, StrictHostKeyChecking with its own
# known_hosts), a copy of the quiver executable PATH (default: quiver on PATH) in bin/, a Lua
# modulefile "quiver-test" that puts that bin/ on PATH (for Lmod), and remote/, a directory
# owned by the test user where the remote side keeps its stores. The remote side is the
# unprivileged user quiver-test (created once with `useradd -m -p '*'`, shell bash), so the
# test user can run quiver wherever the build tree lives. A second unprivileged user,
# quiver-test2 (host alias "quiver-sshd2", same client key), shares the group
# quiver-shared with quiver-test, for tests of two users writing one store root. It starts
# `sshd -D -e` in the background, waits (polling, with a deadline) until `ssh quiver-sshd
# true` succeeds and the copy of quiver runs there, and writes STATE, a file of shell
# assignments:
#   QUIVER_SSH_DIR, QUIVER_SSH_CONFIG, QUIVER_SSH_HOST, QUIVER_SSH_PORT, QUIVER_SSH_USER,
#   QUIVER_SSH_QUIVER, QUIVER_SSH_REMOTE_DIR, QUIVER_SSH_MODULEPATH, QUIVER_SSH_PID,
#   QUIVER_SSH_HOST2, QUIVER_SSH_USER2, QUIVER_SSH_GROUP
# stop kills that sshd by its PID (TERM, then KILL after a deadline) and removes the
# directory and STATE. Both are safe to repeat. sshd's log is $QUIVER_SSH_DIR/sshd.log.
set -euo pipefail

user=quiver-test
host_alias=quiver-sshd
user2=quiver-test2
host_alias2=quiver-sshd2
group=quiver-shared
sshd=/usr/sbin/sshd

die() {
  echo "sshd-fixture: $*" >&2
  exit 1
}

[ $# -ge 2 ] || die "usage: $0 start STATE [--quiver PATH] | stop STATE"
action=$1
state=$2
shift 2
quiver=""
while [ $# -gt 0 ]; do
  case $1 in
    --quiver) quiver=$2; shift 2 ;;
    *) die "unknown argument $1" ;;
  esac
done

# Ends the sshd whose PID is $1 if it is still the one started with config $2.
stop_pid() {
  local pid=$1 config=$2 i
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 0
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$config" || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 50); do
    [ -e "/proc/$pid" ] || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

stop() {
  [ -f "$state" ] || return 0
  local QUIVER_SSH_DIR="" QUIVER_SSH_PID=""
  # shellcheck disable=SC1090
  . "$state"
  stop_pid "$QUIVER_SSH_PID" "$QUIVER_SSH_DIR/sshd_config"
  case $QUIVER_SSH_DIR in /tmp/quiver-sshd-*) rm -rf "$QUIVER_SSH_DIR" ;; esac
  rm -f "$state"
}

if [ "$action" = stop ]; then
  stop
  exit 0
fi
[ "$action" = start ] || die "unknown action $action (start or stop)"
[ "$(id -u)" -eq 0 ] || die "start needs root (it creates the user $user and runs sshd)"
[ -x $sshd ] || die "$sshd not found: install openssh-server (scripts/install-deps.sh test)"
command -v ssh >/dev/null || die "ssh not found: install openssh-client"
[ -n "$quiver" ] || quiver=$(command -v quiver) || die "no quiver on PATH; pass --quiver"
[ -x "$quiver" ] || die "$quiver is not an executable"
stop # a leftover of an interrupted run

getent group "$group" >/dev/null || groupadd "$group" 2>/dev/null ||
  getent group "$group" >/dev/null || die "cannot create the group $group"
for u in "$user" "$user2"; do
  if ! id "$u" >/dev/null 2>&1; then
    # '*' instead of '!': a locked account cannot log in when sshd runs without PAM.
    useradd -m -s /bin/bash -p '*' "$u" 2>/dev/null || id "$u" >/dev/null ||
      die "cannot create the user $u"
  fi
  [ "$(getent passwd "$u" | cut -d: -f7)" = /bin/bash ] || usermod -s /bin/bash "$u"
  [[ " $(id -nG "$u") " == *" $group "* ]] || usermod -aG "$group" "$u"
done

dir=$(mktemp -d /tmp/quiver-sshd-XXXXXX)
chmod 755 "$dir"
pid=""
started=0
# On any failure below: stop what was started and remove the directory.
trap '[ $started = 1 ] || { stop_pid "$pid" "$dir/sshd_config"; rm -rf "$dir"; }' EXIT
mkdir -p /run/sshd "$dir/bin" "$dir/modulefiles" "$dir/remote" "$dir/authorized_keys"
cp "$quiver" "$dir/bin/quiver"
chmod 755 "$dir/bin/quiver"
chown "$user": "$dir/remote"
cat >"$dir/modulefiles/quiver-test.lua" <<EOF
help([[quiver from the build being tested (ssh test fixture)]])
whatis("Name: quiver-test")
prepend_path("PATH", "$dir/bin")
EOF
ssh-keygen -q -t ed25519 -N '' -C quiver-sshd-host -f "$dir/host_ed25519"
ssh-keygen -q -t ed25519 -N '' -C quiver-sshd-client -f "$dir/client_ed25519"
cp "$dir/client_ed25519.pub" "$dir/authorized_keys/$user"
cp "$dir/client_ed25519.pub" "$dir/authorized_keys/$user2"
echo "$host_alias $(cut -d' ' -f1,2 "$dir/host_ed25519.pub")" >"$dir/known_hosts"

# A port is picked at random and sshd started on it; if sshd cannot bind it (taken), it
# exits at once and another port is tried.
for attempt in $(seq 20); do
  port=$((20000 + RANDOM % 40000))
  cat >"$dir/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host_ed25519
PidFile none
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile $dir/authorized_keys/%u
AllowUsers $user $user2
PermitRootLogin no
StrictModes no
MaxSessions 64
MaxStartups 64:30:128
X11Forwarding no
AllowTcpForwarding no
PrintMotd no
Subsystem sftp internal-sftp
EOF
  # The first value of an option wins: $host_alias2 gets User $user2, the rest is shared.
  cat >"$dir/ssh_config" <<EOF
Host $host_alias2
  User $user2
Host $host_alias $host_alias2
  HostName 127.0.0.1
  Port $port
  User $user
  IdentityFile $dir/client_ed25519
  IdentitiesOnly yes
  BatchMode yes
  HostKeyAlias $host_alias
  UserKnownHostsFile $dir/known_hosts
  StrictHostKeyChecking yes
  ConnectTimeout 10
  LogLevel ERROR
EOF
  # Detached from the caller's descriptors, so CTest does not wait for it.
  setsid $sshd -D -e -f "$dir/sshd_config" </dev/null >>"$dir/sshd.log" 2>&1 &
  pid=$!
  deadline=$((SECONDS + 30))
  while [ $SECONDS -lt $deadline ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      pid=""
      break
    fi
    if ssh -F "$dir/ssh_config" "$host_alias" true 2>>"$dir/ssh-probe.log"; then break; fi
    sleep 0.1
  done
  [ -n "$pid" ] && break
done
[ -n "$pid" ] || die "sshd did not start; its log: $(tail -5 "$dir/sshd.log")"
ssh -F "$dir/ssh_config" "$host_alias" true 2>/dev/null ||
  die "ssh $host_alias true still fails after 30 s; $(tail -3 "$dir/ssh-probe.log")"
out=$(ssh -F "$dir/ssh_config" "$host_alias" "$dir/bin/quiver" --version 2>&1) ||
  die "the user $user cannot run $dir/bin/quiver: $out"
out2=$(ssh -F "$dir/ssh_config" "$host_alias2" "$dir/bin/quiver" --version 2>&1) ||
  die "the user $user2 cannot run $dir/bin/quiver: $out2"

tmp_state=$state.tmp.$$
cat >"$tmp_state" <<EOF
QUIVER_SSH_DIR=$dir
QUIVER_SSH_CONFIG=$dir/ssh_config
QUIVER_SSH_HOST=$host_alias
QUIVER_SSH_PORT=$port
QUIVER_SSH_USER=$user
QUIVER_SSH_QUIVER=$dir/bin/quiver
QUIVER_SSH_REMOTE_DIR=$dir/remote
QUIVER_SSH_MODULEPATH=$dir/modulefiles
QUIVER_SSH_PID=$pid
QUIVER_SSH_HOST2=$host_alias2
QUIVER_SSH_USER2=$user2
QUIVER_SSH_GROUP=$group
EOF
mv "$tmp_state" "$state"
started=1
echo "sshd-fixture: sshd pid $pid on 127.0.0.1:$port, user $user, state $state ($out)"
