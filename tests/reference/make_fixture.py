#!/usr/bin/python3
"""Writes the tiny, deterministic fixture of the reference cross-check tests.

    make_fixture.py DIR

DIR receives:
  vocab.txt            60 tokens; the specials are NOT at ids 1..4 (they sit
                       where BERT's vocab has them relative to [unused] rows)
                       so that an implementation which hard-codes ids fails;
  train/shard_000.h5   16 sequences, T = 16, max_pred 4, NVIDIA dtypes
                       (ids int32, mask/segments/nsp int8), varied padding,
                       1..4 real predictions per row, repeated labels (one of
                       them [UNK]), 80/10/10 corruption, token_counts [V];
  init.safetensors     a tiny BERT (V 60, H 16, L 4, A 2, I 32, P 32);
  configs/<case>.yaml  one config per case of CASES (absolute paths).

Everything comes from a fixed numpy seed, so two builds are byte-identical.
"""
import json
import os
import struct
import sys

import h5py
import numpy as np

V, H, L, A, I, P = 60, 16, 4, 2, 32, 32
T, N_SEQ, MAX_PRED = 16, 16, 4

SPECIALS = ["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PAD, UNK, CLS, SEP, MASK = 0, 3, 4, 5, 6
FIRST_WORD = len(SPECIALS)

# The cases. Every config has dropout 0, 10 steps, warmup 3 (lr at t = 1 is
# lr / 3) and lr 1e-2 so that the update is visible in float32, and
# max_grad_norm 5 (clipping inactive: the global norm is ~3.5) unless a case
# says otherwise.
CASES = {
    # (a) the full model, LAMB
    "a": {},
    # (b) token dropping, loss importance, LAMB, mild clipping (norm ~3.4)
    "b": {"token_drop": {"enabled": True, "keep": 8, "first_layer": 1, "importance": "loss"},
          "optimizer": {"max_grad_norm": 1.0}},
    # (c) keep == T: must equal (a)
    "c": {"token_drop": {"enabled": True, "keep": T, "first_layer": 1, "importance": "loss"}},
    # (d) AdamW, dropping from layer L-2 (no kept-only layer), tanh gelu,
    #     allow list mixing strings and an integer id ([MASK] = 6) and
    #     leaving [UNK] out, stronger weight decay
    "d": {"model": {"hidden_act": "gelu_tanh"},
          "token_drop": {"enabled": True, "keep": 6, "first_layer": L - 2, "importance": "loss",
                         "allow": ["[CLS]", "[SEP]", MASK]},
          "optimizer": {"name": "adamw", "weight_decay": 0.1}},
    # (e) frequency importance, dropping from layer 0 (dropped tokens
    #     re-enter the last layer with the embedding output)
    "e": {"token_drop": {"enabled": True, "keep": 8, "first_layer": 0, "importance": "frequency"}},
    # (f) the global batch of (a) as 2 micro-batches of 4
    "f": {"train": {"micro_batch": 4, "accumulation": 2}},
    # (g) gradient clipping strongly active (the global norm is ~3.4)
    "g": {"token_drop": {"enabled": True, "keep": 8, "first_layer": 1, "importance": "loss"},
          "optimizer": {"max_grad_norm": 0.01}},
    # (h) 2 ranks x micro-batch 4 (G = 8), dropping: the gradient and the
    #     importance statistics are allreduced
    "h": {"token_drop": {"enabled": True, "keep": 8, "first_layer": 1, "importance": "loss"},
          "train": {"micro_batch": 4}},
}
# MPI ranks a case runs on (1 when absent).
RANKS = {"h": 2}


def param_shapes():
    """HF BertForPreTraining names and shapes (SPEC section 1), in a fixed order."""
    s = [("bert.embeddings.word_embeddings.weight", (V, H)),
         ("bert.embeddings.position_embeddings.weight", (P, H)),
         ("bert.embeddings.token_type_embeddings.weight", (2, H)),
         ("bert.embeddings.LayerNorm.weight", (H,)),
         ("bert.embeddings.LayerNorm.bias", (H,))]
    for layer in range(L):
        p = "bert.encoder.layer.%d." % layer
        for qkv in ("query", "key", "value"):
            s += [(p + "attention.self.%s.weight" % qkv, (H, H)),
                  (p + "attention.self.%s.bias" % qkv, (H,))]
        s += [(p + "attention.output.dense.weight", (H, H)),
              (p + "attention.output.dense.bias", (H,)),
              (p + "attention.output.LayerNorm.weight", (H,)),
              (p + "attention.output.LayerNorm.bias", (H,)),
              (p + "intermediate.dense.weight", (I, H)), (p + "intermediate.dense.bias", (I,)),
              (p + "output.dense.weight", (H, I)), (p + "output.dense.bias", (H,)),
              (p + "output.LayerNorm.weight", (H,)), (p + "output.LayerNorm.bias", (H,))]
    s += [("bert.pooler.dense.weight", (H, H)), ("bert.pooler.dense.bias", (H,)),
          ("cls.predictions.transform.dense.weight", (H, H)),
          ("cls.predictions.transform.dense.bias", (H,)),
          ("cls.predictions.transform.LayerNorm.weight", (H,)),
          ("cls.predictions.transform.LayerNorm.bias", (H,)),
          ("cls.predictions.bias", (V,)),
          ("cls.seq_relationship.weight", (2, H)), ("cls.seq_relationship.bias", (2,))]
    return s


def write_safetensors(path, tensors):
    """Plain safetensors: u64 LE header length, JSON header, F32 data."""
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        b = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)  # data 8-byte aligned, as the reference writer does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        if h["dtype"] != "F32":
            raise ValueError("%s: tensor %s has dtype %s, expected F32" % (path, name, h["dtype"]))
        a, b = h["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype="<f4").reshape(h["shape"]).copy()
    return out


def make_params(rng):
    """BERT's init (normal, std 0.02) scaled to the tiny width: 0.02 at
    H = 768 gives Linear outputs of std 0.02 sqrt(768) ~ 0.55; at H = 16 the
    same signal needs std ~0.15. With 0.02 itself every layer would be close
    to the identity, all [CLS] states alike (the NSP gradients then cancel
    to a few float32 ulps) and erf and tanh gelu indistinguishable. Query
    and key weights are larger still (0.3) so that attention is far from
    uniform and masking and dropping change the softmax visibly. LayerNorm
    weights are 1 +- 0.1 and biases small but nonzero, so every path of the
    backward pass carries a distinct signal."""
    out = {}
    for name, shape in param_shapes():
        if "LayerNorm.weight" in name:
            a = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name.endswith("bias"):
            a = 0.05 * rng.standard_normal(shape)
        elif "attention.self.query" in name or "attention.self.key" in name:
            a = 0.3 * rng.standard_normal(shape)
        else:
            a = 0.15 * rng.standard_normal(shape)
        out[name] = a.astype(np.float32)
    return out


def make_shard(rng):
    lengths = [16, 16, 9, 12, 7, 14, 16, 10, 11, 8, 13, 16, 15, 6, 12, 10]
    assert len(lengths) == N_SEQ
    n_words = V - FIRST_WORD
    # Zipf-like word frequencies so that token counts (frequency importance)
    # vary, with ties among the rare words.
    wp = 1.0 / np.arange(1, n_words + 1) ** 1.1
    wp /= wp.sum()
    label_pool = [FIRST_WORD + 1, FIRST_WORD + 2, FIRST_WORD + 5, FIRST_WORD + 9, UNK]

    ids = np.zeros((N_SEQ, T), np.int32)
    mask = np.zeros((N_SEQ, T), np.int8)
    seg = np.zeros((N_SEQ, T), np.int8)
    mpos = np.zeros((N_SEQ, MAX_PRED), np.int32)
    mids = np.zeros((N_SEQ, MAX_PRED), np.int32)
    nsp = np.zeros((N_SEQ,), np.int8)
    k_pred = 0
    for s, n in enumerate(lengths):
        words = FIRST_WORD + rng.choice(n_words, size=n, p=wp)
        a_len = int(rng.integers(1, n - 3))  # [CLS] A.. [SEP] B.. [SEP], B non-empty
        toks = [CLS] + list(words[:a_len]) + [SEP]
        toks += list(words[a_len:n - 3]) + [SEP]
        assert len(toks) == n
        if s == 5:
            toks[2] = UNK  # an [UNK] in the text that is not masked
        ids[s, :n] = toks
        mask[s, :n] = 1
        seg[s, a_len + 2:n] = 1
        cand = [t for t in range(1, n) if toks[t] not in (CLS, SEP)]
        n_pred = min(1 + s % MAX_PRED, len(cand))
        pos = np.sort(rng.choice(cand, size=n_pred, replace=False))
        for j, t in enumerate(pos):
            if rng.random() < 0.7:
                label = label_pool[int(rng.integers(len(label_pool)))]
            else:
                label = int(ids[s, t])
            mode = k_pred % 10  # 80% [MASK], 10% random word, 10% unchanged
            k_pred += 1
            if mode < 8:
                ids[s, t] = MASK
            elif mode == 8:
                ids[s, t] = FIRST_WORD + int(rng.integers(n_words))
            else:
                ids[s, t] = label
            mpos[s, j] = t
            mids[s, j] = label
        nsp[s] = s % 3 == 1 or s % 5 == 0
    counts = np.zeros(V, np.int64)
    np.add.at(counts, ids[mask == 1], 1)
    return {"input_ids": ids, "input_mask": mask, "segment_ids": seg,
            "masked_lm_positions": mpos, "masked_lm_ids": mids,
            "next_sentence_labels": nsp, "token_counts": counts}


def _yaml_scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, float):
        r = repr(v)
        if "e" in r and "." not in r.split("e")[0]:
            r = r.replace("e", ".0e")  # YAML 1.1 floats need a dot
        return r
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a YAML double-quoted scalar
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_yaml_scalar(x) for x in v) + "]"
    raise TypeError(v)


def to_yaml(cfg):
    lines = []
    for sec, keys in cfg.items():
        lines.append("%s:" % sec)
        for k, v in keys.items():
            lines.append("  %s: %s" % (k, _yaml_scalar(v)))
    return "\n".join(lines) + "\n"


def case_config(root, case):
    cfg = {
        "model": {"vocab": os.path.join(root, "vocab.txt"), "vocab_size": V, "hidden": H,
                  "layers": L, "heads": A, "intermediate": I, "max_position": P, "type_vocab": 2,
                  "hidden_act": "gelu", "hidden_dropout": 0.0, "attention_dropout": 0.0,
                  "initializer_range": 0.02, "init": os.path.join(root, "init.safetensors")},
        "token_drop": {"enabled": False, "keep": 0, "first_layer": -1, "importance": "loss",
                       "loss_init": 10.0, "loss_beta": 0.995,
                       "allow": ["[UNK]", "[CLS]", "[SEP]", "[MASK]"], "deny": ["[PAD]"]},
        "data": {"train": os.path.join(root, "train", "*.h5"), "eval": "", "seq_len": T,
                 "max_pred": MAX_PRED, "masking": "static"},
        "train": {"steps": 10, "micro_batch": 8, "accumulation": 1, "seed": 1234, "threads": 1},
        "optimizer": {"name": "lamb", "lr": 0.01, "end_lr": 0.0, "warmup_steps": 3, "power": 1.0,
                      "beta1": 0.9, "beta2": 0.999, "eps": 1.0e-6, "weight_decay": 0.01,
                      "max_grad_norm": 5.0},
        "run": {"dir": os.path.join(root, "run_" + case), "log_every": 1, "eval_every": 0,
                "eval_batches": 1, "checkpoint_every": 1000, "keep_checkpoints": 1},
    }
    for sec, keys in CASES[case].items():
        cfg[sec].update(keys)
    return cfg


def build(root):
    """Writes the fixture into root; returns {case: config path}."""
    root = os.path.abspath(root)
    rng = np.random.default_rng(20240611)
    os.makedirs(os.path.join(root, "train"), exist_ok=True)
    os.makedirs(os.path.join(root, "configs"), exist_ok=True)
    words = ["w%02d" % i for i in range(V - FIRST_WORD)]
    with open(os.path.join(root, "vocab.txt"), "w") as f:
        f.write("\n".join(SPECIALS + words) + "\n")
    shard = make_shard(rng)
    with h5py.File(os.path.join(root, "train", "shard_000.h5"), "w") as f:
        for k, v in shard.items():
            f.create_dataset(k, data=v)
    write_safetensors(os.path.join(root, "init.safetensors"), make_params(rng))
    paths = {}
    for case in CASES:
        p = os.path.join(root, "configs", case + ".yaml")
        with open(p, "w") as f:
            f.write(to_yaml(case_config(root, case)))
        paths[case] = p
    return paths


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_fixture.py DIR")
    for case, path in build(sys.argv[1]).items():
        print(case, path)
