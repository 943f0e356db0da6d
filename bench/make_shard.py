#!/usr/bin/python3
"""Writes a synthetic NVIDIA-format shard for timing runs (content does not
matter for speed; shapes do): make_shard.py OUT.h5 N SEQ_LEN MAX_PRED VOCAB"""
import sys

import h5py
import numpy as np

out, n, t, mp, v = sys.argv[1], *map(int, sys.argv[2:6])
rng = np.random.default_rng(1)
ids = rng.integers(5, v, size=(n, t), dtype=np.int32)
ids[:, 0] = 2
mask = np.ones((n, t), np.int8)
seg = np.zeros((n, t), np.int8)
seg[:, t // 2:] = 1
pos = np.sort(rng.choice(np.arange(1, t), size=(n, mp)), axis=1).astype(np.int32)
for row in pos:  # distinct positions per row
    row[:] = np.sort(rng.choice(np.arange(1, t), size=mp, replace=False))
with h5py.File(out, "w") as f:
    f["input_ids"] = ids
    f["input_mask"] = mask
    f["segment_ids"] = seg
    f["masked_lm_positions"] = pos
    f["masked_lm_ids"] = rng.integers(5, v, size=(n, mp), dtype=np.int32)
    f["next_sentence_labels"] = rng.integers(0, 2, size=n, dtype=np.int8)
