#!/bin/sh
# Training curves of one or more tokdrop runs as a single PNG with four panels:
#   training loss vs step          training loss vs wall time
#   eval MLM accuracy vs step      eval MLM accuracy vs wall time
# one line per run, labelled by the run directory's name.
#
#   cluster/plot.sh [-o curves.png] RUN_DIR [RUN_DIR ...]
#
# Reads RUN_DIR/metrics.jsonl (required, at least one logged step) and
# RUN_DIR/eval.jsonl (optional: a run without it still gets its training
# curves). Needs gnuplot (Debian: gnuplot-nox) and Python 3 (standard library
# only) to turn the JSON lines into tables gnuplot can read.
set -u

prog=plot.sh
die() { echo "$prog: $*" >&2; exit 1; }
usage() {
    cat >&2 <<'EOF'
usage: cluster/plot.sh [-o OUT.png] RUN_DIR [RUN_DIR ...]
  Draws training loss and eval MLM accuracy, against step and against wall
  time, of every RUN_DIR (a tokdrop run.dir holding metrics.jsonl and,
  optionally, eval.jsonl) into one PNG (default: curves.png).
EOF
    exit 2
}

out=curves.png
while [ $# -gt 0 ]; do
    case $1 in
        -o) [ $# -ge 2 ] || usage; out=$2; shift 2 ;;
        -o*) out=${1#-o}; shift ;;
        -h|--help) usage ;;
        --) shift; break ;;
        -*) echo "$prog: unknown option '$1'" >&2; usage ;;
        *) break ;;
    esac
done
[ $# -ge 1 ] || { echo "$prog: no run directory given" >&2; usage; }
[ -n "$out" ] || die "empty output file name"

# Debian's interpreter first: the python3 found first on PATH may be another one.
if [ -x /usr/bin/python3 ]; then py=/usr/bin/python3
elif command -v python3 >/dev/null 2>&1; then py=python3
else die "python3 not found (needed to read the JSON lines)"; fi
command -v gnuplot >/dev/null 2>&1 || die "gnuplot not found (Debian package gnuplot-nox; 'make deps' installs it)"

# Checked here too, so that the message names the directory as the user typed it.
for d in "$@"; do
    [ -e "$d" ] || die "run directory '$d' does not exist"
    [ -d "$d" ] || die "'$d' is not a directory"
    [ -f "$d/metrics.jsonl" ] || die "'$d' holds no metrics.jsonl: not a tokdrop run directory, or the run has not logged a step yet"
done

# pngcairo draws antialiased lines; plain png (libgd) is the fallback that
# every gnuplot build with PNG support has.
terms=$(gnuplot -e 'set terminal' 2>&1 </dev/null)
if printf '%s\n' "$terms" | grep -qw pngcairo; then term="pngcairo size 1400,1000 font 'DejaVu Sans,10'"
elif printf '%s\n' "$terms" | grep -qw png; then term="png size 1400,1000"
else die "this gnuplot has neither the pngcairo nor the png terminal"; fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tokdrop-plot.XXXXXX") || die "cannot create a temporary directory"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP

"$py" - "$tmp" "$term" "$out" "$@" <<'PY' || exit 1
import json, math, os, sys

tmp, term, out = sys.argv[1], sys.argv[2], sys.argv[3]
runs = sys.argv[4:]


def fail(msg):
    sys.stderr.write("plot.sh: %s\n" % msg)
    sys.exit(1)


def read_jsonl(path, keys):
    """Rows of a JSON-lines file as dicts holding `keys` (all numbers).
    An unterminated last line is a record still being written by a live run
    and is skipped; any other bad line is an error naming file and line."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        fail("cannot read %s: %s" % (path, e.strerror))
    lines = text.split("\n")
    partial = lines.pop()  # text after the last newline: "" when complete
    rows = []
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            fail("%s:%d: not a JSON object: %s" % (path, no, e))
        if not isinstance(obj, dict):
            fail("%s:%d: not a JSON object" % (path, no))
        for k in keys:
            v = obj.get(k)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                fail("%s:%d: field '%s' missing or not a number" % (path, no, k))
        rows.append(obj)
    if partial.strip():
        sys.stderr.write("plot.sh: %s: ignoring an unfinished last line\n" % path)
    return rows


def latest_segment(rows):
    """A resumed run appends to the same file, restarting at the checkpoint's
    step: rows of the abandoned attempt past that step are dropped, so each
    step appears once, in order. Returns (rows, index where each resumed
    segment starts) so that times can be chained across segments."""
    kept, starts = [], []
    for r in rows:
        if kept and r["step"] <= kept[-1]["step"]:
            while kept and kept[-1]["step"] >= r["step"]:
                kept.pop()
            starts.append(len(kept))
        kept.append(r)
    return kept, starts


TIME_KEYS = ("time_forward", "time_backward", "time_allreduce", "time_optimizer", "time_data")

# Runs are labelled by their directory's name; where two runs share a name
# (a/run, b/run) the paths as given tell them apart.
names = [os.path.basename(os.path.normpath(os.path.abspath(r))) or r for r in runs]
labels = [n if names.count(n) == 1 else os.path.normpath(r) for n, r in zip(names, runs)]

series = []  # (label, train rows [(step, loss, t)], eval rows [(step, acc, t)])
for run, label in zip(runs, labels):
    mpath = os.path.join(run, "metrics.jsonl")
    train, _ = latest_segment(read_jsonl(mpath, ("step", "loss") + TIME_KEYS))
    if not train:
        fail("%s is empty: the run has not logged a step yet" % mpath)
    # metrics.jsonl has no clock, only the time split of the logged step
    # itself (seconds of forward, backward, allreduce, optimizer and data for
    # that one step; their sum is the step time, and seq_per_s is the step's
    # sequences over that time). Steps between two logged ones are assumed to
    # take as long as the later logged step, so the wall time at step s is
    # the sum over logging intervals of (steps in the interval) x (step
    # time). This leaves out start-up and evaluation, so the training curves
    # sit slightly left of the eval curves, whose elapsed_s is measured and
    # includes the evaluations.
    pts, t, prev = [], 0.0, 0
    for r in train:
        step_time = sum(r[k] for k in TIME_KEYS)
        steps = r["step"] - prev if r["step"] > prev else 1
        t += steps * step_time
        prev = r["step"]
        pts.append((r["step"], r["loss"], t))
    evals = []
    epath = os.path.join(run, "eval.jsonl")
    if os.path.exists(epath):
        erows, starts = latest_segment(read_jsonl(epath, ("step", "elapsed_s", "mlm_acc")))
        # elapsed_s restarts at 0 when a run resumes: continue from the time of
        # the last evaluation kept before the resume point.
        offset = 0.0
        for i, r in enumerate(erows):
            if i in starts:
                offset = evals[i - 1][2] if i > 0 else 0.0
            evals.append((r["step"], r["mlm_acc"], offset + r["elapsed_s"]))
    if not evals:
        sys.stderr.write("plot.sh: %s: no evaluations (no eval.jsonl or an empty one); "
                         "plotting its training curves only\n" % run)
    series.append((label, pts, evals))

# One time unit for both time panels, chosen from the longest run.
tmax = max([p[2] for _, pts, ev in series for p in pts + ev] + [0.0])
unit, div = ("h", 3600.0) if tmax > 3 * 3600 else ("min", 60.0) if tmax > 600 else ("s", 1.0)

for i, (label, pts, evals) in enumerate(series):
    with open(os.path.join(tmp, "train%d.dat" % i), "w") as f:
        f.write("# step loss time_%s\n" % unit)
        for s, loss, t in pts:
            f.write("%d %.9g %.9g\n" % (s, loss, t / div))
    with open(os.path.join(tmp, "eval%d.dat" % i), "w") as f:
        f.write("# step mlm_acc time_%s\n" % unit)
        for s, acc, t in evals:
            f.write("%d %.9g %.9g\n" % (s, acc, t / div))


def gp_str(s):
    """A gnuplot single-quoted string: only the quote itself needs escaping."""
    return "'" + s.replace("'", "''") + "'"


def plot_cmd(kind, xcol, ycol):
    parts = []
    for i, (label, pts, evals) in enumerate(series):
        if kind == "eval" and not evals:
            continue
        style = "linespoints pt 7 ps 0.6" if kind == "eval" else "lines"
        parts.append("%s using %d:%d with %s lw 2 lc %d title %s" % (
            gp_str(os.path.join(tmp, "%s%d.dat" % (kind, i))), xcol, ycol, style, i + 1, gp_str(label)))
    if not parts:  # keep the panel, say why it is empty
        return ("set label 1 'no eval.jsonl in any run' at graph 0.5, 0.5 center\n"
                "plot [0:1] [0:1] NaN notitle\nunset label 1\n")
    return "plot " + ", \\\n     ".join(parts) + "\n"


gp = []
gp.append("set terminal %s" % term)
gp.append("set output %s" % gp_str(out))
gp.append("set termoption noenhanced")  # run names may hold _ and ^
gp.append("set grid")
gp.append("set key top right")
gp.append("set multiplot layout 2,2 title %s" % gp_str("tokdrop: " + ", ".join(s[0] for s in series)))
gp.append("set title 'training loss (MLM + NSP)'\nset xlabel 'step'\nset ylabel 'loss'")
gp.append(plot_cmd("train", 1, 2))
gp.append("set title 'training loss vs wall time (estimated from logged step times)'")
gp.append("set xlabel 'wall time (%s)'" % unit)
gp.append(plot_cmd("train", 3, 2))
gp.append("set title 'eval MLM accuracy'\nset xlabel 'step'\nset ylabel 'MLM accuracy'\nset key bottom right")
gp.append(plot_cmd("eval", 1, 2))
gp.append("set title 'eval MLM accuracy vs wall time (elapsed_s: training + evaluation)'")
gp.append("set xlabel 'wall time (%s)'" % unit)
gp.append(plot_cmd("eval", 3, 2))
gp.append("unset multiplot")
gp.append("set output")
with open(os.path.join(tmp, "plot.gp"), "w") as f:
    f.write("\n".join(gp) + "\n")
PY

gnuplot "$tmp/plot.gp" 2>"$tmp/gnuplot.err"
rc=$?
# gnuplot's exit status misses some problems (a warning-only run still
# writes nothing useful), so the file itself is checked too.
if [ $rc -ne 0 ] || [ ! -s "$out" ]; then
    cat "$tmp/gnuplot.err" >&2
    [ $rc -ne 0 ] && rm -f "$out"
    die "gnuplot failed to write $out"
fi
# Warnings (e.g. a run with a single point) are shown but are not failures.
[ -s "$tmp/gnuplot.err" ] && sed 's/^/plot.sh: gnuplot: /' "$tmp/gnuplot.err" >&2
echo "$prog: wrote $out ($# run(s))"
