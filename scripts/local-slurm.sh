#!/usr/bin/env bash
# A single-node Slurm on this machine, for the tests and for trying `--backend slurm`: Debian's
# slurmctld, slurmd, slurm-client and munge, the daemons started in the background (no systemd).
#
#   scripts/local-slurm.sh install   install the packages (apt-get; root or sudo); fast when there
#   scripts/local-slurm.sh start     write the configuration, start munged, slurmctld and slurmd
#                                    (does nothing when they answer already); prints SLURM_CONF=...
#   scripts/local-slurm.sh stop      stop the daemons it started
#
# Everything lives in $RESLAB_SLURM_DIR (default /tmp/reslab-slurm): the configuration is
# $RESLAB_SLURM_DIR/slurm.conf, which Slurm's commands find through SLURM_CONF, so a machine's own
# /etc/slurm is never touched. Job accounting: jobcomp/filetxt, read with `sacct -c`.
set -euo pipefail
dir="${RESLAB_SLURM_DIR:-/tmp/reslab-slurm}"
conf="$dir/slurm.conf"
export SLURM_CONF="$conf"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

install() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
    && command -v munged >/dev/null; then
    return 0
  fi
  if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null; then
    echo "local-slurm: need root or sudo to install Debian's slurmctld, slurmd, slurm-client and munge" >&2
    exit 1
  fi
  echo "local-slurm: installing Debian's slurmctld, slurmd, slurm-client and munge" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
    slurmctld slurmd slurm-client munge >/dev/null
}

answering() {
  timeout 5 scontrol ping 2>/dev/null | grep -q "UP" && timeout 5 sinfo -h -o %T 2>/dev/null | grep -qE "idle|mix|alloc"
}

start() {
  install
  mkdir -p "$dir"/{state,spool,log}
  if ! pgrep -x munged >/dev/null; then
    as_root mkdir -p /run/munge /var/log/munge /var/lib/munge
    if [ ! -s /etc/munge/munge.key ]; then
      as_root mungekey --create --force 2>/dev/null \
        || as_root dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    if id munge >/dev/null 2>&1; then
      as_root chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge
      as_root chmod 0700 /etc/munge
      as_root chmod 0400 /etc/munge/munge.key
      as_root runuser -u munge -- munged
    else
      as_root munged --force
    fi
  fi
  if answering; then
    echo "SLURM_CONF=$conf"
    return 0
  fi
  cpus="$(nproc)"
  user="$(id -un)"
  cat >"$conf" <<EOF
# Written by reslab's scripts/local-slurm.sh: one node, this machine.
ClusterName=reslab
SlurmctldHost=localhost
SlurmUser=$user
SlurmdUser=root
AuthType=auth/munge
# A requeued job waits out its old credential's lifetime (default 120 s) before it starts again.
AuthInfo=cred_expire=10
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
JobRequeue=1
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.txt
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=10
MinJobAge=600
NodeName=localhost CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
  as_root slurmctld -f "$conf" -i
  as_root slurmd -f "$conf" -N localhost
  for _ in $(seq 1 60); do
    if answering; then
      echo "SLURM_CONF=$conf"
      return 0
    fi
    sleep 0.5
  done
  echo "local-slurm: slurmctld or slurmd did not come up; see $dir/log/" >&2
  tail -n 5 "$dir"/log/*.log >&2 || true
  exit 1
}

stop() {
  for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid"; do
    if [ -s "$pidfile" ]; then as_root kill "$(cat "$pidfile")" 2>/dev/null || true; fi
  done
}

case "${1:-start}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: scripts/local-slurm.sh install|start|stop" >&2; exit 2 ;;
esac
