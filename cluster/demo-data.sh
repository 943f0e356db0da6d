#!/bin/bash
# The demo's corpus, prepared once: an 8192-token WordPiece vocabulary
# learned from the Python documentation sources (Debian package
# python3.11-doc) and masked NSP shards of 128 tokens, 2% of the documents
# held out, in demo/ under the repository root. Used by `make demo`
# (cluster/demo.sh) and by the schedule experiment (bench/schedules.py).
# A stamp records how demo/data was made and is written only after both
# prep commands succeeded, so an interrupted or different preparation is
# redone rather than trained on.
#
#   cluster/demo-data.sh BUILD_DIR
#
# Environment: DEMO_CORPUS=DIR prepares another text tree instead.
# Prints one line at the end: the vocabulary's size (a vocabulary learned
# from another corpus may stop short of 8192 entries).
set -euo pipefail

die() { echo "demo-data: ERROR: $*" >&2; exit 1; }
say() { echo "demo-data: $*" >&2; }

[ $# -eq 1 ] || { echo "usage: cluster/demo-data.sh BUILD_DIR" >&2; exit 2; }
build=$(cd "$1" 2>/dev/null && pwd) || die "build directory '$1' does not exist; run 'make' first"
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
prep=$build/data-prep/tokdrop-prep
corpus=${DEMO_CORPUS:-/usr/share/doc/python3.11/html/_sources}
[ -x "$prep" ] || die "$prep not found or not executable; run 'make' first"
[ -d "$corpus" ] || die "corpus $corpus not found (Debian package python3.11-doc; 'make deps' installs it)"

vocab_opts="--size 8192"
shard_opts="--doc-per-file --eval-fraction 0.02 --dupe-factor 2 --seq-len 128 --max-pred 20"
# the shard format version too: shards of an older format are refused by
# the trainer, so a new tokdrop-prep redoes them
recipe="corpus=$corpus vocab: $vocab_opts shards: $shard_opts ($("$prep" --version))"
stamp=demo/data/.complete
mkdir -p demo || die "cannot create $root/demo"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$recipe" ] && [ -s demo/vocab.txt ] &&
   compgen -G 'demo/data/train/*.h5' >/dev/null && compgen -G 'demo/data/eval/*.h5' >/dev/null; then
    say "demo/data is complete, not preparing it again (remove demo/ to redo it)"
else
    say "vocabulary and shards from $corpus"
    rm -rf demo/data demo/vocab.txt
    # shellcheck disable=SC2086
    "$prep" vocab $vocab_opts --out demo/vocab.txt "$corpus" >&2 ||
        die "tokdrop-prep vocab failed (command: $prep vocab $vocab_opts --out demo/vocab.txt $corpus)"
    # shellcheck disable=SC2086
    "$prep" shards --vocab demo/vocab.txt --out demo/data $shard_opts "$corpus" >&2 ||
        die "tokdrop-prep shards failed (command: $prep shards --vocab demo/vocab.txt --out demo/data $shard_opts $corpus)"
    compgen -G 'demo/data/train/*.h5' >/dev/null || die "tokdrop-prep wrote no demo/data/train/*.h5"
    compgen -G 'demo/data/eval/*.h5' >/dev/null || die "tokdrop-prep wrote no demo/data/eval/*.h5"
    printf '%s\n' "$recipe" > "$stamp"
fi
wc -l < demo/vocab.txt
