#!/bin/sh
# Checks of cluster/plot.sh on made-up run directories:
#  1. two runs with metrics.jsonl and eval.jsonl, plus one without eval.jsonl,
#     give one non-empty PNG (checked by its signature and its size);
#  2. a missing run directory, an empty metrics.jsonl and a malformed line
#     are errors (non-zero exit, no PNG) whose message names the culprit.
#   plot_test.sh SOURCE_DIR WORKDIR
set -u
src=$1
work=$2
plot="$src/cluster/plot.sh"
rm -rf "$work"
mkdir -p "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }

# make_run DIR STEPS LOSS0 STEP_TIME [eval]: a run logging every 10 steps whose
# loss decays from LOSS0, each step taking STEP_TIME seconds, evaluated every
# 50 steps when "eval" is given.
make_run() {
    mkdir -p "$1"
    awk -v n="$2" -v l0="$3" -v dt="$4" 'BEGIN {
        for (s = 10; s <= n; s += 10)
            printf "{\"step\": %d, \"loss\": %.6f, \"mlm_loss\": %.6f, \"nsp_loss\": 0.69, \"mlm_acc\": %.4f, " \
                   "\"lr\": 0.001, \"grad_norm\": 1.5, \"seq_per_s\": %.3f, \"tokens_per_s\": %.3f, " \
                   "\"kept_fraction\": 1, \"time_forward\": %.6f, \"time_backward\": %.6f, " \
                   "\"time_allreduce\": 0.01, \"time_optimizer\": 0.02, \"time_data\": 0.001}\n",
                   s, l0 * exp(-s / 150.0) + 2, l0 * exp(-s / 150.0) + 1.3, 0.4 * (1 - exp(-s / 100.0)),
                   32 / dt, 32 * 128 / dt, dt * 0.3, dt * 0.7 - 0.031
    }' > "$1/metrics.jsonl"
    if [ "${5:-}" = eval ]; then
        awk -v n="$2" -v dt="$4" 'BEGIN {
            for (s = 50; s <= n; s += 50)
                printf "{\"step\": %d, \"elapsed_s\": %.3f, \"sequences\": 320, \"mlm_loss\": %.4f, " \
                       "\"mlm_acc\": %.4f, \"nsp_loss\": 0.69, \"nsp_acc\": 0.55}\n",
                       s, s * dt + s / 50 * 2.5, 6 * exp(-s / 150.0) + 1.5, 0.4 * (1 - exp(-s / 100.0))
        }' > "$1/eval.jsonl"
    fi
}

make_run "$work/runs/baseline" 200 8 1.1 eval
make_run "$work/runs/token_drop" 200 8.2 0.8 eval
make_run "$work/runs/no-eval" 120 8.5 0.9
[ "$(wc -l < "$work/runs/baseline/metrics.jsonl")" = 20 ] || fail "fixture: metrics.jsonl of baseline"
[ "$(wc -l < "$work/runs/baseline/eval.jsonl")" = 4 ] || fail "fixture: eval.jsonl of baseline"

# 1. a PNG with the three runs
sh "$plot" -o "$work/curves.png" "$work/runs/baseline" "$work/runs/token_drop" "$work/runs/no-eval" \
    > "$work/ok.log" 2>&1 || { cat "$work/ok.log"; fail "plot.sh exited non-zero on valid runs"; }
[ -s "$work/curves.png" ] || fail "no curves.png written"
# The PNG signature: 0x89 'P' 'N' 'G' CR LF 0x1A LF.
magic=$(od -An -tx1 -N8 "$work/curves.png" | tr -d ' \n')
[ "$magic" = 89504e470d0a1a0a ] || fail "curves.png does not start with the PNG signature (got $magic)"
# Four panels of lines are far larger than an empty 1400x1000 image (~10 KB).
size=$(wc -c < "$work/curves.png")
[ "$size" -gt 20000 ] || fail "curves.png is only $size bytes: panels missing?"
grep -q "no-eval.*no evaluations" "$work/ok.log" || { cat "$work/ok.log"; fail "run without eval.jsonl not reported"; }
echo "plot_test: curves.png $size bytes"

# expect_error NAME PATTERN ARGS...: plot.sh must fail, write no PNG and say PATTERN.
expect_error() {
    name=$1
    pattern=$2
    shift 2
    rm -f "$work/$name.png"
    sh "$plot" -o "$work/$name.png" "$@" > "$work/$name.log" 2>&1
    rc=$?
    [ "$rc" -ne 0 ] || { cat "$work/$name.log"; fail "$name: plot.sh exited 0"; }
    [ ! -e "$work/$name.png" ] || fail "$name: a PNG was written"
    grep -q -- "$pattern" "$work/$name.log" || { cat "$work/$name.log"; fail "$name: message lacks '$pattern'"; }
}

# 2. errors
expect_error missing "run directory '$work/runs/nope' does not exist" \
    "$work/runs/baseline" "$work/runs/nope"
mkdir -p "$work/runs/empty" && : > "$work/runs/empty/metrics.jsonl"
expect_error empty "runs/empty/metrics.jsonl is empty" "$work/runs/empty"
mkdir -p "$work/runs/nometrics"
expect_error nometrics "holds no metrics.jsonl" "$work/runs/nometrics"
mkdir -p "$work/runs/bad"
head -3 "$work/runs/baseline/metrics.jsonl" > "$work/runs/bad/metrics.jsonl"
echo '{"step": 40, "loss": }' >> "$work/runs/bad/metrics.jsonl"
expect_error bad "runs/bad/metrics.jsonl:4: not a JSON object" "$work/runs/bad"
expect_error noargs "no run directory given"
echo "plot_test: all checks passed"
