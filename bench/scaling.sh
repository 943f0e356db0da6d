#!/bin/sh
# Data-parallel scaling (1 thread per rank): throughput on 1 and N ranks
# with the same micro-batch per rank, and the share of the
# gradient allreduce hidden behind the backward. The N-rank runs use
# train.allreduce=alternate: odd steps reduce during the backward, even
# steps after it, so both see the same machine noise (on a shared VM that
# noise moves whole runs by 20%). hidden share = 1 - exposed allreduce
# time of the overlapped steps / allreduce time of the blocking steps
# (medians). 1-rank and N-rank runs are interleaved REPEATS times. Prints JSON.
#   bench/scaling.sh BUILD_DIR SHARDS_GLOB VOCAB_SIZE [RANKS]
# Environment: MODEL (bert-mini), MICRO_BATCH (32), STEPS (32, even: half
# the steps overlap), PRECISION (fp32), REPEATS (2), MPI_ARGS (extra mpirun
# arguments, e.g. the transport: --mca pml ob1 --mca btl tcp,self
# --mca btl_tcp_if_include lo).
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
model=${MODEL:-bert-mini}
micro_batch=${MICRO_BATCH:-32}
steps=${STEPS:-32}
repeats=${REPEATS:-2}

run() { # name, ranks
    # shellcheck disable=SC2086
    mpirun -n "$2" --bind-to core ${MPI_ARGS:-} "$build/tokdrop" train \
        "$here/../configs/$model.yaml" \
        --set model.vocab= --set "model.vocab_size=$vocab_size" --set "data.train=$shards" \
        --set data.eval= --set train.steps=$steps --set train.micro_batch=$micro_batch --set train.threads=1 \
        --set "train.precision=${PRECISION:-fp32}" --set train.allreduce=alternate \
        --set run.log_every=1 --set run.checkpoint_every=0 --set "run.dir=$work/$1" 2> "$work/$1.log" ||
        { cat "$work/$1.log" >&2; exit 1; }
}
for r in $(seq "$repeats"); do
    run "one-$r" 1
    run "many-$r" "$ranks"
done
/usr/bin/python3 - "$work" "$ranks" "$repeats" "$model" "$micro_batch" "${PRECISION:-fp32}" "${MPI_ARGS:-}" <<'PY'
import json, statistics, sys
work, ranks, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
model, micro_batch, precision, mpi_args = sys.argv[4], int(sys.argv[5]), sys.argv[6], sys.argv[7]
med = statistics.median
def rows(name):
    return [json.loads(l) for l in open("%s/%s/metrics.jsonl" % (work, name))][2:]  # warm-up
runs = []
for r in range(1, repeats + 1):
    one, many = rows("one-%d" % r), rows("many-%d" % r)
    ov = [x for x in many if x["step"] % 2 == 1]
    bl = [x for x in many if x["step"] % 2 == 0]
    m = lambda xs, k: round(med(x[k] for x in xs), 4)
    run = {"one_rank_seq_per_s": m(one, "seq_per_s"),
           "n_ranks_seq_per_s_overlapped": m(ov, "seq_per_s"),
           "n_ranks_seq_per_s_blocking": m(bl, "seq_per_s"),
           "allreduce_s_overlapped_exposed": m(ov, "time_allreduce"),
           "allreduce_s_blocking": m(bl, "time_allreduce"),
           "backward_s_overlapped": m(ov, "time_backward"),
           "backward_s_blocking": m(bl, "time_backward")}
    run["speedup"] = round(run["n_ranks_seq_per_s_overlapped"] / run["one_rank_seq_per_s"], 3)
    run["allreduce_hidden_share"] = round(1 - run["allreduce_s_overlapped_exposed"] /
                                          run["allreduce_s_blocking"], 3)
    runs.append(run)
print(json.dumps({"model": model, "micro_batch_per_rank": micro_batch, "threads_per_rank": 1,
                  "precision": precision, "mpi_args": mpi_args,
                  "ranks": ranks, "runs": runs,
                  "speedup_median": med(r["speedup"] for r in runs),
                  "efficiency_median": round(med(r["speedup"] for r in runs) / ranks, 3),
                  "allreduce_hidden_share_median": med(r["allreduce_hidden_share"] for r in runs)},
                 indent=1))
PY
