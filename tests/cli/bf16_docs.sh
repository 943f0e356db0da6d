#!/bin/sh
# bf16 trains as well as fp32 on real text (SPEC section 9): a small BERT
# on the Python documentation (Debian's python3.11-doc), the same data,
# seed and steps in both precisions; the held-out MLM loss at the end must
# agree within 1%.
#   bf16_docs.sh TOKDROP TOKDROP_PREP SOURCE_DIR WORKDIR
set -u
tokdrop=$1
prep=$2
src=$3
work=$4
corpus=/usr/share/doc/python3.11/html/_sources
. "$src/tests/cli/common.sh"
if ! bf16_available; then
    echo "bf16_docs: not run: $bf16_why"
    exit 0
fi
[ -d "$corpus" ] || fail "$corpus missing (Debian package python3.11-doc; make deps installs it)"

# a 4096-token vocabulary and shards of 64-token sequences from all the
# documentation; 3% of the documents held out
"$prep" vocab --size 4096 --out "$work/vocab.txt" "$corpus" >/dev/null 2>&1 || fail "vocab"
"$prep" shards --vocab "$work/vocab.txt" --out "$work/data" --doc-per-file --eval-fraction 0.03 \
    --dupe-factor 1 --seq-len 64 --max-pred 10 --shards 2 --jobs 1 "$corpus" > "$work/prep.log" 2>&1 ||
    { cat "$work/prep.log"; fail "shards"; }

cat > "$work/docs.yaml" <<YAML
model:
  vocab: $work/vocab.txt
  vocab_size: 4096
  hidden: 128
  layers: 2
  heads: 2
  intermediate: 512
  max_position: 64
data:
  train: "$work/data/train/*.h5"
  eval: "$work/data/eval/*.h5"
  seq_len: 64
  max_pred: 10
train:
  steps: 300
  micro_batch: 32
  threads: 1
  seed: 7
optimizer:
  name: lamb
  lr: 0.004
  warmup_steps: 30
run:
  log_every: 50
  eval_every: 0
  eval_batches: 20
  checkpoint_every: 0
  keep_checkpoints: 1
YAML
for p in fp32 bf16; do
    "$tokdrop" train "$work/docs.yaml" --set train.precision=$p --set "run.dir=$work/$p" \
        2> "$work/$p.log" || { cat "$work/$p.log"; fail "$p run"; }
done
/usr/bin/python3 - "$work" <<'PY' || fail "bf16 and fp32 disagree"
import json, sys
w = sys.argv[1]
ev = {p: json.loads(open("%s/%s/eval.jsonl" % (w, p)).read().splitlines()[-1]) for p in ("fp32", "bf16")}
first = {p: json.loads(open("%s/%s/metrics.jsonl" % (w, p)).readline())["mlm_loss"] for p in ("fp32", "bf16")}
a, b = ev["fp32"]["mlm_loss"], ev["bf16"]["mlm_loss"]
print("held-out MLM loss after 300 steps: fp32 %.4f, bf16 %.4f (%.2f%%); accuracy %.4f vs %.4f; "
      "first training loss %.3f" % (a, b, 100 * (b - a) / a, ev["fp32"]["mlm_acc"], ev["bf16"]["mlm_acc"], first["fp32"]))
assert a < first["fp32"] - 1.0, "fp32 did not learn"
assert abs(b - a) <= 0.01 * a
PY
echo "bf16_docs: passed"
