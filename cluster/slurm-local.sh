#!/bin/bash
# A private one-node Slurm on this machine, for the tests (tests/cli/slurm.sh)
# and for trying cluster/tokdrop.sbatch by hand: munged, slurmctld and slurmd
# from Debian's packages (slurm-wlm, munge; `make deps` installs them), run as
# root, listening on 127.0.0.1 only, with their own ports, munge key, config,
# state, logs and PID files under one directory. Nothing in /etc is used or
# changed; the machine's own Slurm or munge, if any, is left alone.
#
#   cluster/slurm-local.sh start DIR    start the three daemons, wait until the
#                                       node takes jobs, write DIR/env.sh
#   . DIR/env.sh                        then sbatch, srun, squeue, scontrol ...
#                                       talk to this cluster (SLURM_CONF)
#   cluster/slurm-local.sh stop DIR     cancel its jobs, stop the daemons it
#                                       started (by PID, never by name)
#   cluster/slurm-local.sh status DIR   which of them run; exit 0 when all do
#
# For example:
#   cluster/slurm-local.sh start /tmp/tdslurm && . /tmp/tdslurm/env.sh
#   sbatch --ntasks=2 --cpus-per-task=1 --time=10 cluster/tokdrop.sbatch configs/demo.yaml  # after make demo
#   squeue; cat tokdrop-*.out
#   cluster/slurm-local.sh stop /tmp/tdslurm
#
# The node is called `localhost` (127.0.0.1), with the CPUs, cores and memory
# `slurmd -C` finds. Jobs are bound to cores (task/affinity, no cgroups). No
# MPI plugin is the default: an MPI step needs `srun --mpi=pmix`, as the
# sbatch template passes it. A requeued job may start again cred_expire + 1 s
# after the requeue (Slurm's rule): 10 s here instead of 120.
#
# Environment:
#   SLURM_LOCAL_PORT=P   slurmctld listens on P, slurmd on P+1 (default: the
#                        first free pair from a random start in 27000-28999,
#                        away from Slurm's 6817/6818)
#   SLURM_LOCAL_TIMEOUT  seconds to wait for each daemon (default 30)
# Exit status: 0 on success; 1 with a message (and the daemon's log tail)
# when something does not start; 2 on bad usage.
set -u

prog=slurm-local
usage() {
    echo "usage: cluster/slurm-local.sh start|stop|status DIR" >&2
    exit 2
}
[ $# -eq 2 ] || usage
cmd=$1
case $2 in /*) dir=$2 ;; *) dir=$(pwd)/$2 ;; esac
conf=$dir/etc/slurm.conf
export SLURM_CONF=$conf
timeout=${SLURM_LOCAL_TIMEOUT:-30}

MUNGED=/usr/sbin/munged
SLURMCTLD=/usr/sbin/slurmctld
SLURMD=/usr/sbin/slurmd

die() {
    echo "$prog: $*" >&2
    exit 1
}

# pid_of NAME EXE: the PID in DIR/pid/NAME.pid when that process is alive,
# runs EXE and names DIR on its command line (so a stale PID file whose
# number was reused, or another cluster's daemon, is never taken for ours).
pid_of() {
    local pid cmdline
    pid=$(cat "$dir/pid/$1.pid" 2>/dev/null) || return 1
    case $pid in '' | *[!0-9]*) return 1 ;; esac
    [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$(readlink -f "$2")" ] || return 1
    cmdline=$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null) || return 1
    case $cmdline in *"$dir"*) echo "$pid" ;; *) return 1 ;; esac
}

# exited PID: the process is gone (or a zombie waiting for its parent).
exited() {
    local state
    state=$(ps -o stat= -p "$1" 2>/dev/null) || return 0
    case $state in Z*) return 0 ;; *) return 1 ;; esac
}

port_free() { ! (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null; }

# log_tail NAME: the end of a daemon's log, for a failure message.
log_tail() {
    echo "$prog: last lines of $dir/log/$1.log:" >&2
    tail -n 8 "$dir/log/$1.log" 2>/dev/null | sed 's/^/    /' >&2
}

write_conf() { # ctld_port slurmd_port
    local hw cpus mem
    hw=$("$SLURMD" -C | head -n 1) || die "slurmd -C failed"
    # CPUs=.. Boards=.. SocketsPerBoard=.. CoresPerSocket=.. ThreadsPerCore=..
    cpus=$(tr ' ' '\n' <<< "$hw" | grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore)=' | tr '\n' ' ')
    mem=$(tr ' ' '\n' <<< "$hw" | sed -n 's/^RealMemory=//p')
    mem=$((${mem:-1024} * 9 / 10)) # slurmd drains a node that reports less than configured
    cat > "$conf" <<EOF
# Written by cluster/slurm-local.sh; regenerated at every start.
ClusterName=tokdrop-local
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$1
SlurmdPort=$2
# Only loopback: every daemon and srun bind to the node's address
# (127.0.0.1), not to all interfaces.
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire is also how long a requeued job waits before it may start
# again (begin time = requeue + cred_expire + 1 s); Slurm's default is 120 s
# and its minimum 5 s. 10 s keeps the tests short and leaves a step's launch
# credential time to be checked on a busy machine.
AuthInfo=socket=$dir/munge/munge.socket.2,cred_expire=10
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
# The jobs' temporary directory, where srun's PMIx support puts its files.
TmpFS=$dir/tmp
SlurmctldPidFile=$dir/pid/slurmctld.pid
SlurmdPidFile=$dir/pid/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# Our own (empty) SPANK plugin list, not /etc/slurm/plugstack.conf.
PlugStackConfig=$dir/etc/plugstack.conf
# No cgroups (containers often have none to give): processes are tracked
# through /proc, and tasks bound to their cores with sched_setaffinity.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# Start a batch job as soon as it is submitted, and look at pending jobs
# (a requeued one whose begin time has come) every 2 s instead of every 60 s.
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_interval=2
# A request the node can never satisfy is refused at submission, not left
# pending for ever.
EnforcePartLimits=ALL
ReturnToService=2
KillWait=5
# Finished jobs stay visible to scontrol for 10 minutes.
MinJobAge=600
NodeName=localhost NodeAddr=127.0.0.1 NodeHostname=localhost $cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    : > "$dir/etc/plugstack.conf"
}

# wait_until SECONDS COMMAND...: poll every 0.1 s.
wait_until() {
    local limit=$(($1 * 10)) i=0
    shift
    while ! "$@"; do
        i=$((i + 1))
        [ $i -lt $limit ] || return 1
        sleep 0.1
    done
}

munge_ok() { munge -n -S "$dir/munge/munge.socket.2" 2> /dev/null | unmunge -S "$dir/munge/munge.socket.2" > /dev/null 2>&1; }
node_ready() {
    pid_of slurmctld "$SLURMCTLD" > /dev/null && pid_of slurmd "$SLURMD" > /dev/null || return 1
    case $(sinfo -h -n localhost -o %t 2> /dev/null) in idle | mix | alloc) return 0 ;; *) return 1 ;; esac
}
daemon_up() { pid_of "$1" "$2" > /dev/null; }

start() {
    [ "$(id -u)" = 0 ] || die "needs root (slurmd starts every job as its user)"
    for exe in "$MUNGED" "$SLURMCTLD" "$SLURMD" /usr/bin/sbatch /usr/bin/munge; do
        [ -x "$exe" ] || die "$exe not found: install the Debian packages slurm-wlm and munge ('make deps' does)"
    done
    # munged's socket path must fit a Unix socket address (108 bytes).
    [ ${#dir} -le 80 ] || die "$dir is too long a path for munged's socket; use a shorter one"
    if pid_of munged "$MUNGED" > /dev/null || pid_of slurmctld "$SLURMCTLD" > /dev/null ||
        pid_of slurmd "$SLURMD" > /dev/null; then
        die "a cluster already runs in $dir; 'cluster/slurm-local.sh stop $dir' first"
    fi
    # DIR is ours alone: new, empty, or made by an earlier start (the mark).
    if [ -e "$dir" ] && [ ! -e "$dir/.slurm-local" ] && [ -n "$(ls -A "$dir" 2> /dev/null)" ]; then
        die "$dir exists and was not made by slurm-local.sh: give a new or empty directory"
    fi
    mkdir -p "$dir" && touch "$dir/.slurm-local" || die "cannot create $dir"
    # A fresh cluster every time: no jobs or node state from an earlier one.
    (cd "$dir" && rm -rf state spool pid munge etc tmp) || die "cannot clear $dir"
    mkdir -p "$dir/etc" "$dir/state" "$dir/spool" "$dir/pid" "$dir/log" "$dir/munge" "$dir/tmp" ||
        die "cannot create directories under $dir"
    # munged refuses a socket directory others cannot search, and log and PID
    # directories that others can write.
    chmod 0755 "$dir" "$dir/munge"
    chmod 0700 "$dir/log" "$dir/pid"

    local port=${SLURM_LOCAL_PORT:-}
    if [ -z "$port" ]; then
        port=$((27000 + RANDOM % 1000 * 2))
        local tries=0
        until port_free "$port" && port_free $((port + 1)); do
            port=$((port + 2))
            tries=$((tries + 1))
            [ $tries -lt 200 ] || die "no two free ports from 27000 up"
        done
    fi
    write_conf "$port" $((port + 1))

    # munge: our own key, socket and daemon (munged forks and writes its PID file)
    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none || die "cannot write the munge key"
    chmod 0400 "$dir/munge/munge.key"
    "$MUNGED" --socket="$dir/munge/munge.socket.2" --key-file="$dir/munge/munge.key" \
        --pid-file="$dir/pid/munged.pid" --log-file="$dir/log/munged.log" \
        --seed-file="$dir/munge/munged.seed" < /dev/null ||
        { log_tail munged; die "munged did not start"; }
    wait_until "$timeout" munge_ok || { log_tail munged; die "munged does not answer"; }

    # slurmctld, slurmd: both fork into the background and write their PID
    # files; setsid keeps them out of the caller's terminal and process group.
    setsid "$SLURMCTLD" -f "$conf" < /dev/null >> "$dir/log/slurmctld.out" 2>&1 ||
        { log_tail slurmctld; die "slurmctld did not start"; }
    wait_until "$timeout" daemon_up slurmctld "$SLURMCTLD" || { log_tail slurmctld; die "slurmctld did not start"; }
    setsid "$SLURMD" -f "$conf" -N localhost < /dev/null >> "$dir/log/slurmd.out" 2>&1 ||
        { log_tail slurmd; die "slurmd did not start"; }
    if ! wait_until "$timeout" node_ready; then
        daemon_up slurmctld "$SLURMCTLD" || log_tail slurmctld
        log_tail slurmd
        die "node not ready after ${timeout}s (state '$(sinfo -h -n localhost -o %t 2> /dev/null)'); logs in $dir/log"
    fi
    echo "export SLURM_CONF=$conf" > "$dir/env.sh"
    echo "$prog: cluster up in $dir (slurmctld 127.0.0.1:$port, slurmd :$((port + 1)), node localhost," \
        "$(sinfo -h -o %c | head -n 1) CPUs); now: . $dir/env.sh"
}

# stop_daemon NAME EXE: SIGTERM, then SIGKILL if it is still there after 10 s.
stop_daemon() {
    local pid
    pid=$(pid_of "$1" "$2") || return 0
    kill -TERM "$pid" 2> /dev/null
    if ! wait_until 10 exited "$pid"; then
        echo "$prog: $1 ($pid) still runs 10 s after SIGTERM; sending SIGKILL" >&2
        kill -KILL "$pid" 2> /dev/null
        wait_until 5 exited "$pid"
    fi
    rm -f "$dir/pid/$1.pid"
    echo "$prog: stopped $1 ($pid)"
}

no_jobs_left() { [ -z "$(squeue -h -o %i 2> /dev/null)" ]; }
steps_left() { compgen -G "$dir/spool/localhost_[0-9]*" | sed 's|.*/||' | tr '\n' ' '; }
no_steps_left() { [ -z "$(steps_left)" ]; }

stop() {
    [ -d "$dir" ] || die "$dir does not exist"
    # Jobs first, while slurmctld and slurmd still run to end them: a job's
    # slurmstepd and tasks are not ours to kill, and would outlive slurmd.
    if pid_of slurmctld "$SLURMCTLD" > /dev/null && ! no_jobs_left; then
        local jobs
        mapfile -t jobs < <(squeue -h -o %i 2> /dev/null)
        scancel --quiet "${jobs[@]}"
        # squeue keeps COMPLETING jobs until their processes are gone; each
        # step's slurmstepd removes its socket from the spool as it exits.
        wait_until 30 no_jobs_left || echo "$prog: jobs still listed 30 s after scancel: $(squeue -h -o '%i %T' | tr '\n' ' ')" >&2
    fi
    wait_until 10 no_steps_left || echo "$prog: warning: job steps still running: $(steps_left)" >&2
    stop_daemon slurmd "$SLURMD"
    stop_daemon slurmctld "$SLURMCTLD"
    stop_daemon munged "$MUNGED"
    return 0
}

status() {
    local rc=0 d pid
    for d in munged:$MUNGED slurmctld:$SLURMCTLD slurmd:$SLURMD; do
        if pid=$(pid_of "${d%%:*}" "${d#*:}"); then
            echo "${d%%:*}: running ($pid)"
        else
            echo "${d%%:*}: not running"
            rc=1
        fi
    done
    [ $rc = 0 ] && sinfo
    return $rc
}

case $cmd in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) usage ;;
esac
