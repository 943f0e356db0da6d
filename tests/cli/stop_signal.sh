#!/bin/sh
# Stop signals whatever the launcher (README, "Stop signals"): a wrapper can
# tell "stopped at a checkpoint, run me again" (exit 75) from a failure.
# Cases: no launcher with SIGTERM and with SIGUSR1; mpirun -n 2 with SIGUSR1
# to mpirun; SIGTERM to cluster/term-to-usr1.sh running mpirun -n 2. Each:
#  1. the signal, sent once the log shows training steps, gives exit 75
#     and a checkpoint at the step the log says it stopped after, with
#     metrics.jsonl ending at that step;
#  2. a second invocation resumes from that checkpoint and finishes 5 steps
#     later bit-identical (metrics, parameters, moments, importance) to an
#     uninterrupted run to that step.
# The learning rate does not depend on train.steps here (end_lr = lr), so
# the stopped run (train.steps 100000) and the uninterrupted one
# (train.steps = stopped step + 5) follow the same schedule.
#   stop_signal.sh TOKDROP MPIEXEC SOURCE_DIR WORKDIR
set -u
tokdrop=$1
mpiexec=$2
src=$3
work=$4
. "$src/tests/cli/common.sh"
cfg="$work/fx/configs/b.yaml"
common="--set model.hidden_dropout=0.1 --set model.attention_dropout=0.1 --set run.log_every=1
        --set train.micro_batch=4 --set train.threads=1 --set run.keep_checkpoints=3
        --set optimizer.lr=0.005 --set optimizer.end_lr=0.005"
pid=""
trap '[ -n "$pid" ] && kill -KILL $pid 2>/dev/null' EXIT

# waits (up to 120 s) until the log shows step 3; false if the run ended
wait_for_steps() { # log
    i=0
    until grep -q "step 3/100000 " "$1" 2>/dev/null; do
        kill -0 $pid 2>/dev/null || return 1
        i=$((i + 1))
        [ $i -le 1200 ] || return 1
        sleep 0.1
    done
}

stop_case() { # name, signal, launcher words (none: no launcher)
    name=$1
    sig=$2
    shift 2
    dir="$work/$name"
    "$@" "$tokdrop" train "$cfg" $common --set train.steps=100000 --set "run.dir=$dir" \
        > "$work/$name.log" 2>&1 &
    pid=$!
    wait_for_steps "$work/$name.log" || { cat "$work/$name.log"; fail "$name: no training steps in the log"; }
    kill -$sig $pid
    wait $pid
    rc=$?
    pid=""
    [ "$rc" = 75 ] || { cat "$work/$name.log"; fail "$name: SIG$sig gave exit $rc, expected 75"; }
    stopped=$(sed -n 's/.*stopped by SIG[A-Z0-9]* after step \([0-9]*\);.*/\1/p' "$work/$name.log")
    [ -n "$stopped" ] || { cat "$work/$name.log"; fail "$name: no 'stopped by' line"; }
    [ -f "$dir/checkpoints/$(printf 'ckpt-%08d.h5' "$stopped")" ] ||
        { ls "$dir/checkpoints"; fail "$name: no checkpoint at the stopped step $stopped"; }
    [ "$(tail -n 1 "$dir/metrics.jsonl" | sed 's/{"step": \([0-9]*\),.*/\1/')" = "$stopped" ] ||
        fail "$name: metrics.jsonl does not end at step $stopped"

    target=$((stopped + 5))
    "$@" "$tokdrop" train "$cfg" $common --set train.steps=$target --set "run.dir=$dir" \
        > "$work/${name}_again.log" 2>&1 || { cat "$work/${name}_again.log"; fail "$name: second invocation"; }
    grep -q "resuming from .*(step $stopped)" "$work/${name}_again.log" ||
        { cat "$work/${name}_again.log"; fail "$name: did not resume from step $stopped"; }
    "$@" "$tokdrop" train "$cfg" $common --set train.steps=$target --set "run.dir=$work/${name}_straight" \
        > "$work/${name}_straight.log" 2>&1 || { cat "$work/${name}_straight.log"; fail "$name: uninterrupted run"; }
    /usr/bin/python3 - "$dir" "$work/${name}_straight" "$target" <<'PY' || fail "$name: resumed run differs"
import json, sys, h5py, numpy as np
a_dir, b_dir, target = sys.argv[1], sys.argv[2], int(sys.argv[3])
a = [json.loads(l) for l in open(a_dir + "/metrics.jsonl")]
b = [json.loads(l) for l in open(b_dir + "/metrics.jsonl")]
assert [r["step"] for r in a] == list(range(1, target + 1)), "steps of the stopped and resumed run"
assert len(b) == target
for x, y in zip(a, b):
    for k in ("loss", "mlm_loss", "nsp_loss", "mlm_acc", "grad_norm", "lr"):
        assert x[k] == y[k], (x["step"], k, x[k], y[k])
name = "/checkpoints/ckpt-%08d.h5" % target
with h5py.File(a_dir + name) as f, h5py.File(b_dir + name) as g:
    for grp in ("param", "optim/m", "optim/v"):
        for n in f[grp]:
            assert np.array_equal(f[grp][n][()], g[grp][n][()]), (grp, n)
    assert np.array_equal(f["importance"][()], g["importance"][()])
PY
    echo "stop_signal: $name: SIG$sig -> exit 75 at step $stopped, resumed to $target bit-identical"
}

stop_case plain_term TERM
stop_case plain_usr1 USR1
stop_case mpirun_usr1 USR1 "$mpiexec" -n 2
stop_case wrapped_term TERM sh "$src/cluster/term-to-usr1.sh" "$mpiexec" -n 2
grep -q "Forwarding signal 10" "$work/wrapped_term.log" || fail "wrapped_term: mpirun did not get SIGUSR1"
echo "stop_signal: all checks passed"
