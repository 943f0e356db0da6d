#!/bin/sh
# bf16 against fp32 and against PyTorch (bench/torch_peer.py), interleaved
# in one run on the same core: bert-small/128 at micro-batch 16 and
# bert-base/128 at micro-batch 8, with and without token dropping (keep 64),
# tokdrop fp32 / tokdrop bf16 / PyTorch fp32 / PyTorch bf16 autocast, each
# repeat in that order. Also the oneDNN bf16 matmul peak at the start and
# the end of the run, so the whole-step FLOP/s can be set against it.
# Prints one JSON object (bench/run.sh embeds it). Timings, not tests.
#   bench/precision.sh BUILD_DIR SHARD THREADS [REPEATS]
# PRECISION_MODELS="small base" chooses the models.
set -eu
build=$1
shard=$2
threads=$3
repeats=${4:-2}
models=${PRECISION_MODELS:-small base}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Both sides with OpenBLAS's AVX-512 kernels where the CPU has them, as a
# knowledgeable PyTorch user would set (PyTorch's fp32 depends on it).
if grep -q avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX; fi

peak() { "$build/td-bench-gemm" "$threads" bf16 > "$work/peak$1.json" || exit 1; }

# One run: model, micro-batch, keep, side (tokdrop|torch), precision, repeat.
# Appends a JSON line to $work/runs.jsonl.
one_run() {
    model=$1 mb=$2 keep=$3 side=$4 prec=$5 rep=$6
    steps=6
    [ "$model" = base ] && steps=4
    name="$model-$keep-$side-$prec-$rep"
    if [ "$side" = torch ]; then
        /usr/bin/python3 "$here/torch_peer.py" --threads "$threads" --keep "$keep" --model "$model" \
            --micro-batch "$mb" --precision "$prec" --steps "$steps" > "$work/$name.json" ||
            { echo "bench: torch_peer.py failed for $name" >&2; exit 1; }
        seq_s=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["seq_per_s"])' "$work/$name.json")
        act=null
    else
        drop=""
        [ "$keep" -lt 128 ] && drop="--set token_drop.enabled=true --set token_drop.keep=$keep --set token_drop.allow=[0,1,2,3] --set token_drop.deny=[]"
        # shellcheck disable=SC2086
        "$build/tokdrop" train "$here/../configs/bert-$model.yaml" \
            --set model.vocab= --set "data.train=$shard" --set data.eval= \
            --set train.steps=$steps --set train.micro_batch="$mb" --set "train.threads=$threads" \
            --set train.precision="$prec" --set run.log_every=1 --set run.checkpoint_every=0 \
            --set "run.dir=$work/$name" $drop 2> "$work/$name.log" ||
            { cat "$work/$name.log" >&2; exit 1; }
        # steps 2.. (step 1 pays first-touch page faults), median
        seq_s=$(/usr/bin/python3 - "$work/$name/metrics.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])][1:]
print(round(statistics.median(r["seq_per_s"] for r in rows), 3))
PY
)
        act=$(sed -n 's/.*(\([0-9.]*\) MiB per sequence).*/\1/p' "$work/$name.log" | head -n 1)
        rm -rf "$work/$name"
    fi
    echo "{\"model\": \"$model\", \"micro_batch\": $mb, \"keep\": $keep, \"side\": \"$side\", \"precision\": \"$prec\", \"repeat\": $rep, \"seq_per_s\": $seq_s, \"act_mib_per_seq\": ${act:-null}}" >> "$work/runs.jsonl"
    echo "bench: $name $seq_s seq/s" >&2
}

peak 0
: > "$work/runs.jsonl"
for rep in $(seq 1 "$repeats"); do
    for model in $models; do
        mb=16
        [ "$model" = base ] && mb=8
        for keep in 128 64; do
            for side in tokdrop torch; do
                for prec in fp32 bf16; do
                    one_run "$model" "$mb" "$keep" "$side" "$prec" "$rep"
                done
            done
        done
    done
done
peak 1

/usr/bin/python3 - "$work" "$threads" <<'PY'
import json, statistics, sys
work, threads = sys.argv[1], int(sys.argv[2])
runs = [json.loads(l) for l in open(work + "/runs.jsonl")]
peaks = [json.load(open("%s/peak%d.json" % (work, i))) for i in (0, 1)]
peak = statistics.mean(p["gflops_kernel_overall"] for p in peaks)
dims = {"small": (30522, 512, 4, 2048), "base": (30522, 768, 12, 3072)}
T, MP = 128, 20

def step_flop(model, B, keep):
    """Matrix-product FLOPs of one step (forward x 3), as tokdrop's layer
    schedule runs them (SPEC section 2: layer f = L/2-1 takes the kept
    queries over all keys, layers f+1..L-2 kept only, the last layer full)."""
    V, H, L, I = dims[model]
    f = L // 2 - 1
    fwd = 0
    for l in range(L):
        tq, tk = T, T
        if keep < T and l == f:
            tq = keep
        elif keep < T and f < l < L - 1:
            tq = tk = keep
        fwd += 2 * B * (tq * H * H * 2 + tk * H * H * 2 + tq * H * I * 2)  # q, out; k, v; FFN
        fwd += 2 * 2 * B * tq * tk * H                                     # scores, context
    R = B * MP
    fwd += 2 * R * H * H + 2 * R * H * V + 2 * B * H * H + 2 * B * H * 2  # heads
    return 3 * fwd

def med(model, keep, side, prec):
    xs = [r["seq_per_s"] for r in runs if (r["model"], r["keep"], r["side"], r["precision"]) == (model, keep, side, prec)]
    return statistics.median(xs) if xs else None

out = {"threads": threads, "onednn_bf16_peak_gflops": round(peak, 1),
       "peak_start_end": [p["gflops_kernel_overall"] for p in peaks],
       "runs": runs, "summary": {}}
for model in sorted({r["model"] for r in runs}):
    B = next(r["micro_batch"] for r in runs if r["model"] == model)
    s = {}
    for keep in (128, 64):
        td32, td16 = med(model, keep, "tokdrop", "fp32"), med(model, keep, "tokdrop", "bf16")
        pt32, pt16 = med(model, keep, "torch", "fp32"), med(model, keep, "torch", "bf16")
        flop = step_flop(model, B, keep)
        s["keep%d" % keep] = {
            "tokdrop_fp32": td32, "tokdrop_bf16": td16, "torch_fp32": pt32, "torch_bf16": pt16,
            "bf16_vs_torch_bf16": round(td16 / pt16, 2), "bf16_vs_fp32": round(td16 / td32, 2),
            "fp32_vs_torch_fp32": round(td32 / pt32, 2),
            "step_gflop": round(flop / 1e9, 1),
            "bf16_gflops": round(flop * td16 / B / 1e9, 1),
            "bf16_share_of_peak": round(flop * td16 / B / 1e9 / peak, 3),
        }
    full, drop = s["keep128"], s["keep64"]
    flop_ratio = full["step_gflop"] / drop["step_gflop"]
    s["token_drop"] = {"flop_ratio": round(flop_ratio, 3)}
    for side in ("tokdrop_fp32", "tokdrop_bf16", "torch_fp32", "torch_bf16"):
        sp = drop[side] / full[side]
        s["token_drop"][side + "_speedup"] = round(sp, 3)
        s["token_drop"][side + "_speedup_vs_flop_ratio"] = round(sp / flop_ratio, 3)
    acts = {p: [r["act_mib_per_seq"] for r in runs if r["model"] == model and r["keep"] == 128
                and r["side"] == "tokdrop" and r["precision"] == p] for p in ("fp32", "bf16")}
    s["activation_mib_per_seq"] = {p: v[0] if v else None for p, v in acts.items()}
    out["summary"][model] = s
print(json.dumps(out, indent=1))
PY
