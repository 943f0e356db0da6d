#!/usr/bin/python3
"""The peer figure: one BERT pretraining step (forward, backward, AdamW) in
PyTorch at the same shapes as tokdrop's bench (seq 128, 20 predictions per
sequence, MLM head on masked positions only), on the given number of
threads. Prints one JSON line.

  torch_peer.py [--threads N] [--keep K] [--model {base,small}]
                [--micro-batch B] [--precision {fp32,bf16}] [--steps S]

--keep K < 128 runs the token-dropping layer schedule (TF Model Garden).
--precision bf16 is CPU mixed precision as a user writes it: fp32 master
weights, forward and loss under torch.autocast("cpu", dtype=torch.bfloat16),
cross-entropy on fp32 logits, backward and AdamW outside autocast, no loss
scaling. The first step is a warm-up; step_s is the median of steps 2..S.
The old form torch_peer.py [threads] [keep] still works."""
import argparse
import contextlib
import json
import statistics
import time

import torch
import torch.nn.functional as F

MODELS = {  # V, H, L, A, I
    "base": (30522, 768, 12, 12, 3072),
    "small": (30522, 512, 4, 8, 2048),
}
T, MP, MAXPOS = 128, 20, 512

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                             formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--threads", type=int, default=None, help="torch threads (default 1)")
ap.add_argument("--keep", type=int, default=None,
                help=f"tokens kept in the dropped layers (default {T}: no dropping)")
ap.add_argument("--model", choices=sorted(MODELS), default="base")
ap.add_argument("--micro-batch", type=int, default=8, help="sequences per step (default 8)")
ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
ap.add_argument("--steps", type=int, default=5,
                help="steps to time, the first is a warm-up (default 5, at least 2)")
ap.add_argument("threads_pos", type=int, nargs="?", help=argparse.SUPPRESS)
ap.add_argument("keep_pos", type=int, nargs="?", help=argparse.SUPPRESS)
args = ap.parse_args()
if args.threads is not None and args.threads_pos is not None:
    ap.error("threads given both as --threads and positionally")
if args.keep is not None and args.keep_pos is not None:
    ap.error("keep given both as --keep and positionally")
threads = args.threads if args.threads is not None else (args.threads_pos or 1)
keep = args.keep if args.keep is not None else (args.keep_pos if args.keep_pos is not None else T)
if threads < 1:
    ap.error("--threads must be >= 1")
if not 1 <= keep <= T:
    ap.error(f"--keep must be in 1..{T}")
if args.micro_batch < 1:
    ap.error("--micro-batch must be >= 1")
if args.steps < 2:
    ap.error("--steps must be >= 2 (the first step is a warm-up)")

torch.set_num_threads(threads)
torch.manual_seed(0)
V, H, L, A, I = MODELS[args.model]
B = args.micro_batch
D = H // A
bf16 = args.precision == "bf16"


def ln(mod, x):
    # torch 1.13's CPU autocast rejects a bf16 input to layer_norm with fp32
    # weights; run layer norm in fp32 (as autocast would on a newer torch).
    return mod(x.float())


class Layer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.k, self.v, self.o = (torch.nn.Linear(H, H) for _ in range(4))
        self.ln1, self.ln2 = torch.nn.LayerNorm(H, eps=1e-12), torch.nn.LayerNorm(H, eps=1e-12)
        self.f1, self.f2 = torch.nn.Linear(H, I), torch.nn.Linear(I, H)

    def forward(self, xq, xkv, bias):
        b, tq, tk = xq.shape[0], xq.shape[1], xkv.shape[1]
        q = self.q(xq).view(b, tq, A, D).transpose(1, 2)
        k = self.k(xkv).view(b, tk, A, D).transpose(1, 2)
        v = self.v(xkv).view(b, tk, A, D).transpose(1, 2)
        p = torch.softmax(q @ k.transpose(-1, -2) / D ** 0.5 + bias[:, None, None, :], -1)
        p = F.dropout(p, 0.1, True)
        c = (p @ v).transpose(1, 2).reshape(b, tq, H)
        y = ln(self.ln1, xq + F.dropout(self.o(c), 0.1, True))
        return ln(self.ln2, y + F.dropout(self.f2(F.gelu(self.f1(y))), 0.1, True))


class Bert(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.word, self.pos, self.typ = torch.nn.Embedding(V, H), torch.nn.Embedding(MAXPOS, H), torch.nn.Embedding(2, H)
        self.ln = torch.nn.LayerNorm(H, eps=1e-12)
        self.layers = torch.nn.ModuleList(Layer() for _ in range(L))
        self.pool, self.tr, self.nsp = torch.nn.Linear(H, H), torch.nn.Linear(H, H), torch.nn.Linear(H, 2)
        self.tr_ln = torch.nn.LayerNorm(H, eps=1e-12)
        self.bias = torch.nn.Parameter(torch.zeros(V))

    def forward(self, ids, seg, mask, pos, labels, nsp, kept):
        x = F.dropout(ln(self.ln, self.word(ids) + self.pos.weight[:T] + self.typ(seg)), 0.1, True)
        bias = (1.0 - mask) * -10000.0
        f = L // 2 - 1
        h_f = None
        for i, layer in enumerate(self.layers):
            if kept is None or i < f:
                x = layer(x, x, bias)
            elif i == f:
                h_f = x
                xq = torch.gather(x, 1, kept[..., None].expand(-1, -1, H))
                x = layer(xq, x, bias)
                bias_k = torch.gather(bias, 1, kept)
            elif i < L - 1:
                x = layer(x, x, bias_k)
            else:
                merged = h_f.scatter(1, kept[..., None].expand(-1, -1, H), x)
                x = layer(merged, merged, bias)
        xm = torch.gather(x, 1, pos[..., None].expand(-1, -1, H)).reshape(-1, H)
        logits = ln(self.tr_ln, F.gelu(self.tr(xm))) @ self.word.weight.t() + self.bias
        nsp_logits = self.nsp(torch.tanh(self.pool(x[:, 0])))
        # The loss in fp32, whatever autocast made of the logits.
        return (F.cross_entropy(logits.float(), labels.reshape(-1))
                + F.cross_entropy(nsp_logits.float(), nsp))


model = Bert()
opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
ids = torch.randint(5, V, (B, T))
seg = torch.zeros(B, T, dtype=torch.long)
mask = torch.ones(B, T)
pos = torch.sort(torch.stack([torch.randperm(T - 1)[:MP] + 1 for _ in range(B)]), 1).values
labels = torch.randint(5, V, (B, MP))
nsp = torch.randint(0, 2, (B,))
kept = None if keep >= T else torch.sort(torch.stack([torch.randperm(T)[:keep] for _ in range(B)]), 1).values


def amp():
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


times = []
for step in range(args.steps):
    t0 = time.perf_counter()
    opt.zero_grad()
    with amp():
        loss = model(ids, seg, mask, pos, labels, nsp, kept)
    loss.backward()
    opt.step()
    times.append(time.perf_counter() - t0)
step_s = statistics.median(times[1:])
print(json.dumps({"torch": torch.__version__, "model": args.model, "precision": args.precision,
                  "micro_batch": B, "keep": keep, "threads": threads, "steps": args.steps,
                  "step_s": round(step_s, 3), "seq_per_s": round(B / step_s, 2)}))
