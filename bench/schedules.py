#!/usr/bin/python3
"""Token-drop schedules against the full-sequence baseline, on time to quality.

    bench/schedules.py BUILD_DIR [--steps N] [--runs a,b,...] [--slice SECONDS]

Trains the baseline (no token dropping) and each chosen schedule on the same
data, seed and step budget, on 2 MPI ranks x 1 thread, in bf16 where the CPU
has it (train.precision auto), and evaluates every run on the same held-out
full sequences every N/12 steps. Then writes, under bench/results/:
    schedules-<stamp>.json   every run's settings, curves and figures
    schedules-<stamp>.md     the table
    schedules-<stamp>.png    held-out MLM loss against training time and step

The model: BERT with 8 layers, hidden 256, 4 heads, FFN 1024, on the Python
documentation (cluster/demo-data.sh: 8192-token vocabulary, 71k training
sequences of 128 tokens, 394 held out), 64 sequences per step, LAMB at
2e-3 with 10% warmup and linear decay to 0. Token dropping keeps 64 of the
128 tokens in layers 3..6 (layer 3 attends to all; SPEC section 2).

Timing. The VM is noisy (20-50% between identical runs minutes apart), so
the runs are interleaved: each trains for --slice seconds, is stopped with
SIGUSR1 (it finishes its step, checkpoints and exits) and the next one takes
over, round robin, until all are done. A resumed run is bit-identical to an
uninterrupted one, so the slicing changes no result, only spreads the
machine's slow and fast minutes over all runs alike. Training time is the
sum of the steps' own times from metrics.jsonl (time_step of rank 0): it
leaves out start-up, evaluation and checkpoints, which every run pays alike.
The first step after each resume pays the warm-up (page faults, kernel
creation) again; every run has about the same number of slices.

Runs (--runs picks and orders them; baseline is always run):
    baseline    no token dropping
    constant    keep 64 every step (Hou et al.)
    ramp        keep grows linearly from 64 to 128 over the first 75% of
                the steps (DeepSpeed random-LTD)
    interleave  every 4th step full (ScTD's alignment steps)
    full_last   constant, then the last 10% of the steps full
    ramp_last   ramp over the first 50%, which then runs full (full from
                mid-run: random-LTD as its authors schedule it)
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXIT_STOPPED = 75  # tokdrop's status after SIGUSR1: checkpoint written, run again to go on


def die(msg):
    sys.exit("schedules: ERROR: " + msg)


def say(msg):
    print("schedules: " + msg, file=sys.stderr, flush=True)


def schedule_sets(name, steps):
    drop = ["token_drop.enabled=true"]
    table = {
        "baseline": ["token_drop.enabled=false"],
        "constant": drop,
        "ramp": drop + ["token_drop.schedule=ramp", "token_drop.ramp_steps=%d" % (steps * 3 // 4)],
        "interleave": drop + ["token_drop.schedule=interleave", "token_drop.full_every=4"],
        "full_last": drop + ["token_drop.full_last_steps=%d" % (steps // 10)],
        "ramp_last": drop + ["token_drop.schedule=ramp", "token_drop.ramp_steps=%d" % (steps // 2)],
    }
    if name not in table:
        die("unknown run '%s' (choose from %s)" % (name, ", ".join(table)))
    return table[name]


def common_sets(steps, vocab_size):
    return ["model.layers=8", "model.hidden=256", "model.heads=4", "model.intermediate=1024",
            "model.vocab_size=%d" % vocab_size,
            "token_drop.keep=64", "token_drop.first_layer=-1",
            "train.steps=%d" % steps, "train.micro_batch=32", "train.accumulation=1",
            "train.threads=1", "train.precision=auto",
            "optimizer.name=lamb", "optimizer.lr=0.002", "optimizer.warmup_steps=%d" % (steps // 10),
            "run.log_every=1", "run.eval_every=%d" % max(1, steps // 12),
            "run.eval_batches=12",  # 12 x 32 = 384 of the 394 held-out sequences
            "run.checkpoint_every=0", "run.keep_checkpoints=1"]


def rows(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def train_in_slices(build, names, steps, vocab_size, slice_s, work):
    """Round robin: each unfinished run trains slice_s seconds, then yields."""
    tokdrop = os.path.join(build, "tokdrop")
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    if os.getuid() == 0:
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    pending = list(names)
    slices = {n: 0 for n in names}
    while pending:
        for name in list(pending):
            run_dir = os.path.join(work, name)
            cmd = ["mpirun", "-n", "2", "--oversubscribe", tokdrop, "train", "configs/demo.yaml"]
            for s in common_sets(steps, vocab_size) + schedule_sets(name, steps) + ["run.dir=" + run_dir]:
                cmd += ["--set", s]
            slices[name] += 1
            say("%s: slice %d (%s)" % (name, slices[name], " ".join(cmd) if slices[name] == 1 else "resuming"))
            with open(run_dir + ".log", "a") as log:
                p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
                try:
                    rc = p.wait(timeout=slice_s)
                except subprocess.TimeoutExpired:
                    p.send_signal(signal.SIGUSR1)  # mpirun forwards it to the ranks
                    rc = p.wait()
            if rc == 0:
                pending.remove(name)
                say("%s: done after %d slices" % (name, slices[name]))
            elif rc != EXIT_STOPPED:
                die("%s: tokdrop exited with status %d; see %s.log" % (name, rc, run_dir))
    return slices


def interp_time_to(points, target):
    """First training time at which the held-out loss reaches target, linear
    between evaluations; None when it never does."""
    prev = None
    for t, loss in points:
        if loss <= target:
            if prev is None or prev[1] == loss:
                return t
            (t0, l0) = prev
            return t0 + (t - t0) * (l0 - target) / (l0 - loss)
        prev = (t, loss)
    return None


def interp_loss_at(points, t):
    """Held-out loss at training time t, linear between evaluations."""
    for (t0, l0), (t1, l1) in zip(points, points[1:]):
        if t0 <= t <= t1:
            return l0 + (l1 - l0) * (t - t0) / (t1 - t0)
    return None


def analyse(names, work, steps):
    runs = {}
    for name in names:
        m = rows(os.path.join(work, name, "metrics.jsonl"))
        e = rows(os.path.join(work, name, "eval.jsonl"))
        if [r["step"] for r in m] != list(range(1, steps + 1)):
            die("%s: metrics.jsonl does not hold steps 1..%d once each" % (name, steps))
        cum, total = {}, 0.0
        for r in m:
            total += r["time_step"]
            cum[r["step"]] = total
        full = sorted(r["time_step"] for r in m[1:] if r["mode"] == "full")
        drop = sorted(r["time_step"] for r in m[1:] if r["mode"] == "drop")
        runs[name] = {
            "train_s": total,
            "mean_kept_fraction": sum(r["kept_fraction"] for r in m) / len(m),
            "full_steps": sum(r["mode"] == "full" for r in m),
            "median_step_s": {"full": full[len(full) // 2] if full else None,
                              "drop": drop[len(drop) // 2] if drop else None},
            "eval": [{"step": r["step"], "train_s": cum[r["step"]], "mlm_loss": r["mlm_loss"],
                      "mlm_acc": r["mlm_acc"]} for r in e],
        }
        if not runs[name]["eval"] or runs[name]["eval"][-1]["step"] != steps:
            die("%s: no evaluation at the last step in eval.jsonl" % name)
    base = runs["baseline"]
    target = base["eval"][-1]["mlm_loss"]
    base_pts = [(p["train_s"], p["mlm_loss"]) for p in base["eval"]]
    base_by_step = {p["step"]: p["mlm_loss"] for p in base["eval"]}
    for name, r in runs.items():
        pts = [(p["train_s"], p["mlm_loss"]) for p in r["eval"]]
        last = r["eval"][-1]
        t_hit = interp_time_to(pts, target)
        t_base_to_own = interp_time_to(base_pts, last["mlm_loss"])
        r["final_mlm_loss"] = last["mlm_loss"]
        r["final_mlm_acc"] = last["mlm_acc"]
        r["equal_step_wall_ratio"] = r["train_s"] / base["train_s"]
        r["time_to_baseline_loss_ratio"] = None if t_hit is None else t_hit / base["train_s"]
        # below 1: the baseline needs less time than this run to reach this
        # run's own final loss
        r["speedup_at_own_final_loss"] = None if t_base_to_own is None else t_base_to_own / r["train_s"]
        # the deficit along the way: at equal steps, and at equal time
        r["loss_gap_equal_step"] = [(p["step"], p["mlm_loss"] - base_by_step[p["step"]])
                                    for p in r["eval"] if p["step"] in base_by_step]
        gaps = []
        for p in r["eval"]:
            b = interp_loss_at(base_pts, p["train_s"])
            if b is not None:
                gaps.append((p["step"], p["train_s"], p["mlm_loss"] - b))
        r["loss_gap_equal_time"] = gaps
    return runs, target


def fmt(x, f="%.3f"):
    return "not reached" if x is None else f % x


def table(runs, target):
    lines = ["| run | mean kept fraction | full steps | equal-step wall ratio | held-out MLM loss | "
             "MLM accuracy | time to baseline's final loss (ratio) | baseline time to this run's "
             "final loss / this run's time | loss gap at equal steps, half way -> end |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in runs.items():
        g = r["loss_gap_equal_step"]
        half = g[len(g) // 2 - 1] if len(g) >= 2 else g[-1]
        lines.append("| %s | %.3f | %d | %.3f | %.4f | %.4f | %s | %s | %+.4f (step %d) -> %+.4f |" % (
            name, r["mean_kept_fraction"], r["full_steps"], r["equal_step_wall_ratio"], r["final_mlm_loss"],
            r["final_mlm_acc"], fmt(r["time_to_baseline_loss_ratio"]), fmt(r["speedup_at_own_final_loss"]),
            half[1], half[0], g[-1][1]))
    lines.append("")
    lines.append("Baseline final held-out MLM loss %.4f; training time = sum of the steps' times "
                 "(no start-up, evaluation or checkpoints)." % target)
    return "\n".join(lines)


def plot(runs, target, png, work):
    data = os.path.join(work, "curves.dat")
    with open(data, "w") as f:
        for name, r in runs.items():
            f.write("# %s\n" % name)
            for p in r["eval"]:
                f.write("%g %d %.6f\n" % (p["train_s"] / 60.0, p["step"], p["mlm_loss"]))
            f.write("\n\n")
    terms = subprocess.run(["gnuplot", "-e", "set terminal"], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL)
    term = "pngcairo size 1400,560" if "pngcairo" in terms.stdout + terms.stderr else "png size 1400,560"
    curves_t = ", ".join("'%s' index %d using 1:3 with linespoints title '%s'" % (data, i, n)
                         for i, n in enumerate(runs))
    curves_s = ", ".join("'%s' index %d using 2:3 with linespoints title '%s'" % (data, i, n)
                         for i, n in enumerate(runs))
    gp = "\n".join([
        "set terminal %s" % term, "set output '%s'" % png, "set termoption noenhanced",
        "set multiplot layout 1,2 title 'Held-out full-sequence MLM loss (BERT 8L/256, python-docs)'",
        "set grid", "set key top right", "set ylabel 'held-out MLM loss'",
        "set xlabel 'training time (minutes)'",
        "plot %s, %g with lines dashtype 2 lc rgb 'gray' title 'baseline final'" % (curves_t, target),
        "set xlabel 'step'",
        "plot %s, %g with lines dashtype 2 lc rgb 'gray' title 'baseline final'" % (curves_s, target),
        "unset multiplot"])
    r = subprocess.run(["gnuplot"], input=gp, text=True, capture_output=True)
    if r.returncode != 0:
        die("gnuplot failed: " + r.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build")
    ap.add_argument("--steps", type=int, default=360)
    ap.add_argument("--runs", default="constant,ramp,interleave,full_last")
    ap.add_argument("--slice", type=float, default=150.0, help="seconds each run trains before the next")
    ap.add_argument("--work", default=os.path.join(ROOT, "demo", "runs", "schedules"),
                    help="run directories (removed and made afresh)")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    names = ["baseline"] + [n for n in a.runs.split(",") if n and n != "baseline"]
    for n in names:
        schedule_sets(n, a.steps)
    if a.steps < 24:
        die("--steps must be at least 24 (12 evaluations)")
    for tool in ("mpirun", "gnuplot"):
        if subprocess.run(["sh", "-c", "command -v " + tool], capture_output=True).returncode != 0:
            die("%s not found ('make deps' installs it)" % tool)

    vocab = subprocess.run([os.path.join(ROOT, "cluster", "demo-data.sh"), build], cwd=ROOT,
                           capture_output=True, text=True)
    if vocab.returncode != 0:
        die("cluster/demo-data.sh failed:\n" + vocab.stderr)
    vocab_size = int(vocab.stdout.split()[-1])

    subprocess.run(["rm", "-rf", a.work], check=True)
    os.makedirs(a.work)
    say("%d runs of %d steps, interleaved in slices of %.0f s; run directories in %s" % (
        len(names), a.steps, a.slice, a.work))
    t0 = time.time()
    slices = train_in_slices(build, names, a.steps, vocab_size, a.slice, a.work)
    elapsed = time.time() - t0

    runs, target = analyse(names, a.work, a.steps)
    stamp = time.strftime("%Y%m%dT%H%MZ", time.gmtime())
    out = os.path.join(ROOT, "bench", "results", "schedules-" + stamp)
    version = subprocess.run([os.path.join(build, "tokdrop"), "--version"], capture_output=True, text=True)
    cpu = subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p' | head -n 1"],
                         capture_output=True, text=True).stdout.strip()
    result = {"machine": cpu, "tokdrop": version.stdout.strip(), "steps": a.steps, "slice_s": a.slice,
              "slices": slices, "wall_s": elapsed, "baseline_final_mlm_loss": target,
              "settings": common_sets(a.steps, vocab_size) + ["2 ranks x 1 thread"],
              "schedules": {n: schedule_sets(n, a.steps) for n in names}, "runs": runs}
    with open(out + ".json", "w") as f:
        json.dump(result, f, indent=1)
    text = table(runs, target)
    with open(out + ".md", "w") as f:
        f.write(text + "\n")
    plot(runs, target, out + ".png", a.work)
    print(text)
    say("%.0f minutes in all; %s.{json,md,png}" % (elapsed / 60, out))


if __name__ == "__main__":
    main()
