#!/bin/sh
# The same global batch on 1 rank, on 1 rank in 2 micro-steps, and on 2 MPI
# ranks gives the same losses for 50 steps, up to float summation order
# (SPEC sections 1 and 4). The data set is exactly one global batch (two
# shard files of 8 sequences, G = 16), so every step's global batch is the
# whole data set whatever the split; token dropping, dropout (keyed by
# sample id) and the importance EMA are all on.
#   rank_invariance.sh TOKDROP MPIEXEC SOURCE_DIR WORKDIR
set -u
tokdrop=$1
mpiexec=$2
src=$3
work=$4
. "$src/tests/cli/common.sh"
/usr/bin/python3 "$src/tests/cli/split_shard.py" "$work/fx/train/shard_000.h5" "$work/split" || fail "split"

common="--set data.train=$work/split/*.h5 --set train.steps=50 --set run.log_every=1
        --set model.hidden_dropout=0.1 --set model.attention_dropout=0.1
        --set optimizer.warmup_steps=5 --set train.threads=1"
run() { # name, ranks, extra tokdrop args
    name=$1
    ranks=$2
    shift 2
    launch=""
    [ "$ranks" -gt 1 ] && launch="$mpiexec -n $ranks"
    $launch "$tokdrop" train "$work/fx/configs/b.yaml" $common --set "run.dir=$work/$name" "$@" \
        2> "$work/$name.log" || { cat "$work/$name.log" >&2; fail "$name run"; }
}
run one 1 --set train.micro_batch=16
run accum 1 --set train.micro_batch=8 --set train.accumulation=2
run two 2 --set train.micro_batch=8
# the gradients reduced after the backward on every other step (the
# benchmark's mode) must not change a step either
export TOKDROP_ALLREDUCE=alternate
run alternate 2 --set train.micro_batch=8
unset TOKDROP_ALLREDUCE

/usr/bin/python3 - "$work" <<'PY' || fail "losses differ"
import json, sys
w = sys.argv[1]
runs = {n: [json.loads(l) for l in open("%s/%s/metrics.jsonl" % (w, n))] for n in ("one", "accum", "two", "alternate")}
for n, rows in runs.items():
    assert len(rows) == 50, (n, len(rows))
worst = 0.0
for n in ("accum", "two", "alternate"):
    for a, b in zip(runs["one"], runs[n]):
        for k in ("loss", "mlm_loss", "nsp_loss"):
            rel = abs(a[k] - b[k]) / abs(a[k])
            worst = max(worst, rel)
            assert rel < 1e-5, (n, a["step"], k, a[k], b[k])
first, last = runs["one"][0]["loss"], runs["one"][-1]["loss"]
print("50 steps: loss %.4f -> %.4f; worst relative difference across splits %.2e" % (first, last, worst))
assert last < first
PY
echo "rank_invariance: passed"
