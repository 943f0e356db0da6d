#!/bin/bash
# The real Slurm path, end to end, on a private one-node Slurm started from
# Debian's packages (cluster/slurm-local.sh: munged, slurmctld, slurmd on
# 127.0.0.1, own ports and state under WORKDIR/slurm):
#  1. sbatch cluster/tokdrop.sbatch, unchanged, with 2 tasks x 1 CPU on the
#     fixture's 2-rank config;
#  2. once the run has logged step 100, `scancel --signal=USR1 JOB`: Slurm
#     delivers SIGUSR1 to every task, as --signal=USR1@120 does before a time
#     limit; tokdrop checkpoints and exits 75, and the script requeues;
#  3. the requeued job (same id, Restarts=1) says it resumed from that
#     checkpoint, finishes, and its metrics, parameters, LAMB moments and
#     importance table are bit-identical to an uninterrupted 2-rank run
#     (mpirun, started while the requeued job waits for its begin time);
#  4. every rank of both runs logged its host and its own core
#     (srun --cpu-bind=cores), and the job ended COMPLETED with status 0;
#  5. a rank that dies (kill -9 of task 1 of a second job, the watchdog off)
#     ends the job within 60 s: srun names the task, the script says tokdrop
#     failed and does not requeue, the job ends FAILED.
# It prints a timeline (seconds since submission) and stops every daemon it
# started, by PID, also when it fails.
#
# Why scancel --signal rather than a short --time: the warning signal of
# --signal=USR1@N is sent by slurmctld's periodic time-limit check, which
# runs only every 30 s or so, and the shortest time limit is a minute; the
# signal would come late and at an unpredictable step. scancel --signal=USR1
# sends the same signal to the same processes (every task of every step,
# not the batch script) through the same slurmctld -> slurmd -> slurmstepd
# path, at a moment the test chooses.
#
# Exit 77 (ctest SKIP) when Slurm cannot be run here: not root (slurmd runs
# jobs as their user). As root, missing packages are a failure: `make deps`
# installs them.
#   slurm.sh TOKDROP MPIEXEC SOURCE_DIR WORKDIR
set -u
tokdrop=$1
mpiexec=$2
src=$3
work=$4
harness=$src/cluster/slurm-local.sh
cluster=$work/slurm

if [ "$(id -u)" != 0 ]; then
    echo "slurm: SKIP: needs root to start a private Slurm (slurmd starts jobs as their user)"
    exit 77
fi
for exe in /usr/sbin/munged /usr/sbin/slurmctld /usr/sbin/slurmd /usr/bin/sbatch; do
    [ -x "$exe" ] || { echo "FAIL: $exe missing: install slurm-wlm and munge ('make deps' does)" >&2; exit 1; }
done
# Daemons of an earlier run that was killed before it could clean up would
# lose their PID files to common.sh's fresh work directory: stop them first.
[ -d "$cluster/pid" ] && "$harness" stop "$cluster" > /dev/null 2>&1
. "$src/tests/cli/common.sh"
# shared memory between the ranks, no TCP: nothing listens beyond loopback
export OMPI_MCA_btl=self,vader

ref_pid=""
cleanup() {
    rc=$?
    [ -n "$ref_pid" ] && kill "$ref_pid" 2> /dev/null && wait "$ref_pid" 2> /dev/null
    [ -d "$cluster" ] && "$harness" stop "$cluster" | sed 's/^/slurm: /'
    exit $rc
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

now() { date +%s.%N; }
# the log, the queue and the daemons' logs, for a failure
show() {
    echo "---- job output ($work/job.out)" >&2
    cat "$work/job.out" >&2 2> /dev/null
    echo "---- scontrol show job" >&2
    scontrol show job "$job" >&2 2> /dev/null
    for d in slurmctld slurmd; do
        echo "---- tail of $cluster/log/$d.log" >&2
        tail -n 15 "$cluster/log/$d.log" >&2 2> /dev/null
    done
}
die() {
    show
    fail "$*"
}
job=""
job_state() { scontrol show job "$job" -o 2> /dev/null | grep -o "$1=[^ ]*" | cut -d= -f2; }
job_ended() { case $(job_state JobState) in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY) return 0 ;; *) return 1 ;; esac; }
job_failed() { case $(job_state JobState) in FAILED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE) return 0 ;; *) return 1 ;; esac; }
# wait_for SECONDS WHAT COMMAND...: poll every 0.1 s; fail on time out, or
# as soon as the job has failed.
wait_for() {
    local limit=$(($1 * 10)) what=$2 i=0
    shift 2
    until "$@"; do
        i=$((i + 1))
        [ $i -lt $limit ] || die "$what: not within $((limit / 10)) s"
        [ $((i % 10)) != 0 ] || [ -z "$job" ] || ! job_failed || die "$what: the job failed"
        sleep 0.1
    done
}
in_log() { grep -q "$1" "$work/job.out" 2> /dev/null; }
logged_step() { # the last step in metrics.jsonl is at least $1
    local last
    last=$(tail -n 1 "$work/run/metrics.jsonl" 2> /dev/null | sed -n 's/^{"step": \([0-9]*\),.*/\1/p')
    [ -n "$last" ] && [ "$last" -ge "$1" ]
}
declare -A at
mark() { at[$1]=$(now); }

"$harness" start "$cluster" | sed 's/^/slurm: /'
[ "${PIPESTATUS[0]}" = 0 ] || fail "the private Slurm did not start (logs in $cluster/log)"
. "$cluster/env.sh"

# 1000 steps of about 1 ms on an idle machine (slower on a busy one): the
# signal, sent once step 100 is logged, lands within some 50 steps.
cfg=$work/fx/configs/h.yaml
steps=1000
args=(--set "train.steps=$steps" --set run.log_every=100 --set run.checkpoint_every=400
    --set run.keep_checkpoints=2 --set train.threads=0
    --set model.hidden_dropout=0.1 --set model.attention_dropout=0.1)

cd "$work" || fail "cd $work"
mark submit
job=$(TOKDROP=$tokdrop sbatch --parsable --job-name=tokdrop-test --nodes=1 --ntasks=2 --cpus-per-task=1 \
    --time=10 --output="$work/job.out" "$src/cluster/tokdrop.sbatch" "$cfg" "${args[@]}" \
    --set "run.dir=$work/run") || fail "sbatch refused the job"
echo "slurm: submitted job $job"
wait_for 60 "job start" in_log "^tokdrop.sbatch: job $job, run 1,"
mark start
wait_for 60 "step 100 logged" logged_step 100
scancel --signal=USR1 "$job" || die "scancel --signal=USR1 $job failed"
mark signal
# the stop (finish the step, checkpoint, srun's output) took over 30 s once
# with the rest of the suite on both cores; 90 s bounds a hang all the same
wait_for 90 "tokdrop stopping on SIGUSR1" in_log "stopped by SIGUSR1 after step"
mark stopped
stop_step=$(sed -n 's/^tokdrop: stopped by SIGUSR1 after step \([0-9]*\);.*/\1/p' "$work/job.out" | head -n 1)
[ "$stop_step" -lt "$steps" ] || die "the run ended before the signal took effect"
wait_for 30 "the batch script requeueing" in_log "^tokdrop.sbatch: tokdrop stopped at a checkpoint (status 75); requeueing job $job"
mark requeue

# the uninterrupted reference, while the requeued job waits for its begin time
"$mpiexec" -n 2 "$tokdrop" train "$cfg" "${args[@]}" --set "run.dir=$work/straight" 2> "$work/straight.log" &
ref_pid=$!

wait_for 120 "the requeued job starting" in_log "^tokdrop.sbatch: job $job, run 2,"
mark restart
wait_for 60 "the requeued run resuming" in_log "^tokdrop: resuming from "
mark resume
wait_for 120 "the requeued run finishing" job_ended
mark finish

wait "$ref_pid"
ref_rc=$?
ref_pid=""
[ "$ref_rc" = 0 ] || { cat "$work/straight.log" >&2; fail "the reference run failed ($ref_rc)"; }

# ---- checks
[ "$(job_state JobState)" = COMPLETED ] && [ "$(job_state ExitCode)" = 0:0 ] ||
    die "job ended $(job_state JobState) with exit code $(job_state ExitCode)"
[ "$(job_state Restarts)" = 1 ] || die "job restarted $(job_state Restarts) times, expected 1"
in_log "^tokdrop: resuming from $work/run/checkpoints/ckpt-0*$stop_step.h5 (step $stop_step);" ||
    die "the requeued run did not resume from the step-$stop_step checkpoint"
in_log "^tokdrop.sbatch: training finished" || die "the script did not report the end of training"
[ "$(grep -c '^tokdrop.sbatch: job .* 2 rank(s) x 1 thread(s);' "$work/job.out")" = 2 ] ||
    die "the script did not compute 2 ranks x 1 thread for both runs"

# one placement line per rank and run, this host, one core each, not the same
host=$(hostname)
awk -v host="$host" '
    /^tokdrop.sbatch: job .*, run [0-9]+,/ { run++ }
    /^tokdrop: rank [01] of 2 on / {
        if ($0 !~ "^tokdrop: rank [01] of 2 on " host ", cores [0-9]+ \\(1 thread\\)$") { print "bad line: " $0; bad = 1 }
        n[run]++; core[run, $3] = $9
    }
    END {
        for (r = 1; r <= 2; r++) {
            if (n[r] != 2) { print "run " r ": " n[r] + 0 " placement lines, expected 2"; bad = 1 }
            else if (core[r, 0] == core[r, 1]) { print "run " r ": both ranks on core " core[r, 0]; bad = 1 }
        }
        exit bad
    }' "$work/job.out" >&2 || die "placement lines"

/usr/bin/python3 - "$work" "$steps" <<'PY' || die "the requeued run differs from the uninterrupted one"
import json, sys, h5py, numpy as np
w, steps = sys.argv[1], int(sys.argv[2])
a = [json.loads(l) for l in open(w + "/straight/metrics.jsonl")]
b = [json.loads(l) for l in open(w + "/run/metrics.jsonl")]
assert [r["step"] for r in b] == [r["step"] for r in a] == list(range(100, steps + 1, 100)), [r["step"] for r in b]
for x, y in zip(a, b):
    for k in ("loss", "mlm_loss", "nsp_loss", "grad_norm", "lr", "kept_fraction"):
        assert x[k] == y[k], (x["step"], k, x[k], y[k])
name = "/checkpoints/ckpt-%08d.h5" % steps
with h5py.File(w + "/straight" + name) as f, h5py.File(w + "/run" + name) as g:
    n = 0
    for grp in ("param", "optim/m", "optim/v"):
        for t in f[grp]:
            assert np.array_equal(f[grp][t][()], g[grp][t][()]), (grp, t)
            n += f[grp][t].size
    assert np.array_equal(f["importance"][()], g["importance"][()])
print("slurm: after requeue and resume, %d steps bit-identical to the uninterrupted run "
      "(metrics, %d parameter and moment values, importance)" % (steps, n))
PY

# ---- 5. a dead rank
first_job=$job
job=$(TOKDROP=$tokdrop TOKDROP_TIMEOUT=0 sbatch --parsable --job-name=tokdrop-killed --nodes=1 --ntasks=2 \
    --cpus-per-task=1 --time=10 --output="$work/killed.out" "$src/cluster/tokdrop.sbatch" "$cfg" \
    --set train.steps=100000000 --set run.log_every=100 --set run.checkpoint_every=0 \
    --set "run.dir=$work/killed") || fail "sbatch refused the second job"
killed_logged() { [ -s "$work/killed/metrics.jsonl" ]; }
wait_for 120 "the second job logging a step" killed_logged
victim=""
for p in $(pgrep -f -- "$tokdrop train"); do
    env_of=$(tr '\0' '\n' < /proc/$p/environ 2> /dev/null)
    echo "$env_of" | grep -qx "SLURM_JOB_ID=$job" && echo "$env_of" | grep -qx SLURM_PROCID=1 && victim=$p
done
[ -n "$victim" ] || die "task 1 of job $job not found"
kill -9 "$victim"
kill_at=$(now)
wait_for 60 "job $job ending after its task 1 was killed" job_ended
killed_s=$(awk -v a="$kill_at" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
[ "$(job_state JobState)" = FAILED ] && [ "$(job_state Restarts)" = 0 ] ||
    die "job $job ended $(job_state JobState), $(job_state Restarts) restarts; expected FAILED, not requeued"
grep -q "task 1: Killed" "$work/killed.out" && grep -q "^tokdrop.sbatch: ERROR: tokdrop failed with status 137; not requeued" "$work/killed.out" ||
    { cat "$work/killed.out" >&2; die "job $job: no message naming task 1 or the failure"; }
echo "slurm: task 1 of job $job killed with SIGKILL: the job ended FAILED $killed_s s later, naming the task"
job=$first_job

t0=${at[submit]}
echo "slurm: timeline of job $job (seconds since sbatch):"
for e in submit start signal stopped requeue restart resume finish; do
    case $e in
        submit) what="sbatch cluster/tokdrop.sbatch (2 tasks x 1 CPU, $steps steps)" ;;
        start) what="the job runs (run 1)" ;;
        signal) what="scancel --signal=USR1 (step 100 or later logged)" ;;
        stopped) what="tokdrop checkpointed at step $stop_step and exited 75" ;;
        requeue) what="the batch script ran scontrol requeue" ;;
        restart) what="the requeued job runs (run 2, Restarts=1)" ;;
        resume) what="tokdrop resumed from ckpt-$stop_step" ;;
        finish) what="job COMPLETED, exit 0:0" ;;
    esac
    awk -v a="$t0" -v b="${at[$e]}" -v e="$e" -v w="$what" 'BEGIN { printf "slurm:   %6.1f s  %-8s %s\n", b - a, e, w }'
done
echo "slurm: all checks passed"
