#!/usr/bin/env bash
# Stop the Slurm cluster started by .ci/slurm/start_slurm.sh: only the processes whose
# pids it recorded (and only if each pid still runs the program recorded for it), never
# by name; then remove the nodes' network namespaces, veths and bridge and the node names
# it added to /etc/hosts (see nodes.sh). The accounting database and logs stay for the
# next start; slurm.conf, which start_slurm.sh writes again, is removed: with it in place
# and no slurmctld, every Slurm client (and so every `snakemake`, whose Slurm executor
# plugin runs `scontrol show config` when imported) waited 9 s for the stopped controller.
set -uo pipefail

log() { printf '[stop_slurm] %s\n' "$*" >&2; }
# shellcheck source=.ci/slurm/nodes.sh
source "$(dirname "${BASH_SOURCE[0]}")/nodes.sh"
export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin
take_lock

# Reverse order of start. Every node's slurmd that has a pid file, whatever the number of
# nodes now (IMGBENCH_SLURM_NODES may have changed); "slurmd": the single-node version's.
for file in "$PIDS"/slurmd-*.pid "$PIDS"/slurmd.pid; do
    [[ -e $file ]] || continue
    name=$(basename "$file" .pid)
    stop_daemon "$name" slurmd
done
stop_daemon slurmctld slurmctld
stop_daemon slurmdbd slurmdbd
stop_daemon mariadbd mariadbd
stop_daemon munged munged

# The nodes' network (all imgb-n<N> namespaces and veths) and their /etc/hosts lines.
if command -v ip >/dev/null 2>&1; then
    net_down
fi
if command -v iptables >/dev/null 2>&1; then
    while iptables -w -D FORWARD -i "$BRIDGE" -o "$BRIDGE" -m comment --comment imgbench-slurm \
        -j ACCEPT 2>/dev/null; do
        log "iptables: removed the rule for $BRIDGE"
    done
fi
set_hosts_lines 0

# Only the file start_slurm.sh wrote (its first line says so), never an administrator's.
CONF=/etc/slurm/slurm.conf
if [[ -f $CONF ]] && head -n 1 "$CONF" | grep -q '^# Written by imgbench'; then
    rm -f "$CONF"
    log "removed $CONF (start_slurm.sh writes it again)"
fi
