"""Splits the fixture's 16-sequence shard into SRC's two halves, OUT/part_0.h5
and OUT/part_1.h5, so that two ranks each own one file. With --bad-id, a
token id of part_1 is set to 999 (vocab_size is 60): bad data that only
rank 1 reads.
    split_shard.py SRC OUT [--bad-id]"""
import os
import sys

import h5py

src, out = sys.argv[1], sys.argv[2]
bad_id = "--bad-id" in sys.argv[3:]
os.makedirs(out)
with h5py.File(src) as f:
    for i in range(2):
        with h5py.File(os.path.join(out, "part_%d.h5" % i), "w") as g:
            for k in f:
                d = f[k][()] if k == "token_counts" else f[k][8 * i:8 * (i + 1)]
                if bad_id and i == 1 and k == "input_ids":
                    d[3, 5] = 999
                g[k] = d
