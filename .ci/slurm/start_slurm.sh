#!/usr/bin/env bash
# Bring up a two-node Slurm cluster on this machine, for the integration test
# (tests/workflow/test_slurm.py) and for trying profiles/slurm (and multi-node jobs) by hand.
#
#   sudo .ci/slurm/start_slurm.sh     # install (Debian packages) if needed, configure, start
#   sudo .ci/slurm/stop_slurm.sh      # stop what this script started (by recorded pids)
#
# Needs root and apt-get (Debian 12: Slurm 22.05). No systemd needed: munged, mariadbd,
# slurmdbd, slurmctld and the slurmds run in the background under setsid; their pids are
# recorded under $IMGBENCH_SLURM_STATE (default /var/lib/imgbench-slurm) and the stop
# script kills exactly those pids. Running it again while the cluster is up is a no-op;
# a half-finished earlier attempt (interrupted dpkg, stale pid files, left-over network
# namespaces, a drained node) is repaired.
#
# The nodes: imgb-n1 (10.213.0.11) and imgb-n2 (10.213.0.12), each a slurmd in its own
# network and UTS namespace (so `hostname` in a job prints the node name), on a bridge
# imgb-br0 (10.213.0.1) with slurmctld on the host; the file system is shared. See
# nodes.sh. Both nodes declare this machine's CPUs and memory: they share them.
# IMGBENCH_SLURM_NODES=N (1-9) makes N nodes instead of 2.
#
# Why each piece is there:
# * slurmdbd + MariaDB: the Snakemake Slurm plugin checks job states with `sacct`, which
#   fails outright with accounting_storage/none. MariaDB listens on 127.0.0.1 only;
#   slurmctld and sacct reach slurmdbd at the bridge address (also from inside a job).
# * /etc/slurm/slurm.conf (the default path): the plugin's job-step runner drops SLURM_CONF
#   from the environment before its inner `srun`, so a config elsewhere is not found.
# * An account (sacctmgr): the plugin validates `slurm_account` with sacctmgr.
# * A private munge socket and key: no clash with a system munged; slurmdbd then needs
#   AccountingStoragePass=<socket> (in slurm.conf) to authenticate slurmctld. The socket
#   is a file, so the slurmds in their network namespaces use it too.
# * MinJobAge=300: also lets `--slurm-status-command squeue` work (the plugin falls back to
#   sacct unless MinJobAge >= 3 x its first status-check delay).
# * RealMemory below what `slurmd -C` reports: otherwise a node drains ("Low RealMemory")
#   as soon as the kernel reports a little less.
# * proctrack/linuxproc and task/none: no cgroups (containers, CI runners).
# * Partition OverSubscribe=NO (the default): a node's CPUs go to one job at a time, but
#   the two nodes share the machine's cores, so jobs on different nodes compete for them.
#
# Prints `export` lines for the account, partition and cluster at the end (also written
# to $IMGBENCH_SLURM_STATE/env).
set -euo pipefail

CLUSTER=${IMGBENCH_SLURM_CLUSTER:-imgbench}
ACCOUNT=${IMGBENCH_SLURM_ACCOUNT:-imgbench}
PARTITION=${IMGBENCH_SLURM_PARTITION:-debug}
DB_PORT=${IMGBENCH_SLURM_DB_PORT:-3307}
DBD_PORT=${IMGBENCH_SLURM_DBD_PORT:-6819}
CTLD_PORT=${IMGBENCH_SLURM_CTLD_PORT:-6817}
SLURMD_PORT=${IMGBENCH_SLURM_SLURMD_PORT:-6818}
CONF_DIR=/etc/slurm
# iproute2 for `ip` (network namespaces, veths, bridge); nsenter and unshare are in
# util-linux, which Debian always has.
PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server iproute2)

log() { printf '[start_slurm] %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}
# STATE, PIDS, LOGS, the node names and addresses, running(), stop_daemon(), ...
# shellcheck source=.ci/slurm/nodes.sh
source "$(dirname "${BASH_SOURCE[0]}")/nodes.sh"

[[ $(id -u) -eq 0 ]] || die "needs root (installs packages, writes /etc/slurm, starts daemons)"
take_lock

# ---------------------------------------------------------------- install
export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin
BINARIES=(slurmctld slurmd slurmdbd sbatch sacct sacctmgr munged mariadbd mariadb-install-db ip nsenter unshare)
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
    setsid "$@" </dev/null >>"$LOGS/$name.out" 2>&1 9>&- &
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

# ---------------------------------------------------------------- the nodes' network
# Idempotent: what exists and is right is kept (a running slurmd keeps its namespace),
# what is missing or wrong is (re)created.
net_up() {
    local node ns veth addr index peer
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link add "$BRIDGE" type bridge
        log "created bridge $BRIDGE ($BRIDGE_ADDR)"
    fi
    ip addr replace "$BRIDGE_ADDR/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    for node in "${NODES[@]}"; do
        ns=$(netns_path "$node") veth=$(node_veth "$node") addr=$(node_addr "$node")
        # A namespace file left without its namespace (not a mount any more) is recreated.
        if [[ -e $ns ]] && ! nsenter --net="$ns" true 2>/dev/null; then
            log "network namespace $node is stale; recreating it"
            ip netns del "$node" 2>/dev/null || rm -f "$ns"
        fi
        if [[ ! -e $ns ]]; then
            ip netns add "$node"
            log "created network namespace $node ($addr)"
        fi
        # The veth pair: $veth on the host, eth0 in the namespace, peers of each other.
        index=$(cat "/sys/class/net/$veth/ifindex" 2>/dev/null || true)
        peer=$(ip -n "$node" -o link show eth0 2>/dev/null | sed -n 's/^[0-9]*: eth0@if\([0-9]*\):.*/\1/p' || true)
        if [[ -z $index || $peer != "$index" ]]; then
            ip link del "$veth" 2>/dev/null || true
            ip -n "$node" link del eth0 2>/dev/null || true
            ip link add "$veth" type veth peer name eth0 netns "$node"
        fi
        ip link set "$veth" master "$BRIDGE"
        ip link set "$veth" up
        ip -n "$node" link set lo up
        ip -n "$node" addr replace "$addr/24" dev eth0
        ip -n "$node" link set eth0 up
        ip -n "$node" route replace default via "$BRIDGE_ADDR"
    done
    # With br_netfilter, bridged packets go through iptables' FORWARD chain, whose policy
    # is DROP on Docker hosts: let node-to-node traffic on the bridge through.
    if [[ $(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null) == 1 ]] &&
        command -v iptables >/dev/null 2>&1; then
        local rule=(FORWARD -i "$BRIDGE" -o "$BRIDGE" -m comment --comment imgbench-slurm -j ACCEPT)
        if ! iptables -w -C "${rule[@]}" 2>/dev/null; then
            iptables -w -I "${rule[@]}" && log "iptables: accepting forwarded traffic on $BRIDGE"
        fi
    fi
    # Each node name resolves to its namespace's address, on the host and in every node.
    set_hosts_lines 1
}
net_up

# ---------------------------------------------------------------- Slurm configuration
mkdir -p "$CONF_DIR"
# The node line as slurmd sees this machine, RealMemory lowered by 10% (min. 512 MB),
# once per node: every node has the whole machine (they share it).
HARDWARE=$(slurmd -C | head -n 1)
[[ $HARDWARE == NodeName=* ]] || die "unexpected 'slurmd -C' output: $HARDWARE"
REAL_MEMORY=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$HARDWARE")
LOWER_MEMORY=$((REAL_MEMORY * 9 / 10))
((LOWER_MEMORY >= 512)) || LOWER_MEMORY=512
HARDWARE=$(sed -e "s/RealMemory=[0-9]*/RealMemory=$LOWER_MEMORY/" -e "s/^NodeName=[^ ]* *//" <<<"$HARDWARE")
NODE_LINES=
for node in "${NODES[@]}"; do
    NODE_LINES+="NodeName=$node NodeAddr=$(node_addr "$node") NodeHostname=$node $HARDWARE State=UNKNOWN"$'\n'
done
NODE_LIST=$(
    IFS=,
    echo "${NODES[*]}"
)

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

write_if_changed "$CONF_DIR/slurm.conf" 644 "# Written by imgbench .ci/slurm/start_slurm.sh: ${#NODES[@]} nodes on this machine.
ClusterName=$CLUSTER
# The controller runs on the host; the nodes reach it at the bridge's address.
SlurmctldHost=$HOST($BRIDGE_ADDR)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
StateSaveLocation=$STATE/slurmctld
# %n: the node name (slurmd -N), one of each per node.
SlurmdSpoolDir=$STATE/slurmd/%n
SlurmctldPidFile=$STATE/slurmctld/slurmctld.pid
SlurmdPidFile=$STATE/slurmd/%n.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd-%n.log
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
AccountingStorageHost=$BRIDGE_ADDR
AccountingStoragePort=$DBD_PORT
AccountingStoragePass=$MUNGE_SOCKET
# sacct shows the --comment the Snakemake plugin sets (rule name and wildcards).
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
MailProg=/bin/true
$NODE_LINES
PartitionName=$PARTITION Nodes=$NODE_LIST Default=YES MaxTime=INFINITE State=UP"

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

# The single-node version of this script ran a slurmd on the host itself: stop it.
stop_daemon slurmd slurmd
# A changed slurm.conf while slurmctld runs (other nodes, say: `scontrol reconfigure` does
# not add or remove nodes): restart the controller and the slurmds. Jobs keep running.
if running slurmctld slurmctld && ((CONFIG_CHANGED)); then
    log "configuration changed: restarting slurmctld and the slurmds"
    for node in "${NODES[@]}"; do stop_daemon "slurmd-$node" slurmd; done
    stop_daemon slurmctld slurmctld
fi
launch slurmctld slurmctld slurmctld -D
wait_for slurmctld 60 bash -c "scontrol ping | grep -q UP"

# One slurmd per node, in the node's network namespace (nsenter: the mount namespace
# stays the host's) and in a UTS namespace of its own with the node name as host name.
for node in "${NODES[@]}"; do
    mkdir -p "$STATE/slurmd/$node"
    if running "slurmd-$node" slurmd && ! in_netns "$(<"$PIDS/slurmd-$node.pid")" "$node"; then
        log "slurmd-$node runs outside the namespace $node (recreated?): restarting it"
        stop_daemon "slurmd-$node" slurmd
    fi
    launch "slurmd-$node" slurmd nsenter --net="$(netns_path "$node")" unshare --uts \
        sh -c 'hostname "$1" && exec slurmd -D -N "$1"' sh "$node"
done

node_states() { sinfo -h -N -p "$PARTITION" -o '%N %T' 2>/dev/null; }
nodes_ready() { # every node idle, mixed, allocated or completing (no "*": responding)
    local states
    states=$(node_states)
    [[ $(grep -cE ' (idle|mixed|allocated|completing)$' <<<"$states") -eq ${#NODES[@]} ]]
}
for ((i = 0; i < 240; i++)); do
    nodes_ready && break
    while read -r node state; do
        case $state in
        drain* | down* | *drain | *down | fail*)
            scontrol update NodeName="$node" State=RESUME >/dev/null 2>&1 || true
            ;;
        esac
    done < <(node_states)
    sleep 0.25
done
nodes_ready || die "nodes not idle: $(node_states | tr '\n' ' '); see $LOGS/slurmd-*.log and 'scontrol show node'"

# Node to node over the bridge (slurmctld reaching each slurmd only shows host to node):
# the first node connects to every other node's slurmd port.
for node in "${NODES[@]:1}"; do
    nsenter --net="$(netns_path "${NODES[0]}")" timeout 5 bash -c \
        "exec 3<>/dev/tcp/$node/$SLURMD_PORT" 2>/dev/null ||
        die "${NODES[0]} cannot connect to $node:$SLURMD_PORT over $BRIDGE (a firewall on bridged traffic?)"
done

cat >"$STATE/env" <<EOF
export IMGBENCH_SLURM_ACCOUNT=$ACCOUNT
export IMGBENCH_SLURM_PARTITION=$PARTITION
export IMGBENCH_SLURM_CLUSTER=$CLUSTER
EOF
log "Slurm is up: cluster $CLUSTER, partition $PARTITION, account $ACCOUNT, nodes $(node_states | tr '\n' ',' | sed 's/,$//')"
log "config /etc/slurm/slurm.conf; logs and pids under $STATE; stop with .ci/slurm/stop_slurm.sh"
cat "$STATE/env"
