#!/usr/bin/env bash
# Two-node SLURM cluster on localhost (Debian packages, no systemd): one slurmd per
# node name (harness-node1, harness-node2), so that jobs spanning nodes run here; with
# slurmdbd accounting in the MariaDB on 127.0.0.1:3306 (submitit needs sacct).
#   bash scripts/slurm_cluster.sh install|start|stop|status        (as root)
# Configs go to /etc/slurm, the default path, so sbatch/sinfo/sacct/submitit need
# no SLURM_CONF; pid files, logs and spool dirs live under $HARNESS_SLURM_DIR.
set -euo pipefail

D=${HARNESS_SLURM_DIR:-/tmp/harness-slurm}
CLUSTER=harness
ETC=/etc/slurm
DB=slurm_acct_db
MYSQL=(mysql -N -B -h 127.0.0.1 -P 3306 -u root)
PKGS=(slurm-wlm slurmdbd munge)
NODES=(harness-node1 harness-node2)  # both on 127.0.0.1, each node's slurmd on a port of its own:
FIRST_PORT=17001 LAST_PORT=$((FIRST_PORT + ${#NODES[@]} - 1))
NODE_LIST=$(IFS=,; echo "${NODES[*]}")
export SLURM_CONF=$ETC/slurm.conf  # a stray SLURM_CONF in the caller's env must not win

die() {  # one-line error, then the tail of the relevant log if given
  echo "slurm_cluster: ERROR: $1" >&2
  if [[ -s ${2:-} ]]; then echo "--- last lines of $2:" >&2; tail -n 15 "$2" >&2; fi
  exit 1
}
log() { echo "slurm_cluster: $*"; }

# Daemons: munged, slurmdbd, slurmctld, and slurmd-NODE for each node (its pid/log file name).
pidfile() { [[ $1 == munged ]] && echo "$D/munge/munged.pid" || echo "$D/run/$1.pid"; }
logfile() { [[ $1 == munged ]] && echo "$D/munge/munged.log" || echo "$D/log/$1.log"; }
alive() {  # pid file names a live process with the right name (guards against pid reuse)
  local pid; pid=$(cat "$(pidfile "$1")" 2>/dev/null) || return 1
  [[ -n $pid && $(cat "/proc/$pid/comm" 2>/dev/null) == "${1%%-*}" ]]
}
slurmds() { printf 'slurmd-%s\n' "${NODES[@]}"; }
munge_ok() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }
node_states() { timeout 5 sinfo -h -N -n "$NODE_LIST" -o %T 2>/dev/null; }
node_ok() {  # every node registered and usable (idle, or busy with jobs)
  [[ $(node_states | grep -Ecx 'idle|mixed|allocated|completing|planned') -eq ${#NODES[@]} ]]
}
node_ok_or_resume() {  # a drain/down saved in slurmctld's state survives restarts: undo it
  node_ok && return 0
  if node_states | grep -Eq 'drain|down|fail'; then
    timeout 5 scontrol update nodename="$NODE_LIST" state=resume >/dev/null 2>&1 || true
  fi
  return 1
}
all_alive() { local d; for d in "$@"; do alive "$d" || return 1; done; }
sacct_ok() { timeout 10 sacct -n -X -S now -o jobid >/dev/null 2>&1; }
healthy() { munge_ok && alive slurmdbd && alive slurmctld && all_alive $(slurmds) && node_ok && sacct_ok; }

wait_for() {  # wait_for DAEMON SECONDS CMD...: poll CMD; fail fast if DAEMON died meanwhile
  local d=$1 secs=$2 n=$(($2 * 5)) out; shift 2
  until out=$("$@" 2>&1); do
    ((n-- > 0)) || die "$d not ready after ${secs}s: '$*' failed${out:+: ${out##*$'\n'}}" "$(logfile "$d")"
    # The pid file appears right after the daemon forks; allow ~2 s before judging.
    if [[ -f $(pidfile "$d") ]] || ((n < secs * 5 - 10)); then
      alive "$d" || die "$d exited during startup" "$(logfile "$d")"
    fi
    sleep 0.2
  done
}

stop_daemons() {  # SIGTERM all given daemons at once, wait up to 5 s, then SIGKILL
  local d pid i pids=()
  for d in "$@"; do
    if alive "$d"; then
      pid=$(cat "$(pidfile "$d")"); pids+=("$pid"); log "stopping $d ($pid)"; kill "$pid" 2>/dev/null || true
    fi
    rm -f "$(pidfile "$d")"
  done
  for pid in "${pids[@]}"; do
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then log "pid $pid ignored SIGTERM, sending SIGKILL"; kill -9 "$pid" 2>/dev/null || true; fi
  done
}

cmd_install() {
  local st; st=$(dpkg-query -W -f='${db:Status-Status}\n' "${PKGS[@]}" 2>/dev/null || true)
  if [[ $(grep -cx installed <<<"$st") -ne ${#PKGS[@]} ]]; then
    log "installing ${PKGS[*]} ..."
    mkdir -p "$D/log"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${PKGS[@]}"; } >"$D/log/apt.log" 2>&1 || die "apt-get install failed" "$D/log/apt.log"
  fi
  log "packages installed: ${PKGS[*]}"
}

setup_db() {  # database + user for slurmdbd; the password lives only in slurmdbd.conf
  "${MYSQL[@]}" -e 'SELECT 1' >/dev/null 2>&1 || die "MariaDB not reachable as root@127.0.0.1:3306"
  PW=$(sed -n 's/^StoragePass=//p' "$ETC/slurmdbd.conf" 2>/dev/null || true)
  [[ -n $PW ]] || PW=$(head -c 32 /dev/urandom | base64 | tr -dc A-Za-z0-9 | head -c 24)
  local sql="CREATE DATABASE IF NOT EXISTS $DB;" h
  for h in localhost 127.0.0.1; do
    sql+="CREATE USER IF NOT EXISTS 'slurm'@'$h'; ALTER USER 'slurm'@'$h' IDENTIFIED BY '$PW';"
    sql+="GRANT ALL ON $DB.* TO 'slurm'@'$h';"
  done
  "${MYSQL[@]}" -e "$sql" || die "could not create MariaDB database/user for slurmdbd"
  # If the state dir is wiped but the DB kept, job ids must not restart at 1, else
  # `sacct -j ID` mixes old and new jobs (slurmctld uses max(this, saved counter)).
  FIRST_JOB_ID=$("${MYSQL[@]}" -e "SELECT COALESCE(MAX(id_job),0)+1 FROM $DB.${CLUSTER}_job_table" 2>/dev/null || echo 1)
}

write_configs() {
  local cpus mem
  # At least 4 CPUs in all, 2 per node, whatever the machine has (SlurmdParameters below): the tests run jobs of
  # 2 tasks (2 ranks) next to each other on 2 cores. Oversubscribing is fine for tiny CPU jobs.
  cpus=$(( ($(nproc) + 1) / 2 )); ((cpus >= 2)) || cpus=2
  mem=$(awk '/^MemTotal/ {print int($2 / 1024 * 0.95)}' /proc/meminfo)  # above real RAM, the node drains
  mkdir -p "$ETC"
  cat >"$ETC/slurm.conf.tmp" <<EOF
# Generated by scripts/slurm_cluster.sh (state dir $D); rewritten on every start.
ClusterName=$CLUSTER
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
# Requeued jobs wait cred_expire+1 s before restarting (default 120 s). It is also
# the launch-credential lifetime, so stay above the 5 s minimum.
AuthInfo=cred_expire=10
MpiDefault=none
MailProg=/bin/true
# No systemd/cgroups needed: plain /proc process tracking, no task binding.
ProctrackType=proctrack/linuxproc
# Trust the CPU count below over the hardware's (else a node declaring more CPUs than it has is drained).
SlurmdParameters=config_overrides
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# New jobs start on the next 1 s tick (default ~3 s); a full scheduling pass every
# 2 s (default 60 s) lets requeued jobs restart promptly.
SchedulerParameters=batch_sched_delay=0,sched_interval=2
# submitit ignores SIGTERM: SIGKILL cancelled jobs after 5 s instead of 30 s.
KillWait=5
# Reject impossible requests (e.g. too many CPUs) instead of pending forever.
EnforcePartLimits=ALL
JobRequeue=1
ReturnToService=2
InactiveLimit=0
MinJobAge=300
FirstJobId=$FIRST_JOB_ID
StateSaveLocation=$D/spool/slurmctld
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmctldLogFile=$D/log/slurmctld.log
# One slurmd per node on this host (slurmd -N NODE): %n is the node's name.
SlurmdSpoolDir=$D/spool/slurmd-%n
SlurmdPidFile=$D/run/slurmd-%n.pid
SlurmdLogFile=$D/log/slurmd-%n.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/none
NodeName=$NODE_LIST NodeHostname=localhost NodeAddr=127.0.0.1 Port=$FIRST_PORT-$LAST_PORT CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$NODE_LIST Default=YES MaxTime=INFINITE State=UP
EOF
  mv "$ETC/slurm.conf.tmp" "$ETC/slurm.conf"
  # slurmdbd refuses a config that is not mode 600 and owned by SlurmUser (root).
  (umask 077; cat >"$ETC/slurmdbd.conf.tmp" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=$D/run/slurmdbd.pid
LogFile=$D/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3306
StorageUser=slurm
StoragePass=$PW
StorageLoc=$DB
EOF
  )
  chown root:root "$ETC/slurmdbd.conf.tmp"; chmod 600 "$ETC/slurmdbd.conf.tmp"
  mv "$ETC/slurmdbd.conf.tmp" "$ETC/slurmdbd.conf"
}

resolve_nodes() {  # jobs reach their first node by name (torch.distributed's MASTER_ADDR): loopback here
  getent hosts "${NODES[@]}" >/dev/null && return 0
  echo "127.0.0.1 ${NODES[*]}  # scripts/slurm_cluster.sh: the local cluster's nodes" >>/etc/hosts ||
    die "could not add ${NODES[*]} to /etc/hosts"
}

start_munge() {
  munge_ok && return 0  # ours or a system munged: either will do
  if [[ ! -s /etc/munge/munge.key ]]; then
    install -d -o munge -g munge -m 700 /etc/munge
    mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null ||
      dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
  # munged insists on running as munge, with dirs owned by it and not world-writable.
  install -d -o munge -g munge -m 755 /run/munge
  install -d -o munge -g munge -m 700 "$D/munge"
  runuser -u munge -- munged --pid-file="$D/munge/munged.pid" --log-file="$D/munge/munged.log" \
    --seed-file="$D/munge/munged.seed" 2>"$D/log/munged.err" ||
    die "munged failed to start: $(tr '\n' ' ' <"$D/log/munged.err")" "$(logfile munged)"
  wait_for munged 10 munge_ok
}

cmd_start() {
  [[ $EUID -eq 0 ]] || die "must run as root"
  local b; for b in slurmctld slurmd slurmdbd munged; do
    command -v "$b" >/dev/null || die "$b not installed; run: bash $0 install"
  done
  if healthy; then log "already running and healthy (state dir $D)"; return 0; fi
  stop_daemons $(slurmds) slurmd slurmctld slurmdbd  # partially up, stale or single-node: restart from a clean slate
  local port ctld_log_size node
  for port in 6817 6819 $(seq $FIRST_PORT $LAST_PORT); do  # don't fight daemons we did not start (other state dir?)
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      die "port $port is taken by a process not started from $D (another slurm cluster?); stop it first"
    fi
  done
  mkdir -p "$D"/{run,log,spool/slurmctld}
  resolve_nodes
  start_munge
  setup_db
  write_configs

  slurmdbd >>"$D/log/slurmdbd.log" 2>&1 || die "slurmdbd failed to start" "$D/log/slurmdbd.log"
  wait_for slurmdbd 60 timeout 5 sacctmgr -n list cluster  # first start creates the tables
  # slurmctld needs its cluster registered in accounting before it starts.
  timeout 10 sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER" ||
    timeout 10 sacctmgr -i add cluster "$CLUSTER" >/dev/null || die "sacctmgr add cluster $CLUSTER failed"

  ctld_log_size=$(stat -c %s "$D/log/slurmctld.log" 2>/dev/null || echo 0)
  slurmctld -i >>"$D/log/slurmctld.log" 2>&1 || die "slurmctld failed to start" "$D/log/slurmctld.log"
  wait_for slurmctld 30 timeout 5 scontrol ping
  for node in "${NODES[@]}"; do
    mkdir -p "$D/spool/slurmd-$node"
    slurmd -N "$node" >>"$D/log/slurmd-$node.log" 2>&1 || die "slurmd -N $node failed to start" "$D/log/slurmd-$node.log"
  done
  wait_for "slurmd-${NODES[-1]}" 30 node_ok_or_resume
  wait_for slurmdbd 30 sacct_ok
  # slurmctld only applies SchedulerParameters at its first scheduling pass, ~3 s after
  # boot; until then new jobs wait. Wait for it (best effort) so the first job is prompt.
  for _ in {1..40}; do
    tail -c +"$((ctld_log_size + 1))" "$D/log/slurmctld.log" | grep -q 'SchedulerParameters=' && break
    sleep 0.2
  done
  log "cluster '$CLUSTER' up in ${SECONDS}s (state dir $D, config $ETC/slurm.conf)"
}

cmd_stop() {
  # slurmctld spools accounting records it cannot deliver, so the slurm daemons can
  # stop together; munged goes last since they all authenticate through it.
  stop_daemons $(slurmds) slurmd slurmctld slurmdbd
  stop_daemons munged
  # Job steps outlive slurmd (a restart re-adopts them); only report them.
  if pgrep -x slurmstepd >/dev/null; then log "note: slurmstepd processes still running (jobs in flight)"; fi
}

cmd_status() {
  local d
  for d in munged slurmdbd slurmctld $(slurmds); do
    if alive "$d"; then echo "$d: running (pid $(cat "$(pidfile "$d")"))"; else echo "$d: not running"; fi
  done
  if alive slurmctld; then timeout 5 sinfo 2>&1 || true; fi  # sinfo hangs ~9 s without a controller
  if healthy; then log "healthy"; else log "NOT healthy"; return 1; fi
}

case ${1:-} in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 install|start|stop|status  (state dir: \$HARNESS_SLURM_DIR, default /tmp/harness-slurm)" >&2; exit 2 ;;
esac
