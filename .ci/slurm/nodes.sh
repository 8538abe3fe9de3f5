# Sourced by start_slurm.sh and stop_slurm.sh: the nodes of the test cluster, their
# network, and stopping a recorded daemon. Needs log() defined by the sourcing script.
#
# Each node (imgb-n1, imgb-n2, ...) is a slurmd in its own network namespace (named like
# the node, created with `ip netns add`) and UTS namespace (its host name is the node
# name), reached over a veth pair attached to the bridge imgb-br0 on the host. Only the
# network and the host name are private: the mount namespace stays the host's (slurmd is
# entered with `nsenter --net`, not `ip netns exec`, which would give it a mount
# namespace of its own), so the project directory, /tmp and the munge socket are the
# same everywhere. slurmctld, slurmdbd, MariaDB and munged run on the host.
#
#   host          imgb-br0   10.213.0.1/24     (SlurmctldHost=<host>(10.213.0.1))
#   imgb-n1       eth0       10.213.0.11/24    veth peer on the host: imgb-n1-v
#   imgb-n2       eth0       10.213.0.12/24    veth peer on the host: imgb-n2-v
#
# The node names resolve to these addresses through lines that start_slurm.sh adds to
# /etc/hosts (marked with HOSTS_MARK; stop_slurm.sh removes them).

STATE=${IMGBENCH_SLURM_STATE:-/var/lib/imgbench-slurm}
PIDS=$STATE/pids
LOGS=$STATE/logs
# How many nodes (1-9). Two by default: multi-node jobs need at least two.
NODE_COUNT=${IMGBENCH_SLURM_NODES:-2}
[[ $NODE_COUNT =~ ^[1-9]$ ]] || {
    log "ERROR: IMGBENCH_SLURM_NODES must be 1-9, not '$NODE_COUNT'"
    exit 1
}
NODE_PREFIX=imgb-n
BRIDGE=imgb-br0
NET_PREFIX=10.213.0
BRIDGE_ADDR=$NET_PREFIX.1
HOSTS_MARK="# imgbench-slurm node (.ci/slurm/start_slurm.sh)"

NODES=()
for ((i = 1; i <= NODE_COUNT; i++)); do NODES+=("$NODE_PREFIX$i"); done

node_addr() { echo "$NET_PREFIX.$((10 + ${1#"$NODE_PREFIX"}))"; } # imgb-n1 -> 10.213.0.11
node_veth() { echo "$1-v"; }                                     # the host end of its veth
netns_path() { echo "/run/netns/$1"; }

# A process that exists and is not a zombie (exited, not yet reaped).
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    [[ ${stat#*) } != Z* ]]
}

# True if the pid recorded for $1 is alive and runs the program $2.
running() {
    local file=$PIDS/$1.pid pid
    [[ -s $file ]] || return 1
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    alive "$pid" || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$2"* ]]
}

# True if process $1 runs in the network namespace named $2.
in_netns() {
    local mine theirs
    theirs=$(stat -L -c %d:%i "$(netns_path "$2")" 2>/dev/null) || return 1
    mine=$(stat -L -c %d:%i "/proc/$1/ns/net" 2>/dev/null) || return 1
    [[ $mine == "$theirs" ]]
}

# One start or stop at a time: test sessions may start the cluster (the fixture of
# tests/workflow/test_slurm.py) while another one stops it. The lock is fd 9;
# start_slurm.sh starts the daemons with it closed, or they would hold it.
take_lock() {
    mkdir -p "$STATE"
    exec 9>"$STATE/lock"
    if ! flock -n 9; then
        log "waiting for another start_slurm.sh or stop_slurm.sh to finish"
        flock -w 1200 9 || {
            log "ERROR: $STATE/lock still held after 20 minutes"
            exit 1
        }
    fi
}

# Stop the daemon whose pid was recorded as $1, if it still runs program $2: SIGTERM, and
# SIGKILL after 30 s.
stop_daemon() {
    local name=$1 comm=$2 file=$PIDS/$1.pid pid i
    [[ -s $file ]] || return 0
    pid=$(<"$file")
    if ! running "$name" "$comm"; then
        log "$name (pid $pid) is not running"
        rm -f "$file"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 120; i++)); do
        alive "$pid" || break
        sleep 0.25
    done
    if alive "$pid"; then
        log "$name (pid $pid) ignored SIGTERM for 30 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$file"
    log "stopped $name (pid $pid)"
}

# The /etc/hosts lines for the nodes (with $1 = 1), or none ($1 = 0). Rewritten in place
# (not replaced by a new file): in a container /etc/hosts is often a bind mount.
set_hosts_lines() {
    local want=$1 hosts=/etc/hosts current new node
    current=$(cat "$hosts" 2>/dev/null || true)
    new=$(grep -vF "$HOSTS_MARK" <<<"$current" || true)
    if ((want)); then
        for node in "${NODES[@]}"; do
            new+=$'\n'"$(node_addr "$node") $node $HOSTS_MARK"
        done
    fi
    [[ $new == "$current" ]] && return 0
    printf '%s\n' "$new" >"$hosts"
    if ((want)); then log "added the node names to $hosts"; else log "removed the node names from $hosts"; fi
}

# Remove the namespaces, veths and bridge (whatever of them exists). Processes still in a
# namespace keep it alive, but without its veth they are cut off.
net_down() {
    local name
    for name in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$NODE_PREFIX[0-9]+$"); do
        local left
        left=$(ip netns pids "$name" 2>/dev/null | tr '\n' ' ')
        [[ -z $left ]] || log "processes still in namespace $name (left running): $left"
        ip netns del "$name" 2>/dev/null && log "deleted network namespace $name"
    done
    for name in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' |
        grep -E "^$NODE_PREFIX[0-9]+-v$"); do
        ip link del "$name" 2>/dev/null || true
    done
    if ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link del "$BRIDGE" && log "deleted bridge $BRIDGE"
    fi
}
