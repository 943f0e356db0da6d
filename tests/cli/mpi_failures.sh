#!/bin/sh
# A failure on one rank ends the whole job quickly with that rank's message:
#  1. a shard owned only by rank 1 holds an id >= vocab_size: both ranks
#     exit non-zero before their first step, the message names the file,
#     and no run directory is left behind;
#  2. rank 1 stops responding after step 3 (TOKDROP_FAULT): rank 0's
#     watchdog (TOKDROP_TIMEOUT=3) aborts the job instead of waiting forever.
#   mpi_failures.sh TOKDROP MPIEXEC SOURCE_DIR WORKDIR
set -u
tokdrop=$1
mpiexec=$2
src=$3
work=$4
. "$src/tests/cli/common.sh"
/usr/bin/python3 "$src/tests/cli/split_shard.py" "$work/fx/train/shard_000.h5" "$work/split" --bad-id || fail "split"
cfg="$work/fx/configs/b.yaml"

# 1. bad data on rank 1 only
start=$(date +%s)
timeout 60 "$mpiexec" -n 2 "$tokdrop" train "$cfg" --set "data.train=$work/split/*.h5" \
    --set train.threads=1 --set "run.dir=$work/bad" > "$work/bad.log" 2>&1
rc=$?
[ "$rc" != 0 ] && [ "$rc" != 124 ] || { cat "$work/bad.log"; fail "bad shard: exit $rc"; }
grep -q "rank 1: .*part_1.h5.*input_ids" "$work/bad.log" || { cat "$work/bad.log"; fail "message does not name rank, file and dataset"; }
[ $(( $(date +%s) - start )) -lt 30 ] || fail "bad shard: took too long"
[ ! -e "$work/bad" ] || fail "bad shard: left a run directory behind"

# 2. a stalled rank
start=$(date +%s)
TOKDROP_TIMEOUT=3 TOKDROP_FAULT=stall:1:3 timeout 120 "$mpiexec" -n 2 "$tokdrop" train "$cfg" \
    --set train.steps=1000 --set train.micro_batch=4 --set train.threads=1 \
    --set "run.dir=$work/stall" > "$work/stall.log" 2>&1
rc=$?
elapsed=$(( $(date +%s) - start ))
[ "$rc" != 0 ] && [ "$rc" != 124 ] || { cat "$work/stall.log"; fail "stall: exit $rc (124 = hung until timeout)"; }
grep -q "rank 0: no progress for" "$work/stall.log" || { cat "$work/stall.log"; fail "no watchdog message"; }
[ "$elapsed" -lt 60 ] || fail "stall: took $elapsed s"
echo "mpi_failures: all checks passed ($elapsed s for the stalled job)"
