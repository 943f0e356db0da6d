#!/bin/sh
# The data time share of a training step when the shards come from disk:
# bert-mini (vocab 30522, seq 128, micro-batch 32, 1 rank) streams 12
# shards of 4000 sequences through a 2 MiB window (about 1750 sequences,
# so a new window is read every ~55 steps, by the background thread while
# the steps run). Before the run the shards leave the page cache: all of
# it is dropped where we may (root), else each file's pages are evicted
# with posix_fadvise(DONTNEED). The share is the sum of metrics.jsonl's
# time_data over the sum of step times, every step logged.
# Prints one JSON object. Target (issue 8): < 2% of the step.
#   bench/data_share.sh BUILD_DIR [STEPS]
set -eu
build=$1
steps=${2:-300}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/shards"
for i in $(seq -w 0 11); do
    /usr/bin/python3 "$here/make_shard.py" "$work/shards/shard_$i.h5" 4000 128 20 30522
done
sync
if (echo 3 > /proc/sys/vm/drop_caches) 2>/dev/null; then
    cold="page cache dropped (/proc/sys/vm/drop_caches)"
else
    /usr/bin/python3 - "$work"/shards/*.h5 <<'PY'
import os, sys
for p in sys.argv[1:]:
    fd = os.open(p, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
PY
    cold="files evicted with posix_fadvise(DONTNEED)"
fi
OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX} "$build/tokdrop" train "$root/configs/bert-mini.yaml" \
    --set "data.train=$work/shards/*.h5" --set data.eval= --set model.vocab= \
    --set data.memory_mb=2 --set train.steps="$steps" --set train.threads=1 \
    --set run.log_every=1 --set run.checkpoint_every=0 --set "run.dir=$work/run" 2> "$work/log" ||
    { cat "$work/log" >&2; exit 1; }
/usr/bin/python3 - "$work/run/metrics.jsonl" "$steps" "$cold" "$(sed -n 's/.*precision \([a-z0-9]*\):.*/\1/p' "$work/log" | head -n 1)" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
steps, cold, precision = int(sys.argv[2]), sys.argv[3], sys.argv[4]
assert len(rows) == steps, (len(rows), steps)
step_time = sum(32 / r["seq_per_s"] for r in rows)
data_time = sum(r["time_data"] for r in rows)
worst = max(rows, key=lambda r: r["time_data"])
print(json.dumps({
    "model": "bert-mini", "seq_len": 128, "micro_batch": 32, "ranks": 1, "threads": 1,
    "precision": precision, "steps": steps, "shards": 12, "sequences": 48000,
    "memory_mb": 2, "cold": cold,
    "step_s_mean": round(step_time / steps, 4),
    "data_s_total": round(data_time, 4),
    "data_share": round(data_time / step_time, 5),
    "data_s_max_step": round(worst["time_data"], 4), "data_max_at_step": worst["step"],
}))
PY
