#!/bin/sh
# Non-finite steps (train.max_bad_steps, SPEC section 8):
#  1. a real divergence (optimizer.lr 1e6, then 100): the first non-finite
#     step and the next ones are skipped and logged (metrics.jsonl rows with
#     "skipped": true), the third in a row stops the run with status 1 and a
#     message; the checkpoint written just before them, which led straight
#     to them, is set aside as *.diverged, so that a rerun with a sane lr
#     resumes from the last good one (or starts over when there is none);
#  2. a NaN on one of 2 ranks for one step (TOKDROP_FAULT=nan:1:5:1): every
#     rank skips step 5 alike and the run ends normally, with each step in
#     metrics.jsonl once; resumed from the checkpoint after the skipped
#     step, it ends bit-identical to the uninterrupted run (the skipped step
#     counts in the learning-rate schedule and in LAMB's t both ways);
#  3. three NaN steps in a row on 2 ranks stop the run at the third, with
#     no checkpoint written during them.
#   divergence.sh TOKDROP MPIEXEC SOURCE_DIR WORKDIR
set -u
tokdrop=$1
mpiexec=$2
src=$3
work=$4
. "$src/tests/cli/common.sh"
cfg="$work/fx/configs/b.yaml"

# rows_check RUN_DIR EXPECTED_SKIPPED_STEPS(comma list) LAST_STEP: every step
# from 1 to LAST_STEP once, "skipped" true exactly on the given ones, with
# a null loss or gradient norm
rows_check() {
    /usr/bin/python3 - "$@" <<'PY'
import json, sys
d, skipped, last = sys.argv[1], {int(s) for s in sys.argv[2].split(",") if s}, int(sys.argv[3])
rows = [json.loads(l) for l in open(d + "/metrics.jsonl")]
assert [r["step"] for r in rows] == list(range(1, last + 1)), [r["step"] for r in rows]
got = {r["step"] for r in rows if r["skipped"]}
assert got == skipped, (got, skipped)
for r in rows:
    if r["skipped"]:
        assert r["loss"] is None or r["grad_norm"] is None, r
PY
}

# 1. real divergence; $1 the learning rate
diverge() {
    lr=$1
    d="$work/lr$lr"
    "$tokdrop" train "$cfg" --set optimizer.lr=$lr --set optimizer.warmup_steps=0 --set run.log_every=1 \
        --set run.checkpoint_every=1 --set run.keep_checkpoints=1 --set train.steps=20 \
        --set "run.dir=$d" > "$d.log" 2>&1
    rc=$?
    [ "$rc" = 1 ] || { cat "$d.log"; fail "lr $lr: exit $rc, expected 1"; }
    # the first skipped step b: b, b+1, b+2 skipped, stopped after b+2
    b=$(/usr/bin/python3 -c "import json,sys; print(min(r['step'] for r in map(json.loads, open(sys.argv[1])) if r['skipped']))" "$d/metrics.jsonl") ||
        { cat "$d.log"; fail "lr $lr: no skipped step in metrics.jsonl"; }
    rows_check "$d" "$b,$((b + 1)),$((b + 2))" $((b + 2)) || { cat "$d.log"; fail "lr $lr: metrics rows"; }
    grep -q "step $b: loss .*not finite, update skipped (1 of at most 3 in a row)" "$d.log" ||
        { cat "$d.log"; fail "lr $lr: no message on the skipped step"; }
    grep -q "stopping after step $((b + 2)): 3 steps in a row .* not finite (train.max_bad_steps)" "$d.log" ||
        { cat "$d.log"; fail "lr $lr: no stop message"; }
    aside=$(printf 'ckpt-%08d.h5.diverged' $((b - 1)))
    grep -q "set aside as .*$aside" "$d.log" && [ -f "$d/checkpoints/$aside" ] ||
        { ls "$d/checkpoints"; cat "$d.log"; fail "lr $lr: $aside not set aside"; }
    # what is left: the checkpoint of step b - 2 alone (none when b is 2)
    left=$(cd "$d/checkpoints" && ls ckpt-*.h5 2>/dev/null)
    want=$([ "$b" -gt 2 ] && printf 'ckpt-%08d.h5' $((b - 2)))
    [ "$left" = "$want" ] || { ls "$d/checkpoints"; fail "lr $lr: checkpoints left '$left', expected '$want'"; }
    # a rerun with a sane learning rate goes on from there: from the start
    # it trains; from step b - 2 (finite, but lr 100 has already blown the
    # weights up by then) only where it resumes is checked
    "$tokdrop" train "$cfg" --set optimizer.lr=0.01 --set run.checkpoint_every=1 --set run.keep_checkpoints=1 \
        --set train.steps=20 --set "run.dir=$d" > "$d.rerun.log" 2>&1
    rc=$?
    if [ -n "$want" ]; then
        grep -q "resuming from .*$want (step $((b - 2)))" "$d.rerun.log" || { cat "$d.rerun.log"; fail "lr $lr: resume"; }
    else
        [ "$rc" = 0 ] && ! grep -q "resuming" "$d.rerun.log" || { cat "$d.rerun.log"; fail "lr $lr: rerun from the start"; }
    fi
    echo "lr $lr: steps $b-$((b + 2)) skipped, stopped; $aside set aside; rerun from '${want:-the start}'"
}
diverge 1e6
diverge 100

# 2. one bad step on rank 1 of 2
common="--set run.log_every=1 --set run.checkpoint_every=2 --set run.keep_checkpoints=10 --set train.steps=10"
TOKDROP_FAULT=nan:1:5:1 "$mpiexec" -n 2 "$tokdrop" train "$cfg" $common --set "run.dir=$work/once" \
    > "$work/once.log" 2>&1 || { cat "$work/once.log"; fail "one NaN step: the run failed"; }
rows_check "$work/once" 5 10 || { cat "$work/once.log"; fail "one NaN step: metrics rows"; }
grep -q "no checkpoint" "$work/once.log" && fail "one NaN step: a checkpoint was refused"
mkdir -p "$work/resumed/checkpoints"
cp "$work/once/checkpoints/ckpt-00000006.h5" "$work/resumed/checkpoints/"
"$mpiexec" -n 2 "$tokdrop" train "$cfg" $common --set "run.dir=$work/resumed" > "$work/resumed.log" 2>&1 ||
    { cat "$work/resumed.log"; fail "resume after the skipped step"; }
/usr/bin/python3 - "$work" <<'PY' || fail "the resumed run differs"
import json, sys, h5py, numpy as np
w = sys.argv[1]
a = [json.loads(l) for l in open(w + "/once/metrics.jsonl")][6:]
b = [json.loads(l) for l in open(w + "/resumed/metrics.jsonl")]
assert [r["step"] for r in b] == list(range(7, 11)), [r["step"] for r in b]
for x, y in zip(a, b):
    for k in ("loss", "lr", "grad_norm"):
        assert x[k] == y[k], (x["step"], k, x[k], y[k])
with h5py.File(w + "/once/checkpoints/ckpt-00000010.h5") as f, h5py.File(w + "/resumed/checkpoints/ckpt-00000010.h5") as g:
    for grp in ("param", "optim/m", "optim/v"):
        for n in f[grp]:
            assert np.array_equal(f[grp][n][()], g[grp][n][()]), (grp, n)
    assert np.array_equal(f["importance"][()], g["importance"][()])
PY
echo "one NaN step on rank 1: skipped by both ranks; resumed after it, bit-identical"

# 3. three in a row on 2 ranks
TOKDROP_FAULT=nan:0:5:3 "$mpiexec" -n 2 "$tokdrop" train "$cfg" $common --set run.keep_checkpoints=1 \
    --set "run.dir=$work/three" > "$work/three.log" 2>&1
rc=$?
[ "$rc" = 1 ] || { cat "$work/three.log"; fail "three NaN steps: exit $rc, expected 1"; }
rows_check "$work/three" 5,6,7 7 || { cat "$work/three.log"; fail "three NaN steps: metrics rows"; }
grep -q "no checkpoint at step 6: the last 2 steps were not finite" "$work/three.log" ||
    { cat "$work/three.log"; fail "three NaN steps: no message on the refused checkpoint"; }
left=$(cd "$work/three/checkpoints" && ls)
[ "$left" = "ckpt-00000002.h5
ckpt-00000004.h5.diverged" ] || fail "three NaN steps: checkpoints left: $left"
echo "divergence: all checks passed"
