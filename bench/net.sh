#!/bin/sh
# The network path of bert-base (bench/README.md, "The network path"):
#   1. when the backward hands each gradient bucket over (td-bench-allreduce
#      schedule: bert-base/128, micro-batch 8, THREADS threads, one process);
#   2. the allreduce of the whole gradient and of tokdrop's buckets on 2
#      ranks, over TCP on the loopback interface and over shared memory
#      (td-bench-allreduce allreduce), with the overlap probe;
#   3. tokdrop itself on 1 and 2 ranks over both transports, half the steps
#      with the allreduce overlapped (bench/scaling.sh, train.allreduce=
#      alternate): the share of the allreduce hidden behind the backward;
# then the cost model for N nodes (bench/net_model.py) from the measured
# schedule. Prints one JSON object on stdout (and writes it to OUT.json
# when given), a summary and the cost-model tables on stderr.
#   bench/net.sh BUILD_DIR [THREADS [OUT.json]]       (make bench-net)
# Environment: NET_REPEATS (allreduce repeats, default 5), NET_SCALING_REPEATS
# (default 2; 0 skips part 3), NET_SCALING_STEPS (default 8).
set -eu
build=$1
threads=${2:-1}
out=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_rmaps_base_oversubscribe=1
if grep -q avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX; fi
prec=fp32
if grep -q avx512_bf16 /proc/cpuinfo || grep -q amx_bf16 /proc/cpuinfo; then prec=bf16; fi
config="$here/../configs/bert-base.yaml"
shard="$work/shard.h5"
/usr/bin/python3 "$here/make_shard.py" "$shard" 64 128 20 30522
tcp="--mca pml ob1 --mca btl tcp,self --mca btl_tcp_if_include lo"
shm="--mca pml ob1 --mca btl vader,self"

echo "net: bucket schedule of the bert-base backward ($prec, $threads thread)" >&2
"$build/td-bench-allreduce" "$config" schedule 8 "$threads" "$prec" 2 > "$work/schedule.json"

for t in tcp shm; do
    eval "args=\$$t"
    echo "net: allreduce of the bert-base gradient, 2 ranks, $t" >&2
    # shellcheck disable=SC2086
    mpirun -n 2 --bind-to core $args "$build/td-bench-allreduce" "$config" allreduce "${NET_REPEATS:-5}" \
        > "$work/allreduce_$t.json"
done

for t in tcp shm; do
    if [ "${NET_SCALING_REPEATS:-2}" -gt 0 ]; then
        eval "args=\$$t"
        echo "net: tokdrop bert-base on 1 and 2 ranks, $t, overlapped and blocking steps" >&2
        MODEL=bert-base MICRO_BATCH=8 STEPS=${NET_SCALING_STEPS:-8} PRECISION=$prec \
            REPEATS=${NET_SCALING_REPEATS:-2} MPI_ARGS="$args" \
            "$here/scaling.sh" "$build" "$shard" 30522 2 > "$work/scaling_$t.json"
    else
        echo null > "$work/scaling_$t.json"
    fi
done

/usr/bin/python3 - "$work" > "$work/net.json" <<'PY'
import json, subprocess, sys
w = sys.argv[1]
load = lambda n: json.load(open("%s/%s.json" % (w, n)))
out = {"cpu": subprocess.run(["lscpu"], capture_output=True, text=True).stdout.split("Model name:")[1]
              .split("\n")[0].strip(),
       "schedule": load("schedule"),
       "allreduce": {"tcp": load("allreduce_tcp"), "shm": load("allreduce_shm")},
       "tokdrop": {"tcp": load("scaling_tcp"), "shm": load("scaling_shm")}}
print(json.dumps(out, indent=1))
err = sys.stderr
s = out["schedule"]
print("net: backward %.3f s (forward %.3f s), heads ready at %.1f%%, last layer at %.1f%%" % (
    s["backward_s"], s["forward_s"], 100 * s["ready"][0]["t_s"] / s["backward_s"],
    100 * s["ready"][-2]["t_s"] / s["backward_s"]), file=err)
for t in ("tcp", "shm"):
    a = out["allreduce"][t]
    print("net: %s: latency %.1f us" % (t, a["latency_us"]), file=err)
    for r in a["single"]:
        print("net: %s: %-10s %7.1f MB %8.4f s  algbw %6.2f GB/s  busbw %6.2f GB/s" % (
            t, r["what"], r["bytes"] / 1e6, r["seconds"], r["algbw_gbs"], r["busbw_gbs"]), file=err)
    print("net: %s: %d buckets one by one %.4f s, all started at once %.4f s" % (
        t, len(a["buckets"]), a["buckets_blocking_s"], a["buckets_nonblocking_s"]), file=err)
    print("net: %s: layer bucket behind %.3f s of work, hidden share by poll interval: %s" % (
        t, a["overlap_probe"]["compute_s"],
        ", ".join("%s %.2f" % ("every %d ms" % r["poll_ms"] if r["poll_ms"] else "never", r["hidden_share"])
                  for r in a["overlap_probe"]["runs"])), file=err)
    k = out["tokdrop"][t]
    if k:
        print("net: %s: tokdrop 2 ranks: speedup %.2f, allreduce hidden share %.2f (runs: %s)" % (
            t, k["speedup_median"], k["allreduce_hidden_share_median"],
            "; ".join("blocking %.3f s, overlapped exposed %.3f s" % (r["allreduce_s_blocking"],
                                                                    r["allreduce_s_overlapped_exposed"])
                      for r in k["runs"])), file=err)
PY
cat "$work/net.json"
if [ -n "$out" ]; then cp "$work/net.json" "$out" && echo "net: wrote $out" >&2; fi
/usr/bin/python3 "$here/net_model.py" "$work/net.json" >&2
