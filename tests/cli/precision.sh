#!/bin/sh
# train.precision (SPEC section 9) as a user meets it: the first log line
# names the precision and the kernels; auto is bf16 only where the CPU has
# bf16 instructions; bf16 without them runs oneDNN's emulation with a
# warning and gives the same losses; a CPU where oneDNN has no bf16 at all
# refuses bf16 naming what is missing; a bad value is a config error.
# ONEDNN_MAX_CPU_ISA stands in for the older CPUs.
#   precision.sh TOKDROP SOURCE_DIR WORKDIR
set -u
tokdrop=$1
src=$2
work=$3
. "$src/tests/cli/common.sh"
cfg="$work/fx/configs/b.yaml"
common="--set train.steps=3 --set run.log_every=1"
train() { # name, extra arguments; stderr in $work/name.log, returns the exit status
    name=$1
    shift
    "$tokdrop" train "$cfg" $common --set "run.dir=$work/$name" "$@" 2> "$work/$name.log"
}
expect_log() { # name, pattern
    grep -q "$2" "$work/$1.log" || { cat "$work/$1.log" >&2; fail "$1: no '$2' in its log"; }
}

train bad --set train.precision=fp16
[ $? = 2 ] || fail "precision fp16 accepted"
expect_log bad "train.precision"

"$tokdrop" --version | grep -q "bf16: " || fail "--version does not say what bf16 runs on"
train fp32 --set train.precision=fp32 || fail "fp32 run"
expect_log fp32 "precision fp32: matrix products by OpenBLAS"

# No AVX-512 at all (oneDNN limited to AVX2): bf16 refused, auto is fp32.
ONEDNN_MAX_CPU_ISA=AVX2 train old_bf16 --set train.precision=bf16
[ $? = 2 ] || fail "bf16 accepted where oneDNN has no bf16 product"
expect_log old_bf16 "needs a CPU with AVX-512"
ONEDNN_MAX_CPU_ISA=AVX2 train old_auto --set train.precision=auto || fail "auto run on AVX2"
expect_log old_auto "precision fp32"

if ! bf16_available; then
    echo "precision: bf16 cases not run: $bf16_why"
    echo "precision: passed"
    exit 0
fi
train bf16 --set train.precision=bf16 || fail "bf16 run"
expect_log bf16 "precision bf16: matrix products by oneDNN"
grep -q "precision: bf16" "$work/bf16/config.yaml" || fail "resolved config lacks precision: bf16"

# AVX-512 without bf16 instructions: emulated, with a warning, same maths.
ONEDNN_MAX_CPU_ISA=AVX512_CORE train emulated --set train.precision=bf16 || fail "emulated bf16 run"
expect_log emulated "warning: this CPU has neither AVX512-BF16 nor AMX"
ONEDNN_MAX_CPU_ISA=AVX512_CORE train emulated_auto --set train.precision=auto || fail "auto run"
expect_log emulated_auto "precision fp32"

if "$tokdrop" --version | grep -q "emulated"; then
    echo "precision: this CPU has no bf16 instructions; auto checked above"
else
    train auto --set train.precision=auto || fail "auto run"
    expect_log auto "precision bf16"
fi

/usr/bin/python3 - "$work" <<'PY' || fail "losses"
import json, sys
w = sys.argv[1]
rows = {n: [json.loads(l) for l in open("%s/%s/metrics.jsonl" % (w, n))] for n in ("fp32", "bf16", "emulated")}
for a, b, c in zip(rows["fp32"], rows["bf16"], rows["emulated"]):
    # emulation and native kernels: the same bf16 inputs, fp32 accumulation
    # in another order
    assert abs(b["loss"] - c["loss"]) <= 1e-4 * abs(b["loss"]), (a["step"], b["loss"], c["loss"])
    assert abs(a["loss"] - b["loss"]) <= 1e-2 * abs(a["loss"]), (a["step"], a["loss"], b["loss"])
print("bf16 native %.6f, emulated %.6f, fp32 %.6f at step 3" % (rows["bf16"][-1]["loss"],
      rows["emulated"][-1]["loss"], rows["fp32"][-1]["loss"]))
PY
echo "precision: passed"
