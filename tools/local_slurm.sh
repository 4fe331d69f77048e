#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, from Debian's slurm-wlm and munge, for the
# `cluster` tests and for trying hydra/launcher=slurm without a cluster.
#
#   tools/local_slurm.sh --install          # as root on Debian: apt-get install slurm-wlm munge
#   tools/local_slurm.sh STATE_DIR CMD ...  # start, run CMD with SLURM_CONF set, stop
#   tools/local_slurm.sh STATE_DIR          # start, then wait until SIGTERM/SIGINT, stop
#
# Everything lives in STATE_DIR (config, munge key and socket, state, logs), so it never meets a
# system Slurm. munged (as user munge), slurmctld and slurmd run in the foreground as children
# of this script, on free ports; no cgroups (proctrack/linuxproc, task/none). Once the node is
# idle the script writes STATE_DIR/ready (holding SLURM_CONF=...). On exit it cancels the jobs
# still queued and stops every daemon it started, by PID.
# Exit status 3: Slurm cannot start here (not root, or the packages are missing); the reason is
# on stderr. Without CMD: 0 after a clean stop. With CMD: CMD's status.
set -euo pipefail

cannot() { echo "local_slurm: cannot start Slurm here: $*" >&2; exit 3; }

install() {
    if command -v slurmctld >/dev/null && command -v munged >/dev/null; then
        return
    fi
    if [[ $(id -u) != 0 || ! -f /etc/debian_version ]] || ! command -v apt-get >/dev/null; then
        echo "local_slurm: slurm-wlm/munge missing; not root on Debian, so the cluster tests skip"
        return
    fi
    local packages=(slurm-wlm munge)
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${packages[@]}" \
        || { apt-get update && apt-get install -y --no-install-recommends "${packages[@]}"; }
}

free_port() {
    local port
    while true; do
        port=$((20000 + RANDOM % 20000))
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
    done
}

write_config() {
    local node
    node=$(slurmd -C | head -n 1)
    cat >"$STATE/slurm.conf" <<EOF
ClusterName=eilab-local
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$STATE/munge/munge.socket
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
    mkdir -p "$STATE/munge"
    chmod 0755 "$STATE" "$STATE/munge"  # munged (user munge) must reach its socket folder
    mungekey --create --keyfile="$STATE/munge/munge.key" >/dev/null
    chown -R munge:munge "$STATE/munge"
    setpriv --reuid=munge --regid=munge --init-groups munged -F \
        --key-file="$STATE/munge/munge.key" --socket="$STATE/munge/munge.socket" \
        --pid-file="$STATE/munge/munged.pid" --log-file="$STATE/munge/munged.log" \
        --seed-file="$STATE/munge/munged.seed" 2>"$STATE/munged.stderr" &
    PIDS+=($!)
    wait_for "munged's socket" test -S "$STATE/munge/munge.socket"
}

# wait_for WHAT COMMAND...: retry COMMAND for up to 30 s while every daemon is alive.
wait_for() {
    local what=$1 pid
    shift
    for _ in $(seq 300); do
        "$@" >/dev/null 2>&1 && return
        for pid in "${PIDS[@]}"; do
            kill -0 "$pid" 2>/dev/null || { echo "local_slurm: a daemon died waiting for $what" >&2
                tail -n 5 "$STATE"/*.stderr >&2 || true; return 1; }
        done
        sleep 0.1
    done
    echo "local_slurm: no $what after 30 s" >&2
    return 1
}

node_idle() { [[ $(sinfo -h -o %t) == idle ]]; }

stop() {
    local pid
    if [[ -n ${SLURM_CONF:-} ]] && [[ -n $(squeue -h -o %A 2>/dev/null) ]]; then
        scancel --full --user="$(id -un)" 2>/dev/null || true
        for _ in $(seq 100); do [[ -z $(squeue -h -o %A 2>/dev/null) ]] && break; sleep 0.1; done
    fi
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        pid=${PIDS[i]}
        kill -TERM "$pid" 2>/dev/null || continue
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}

if [[ ${1:-} == --install ]]; then
    install
    exit 0
fi
[[ $# -ge 1 ]] || { sed -n '5,7p' "$0" >&2; exit 2; }
[[ $(id -u) == 0 ]] || cannot "needs root (munged runs as user munge, the daemons as root)"
for program in slurmctld slurmd munged mungekey setpriv; do
    command -v "$program" >/dev/null || cannot "$program missing (tools/local_slurm.sh --install)"
done
id munge >/dev/null 2>&1 || cannot "no munge user (tools/local_slurm.sh --install)"

STATE=$(realpath "$1")
shift
mkdir -p "$STATE/slurmctld" "$STATE/slurmd"
PIDS=()
trap stop EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
start_munge
write_config
export SLURM_CONF=$STATE/slurm.conf
slurmctld -D -i 2>"$STATE/slurmctld.stderr" &
PIDS+=($!)
slurmd -D 2>"$STATE/slurmd.stderr" &
PIDS+=($!)
wait_for "idle node" node_idle
echo "SLURM_CONF=$SLURM_CONF" >"$STATE/ready"
if [[ $# -gt 0 ]]; then
    "$@"
else
    while true; do sleep 0.2; done
fi
