# Sourced by the tests under tests/cli after they set $work and $src: a
# fresh work directory, fail(), Open MPI allowed to run as root and on more
# ranks than cores (CI runs as root on 2 cores), and the reference fixture
# (a tiny model, its vocab and shards; configs/a.yaml ... h.yaml) in
# $work/fx.
rm -rf "$work"
mkdir -p "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
if [ "$(id -u)" = 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMPI_MCA_rmaps_base_oversubscribe=1
/usr/bin/python3 "$src/tests/reference/make_fixture.py" "$work/fx" >/dev/null || fail "fixture"

# bf16_available: whether this CPU runs train.precision bf16 (oneDNN needs
# AVX-512); sets bf16_why to tokdrop's words when it does not.
bf16_available() {
    bf16_why=$("$tokdrop" --version | sed -n 's/.*bf16: \(unavailable[^)]*\).*/\1/p')
    [ -z "$bf16_why" ]
}
