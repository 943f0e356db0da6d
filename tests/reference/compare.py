#!/usr/bin/python3
"""Compares a `tokdrop train CONFIG --dump FILE` dump with the float64 reference.

    compare.py --config CONFIG.yaml --dump OUT.h5 [--init INIT.safetensors]
    compare.py --pair A.h5 B.h5 [--exact | --rtol R [--tensor-rtol R2]]

The reference runs on the global batch stored in the dump (batch/*), so it
does not replicate tokdrop's data order; the batch itself is checked against
the shards (every row is a sample of the data set, the weights follow SPEC 5).

Tolerances (float32 C against float64 reference):
  loss terms       relative 1e-5
  importance       absolute 1e-5 (values ~10, float32 spacing ~1e-6)
  kept             exact
  grad/<name>      ||ours-ref|| / max(||ref||, 1e-12) <= 1e-5
  param/<name>     same, <= 1e-5
  delta            (param - init) against the reference update: <= 2e-3.
                   At t = 1 the update is u = g/(|g| + eps) (+ wd w): for an
                   entry with |g| near eps = 1e-6 the derivative of u is up to
                   1/eps, so float32 rounding of small gradient entries moves
                   u by far more than 1e-5; and (param - init) loses digits
                   to float32 rounding of param (~6e-8 |w| against a delta of
                   ~lr |w| = 3e-3 |w|, i.e. ~2e-5). A float32 emulation of
                   the step (run_case.py --self-test) reaches 1.2e-4; adding
                   random gradient errors of 1e-5 (the grad bound) reaches
                   ~2e-3.
  delta_own        (param - init) against the reference optimizer applied to
                   the dump's own gradients (the optimizer alone, free of
                   gradient rounding): <= 2e-4; only the float32 rounding of
                   param remains (emulation: 1.1e-5).
  zero gradients   tensors whose reference gradient is <= 1e-12 x the global
                   norm are zero in exact arithmetic: the attention key
                   biases (softmax ignores a constant added to a row of
                   scores). Their dumped gradient must be roundoff (<= 1e-6 x
                   the global norm; tokdrop gives ~5e-9), and their new value
                   must equal the reference optimizer applied to the dump's
                   own gradient (param_own, 1e-5), since g/(|g| + eps) of a
                   roundoff g is itself arbitrary.
Prints one line per failing check and a summary; exit status 1 on failure.
"""
import argparse
import os
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bert_ref as R  # noqa: E402

BATCH_KEYS = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions", "masked_lm_ids",
              "masked_lm_weights", "next_sentence_labels")
TOL = {"loss": 1e-5, "importance": 1e-5, "grad": 1e-5, "param": 1e-5, "delta": 2e-3,
       "delta_own": 2e-4, "zero_grad": 1e-6}


def rel_err(ours, ref):
    ours = np.asarray(ours, np.float64)
    ref = np.asarray(ref, np.float64)
    return float(np.linalg.norm(ours - ref) / max(np.linalg.norm(ref), 1e-12))


def read_dump(path):
    out = {"grad": {}, "param": {}, "batch": {}}
    with h5py.File(path, "r") as f:
        for k in ("loss", "mlm_loss", "nsp_loss", "importance", "kept"):
            if k in f:
                out[k] = f[k][()]
        for grp in ("grad", "param", "batch"):
            if grp in f:
                f[grp].visititems(lambda name, obj, g=grp: out[g].__setitem__(name, obj[()])
                                  if isinstance(obj, h5py.Dataset) else None)
    return out


def write_dump(path, res, batch):
    """A dump in tokdrop's layout from a reference result (for self-tests)."""
    with h5py.File(path, "w") as f:
        for k in ("loss", "mlm_loss", "nsp_loss"):
            f.create_dataset(k, data=np.float64(res[k]))
        f.create_dataset("importance", data=np.asarray(res["importance"], np.float32))
        if res["kept"] is not None:
            f.create_dataset("kept", data=np.asarray(res["kept"], np.int32))
        for name, g in res["grads"].items():
            f.create_dataset("grad/" + name, data=np.asarray(g, np.float32))
        for name, p in res["params"].items():
            f.create_dataset("param/" + name, data=np.asarray(p, np.float32))
        for k in BATCH_KEYS:
            dt = np.float32 if k == "masked_lm_weights" else np.int32
            f.create_dataset("batch/" + k, data=np.asarray(batch[k], dt))


class Report:
    def __init__(self):
        self.failures = []
        self.notes = []

    def fail(self, msg):
        self.failures.append(msg)
        print("FAIL " + msg)

    def note(self, msg):
        self.notes.append(msg)


def check_batch(cfg, dump, rep):
    """The dumped batch: complete, shaped, rows drawn from the shards, weights per SPEC 5."""
    b = dump["batch"]
    missing = [k for k in BATCH_KEYS if k not in b]
    if missing:
        rep.fail("batch: datasets missing from the dump: %s" % ", ".join("batch/" + k
                                                                         for k in missing))
        return None
    G, T = b["input_ids"].shape
    mp = b["masked_lm_positions"].shape[1]
    shapes = {"input_ids": (G, T), "input_mask": (G, T), "segment_ids": (G, T),
              "masked_lm_positions": (G, mp), "masked_lm_ids": (G, mp),
              "masked_lm_weights": (G, mp), "next_sentence_labels": (G,)}
    for k, s in shapes.items():
        if b[k].shape != s:
            rep.fail("batch/%s: shape %s, expected %s" % (k, b[k].shape, s))
            return None
    tr = cfg["train"]
    if G % (tr["micro_batch"] * tr["accumulation"]):
        rep.fail("batch: G = %d is not a multiple of micro_batch x accumulation = %d"
                 % (G, tr["micro_batch"] * tr["accumulation"]))
    if T != cfg["data"]["seq_len"] or mp != cfg["data"]["max_pred"]:
        rep.fail("batch: T %d, max_pred %d; config says %d, %d"
                 % (T, mp, cfg["data"]["seq_len"], cfg["data"]["max_pred"]))
    w_exp = R.masked_lm_weights(b["masked_lm_positions"])
    if not np.array_equal(np.asarray(b["masked_lm_weights"], np.float32), w_exp):
        bad = np.nonzero((b["masked_lm_weights"] != w_exp).any(1))[0]
        rep.fail("batch/masked_lm_weights: rows %s differ from the rule 'predictions before "
                 "the first position 0 have weight 1'" % bad.tolist())
    # Every row must be a sample of the static-masked data set.
    if cfg["data"]["masking"] == "static":
        shards = R.train_shards(cfg)
        if not shards:
            rep.fail("batch: no shard matches %s" % cfg["data"]["train"])
        else:
            n_total = 0
            rows = {}
            keys = [k for k in BATCH_KEYS if k != "masked_lm_weights"]
            for path in shards:
                with h5py.File(path, "r") as f:
                    arrs = [f[k][()].astype(np.int64) for k in keys]
                for i in range(arrs[0].shape[0]):
                    key = b"".join(a[i].tobytes() for a in arrs)
                    rows.setdefault(key, n_total + i)
                n_total += arrs[0].shape[0]
            seen = []
            for g in range(G):
                key = b"".join(np.asarray(b[k][g]).astype(np.int64).tobytes() for k in keys)
                if key not in rows:
                    rep.fail("batch: row %d of the dump is no sample of the shards" % g)
                else:
                    seen.append(rows[key])
            if G <= n_total and len(set(seen)) != len(seen):
                rep.fail("batch: a sample appears twice in one global batch (samples %s)"
                         % seen)
            rep.note("batch: G %d, samples %s" % (G, seen))
    return {k: np.asarray(b[k]) for k in BATCH_KEYS}


def compare_tensors(kind, ours, ref, tol, rep, stats, skip=()):
    for name in sorted(set(ref) - set(ours)):
        rep.fail("%s/%s: missing from the dump" % (kind, name))
    for name in sorted(set(ours) - set(ref)):
        rep.fail("%s/%s: in the dump but not a parameter of SPEC section 1" % (kind, name))
    worst = (0.0, "")
    for name in sorted(set(ours) & set(ref)):
        if name in skip:
            continue
        if tuple(np.shape(ours[name])) != tuple(np.shape(ref[name])):
            rep.fail("%s/%s: shape %s, expected %s" % (kind, name, np.shape(ours[name]),
                                                      np.shape(ref[name])))
            continue
        e = rel_err(ours[name], ref[name])
        if not np.isfinite(e) or e > tol:
            rep.fail("%s/%s: relative error %.3e > %.0e (|ref| %.3e)"
                     % (kind, name, e, tol, np.linalg.norm(ref[name])))
        if e > worst[0] or not np.isfinite(e):
            worst = (e, name)
    stats[kind] = worst


def compare_dump(cfg_path, dump_path, init_path=None, tol=None):
    tol = dict(TOL, **(tol or {}))
    rep = Report()
    cfg = R.load_config(cfg_path)
    init_path = init_path or cfg["model"]["init"]
    vocab = R.read_vocab(cfg["model"]["vocab"])
    init = R.load_params(init_path)
    dump = read_dump(dump_path)
    batch = check_batch(cfg, dump, rep)
    if batch is None:
        return rep
    td = cfg["token_drop"]
    counts = R.token_counts_of(cfg) if td["importance"] == "frequency" else None
    ref = R.first_step(cfg, vocab, init, batch, counts)
    stats = {}

    for k in ("loss", "mlm_loss", "nsp_loss"):
        if k not in dump:
            rep.fail("%s: missing from the dump" % k)
            continue
        e = abs(float(dump[k]) - ref[k]) / max(abs(ref[k]), 1e-12)
        stats[k] = (e, "%.9g vs ref %.9g" % (float(dump[k]), ref[k]))
        if not e <= tol["loss"]:
            rep.fail("%s: %.9g, reference %.9g (relative error %.2e)"
                     % (k, float(dump[k]), ref[k], e))

    if td["enabled"]:
        if "kept" not in dump:
            rep.fail("kept: missing from the dump although token_drop.enabled")
        elif np.shape(dump["kept"]) != ref["kept"].shape:
            rep.fail("kept: shape %s, expected %s" % (np.shape(dump["kept"]),
                                                      ref["kept"].shape))
        elif not np.array_equal(np.asarray(dump["kept"], np.int64), ref["kept"]):
            rows = np.nonzero((dump["kept"] != ref["kept"]).any(1))[0]
            r0 = rows[0]
            rep.fail("kept: %d of %d rows differ; row %d: %s, reference %s"
                     % (len(rows), len(ref["kept"]), r0, dump["kept"][r0].tolist(),
                        ref["kept"][r0].tolist()))
    elif "kept" in dump:
        rep.fail("kept: present although token dropping is disabled")

    check_imp = td["importance"] != "random" and (td["enabled"] or "importance" in dump)
    if check_imp:
        if "importance" not in dump:
            rep.fail("importance: missing from the dump")
        elif np.shape(dump["importance"]) != ref["importance"].shape:
            rep.fail("importance: shape %s, expected %s" % (np.shape(dump["importance"]),
                                                            ref["importance"].shape))
        else:
            d = np.abs(np.asarray(dump["importance"], np.float64) - ref["importance"])
            stats["importance"] = (float(d.max()), "max abs")
            if not d.max() <= tol["importance"]:
                bad = np.nonzero(~(d <= tol["importance"]))[0]
                rep.fail("importance: %d ids differ by > %.0e, e.g. id %d (%s): %.7g, reference "
                         "%.7g (before the step %.7g)"
                         % (len(bad), tol["importance"], bad[0], vocab[bad[0]],
                            dump["importance"][bad[0]], ref["importance"][bad[0]],
                            ref["importance0"][bad[0]]))

    # Tensors whose gradient is zero in exact arithmetic (the attention key
    # biases: softmax ignores a constant added to a row of scores) hold only
    # roundoff; a relative comparison is meaningless for them, and so is
    # their update against the reference one (u = g/(|g|+eps) of roundoff).
    # Their gradient must be at roundoff level, and their new value must be
    # what the optimizer makes of the dump's own gradient.
    gnorm = ref["grad_norm"]
    zero = {k for k, g in ref["grads"].items() if np.linalg.norm(g) <= 1e-12 * gnorm}
    if zero:
        rep.note("zero-gradient tensors (checked: |grad| <= %.0e x global norm): %s"
                 % (tol["zero_grad"], ", ".join(sorted(zero))))
    for k in sorted(zero & set(dump["grad"])):
        n = float(np.linalg.norm(np.asarray(dump["grad"][k], np.float64)))
        if not n <= tol["zero_grad"] * gnorm:
            rep.fail("grad/%s: norm %.3e, expected roundoff (<= %.0e x global norm %.4g): "
                     "this gradient is zero in exact arithmetic" % (k, n, tol["zero_grad"],
                                                                    gnorm))
    compare_tensors("grad", dump["grad"], ref["grads"], tol["grad"], rep, stats, zero)
    compare_tensors("param", dump["param"], ref["params"], tol["param"], rep, stats, zero)
    common = set(dump["param"]) & set(ref["params"])
    ours_delta = {k: np.asarray(dump["param"][k], np.float64) - init[k] for k in common}
    ref_delta = {k: ref["params"][k] - init[k] for k in common}
    compare_tensors("delta", ours_delta, ref_delta, tol["delta"], rep, stats, zero)
    # The optimizer alone: the reference update from the dump's own gradients.
    if set(dump["grad"]) == set(init) and set(dump["param"]) == set(init):
        own, _, _, _ = R.optimizer_step(cfg, init, {k: np.asarray(v, np.float64)
                                                    for k, v in dump["grad"].items()})
        own_delta = {k: own[k] - init[k] for k in common}
        compare_tensors("delta_own", ours_delta, own_delta, tol["delta_own"], rep, stats, zero)
        compare_tensors("param_own", {k: dump["param"][k] for k in zero & common},
                        {k: own[k] for k in zero & common}, tol["param"], rep, stats)

    print("reference: loss %.9g (mlm %.9g, nsp %.9g), grad_norm %.6g, clip %.4g, lr %.6g"
          % (ref["loss"], ref["mlm_loss"], ref["nsp_loss"], ref["grad_norm"], ref["clip"],
             ref["lr"]))
    for n in rep.notes:
        print(n)
    for k, (e, what) in stats.items():
        print("  %-10s worst %.3e  %s" % (k, e, what))
    return rep


def compare_pair(a_path, b_path, rtol, exact, tensor_rtol=None):
    """Two dumps of the same global batch: loss terms, importance, grads and
    params agree exactly (exact) or to rtol (tensor_rtol for grads and
    params, default rtol)."""
    tensor_rtol = rtol if tensor_rtol is None else tensor_rtol
    rep = Report()
    a, b = read_dump(a_path), read_dump(b_path)
    # The two runs must have trained on the same global batch (as a multiset
    # of samples: loss and gradients do not depend on the order).
    def rows(d):
        if not all(k in d["batch"] for k in BATCH_KEYS):
            return None
        return sorted(b"".join(np.asarray(d["batch"][k][g]).astype(np.float64).tobytes()
                               for k in BATCH_KEYS)
                      for g in range(d["batch"]["input_ids"].shape[0]))
    ra, rb = rows(a), rows(b)
    if ra is None or rb is None:
        rep.fail("batch/*: missing from a dump")
    elif ra != rb:
        rep.fail("batch: the two dumps trained on different global batches")
    # Tensors whose gradient is roundoff in both dumps (zero in exact
    # arithmetic: the key biases) are only required to be roundoff in both
    # (or bit-identical with exact): their update lr g/(|g| + eps) of a
    # roundoff g (~1e-9 in float32) moves them by ~lr 1e-3 in either
    # direction. compare_dump checks each dump's own update of them.
    scale = R.global_norm(a["grad"]) if a["grad"] else 0.0
    zero = {k for k in set(a["grad"]) & set(b["grad"])
            if np.linalg.norm(a["grad"][k]) <= TOL["zero_grad"] * scale
            and np.linalg.norm(b["grad"][k]) <= TOL["zero_grad"] * scale}
    worst = 0.0
    for k in ("loss", "mlm_loss", "nsp_loss", "importance"):
        if k not in a or k not in b:
            if k != "importance":
                rep.fail("%s: missing from a dump" % k)
            continue
        e = rel_err(b[k], a[k])
        worst = max(worst, e)
        if (exact and not np.array_equal(a[k], b[k])) or e > rtol:
            rep.fail("%s: relative difference %.3e" % (k, e))
    for grp in ("grad", "param"):
        if set(a[grp]) != set(b[grp]) or not a[grp]:
            rep.fail("%s: the dumps hold different (or no) tensor names" % grp)
        for name in sorted(set(a[grp]) & set(b[grp])):
            if np.shape(a[grp][name]) != np.shape(b[grp][name]):
                rep.fail("%s/%s: shapes %s and %s" % (grp, name, np.shape(a[grp][name]),
                                                     np.shape(b[grp][name])))
                continue
            e = rel_err(b[grp][name], a[grp][name])
            bound = np.inf if name in zero else tensor_rtol
            if name not in zero:
                worst = max(worst, e)
            if (exact and not np.array_equal(a[grp][name], b[grp][name])) or not e <= bound:
                rep.fail("%s/%s: relative difference %.3e" % (grp, name, e))
    print("pair: worst relative difference %.3e (%s)"
          % (worst, "exact required" if exact else "bounds %.0e, tensors %.0e"
             % (rtol, tensor_rtol)))
    return rep


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config")
    ap.add_argument("--dump")
    ap.add_argument("--init", help="initial parameters (default: model.init of the config)")
    ap.add_argument("--pair", nargs=2, metavar=("A", "B"))
    ap.add_argument("--exact", action="store_true")
    ap.add_argument("--rtol", type=float, default=1e-6)
    ap.add_argument("--tensor-rtol", type=float, help="bound for grads and params (--pair; "
                    "default --rtol)")
    args = ap.parse_args(argv)
    if args.pair:
        rep = compare_pair(args.pair[0], args.pair[1], args.rtol, args.exact, args.tensor_rtol)
    else:
        if not args.config or not args.dump:
            ap.error("--config and --dump are required (or --pair)")
        rep = compare_dump(args.config, args.dump, args.init)
    if rep.failures:
        print("FAILED: %d check(s)" % len(rep.failures))
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
