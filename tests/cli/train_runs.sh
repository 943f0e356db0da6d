#!/bin/sh
# End-to-end checks of `tokdrop train` on the reference fixture:
#  1. a tiny model trains 60 steps with token dropping and its loss falls;
#  2. a bad config key is refused before any work, naming file, line, key,
#     and so are sizes no node can hold;
#  3. a data glob that matches nothing is an error naming the pattern;
#  4. --set overrides reach the run (resolved config.yaml shows them);
#  5. a run that fails before its first step (bad vocab, bad init file, no
#     data, non-finite first step) names the key at fault and leaves no
#     run directory, nor anything in one that existed before.
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

# 2b. sizes no node holds are config errors (exit 2) naming the key and its
# range, or, each size in range but the model too large, the keys to lower
too_large() { # name, what the message must say, --set arguments
    name=$1
    message=$2
    shift 2
    "$tokdrop" train "$cfg" --set "run.dir=$work/$name" "$@" 2> "$work/$name.log"
    rc=$?
    [ "$rc" = 2 ] || { cat "$work/$name.log"; fail "$name: exit $rc, expected 2"; }
    grep -qF "$message" "$work/$name.log" || { cat "$work/$name.log"; fail "$name: no '$message'"; }
    [ ! -e "$work/$name" ] || fail "$name: left a run directory behind"
}
too_large layers "model.layers = 100000000: must lie in [1, 1024]" --set model.layers=100000000
too_large hidden "model.hidden = 1000000000: must lie in [1, 65536]" --set model.hidden=1000000000
too_large batch "train.micro_batch = 1000000000: must lie in [1, 65536]" --set train.micro_batch=1000000000
too_large model "more than this node has" --set model.hidden=16384 --set model.heads=16 \
    --set model.layers=64 --set model.intermediate=65536
grep -qF "lower model.hidden, model.layers" "$work/model.log" || { cat "$work/model.log"; fail "model: no keys to lower"; }

# 3. no data
"$tokdrop" train "$cfg" --set "data.train=$work/nothing/*.h5" --set "run.dir=$work/run3" 2> "$work/nodata.log"
rc=$?
[ "$rc" = 1 ] || fail "missing data: exit $rc, expected 1"
grep -q "nothing/\*.h5" "$work/nodata.log" || { cat "$work/nodata.log"; fail "missing data message"; }
[ ! -e "$work/run3" ] || fail "missing data: left a run directory behind"

# 4. --set reaches the resolved config
grep -q "steps: 60" "$work/run/config.yaml" || fail "--set train.steps not in config.yaml"
# 5. failures before the first step
setup_fails() { # name, key the message must start with, run.dir, --set arguments
    name=$1
    key=$2
    dir=$3
    shift 3
    "$tokdrop" train "$cfg" --set "run.dir=$dir" "$@" 2> "$work/$name.log"
    rc=$?
    [ "$rc" = 1 ] || { cat "$work/$name.log"; fail "$name: exit $rc, expected 1"; }
    grep -q "rank 0: $key: " "$work/$name.log" || { cat "$work/$name.log"; fail "$name: message does not name $key"; }
}
setup_fails vocab model.vocab "$work/new/run" --set "model.vocab=$work/nope/vocab.txt"
setup_fails init model.init "$work/new/run" --set "model.init=$work/fx/vocab.txt"
[ ! -e "$work/new" ] || fail "a failed set-up left $work/new behind"
# no step is finite (a NaN in the initial weights): the run stops after
# train.max_bad_steps of them; what this invocation made goes, what was
# there stays
/usr/bin/python3 - "$work/fx/init.safetensors" "$work/nan.safetensors" <<'PY'
import json, struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
off = 8 + n + h["bert.embeddings.word_embeddings.weight"]["data_offsets"][0]
b[off:off + 4] = struct.pack("<f", float("nan"))
open(sys.argv[2], "wb").write(b)
PY
mkdir -p "$work/old"
echo "kept" > "$work/old/notes.txt"
"$tokdrop" train "$cfg" --set "run.dir=$work/old/new/run" --set "model.init=$work/nan.safetensors" 2> "$work/nan.log"
[ "$?" = 1 ] && grep -q "step 1: loss nan.*update skipped" "$work/nan.log" &&
    grep -q "stopping after step 3: 3 steps in a row" "$work/nan.log" || { cat "$work/nan.log"; fail "non-finite first step"; }
"$tokdrop" train "$cfg" --set "run.dir=$work/old" --set "model.init=$work/nan.safetensors" 2> "$work/nan2.log"
[ "$?" = 1 ] || { cat "$work/nan2.log"; fail "non-finite first step in an existing directory"; }
[ "$(ls -A "$work/old")" = "notes.txt" ] && [ "$(cat "$work/old/notes.txt")" = kept ] ||
    { ls -lR "$work/old"; fail "a run that failed in its first step left files or removed some"; }
echo "train_runs: all checks passed"
