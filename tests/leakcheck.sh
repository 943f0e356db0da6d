#!/bin/sh
# A short run of every program under LeakSanitizer (`make leakcheck`): a
# sanitizer build (make SANITIZE=1) must report no leak with only the
# suppressions of tests/lsan.supp (Open MPI's and HDF5's own memory).
#   tokdrop-prep vocab, shards, tokenize; a bad tokdrop-prep command line;
#   tokdrop train on 1 rank (with evaluation and checkpoints), its resume,
#   on 2 ranks under mpirun, and stopped by SIGUSR1 through mpirun;
#   tokdrop eval on 1 and 2 ranks; tokdrop export, import, and a run from
#   the import (model.init); a bad config key and a missing checkpoint.
# Each program must exit as expected and print no LeakSanitizer report.
#   tests/leakcheck.sh BUILD_DIR [WORKDIR]
set -u
[ $# -ge 1 ] || { echo "usage: tests/leakcheck.sh BUILD_DIR [WORKDIR]" >&2; exit 2; }
build=$(cd "$1" && pwd) || exit 2
src=$(cd "$(dirname "$0")/.." && pwd)
work=${2:-$build/leakcheck}
tokdrop=$build/tokdrop
mpiexec=$(command -v mpirun) || { echo "leakcheck: mpirun not found ('make deps')" >&2; exit 2; }
prep=$build/data-prep/tokdrop-prep
grep -q '^TD_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null ||
    { echo "leakcheck: $build is not a sanitizer build (make SANITIZE=1 BUILD_DIR=$1)" >&2; exit 2; }
. "$src/tests/cli/common.sh"
# the slow unwinder: Open MPI and HDF5 have no frame pointers, and the fast
# one stops inside them before the frames the suppressions name
export LSAN_OPTIONS="suppressions=$src/tests/lsan.supp:fast_unwind_on_malloc=0:print_suppressions=0"
export ASAN_OPTIONS="detect_leaks=1"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
n=0

# check NAME EXPECTED_STATUS COMMAND...: runs it, output in $work/NAME.log
check() {
    name=$1
    want=$2
    shift 2
    "$@" > "$work/$name.log" 2>&1
    rc=$?
    if grep -q "LeakSanitizer" "$work/$name.log"; then
        cat "$work/$name.log"
        fail "$name: LeakSanitizer report (above; log $work/$name.log)"
    fi
    [ "$rc" = "$want" ] || { cat "$work/$name.log"; fail "$name: exit $rc, expected $want"; }
    n=$((n + 1))
}

cfg="$work/fx/configs/b.yaml"
run="--set train.threads=1 --set data.eval=$work/fx/train/*.h5 --set run.eval_every=3
     --set run.checkpoint_every=3 --set run.log_every=1"

# tokdrop-prep on a small made-up corpus
/usr/bin/python3 - "$work/text" <<'PY' || fail "corpus"
import os, random, sys
os.makedirs(sys.argv[1])
rng = random.Random(7)
words = "the a of token drop layer model train shard vocab loss mask sentence ünïcode 東京".split()
for d in range(2):
    with open(os.path.join(sys.argv[1], "doc%d.txt" % d), "w") as f:
        for p in range(60):
            for s in range(rng.randint(1, 6)):
                f.write(" ".join(rng.choice(words) for _ in range(rng.randint(3, 25))) + ".\n")
            f.write("\n")
PY
check prep_vocab 0 "$prep" vocab --size 200 --out "$work/vocab.txt" "$work/text"
check prep_shards 0 "$prep" shards --vocab "$work/vocab.txt" --out "$work/shards" --seq-len 32 \
    --max-pred 5 --eval-fraction 0.3 --doc-per-file "$work/text"
check prep_tokenize 0 "$prep" tokenize --vocab "$work/vocab.txt" "$work/text/doc0.txt"
check prep_bad 2 "$prep" shards --vocab "$work/vocab.txt" --seq-len 3 --out "$work/bad" "$work/text"

# tokdrop train, resume, 2 ranks, a stop through mpirun
check train1 0 "$tokdrop" train "$cfg" $run --set train.steps=6 --set "run.dir=$work/r1"
check resume1 0 "$tokdrop" train "$cfg" $run --set train.steps=9 --set "run.dir=$work/r1"
check train2 0 "$mpiexec" -n 2 "$tokdrop" train "$cfg" $run --set train.steps=6 --set "run.dir=$work/r2"
"$mpiexec" -n 2 "$tokdrop" train "$cfg" $run --set train.steps=100000 --set "run.dir=$work/r3" \
    > "$work/stop2.log" 2>&1 &
pid=$!
i=0
until grep -q "step 3/100000 " "$work/stop2.log" 2>/dev/null || [ $i -ge 1200 ]; do sleep 0.1; i=$((i + 1)); done
kill -USR1 $pid
wait $pid
rc=$?
grep -q "LeakSanitizer" "$work/stop2.log" && { cat "$work/stop2.log"; fail "stop2: LeakSanitizer report"; }
[ "$rc" = 75 ] || { cat "$work/stop2.log"; fail "stop2: SIGUSR1 through mpirun gave exit $rc, expected 75"; }
n=$((n + 1))

# eval, export, import, a run from the import
ckpt="$work/r1/checkpoints/ckpt-00000009.h5"
check eval1 0 "$tokdrop" eval "$cfg" --checkpoint "$ckpt" --set "data.eval=$work/fx/train/*.h5"
check eval2 0 "$mpiexec" -n 2 "$tokdrop" eval "$cfg" --checkpoint "$ckpt" --set "data.eval=$work/fx/train/*.h5"
check export 0 "$tokdrop" export "$ckpt" "$work/hf"
check import 0 "$tokdrop" import "$work/hf" "$work/imported.h5"
check train_init 0 "$tokdrop" train "$cfg" $run --set train.steps=2 --set "model.init=$work/imported.h5" \
    --set "run.dir=$work/r4"

# refusals
check bad_key 2 "$tokdrop" train "$cfg" --set train.no_such_key=1 --set "run.dir=$work/r5"
check missing_ckpt 1 "$tokdrop" export "$work/none.h5" "$work/hf2"
echo "leakcheck: $n program runs, no leak reported (suppressions: tests/lsan.supp)"
