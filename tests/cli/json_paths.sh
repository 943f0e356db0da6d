#!/bin/sh
# Every JSON file and line tokdrop writes stays valid JSON when a path in it,
# or the directory it is written to, holds a double quote or a backslash:
# metrics.jsonl and eval.jsonl of a run whose run.dir has both, `tokdrop
# eval` of a checkpoint in it (its "checkpoint" names the path exactly),
# and the config.json and model.safetensors header of an export into such
# a directory, which imports back. Each is read with Python's json module.
#   json_paths.sh TOKDROP SOURCE_DIR WORKDIR
set -u
tokdrop=$1
src=$2
work=$3
. "$src/tests/cli/common.sh"
cfg="$work/fx/configs/b.yaml"
run="$work/run \"quoted\" back\\slash"
hf="$work/hf \"out\"\\dir"

"$tokdrop" train "$cfg" --set "run.dir=$run" --set train.steps=4 --set run.eval_every=2 \
    --set run.checkpoint_every=2 --set "data.eval=$work/fx/train/*.h5" 2> "$work/train.log" ||
    { cat "$work/train.log"; fail "train into a run.dir with a quote and a backslash"; }
ckpt="$run/checkpoints/ckpt-00000004.h5"
[ -f "$ckpt" ] || { ls -R "$work"; fail "no checkpoint at $ckpt"; }
"$tokdrop" eval "$cfg" --set "data.eval=$work/fx/train/*.h5" --set run.eval_batches=1 --checkpoint "$ckpt" \
    > "$work/eval.json" 2> "$work/eval.log" || { cat "$work/eval.log"; fail "eval of $ckpt"; }
"$tokdrop" export "$ckpt" "$hf" > "$work/export.log" 2>&1 || { cat "$work/export.log"; fail "export into $hf"; }
"$tokdrop" import "$hf" "$work/imported.h5" > "$work/import.log" 2>&1 || { cat "$work/import.log"; fail "import of $hf"; }

/usr/bin/python3 - "$run" "$ckpt" "$work/eval.json" "$hf" <<'PY' || fail "JSON output"
import json, struct, sys
run, ckpt, eval_json, hf = sys.argv[1:5]
rows = [json.loads(l) for l in open(run + "/metrics.jsonl")]
assert [r["step"] for r in rows] == [1, 2, 3, 4], rows
assert all(r["mode"] == "drop" for r in rows), rows
evals = [json.loads(l) for l in open(run + "/eval.jsonl")]
assert [r["step"] for r in evals] == [2, 4], evals
lines = open(eval_json).read().splitlines()
assert len(lines) == 1, lines
ev = json.loads(lines[0])
assert ev["checkpoint"] == ckpt, (ev["checkpoint"], ckpt)
assert ev["sequences"] > 0 and 0 <= ev["mlm_acc"] <= 1, ev
c = json.load(open(hf + "/config.json"))
assert c["model_type"] == "bert" and c["layer_norm_eps"] == 1e-12, c
with open(hf + "/model.safetensors", "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
assert header["__metadata__"] == {"format": "pt"}, header["__metadata__"]
assert all(v["dtype"] == "F32" for k, v in header.items() if k != "__metadata__")
print("metrics.jsonl, eval.jsonl, eval output, config.json and the safetensors header: valid JSON")
PY
