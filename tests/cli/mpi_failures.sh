#!/bin/sh
# A failure on one rank ends the whole job quickly with that rank's message:
#  1. a shard owned only by rank 1 holds an id >= vocab_size: both ranks
#     exit non-zero before their first step, the message names the file,
#     and no run directory is left behind;
#  2. rank 1 stops responding after step 3 (TOKDROP_FAULT): rank 0's
#     watchdog (TOKDROP_TIMEOUT=3) aborts the job instead of waiting forever;
#  3. rank 1 dies (SIGKILL, from outside, in the middle of its steps) with
#     the watchdog off: mpirun ends the job within seconds and names rank 1.
#     (Under srun the same is checked by slurm.sh.)
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

# 3. a dead rank
TOKDROP_TIMEOUT=0 "$mpiexec" -n 2 "$tokdrop" train "$cfg" --set train.steps=100000000 --set run.log_every=50 \
    --set train.micro_batch=4 --set train.threads=1 --set run.checkpoint_every=0 \
    --set "run.dir=$work/killed" > "$work/killed.log" 2>&1 &
job=$!
i=0
until [ -s "$work/killed/metrics.jsonl" ]; do
    i=$((i + 1))
    [ $i -lt 600 ] || { kill $job; cat "$work/killed.log"; fail "killed: no step logged within 60 s"; }
    sleep 0.1
done
victim=""
for p in $(pgrep -f -- "$tokdrop train"); do
    tr '\0' '\n' < /proc/$p/environ 2> /dev/null | grep -qx OMPI_COMM_WORLD_RANK=1 && victim=$p
done
[ -n "$victim" ] || { kill $job; fail "killed: rank 1's process not found"; }
kill -9 "$victim"
start=$(date +%s)
while kill -0 $job 2> /dev/null && [ $(( $(date +%s) - start )) -lt 60 ]; do sleep 0.2; done
kill -0 $job 2> /dev/null && { kill -9 $job; cat "$work/killed.log"; fail "killed: the job still ran 60 s after rank 1 died"; }
wait $job
rc=$?
killed_s=$(( $(date +%s) - start ))
[ "$rc" != 0 ] || fail "killed: exit 0"
grep -q "rank 1 .*exited on signal 9" "$work/killed.log" || { cat "$work/killed.log"; fail "killed: no message naming rank 1"; }
echo "mpi_failures: all checks passed ($elapsed s for the stalled job, $killed_s s for the killed rank)"
