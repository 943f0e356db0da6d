#!/bin/sh
# Every subcommand of tokdrop and tokdrop-prep answers --help and -h with its
# usage on stdout and status 0, and refuses bad input with a non-zero status
# and stderr naming the cause (the option, file, key or argument); a config
# that fails on one rank of two stops both, with the message.
#   cli_refusals.sh TOKDROP TOKDROP_PREP MPIEXEC SOURCE_DIR WORKDIR
set -u
tokdrop=$1
prep=$2
mpiexec=$3
src=$4
work=$5
. "$src/tests/cli/common.sh"
cd "$work" || fail "cd $work"
failed=0
bad() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }

# refuses STATUS PATTERN CMD...: CMD exits STATUS with PATTERN on stderr
refuses() {
    want=$1 pat=$2
    shift 2
    "$@" > out 2> err < /dev/null
    got=$?
    if [ "$got" != "$want" ]; then bad "$*: exit $got, expected $want; stderr: $(cat err)"; return; fi
    [ -s err ] || { bad "$*: exit $got and nothing on stderr"; return; }
    grep -q -- "$pat" err || bad "$*: stderr does not name '$pat': $(cat err)"
}

# helps PROGRAM [COMMAND]: --help and -h print the usage on stdout, exit 0
helps() {
    for h in --help -h; do
        "$@" $h > out 2> err
        rc=$?
        [ "$rc" = 0 ] || bad "$* $h: exit $rc: $(cat err)"
        grep -q "^usage: $(basename "$1") ${2:-}" out || bad "$* $h: no usage line on stdout: $(head -n 2 out)"
    done
}

# ---- tokdrop --------------------------------------------------------------------------
cfg=$work/fx/configs/b.yaml
helps "$tokdrop"
refuses 2 "no command" "$tokdrop"
refuses 2 "frobnicate" "$tokdrop" frobnicate
for c in train eval export import; do
    helps "$tokdrop" $c
    refuses 2 "'--frobnicate'" "$tokdrop" $c --frobnicate
    refuses 2 "'-q'" "$tokdrop" $c -q
done

refuses 2 "missing a config file" "$tokdrop" train
refuses 2 "$work/none.yaml" "$tokdrop" train "$work/none.yaml"
# files named by the user that are not regular files: a message, never a hang
mkfifo "$work/fifo"
refuses 2 "$work: is a directory, expected a YAML config file" "$tokdrop" train "$work"
refuses 2 "$work/fifo: is a FIFO, expected a YAML config file" "$tokdrop" train "$work/fifo"
refuses 1 "model.vocab: $work/fifo: is a FIFO" "$tokdrop" train "$cfg" --set "model.vocab=$work/fifo"
refuses 1 "model.vocab: $work: is a directory" "$tokdrop" train "$cfg" --set "model.vocab=$work"
refuses 1 "model.init: $work/fifo: is a FIFO" "$tokdrop" train "$cfg" --set "model.init=$work/fifo"
refuses 1 "model.init: $work: is a directory" "$tokdrop" train "$cfg" --set "model.init=$work"
refuses 2 "unexpected argument '$cfg'" "$tokdrop" train "$cfg" "$cfg"
refuses 2 "'--dump' needs a value" "$tokdrop" train "$cfg" --dump
refuses 2 "'--set' needs a value" "$tokdrop" train "$cfg" --set
refuses 2 "train.nokey" "$tokdrop" train "$cfg" --set train.nokey=1
refuses 1 "$work/nothing/\*.h5" "$tokdrop" train "$cfg" --set "data.train=$work/nothing/*.h5" --set "run.dir=$work/r"

refuses 2 "missing a config file" "$tokdrop" eval --checkpoint c.h5
refuses 2 "--checkpoint" "$tokdrop" eval "$cfg"
refuses 2 "data.eval" "$tokdrop" eval "$cfg" --checkpoint c.h5
refuses 2 "$work/none.yaml" "$tokdrop" eval "$work/none.yaml" --checkpoint c.h5
refuses 1 "$work/missing.h5" "$tokdrop" eval "$cfg" --checkpoint "$work/missing.h5" \
    --set "data.eval=$work/fx/train/*.h5"

refuses 2 "missing a checkpoint file and an output directory" "$tokdrop" export
refuses 2 "missing an output directory" "$tokdrop" export c.h5
refuses 2 "'extra'" "$tokdrop" export c.h5 out extra
refuses 2 "'--vocab' needs a value" "$tokdrop" export c.h5 out --vocab
refuses 1 "$work/missing.h5" "$tokdrop" export "$work/missing.h5" "$work/out"

refuses 2 "missing a Hugging Face model directory and a checkpoint file to write" "$tokdrop" import
refuses 2 "missing a checkpoint file to write" "$tokdrop" import "$work/hf"
refuses 2 "'extra'" "$tokdrop" import "$work/hf" c.h5 extra
refuses 1 "$work/hf/config.json" "$tokdrop" import "$work/hf" "$work/c.h5"

# ---- tokdrop-prep ----------------------------------------------------------------------
printf 'Some text here.\nAnother line.\n' > text.txt
helps "$prep"
refuses 2 "tokdrop-prep" "$prep"
refuses 2 "frobnicate" "$prep" frobnicate
for c in vocab tokenize shards; do
    helps "$prep" $c
    refuses 2 "'--frobnicate'" "$prep" $c --frobnicate
    refuses 2 "'-q'" "$prep" $c -q
done
refuses 2 "--size" "$prep" vocab --out v.txt text.txt
refuses 2 "'--size' needs a value" "$prep" vocab --size
refuses 2 "'--cased' takes no value" "$prep" vocab --cased=yes --size 100 --out v.txt text.txt
refuses 2 "INPUT" "$prep" vocab --size 100 --out v.txt
refuses 1 "$work/none.txt" "$prep" vocab --size 100 --out v.txt "$work/none.txt"
refuses 2 "--vocab" "$prep" tokenize text.txt
refuses 1 "$work/none.txt" "$prep" tokenize --vocab "$work/none.txt" text.txt
refuses 2 "--out" "$prep" shards --vocab "$work/fx/vocab.txt" text.txt
refuses 2 "--seq-len" "$prep" shards --vocab "$work/fx/vocab.txt" --out sh --seq-len x text.txt
refuses 1 "$work/none.txt" "$prep" shards --vocab "$work/fx/vocab.txt" --out sh "$work/none.txt"

# ---- a config that fails on one rank of two -----------------------------------------------
# MPMD: rank 0 reads a good config, rank 1 a missing one. Rank 0 must not
# wait for rank 1 in its first collective; rank 1 says why.
if [ -n "$mpiexec" ]; then
    timeout 120 "$mpiexec" -n 1 "$tokdrop" train "$cfg" --set "run.dir=$work/mpmd" \
        : -n 1 "$tokdrop" train "$work/rank1.yaml" > out 2> err
    rc=$?
    [ "$rc" != 0 ] && [ "$rc" != 124 ] || bad "one rank's bad config: exit $rc (124: hung)"
    grep -q "rank 1: $work/rank1.yaml" err || bad "one rank's bad config: no message from rank 1: $(cat err)"
    [ ! -e "$work/mpmd" ] || bad "one rank's bad config: rank 0 went on and made its run directory"
fi

[ "$failed" = 0 ] || fail "$failed refusal check(s) failed"
echo "cli_refusals: ok"
