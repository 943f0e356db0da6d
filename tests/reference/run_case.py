#!/usr/bin/python3
"""Runs the reference cross-checks of tokdrop's first step (CTest driver).

    run_case.py --tokdrop BIN --case b --workdir DIR
        builds the fixture in DIR/fx, runs `tokdrop train fx/configs/b.yaml
        --dump DIR/dump_b.h5` (under mpirun for multi-rank cases) and
        compares the dump with the float64 reference (compare.py).
    run_case.py --tokdrop BIN --pair a c --exact --workdir DIR
    run_case.py --tokdrop BIN --pair a f --rtol 1e-6 --tensor-rtol 1e-5 --workdir DIR
        runs both cases and requires their dumps to agree.
    run_case.py --self-test [--workdir DIR]
        validates the reference and compare.py without tokdrop: torch's own
        TransformerEncoderLayer, finite differences, an independent masked
        formulation of token dropping, keep == T, micro-batching, a float32
        emulation that must pass compare.py, and mutated references and
        corrupted dumps that compare.py must reject.
Exit status 0 on success, 1 on any failure.
"""
import argparse
import contextlib
import copy
import os
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bert_ref as R  # noqa: E402
import compare as C  # noqa: E402
import make_fixture as F  # noqa: E402

torch.set_num_threads(1)


def build_fixture(workdir):
    fx = os.path.join(workdir, "fx")
    if os.path.isdir(fx):
        shutil.rmtree(fx)  # also removes run dirs, so no run resumes a checkpoint
    return F.build(fx)


def run_tokdrop(tokdrop, cfg_path, dump_path, workdir, ranks, mpirun="mpirun"):
    if not (os.path.isfile(tokdrop) and os.access(tokdrop, os.X_OK)):
        print("FAIL tokdrop binary not found or not executable: %s" % tokdrop)
        return False
    if os.path.exists(dump_path):
        os.remove(dump_path)
    cmd = [tokdrop, "train", cfg_path, "--dump", dump_path]
    if ranks > 1:
        cmd = [mpirun, "-np", str(ranks), "--oversubscribe", "--bind-to", "none"] + cmd
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    print("$ " + " ".join(cmd), flush=True)
    try:
        p = subprocess.run(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=300)
    except subprocess.TimeoutExpired:
        print("FAIL tokdrop did not finish in 300 s")
        return False
    out = p.stdout.decode(errors="replace")
    print(out[-4000:], end="" if out.endswith("\n") else "\n")
    if p.returncode != 0:
        print("FAIL tokdrop exited with status %d" % p.returncode)
        return False
    if not os.path.isfile(dump_path):
        print("FAIL tokdrop exited 0 but wrote no dump at %s" % dump_path)
        return False
    return True


def run_case(tokdrop, case, workdir, mpirun):
    os.makedirs(workdir, exist_ok=True)
    cfgs = build_fixture(workdir)
    dump = os.path.join(workdir, "dump_%s.h5" % case)
    if not run_tokdrop(tokdrop, cfgs[case], dump, workdir, F.RANKS.get(case, 1), mpirun):
        return 1
    rep = C.compare_dump(cfgs[case], dump)
    print("case %s: %s" % (case, "FAILED (%d)" % len(rep.failures) if rep.failures else "OK"))
    return 1 if rep.failures else 0


def run_pair(tokdrop, a, b, workdir, rtol, exact, tensor_rtol, mpirun):
    os.makedirs(workdir, exist_ok=True)
    cfgs = build_fixture(workdir)
    dumps = []
    for case in (a, b):
        dumps.append(os.path.join(workdir, "dump_%s.h5" % case))
        if not run_tokdrop(tokdrop, cfgs[case], dumps[-1], workdir, F.RANKS.get(case, 1),
                           mpirun):
            return 1
    rep = C.compare_pair(dumps[0], dumps[1], rtol, exact, tensor_rtol)
    print("pair %s %s: %s" % (a, b, "FAILED" if rep.failures else "OK"))
    return 1 if rep.failures else 0

# ---- self-test -----------------------------------------------------------------


class Checks:
    def __init__(self):
        self.n = 0
        self.failed = []

    def check(self, ok, what):
        self.n += 1
        print("%s %s" % ("ok  " if ok else "FAIL", what), flush=True)
        if not ok:
            self.failed.append(what)


@contextlib.contextmanager
def patched(obj, name, value):
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def load_case(cfgs, case):
    cfg = R.load_config(cfgs[case])
    vocab = R.read_vocab(cfg["model"]["vocab"])
    init = R.load_params(cfg["model"]["init"])
    counts = R.token_counts_of(cfg) if cfg["token_drop"]["importance"] == "frequency" else None
    return cfg, vocab, init, counts


# A global batch like tokdrop would draw: 8 distinct samples, not in file order.
# Rows 13 and 4 have 6 and 7 real tokens (with keep 8 some pads are kept);
# rows 10 and 1 have [UNK] labels.
SELF_TEST_ROWS = np.array([3, 12, 0, 13, 10, 5, 1, 4])


def torch_layer_check(chk, cfg, init, batch):
    """encoder_layer against torch.nn.TransformerEncoderLayer (post-LN)."""
    m = cfg["model"]
    H, A, I = m["hidden"], m["heads"], m["intermediate"]
    p = {k: torch.tensor(v) for k, v in init.items()}
    tb = R.to_torch_batch(batch)
    x = torch.randn(tb["input_ids"].shape + (H,), dtype=torch.float64,
                    generator=torch.Generator().manual_seed(1))
    key_bias = torch.where(tb["input_mask"] == 0, -10000.0, 0.0).double()
    for act in ("gelu", "gelu_tanh"):
        c = copy.deepcopy(cfg)
        c["model"]["hidden_act"] = act
        fn = "gelu" if act == "gelu" else \
            (lambda t: torch.nn.functional.gelu(t, approximate="tanh"))
        ok = True
        for i in range(m["layers"]):
            pre = "bert.encoder.layer.%d." % i
            ref = torch.nn.TransformerEncoderLayer(H, A, I, 0.0, fn, 1e-12, batch_first=True,
                                                   norm_first=False).double().train()
            with torch.no_grad():
                ref.self_attn.in_proj_weight.copy_(torch.cat(
                    [p[pre + "attention.self.%s.weight" % n] for n in ("query", "key", "value")]))
                ref.self_attn.in_proj_bias.copy_(torch.cat(
                    [p[pre + "attention.self.%s.bias" % n] for n in ("query", "key", "value")]))
                ref.self_attn.out_proj.weight.copy_(p[pre + "attention.output.dense.weight"])
                ref.self_attn.out_proj.bias.copy_(p[pre + "attention.output.dense.bias"])
                ref.linear1.weight.copy_(p[pre + "intermediate.dense.weight"])
                ref.linear1.bias.copy_(p[pre + "intermediate.dense.bias"])
                ref.linear2.weight.copy_(p[pre + "output.dense.weight"])
                ref.linear2.bias.copy_(p[pre + "output.dense.bias"])
                ref.norm1.weight.copy_(p[pre + "attention.output.LayerNorm.weight"])
                ref.norm1.bias.copy_(p[pre + "attention.output.LayerNorm.bias"])
                ref.norm2.weight.copy_(p[pre + "output.LayerNorm.weight"])
                ref.norm2.bias.copy_(p[pre + "output.LayerNorm.bias"])
                want = ref(x, src_key_padding_mask=tb["input_mask"] == 0)
                got = R.encoder_layer(p, c, i, x, x, key_bias)
            # rows of pad queries differ (-inf vs -10000 changes nothing for
            # them either, but compare only real rows to be safe)
            real = tb["input_mask"] == 1
            err = (want - got)[real].abs().max().item()
            ok = ok and err < 1e-12
        chk.check(ok, "encoder layer (%s) equals torch.nn.TransformerEncoderLayer, max err %.1e"
                  % (act, err))


def encode_masked(p, cfg, ids, mask, seg, kept):
    """Token dropping without gather/scatter: full-length tensors throughout;
    after layer f the dropped rows are reset to the input of layer f, and
    layers f+1..L-2 mask dropped keys. Must equal R.encode(..., kept)."""
    L = cfg["model"]["layers"]
    f = cfg["token_drop"]["first_layer"]
    B, T = ids.shape
    x = p["bert.embeddings.word_embeddings.weight"][ids] \
        + p["bert.embeddings.position_embeddings.weight"][:T][None] \
        + p["bert.embeddings.token_type_embeddings.weight"][seg]
    x = R.layer_norm(x, p["bert.embeddings.LayerNorm.weight"], p["bert.embeddings.LayerNorm.bias"])
    is_kept = torch.zeros(B, T, dtype=torch.bool)
    for b in range(B):
        is_kept[b, kept[b]] = True
    pad_bias = torch.where(mask == 0, -10000.0, 0.0).double()
    kept_bias = torch.where((mask == 0) | ~is_kept, -10000.0, 0.0).double()
    for i in range(L):
        if i < f or i == L - 1:
            x = R.encoder_layer(p, cfg, i, x, x, pad_bias)
        else:
            if i == f:
                x_f_in = x
            y = R.encoder_layer(p, cfg, i, x, x, pad_bias if i == f else kept_bias)
            x = torch.where(is_kept[:, :, None], y, x_f_in)
    return x


def variant_encode(keys_kept_at_f=False, reenter_embedding=False, last_layer_kept_keys=False):
    """Mutated token dropping, for the self-test's negative checks."""
    def encode(p, cfg, ids, mask, seg, kept=None):
        if kept is None:
            return orig_encode(p, cfg, ids, mask, seg, None)
        L, f = cfg["model"]["layers"], cfg["token_drop"]["first_layer"]
        T = ids.shape[1]
        x = p["bert.embeddings.word_embeddings.weight"][ids] \
            + p["bert.embeddings.position_embeddings.weight"][:T][None] \
            + p["bert.embeddings.token_type_embeddings.weight"][seg]
        x = R.layer_norm(x, p["bert.embeddings.LayerNorm.weight"],
                         p["bert.embeddings.LayerNorm.bias"])
        x0 = x
        kb = torch.where(mask == 0, -10000.0, 0.0).to(x.dtype)
        for i in range(f):
            x = R.encoder_layer(p, cfg, i, x, x, kb)
        x_f_in = x0 if reenter_embedding else x
        xq = R._gather_rows(x, kept)
        kept_bias = R._gather_rows(kb, kept)
        if keys_kept_at_f:
            h = R.encoder_layer(p, cfg, f, xq, xq, kept_bias)
        else:
            h = R.encoder_layer(p, cfg, f, xq, x, kb)
        for i in range(f + 1, L - 1):
            h = R.encoder_layer(p, cfg, i, h, h, kept_bias)
        x_last = x_f_in.scatter(1, kept[:, :, None].expand(-1, -1, h.shape[2]), h)
        last_bias = kb
        if last_layer_kept_keys:
            dropped = torch.ones_like(mask, dtype=torch.bool).scatter(1, kept, False)
            last_bias = torch.where(dropped, -10000.0, 0.0).to(x.dtype) + kb
        return R.encoder_layer(p, cfg, L - 1, x_last, x_last, last_bias)
    orig_encode = R.encode
    return encode


def finite_difference_check(chk, case, cfg, vocab, init, batch, counts):
    td = cfg["token_drop"]
    imp0 = R.init_importance(cfg, vocab, counts)
    kept = R.select_kept(imp0, batch["input_ids"], batch["input_mask"], td["keep"]) \
        if td["enabled"] else None
    fb = R.forward_backward(cfg, init, batch, kept)
    L, f = cfg["model"]["layers"], td["first_layer"]
    names = ["bert.embeddings.word_embeddings.weight", "bert.embeddings.position_embeddings.weight",
             "bert.embeddings.LayerNorm.weight",
             "bert.encoder.layer.%d.attention.self.query.weight" % f,
             "bert.encoder.layer.%d.attention.self.key.weight" % f,
             "bert.encoder.layer.%d.attention.self.value.bias" % (f + 1),
             "bert.encoder.layer.%d.intermediate.dense.weight" % (L - 2),
             "bert.encoder.layer.%d.output.LayerNorm.bias" % (L - 1),
             "bert.pooler.dense.weight", "cls.predictions.transform.dense.weight",
             "cls.predictions.bias", "cls.seq_relationship.bias"]
    h = 1e-5
    worst = 0.0
    for name in names:
        g = fb["grads"][name]
        idx = np.unravel_index(np.argmax(np.abs(g)), g.shape)
        vals = []
        for s in (1, -1):
            q = dict(init)
            q[name] = init[name].copy()
            q[name][idx] += s * h
            vals.append(R.loss_only(cfg, q, batch, kept))
        fd = (vals[0] - vals[1]) / (2 * h)
        worst = max(worst, abs(fd - g[idx]) / abs(g[idx]))
    chk.check(worst < 1e-5, "case %s: finite differences match autograd on %d tensors, worst "
              "relative error %.1e" % (case, len(names), worst))
    # The key bias: zero in exact arithmetic (compare.py relies on it).
    name = "bert.encoder.layer.%d.attention.self.key.bias" % f
    q = dict(init)
    q[name] = init[name] + 0.1
    d = abs(R.loss_only(cfg, q, batch, kept) - R.loss_only(cfg, init, batch, kept))
    chk.check(d < 1e-12, "case %s: the loss does not depend on %s (change %.1e)" % (case, name, d))


def mutations():
    """(description, case, kind, value): references that are wrong in one
    SPEC detail; compare.py must reject their dumps."""
    def cfg_set(sec, key, val):
        def fn(cfg):
            cfg[sec][key] = val
        return ("cfg", fn)

    def ln_eps(x, w, b, eps=1e-5):
        return ORIG["layer_norm"](x, w, b, eps)

    def ties_high(imp, ids, mask, keep):
        B, T = ids.shape
        out = np.zeros((B, keep), np.int64)
        for b in range(B):
            s = imp[ids[b]].astype(np.float64)
            s[mask[b] == 0] = -np.inf
            order = T - 1 - np.argsort(-s[::-1], kind="stable")
            out[b] = np.sort(order[:keep])
        return out

    def update_with_allow(cfg, vocab, imp, ce, labels):
        c = copy.deepcopy(cfg)
        c["token_drop"]["allow"] = []
        return ORIG["update_importance"](c, vocab, imp, ce, labels)

    def freq_no_override(cfg, vocab, counts=None):
        imp = ORIG["init_importance"](cfg, vocab, counts)
        if cfg["token_drop"]["importance"] == "frequency":
            imp = (-np.log(np.maximum(counts.astype(np.float64), 1.0))).astype(np.float32)
        return imp

    def mlm_per_slot(p, cfg, x, batch, n_masked, g):
        return ORIG["heads_and_loss"](p, cfg, x, batch, float(batch["masked_lm_weights"].numel()),
                                      g)

    def tanh_nsp_missing(p, cfg, x, batch, n_masked, g):
        mlm, nsp, ce, lab = ORIG["heads_and_loss"](p, cfg, x, batch, n_masked, g)
        return mlm, nsp * 0.5, ce, lab

    return [
        ("first_layer one too deep", "b", "cfg", cfg_set("token_drop", "first_layer", 2)[1]),
        ("keep one less", "b", "cfg", cfg_set("token_drop", "keep", 7)[1]),
        ("layer f attends to the kept keys only", "b", "encode",
         variant_encode(keys_kept_at_f=True)),
        ("dropped tokens re-enter with the embedding output", "b", "encode",
         variant_encode(reenter_embedding=True)),
        ("dropped tokens are masked keys in the last layer", "d", "encode",
         variant_encode(last_layer_kept_keys=True)),
        ("selection ties go to the higher position", "b", "select_kept", ties_high),
        ("pad keys not masked", "a", "encoder_layer",
         lambda p, cfg, i, xq, xkv, kb: ORIG["encoder_layer"](p, cfg, i, xq, xkv, kb * 0)),
        ("erf gelu where gelu_tanh is asked", "d", "cfg",
         cfg_set("model", "hidden_act", "gelu")[1]),
        ("LayerNorm eps 1e-5", "a", "layer_norm", ln_eps),
        ("MLM loss divided by all max_pred slots", "a", "heads_and_loss", mlm_per_slot),
        ("NSP loss halved", "a", "heads_and_loss", tanh_nsp_missing),
        ("weight decay on biases and LayerNorm", "a", "no_decay", lambda n: False),
        ("no warmup (full lr at t = 1)", "a", "cfg", cfg_set("optimizer", "warmup_steps", 1)[1]),
        ("no gradient clipping", "g", "cfg", cfg_set("optimizer", "max_grad_norm", 0.0)[1]),
        ("LAMB trust ratio in AdamW", "d", "cfg", cfg_set("optimizer", "name", "lamb")[1]),
        ("weight decay 0.01 instead of 0.1", "d", "cfg",
         cfg_set("optimizer", "weight_decay", 0.01)[1]),
        ("EMA with beta and 1 - beta swapped", "b", "cfg",
         cfg_set("token_drop", "loss_beta", 0.005)[1]),
        ("EMA updates allow ids too", "b", "update_importance", update_with_allow),
        ("frequency scores without the allow/deny override", "e", "init_importance",
         freq_no_override),
    ]


ORIG = {k: getattr(R, k) for k in ("layer_norm", "select_kept", "update_importance",
                                   "init_importance", "heads_and_loss", "encoder_layer",
                                   "encode", "no_decay")}


def corruptions():
    """(description, function on an open h5py file): dumps compare.py must reject."""
    def scale(name, s):
        def fn(f):
            d = f[name]
            d[...] = d[()] * s
        return fn

    def delete(name):
        def fn(f):
            del f[name]
        return fn

    def add(name, shape):
        def fn(f):
            f.create_dataset(name, data=np.zeros(shape, np.float32))
        return fn

    def swap_kept(f):
        k = f["kept"][()]
        k[0, [0, -1]] = k[0, [-1, 0]]
        f["kept"][...] = k

    def alter_batch(f):
        ids = f["batch/input_ids"][()]
        ids[2, 1] = 9 if ids[2, 1] != 9 else 10
        f["batch/input_ids"][...] = ids

    def alter_weights(f):
        w = f["batch/masked_lm_weights"][()]
        row = np.nonzero((w == 0).any(1))[0][0]
        w[row, :] = 1.0
        f["batch/masked_lm_weights"][...] = w

    def loss_sum(f):
        f["loss"][()] = f["loss"][()] * (1 + 3e-5)

    def key_bias_like_query_bias(f):
        g = f["grad/bert.encoder.layer.0.attention.self.query.bias"][()]
        f["grad/bert.encoder.layer.0.attention.self.key.bias"][...] = g

    def duplicate_row(f):
        for k in C.BATCH_KEYS:
            a = f["batch/" + k][()]
            a[1] = a[0]
            f["batch/" + k][...] = a

    return [
        ("a gradient off by 2e-5", "b", scale("grad/bert.encoder.layer.1.output.dense.weight",
                                               1 + 2e-5)),
        ("the tied decoder half of the word-embedding gradient", "a",
         scale("grad/bert.embeddings.word_embeddings.weight", 0.5)),
        ("a parameter off by 2e-5", "d", scale("param/cls.predictions.transform.dense.weight",
                                                1 + 2e-5)),
        ("a gradient missing", "a", delete("grad/bert.pooler.dense.bias")),
        ("a parameter missing", "a", delete("param/cls.seq_relationship.weight")),
        ("an extra tensor", "a", add("grad/cls.predictions.decoder.weight", (F.V, F.H))),
        ("kept missing", "b", delete("kept")),
        ("kept not in position order", "b", swap_kept),
        ("kept present without dropping", "a", add("kept", (8, 8))),
        ("importance missing", "b", delete("importance")),
        ("loss off by 3e-5", "a", loss_sum),
        ("a batch row that is no sample of the shards", "a", alter_batch),
        ("weights not following the position-0 rule", "a", alter_weights),
        ("a sample twice in the global batch", "a", duplicate_row),
        ("batch missing", "a", delete("batch")),
        ("a key bias gradient not at roundoff level", "a", key_bias_like_query_bias),
    ]


def self_test(workdir):
    chk = Checks()
    own_tmp = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix="tokdrop-ref-")
    os.makedirs(workdir, exist_ok=True)
    cfgs = build_fixture(workdir)

    # the fixture is deterministic
    with tempfile.TemporaryDirectory() as t2:
        other = F.build(t2)
        same = all(open(os.path.join(workdir, "fx", rel), "rb").read()
                   == open(os.path.join(t2, rel), "rb").read()
                   for rel in ("vocab.txt", "init.safetensors"))
        with h5py.File(os.path.join(workdir, "fx/train/shard_000.h5"), "r") as a, \
                h5py.File(os.path.join(t2, "train/shard_000.h5"), "r") as b:
            same = same and all(np.array_equal(a[k][()], b[k][()]) for k in a)
        chk.check(same and set(other) == set(cfgs), "the fixture is deterministic")

    cfg_a, vocab, init, _ = load_case(cfgs, "a")
    batch = R.batch_from_shards(cfg_a, SELF_TEST_ROWS)
    chk.check(init.keys() == {n for n, _ in F.param_shapes()} and vocab[F.CLS] == "[CLS]"
              and R.resolve_tokens(cfg_a["token_drop"]["allow"], vocab) == [3, 4, 5, 6],
              "safetensors round trip and vocab resolution")
    torch_layer_check(chk, cfg_a, init, batch)

    # selection: allow ids first, pads last, ties to the lower position
    cfg_b, _, _, _ = load_case(cfgs, "b")
    imp = R.init_importance(cfg_b, vocab)
    kept = R.select_kept(imp, batch["input_ids"], batch["input_mask"], 8)
    ok = True
    for b in range(kept.shape[0]):
        ids, msk = batch["input_ids"][b], batch["input_mask"][b]
        allow = [t for t in range(len(ids)) if msk[t] and ids[t] in (3, 4, 5, 6)]
        other = [t for t in range(len(ids)) if msk[t] and ids[t] not in (3, 4, 5, 6)]
        pads = [t for t in range(len(ids)) if not msk[t]]
        want = sorted((allow + other + pads)[:8]) if len(allow) <= 8 else sorted(allow[:8])
        ok = ok and kept[b].tolist() == want
    chk.check(ok, "selection keeps allow ids, then the lowest real positions, then pads")

    # independent masked formulation of dropping, for several cases
    for case in ("b", "d", "e", "h"):
        cfg, _, _, counts = load_case(cfgs, case)
        p = {k: torch.tensor(v) for k, v in init.items()}
        tb = R.to_torch_batch(batch)
        imp = R.init_importance(cfg, vocab, counts)
        kept = torch.from_numpy(R.select_kept(imp, batch["input_ids"], batch["input_mask"],
                                              cfg["token_drop"]["keep"]))
        with torch.no_grad():
            a = R.encode(p, cfg, tb["input_ids"], tb["input_mask"], tb["segment_ids"], kept)
            b = encode_masked(p, cfg, tb["input_ids"], tb["input_mask"], tb["segment_ids"], kept)
            full = R.encode(p, cfg, tb["input_ids"], tb["input_mask"], tb["segment_ids"])
        real = tb["input_mask"] == 1
        err = (a - b)[real].abs().max().item()
        diff = (a - full)[real].abs().max().item()
        chk.check(err < 1e-12 and diff > 1e-4,
                  "case %s: gather/scatter dropping equals the masked formulation (err %.1e; "
                  "differs from the full model by %.1e)" % (case, err, diff))

    # keep == T is the full model: the forward bit for bit; the gradients to
    # float64 roundoff (autograd sums the query and key/value paths of layer
    # f in another order). Key biases (gradient zero in exact arithmetic,
    # roundoff only) are left out of relative comparisons.
    res_a = R.first_step(cfg_a, vocab, init, batch)
    nonzero = [k for k in init if np.linalg.norm(res_a["grads"][k]) > 1e-12 * res_a["grad_norm"]]
    chk.check(len(nonzero) == len(init) - cfg_a["model"]["layers"] and
              all("key.bias" not in k for k in nonzero),
              "exactly the %d key biases have a roundoff gradient" % (len(init) - len(nonzero)))
    cfg_c, _, _, _ = load_case(cfgs, "c")
    res_c = R.first_step(cfg_c, vocab, init, batch)
    e = max(C.rel_err(res_c[w][k], res_a[w][k]) for k in nonzero for w in ("grads", "params"))
    chk.check(res_a["loss"] == res_c["loss"] and e < 1e-13 and
              np.array_equal(res_a["importance"], res_c["importance"]),
              "keep == T equals the full model (loss exactly, grads/params to %.1e)" % e)
    # micro-batches with the global normalisation equal one batch
    for case, cfg in (("a", cfg_a), ("b", cfg_b)):
        one = R.first_step(cfg, vocab, init, batch)
        two = R.first_step(cfg, vocab, init, batch, micro_batches=4)
        e = max(C.rel_err(two["grads"][k], one["grads"][k]) for k in nonzero)
        chk.check(abs(one["loss"] - two["loss"]) < 1e-13 and e < 1e-13 and
                  np.allclose(one["importance"], two["importance"], rtol=0, atol=1e-13),
                  "case %s: 4 micro-batches equal one batch (grad err %.1e)" % (case, e))
    # EMA by a plain loop over the predictions
    res_b = R.first_step(cfg_b, vocab, init, batch)
    sums, cnts = {}, {}
    fb = R.forward_backward(cfg_b, init, batch, res_b["kept"])
    for y, c in zip(fb["labels"], fb["ce"]):
        sums[int(y)] = sums.get(int(y), 0.0) + c
        cnts[int(y)] = cnts.get(int(y), 0) + 1
    want = res_b["importance0"].astype(np.float64)
    for y in sums:
        if y not in (0, 3, 4, 5, 6):
            want[y] = 0.995 * want[y] + 0.005 * sums[y] / cnts[y]
    chk.check(np.allclose(want, res_b["importance"], rtol=0, atol=1e-12) and 3 in sums
              and len(sums) >= 5 and res_b["importance"][3] == 1e4
              and (res_b["importance"] != res_b["importance0"]).sum() == len(sums) - 1,
              "importance EMA (labels %s; [UNK] among them stays fixed)" % sorted(sums))
    # the loss terms by hand: N_masked and G, NSP head in numpy
    n_masked = int(batch["masked_lm_weights"].sum())
    fb_a = R.forward_backward(cfg_a, init, batch)
    with torch.no_grad():
        tb = R.to_torch_batch(batch)
        x = R.encode({k: torch.tensor(v) for k, v in init.items()}, cfg_a, tb["input_ids"],
                     tb["input_mask"], tb["segment_ids"]).numpy()
    pooled = np.tanh(x[:, 0] @ init["bert.pooler.dense.weight"].T + init["bert.pooler.dense.bias"])
    z = pooled @ init["cls.seq_relationship.weight"].T + init["cls.seq_relationship.bias"]
    lse = np.log(np.exp(z).sum(1))
    nsp = np.mean(lse - z[np.arange(len(z)), batch["next_sentence_labels"]])
    chk.check(abs(res_a["mlm_loss"] - fb_a["ce"].sum() / n_masked) < 1e-12 and
              abs(res_a["nsp_loss"] - nsp) < 1e-12 and len(fb_a["ce"]) == n_masked and
              n_masked == int((batch["masked_lm_positions"] > 0).sum()),
              "loss terms are sum CE / N_masked (%d) and sum NSP CE / G" % n_masked)

    for case in ("a", "b", "d", "e"):
        cfg, _, _, counts = load_case(cfgs, case)
        finite_difference_check(chk, case, cfg, vocab, init, batch, counts)

    # a float32 emulation of a correct trainer passes compare.py; the
    # micro-batched cases get the batch in another order, as a trainer might
    dumps = {}
    for case in sorted(cfgs):
        cfg, _, _, counts = load_case(cfgs, case)
        mb = cfg["train"]["accumulation"] * F.RANKS.get(case, 1)
        b = batch
        if mb > 1:
            b = {k: v[np.roll(np.arange(len(v)), 3)] for k, v in batch.items()}
        res = R.first_step(cfg, vocab, init, b, counts, micro_batches=mb, dtype=torch.float32)
        dumps[case] = os.path.join(workdir, "fake32_%s.h5" % case)
        C.write_dump(dumps[case], res, b)
        print("--- compare.py on the float32 emulation of case %s" % case)
        if case == "a":
            rc = subprocess.call([sys.executable, os.path.join(HERE, "compare.py"), "--config",
                                  cfgs[case], "--dump", dumps[case]])
            chk.check(rc == 0, "compare.py accepts the float32 emulation of case a (exit %d)"
                      % rc)
        else:
            rep = C.compare_dump(cfgs[case], dumps[case])
            chk.check(not rep.failures, "compare accepts the float32 emulation of case %s"
                      % case)
    compare_py = [sys.executable, os.path.join(HERE, "compare.py"), "--pair"]
    copy_a = os.path.join(workdir, "fake32_a_copy.h5")
    shutil.copyfile(dumps["a"], copy_a)
    rc = subprocess.call(compare_py + [dumps["a"], copy_a, "--exact"])
    chk.check(rc == 0, "--pair --exact accepts a copy")
    with h5py.File(copy_a, "a") as f:
        d = f["grad/bert.encoder.layer.2.output.dense.weight"]
        v = d[()]
        v[3, 5] = np.nextafter(v[3, 5], np.float32(np.inf))
        d[...] = v
    rc = subprocess.call(compare_py + [dumps["a"], copy_a, "--exact"], stdout=subprocess.DEVNULL)
    chk.check(rc == 1, "--pair --exact rejects a copy with one gradient entry one ulp off")
    rc = subprocess.call(compare_py + [dumps["a"], dumps["c"], "--rtol", "1e-6"])
    chk.check(rc == 0, "--pair --rtol 1e-6 accepts float32 emulations of a and c")
    rc = subprocess.call(compare_py + [dumps["a"], dumps["f"], "--rtol", "1e-6",
                                       "--tensor-rtol", "1e-5"])
    chk.check(rc == 0, "--pair accepts float32 emulations of a and f (reordered batch)")
    rc = subprocess.call([sys.executable, os.path.join(HERE, "compare.py"), "--pair",
                          dumps["a"], dumps["b"], "--rtol", "1e-6"], stdout=subprocess.DEVNULL)
    chk.check(rc == 1, "--pair rejects a against b (dropping changes the result)")

    # mutated references: compare.py must reject each
    for desc, case, kind, value in mutations():
        cfg, _, _, counts = load_case(cfgs, case)
        if kind == "cfg":
            mcfg = copy.deepcopy(cfg)
            value(mcfg)
            res = R.first_step(mcfg, vocab, init, batch, counts)
        else:
            with patched(R, kind, value):
                res = R.first_step(cfg, vocab, init, batch, counts)
        path = os.path.join(workdir, "mutant.h5")
        C.write_dump(path, res, batch)
        with contextlib.redirect_stdout(open(os.devnull, "w")):
            rep = C.compare_dump(cfgs[case], path)
        chk.check(bool(rep.failures), "mutation rejected (case %s): %s -> %d failures, first: %s"
                  % (case, desc, len(rep.failures), rep.failures[0] if rep.failures else "-"))

    # corrupted dumps (from the float64 reference): compare.py must reject each
    for desc, case, fn in corruptions():
        cfg, _, _, counts = load_case(cfgs, case)
        res = R.first_step(cfg, vocab, init, batch, counts)
        path = os.path.join(workdir, "corrupt.h5")
        C.write_dump(path, res, batch)
        with h5py.File(path, "a") as f:
            fn(f)
        with contextlib.redirect_stdout(open(os.devnull, "w")):
            rep = C.compare_dump(cfgs[case], path)
        chk.check(bool(rep.failures), "corrupted dump rejected (case %s): %s -> first: %s"
                  % (case, desc, rep.failures[0] if rep.failures else "-"))
    # and the uncorrupted float64 dump passes with errors at float32 rounding
    path = os.path.join(workdir, "fake64_b.h5")
    C.write_dump(path, res_b, batch)
    rep = C.compare_dump(cfgs["b"], path)
    chk.check(not rep.failures, "compare accepts the float64 reference's own dump of case b")

    if own_tmp:
        shutil.rmtree(workdir)
    print("self-test: %d checks, %d failed" % (chk.n, len(chk.failed)))
    for f in chk.failed:
        print("FAILED: " + f)
    return 1 if chk.failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokdrop")
    ap.add_argument("--case", choices=sorted(F.CASES))
    ap.add_argument("--pair", nargs=2, choices=sorted(F.CASES))
    ap.add_argument("--exact", action="store_true")
    ap.add_argument("--rtol", type=float, default=1e-6)
    ap.add_argument("--tensor-rtol", type=float)
    ap.add_argument("--mpirun", default="mpirun", help="launcher of multi-rank cases")
    ap.add_argument("--workdir")
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    if args.self_test:
        return self_test(args.workdir)
    if not args.tokdrop or not args.workdir or not (args.case or args.pair):
        ap.error("--tokdrop, --workdir and --case or --pair are required (or --self-test)")
    workdir = os.path.abspath(args.workdir)
    if args.pair:
        return run_pair(args.tokdrop, args.pair[0], args.pair[1], workdir, args.rtol, args.exact,
                        args.tensor_rtol, args.mpirun)
    return run_case(args.tokdrop, args.case, workdir, args.mpirun)


if __name__ == "__main__":
    sys.exit(main())
