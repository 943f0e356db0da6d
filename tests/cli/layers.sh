#!/bin/sh
# The layering rules of README "Layout", checked on the sources and the
# binaries:
#  1. the base library (tokdrop_base) calls nothing from MPI, BLAS, HDF5,
#     YAML or oneDNN, and tokdrop-prep loads none of MPI, OpenBLAS, oneDNN,
#     libyaml;
#  2. every MPI call of the library is in dist.c;
#  4. each layer's sources and headers (src/LAYER, include/tokdrop/LAYER)
#     include only headers of their own layer or of the layers below it, in
#     the order base < nn < formats < train (README "Layers");
#  3. the library never writes to stderr (the report sink does, report.c,
#     when a program installs it) and reads no environment variable (the
#     programs do, and pass the values in).
#   layers.sh TOKDROP_PREP LIBTOKDROP_BASE SOURCE_DIR WORKDIR
set -u
prep=$1
base=$2
src=$3
fail() { echo "FAIL: $*" >&2; exit 1; }

# 1.
foreign=$(nm -u "$base" | awk '{print $NF}' | grep -E '^(P?MPI_|ompi_|cblas_|openblas_|H5|yaml_|dnnl_)')
[ -z "$foreign" ] || fail "tokdrop_base uses: $foreign"
loaded=$(ldd "$prep" | grep -E 'libmpi|libopenblas|libblas|libdnnl|libyaml|libgomp')
[ -z "$loaded" ] || fail "tokdrop-prep loads: $loaded"

# the library's sources: everything under src/ but the programs (src/cli)
lib_sources=$(find "$src/src" -name '*.c' ! -path '*/cli/*' | sort)
[ -n "$lib_sources" ] || fail "no library sources under $src/src"

# 2.
calls=$(for f in $lib_sources; do
    [ "$(basename "$f")" = dist.c ] || grep -HnE '\bMPI_[A-Z][A-Za-z_]*\(' "$f"
done)
[ -z "$calls" ] || fail "MPI called outside dist.c:
$calls"

# 3.
prints=$(for f in $lib_sources; do
    [ "$(basename "$f")" = report.c ] || grep -HnE '\b(stderr|stdout)\b|\b(v?printf|puts|putchar|perror)\(' "$f"
done)
[ -z "$prints" ] || fail "the library prints by itself:
$prints"
env_reads=$(for f in $lib_sources; do grep -HnE '\b(getenv|secure_getenv|setenv)\(' "$f"; done)
[ -z "$env_reads" ] || fail "the library reads the environment:
$env_reads"

# 4.
rank() { case $1 in base) echo 1 ;; nn) echo 2 ;; formats) echo 3 ;; train) echo 4 ;; *) echo 0 ;; esac; }
upward=$(for layer in base nn formats train; do
    for f in "$src/src/$layer"/* "$src/include/tokdrop/$layer"/*; do
        [ -f "$f" ] || continue
        grep -oE '#include "(tokdrop/)?[a-z]+/[a-z_0-9]+\.h"' "$f" | sed -E 's/#include "(tokdrop\/)?//; s/\/.*//' |
            while read -r used; do
                [ "$(rank "$used")" -le "$(rank "$layer")" ] || echo "$f ($layer) includes a $used header"
            done
    done
done)
[ -z "$upward" ] || fail "a layer uses a layer above it:
$upward"
echo "ok"
