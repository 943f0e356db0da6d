#!/bin/bash
# `make demo`: BERT pretraining with and without token dropping on a small
# corpus, end to end, in a few minutes on 2 cores.
#   1. learn an 8192-token WordPiece vocabulary from the Python documentation
#      sources (Debian package python3.11-doc) and write masked NSP shards,
#      with 2% of the documents held out, into demo/ (skipped when demo/
#      already holds a complete set made the same way);
#   2. train configs/demo.yaml (BERT-mini) on 2 MPI ranks x 1 thread, first
#      without token dropping (demo/runs/baseline), then with it
#      (demo/runs/token-drop), the same number of steps, in fp32; where the
#      CPU has bf16 instructions, both again in bf16 (demo/runs/*-bf16);
#   3. print a table of steps, wall time, throughput and the final held-out
#      MLM loss/accuracy and NSP accuracy, and draw demo/curves.png.
#
#   cluster/demo.sh BUILD_DIR
#
# Environment: DEMO_STEPS=N trains N steps instead of the config's (with 4
# evaluations); DEMO_CORPUS=DIR prepares another text tree instead.
# Any failing step stops the demo with a message and a non-zero exit.
set -euo pipefail

die() { echo "demo: ERROR: $*" >&2; exit 1; }
say() { echo "demo: $*"; }

[ $# -eq 1 ] || { echo "usage: cluster/demo.sh BUILD_DIR" >&2; exit 2; }
build=$(cd "$1" 2>/dev/null && pwd) || die "build directory '$1' does not exist; run 'make' first"
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

tokdrop=$build/tokdrop
config=configs/demo.yaml
ranks=2

# ---- 0. what the demo needs --------------------------------------------------
[ -x "$tokdrop" ] || die "$tokdrop not found or not executable; run 'make' first"
[ -f "$config" ] || die "$root/$config is missing"
command -v mpirun >/dev/null 2>&1 || die "mpirun not found (Debian package openmpi-bin; 'make deps' installs it)"
command -v gnuplot >/dev/null 2>&1 || die "gnuplot not found (Debian package gnuplot-nox; 'make deps' installs it)"
if [ -x /usr/bin/python3 ]; then py=/usr/bin/python3
elif command -v python3 >/dev/null 2>&1; then py=python3
else die "python3 not found (needed to summarize the runs)"; fi

# Open MPI refuses to start as root unless told twice that it is meant.
if [ "$(id -u)" = 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# One thread per rank, whatever the BLAS or OpenMP would pick by themselves.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

now() { if [ -n "${EPOCHREALTIME:-}" ]; then echo "${EPOCHREALTIME/,/.}"; else date +%s; fi; }
t_demo=$(now)
mkdir -p demo || die "cannot create $root/demo"

# ---- 1. data -----------------------------------------------------------------
say "1/3 data: cluster/demo-data.sh (vocabulary and shards in demo/, made once)"
vocab_size=$(cluster/demo-data.sh "$build") || die "cluster/demo-data.sh failed"

# ---- 2. training ---------------------------------------------------------------
sets=(--set train.threads=1 --set "model.vocab_size=$vocab_size")
if [ -n "${DEMO_STEPS:-}" ]; then
    case $DEMO_STEPS in ''|*[!0-9]*) die "DEMO_STEPS must be a positive integer, not '$DEMO_STEPS'" ;; esac
    [ "$DEMO_STEPS" -ge 1 ] || die "DEMO_STEPS must be at least 1"
    every=$((DEMO_STEPS / 4)); [ "$every" -ge 1 ] || every=1
    sets+=(--set "train.steps=$DEMO_STEPS" --set "run.eval_every=$every")
fi

# fp32 always; bf16 too where the CPU has bf16 instructions (AVX512-BF16 or
# AMX), which is where the config's precision: auto picks it.
runs=(baseline token-drop)
declare -A extra=([baseline]="--set token_drop.enabled=false --set train.precision=fp32"
                  [token-drop]="--set token_drop.enabled=true --set train.precision=fp32")
bf16_kernels=$("$tokdrop" --version | sed -n 's/.*bf16: \([^;)]*\).*/\1/p')
if "$tokdrop" --version | grep -q "bf16: oneDNN" && ! "$tokdrop" --version | grep -q emulated; then
    say "this CPU has bf16 instructions ($bf16_kernels): the runs are made in fp32 and in bf16"
    runs+=(baseline-bf16 token-drop-bf16)
    extra[baseline-bf16]="--set token_drop.enabled=false --set train.precision=bf16"
    extra[token-drop-bf16]="--set token_drop.enabled=true --set train.precision=bf16"
else
    say "no bf16 instructions on this CPU (bf16: $bf16_kernels): fp32 runs only"
fi
declare -A wall
mkdir -p demo/runs
for name in "${runs[@]}"; do
    dir=demo/runs/$name
    # tokdrop resumes from a run directory's checkpoints: start afresh.
    rm -rf "$dir" "$dir.log"
    say "2/3 training $name: mpirun -n $ranks $tokdrop train $config ${extra[$name]} (log: $dir.log)"
    t0=$(now)
    # shellcheck disable=SC2086
    mpirun -n "$ranks" --oversubscribe "$tokdrop" train "$config" "${sets[@]}" ${extra[$name]} \
        --set "run.dir=$dir" 2>&1 | tee "$dir.log" ||
        die "training $name failed (exit status ${PIPESTATUS[0]}); see $root/$dir.log"
    wall[$name]=$("$py" -c 'import sys; print("%.1f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$t0" "$(now)")
    [ -s "$dir/metrics.jsonl" ] || die "training $name wrote no $dir/metrics.jsonl"
    [ -s "$dir/eval.jsonl" ] || die "training $name wrote no $dir/eval.jsonl (data.eval is set in $config)"
done

# ---- 3. results ----------------------------------------------------------------
say "3/3 results"
table_args=()
for name in "${runs[@]}"; do table_args+=("demo/runs/$name" "${wall[$name]}"); done
"$py" - "${table_args[@]}" <<'PY' || die "could not summarize the runs"
import json, statistics, sys

def rows(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]

def mmss(s):
    return "%dm%02ds" % (int(s) // 60, int(round(s)) % 60)

args = sys.argv[1:]
print("%-16s %5s %6s %8s %7s %14s %12s %12s" % ("run", "prec", "steps", "wall", "seq/s",
                                                 "eval MLM loss", "MLM acc", "NSP acc"))
res = {}
for d, wall in zip(args[0::2], args[1::2]):
    m, e = rows(d + "/metrics.jsonl"), rows(d + "/eval.jsonl")
    if not m or not e:
        sys.exit("demo: %s: empty metrics.jsonl or eval.jsonl" % d)
    # Throughput: median of the logged steps (each logs its own step's rate),
    # which the first steps' warm-up and the evaluations do not skew.
    sps = statistics.median(r["seq_per_s"] for r in m)
    last = e[-1]
    name = d.rsplit("/", 1)[-1]
    res[name] = (float(wall), sps, last)
    prec = "bf16" if name.endswith("-bf16") else "fp32"
    print("%-16s %5s %6d %8s %7.1f %14.4f %12.4f %12.4f" % (name, prec, m[-1]["step"], mmss(float(wall)),
                                                             sps, last["mlm_loss"], last["mlm_acc"],
                                                             last["nsp_acc"]))
for suffix in ("", "-bf16"):
    if "baseline" + suffix in res and "token-drop" + suffix in res:
        b, t = res["baseline" + suffix], res["token-drop" + suffix]
        print("token dropping%s: %.2fx the baseline's sequences/s, wall time %s vs %s; "
              "held-out MLM accuracy %+.4f" % (" (bf16)" if suffix else " (fp32)", t[1] / b[1],
                                               mmss(t[0]), mmss(b[0]), t[2]["mlm_acc"] - b[2]["mlm_acc"]))
if "baseline-bf16" in res:
    b, h = res["baseline"], res["baseline-bf16"]
    print("bf16: %.2fx fp32's sequences/s (baseline), held-out MLM loss %+.4f" % (
        h[1] / b[1], h[2]["mlm_loss"] - b[2]["mlm_loss"]))
first = next(iter(res.values()))[2]
print("(eval: full sequences, no dropping, %d held-out sequences, after step %d)" % (
    first["sequences"], first["step"]))
PY

cluster/plot.sh -o demo/curves.png "${runs[@]/#/demo/runs/}" || die "cluster/plot.sh failed"
total=$("$py" -c 'import sys; print("%.0f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$t_demo" "$(now)")
say "done in ${total}s: curves in $root/demo/curves.png, runs (metrics.jsonl, eval.jsonl, logs) in $root/demo/runs/"
