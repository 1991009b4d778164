#!/usr/bin/env bash
# A private single-node Slurm for tests: its own munged (own key and socket), slurmctld and
# slurmd in the foreground (-D, backgrounded here), on 127.0.0.1 and free ports, with all
# state under DIR. Nothing system-wide is touched; stop kills exactly the PIDs start wrote.
#
#   scripts/slurm-fixture.sh start DIR   # prints the SLURM_CONF clients need: DIR/slurm.conf
#   scripts/slurm-fixture.sh stop DIR
#
# Clients: export SLURM_CONF=DIR/slurm.conf (sbatch, srun, squeue, scontrol).
set -euo pipefail

cmd=${1:?usage: slurm-fixture.sh start|stop DIR}
dir=${2:?usage: slurm-fixture.sh start|stop DIR}

die() { echo "slurm-fixture: $*" >&2; exit 1; }

# Waits up to $1 seconds for the command "${@:2}" to succeed (polling, no fixed sleep).
wait_for() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
}

stop_pid() {  # stop_pid NAME: TERM the PID in DIR/NAME.pid, wait, then KILL
  local f="$dir/$1.pid" pid
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait_for 10 bash -c "! kill -0 $pid" || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

stop() {
  # Jobs first (slurmd's step daemons are its children and end with it), then the daemons.
  stop_pid slurmd
  stop_pid slurmctld
  stop_pid munged
}

start() {
  for t in munged mungekey slurmctld slurmd sbatch; do
    command -v "$t" >/dev/null || [ -x "/usr/sbin/$t" ] || die "$t is not installed (scripts/install-deps.sh test)"
  done
  stop
  rm -rf "$dir"
  mkdir -p "$dir"/{munge,state,spool,log}
  chmod 755 "$dir" "$dir/munge"   # munged refuses a socket directory that others may write
  local host ctld_port d_port
  host=$(hostname -s)
  ctld_port=$(free_port)
  d_port=$(free_port)
  while [ "$d_port" = "$ctld_port" ]; do d_port=$(free_port); done

  # munged: own key, own socket.
  mungekey --create --keyfile="$dir/munge/munge.key" --force
  chmod 400 "$dir/munge/munge.key"
  /usr/sbin/munged -F --socket="$dir/munge/socket" --key-file="$dir/munge/munge.key" \
    --log-file="$dir/log/munged.log" --pid-file="$dir/munge/munged.pid.own" \
    --seed-file="$dir/munge/seed" >>"$dir/log/munged.out" 2>&1 &
  echo $! >"$dir/munged.pid"
  wait_for 10 test -S "$dir/munge/socket" || die "munged did not start ($dir/log/munged.log)"

  local node
  node=$(slurmd -C | head -n1 | sed "s/^NodeName=[^ ]*/NodeName=$host/")
  cat >"$dir/slurm.conf" <<EOF
ClusterName=quivertest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid.own
SlurmdPidFile=$dir/slurmd.pid.own
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
MailProg=/bin/true
ReturnToService=2
SchedulerType=sched/backfill
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld -D -c -f "$SLURM_CONF" >>"$dir/log/slurmctld.out" 2>&1 &
  echo $! >"$dir/slurmctld.pid"
  wait_for 30 bash -c "scontrol ping | grep -q UP" || die "slurmctld is not UP ($dir/log/slurmctld.log)"
  slurmd -D -f "$SLURM_CONF" >>"$dir/log/slurmd.out" 2>&1 &
  echo $! >"$dir/slurmd.pid"
  wait_for 30 bash -c "sinfo -h -N -o %T | grep -qx idle" || die "slurmd is not idle ($dir/log/slurmd.log)"
  echo "$SLURM_CONF"
}

case $cmd in
  start) start ;;
  stop) stop ;;
  *) die "unknown command '$cmd' (start or stop)" ;;
esac
