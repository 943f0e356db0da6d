#!/bin/sh
# Every rank's first log line names its host, the cores it is bound to and
# its threads ("rank 1 of 2 on node07, cores 2-3 (2 threads)"), under
# mpirun -n 2:
#  1. bound to a core each (--bind-to core): two lines, distinct cores, and
#     train.threads 0 gives each rank the one core it was given;
#  2. not bound (--bind-to none): "not bound", and the node's cores are
#     split between its two ranks.
# tests/cli/slurm.sh checks the same lines under srun --cpu-bind=cores.
#   placement.sh TOKDROP MPIEXEC SOURCE_DIR WORKDIR
set -u
tokdrop=$1
mpiexec=$2
src=$3
work=$4
. "$src/tests/cli/common.sh"
cfg="$work/fx/configs/h.yaml"
host=$(hostname)
cores=$(getconf _NPROCESSORS_ONLN)

run() { # name, mpirun binding options
    name=$1
    shift
    "$mpiexec" -n 2 "$@" "$tokdrop" train "$cfg" --set train.steps=1 --set train.threads=0 \
        --set "run.dir=$work/$name" 2> "$work/$name.log" || { cat "$work/$name.log" >&2; fail "$name run"; }
}
# line NAME RANK: the rank's placement line ("" when it has none)
line() { grep "^tokdrop: rank $2 of 2 on " "$work/$1.log"; }

if [ "$cores" -ge 2 ]; then
    run bound --bind-to core
    for r in 0 1; do
        line bound $r | grep -Eq "^tokdrop: rank $r of 2 on $host, cores [0-9]+ \(1 thread\)$" ||
            { cat "$work/bound.log" >&2; fail "bound: rank $r's line is missing or wrong"; }
    done
    [ "$(line bound 0 | sed 's/.*cores \([0-9]*\).*/\1/')" != "$(line bound 1 | sed 's/.*cores \([0-9]*\).*/\1/')" ] ||
        { cat "$work/bound.log" >&2; fail "bound: both ranks name the same core"; }
else
    echo "placement: one core only: the bound case is not run"
fi

run unbound --bind-to none
# Where this process may use fewer than the online cores (a container's
# cpuset), that set is what an unbound rank gets, and tokdrop takes it as
# its binding.
allowed=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc) # nproc obeys OMP_NUM_THREADS
if [ "$allowed" -lt "$cores" ]; then
    threads=$allowed
    unbound=""
else
    threads=$((cores / 2))
    unbound=", not bound"
fi
[ "$threads" -ge 1 ] || threads=1
[ "$threads" = 1 ] && plural="" || plural=s
for r in 0 1; do
    line unbound $r | grep -Eq "^tokdrop: rank $r of 2 on $host, cores [0-9,-]+$unbound \($threads thread$plural\)$" ||
        { cat "$work/unbound.log" >&2; fail "unbound: rank $r's line is missing or wrong (expected $threads thread$plural)"; }
done
[ "$(grep -c '^tokdrop: rank ' "$work/unbound.log")" = 2 ] || fail "unbound: not exactly one line per rank"
# rank 1 prints nothing else; rank 0's placement line comes before its others
grep -v '^tokdrop: rank 1 of 2 ' "$work/unbound.log" | head -n 1 | grep -q '^tokdrop: rank 0 of 2 ' ||
    { cat "$work/unbound.log" >&2; fail "rank 0's first line is not its placement line"; }
cat "$work/bound.log" "$work/unbound.log" 2> /dev/null | grep '^tokdrop: rank '
echo "placement: all checks passed"
