#!/usr/bin/python3
"""Independent float64 PyTorch reference of tokdrop's first training step.

Written from SPEC.md alone (sections 1-3, 7, 8), not from the C sources:
BERT pretraining forward (post-LN), token dropping (SPEC 2), the loss
normalised by the global number of masked predictions, autograd gradients,
global-norm clipping, LAMB / AdamW at t = 1 with the warmup schedule, and the
EMA update of the importance table.

The entry point is first_step(cfg, vocab, params, batch, token_counts); the
batch is a dict of numpy arrays named as the dump's batch/* datasets.
"""
import copy
import glob
import json
import math

import numpy as np
import torch

from make_fixture import read_safetensors

torch.set_num_threads(1)

# ---- configuration ------------------------------------------------------------

DEFAULTS = {
    "model": {"vocab": "", "vocab_size": 30522, "hidden": 768, "layers": 12, "heads": 12,
              "intermediate": 3072, "max_position": 512, "type_vocab": 2, "hidden_act": "gelu",
              "hidden_dropout": 0.1, "attention_dropout": 0.1, "initializer_range": 0.02,
              "init": ""},
    "token_drop": {"enabled": False, "keep": 0, "first_layer": -1, "importance": "loss",
                   "loss_init": 10.0, "loss_beta": 0.995,
                   "allow": ["[UNK]", "[CLS]", "[SEP]", "[MASK]"], "deny": ["[PAD]"]},
    "data": {"train": "data/train/*.h5", "eval": "", "seq_len": 128, "max_pred": 20,
             "masking": "static"},
    "train": {"steps": 1000, "micro_batch": 32, "accumulation": 1, "seed": 12345, "threads": 0},
    "optimizer": {"name": "lamb", "lr": 0.001, "end_lr": 0.0, "warmup_steps": 100, "power": 1.0,
                  "beta1": 0.9, "beta2": 0.999, "eps": 1.0e-6, "weight_decay": 0.01,
                  "max_grad_norm": 1.0},
    "run": {"dir": "runs/default", "log_every": 10, "eval_every": 0, "eval_batches": 20,
            "checkpoint_every": 500, "keep_checkpoints": 3},
}


def _parse_scalar(s):
    s = s.strip()
    if s.startswith("[") and s.endswith("]"):
        inner = s[1:-1].strip()
        if not inner:
            return []
        # our emitter writes JSON strings and integers only
        return json.loads("[" + inner + "]")
    if s.startswith('"'):
        return json.loads(s)
    if s in ("true", "false"):
        return s == "true"
    try:
        return int(s)
    except ValueError:
        pass
    try:
        return float(s)
    except ValueError:
        return s


def _load_yaml(path):
    with open(path) as f:
        text = f.read()
    try:
        import yaml
        return yaml.safe_load(text) or {}
    except ImportError:
        pass
    # Fallback for the two-level form that make_fixture.py writes.
    out, sec = {}, None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):
            sec = line.rstrip().rstrip(":")
            out[sec] = {}
        else:
            k, v = line.strip().split(":", 1)
            out[sec][k] = _parse_scalar(v)
    return out


def load_config(path):
    """The config at path on top of SPEC section 8's defaults, 'auto' values resolved."""
    cfg = copy.deepcopy(DEFAULTS)
    for sec, keys in _load_yaml(path).items():
        if sec not in cfg:
            raise ValueError("%s: unknown section %s" % (path, sec))
        for k, v in (keys or {}).items():
            if k not in cfg[sec]:
                raise ValueError("%s: unknown key %s.%s" % (path, sec, k))
            cfg[sec][k] = v
    td = cfg["token_drop"]
    if td["keep"] == 0:
        td["keep"] = cfg["data"]["seq_len"] // 2
    if td["first_layer"] == -1:
        td["first_layer"] = cfg["model"]["layers"] // 2 - 1
    return cfg


def read_vocab(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").rstrip("\r") for line in f]


def resolve_tokens(entries, vocab):
    """allow/deny entries (strings through the vocab, or integer ids) -> ids."""
    index = {tok: i for i, tok in enumerate(vocab)}
    out = []
    for e in entries:
        if isinstance(e, int) and not isinstance(e, bool):
            out.append(e)
        elif e in index:
            out.append(index[e])
        else:
            raise ValueError("token %r is not in the vocabulary" % (e,))
    return out


def train_shards(cfg):
    return sorted(glob.glob(cfg["data"]["train"]))


def token_counts_of(cfg):
    import h5py
    V = cfg["model"]["vocab_size"]
    counts = np.zeros(V, np.int64)
    for path in train_shards(cfg):
        with h5py.File(path, "r") as f:
            counts += f["token_counts"][()].astype(np.int64)
    return counts

# ---- importance table and selection (SPEC 2) ----------------------------------


def init_importance(cfg, vocab, token_counts=None):
    """The table before the first step, as float32 (the C table's type)."""
    td = cfg["token_drop"]
    V = cfg["model"]["vocab_size"]
    if td["importance"] == "frequency":
        imp = -np.log(np.maximum(token_counts.astype(np.float64), 1.0))
    else:
        imp = np.full(V, float(td["loss_init"]))
    # Assumption: allow/deny override the frequency scores as well.
    imp[resolve_tokens(td["allow"], vocab)] = 1e4
    imp[resolve_tokens(td["deny"], vocab)] = -1e4  # deny wins
    return imp.astype(np.float32)


def select_kept(imp, input_ids, input_mask, keep):
    """[B, K] kept positions in increasing order: the K highest scores, pad
    positions below everything, ties to the lower position."""
    B, T = input_ids.shape
    kept = np.zeros((B, keep), np.int64)
    for b in range(B):
        score = imp[input_ids[b]].astype(np.float64)
        score[input_mask[b] == 0] = -np.inf
        # stable sort on -score: equal scores keep increasing position order
        order = np.argsort(-score, kind="stable")
        kept[b] = np.sort(order[:keep])
    return kept

# ---- the model (SPEC 1) ----------------------------------------------------------


def gelu(x, act):
    if act == "gelu":
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    if act == "gelu_tanh":
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    raise ValueError("hidden_act %r" % act)


def layer_norm(x, w, b, eps=1e-12):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def linear(x, p, name):
    return x @ p[name + ".weight"].t() + p[name + ".bias"]


def encoder_layer(p, cfg, i, xq, xkv, key_bias):
    """One post-LN layer; queries (and residual, FFN) on xq [B,Tq,H], keys and
    values from xkv [B,Tk,H], key_bias [B,Tk] added to every score row."""
    m = cfg["model"]
    A = m["heads"]
    B, Tq, H = xq.shape
    Tk = xkv.shape[1]
    d = H // A
    pre = "bert.encoder.layer.%d." % i
    q = linear(xq, p, pre + "attention.self.query").view(B, Tq, A, d).transpose(1, 2)
    k = linear(xkv, p, pre + "attention.self.key").view(B, Tk, A, d).transpose(1, 2)
    v = linear(xkv, p, pre + "attention.self.value").view(B, Tk, A, d).transpose(1, 2)
    s = q @ k.transpose(-1, -2) / math.sqrt(d) + key_bias[:, None, None, :]
    prob = torch.softmax(s, dim=-1)
    c = (prob @ v).transpose(1, 2).reshape(B, Tq, H)
    y = layer_norm(xq + linear(c, p, pre + "attention.output.dense"),
                   p[pre + "attention.output.LayerNorm.weight"],
                   p[pre + "attention.output.LayerNorm.bias"])
    h = gelu(linear(y, p, pre + "intermediate.dense"), m["hidden_act"])
    z = layer_norm(y + linear(h, p, pre + "output.dense"),
                   p[pre + "output.LayerNorm.weight"], p[pre + "output.LayerNorm.bias"])
    return z


def _gather_rows(x, idx):
    """x [B,T,...], idx [B,K] -> [B,K,...]."""
    if x.dim() == 2:
        return torch.gather(x, 1, idx)
    return torch.gather(x, 1, idx[:, :, None].expand(-1, -1, x.shape[2]))


def encode(p, cfg, ids, mask, seg, kept=None):
    """Final hidden states [B,T,H]; kept [B,K] (sorted) turns on dropping."""
    m = cfg["model"]
    L = m["layers"]
    B, T = ids.shape
    x = p["bert.embeddings.word_embeddings.weight"][ids] \
        + p["bert.embeddings.position_embeddings.weight"][:T][None] \
        + p["bert.embeddings.token_type_embeddings.weight"][seg]
    x = layer_norm(x, p["bert.embeddings.LayerNorm.weight"], p["bert.embeddings.LayerNorm.bias"])
    key_bias = torch.where(mask == 0, torch.tensor(-10000.0, dtype=x.dtype),
                           torch.tensor(0.0, dtype=x.dtype))
    if kept is None:
        for i in range(L):
            x = encoder_layer(p, cfg, i, x, x, key_bias)
        return x
    f = cfg["token_drop"]["first_layer"]
    if not 0 <= f <= L - 2:
        raise ValueError("first_layer %d outside [0, %d]" % (f, L - 2))
    for i in range(f):
        x = encoder_layer(p, cfg, i, x, x, key_bias)
    x_f_in = x  # what dropped tokens carry into the last layer
    h = encoder_layer(p, cfg, f, _gather_rows(x, kept), x, key_bias)  # cross attention
    kept_bias = _gather_rows(key_bias, kept)
    for i in range(f + 1, L - 1):
        h = encoder_layer(p, cfg, i, h, h, kept_bias)
    x_last = x_f_in.scatter(1, kept[:, :, None].expand(-1, -1, h.shape[2]), h)
    return encoder_layer(p, cfg, L - 1, x_last, x_last, key_bias)


def heads_and_loss(p, cfg, x, batch, n_masked_global, g_global):
    """Loss terms of a (micro-)batch, normalised by the global counts, and the
    per-prediction CE with its label for the importance update."""
    pos = batch["masked_lm_positions"]
    w = batch["masked_lm_weights"]
    sel = w > 0
    b_idx, j_idx = torch.nonzero(sel, as_tuple=True)
    hm = x[b_idx, pos[b_idx, j_idx]]  # gather the masked positions first
    t = gelu(linear(hm, p, "cls.predictions.transform.dense"), cfg["model"]["hidden_act"])
    t = layer_norm(t, p["cls.predictions.transform.LayerNorm.weight"],
                   p["cls.predictions.transform.LayerNorm.bias"])
    logits = t @ p["bert.embeddings.word_embeddings.weight"].t() + p["cls.predictions.bias"]
    labels = batch["masked_lm_ids"][b_idx, j_idx]
    ce = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    mlm = (ce * w[b_idx, j_idx]).sum() / n_masked_global
    pooled = torch.tanh(linear(x[:, 0], p, "bert.pooler.dense"))
    nsp_logits = linear(pooled, p, "cls.seq_relationship")
    nsp = torch.nn.functional.cross_entropy(nsp_logits, batch["next_sentence_labels"],
                                            reduction="sum") / g_global
    return mlm, nsp, ce.detach(), labels


def masked_lm_weights(positions):
    """SPEC 5: real predictions come first; the first position 0 ends them."""
    w = np.zeros(positions.shape, np.float32)
    for b in range(positions.shape[0]):
        for j in range(positions.shape[1]):
            if positions[b, j] == 0:
                break
            w[b, j] = 1.0
    return w


def to_torch_batch(batch, dtype=torch.float64):
    out = {k: torch.from_numpy(np.asarray(batch[k]).astype(np.int64))
           for k in ("input_ids", "input_mask", "segment_ids", "masked_lm_positions",
                     "masked_lm_ids", "next_sentence_labels")}
    out["masked_lm_weights"] = torch.from_numpy(np.asarray(batch["masked_lm_weights"],
                                                           np.float64)).to(dtype)
    return out


def forward_backward(cfg, params, batch, kept=None, micro_batches=1, dtype=torch.float64):
    """Loss terms and gradients over the global batch, computed as
    micro_batches consecutive slices whose losses use the global counts.
    float64 is the reference; float32 emulates a correct float32 trainer
    (used to show that the tolerances of compare.py are attainable)."""
    p = {k: torch.tensor(v, dtype=dtype, requires_grad=True) for k, v in params.items()}
    tb = to_torch_batch(batch, dtype)
    G = tb["input_ids"].shape[0]
    n_masked = float((tb["masked_lm_weights"] == 1).sum())
    if G % micro_batches:
        raise ValueError("G %d not divisible by %d" % (G, micro_batches))
    mb = G // micro_batches
    mlm_sum, nsp_sum, ces, labels = 0.0, 0.0, [], []
    for s in range(0, G, mb):
        sub = {k: v[s:s + mb] for k, v in tb.items()}
        sk = None if kept is None else torch.from_numpy(kept[s:s + mb])
        x = encode(p, cfg, sub["input_ids"], sub["input_mask"], sub["segment_ids"], sk)
        mlm, nsp, ce, lab = heads_and_loss(p, cfg, x, sub, n_masked, G)
        (mlm + nsp).backward()  # grads accumulate over micro-batches
        mlm_sum += mlm.item()
        nsp_sum += nsp.item()
        ces.append(ce)
        labels.append(lab)
    grads = {k: v.grad.numpy().astype(np.float64) if v.grad is not None
             else np.zeros(v.shape) for k, v in p.items()}
    return {"loss": mlm_sum + nsp_sum, "mlm_loss": mlm_sum, "nsp_loss": nsp_sum,
            "ce": torch.cat(ces).numpy().astype(np.float64),
            "labels": torch.cat(labels).numpy(), "grads": grads}


def loss_only(cfg, params, batch, kept=None):
    """The loss as a float64 number (for finite differences)."""
    with torch.no_grad():
        p = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in params.items()}
        tb = to_torch_batch(batch)
        G = tb["input_ids"].shape[0]
        n_masked = float((tb["masked_lm_weights"] == 1).sum())
        sk = None if kept is None else torch.from_numpy(kept)
        x = encode(p, cfg, tb["input_ids"], tb["input_mask"], tb["segment_ids"], sk)
        mlm, nsp, _, _ = heads_and_loss(p, cfg, x, tb, n_masked, G)
        return (mlm + nsp).item()

# ---- optimizer (SPEC 3) ----------------------------------------------------------


def no_decay(name):
    """Every bias (cls.predictions.bias included) and every LayerNorm tensor."""
    return name.endswith("bias") or "LayerNorm" in name


def lr_at(o, total, t):
    if t <= o["warmup_steps"]:
        return o["lr"] * t / o["warmup_steps"]
    t = min(t, total)
    frac = 1.0 - (t - o["warmup_steps"]) / (total - o["warmup_steps"])
    return o["end_lr"] + (o["lr"] - o["end_lr"]) * frac ** o["power"]


def global_norm(grads):
    return math.sqrt(sum(float(np.sum(np.asarray(g, np.float64) ** 2)) for g in grads.values()))


def optimizer_step(cfg, params, grads, t=1, dtype=np.float64):
    """The t-th update from zero moments (t = 1 for the first step): returns
    (new params, grad norm before clipping, clip factor, lr). dtype float32
    emulates a float32 optimizer (the norms stay in double, as in the C)."""
    o = cfg["optimizer"]
    norm = global_norm(grads)
    clip = 1.0
    if o["max_grad_norm"] > 0 and norm > 0:
        clip = min(1.0, o["max_grad_norm"] / norm)
    lr = lr_at(o, cfg["train"]["steps"], t)
    b1, b2 = o["beta1"], o["beta2"]
    out = {}
    c = lambda x: dtype(x)  # noqa: E731  scalars in the working precision
    for name, w in params.items():
        w = np.asarray(w, dtype)
        g = np.asarray(grads[name], dtype) * c(clip)
        m = c(1 - b1) * g
        v = c(1 - b2) * g * g
        mh = m / c(1 - b1 ** t)
        vh = v / c(1 - b2 ** t)
        decay = not no_decay(name)
        u = mh / (np.sqrt(vh) + c(o["eps"]))
        if decay:
            u = u + c(o["weight_decay"]) * w
        r = 1.0
        if o["name"] == "lamb" and decay:
            wn = np.linalg.norm(w.astype(np.float64))
            un = np.linalg.norm(u.astype(np.float64))
            if wn > 0 and un > 0:
                r = wn / un
        elif o["name"] not in ("lamb", "adamw"):
            raise ValueError("optimizer %r" % o["name"])
        out[name] = (w - c(lr * r) * u).astype(np.float64)
    return out, norm, clip, lr

# ---- the step ----------------------------------------------------------------------


def update_importance(cfg, vocab, imp, ce, labels):
    """EMA of the mean CE per label id; allow and deny ids never change."""
    td = cfg["token_drop"]
    new = imp.astype(np.float64)
    if td["importance"] != "loss":
        return new
    V = len(new)
    sums = np.zeros(V)
    cnt = np.zeros(V)
    np.add.at(sums, labels, ce)
    np.add.at(cnt, labels, 1)
    fixed = set(resolve_tokens(td["allow"], vocab)) | set(resolve_tokens(td["deny"], vocab))
    beta = td["loss_beta"]
    for y in np.nonzero(cnt)[0]:
        if int(y) in fixed:
            continue
        new[y] = beta * new[y] + (1 - beta) * sums[y] / cnt[y]
    return new


def first_step(cfg, vocab, params, batch, token_counts=None, micro_batches=1,
               dtype=torch.float64):
    """Everything the dump holds, computed from SPEC for the given global batch."""
    td = cfg["token_drop"]
    imp0 = init_importance(cfg, vocab, token_counts)
    kept = None
    if td["enabled"]:
        if td["importance"] == "random":
            raise ValueError("random importance is not reproducible by the reference")
        kept = select_kept(imp0, np.asarray(batch["input_ids"]), np.asarray(batch["input_mask"]),
                           td["keep"])
    fb = forward_backward(cfg, params, batch, kept, micro_batches, dtype)
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    grads = {k: v.astype(np_dtype) for k, v in fb["grads"].items()}
    new_params, norm, clip, lr = optimizer_step(cfg, params, grads, 1, np_dtype)
    return {"loss": fb["loss"], "mlm_loss": fb["mlm_loss"], "nsp_loss": fb["nsp_loss"],
            "importance0": imp0, "importance": update_importance(cfg, vocab, imp0, fb["ce"],
                                                                 fb["labels"]),
            "kept": kept, "grads": fb["grads"], "params": new_params, "grad_norm": norm,
            "clip": clip, "lr": lr}


def batch_from_shards(cfg, rows):
    """A global batch made of the given global sample indices (files in sorted
    glob order, rows in file order), weights derived per SPEC 5."""
    import h5py
    keys = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions", "masked_lm_ids",
            "next_sentence_labels")
    data = {k: [] for k in keys}
    for path in train_shards(cfg):
        with h5py.File(path, "r") as f:
            for k in keys:
                data[k].append(f[k][()].astype(np.int32))
    data = {k: np.concatenate(v)[rows] for k, v in data.items()}
    data["masked_lm_weights"] = masked_lm_weights(data["masked_lm_positions"])
    return data


def load_params(path):
    return {k: v.astype(np.float64) for k, v in read_safetensors(path).items()}
