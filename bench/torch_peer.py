#!/usr/bin/python3
"""The peer figure: one BERT-base pretraining step (forward, backward, AdamW)
in PyTorch fp32 at the same shapes as tokdrop's bench (micro-batch 8, seq
128, 20 predictions per sequence, MLM head on masked positions only), on
the given number of threads. Prints JSON. torch_peer.py [threads] [keep]
keep < 128 runs the token-dropping layer schedule (TF Model Garden)."""
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
keep = int(sys.argv[2]) if len(sys.argv) > 2 else 128
torch.set_num_threads(threads)
torch.manual_seed(0)
V, H, L, A, I, T, B, MP = 30522, 768, 12, 12, 3072, 128, 8, 20
D = H // A


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
        y = self.ln1(xq + F.dropout(self.o(c), 0.1, True))
        return self.ln2(y + F.dropout(self.f2(F.gelu(self.f1(y))), 0.1, True))


class Bert(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.word, self.pos, self.typ = torch.nn.Embedding(V, H), torch.nn.Embedding(512, H), torch.nn.Embedding(2, H)
        self.ln = torch.nn.LayerNorm(H, eps=1e-12)
        self.layers = torch.nn.ModuleList(Layer() for _ in range(L))
        self.pool, self.tr, self.nsp = torch.nn.Linear(H, H), torch.nn.Linear(H, H), torch.nn.Linear(H, 2)
        self.tr_ln = torch.nn.LayerNorm(H, eps=1e-12)
        self.bias = torch.nn.Parameter(torch.zeros(V))

    def forward(self, ids, seg, mask, pos, labels, nsp, kept):
        x = F.dropout(self.ln(self.word(ids) + self.pos.weight[:T] + self.typ(seg)), 0.1, True)
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
        logits = self.tr_ln(F.gelu(self.tr(xm))) @ self.word.weight.t() + self.bias
        nsp_logits = self.nsp(torch.tanh(self.pool(x[:, 0])))
        return F.cross_entropy(logits, labels.reshape(-1)) + F.cross_entropy(nsp_logits, nsp)


model = Bert()
opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
ids = torch.randint(5, V, (B, T))
seg = torch.zeros(B, T, dtype=torch.long)
mask = torch.ones(B, T)
pos = torch.sort(torch.stack([torch.randperm(T - 1)[:MP] + 1 for _ in range(B)]), 1).values
labels = torch.randint(5, V, (B, MP))
nsp = torch.randint(0, 2, (B,))
kept = None if keep >= T else torch.sort(torch.stack([torch.randperm(T)[:keep] for _ in range(B)]), 1).values
times = []
for step in range(5):
    t0 = time.perf_counter()
    opt.zero_grad()
    model(ids, seg, mask, pos, labels, nsp, kept).backward()
    opt.step()
    times.append(time.perf_counter() - t0)
step_s = statistics.median(times[1:])
print(json.dumps({"torch": torch.__version__, "threads": threads, "keep": keep,
                  "step_s": round(step_s, 3), "seq_per_s": round(B / step_s, 2)}))
