#!/bin/sh
# A full disk under run.dir (README, "When the disk fills up"), on a small
# tmpfs mounted for the test:
#  1. the first checkpoint fits, the second does not: exit 74 (not a crash:
#     HDF5 1.10 used to segfault at exit, status 139), a message naming the
#     checkpoint, "No space left on device" and the intact newest checkpoint,
#     no temporary file, nothing from HDF5 on stderr; once the tmpfs is
#     larger the same command resumes from that checkpoint and ends
#     bit-identical (metrics) to a run that had the room;
#  2. the same on 2 ranks under mpirun: mpirun and every rank exit 74;
#  3. metrics.jsonl cannot take another row: exit 74 naming it; with room
#     again the run starts over (no checkpoint yet) and ends with every row;
#  4. a completely full disk: config.yaml cannot be written: exit 74, and
#     the run leaves nothing behind.
# Mounting needs root (CAP_SYS_ADMIN): anywhere else, or where the mount is
# refused (a container), it prints SKIP and why, and exits 77 (ctest SKIP).
#   disk_full.sh TOKDROP MPIEXEC SOURCE_DIR WORKDIR
set -u
tokdrop=$1
mpiexec=$2
src=$3
work=$4
mnt=$work/mnt

if [ "$(id -u)" != 0 ]; then
    echo "disk_full: SKIP: needs root to mount a small tmpfs"
    exit 77
fi
# a tmpfs left mounted by a run that was killed: common.sh empties $work
mountpoint -q "$mnt" 2> /dev/null && umount "$mnt"
. "$src/tests/cli/common.sh"
cleanup() {
    rc=$?
    mountpoint -q "$mnt" 2> /dev/null && umount "$mnt"
    exit $rc
}
trap cleanup EXIT
trap 'exit 1' INT TERM

mount_tmpfs() { # size in KiB; a fresh, empty tmpfs at $mnt
    mountpoint -q "$mnt" && umount "$mnt"
    mkdir -p "$mnt"
    mount -t tmpfs -o "size=$1k" tmpfs "$mnt"
}
mkdir -p "$mnt"
if ! why=$(mount -t tmpfs -o size=64k tmpfs "$mnt" 2>&1); then
    echo "disk_full: SKIP: cannot mount a tmpfs here: $(echo "$why" | head -n 1)"
    exit 77
fi

cfg="$work/fx/configs/a.yaml"
common="--set train.steps=10 --set run.checkpoint_every=2 --set run.keep_checkpoints=1 --set run.log_every=1"

# exit status, the lines expected on stderr, nothing else that matters
check_failure() { # name, rc, log, pattern...
    name=$1 rc=$2 log=$3
    shift 3
    [ "$rc" = 74 ] || { cat "$log"; fail "$name: exit status $rc, expected 74"; }
    for pattern in "$@"; do
        grep -q -- "$pattern" "$log" || { cat "$log"; fail "$name: no line matching '$pattern'"; }
    done
    ! grep -q -i -e "HDF5" -e "signal" -e "segmentation" "$log" ||
        { cat "$log"; fail "$name: HDF5's or a crash's words on stderr"; }
    leftover=$(find "$mnt" -name '*.tmp')
    [ -z "$leftover" ] || fail "$name: temporary files left: $leftover"
}

# the same run with room to spare: the reference, and the checkpoint's size
"$tokdrop" train "$cfg" $common --set "run.dir=$work/roomy" 2> "$work/roomy.log" ||
    { cat "$work/roomy.log"; fail "reference run"; }
ckpt_k=$(($(stat -c %s "$work/roomy/checkpoints/ckpt-00000010.h5") / 1024))
# one checkpoint and the logs fit, a second one next to it does not
small_k=$((ckpt_k * 3 / 2 + 4))

# 1. no room for the checkpoint at step 4
mount_tmpfs $small_k
run="--set run.dir=$mnt/run"
"$tokdrop" train "$cfg" $common $run 2> "$work/one.log"
check_failure "one rank" $? "$work/one.log" \
    "ckpt-00000004.h5: write failed (to .*/.ckpt-00000004.h5.tmp): No space left on device" \
    "the newest is $mnt/run/checkpoints/ckpt-00000002.h5" \
    "free space there .* run the same command again.*(exit status 74)"
[ "$(ls "$mnt/run/checkpoints")" = "ckpt-00000002.h5" ] ||
    fail "one rank: checkpoints left: $(ls -A "$mnt/run/checkpoints")"
mount -o remount,size=$((ckpt_k * 3))k "$mnt"
"$tokdrop" train "$cfg" $common $run 2> "$work/one_again.log" ||
    { cat "$work/one_again.log"; fail "one rank: the run again, with room"; }
grep -q "resuming from $mnt/run/checkpoints/ckpt-00000002.h5 (step 2)" "$work/one_again.log" ||
    { cat "$work/one_again.log"; fail "one rank: did not resume from step 2"; }
/usr/bin/python3 - "$work/roomy/metrics.jsonl" "$mnt/run/metrics.jsonl" <<'PY' || fail "one rank: the resumed run differs"
import json, sys
a, b = ([json.loads(l) for l in open(p)] for p in sys.argv[1:])
assert [r["step"] for r in b] == list(range(1, 11)), [r["step"] for r in b]
for x, y in zip(a, b):
    for k in ("loss", "mlm_loss", "nsp_loss", "grad_norm", "lr"):
        assert x[k] == y[k], (x["step"], k, x[k], y[k])
PY

# 2. two ranks: mpirun's status, then (its abort on the first non-zero
# status switched off) every rank's
mount_tmpfs $small_k
"$mpiexec" -n 2 "$tokdrop" train "$cfg" $common $run 2> "$work/two.log"
check_failure "two ranks" $? "$work/two.log" "rank 0: .*ckpt-00000004.h5: write failed .*No space left on device" \
    "rank 1: rank 0 failed to write the checkpoint"
mount_tmpfs $small_k
"$mpiexec" --mca orte_abort_on_non_zero_status 0 -n 2 sh -c \
    '"$0" "$@"; rc=$?; echo $rc > "'"$work"'/rc.$OMPI_COMM_WORLD_RANK"; exit $rc' \
    "$tokdrop" train "$cfg" $common $run 2> "$work/two_ranks.log"
for r in 0 1; do
    [ "$(cat "$work/rc.$r" 2> /dev/null)" = 74 ] ||
        { cat "$work/two_ranks.log"; fail "two ranks: rank $r exit status $(cat "$work/rc.$r" 2> /dev/null)"; }
done

# 3. room for config.yaml and one page of metrics.jsonl
mount_tmpfs 8
"$tokdrop" train "$cfg" $common --set train.steps=30 --set run.checkpoint_every=0 $run 2> "$work/metrics.log"
check_failure "metrics" $? "$work/metrics.log" "$mnt/run/metrics.jsonl: cannot append a row: No space left on device"
mount -o remount,size=$((ckpt_k * 3))k "$mnt"
"$tokdrop" train "$cfg" $common --set train.steps=30 --set run.checkpoint_every=0 $run 2> "$work/metrics_again.log" ||
    { cat "$work/metrics_again.log"; fail "metrics: the run again, with room"; }
/usr/bin/python3 -c "
import json, sys
steps = [json.loads(l)['step'] for l in open(sys.argv[1])]
assert steps == list(range(1, 31)), steps" "$mnt/run/metrics.jsonl" || fail "metrics: rows after the run again"

# 4. not a byte free
mount_tmpfs $small_k
dd if=/dev/zero of="$mnt/filler" bs=4k 2> /dev/null
"$tokdrop" train "$cfg" $common $run 2> "$work/full.log"
check_failure "full" $? "$work/full.log" "config.yaml: write failed (to .*): No space left on device"
[ "$(ls -A "$mnt")" = "filler" ] || fail "full: left behind: $(ls -A "$mnt")"
echo "disk_full: all cases passed"
