#!/usr/bin/env bash
# Stop the single-node Slurm started by .ci/slurm/start_slurm.sh: only the processes whose
# pids it recorded (and only if each pid still runs the program recorded for it), never
# by name. The accounting database and logs stay for the next start; slurm.conf, which
# start_slurm.sh writes again, is removed: with it in place and no slurmctld, every Slurm
# client (and so every `snakemake`, whose Slurm executor plugin runs `scontrol show config`
# when imported) waited 9 s for the stopped controller.
set -uo pipefail

STATE=${IMGBENCH_SLURM_STATE:-/var/lib/imgbench-slurm}
PIDS=$STATE/pids

log() { printf '[stop_slurm] %s\n' "$*" >&2; }

# A process that exists and is not a zombie (exited, not yet reaped).
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    [[ ${stat#*) } != Z* ]]
}

stop() { # name program
    local name=$1 comm=$2 file=$PIDS/$1.pid pid i
    [[ -s $file ]] || return 0
    pid=$(<"$file")
    if ! [[ $pid =~ ^[0-9]+$ ]] || ! alive "$pid" ||
        [[ $(cat "/proc/$pid/comm" 2>/dev/null) != "$comm"* ]]; then
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

# Reverse order of start.
stop slurmd slurmd
stop slurmctld slurmctld
stop slurmdbd slurmdbd
stop mariadbd mariadbd
stop munged munged

# Only the file start_slurm.sh wrote (its first line says so), never an administrator's.
CONF=/etc/slurm/slurm.conf
if [[ -f $CONF ]] && head -n 1 "$CONF" | grep -q '^# Written by imgbench'; then
    rm -f "$CONF"
    log "removed $CONF (start_slurm.sh writes it again)"
fi
