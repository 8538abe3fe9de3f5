#!/usr/bin/env bash
# Bring up a single-node Slurm cluster on this machine, for the integration test
# (tests/test_slurm.py) and for trying profiles/slurm by hand.
#
#   sudo .ci/slurm/start_slurm.sh     # install (Debian packages) if needed, configure, start
#   sudo .ci/slurm/stop_slurm.sh      # stop what this script started (by recorded pids)
#
# Needs root and apt-get (Debian 12: Slurm 22.05). No systemd needed: munged, mariadbd,
# slurmdbd, slurmctld and slurmd run in the background under setsid; their pids are
# recorded under $IMGBENCH_SLURM_STATE (default /var/lib/imgbench-slurm) and the stop
# script kills exactly those pids. Running it again while the cluster is up is a no-op;
# a half-finished earlier attempt (interrupted dpkg, stale pid files, a drained node) is
# repaired.
#
# Why each piece is there:
# * slurmdbd + MariaDB: the Snakemake Slurm plugin checks job states with `sacct`, which
#   fails outright with accounting_storage/none. Both listen on 127.0.0.1 only.
# * /etc/slurm/slurm.conf (the default path): the plugin's job-step runner drops SLURM_CONF
#   from the environment before its inner `srun`, so a config elsewhere is not found.
# * An account (sacctmgr): the plugin validates `slurm_account` with sacctmgr.
# * A private munge socket and key: no clash with a system munged; slurmdbd then needs
#   AccountingStoragePass=<socket> (in slurm.conf) to authenticate slurmctld.
# * MinJobAge=300: also lets `--slurm-status-command squeue` work (the plugin falls back to
#   sacct unless MinJobAge >= 3 x its first status-check delay).
# * RealMemory below what `slurmd -C` reports: otherwise the node drains ("Low RealMemory")
#   as soon as the kernel reports a little less.
# * proctrack/linuxproc and task/none: no cgroups (containers, CI runners).
#
# Prints `export` lines for the account, partition and cluster at the end (also written
# to $IMGBENCH_SLURM_STATE/env).
set -euo pipefail

STATE=${IMGBENCH_SLURM_STATE:-/var/lib/imgbench-slurm}
CLUSTER=${IMGBENCH_SLURM_CLUSTER:-imgbench}
ACCOUNT=${IMGBENCH_SLURM_ACCOUNT:-imgbench}
PARTITION=${IMGBENCH_SLURM_PARTITION:-debug}
DB_PORT=${IMGBENCH_SLURM_DB_PORT:-3307}
DBD_PORT=${IMGBENCH_SLURM_DBD_PORT:-6819}
CTLD_PORT=${IMGBENCH_SLURM_CTLD_PORT:-6817}
SLURMD_PORT=${IMGBENCH_SLURM_SLURMD_PORT:-6818}
CONF_DIR=/etc/slurm
PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)

log() { printf '[start_slurm] %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

[[ $(id -u) -eq 0 ]] || die "needs root (installs packages, writes /etc/slurm, starts daemons)"

# ---------------------------------------------------------------- install
export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin
BINARIES=(slurmctld slurmd slurmdbd sbatch sacct sacctmgr munged mariadbd mariadb-install-db)
need_install=()
for binary in "${BINARIES[@]}"; do
    command -v "$binary" >/dev/null 2>&1 || need_install+=("$binary")
done
# Installed but not configured (an interrupted earlier install) counts as missing.
if command -v dpkg-query >/dev/null 2>&1; then
    for package in "${PACKAGES[@]}"; do
        status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
        [[ $status == "install ok installed" ]] || need_install+=("$package")
    done
fi
if ((${#need_install[@]})); then
    command -v apt-get >/dev/null 2>&1 || die "missing ${need_install[*]} and no apt-get to install them"
    log "installing ${PACKAGES[*]} (missing: ${need_install[*]})"
    export DEBIAN_FRONTEND=noninteractive
    # Packages must not start their own daemons (no init system here; and ours run with
    # private sockets). Keep an existing policy-rc.d, else add one for the install only.
    policy=/usr/sbin/policy-rc.d
    added_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        added_policy=1
        trap 'rm -f "$policy"' EXIT
    fi
    # A previous install may have been interrupted.
    dpkg --configure -a || true
    apt_install() { apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"; }
    if ! apt_install; then
        log "apt-get install failed; updating the package lists and retrying"
        apt-get update -q
        apt-get -f install -y -q || true
        apt_install
    fi
    if ((added_policy)); then
        rm -f "$policy"
        trap - EXIT
    fi
    hash -r
fi
for binary in "${BINARIES[@]}"; do
    command -v "$binary" >/dev/null 2>&1 || die "$binary still missing after the install"
done

mkdir -p "$STATE"/{pids,logs,munge,mysql-run,slurmctld,slurmd}
chmod 755 "$STATE"
PIDS=$STATE/pids
LOGS=$STATE/logs

# True if the pid recorded for $1 is alive (not a zombie) and runs the program $2.
running() {
    local file=$PIDS/$1.pid pid stat
    [[ -s $file ]] || return 1
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ ${stat#*) } != Z* ]] || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$2"* ]]
}

# Wait up to $2 seconds for the command "${@:3}" to succeed (each try at most 10 s).
wait_for() {
    local what=$1 seconds=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    while ((SECONDS < deadline)); do
        if timeout 10 "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.25
    done
    die "$what not ready after ${seconds}s; see $LOGS"
}

# Start "${@:3}" in its own session; record its pid (daemons run in the foreground).
launch() {
    local name=$1 comm=$2
    shift 2
    if running "$name" "$comm"; then
        log "$name already running (pid $(<"$PIDS/$name.pid"))"
        return 0
    fi
    rm -f "$PIDS/$name.pid"
    setsid "$@" </dev/null >>"$LOGS/$name.out" 2>&1 &
    echo $! >"$PIDS/$name.pid"
    log "started $name (pid $!)"
}

HOST=$(hostname -s)

# ---------------------------------------------------------------- munge
MUNGE_SOCKET=$STATE/munge/munge.socket
if [[ ! -s $STATE/munge/munge.key ]]; then
    dd if=/dev/urandom of="$STATE/munge/munge.key" bs=1024 count=1 status=none
fi
chown root:root "$STATE/munge" "$STATE/munge/munge.key"
chmod 700 "$STATE/munge"
chmod 400 "$STATE/munge/munge.key"
if ! running munged munged; then
    rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
fi
launch munged munged munged --foreground --force --socket="$MUNGE_SOCKET" \
    --key-file="$STATE/munge/munge.key" --log-file="$LOGS/munged.log" \
    --seed-file="$STATE/munge/munged.seed" --pid-file="$STATE/munge/munged.pid"
wait_for munged 20 bash -c "munge -S '$MUNGE_SOCKET' -n | unmunge -S '$MUNGE_SOCKET'"

# ---------------------------------------------------------------- MariaDB
DATADIR=$STATE/mysql
DB_SOCKET=$STATE/mysql-run/mysqld.sock
chown mysql:mysql "$STATE/mysql-run"
if [[ ! -d $DATADIR/mysql ]]; then
    log "initialising MariaDB in $DATADIR"
    rm -rf "$DATADIR"
    mkdir -p "$DATADIR"
    chown mysql:mysql "$DATADIR"
    mariadb-install-db --no-defaults --user=mysql --datadir="$DATADIR" --auth-root-authentication-method=socket \
        --skip-test-db >"$LOGS/mariadb-install-db.log" 2>&1 ||
        die "mariadb-install-db failed; see $LOGS/mariadb-install-db.log"
fi
launch mariadbd mariadbd mariadbd --no-defaults --user=mysql --datadir="$DATADIR" \
    --socket="$DB_SOCKET" --bind-address=127.0.0.1 --port="$DB_PORT" \
    --pid-file="$STATE/mysql-run/mariadbd.pid" --log-error="$LOGS/mariadbd.log" \
    --innodb-buffer-pool-size=64M --skip-name-resolve
wait_for mariadbd 60 mariadb-admin --no-defaults --socket="$DB_SOCKET" -u root ping

DB_PASS_FILE=$STATE/db.pass
if [[ ! -s $DB_PASS_FILE ]]; then
    (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$DB_PASS_FILE")
fi
DB_PASS=$(<"$DB_PASS_FILE")
mariadb --no-defaults --socket="$DB_SOCKET" -u root <<SQL
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
SQL

# ---------------------------------------------------------------- Slurm configuration
mkdir -p "$CONF_DIR"
# The node line as slurmd sees this machine, RealMemory lowered by 10% (min. 512 MB).
NODE_LINE=$(slurmd -C | head -n 1)
[[ $NODE_LINE == NodeName=* ]] || die "unexpected 'slurmd -C' output: $NODE_LINE"
REAL_MEMORY=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$NODE_LINE")
LOWER_MEMORY=$((REAL_MEMORY * 9 / 10))
((LOWER_MEMORY >= 512)) || LOWER_MEMORY=512
NODE_LINE=$(sed -e "s/RealMemory=[0-9]*/RealMemory=$LOWER_MEMORY/" \
    -e "s/^NodeName=[^ ]*/NodeName=$HOST NodeAddr=127.0.0.1/" <<<"$NODE_LINE")

CONFIG_CHANGED=0
write_if_changed() { # path mode content
    local path=$1 mode=$2 content=$3
    if [[ ! -f $path ]] || [[ $(<"$path") != "$content" ]]; then
        printf '%s\n' "$content" >"$path.tmp"
        chmod "$mode" "$path.tmp"
        mv "$path.tmp" "$path"
        log "wrote $path"
        CONFIG_CHANGED=1
    fi
    chmod "$mode" "$path"
}

write_if_changed "$CONF_DIR/slurm.conf" 644 "# Written by imgbench .ci/slurm/start_slurm.sh: one node, localhost only.
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/slurmctld/slurmctld.pid
SlurmdPidFile=$STATE/slurmd/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MinJobAge=300
KillWait=10
InactiveLimit=0
Waittime=0
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
AccountingStoragePass=$MUNGE_SOCKET
# sacct shows the --comment the Snakemake plugin sets (rule name and wildcards).
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
MailProg=/bin/true
$NODE_LINE State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP"

write_if_changed "$CONF_DIR/slurmdbd.conf" 600 "# Written by imgbench .ci/slurm/start_slurm.sh.
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdAddr=127.0.0.1
DbdHost=$HOST
DbdPort=$DBD_PORT
SlurmUser=root
LogFile=$LOGS/slurmdbd.log
PidFile=$STATE/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db"
chown root:root "$CONF_DIR/slurmdbd.conf"

# cgroup.conf is read by slurmd even without cgroup plugins on some builds; keep it inert.
write_if_changed "$CONF_DIR/cgroup.conf" 644 "# Written by imgbench .ci/slurm/start_slurm.sh: no cgroups used.
CgroupPlugin=autodetect
ConstrainCores=no
ConstrainRAMSpace=no
ConstrainDevices=no"

# ---------------------------------------------------------------- Slurm daemons
launch slurmdbd slurmdbd slurmdbd -D
wait_for slurmdbd 60 sacctmgr -n list cluster

if [[ -z $(sacctmgr -n -P list cluster "$CLUSTER" format=cluster) ]]; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
    log "added cluster $CLUSTER to the accounting database"
fi
if [[ -z $(sacctmgr -n -P list account "$ACCOUNT" format=account) ]]; then
    sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" Description=imgbench Organization=imgbench >/dev/null
    log "added account $ACCOUNT"
fi
if [[ -z $(sacctmgr -n -P list association cluster="$CLUSTER" account="$ACCOUNT" user=root format=user) ]]; then
    sacctmgr -i add user root Account="$ACCOUNT" Cluster="$CLUSTER" DefaultAccount="$ACCOUNT" >/dev/null
    log "added user root to account $ACCOUNT"
fi

reconfigure=0
if running slurmctld slurmctld && ((CONFIG_CHANGED)); then reconfigure=1; fi
launch slurmctld slurmctld slurmctld -D
wait_for slurmctld 60 bash -c "scontrol ping | grep -q UP"
launch slurmd slurmd slurmd -D
if ((reconfigure)); then
    log "configuration changed: scontrol reconfigure"
    scontrol reconfigure >/dev/null
fi

node_state() { sinfo -h -N -n "$HOST" -o %T 2>/dev/null | head -n 1; }
for ((i = 0; i < 240; i++)); do
    state=$(node_state)
    case $state in
    idle | mixed | allocated) break ;;
    drain* | down* | *drain | *down | fail*)
        scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true
        ;;
    esac
    sleep 0.25
done
state=$(node_state)
case $state in
idle | mixed | allocated) ;;
*) die "node $HOST is '$state', not idle; see $LOGS/slurmd.log and 'scontrol show node'" ;;
esac

cat >"$STATE/env" <<EOF
export IMGBENCH_SLURM_ACCOUNT=$ACCOUNT
export IMGBENCH_SLURM_PARTITION=$PARTITION
export IMGBENCH_SLURM_CLUSTER=$CLUSTER
EOF
log "Slurm is up: cluster $CLUSTER, partition $PARTITION, account $ACCOUNT, node $HOST ($state)"
log "config /etc/slurm/slurm.conf; logs and pids under $STATE; stop with .ci/slurm/stop_slurm.sh"
cat "$STATE/env"
