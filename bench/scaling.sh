#!/bin/sh
# Data-parallel scaling on bert-mini (1 thread per rank): throughput on 1
# and N ranks with the same micro-batch per rank, and the share of the
# gradient allreduce hidden behind the backward (overlapped run against
# TOKDROP_ALLREDUCE=blocking). Prints JSON.
#   bench/scaling.sh BUILD_DIR SHARDS_GLOB VOCAB_SIZE [RANKS]
set -eu
build=$1
shards=$2
vocab_size=$3
ranks=${4:-2}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_rmaps_base_oversubscribe=1
steps=12

run() { # name, ranks, env...
    name=$1
    n=$2
    shift 2
    env "$@" mpirun -n "$n" --bind-to core "$build/tokdrop" train "$here/../configs/bert-mini.yaml" \
        --set model.vocab= --set "model.vocab_size=$vocab_size" --set "data.train=$shards" \
        --set data.eval= --set train.steps=$steps --set train.micro_batch=32 --set train.threads=1 \
        --set run.log_every=1 --set run.checkpoint_every=0 --set "run.dir=$work/$name" 2> "$work/$name.log" ||
        { cat "$work/$name.log" >&2; exit 1; }
    /usr/bin/python3 - "$work/$name/metrics.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])][2:]  # steps 1-2 warm up
print(json.dumps({k: round(statistics.median(r[k] for r in rows), 4)
                  for k in ("seq_per_s", "time_forward", "time_backward", "time_allreduce", "time_optimizer")}))
PY
}
one=$(run one 1 TOKDROP_ALLREDUCE=overlap)
many=$(run many "$ranks" TOKDROP_ALLREDUCE=overlap)
blocking=$(run blocking "$ranks" TOKDROP_ALLREDUCE=blocking)
/usr/bin/python3 - "$one" "$many" "$blocking" "$ranks" <<'PY'
import json, sys
one, many, blocking = (json.loads(a) for a in sys.argv[1:4])
ranks = int(sys.argv[4])
hidden = 1 - many["time_allreduce"] / blocking["time_allreduce"] if blocking["time_allreduce"] > 0 else None
print(json.dumps({"model": "bert-mini", "micro_batch_per_rank": 32, "threads_per_rank": 1, "ranks": ranks,
                  "one_rank": one, "n_ranks_overlapped": many, "n_ranks_blocking": blocking,
                  "speedup": round(many["seq_per_s"] / one["seq_per_s"], 3),
                  "efficiency": round(many["seq_per_s"] / one["seq_per_s"] / ranks, 3),
                  "allreduce_hidden_share": None if hidden is None else round(hidden, 3)}, indent=1))
PY
