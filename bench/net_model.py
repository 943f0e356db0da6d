#!/usr/bin/env python3
"""Cost model of a data-parallel bert-base/128 step on N nodes joined by
Ethernet (bench/README.md, "The network path"). Prints markdown tables.

    bench/net_model.py [NET_JSON]

NET_JSON is the output of bench/net.sh (or a make bench result holding it
under "network"): the bucket sizes and the time into the backward at which
each bucket is final (td-bench-allreduce ... schedule). Without it, the
schedule measured on the project VM is used.

Model, per step (one rank per node, all its cores as threads):
  compute    A micro-batches of M sequences: A * (Tf + Tb), plus the optimizer Topt
  allreduce  ring, per bucket of S bytes: 2 (N-1)/N * S / BW + 2 (N-1) * alpha
  blocking   the whole allreduce after the backward (what tokdrop gets today:
             its overlap mode hides nothing measurable, bench/README.md)
  overlap    with continuous progress (a communication thread): during the
             last micro-batch's backward only; bucket i may start when the
             backward has finished it (its measured share of the backward);
             the link reduces one bucket at a time, in the order released
  word early the word embeddings' rows that no rank looked up in its last
             micro-batch are final after the heads' backward: packed and
             reduced then; the looked-up rows (their share from UNIQUE) with
             the other embeddings at the end; packing and unpacking cost
             2 x (their bytes) / COPY_BW on the critical path
  exposed    time the link is still busy after the backward ends
  step       A * (Tf + Tb) + exposed + Topt
"""
import json
import math
import sys

# ---- assumptions (stated in bench/README.md) --------------------------------
CORE_SEQ_PER_S = 3.5       # bert-base/128 bf16 forward+backward, one core of the project VM
                           # (3.18 seq/s a whole step at micro-batch 8, LAMB ~9% of it)
CORES = 64                 # one node
PAR_EFF = 0.75             # parallel efficiency of 64 threads against 1 (2 threads: 0.85)
BWD_SHARE = 0.67           # backward / (forward + backward), measured (schedule)
T_OPT = 0.040              # LAMB over 110M parameters: ~4.4 GB of memory traffic at ~110 GB/s
ALPHA = 25e-6              # per message hop over TCP/Ethernet, seconds
LINK_EFF = 1.0             # share of the line rate a ring allreduce gets (TCP: 0.8-0.9)
COPY_BW = 20e9             # bytes/s of a memcpy over all cores of a node (read + write)
H = 768

# Unique WordPiece ids among n sequences of 128 tokens (Python documentation
# tokenized with a 30522-entry vocabulary learned on it; a proxy for
# Wikipedia): (sequences, share of the vocabulary).
UNIQUE = [(8, 0.012), (16, 0.020), (64, 0.048), (128, 0.074), (256, 0.110), (512, 0.165),
          (1024, 0.242), (2048, 0.336), (4096, 0.454), (8192, 0.586)]

# Buckets and ready times measured on the project VM (bert-base/128,
# micro-batch 8, 1 thread, bf16); used without NET_JSON.
DEFAULT_SCHEDULE = {
    "backward_s": 1.895,
    "ready": [{"name": "heads", "n_elems": 1214786, "t_s": 0.0833}] +
             [{"name": "layer.%d" % (11 - i), "n_elems": 7087872, "t_s": t}
              for i, t in enumerate([0.2469, 0.3868, 0.5230, 0.6866, 0.8540, 0.9813, 1.1383,
                                     1.2603, 1.4087, 1.5692, 1.7411, 1.8900])] +
             [{"name": "embeddings", "n_elems": 23837184, "t_s": 1.8950}],
}
WORD_ELEMS = 30522 * H
VOCAB = 30522


def unique_share(n_seq):
    pts = UNIQUE
    if n_seq <= pts[0][0]:
        return pts[0][1] * n_seq / pts[0][0]
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if n_seq <= x1:
            return y0 + (y1 - y0) * (n_seq - x0) / (x1 - x0)
    # beyond the sample: grow as the last decade did, capped at 1
    (x0, y0), (x1, y1) = pts[-2], pts[-1]
    return min(1.0, y1 + (y1 - y0) * math.log(n_seq / x1) / math.log(x1 / x0))


def ring_s(n_elems, n, bw):
    return 2 * (n - 1) / n * 4 * n_elems / (bw * LINK_EFF) + 2 * (n - 1) * ALPHA


def exposed_s(buckets, n, bw, tb):
    """buckets: (ready share of the backward, elements); the link's finish time after the backward."""
    t = 0.0
    for share, elems in sorted(buckets):
        t = max(t, share * tb) + ring_s(elems, n, bw)
    return max(0.0, t - tb)


def plans(sched, n, m):
    """(today's buckets, word early buckets, looked-up share, pack+unpack seconds)"""
    tb_meas = sched["backward_s"]
    rows = [(r["t_s"] / tb_meas, r["n_elems"], r["name"]) for r in sched["ready"]]
    today = [(s, e) for s, e, _ in rows]
    heads_share = rows[0][0]
    u = unique_share(n * m)  # union of the last micro-batch's input ids over all ranks
    early = int((1 - u) * VOCAB) * H
    split = []
    for s, e, name in rows:
        if name == "embeddings":
            split.append((heads_share, early))      # rows nobody looked up: final after the heads
            split.append((1.0, e - early))          # looked-up rows, position, type, LayerNorm
        else:
            split.append((s, e))
    return today, split, u, 2 * 4 * early / COPY_BW


def main():
    sched = DEFAULT_SCHEDULE
    if len(sys.argv) > 1:
        net = json.load(open(sys.argv[1]))
        net = net.get("network", net)
        sched = net["schedule"]
    n_params = sum(r["n_elems"] for r in sched["ready"])
    node_rate = CORE_SEQ_PER_S * CORES * PAR_EFF
    print("node: %d cores x %.1f seq/s x %.2f = %.0f seq/s (forward+backward); gradient %.1f MB in %d "
          "buckets; alpha %.0f us; optimizer %.0f ms; backward share %.2f\n" % (
              CORES, CORE_SEQ_PER_S, PAR_EFF, node_rate, 4e-6 * n_params, len(sched["ready"]),
              ALPHA * 1e6, T_OPT * 1e3, BWD_SHARE))
    for m, accum in ((64, 1), (64, 4)):
        tfb = m / node_rate
        tb, tf = BWD_SHARE * tfb, (1 - BWD_SHARE) * tfb
        compute = accum * tfb + T_OPT
        print("micro-batch %d per node, accumulation %d (global batch %d N): forward %.0f ms, backward "
              "%.0f ms, step without communication %.0f ms\n" % (m, accum, m * accum, 1e3 * tf, 1e3 * tb,
                                                                 1e3 * compute))
        print("| N | link | allreduce (of it latency) | blocking: step, efficiency |"
              " overlapped, per-layer buckets: exposed, efficiency |"
              " overlapped, word early: looked-up rows, exposed, efficiency | bound |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for gbit in (25, 100):
            bw = gbit / 8 * 1e9
            for n in (2, 4, 8, 16, 32, 64, 128):
                today, split, u, t_pack = plans(sched, n, m)
                t_all = sum(ring_s(e, n, bw) for _, e in today)
                lat = len(today) * 2 * (n - 1) * ALPHA
                step_block = compute + ring_s(n_params, n, bw)  # one message
                e_today = exposed_s(today, n, bw, tb)
                e_split = exposed_s(split, n, bw, tb) + t_pack
                bound = "communication" if t_all > tb else "compute"
                print("| %d | %d Gb/s | %.0f ms (%.0f) | %.0f ms, %.2f | %.0f ms, %.2f | %.0f%%, %.0f ms, %.2f | %s |" % (
                    n, gbit, 1e3 * t_all, 1e3 * lat, 1e3 * step_block, compute / step_block,
                    1e3 * e_today, compute / (compute + e_today),
                    100 * u, 1e3 * e_split, compute / (compute + e_split), bound))
        print()


if __name__ == "__main__":
    main()
