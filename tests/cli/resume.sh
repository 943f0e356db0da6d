#!/bin/sh
# Checkpoints and resume (SPEC sections 4 and 6):
#  1. a run that crashed after step 15 with only its step-10 checkpoint
#     (and a torn last metrics line) is run again: it resumes by itself,
#     drops the metrics and eval rows past step 10 and equals 20
#     uninterrupted steps bit for bit (metrics, eval, parameters), in fp32,
#     bf16 where the CPU runs it, on 2 MPI ranks over TCP on loopback and on
#     4 ranks (oversubscribed), and under each token_drop.schedule; a
#     ramp that has reached seq_len equals the model without dropping;
#  2. running a finished run again says so and changes nothing;
#  3. a corrupt newest checkpoint is reported and the one before is used;
#  4. tokdrop eval on a checkpoint prints the evaluation JSON;
#  5. it gives the run's own eval.jsonl figures on 1 and on 2 ranks.
# Stop signals: stop_signal.sh.
#   resume.sh TOKDROP MPIEXEC SOURCE_DIR WORKDIR
set -u
tokdrop=$1
mpiexec=$2
src=$3
work=$4
. "$src/tests/cli/common.sh"
cfg="$work/fx/configs/b.yaml"
common="--set model.hidden_dropout=0.1 --set model.attention_dropout=0.1 --set run.log_every=1
        --set train.micro_batch=4 --set run.keep_checkpoints=3
        --set data.eval=$work/fx/train/*.h5 --set run.eval_every=5"
# Open MPI forced onto TCP over loopback (the network path between nodes)
tcp="--mca pml ob1 --mca btl tcp,self --mca btl_tcp_if_include lo"

# 1. $launch (empty: no launcher) runs every invocation
resume_case() { # name, extra tokdrop arguments
    name=$1
    shift
    $launch "$tokdrop" train "$cfg" $common --set train.steps=20 --set run.checkpoint_every=10 \
        --set "run.dir=$work/straight$name" "$@" 2> "$work/straight$name.log" ||
        { cat "$work/straight$name.log"; fail "straight run $name"; }
    mkdir -p "$work/split$name/checkpoints"
    cp "$work/straight$name/checkpoints/ckpt-00000010.h5" "$work/split$name/checkpoints/"
    head -n 15 "$work/straight$name/metrics.jsonl" > "$work/split$name/metrics.jsonl"
    printf '{"step": 16, "loss": 1.2' >> "$work/split$name/metrics.jsonl"
    head -n 3 "$work/straight$name/eval.jsonl" > "$work/split$name/eval.jsonl"
    $launch "$tokdrop" train "$cfg" $common --set train.steps=20 --set run.checkpoint_every=10 \
        --set "run.dir=$work/split$name" "$@" 2> "$work/resume$name.log" ||
        { cat "$work/resume$name.log"; fail "resumed run $name"; }
    grep -q "resuming from .*ckpt-00000010.h5 (step 10)" "$work/resume$name.log" ||
        { cat "$work/resume$name.log"; fail "no resume message"; }
    grep -q "metrics.jsonl: dropped 6 rows past step 10" "$work/resume$name.log" &&
        grep -q "eval.jsonl: dropped 1 row past step 10" "$work/resume$name.log" ||
        { cat "$work/resume$name.log"; fail "no message on the dropped rows"; }
    /usr/bin/python3 - "$work" "$name" <<'PY' || fail "resumed run $name differs"
import json, sys, h5py, numpy as np
w, name = sys.argv[1], sys.argv[2]
a = [json.loads(l) for l in open(w + "/straight%s/metrics.jsonl" % name)]
b = [json.loads(l) for l in open(w + "/split%s/metrics.jsonl" % name)]
assert [r["step"] for r in b] == list(range(1, 21)), [r["step"] for r in b]
for x, y in zip(a, b):
    for k in ("loss", "mlm_loss", "nsp_loss", "grad_norm", "lr"):
        assert x[k] == y[k], (x["step"], k, x[k], y[k])
a = [json.loads(l) for l in open(w + "/straight%s/eval.jsonl" % name)]
b = [json.loads(l) for l in open(w + "/split%s/eval.jsonl" % name)]
assert [r["step"] for r in b] == [5, 10, 15, 20], [r["step"] for r in b]
for x, y in zip(a, b):
    for k in ("sequences", "mlm_loss", "mlm_acc", "nsp_loss", "nsp_acc"):
        assert x[k] == y[k], ("eval", x["step"], k, x[k], y[k])
with h5py.File(w + "/straight%s/checkpoints/ckpt-00000020.h5" % name) as f, h5py.File(w + "/split%s/checkpoints/ckpt-00000020.h5" % name) as g:
    for grp in ("param", "optim/m", "optim/v"):
        for n in f[grp]:
            assert np.array_equal(f[grp][n][()], g[grp][n][()]), (grp, n)
    assert np.array_equal(f["importance"][()], g["importance"][()])
print("resume at step 10%s: 20 steps bit-identical to the uninterrupted run, rows past step 10 redone once" % name)
PY
}
launch=""
resume_case ""
if bf16_available; then
    resume_case "_bf16" --set train.precision=bf16
    grep -q "precision: bf16" "$work/straight_bf16/config.yaml" || fail "resolved config lacks precision bf16"
else
    echo "resume: bf16 case not run: $bf16_why"
fi
launch="$mpiexec -n 2 $tcp"
resume_case "_tcp2" --set train.threads=1
launch="$mpiexec -n 4"
resume_case "_np4" --set train.threads=1
launch=""
# under each keep schedule (the fixture's seq_len is 16): the ramp grows
# 2 -> 8 -> 16 (full from step 15), interleave runs every 3rd step full,
# constant ends with 5 full steps; the resume at step 10 falls inside each
resume_case "_ramp" --set token_drop.keep=2 --set token_drop.schedule=ramp --set token_drop.ramp_steps=14
resume_case "_interleave" --set token_drop.schedule=interleave --set token_drop.full_every=3
resume_case "_full_last" --set token_drop.full_last_steps=5
/usr/bin/python3 - "$work" <<'PY' || fail "metrics do not follow the keep schedule"
import json, sys
w = sys.argv[1]
expect = {
    "_ramp": lambda t: 16 if t >= 15 else 8 if t >= 7 else 2,
    "_interleave": lambda t: 16 if t % 3 == 0 else 8,
    "_full_last": lambda t: 16 if t > 15 else 8,
}
for name, keep in expect.items():
    for r in map(json.loads, open(w + "/split%s/metrics.jsonl" % name)):
        k = keep(r["step"])
        assert r["kept_fraction"] == k / 16 and r["mode"] == ("full" if k == 16 else "drop"), (name, r)
print("schedules: every step's mode and kept_fraction follow ramp, interleave and full_last_steps")
PY
# the importance table learns on full steps too: step 2 of interleave 2 is full
"$tokdrop" train "$cfg" $common --set token_drop.schedule=interleave --set token_drop.full_every=2 \
    --set train.steps=2 --set run.checkpoint_every=1 --set "run.dir=$work/imp" 2> "$work/imp.log" ||
    { cat "$work/imp.log"; fail "interleave run of 2 steps"; }
/usr/bin/python3 - "$work" <<'PY' || fail "the importance table did not change on a full step"
import json, sys, h5py, numpy as np
w = sys.argv[1]
assert [json.loads(l)["mode"] for l in open(w + "/imp/metrics.jsonl")] == ["drop", "full"]
a = h5py.File(w + "/imp/checkpoints/ckpt-00000001.h5")["importance"][()]
b = h5py.File(w + "/imp/checkpoints/ckpt-00000002.h5")["importance"][()]
assert (a != b).sum() > 0
print("importance: %d entries updated by the full step 2" % (a != b).sum())
PY
# a ramp that has reached seq_len is the full model: from a ramp run's step
# 10 checkpoint (full since step 7), 10 steps without token dropping give
# the ramp run's step 20 parameters and moments bit for bit
ramp="--set token_drop.keep=2 --set token_drop.schedule=ramp --set token_drop.ramp_steps=6"
"$tokdrop" train "$cfg" $common $ramp --set train.steps=20 --set run.checkpoint_every=10 \
    --set "run.dir=$work/ramp6" 2> "$work/ramp6.log" || { cat "$work/ramp6.log"; fail "ramp run"; }
mkdir -p "$work/nodrop/checkpoints"
cp "$work/ramp6/checkpoints/ckpt-00000010.h5" "$work/nodrop/checkpoints/"
"$tokdrop" train "$cfg" $common --set token_drop.enabled=false --set train.steps=20 \
    --set run.checkpoint_every=10 --set "run.dir=$work/nodrop" 2> "$work/nodrop.log" ||
    { cat "$work/nodrop.log"; fail "run without dropping from the ramp's checkpoint"; }
/usr/bin/python3 - "$work" <<'PY' || fail "a ramp at seq_len differs from the full model"
import sys, h5py, numpy as np
w = sys.argv[1]
with h5py.File(w + "/ramp6/checkpoints/ckpt-00000020.h5") as f, h5py.File(w + "/nodrop/checkpoints/ckpt-00000020.h5") as g:
    n = 0
    for grp in ("param", "optim/m", "optim/v"):
        for k in f[grp]:
            assert np.array_equal(f[grp][k][()], g[grp][k][()]), (grp, k)
            n += 1
print("ramp at seq_len: steps 11-20 equal the model without token dropping (%d tensors bit-identical)" % n)
PY

# 2. a finished run, run again: exit 0, says so, touches nothing
cp -r "$work/straight" "$work/finished_before"
"$tokdrop" train "$cfg" $common --set train.steps=20 --set "run.dir=$work/straight" 2> "$work/finished.log" ||
    { cat "$work/finished.log"; fail "finished run: exit non-zero"; }
grep -q "is finished: step 20 of train.steps 20, checkpoint .*straight/checkpoints/ckpt-00000020.h5" "$work/finished.log" ||
    { cat "$work/finished.log"; fail "finished run: no message naming step and checkpoint"; }
diff -r "$work/finished_before" "$work/straight" || fail "finished run: the run directory changed"
grep -q "step 21/\|step 1/" "$work/finished.log" && fail "finished run: trained"

# 3. corrupt newest checkpoint
"$tokdrop" train "$cfg" $common --set train.steps=6 --set run.checkpoint_every=3 --set "run.dir=$work/bad" 2>/dev/null || fail "bad run"
/usr/bin/python3 - "$work/bad/checkpoints/ckpt-00000006.h5" <<'PY'
import os, sys
p = sys.argv[1]
n = os.path.getsize(p)
with open(p, "r+b") as f:
    f.seek(n // 2)
    f.write(b"\xff" * 64)
PY
"$tokdrop" train "$cfg" $common --set train.steps=7 --set "run.dir=$work/bad" 2> "$work/bad.log" || { cat "$work/bad.log"; fail "resume past a corrupt checkpoint"; }
grep -q "ckpt-00000006.h5" "$work/bad.log" && grep -q "(step 3)" "$work/bad.log" || { cat "$work/bad.log"; fail "corrupt checkpoint not reported or not skipped"; }

# 4. eval
"$tokdrop" eval "$cfg" --checkpoint "$work/straight/checkpoints/ckpt-00000020.h5" \
    --set "data.eval=$work/fx/train/*.h5" --set run.eval_batches=4 > "$work/eval.json" 2> "$work/eval.log" || { cat "$work/eval.log"; fail "eval"; }
/usr/bin/python3 -c "
import json, sys
r = json.load(open(sys.argv[1]))
assert r['sequences'] == 16 and 0 <= r['mlm_acc'] <= 1 and r['mlm_loss'] > 0, r
" "$work/eval.json" || { cat "$work/eval.json"; fail "eval output"; }
# 5. the evaluation set is fixed whatever the rank count: a 2-rank run's
#    eval.jsonl at steps 3 and 6 is what tokdrop eval gives on those
#    checkpoints on 1 and on 2 ranks (15 sequences: 8 + 7 on 2 ranks)
evalset="--set data.eval=$work/fx/train/*.h5 --set run.eval_batches=3 --set train.micro_batch=5"
$mpiexec -n 2 "$tokdrop" train "$cfg" $evalset --set train.steps=6 --set run.eval_every=3 \
    --set run.checkpoint_every=3 --set run.keep_checkpoints=2 --set "run.dir=$work/evalrun" \
    2> "$work/evalrun.log" || { cat "$work/evalrun.log"; fail "2-rank run with evaluation"; }
for step in 3 6; do
    ck="$work/evalrun/checkpoints/ckpt-0000000$step.h5"
    "$tokdrop" eval "$cfg" $evalset --checkpoint "$ck" > "$work/eval1_$step.json" 2>/dev/null ||
        fail "eval on 1 rank at step $step"
    $mpiexec -n 2 "$tokdrop" eval "$cfg" $evalset --checkpoint "$ck" > "$work/eval2_$step.json" \
        2>/dev/null || fail "eval on 2 ranks at step $step"
done
/usr/bin/python3 - "$work" <<'PY' || fail "tokdrop eval differs from the run's eval.jsonl"
import json, sys
w = sys.argv[1]
rows = {r["step"]: r for r in map(json.loads, open(w + "/evalrun/eval.jsonl"))}
assert sorted(rows) == [3, 6], sorted(rows)
worst = 0.0
for step in (3, 6):
    for ranks in (1, 2):
        e = json.loads(open("%s/eval%d_%d.json" % (w, ranks, step)).read())
        assert e["sequences"] == rows[step]["sequences"] == 15, (e, rows[step])
        for k in ("mlm_loss", "mlm_acc", "nsp_loss", "nsp_acc"):
            a, b = e[k], rows[step][k]
            rel = abs(a - b) / max(abs(b), 1e-12)
            worst = max(worst, rel)
            assert rel < 1e-5, (step, ranks, k, a, b)
print("eval: tokdrop eval on 1 and 2 ranks matches the run's eval.jsonl at steps 3 and 6 "
      "(15 sequences; worst relative difference %.1e)" % worst)
PY
echo "resume: all checks passed"
