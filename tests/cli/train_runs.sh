#!/bin/sh
# End-to-end checks of `tokdrop train` on the reference fixture:
#  1. a tiny model trains 60 steps with token dropping and its loss falls;
#  2. a bad config key is refused before any work, naming file, line, key;
#  3. a data glob that matches nothing is an error naming the pattern;
#  4. --set overrides reach the run (resolved config.yaml shows them).
#   train_runs.sh TOKDROP SOURCE_DIR WORKDIR
set -u
tokdrop=$1
src=$2
work=$3
. "$src/tests/cli/common.sh"
cfg="$work/fx/configs/b.yaml"

# 1. loss falls
"$tokdrop" train "$cfg" --set train.steps=60 --set optimizer.warmup_steps=5 \
    --set run.log_every=1 --set "run.dir=$work/run" 2> "$work/train.log" || { cat "$work/train.log"; fail "training exited non-zero"; }
/usr/bin/python3 - "$work/run/metrics.jsonl" <<'PY' || fail "loss did not fall"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 60, len(rows)
first = sum(r["loss"] for r in rows[:5]) / 5
last = sum(r["loss"] for r in rows[-5:]) / 5
print("loss first 5 steps %.3f, last 5 steps %.3f" % (first, last))
assert last < first - 1.0, (first, last)
for key in ("step", "loss", "mlm_loss", "nsp_loss", "mlm_acc", "lr", "grad_norm", "seq_per_s",
            "tokens_per_s", "kept_fraction", "time_forward", "time_backward", "time_allreduce",
            "time_optimizer", "time_data"):
    assert key in rows[-1], key
assert abs(rows[-1]["kept_fraction"] - 0.5) < 1e-9
PY
grep -q "keep: 8" "$work/run/config.yaml" || fail "resolved config.yaml lacks token_drop.keep"

# 2. bad key
printf 'model:\n  hidden: 16\n  hiden: 3\n' > "$work/bad.yaml"
"$tokdrop" train "$work/bad.yaml" 2> "$work/bad.log"
rc=$?
[ "$rc" = 2 ] || fail "bad config: exit $rc, expected 2"
grep -q "bad.yaml:3" "$work/bad.log" && grep -q "model.hiden" "$work/bad.log" || { cat "$work/bad.log"; fail "bad config message"; }

# 3. no data
"$tokdrop" train "$cfg" --set "data.train=$work/nothing/*.h5" --set "run.dir=$work/run3" 2> "$work/nodata.log"
rc=$?
[ "$rc" = 1 ] || fail "missing data: exit $rc, expected 1"
grep -q "nothing/\*.h5" "$work/nodata.log" || { cat "$work/nodata.log"; fail "missing data message"; }

# 4. --set reaches the resolved config
grep -q "steps: 60" "$work/run/config.yaml" || fail "--set train.steps not in config.yaml"
echo "train_runs: all checks passed"
