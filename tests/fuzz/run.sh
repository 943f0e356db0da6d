#!/bin/sh
# make fuzz: builds the libFuzzer harnesses of tests/fuzz with clang, ASan
# and UBSan in their own build tree, runs each for FUZZ_SECONDS (default 60)
# on a scratch copy of its seeds, and prints a table of executions and
# findings (libFuzzer's crash-, leak-, timeout- and oom- files, which stay
# under the scratch directory). Exits 1 when anything was found.
#   FUZZ_SECONDS=N       seconds per target
#   FUZZ_TARGETS="a b"   a subset (default: all of tests/fuzz/CMakeLists.txt)
#   FUZZ_BUILD_DIR=DIR   build tree (default build-fuzz)
#   MARCH=...            as for make build
# Targets run one after another, each on one core.
set -eu
cd "$(dirname "$0")/../.."
seconds=${FUZZ_SECONDS:-60}
build=${FUZZ_BUILD_DIR:-build-fuzz}
all=$(sed -n 's/^set(TD_FUZZ_TARGETS \(.*\))$/\1/p' tests/fuzz/CMakeLists.txt)
targets=${FUZZ_TARGETS:-$all}
work=$build/fuzz-work

command -v clang >/dev/null || { echo "fuzz: clang not found (make deps installs it)" >&2; exit 1; }
mkdir -p "$build"
cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Release -DTD_FUZZ=ON \
      -DTD_MARCH="${MARCH-native}" >"$build/configure.log" 2>&1 ||
    { cat "$build/configure.log" >&2; exit 1; }
for t in $targets; do set -- "$@" "fuzz_$t"; done
cmake --build "$build" -j "$(nproc)" --target "$@"

# Leaks inside HDF5's own state are not ours (tests/lsan.supp).
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp"
export UBSAN_OPTIONS="print_stacktrace=1"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
table=""
found=0
for t in $targets; do
    dir=$work/$t
    rm -rf "$dir"
    mkdir -p "$dir/corpus" "$dir/findings"
    cp tests/fuzz/seeds/"$t"/* "$dir/corpus/"
    [ -d tests/fuzz/regressions/"$t" ] && cp tests/fuzz/regressions/"$t"/* "$dir/corpus/"
    [ "$t" = config ] && cp configs/*.yaml "$dir/corpus/"
    echo "fuzz: $t for $seconds s (log: $dir/log)"
    start=$(date +%s)
    "$build/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=20 -print_final_stats=1 \
        -artifact_prefix="$dir/findings/" "$dir/corpus" >"$dir/log" 2>&1 || true
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log")
    secs=$(($(date +%s) - start))
    n=$(find "$dir/findings" -type f | wc -l)
    found=$((found + n))
    names=$(cd "$dir/findings" && ls | tr '\n' ' ')
    table="$table$(printf '%-12s %8s %12s %9s  %s' "$t" "${secs:-?}" "${execs:-?}" "$n" "$names")
"
done
printf '\n%-12s %8s %12s %9s  %s\n' target seconds executions findings "(files under $work/TARGET/findings)"
printf '%s' "$table"
[ "$found" -eq 0 ] || { echo "fuzz: $found finding(s); see each target's log" >&2; exit 1; }
