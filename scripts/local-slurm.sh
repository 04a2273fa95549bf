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
#
# A cluster of N nodes on this one machine, for the multi-node tests (tests/cluster.rs); root only:
#   scripts/local-slurm.sh cluster N     slurmctld and N slurmd "nodes" node1..nodeN, each in its own
#                                        network namespace (reslab-nodeI, address 10.77.0.(10+I) on a
#                                        veth to the bridge rslbr0 at 10.77.0.1) and UTS namespace (its
#                                        own host name); the file system shared by all, as a cluster's
#                                        NFS is; prints SLURM_CONF=... once every node is idle (at
#                                        once when that cluster answers already)
#   scripts/local-slurm.sh cluster-stop  stop its daemons, remove every namespace, link and file it made
#   scripts/local-slurm.sh kill-node I   SIGKILL every process of node I (its slurmd and its tasks)
#   scripts/local-slurm.sh cut I         cut node I's link (a partition: its processes run on)
#   scripts/local-slurm.sh heal I        put node I's link back
#   scripts/local-slurm.sh revive I      start node I's slurmd again and return it to service
# The cluster lives in $RESLAB_CLUSTER_DIR (default /tmp/reslab-cluster), its slurmctld on
# 10.77.0.1:6827 (ClusterName reslab-cluster), so it runs beside the one-node Slurm. Only the
# namespaces' addresses and 127.0.0.0/8 are used. Submit from this (the root) namespace with
# SLURM_CONF=$RESLAB_CLUSTER_DIR/slurm.conf: sbatch, squeue, scontrol, sinfo, sacct -c.
set -euo pipefail
dir="${RESLAB_SLURM_DIR:-/tmp/reslab-slurm}"
conf="$dir/slurm.conf"
export SLURM_CONF="$conf"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

install() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
    && command -v munged >/dev/null && command -v ip >/dev/null && command -v nsenter >/dev/null; then
    return 0
  fi
  if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null; then
    echo "local-slurm: need root or sudo to install Debian's slurmctld, slurmd, slurm-client and munge" >&2
    exit 1
  fi
  echo "local-slurm: installing Debian's slurmctld, slurmd, slurm-client, munge and iproute2" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
    slurmctld slurmd slurm-client munge iproute2 util-linux >/dev/null
}

start_munge() {
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
}

write_one_node_conf() {
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
}

answering() {
  timeout 5 scontrol ping 2>/dev/null | grep -q "UP" && timeout 5 sinfo -h -o %T 2>/dev/null | grep -qE "idle|mix|alloc"
}

start() {
  install
  mkdir -p "$dir"/{state,spool,log}
  start_munge
  if answering; then
    echo "SLURM_CONF=$conf"
    return 0
  fi
  write_one_node_conf
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

# ---- The multi-node cluster ----------------------------------------------------------------------

cluster_dir="${RESLAB_CLUSTER_DIR:-/tmp/reslab-cluster}"
cluster_conf="$cluster_dir/slurm.conf"
bridge=rslbr0
controller_addr=10.77.0.1

node_ns() { echo "reslab-node$1"; }
node_addr() { echo "10.77.0.$((10 + $1))"; }
node_veth() { echo "rslv$1"; }

in_cluster() { timeout 5 env SLURM_CONF="$cluster_conf" "$@"; }

# The state of node I as sinfo gives it ("idle", "mixed", "down*": a `*` is a node not answering).
node_state() {
  in_cluster sinfo -h -n "node$1" -o %T 2>/dev/null || true
}

cluster_nodes_idle() {
  local n="$1" idle
  in_cluster scontrol ping 2>/dev/null | grep -q "UP" || return 1
  idle="$(in_cluster sinfo -h -N -o '%N %T' 2>/dev/null | grep -cE ' (idle|mixed|allocated)$' || true)"
  [ "$idle" = "$n" ]
}

# The configuration of an N-node cluster, on stdout (compared with the one in use by `cluster N`).
cluster_conf_text() {
  local n="$1" i
  cat <<EOF
# Written by reslab's scripts/local-slurm.sh cluster $n: $n nodes, each a network namespace.
ClusterName=reslab-cluster
# The controller is this machine: slurmctld insists on its own host name here, and is reached at
# the bridge's address, from the nodes and from this namespace alike.
SlurmctldHost=$(hostname -s)($controller_addr)
# Its own ports, so it runs beside the one-node Slurm (6817/6818 on localhost).
SlurmctldPort=6827
SlurmdPort=6828
SlurmUser=$(id -un)
SlurmdUser=root
AuthType=auth/munge
# A job requeued after a node failure gets BeginTime = now + cred_expire + 1 (its old credential
# must have expired before it launches again); the default 120 s would hold it two minutes.
AuthInfo=cred_expire=10
StateSaveLocation=$cluster_dir/state
# One slurmd per node on one file system: %n (the node's name) keeps their files apart.
SlurmdSpoolDir=$cluster_dir/spool/%n
SlurmctldPidFile=$cluster_dir/slurmctld.pid
SlurmdPidFile=$cluster_dir/slurmd-%n.pid
SlurmctldLogFile=$cluster_dir/log/slurmctld.log
SlurmdLogFile=$cluster_dir/log/slurmd-%n.log
# Tasks tracked by their parent process, no cgroups: the nodes share this machine's cgroups.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# Cores, not whole nodes, are allocated: two 1-CPU tasks of an array share a node.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# A pending job becomes eligible (a requeued job's BeginTime passing) without an event to start a
# scheduling pass, so it waits for the next periodic one: every 60 s (main) and 30 s (backfill)
# by default, every 2 s here.
SchedulerParameters=sched_interval=2,bf_interval=2
# A batch job whose node fails is requeued (with --requeue, which reslab's scripts give)...
JobRequeue=1
# ...and a node that answers again after being DOWN (cut and healed, or revived) returns to
# service by itself, whatever the reason it went down.
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
# No slurmdbd: finished jobs are in the jobcomp file, which \`sacct -c\` reads.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$cluster_dir/log/jobcomp.txt
# Node-loss detection: a node that has not answered for 10 s is marked DOWN and its jobs requeued
# (or killed). Twice the training ranks' own timeout in the partition test (5 s), so theirs fires
# first when a link is cut; short enough for a test to see a node loss soon.
SlurmdTimeout=10
# Only for a backup controller (there is none): how long before it takes over.
SlurmctldTimeout=30
# A message (an RPC to a node, a node's reply) not answered in 5 s has failed (default 10).
MessageTimeout=5
# scancel and time limits: SIGTERM, then SIGKILL 5 s later (default 30), so cancelled jobs end soon.
KillWait=5
# No job is killed because its srun went quiet (a cut node's srun, say): Slurm decides by node state.
InactiveLimit=0
# Ended jobs stay visible to squeue and scontrol show job for 10 minutes (their state, restart count).
MinJobAge=600
EOF
  # 2 CPUs each (this machine's two, shared by every node); RealMemory small, below the machine's
  # (a node that reports less memory than declared is drained).
  for i in $(seq 1 "$n"); do
    echo "NodeName=node$i NodeAddr=$(node_addr "$i") NodeHostname=node$i CPUs=2 RealMemory=1024 State=UNKNOWN"
  done
  echo "PartitionName=cluster Nodes=node[1-$n] Default=YES MaxTime=INFINITE State=UP"
}

# Node I: its network namespace, its end of a veth to the bridge, its address and host names.
make_node() {
  local i="$1" n="$2" ns veth j
  ns="$(node_ns "$i")"
  veth="$(node_veth "$i")"
  ip netns add "$ns"
  ip link add "$veth" type veth peer name eth0 netns "$ns"
  ip link set "$veth" master "$bridge" up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$(node_addr "$i")/24" dev eth0
  ip -n "$ns" link set eth0 up
  # Bind-mounted over /etc/hosts on the node (by start_slurmd, and by `ip netns exec`): every
  # node's name resolves to its namespace's address there (Gloo binds to the address of the
  # host's name), the controller's too. This machine's /etc/hosts is left alone.
  mkdir -p "/etc/netns/$ns"
  {
    echo "127.0.0.1 localhost"
    echo "$controller_addr $(hostname -s)"
    for j in $(seq 1 "$n"); do echo "$(node_addr "$j") node$j"; done
  } >"/etc/netns/$ns/hosts"
}

# slurmd of node I in its network namespace, with a UTS namespace (its host name) and a mount
# namespace (its /etc/hosts) of its own; it daemonizes, and its job steps inherit all three.
# Not `ip netns exec`: that also mounts a new /sys, which hides /sys/fs/cgroup, and slurmd 22.05
# will not start without it ("No filesystem mounted on /sys/fs/cgroup"). Mounts propagate from
# this machine into the node (slave), as with `ip netns exec`: one file system, /tmp included.
start_slurmd() {
  local i="$1" ns
  ns="$(node_ns "$i")"
  mkdir -p "$cluster_dir/spool/node$i"
  nsenter --net="/run/netns/$ns" unshare --uts --mount --propagation slave sh -c \
    "hostname node$i && mount --bind /etc/netns/$ns/hosts /etc/hosts && exec slurmd -f '$cluster_conf' -N node$i"
}

# SIGKILL every process in node I's network namespace until none is left (slurmd may be forking a
# job step's slurmstepd meanwhile).
kill_ns_processes() {
  local ns pids
  ns="$(node_ns "$1")"
  for _ in $(seq 1 50); do
    mapfile -t pids < <(ip netns pids "$ns" 2>/dev/null)
    [ "${#pids[@]}" -gt 0 ] || return 0
    kill -9 "${pids[@]}" 2>/dev/null || true
    sleep 0.1
  done
  echo "local-slurm: processes of node$1 survive SIGKILL: $(ip netns pids "$ns" | tr '\n' ' ')" >&2
  return 1
}

cluster() {
  local n="${1:-}" i deadline states
  case "$n" in
    '' | *[!0-9]* | 0 | 1) echo "local-slurm: cluster takes a node count of at least 2, not '$n'" >&2; exit 2 ;;
  esac
  if [ "$(id -u)" != 0 ]; then
    echo "local-slurm: cluster needs root (network namespaces)" >&2
    exit 1
  fi
  install
  # The same cluster answering already: nothing to do. Another size, another configuration (an
  # older script's), or a node not answering: start again from nothing.
  if [ "$(cat "$cluster_dir/nodes" 2>/dev/null)" = "$n" ] \
    && [ "$(cat "$cluster_conf" 2>/dev/null)" = "$(cluster_conf_text "$n")" ] && cluster_nodes_idle "$n"; then
    echo "SLURM_CONF=$cluster_conf"
    return 0
  fi
  cluster_stop
  mkdir -p "$cluster_dir"/{state,spool,log}
  # munged is shared with the one-node Slurm (and by every node: its socket is a file); remember
  # whether this started it, so that cluster-stop stops only its own.
  if ! pgrep -x munged >/dev/null; then
    start_munge
    pgrep -xo munged >"$cluster_dir/munged.pid" || true
  fi
  cluster_conf_text "$n" >"$cluster_conf"
  echo "$n" >"$cluster_dir/nodes"
  ip link add "$bridge" type bridge
  ip addr add "$controller_addr/24" dev "$bridge"
  ip link set "$bridge" up
  for i in $(seq 1 "$n"); do make_node "$i" "$n"; done
  slurmctld -f "$cluster_conf" -i
  for i in $(seq 1 "$n"); do start_slurmd "$i"; done
  deadline=$((SECONDS + 60))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if cluster_nodes_idle "$n"; then
      echo "SLURM_CONF=$cluster_conf"
      return 0
    fi
    sleep 0.5
  done
  states="$(in_cluster sinfo -h -N -o '%N=%T' 2>/dev/null | tr '\n' ' ' || true)"
  echo "local-slurm: the $n-node cluster did not come up within 60 s (${states:-slurmctld not answering}); see $cluster_dir/log/" >&2
  tail -n 5 "$cluster_dir"/log/*.log >&2 || true
  exit 1
}

# Idempotent: removes whatever of a cluster is there, and is done (exit 0) when nothing is.
cluster_stop() {
  local ns pid link
  for ns in $(ip netns list 2>/dev/null | awk '/^reslab-node[0-9]+( |$)/ {print $1}'); do
    kill_ns_processes "${ns#reslab-node}" || true
    ip netns delete "$ns" 2>/dev/null || true
  done
  rm -rf /etc/netns/reslab-node*
  rmdir /etc/netns 2>/dev/null || true
  # slurmctld by its pid file, or (the directory gone) by its command line, which names this
  # cluster's configuration and so no other slurmctld.
  pid="$(cat "$cluster_dir/slurmctld.pid" 2>/dev/null || true)"
  [ -n "$pid" ] || pid="$(pgrep -f "^slurmctld -f $cluster_conf( |$)" || true)"
  for pid in $pid; do
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  # munged if this started it and the one-node Slurm is not using it.
  pid="$(cat "$cluster_dir/munged.pid" 2>/dev/null || true)"
  if [ -n "$pid" ] && ! { [ -s "$dir/slurmctld.pid" ] && kill -0 "$(cat "$dir/slurmctld.pid")" 2>/dev/null; }; then
    kill "$pid" 2>/dev/null || true
  fi
  ip link delete "$bridge" 2>/dev/null || true
  # Veths go with their namespace; any left on this side (a namespace deleted by hand) go too.
  for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^rslv[0-9]+$' || true); do
    ip link delete "$link" 2>/dev/null || true
  done
  rmdir /etc/netns 2>/dev/null || true
  rm -rf "$cluster_dir"
}

node_arg() {
  case "${1:-}" in
    '' | *[!0-9]*) echo "local-slurm: expected a node number (1 for node1), not '${1:-}'" >&2; exit 2 ;;
  esac
  if ! ip netns list | grep -qE "^$(node_ns "$1")( |$)"; then
    echo "local-slurm: there is no node$1 (run scripts/local-slurm.sh cluster N first)" >&2
    exit 2
  fi
}

# A host dying: every process of the node at once, its slurmd and its job steps alike. Its
# network stays up (the namespace is kept for revive); slurmctld notices when pings go unanswered.
kill_node() {
  node_arg "$1"
  kill_ns_processes "$1"
}

# A partition: the bridge's side of node I's veth down, so nothing passes either way (no resets:
# TCP peers hear nothing until their own timeouts); the node's processes run on.
cut_node() {
  node_arg "$1"
  ip link set "$(node_veth "$1")" down
}

# slurmctld does not ping a node it has marked DOWN for not answering: it only asks it to register
# every 20th ping (every ~70 s at SlurmdTimeout=10), and with ReturnToService=2 that registration
# returns it. So after the link is up, SIGHUP has the node's slurmd register at once (it does on a
# reconfigure), as a test wants; harmless when the cut was too short for the node to go DOWN.
heal_node() {
  node_arg "$1"
  local pid
  ip link set "$(node_veth "$1")" up
  pid="$(node_slurmd "$1")"
  if [ -n "$pid" ]; then kill -HUP "$pid"; fi
}

# The PID of node I's slurmd, if it runs.
node_slurmd() {
  local pid
  pid="$(cat "$cluster_dir/slurmd-node$1.pid" 2>/dev/null || true)"
  if [ -n "$pid" ] && ip netns pids "$(node_ns "$1")" | grep -qx "$pid"; then echo "$pid"; fi
}

# slurmd of node I again (unless it runs), the node returned to service, until it answers idle.
revive() {
  node_arg "$1"
  local deadline state resumed=-10
  if [ -z "$(node_slurmd "$1")" ]; then start_slurmd "$1"; fi
  deadline=$((SECONDS + 60))
  while [ "$SECONDS" -lt "$deadline" ]; do
    state="$(node_state "$1")"
    case "$state" in
      idle | mixed | allocated) return 0 ;;
      # DOWN (ReturnToService returns it when it registers, but slurmctld does not ping a DOWN
      # node), drained or failing: resumed, it is pinged again and takes work once it answers.
      down* | drain* | fail*)
        if [ $((SECONDS - resumed)) -ge 5 ]; then
          in_cluster scontrol update nodename="node$1" state=resume 2>/dev/null || true
          resumed=$SECONDS
        fi
        ;;
    esac
    sleep 0.5
  done
  echo "local-slurm: node$1 did not come back within 60 s (${state:-no state}); see $cluster_dir/log/slurmd-node$1.log" >&2
  exit 1
}

case "${1:-start}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  cluster) cluster "${2:-}" ;;
  cluster-stop) cluster_stop ;;
  kill-node) kill_node "${2:-}" ;;
  cut) cut_node "${2:-}" ;;
  heal) heal_node "${2:-}" ;;
  revive) revive "${2:-}" ;;
  *)
    echo "usage: scripts/local-slurm.sh install|start|stop|cluster N|cluster-stop|kill-node I|cut I|heal I|revive I" >&2
    exit 2
    ;;
esac
