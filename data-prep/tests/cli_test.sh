#!/bin/sh
# tokdrop-prep end to end through its command line: help, a learned
# vocabulary, tokenize, shards checked with h5ls, and bad inputs that must
# give one line on stderr naming the problem and a non-zero status.
# usage: cli_test.sh TOKDROP_PREP WORKDIR H5LS
set -u
EXE=$1
DIR=$2
H5LS=${3:-}
rm -rf "$DIR"
mkdir -p "$DIR"
pass=0
failed=0
ok() { pass=$((pass + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }

# expect STATUS PATTERN CMD...: the status, and stderr matching PATTERN in one line
expect() {
    want=$1; pat=$2; shift 2
    "$@" >"$DIR/out" 2>"$DIR/err"
    got=$?
    if [ "$got" -ne "$want" ]; then bad "$* exited $got, expected $want: $(cat "$DIR/err")"; return; fi
    if [ -n "$pat" ]; then
        if ! grep -q -- "$pat" "$DIR/err"; then bad "$*: stderr lacks '$pat': $(cat "$DIR/err")"; return; fi
        if [ "$want" -ne 0 ] && [ "$(wc -l <"$DIR/err")" -ne 1 ]; then
            bad "$*: expected one line on stderr, got: $(cat "$DIR/err")"; return
        fi
    fi
    ok
}

# --- help ---
for c in vocab tokenize shards; do
    expect 0 "" "$EXE" $c --help
    grep -q "usage: tokdrop-prep $c" "$DIR/out" || bad "$c --help does not print its usage"
done
expect 0 "" "$EXE" --help

# --- a small corpus: two documents ---
printf 'The quick brown fox jumps over the lazy dog.\nA second sentence, with a comma!\n\nAnother document here.\nIt has two lines.\n' >"$DIR/a.txt"
printf 'Caf\303\251 na\303\257ve \344\270\255\346\226\207 text.\n' | gzip >"$DIR/b.txt.gz"
expect 0 "" "$EXE" vocab --size 120 --out "$DIR/vocab.txt" --jobs 1 --quiet "$DIR/a.txt" "$DIR/b.txt.gz"
head -5 "$DIR/vocab.txt" | tr '\n' ' ' | grep -q '^\[PAD\] \[UNK\] \[CLS\] \[SEP\] \[MASK\] $' ||
    bad "vocab does not start with the special tokens"

# --- tokenize: one output line per input line, stdin works ---
printf '[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\nfox\n.\n!\ncafe\n' >"$DIR/small.txt"
printf 'The fox.\n\nCaf\303\251!\n' | "$EXE" tokenize --vocab "$DIR/small.txt" >"$DIR/tok" 2>"$DIR/err"
[ $? -eq 0 ] || bad "tokenize from stdin failed: $(cat "$DIR/err")"
[ "$(wc -l <"$DIR/tok")" -eq 3 ] || bad "tokenize: expected 3 lines, got $(wc -l <"$DIR/tok")"
[ "$(sed -n 1p "$DIR/tok")" = "the fox ." ] || bad "tokenize line 1: $(sed -n 1p "$DIR/tok")"
[ -z "$(sed -n 2p "$DIR/tok")" ] || bad "tokenize: empty line expected"
[ "$(sed -n 3p "$DIR/tok")" = "cafe !" ] || bad "tokenize line 3: $(sed -n 3p "$DIR/tok")"
ok

# --- shards, read back with h5ls ---
expect 0 "train sequences" "$EXE" shards --vocab "$DIR/vocab.txt" --out "$DIR/sh" --seq-len 16 \
    --max-pred 3 --dupe-factor 2 --jobs 2 "$DIR/a.txt" "$DIR/b.txt.gz"
grep -q 'UNK\] rate' "$DIR/err" || bad "shards summary lacks the [UNK] rate"
if [ -n "$H5LS" ]; then
    "$H5LS" "$DIR/sh/train/shard_00000.h5" >"$DIR/ls" 2>&1 || bad "h5ls failed: $(cat "$DIR/ls")"
    n=$(grep -c 'Dataset' "$DIR/ls")
    [ "$n" -eq 7 ] || bad "h5ls: expected 7 datasets, got $n: $(cat "$DIR/ls")"
    for d in input_ids input_mask segment_ids masked_lm_positions masked_lm_ids next_sentence_labels token_counts; do
        grep -q "^$d " "$DIR/ls" || bad "h5ls: no dataset $d"
    done
    grep -q '^input_ids .*{[0-9]*, 16}' "$DIR/ls" || bad "h5ls: input_ids is not [N, 16]"
    grep -q '^masked_lm_positions .*{[0-9]*, 3}' "$DIR/ls" || bad "h5ls: masked_lm_positions is not [N, 3]"
    ok
fi

# --- bad input ---
expect 2 "unknown option '--frobnicate'" "$EXE" shards --frobnicate --vocab "$DIR/vocab.txt" --out "$DIR/x" "$DIR/a.txt"
expect 2 "unknown command" "$EXE" frobnicate
expect 2 "needs a value" "$EXE" vocab --size
expect 2 "--size" "$EXE" vocab --size many --out "$DIR/v2.txt" "$DIR/a.txt"
expect 2 "--masking" "$EXE" shards --vocab "$DIR/vocab.txt" --out "$DIR/x" --masking dynamic "$DIR/a.txt"
expect 2 "--vocab FILE is required" "$EXE" tokenize
expect 1 "/nonexistent/input.txt" "$EXE" shards --vocab "$DIR/vocab.txt" --out "$DIR/x" /nonexistent/input.txt
expect 1 "/nonexistent/vocab.txt" "$EXE" tokenize --vocab /nonexistent/vocab.txt "$DIR/a.txt"
printf '[PAD]\n[UNK]\n[CLS]\n[SEP]\nfox\n' >"$DIR/nomask.txt"
expect 1 "\[MASK\]" "$EXE" tokenize --vocab "$DIR/nomask.txt" "$DIR/a.txt"
printf 'good line\nbad \377 line\n' >"$DIR/bad.txt"
expect 1 "bad.txt:2: invalid UTF-8" "$EXE" tokenize --vocab "$DIR/vocab.txt" "$DIR/bad.txt"
expect 1 "bad.txt:2: invalid UTF-8" "$EXE" shards --vocab "$DIR/vocab.txt" --out "$DIR/x" "$DIR/bad.txt"
printf '\n\n   \n' >"$DIR/empty.txt"
expect 1 "empty corpus" "$EXE" shards --vocab "$DIR/vocab.txt" --out "$DIR/x" "$DIR/empty.txt"
expect 1 "empty corpus" "$EXE" vocab --size 100 --out "$DIR/v3.txt" "$DIR/empty.txt"

echo "$pass passed, $failed failed"
[ "$failed" -eq 0 ]
