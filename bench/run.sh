#!/bin/sh
# make bench: GEMM throughput, bert-small and bert-base step times in fp32
# and bf16 against PyTorch (bench/precision.sh), data-parallel scaling;
# written as JSON to bench/results/. Timings, not tests: nothing here
# passes or fails on speed.
#   bench/run.sh BUILD_DIR [THREADS]
# PRECISION_REPEATS (default 2) and PRECISION_MODELS ("small base") shorten
# the precision part (about 14 minutes as it is); REPEATS the scaling part;
# NET=0 skips the network part (bench/net.sh, about 10 minutes), whose
# NET_REPEATS and NET_SCALING_REPEATS shorten it; DATA=0 skips the data
# time share of bert-mini streaming cold shards (bench/data_share.sh, about
# 4 minutes).
set -eu
build=${1:-build}
threads=${2:-1}
here=$(cd "$(dirname "$0")" && pwd)
out="$here/results"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
host=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)

echo "bench: GEMM throughput ($threads thread), fp32 and bf16" >&2
"$build/td-bench-gemm" "$threads" fp32 > "$work/gemm.json"
"$build/td-bench-gemm" "$threads" bf16 > "$work/gemm_bf16.json" || echo null > "$work/gemm_bf16.json"

echo "bench: synthetic shard (bert-base vocab, seq 128)" >&2
/usr/bin/python3 "$here/make_shard.py" "$work/shard.h5" 64 128 20 30522

echo "bench: bf16 and fp32, tokdrop and PyTorch, bert-small and bert-base (bench/precision.sh)" >&2
precision=$("$here/precision.sh" "$build" "$work/shard.h5" "$threads" "${PRECISION_REPEATS:-2}")

echo "bench: bert-mini data-parallel scaling, 1 -> 2 ranks" >&2
scaling=$("$here/scaling.sh" "$build" "$work/shard.h5" 30522 2)

data_share=null
if [ "${DATA:-1}" != 0 ]; then
    echo "bench: the data time share, bert-mini streaming shards from a cold page cache (bench/data_share.sh)" >&2
    data_share=$("$here/data_share.sh" "$build")
fi

network=null
if [ "${NET:-1}" != 0 ]; then
    echo "bench: the network path: bert-base allreduce over TCP and shared memory, overlap (bench/net.sh)" >&2
    network=$("$here/net.sh" "$build" "$threads")
fi

stamp=$(date -u +%Y%m%dT%H%M%SZ)
file="$out/bench-$stamp.json"
cat > "$file" <<JSON
{
  "date": "$stamp",
  "cpu": "$host",
  "threads": $threads,
  "gemm": $(cat "$work/gemm.json"),
  "gemm_bf16": $(cat "$work/gemm_bf16.json"),
  "precision": $precision,
  "scaling": $scaling,
  "data_share": $data_share,
  "network": $network
}
JSON
cat "$file"
echo "bench: wrote $file" >&2
