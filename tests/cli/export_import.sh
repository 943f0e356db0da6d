#!/bin/sh
# tokdrop export and import (SPEC section 7) on the reference fixture:
#  1. export of a trained checkpoint: model.safetensors holds every
#     parameter of the checkpoint bit for bit under the HF names,
#     config.json describes the model, vocab.txt is the run's; the PyTorch
#     reference computes, from the exported files alone, the loss that
#     `tokdrop eval` reports for the checkpoint;
#  2. import of the export gives a checkpoint that evaluates the same, and
#     a run starts from it with model.init;
#  3. import of a BertModel as published (no "bert." prefix, LayerNorm
#     gamma/beta, no pretraining heads) works and says the heads are new;
#  4. clear errors: export without a vocabulary, import of a directory with
#     only pytorch_model.bin, import of a config.json of another model.
#   export_import.sh TOKDROP SOURCE_DIR WORKDIR
set -u
tokdrop=$1
src=$2
work=$3
. "$src/tests/cli/common.sh"
cfg="$work/fx/configs/b.yaml"
eval_set="--set data.eval=$work/fx/train/*.h5 --set run.eval_batches=2"

"$tokdrop" train "$cfg" --set "run.dir=$work/run" 2> "$work/train.log" || { cat "$work/train.log"; fail "train"; }
ckpt="$work/run/checkpoints/ckpt-00000010.h5"

# 1. export
"$tokdrop" export "$ckpt" "$work/hf" > "$work/export.log" 2>&1 || { cat "$work/export.log"; fail "export"; }
"$tokdrop" eval "$cfg" $eval_set --checkpoint "$ckpt" > "$work/eval_ckpt.json" || fail "eval of the checkpoint"
/usr/bin/python3 - "$src/tests/reference" "$cfg" "$ckpt" "$work/hf" "$work/eval_ckpt.json" <<'PY' || fail "export contents"
import json, sys
sys.path.insert(0, sys.argv[1])
import h5py, numpy as np
import bert_ref
from make_fixture import read_safetensors
cfg_path, ckpt, hf, eval_json = sys.argv[2:6]
cfg = bert_ref.load_config(cfg_path)
exported = read_safetensors(hf + "/model.safetensors")
with h5py.File(ckpt, "r") as f:
    names = []
    f["param"].visit(lambda n: names.append(n) if isinstance(f["param"][n], h5py.Dataset) else None)
    assert sorted(names) == sorted(exported), set(names) ^ set(exported)
    for n in names:
        a, b = f["param"][n][()], exported[n]
        assert a.dtype == b.dtype == np.float32 and a.shape == b.shape, n
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32)), n
c = json.load(open(hf + "/config.json"))
m = cfg["model"]
want = {"model_type": "bert", "vocab_size": m["vocab_size"], "hidden_size": m["hidden"],
        "num_hidden_layers": m["layers"], "num_attention_heads": m["heads"],
        "intermediate_size": m["intermediate"], "max_position_embeddings": m["max_position"],
        "type_vocab_size": m["type_vocab"], "hidden_act": "gelu", "layer_norm_eps": 1e-12,
        "initializer_range": m["initializer_range"]}
for k, v in want.items():
    assert c[k] == v, (k, c[k], v)
assert c["architectures"] == ["BertForPreTraining"]
assert open(hf + "/vocab.txt", "rb").read() == open(m["vocab"], "rb").read()
# the reference model on the exported weights: the same loss as tokdrop eval
params = {k: v.astype(np.float64) for k, v in exported.items()}
ev = json.loads(open(eval_json).read())
loss = bert_ref.loss_only(cfg, params, bert_ref.batch_from_shards(cfg, list(range(ev["sequences"]))))
ours = ev["mlm_loss"] + ev["nsp_loss"]
print("reference loss on the export %.6f, tokdrop eval %.6f" % (loss, ours))
assert abs(loss - ours) <= 1e-5 * abs(loss) + 2e-6, (loss, ours)
PY

# 2. import of the export; a run starts from it
"$tokdrop" import "$work/hf" "$work/imported.h5" > "$work/import.log" 2>&1 || { cat "$work/import.log"; fail "import"; }
grep -q "model.init" "$work/import.log" || { cat "$work/import.log"; fail "import does not say how to use it"; }
"$tokdrop" eval "$cfg" $eval_set --checkpoint "$work/imported.h5" > "$work/eval_imported.json" || fail "eval of the import"
/usr/bin/python3 - "$work/eval_ckpt.json" "$work/eval_imported.json" <<'PY' || fail "the import evaluates differently"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
for k in ("sequences", "masked", "mlm_loss", "mlm_acc", "nsp_loss", "nsp_acc"):
    assert a[k] == b[k], (k, a[k], b[k])
PY
"$tokdrop" train "$cfg" --set "model.init=$work/imported.h5" --set train.steps=2 \
    --set "run.dir=$work/from_import" 2> "$work/from_import.log" || { cat "$work/from_import.log"; fail "run from the import"; }
grep -q "weights from .*imported.h5" "$work/from_import.log" || { cat "$work/from_import.log"; fail "run does not name its init"; }

# 3. a BertModel as published: renamed tensors, no heads
mkdir -p "$work/bertmodel"
cp "$work/hf/config.json" "$work/hf/vocab.txt" "$work/bertmodel/"
/usr/bin/python3 - "$src/tests/reference" "$work/hf/model.safetensors" "$work/bertmodel/model.safetensors" <<'PY' || fail "bertmodel file"
import json, struct, sys
sys.path.insert(0, sys.argv[1])
from make_fixture import read_safetensors
t = read_safetensors(sys.argv[2])
out, header, blobs, pos = {}, {}, [], 0
for name, a in sorted(t.items()):
    if name.startswith("cls."):
        continue
    name = name[len("bert."):].replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
    b = a.astype("<f4").tobytes()
    header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [pos, pos + len(b)]}
    blobs.append(b)
    pos += len(b)
h = json.dumps(header).encode()
with open(sys.argv[3], "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
PY
"$tokdrop" import "$work/bertmodel" "$work/bertmodel.h5" > "$work/bertmodel.log" 2>&1 || { cat "$work/bertmodel.log"; fail "import of a BertModel"; }
grep -q "random init" "$work/bertmodel.log" || { cat "$work/bertmodel.log"; fail "import does not say the heads are new"; }

# 4. errors
"$tokdrop" train "$cfg" --set model.vocab= --set token_drop.enabled=false --set train.steps=1 \
    --set "run.dir=$work/novocab" 2>/dev/null || fail "run without a vocab"
"$tokdrop" export "$work/novocab/checkpoints/ckpt-00000001.h5" "$work/hf2" 2> "$work/novocab.log"
[ $? = 1 ] && grep -q "\-\-vocab" "$work/novocab.log" || { cat "$work/novocab.log"; fail "export without a vocab"; }
"$tokdrop" export "$work/novocab/checkpoints/ckpt-00000001.h5" "$work/hf2" --vocab "$work/fx/vocab.txt" \
    > /dev/null || fail "export with --vocab"
mkdir -p "$work/pickle"
cp "$work/hf/config.json" "$work/pickle/"
: > "$work/pickle/pytorch_model.bin"
"$tokdrop" import "$work/pickle" "$work/pickle.h5" 2> "$work/pickle.log"
[ $? = 1 ] && grep -q "pytorch_model.bin" "$work/pickle.log" || { cat "$work/pickle.log"; fail "import of a pickle"; }
mkdir -p "$work/roberta"
printf '{\n  "model_type": "roberta",\n  "hidden_size": 16\n}\n' > "$work/roberta/config.json"
"$tokdrop" import "$work/roberta" "$work/roberta.h5" 2> "$work/roberta.log"
[ $? = 1 ] && grep -q "config.json: key 'model_type': expected bert, got \"roberta\"" "$work/roberta.log" || { cat "$work/roberta.log"; fail "import of a roberta"; }
[ ! -e "$work/roberta.h5" ] && [ ! -e "$work/pickle.h5" ] || fail "a failed import left a file"
echo "export_import: all checks passed"
