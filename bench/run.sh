#!/bin/sh
# make bench: GEMM throughput and BERT-base step times, written as JSON to
# bench/results/. Timings, not tests: nothing here passes or fails on speed.
#   bench/run.sh BUILD_DIR [THREADS]
set -eu
build=${1:-build}
threads=${2:-1}
here=$(cd "$(dirname "$0")" && pwd)
out="$here/results"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
host=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)

echo "bench: GEMM throughput ($threads thread)" >&2
"$build/td-bench-gemm" "$threads" > "$work/gemm.json"

echo "bench: synthetic shard (bert-base vocab, seq 128)" >&2
/usr/bin/python3 "$here/make_shard.py" "$work/shard.h5" 64 128 20 30522

# One step of bert-base at micro-batch 8 takes seconds on one core: time
# steps 2..STEPS (step 1 pays first-touch page faults) and take the median.
steps=5
step_time() { # name, extra --set arguments
    name=$1
    shift
    "$build/tokdrop" train "$here/../configs/bert-base.yaml" \
        --set model.vocab= --set "data.train=$work/shard.h5" --set data.eval= \
        --set train.steps=$steps --set train.micro_batch=8 --set "train.threads=$threads" \
        --set model.hidden_dropout=0.1 --set run.log_every=1 --set "run.dir=$work/$name" \
        "$@" 2> "$work/$name.log" || { cat "$work/$name.log" >&2; exit 1; }
    /usr/bin/python3 - "$work/$name/metrics.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])][1:]
keys = ["time_forward", "time_backward", "time_allreduce", "time_optimizer", "time_data"]
total = statistics.median(8 / r["seq_per_s"] for r in rows)
split = {k: round(statistics.median(r[k] for r in rows), 3) for k in keys}
print(json.dumps({"step_s": round(total, 3), "seq_per_s": round(8 / total, 2), **split}))
PY
}
echo "bench: bert-base step, no dropping" >&2
full=$(step_time full)
echo "bench: bert-base step, token dropping keep 64" >&2
drop=$(step_time drop --set token_drop.enabled=true --set token_drop.keep=64 \
       --set 'token_drop.allow=[0,1,2,3]' --set 'token_drop.deny=[]')

echo "bench: bert-mini data-parallel scaling, 1 -> 2 ranks" >&2
scaling=$("$here/scaling.sh" "$build" "$work/shard.h5" 30522 2)

stamp=$(date -u +%Y%m%dT%H%M%SZ)
file="$out/bench-$stamp.json"
cat > "$file" <<JSON
{
  "date": "$stamp",
  "cpu": "$host",
  "threads": $threads,
  "gemm": $(cat "$work/gemm.json"),
  "bert_base_seq128_mb8": {
    "full": $full,
    "token_drop_keep64": $drop
  },
  "scaling": $scaling
}
JSON
cat "$file"
echo "bench: wrote $file" >&2
