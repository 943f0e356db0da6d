#!/bin/sh
# A corpus larger than the data window trains (SPEC sections 5 and 8,
# data.memory_mb): 24 shards of 7000 sequences (168,000; ~12 MiB narrowed
# in memory) read through a 1 MiB window that holds two of them.
#  1. resident memory stays flat while the run walks through every file for
#     more than an epoch: sampled from /proc, it may not grow by more than
#     6 MiB after the first chunk (holding the whole corpus would add ~12);
#  2. a run stopped in the middle of a file and of a chunk (step 21: sample
#     10,752 of the epoch, inside the second file) and resumed ends
#     bit-identical to the uninterrupted run.
#   streaming.sh TOKDROP SOURCE_DIR WORKDIR
set -u
tokdrop=$1
src=$2
work=$3
. "$src/tests/cli/common.sh"

/usr/bin/python3 - "$work/corpus" <<'PY' || fail "corpus"
import os, sys
import h5py, numpy as np
out = sys.argv[1]
os.makedirs(out)
V, T, MP, N = 60, 16, 4, 7000  # the fixture's model: vocab 60, seq_len 16, max_pred 4
for i in range(24):
    rng = np.random.default_rng(i)
    ids = rng.integers(5, V, size=(N, T), dtype=np.int32)
    ids[:, 0] = 2
    pos = np.sort(rng.random((N, T - 1)).argsort(axis=1)[:, :MP] + 1, axis=1).astype(np.int32)
    with h5py.File(os.path.join(out, "shard_%03d.h5" % i), "w") as f:
        f["input_ids"] = ids
        f["input_mask"] = np.ones((N, T), np.int8)
        f["segment_ids"] = (np.arange(T) >= T // 2).astype(np.int8)[None].repeat(N, 0)
        f["masked_lm_positions"] = pos
        f["masked_lm_ids"] = np.take_along_axis(ids, pos, axis=1)
        f["next_sentence_labels"] = rng.integers(0, 2, size=N, dtype=np.int8)
PY

cfg="$work/fx/configs/b.yaml"
common="--set data.train=$work/corpus/*.h5 --set data.memory_mb=1 --set train.micro_batch=512 --set run.keep_checkpoints=3
        --set run.log_every=50 --set train.threads=1 --set optimizer.warmup_steps=10"

# 1. a run through 340 steps (174,080 samples: every file, into epoch 2)
"$tokdrop" train "$cfg" $common --set train.steps=340 --set run.checkpoint_every=1000 \
    --set "run.dir=$work/walk" 2> "$work/walk.log" &
pid=$!
: > "$work/rss"
while kill -0 $pid 2>/dev/null; do
    awk '/^VmRSS/ { print $2 }' /proc/$pid/status >> "$work/rss" 2>/dev/null
    sleep 0.2
done
wait $pid || { cat "$work/walk.log"; fail "streaming run"; }
/usr/bin/python3 - "$work" <<'PY' || fail "resident memory grew"
import json, sys
w = sys.argv[1]
rss = [int(l) / 1024 for l in open(w + "/rss") if l.strip()]
rows = [json.loads(l) for l in open(w + "/walk/metrics.jsonl")]
assert rows[-1]["step"] == 340 and rows[-1]["loss"] < rows[0]["loss"], (rows[0], rows[-1])
assert len(rss) >= 10, "too few RSS samples (%d): the run was too fast to watch" % len(rss)
tail = rss[len(rss) // 10:]  # after the first chunk is in memory
n = 10  # the curve: the peak of each tenth (the process's exit frees memory)
curve = [max(tail[i * len(tail) // n:(i + 1) * len(tail) // n] or [0]) for i in range(n)]
print("RSS (MiB) over the run, max per tenth: " + " ".join("%.1f" % c for c in curve))
print("RSS peak in the first tenth %.1f MiB, later tenths %.1f..%.1f MiB (%d samples)"
      % (max(rss[:len(rss) // 10]), min(curve), max(curve), len(rss)))
assert max(curve) - min(curve) < 6.0, "RSS grew by %.1f MiB" % (max(curve) - min(curve))
PY
grep -q "memory_mb: 1$" "$work/walk/config.yaml" || fail "resolved config lacks data.memory_mb"

# 2. stop at step 21 (checkpoint), resume to 40; the same 40 steps straight
"$tokdrop" train "$cfg" $common --set train.steps=40 --set run.checkpoint_every=21 \
    --set "run.dir=$work/straight" 2>/dev/null || fail "straight run"
mkdir -p "$work/split/checkpoints"
cp "$work/straight/checkpoints/ckpt-00000021.h5" "$work/split/checkpoints/"
"$tokdrop" train "$cfg" $common --set train.steps=40 --set run.checkpoint_every=21 \
    --set "run.dir=$work/split" 2> "$work/resume.log" || { cat "$work/resume.log"; fail "resumed run"; }
grep "resuming from" "$work/resume.log"
grep -q "resuming from .*(step 21); rank 0 data at epoch 0, sample 10752 of 168000: .*shard_0[0-9][0-9].h5 row" \
    "$work/resume.log" || fail "the resume message does not say where in the data it resumes"
/usr/bin/python3 - "$work" <<'PY' || fail "resumed streaming run differs"
import sys, h5py, numpy as np
w = sys.argv[1]
with h5py.File(w + "/straight/checkpoints/ckpt-00000040.h5") as f, h5py.File(w + "/split/checkpoints/ckpt-00000040.h5") as g:
    for grp in ("param", "optim/m", "optim/v"):
        for n in f[grp]:
            assert np.array_equal(f[grp][n][()], g[grp][n][()]), (grp, n)
    cur = f["data_cursors"][()]
    assert cur.shape == (1, 3) and cur[0, 2] > 0, cur  # (epoch, index, window): streamed
    assert np.array_equal(cur, g["data_cursors"][()])
print("resume mid-file at step 21: 40 steps bit-identical to the uninterrupted run; cursor %s" % cur[0].tolist())
PY
