#!/bin/sh
# The top-level Makefile as people use it:
#  1. Makefile.inc's CC reaches CMake (make's built-in CC=cc must not win),
#     and CC on the command line or in the environment overrides it;
#  2. a configure that failed (a missing package) does not wedge `make`:
#     once the package is there, `make` configures and builds;
#  3. `make install PREFIX=DIR` installs into DIR although the build tree
#     was configured with another prefix: the programs, and under
#     share/tokdrop the configs, the cluster scripts, the README and docs/.
# 1 and 2 run the real Makefile and Makefile.inc on a one-file stand-in
# project (seconds); 3 installs the real build tree.
#   make_front_door.sh BUILD_DIR SOURCE_DIR WORKDIR
set -u
build=$1
src=$2
work=$3
rm -rf "$work"
mkdir -p "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
# a make above us (make test) must not pass its settings down
unset MAKEFLAGS MFLAGS MAKELEVEL CC
mk() { make --no-print-directory "$@"; }

# ---- 1. CC -------------------------------------------------------------------------
inc_cc=$(sed -n 's/^CC ?= *//p' "$src/Makefile.inc")
[ -n "$inc_cc" ] || fail "Makefile.inc sets no CC"
cc_flag() { # the -DCMAKE_C_COMPILER=... that `make configure` would pass
    (cd "$src" && "$@" make --no-print-directory -n configure BUILD_DIR="$work/never") |
        sed -n 's/.*-DCMAKE_C_COMPILER=\([^ ]*\).*/\1/p'
}
got=$(cc_flag env); [ "$got" = "$inc_cc" ] || fail "CC: make passes '$got', Makefile.inc says '$inc_cc'"
got=$(cc_flag env CC=my-cc); [ "$got" = my-cc ] || fail "CC from the environment: make passes '$got'"
got=$(cd "$src" && make --no-print-directory -n configure BUILD_DIR="$work/never" CC=cmdline-cc |
      sed -n 's/.*-DCMAKE_C_COMPILER=\([^ ]*\).*/\1/p')
[ "$got" = cmdline-cc ] || fail "CC on the command line: make passes '$got'"

# ---- 2. a failed configure, then make ----------------------------------------------------
stub=$work/stub
mkdir -p "$stub"
cp "$src/Makefile" "$src/Makefile.inc" "$stub/"
cat > "$stub/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.18)
project(stub LANGUAGES C)
if(NOT EXISTS ${CMAKE_SOURCE_DIR}/package-installed)
  message(FATAL_ERROR "stub: a required package is missing")
endif()
add_executable(stub stub.c)
EOF
echo 'int main(void) { return 0; }' > "$stub/stub.c"
mk -C "$stub" build > "$work/fail.log" 2>&1 && fail "the stub configured without its package"
grep -q "a required package is missing" "$work/fail.log" || { cat "$work/fail.log"; fail "no configure error"; }
[ -f "$stub/build/CMakeCache.txt" ] || fail "the failed configure left no CMakeCache.txt (the case to test)"
touch "$stub/package-installed"
mk -C "$stub" build > "$work/ok.log" 2>&1 || { cat "$work/ok.log"; fail "make after a failed configure"; }
[ -x "$stub/build/stub" ] || fail "make after a failed configure built nothing"
# and the compiler CMake found is Makefile.inc's
cached=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$stub/build/CMakeCache.txt")
[ "$(basename "$cached")" = "$(basename "$inc_cc")" ] || fail "CMakeCache has CMAKE_C_COMPILER=$cached, not $inc_cc"

# ---- 3. make install PREFIX=... ------------------------------------------------------------
prefix=$work/prefix
configured=$(sed -n 's/^CMAKE_INSTALL_PREFIX:[A-Z]*=//p' "$build/CMakeCache.txt")
[ "$configured" != "$prefix" ] || fail "the build tree was configured with the test's prefix"
mk -C "$src" install BUILD_DIR="$build" PREFIX="$prefix" > "$work/install.log" 2>&1 ||
    { cat "$work/install.log"; fail "make install"; }
for p in tokdrop tokdrop-prep; do
    [ -x "$prefix/bin/$p" ] || fail "make install: no $prefix/bin/$p"
done
"$prefix/bin/tokdrop" --help > /dev/null || fail "the installed tokdrop --help"
share=$prefix/share/tokdrop
for f in "$src"/configs/*.yaml; do
    [ -f "$share/configs/$(basename "$f")" ] || fail "make install: no $share/configs/$(basename "$f")"
done
for f in "$src"/cluster/*; do
    [ -f "$share/cluster/$(basename "$f")" ] || fail "make install: no $share/cluster/$(basename "$f")"
done
[ -x "$share/cluster/tokdrop.sbatch" ] || fail "make install: cluster scripts lost their execute bit"
[ -f "$share/README.md" ] || fail "make install: no README.md"
if [ -d "$src/docs" ]; then
    (cd "$src/docs" && find . -type f) | while read -r f; do
        [ -f "$share/docs/$f" ] || { echo "make install: no $share/docs/$f" >&2; exit 1; }
    done || fail "make install: docs/ incomplete"
fi
echo "make_front_door: CC from Makefile.inc ($inc_cc), recovery after a failed configure, install to PREFIX: ok"
