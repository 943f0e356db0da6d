#!/bin/sh
# Installs the Debian packages tokdrop needs when run as root; otherwise
# names the missing ones (and the `module load` names a cluster would use)
# and exits non-zero.
# slurm-wlm and munge are for the tests only: cli_slurm starts a private
# one-node Slurm (cluster/slurm-local.sh) and runs cluster/tokdrop.sbatch on
# it with daemons of its own (Debian may start its system munged on install;
# the test does not use it). tokdrop itself never needs them.
# `deps.sh fuzz` (make fuzz) adds clang (libFuzzer, its sanitizers) and
# libomp-dev (OpenMP under clang).
set -u
PKGS="cmake gcc make pkg-config libopenmpi-dev openmpi-bin libopenblas-dev libhdf5-dev hdf5-tools
libyaml-dev libxxhash-dev libjansson-dev libdnnl-dev libcmocka-dev zlib1g-dev python3-torch python3-h5py python3-numpy python3.11-doc gnuplot-nox
slurm-wlm munge"
[ "${1:-}" = fuzz ] && PKGS="$PKGS clang libomp-dev"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" = 0 ]; then
    echo "deps: installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null || { echo "deps: apt-get update failed" >&2; exit 1; }
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing >/dev/null ||
        { echo "deps: apt-get install failed for:$missing" >&2; exit 1; }
    exit 0
fi

cat >&2 <<MSG
deps: missing Debian packages:$missing
  install them with:  sudo apt-get install$missing
  on a cluster with environment modules, the usual equivalents are:
    module load cmake gcc openmpi openblas hdf5 libyaml xxhash jansson onednn
  (python3-torch, python3-h5py and python3-numpy are only needed by the
  cross-check tests against a PyTorch reference; cmocka by the tests;
  slurm-wlm and munge by the Slurm test, which is skipped when not root.)
MSG
exit 1
