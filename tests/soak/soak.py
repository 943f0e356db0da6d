#!/usr/bin/python3
"""Soak test (`make soak`, not part of `make test`): a long run stopped and
killed many times ends bit-identical to an uninterrupted one, with flat
resident memory and each step once in metrics.jsonl.

    tests/soak/soak.py BUILD_DIR [--steps N] [--seed S] [--work DIR] [--out FILE]

The model: configs/bert-tiny-drop.yaml (2 layers, hidden 128, token dropping
keep 64 of 128) on the demo corpus (cluster/demo-data.sh: the Python
documentation, 8192-token vocabulary, sequences of 128), fp32, micro-batch 8,
2 MPI ranks x 1 thread, a checkpoint every 100 steps, a metrics row every
step, an evaluation every N/20 steps.

1. The straight run: N steps uninterrupted. Each rank's VmRSS is read from
   /proc every --rss-every seconds. After the warm-up (the first 10% of the
   steps), the median RSS of the last 10% of the steps may exceed the median
   of the steps 10-20% by at most --rss-bound-mib (default 4 MiB) on each
   rank. 4 MiB is about 3% of a rank's ~135 MiB here and above the noise
   (glibc's heap and Open MPI's buffers settle within the warm-up); a leak of
   470 bytes per step, or of 46 KiB per checkpoint, crosses it over 9000
   steps of a 10,000-step soak.
2. The interrupted run: the same N steps, interrupted every 150-450 steps
   (drawn from --seed, so a failure is reproducible) and run again after
   each interruption until it exits 0. The interruptions cycle, shuffled,
   through:
     usr1        SIGUSR1 to mpirun, which forwards it (exit 75)
     term        SIGTERM to both ranks directly (exit 75)
     term1       SIGTERM to rank 1 only: rank 0 learns of it at the step's end
     usr1_ckpt   SIGUSR1 to mpirun while rank 0 writes a periodic checkpoint
     kill        SIGKILL to one rank at a random step; mpirun ends the job
     kill_ckpt   SIGKILL to rank 0 while it writes a periodic checkpoint
   After a stop (exit 75): the log names the step S, ckpt-S.h5 exists and
   metrics.jsonl ends at S. After a SIGKILL: the next invocation resumes
   from the newest complete checkpoint K and drops exactly the metrics rows
   past K that the killed job wrote (torn last line included).
3. The comparison: metrics.jsonl of the interrupted run holds steps 1..N
   once each, in order; its rows equal the straight run's (loss terms,
   accuracy, lr, gradient norm, mode, kept fraction; not the timings);
   eval.jsonl likewise (not elapsed_s); and the checkpoints both runs kept
   are equal: every dataset (param/*, optim/m/*, optim/v/*, importance,
   data_cursors) bit for bit, the step, seed and n_ranks attributes, and the
   config but for run.dir.

Prints the RSS curve and a summary, writes everything (settings,
interruptions, RSS samples, figures) as JSON to --out (default
bench/results/soak-<UTC stamp>.json), and ends with PASS or FAIL; the exit
status is 0 only on PASS. Run directories and logs: --work (default
BUILD_DIR/soak, removed and made afresh).
"""
import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import h5py
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXIT_STOPPED = 75
KINDS = ["usr1", "usr1", "term", "term", "term1", "usr1_ckpt", "kill", "kill_ckpt"]
# metrics.jsonl keys that do not depend on timing
METRIC_KEYS = ("loss", "mlm_loss", "nsp_loss", "mlm_acc", "lr", "grad_norm", "mode", "kept_fraction")
EVAL_KEYS = ("sequences", "mlm_loss", "mlm_acc", "nsp_loss", "nsp_acc")
PIDS = set()  # every mpirun and rank started, to tell our /dev/shm leftovers from others'


def ours(shm_name):
    """Whether a /dev/shm entry's name holds the id of one of our processes
    (other jobs on the machine come and go meanwhile)."""
    return any(int(n) in PIDS for n in re.findall(r"\d+", shm_name))


def die(msg):
    print("soak: ERROR: " + msg, file=sys.stderr, flush=True)
    sys.exit(1)


def say(msg):
    print("soak: " + msg, file=sys.stderr, flush=True)


def settings(a, vocab_size):
    return ["model.vocab=demo/vocab.txt", "model.vocab_size=%d" % vocab_size,
            "data.train=demo/data/train/*.h5", "data.eval=demo/data/eval/*.h5", "data.seq_len=128",
            "train.precision=fp32", "train.threads=1", "train.micro_batch=%d" % a.micro_batch,
            "train.accumulation=1", "train.steps=%d" % a.steps,
            "optimizer.warmup_steps=%d" % max(1, a.steps // 10),
            "run.log_every=1", "run.checkpoint_every=100", "run.keep_checkpoints=3",
            "run.eval_every=%d" % eval_every(a.steps), "run.eval_batches=4"]


def eval_every(steps):
    """Every 1/20 of the steps: the first evaluation (which loads the
    evaluation set) falls inside the RSS warm-up."""
    return max(1, steps // 20)


def last_step(path):
    """The step of the last complete row of a metrics file, 0 if none."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 8192))
            tail = f.read()
    except FileNotFoundError:
        return 0
    lines = tail.split(b"\n")[:-1]  # the part after the last newline is torn or empty
    for line in reversed(lines):
        m = re.match(rb'\{"step": (\d+),', line)
        if m:
            return int(m.group(1))
    return 0


def rows(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def rows_past(path, k):
    """Lines of a metrics file whose step is past k, a torn last line included."""
    n = 0
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    torn = lines.pop()  # b"" when the file ends in a newline
    for line in lines:
        m = re.match(rb'\{"step": (\d+),', line)
        if m and int(m.group(1)) > k:
            n += 1
    return n + (1 if torn else 0)


def ckpt_steps(run_dir):
    d = os.path.join(run_dir, "checkpoints")
    if not os.path.isdir(d):
        return []
    return sorted(int(m.group(1)) for m in (re.fullmatch(r"ckpt-(\d+)\.h5", n) for n in os.listdir(d)) if m)


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return None


def find_ranks(launcher_pid):
    """{rank: pid} of the launcher's children that are MPI ranks."""
    ranks = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            if ppid != launcher_pid:
                continue
            with open("/proc/%s/environ" % name, "rb") as f:
                env = f.read().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError):
            continue
        for e in env:
            if e.startswith(b"OMPI_COMM_WORLD_RANK="):
                ranks[int(e.split(b"=", 1)[1])] = int(name)
    return ranks


class Job:
    """One mpirun invocation: its ranks, the step reached, RSS samples."""

    def __init__(self, cmd, env, run_dir, log_path, rss_every, t0):
        self.run_dir = run_dir
        self.metrics = os.path.join(run_dir, "metrics.jsonl")
        self.log_path = log_path
        self.rss_every = rss_every
        self.t0 = t0
        self.samples = []  # (seconds since t0, step, {rank: kib})
        self.ranks = {}
        self.start = time.time()
        self.log = open(log_path, "w")
        self.p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        self.next_sample = self.start
        self.step = 0
        PIDS.add(self.p.pid)

    def poll(self):
        """Updates step and samples; the exit status once mpirun has ended."""
        rc = self.p.poll()
        if rc is not None:
            return rc
        now = time.time()
        self.step = last_step(self.metrics)
        if len(self.ranks) < 2 and self.step > 0:
            self.ranks = find_ranks(self.p.pid)
            PIDS.update(self.ranks.values())
        if len(self.ranks) == 2 and now >= self.next_sample:
            rss = {r: rss_kib(pid) for r, pid in self.ranks.items()}
            if all(v is not None for v in rss.values()):
                self.samples.append((now - self.t0, self.step, rss))
            self.next_sample = now + self.rss_every
        return None

    def wait(self):
        rc = self.p.wait()
        self.log.close()
        return rc

    def kill_all(self):
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def text(self):
        with open(self.log_path) as f:
            return f.read()


def run_straight(cmd, env, run_dir, work, a, t0):
    job = Job(cmd + ["--set", "run.dir=" + run_dir], env, run_dir, os.path.join(work, "straight.log"),
              a.rss_every, t0)
    next_say = time.time() + 60
    while job.poll() is None:
        if time.time() >= next_say:
            say("straight: step %d/%d" % (job.step, a.steps))
            next_say += 60
        time.sleep(0.05)
    rc = job.wait()
    if rc != 0:
        die("the straight run exited with status %d; see %s" % (rc, job.log_path))
    return job.samples, time.time() - job.start


def wait_for_ckpt_write(job, seg_start, timeout):
    """Waits until rank 0 is writing a periodic checkpoint (its .tmp file
    exists, made by this job); the step written, or None."""
    ckdir = os.path.join(job.run_dir, "checkpoints")
    x = (job.step // 100 + 1) * 100
    tmp = os.path.join(ckdir, ".ckpt-%08d.h5.tmp" % x)
    end = time.time() + timeout
    while time.time() < end and job.p.poll() is None:
        try:
            if os.stat(tmp).st_mtime >= seg_start:
                return x
        except FileNotFoundError:
            pass
        time.sleep(0.001)
    return None


def send(job, kind, rng):
    """Delivers the interruption; what was sent, to whom."""
    if kind in ("usr1", "usr1_ckpt"):
        job.p.send_signal(signal.SIGUSR1)
        return "SIGUSR1 to mpirun"
    if kind == "term":
        for pid in job.ranks.values():
            os.kill(pid, signal.SIGTERM)
        return "SIGTERM to ranks 0 and 1"
    if kind == "term1":
        os.kill(job.ranks[1], signal.SIGTERM)
        return "SIGTERM to rank 1"
    rank = 0 if kind == "kill_ckpt" else rng.randrange(2)
    os.kill(job.ranks[rank], signal.SIGKILL)
    return "SIGKILL to rank %d" % rank


def run_interrupted(cmd, env, run_dir, work, a, t0, failures):
    rng = random.Random(a.seed)
    kinds = []
    events = []
    samples = []
    seg = 0
    pending_kill = None  # (newest checkpoint, rows past it) after a SIGKILL
    start = time.time()
    while True:
        seg += 1
        if seg > 1000:
            die("the interrupted run did not finish in 1000 invocations")
        from_step = (ckpt_steps(run_dir) or [0])[-1]
        seg_start = time.time()
        job = Job(cmd + ["--set", "run.dir=" + run_dir], env, run_dir,
                  os.path.join(work, "interrupted-%03d.log" % seg), a.rss_every, t0)
        target = from_step + rng.randint(150, 450)
        if target > a.steps - 50:
            target = None  # too close to the end: this invocation finishes
        else:
            if not kinds:
                kinds = KINDS[:]
                rng.shuffle(kinds)
            kind = kinds.pop()
        ev = None
        while job.poll() is None:
            if target is not None and ev is None and job.step >= target and len(job.ranks) == 2:
                ev = {"invocation": seg, "kind": kind, "from_step": from_step, "target": target}
                if kind.endswith("_ckpt"):
                    ev["checkpoint_write"] = wait_for_ckpt_write(job, seg_start, 60)
                    if ev["checkpoint_write"] is None:
                        failures.append("invocation %d: saw no checkpoint being written" % seg)
                ev["signal_at_step"] = last_step(job.metrics)
                ev["sent"] = send(job, kind, rng)
            time.sleep(0.002 if ev is None and target is not None and job.step >= target - 5 else 0.02)
        rc = job.wait()
        samples.append({"invocation": seg, "samples": job.samples})
        log = job.text()
        if seg > 1:
            m = re.search(r"resuming from \S+ \(step (\d+)\)", log)
            if not m or int(m.group(1)) != from_step:
                failures.append("invocation %d: did not resume from step %d" % (seg, from_step))
        if pending_kill is not None:
            k, past = pending_kill
            m = re.search(r"metrics\.jsonl: dropped (\d+) rows? past step (\d+)", log)
            dropped = (int(m.group(1)), int(m.group(2))) if m else (0, k)
            events[-1]["dropped_rows"] = dropped[0]
            if dropped != (past, k):
                failures.append("invocation %d: after the SIGKILL expected %d rows past step %d dropped, "
                                "the log says %d past step %d" % (seg, past, k, dropped[0], dropped[1]))
            pending_kill = None
        elif re.search(r"metrics\.jsonl: dropped", log):
            failures.append("invocation %d: dropped metrics rows after a clean stop" % seg)
        if ev is None:
            if rc != 0:
                die("invocation %d exited with status %d without an interruption; see %s" %
                    (seg, rc, job.log_path))
            break
        ev["exit"] = rc
        ev["seconds"] = round(time.time() - seg_start, 1)
        events.append(ev)
        if kind.startswith("kill"):
            if rc in (0, EXIT_STOPPED):
                failures.append("invocation %d: SIGKILL, yet mpirun exited %d" % (seg, rc))
            ev["last_row"] = last_step(job.metrics)
            newest = (ckpt_steps(run_dir) or [0])[-1]
            pending_kill = (newest, rows_past(job.metrics, newest))
            ev["newest_checkpoint"] = newest
            say("invocation %d: %s at step %d (%s); newest checkpoint %d, %d rows past it" % (
                seg, ev["sent"], ev["signal_at_step"], kind, newest, pending_kill[1]))
        else:
            m = re.search(r"stopped by (SIG\w+) after step (\d+)", log)
            stopped = int(m.group(2)) if m else None
            ev["stopped_at"] = stopped
            if rc != EXIT_STOPPED or stopped is None:
                failures.append("invocation %d: %s gave exit %d, stopped at %s" % (seg, kind, rc, stopped))
                die("; ".join(failures) + "; see " + job.log_path)
            if stopped not in ckpt_steps(run_dir):
                failures.append("invocation %d: no checkpoint at the stopped step %d" % (seg, stopped))
            if last_step(job.metrics) != stopped:
                failures.append("invocation %d: metrics.jsonl ends at %d, stopped at %d" %
                                (seg, last_step(job.metrics), stopped))
            say("invocation %d: %s at step %d (%s) -> exit 75 at step %d" % (
                seg, ev["sent"], ev["signal_at_step"], kind, stopped))
    return events, samples, seg, time.time() - start


def median(xs):
    s = sorted(xs)
    return s[len(s) // 2] if s else None


def rss_summary(samples, steps, bound_mib):
    """Per rank: the medians after warm-up and at the end, their difference,
    the extremes after warm-up, and a least-squares slope."""
    out = {}
    for r in (0, 1):
        pts = [(step, rss[r] / 1024.0) for _, step, rss in samples if r in rss]
        base = [v for s, v in pts if steps * 0.1 <= s < steps * 0.2]
        end = [v for s, v in pts if s >= steps * 0.9]
        after = [(s, v) for s, v in pts if s >= steps * 0.1]
        if not base or not end:
            return None
        slope = 0.0
        if len(after) > 2:
            xs = np.array([s for s, _ in after], float)
            ys = np.array([v for _, v in after], float)
            slope = float(np.polyfit(xs, ys, 1)[0]) * 1000.0
        out["rank%d" % r] = {
            "samples": len(pts), "warmup_median_mib": median(base), "end_median_mib": median(end),
            "growth_mib": median(end) - median(base),
            "min_after_warmup_mib": min(v for _, v in after), "max_after_warmup_mib": max(v for _, v in after),
            "slope_mib_per_1000_steps": slope, "peak_mib": max(v for _, v in pts)}
    out["bound_mib"] = bound_mib
    out["pass"] = all(out["rank%d" % r]["growth_mib"] <= bound_mib for r in (0, 1))
    return out


def print_curve(samples, steps, rows_wanted=20):
    """The straight run's RSS, one row per 1/20 of the steps (median of the
    samples in it), with each rank's change from the first row past the
    warm-up and a bar for rank 0."""
    bins = {}
    for _, step, rss in samples:
        b = min(rows_wanted - 1, step * rows_wanted // max(1, steps))
        bins.setdefault(b, []).append(rss)
    ref = None
    lines = ["  steps        rank 0 MiB  (change)   rank 1 MiB  (change)   rank 0 change, 1 # = 0.25 MiB"]
    for b in sorted(bins):
        r0 = median([x[0] for x in bins[b]]) / 1024.0
        r1 = median([x[1] for x in bins[b]]) / 1024.0
        if ref is None and b * steps // rows_wanted >= steps // 10:
            ref = (r0, r1)
        d0 = r0 - ref[0] if ref else 0.0
        d1 = r1 - ref[1] if ref else 0.0
        bar = ("#" * min(60, int(round(abs(d0) / 0.25)))) if ref else "(warm-up)"
        lines.append("  %5d-%-5d  %10.2f  (%+6.2f)  %10.2f  (%+6.2f)   %s%s" % (
            b * steps // rows_wanted + 1, (b + 1) * steps // rows_wanted, r0, d0, r1, d1,
            "-" if ref and d0 < 0 and bar else "", bar))
    print("\n".join(lines))


def compare(a_dir, b_dir, steps, eval_every):
    """The interrupted run (b) against the straight one (a); a list of what
    differs and a description of what was compared."""
    bad = []
    ma, mb = rows(os.path.join(a_dir, "metrics.jsonl")), rows(os.path.join(b_dir, "metrics.jsonl"))
    sb = [r["step"] for r in mb]
    if sb != list(range(1, steps + 1)):
        dup = len(sb) - len(set(sb))
        bad.append("interrupted metrics.jsonl: %d rows, %d duplicate steps, not steps 1..%d in order" %
                   (len(sb), dup, steps))
    if [r["step"] for r in ma] != list(range(1, steps + 1)):
        bad.append("straight metrics.jsonl is not steps 1..%d" % steps)
    n_diff = sum(1 for x, y in zip(ma, mb) if any(x[k] != y[k] for k in METRIC_KEYS))
    if n_diff:
        first = next(x["step"] for x, y in zip(ma, mb) if any(x[k] != y[k] for k in METRIC_KEYS))
        bad.append("metrics rows differ at %d steps, first at step %d" % (n_diff, first))
    ea, eb = rows(os.path.join(a_dir, "eval.jsonl")), rows(os.path.join(b_dir, "eval.jsonl"))
    want = [s for s in range(eval_every, steps + 1, eval_every)]
    if want[-1:] != [steps]:
        want.append(steps)
    if [r["step"] for r in eb] != want or [r["step"] for r in ea] != want:
        bad.append("eval.jsonl steps: straight %s, interrupted %s, expected %s" %
                   ([r["step"] for r in ea], [r["step"] for r in eb], want))
    elif any(x[k] != y[k] for x, y in zip(ea, eb) for k in EVAL_KEYS):
        bad.append("eval.jsonl rows differ")
    common = sorted(set(ckpt_steps(a_dir)) & set(ckpt_steps(b_dir)))
    if steps not in common:
        bad.append("no final checkpoint (step %d) in both runs" % steps)
    n_tensors = n_values = 0
    for step in common:
        name = "checkpoints/ckpt-%08d.h5" % step
        with h5py.File(os.path.join(a_dir, name), "r") as f, h5py.File(os.path.join(b_dir, name), "r") as g:
            for k in ("step", "seed", "n_ranks", "format_version"):
                if f.attrs[k] != g.attrs[k]:
                    bad.append("%s: attribute %s %s != %s" % (name, k, f.attrs[k], g.attrs[k]))
            names_f, names_g = [], []
            f.visititems(lambda n, o: names_f.append(n) if isinstance(o, h5py.Dataset) else None)
            g.visititems(lambda n, o: names_g.append(n) if isinstance(o, h5py.Dataset) else None)
            if sorted(names_f) != sorted(names_g):
                bad.append("%s: datasets differ: %s" % (name, sorted(set(names_f) ^ set(names_g))))
                continue
            for n in names_f:
                x, y = f[n][()], g[n][()]
                if n == "config":
                    strip = lambda c: re.sub(r"(?m)^  dir: .*$", "", c.decode() if isinstance(c, bytes) else c)
                    if strip(x) != strip(y):
                        bad.append("%s: config differs beyond run.dir" % name)
                    continue
                if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
                    bad.append("%s: %s differs" % (name, n))
                n_tensors += 1
                n_values += x.size
    what = ("metrics rows 1..%d (%s), eval rows at %s, checkpoints at steps %s: %d datasets "
            "(%d values: param/*, optim/m/*, optim/v/*, importance, data_cursors) byte for byte, "
            "attributes step/seed/n_ranks/format_version, config but for run.dir" % (
                steps, ", ".join(METRIC_KEYS), want, common, n_tensors, n_values))
    return bad, what


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build")
    ap.add_argument("--steps", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1, help="draws the interruptions")
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--rss-every", type=float, default=2.0, help="seconds between RSS samples")
    ap.add_argument("--rss-bound-mib", type=float, default=4.0)
    ap.add_argument("--work", help="run directories and logs (default BUILD/soak; removed first)")
    ap.add_argument("--out", help="the JSON summary (default bench/results/soak-<UTC stamp>.json)")
    a = ap.parse_args()
    if a.steps < 1000:
        die("--steps must be at least 1000 (interruptions come every 150-450 steps)")
    build = os.path.abspath(a.build)
    work = os.path.abspath(a.work or os.path.join(build, "soak"))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = a.out or os.path.join(ROOT, "bench", "results", "soak-%s.json" % stamp)
    tokdrop = os.path.join(build, "tokdrop")
    if not os.access(tokdrop, os.X_OK):
        die("%s not found; run 'make' first" % tokdrop)
    if subprocess.run(["sh", "-c", "command -v mpirun"], capture_output=True).returncode != 0:
        die("mpirun not found ('make deps' installs it)")
    vocab = subprocess.run([os.path.join(ROOT, "cluster", "demo-data.sh"), build], cwd=ROOT,
                           capture_output=True, text=True)
    if vocab.returncode != 0:
        die("cluster/demo-data.sh failed:\n" + vocab.stderr)
    vocab_size = int(vocab.stdout.split()[-1])

    subprocess.run(["rm", "-rf", work], check=True)
    os.makedirs(work)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    if os.getuid() == 0:
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    sets = settings(a, vocab_size)
    cmd = ["mpirun", "-n", "2", tokdrop, "train", "configs/bert-tiny-drop.yaml"]
    for s in sets:
        cmd += ["--set", s]
    shm_before = sorted(os.listdir("/dev/shm"))
    say("%d steps twice (straight, then interrupted every 150-450 steps, seed %d); work in %s" % (
        a.steps, a.seed, work))
    say("command: " + " ".join(cmd) + " --set run.dir=...")
    t0 = time.time()
    failures = []

    straight_dir, inter_dir = os.path.join(work, "straight"), os.path.join(work, "interrupted")
    straight_samples, straight_s = run_straight(cmd, env, straight_dir, work, a, t0)
    say("straight run: %d steps in %.0f s" % (a.steps, straight_s))
    events, seg_samples, invocations, inter_s = run_interrupted(cmd, env, inter_dir, work, a, t0, failures)
    say("interrupted run: %d steps in %.0f s, %d invocations" % (a.steps, inter_s, invocations))

    bad, compared = compare(straight_dir, inter_dir, a.steps, eval_every(a.steps))
    failures += bad
    rss = rss_summary(straight_samples, a.steps, a.rss_bound_mib)
    if rss is None:
        failures.append("too few RSS samples in the straight run")
    elif not rss["pass"]:
        failures.append("RSS grew by %.2f / %.2f MiB (ranks 0 / 1) after the warm-up, bound %.1f MiB" % (
            rss["rank0"]["growth_mib"], rss["rank1"]["growth_mib"], a.rss_bound_mib))
    seg_peaks = [{"invocation": s["invocation"],
                  "peak_mib": [max((x[2].get(r, 0) for x in s["samples"]), default=0) / 1024.0 for r in (0, 1)]}
                 for s in seg_samples]
    tmp_left = [n for n in os.listdir(os.path.join(inter_dir, "checkpoints")) if n.endswith(".tmp")]
    shm_new = sorted(set(os.listdir("/dev/shm")) - set(shm_before))
    shm_left = [n for n in shm_new if ours(n)]
    if shm_left:
        failures.append("left in /dev/shm by our processes: %s" % shm_left)
    count = {k: sum(1 for e in events if e["kind"] == k) for k in sorted(set(KINDS))}
    n_term = sum(count[k] for k in ("usr1", "usr1_ckpt", "term", "term1"))
    n_kill = count["kill"] + count["kill_ckpt"]
    if n_kill < 1:
        failures.append("no SIGKILL in the run (too few steps for the cycle of interruptions)")
    n_rows = len(rows(os.path.join(inter_dir, "metrics.jsonl")))

    print("RSS of the straight run (VmRSS, median per 1/20 of the steps; %d samples every %.0f s):" % (
        len(straight_samples), a.rss_every))
    print_curve(straight_samples, a.steps)
    print("soak: %d steps of bert-tiny-drop (fp32, micro-batch %d, 2 ranks x 1 thread, seq_len 128)" % (
        a.steps, a.micro_batch))
    print("soak: wall time %.1f min (straight %.1f, interrupted %.1f)" % (
        (time.time() - t0) / 60, straight_s / 60, inter_s / 60))
    print("soak: %d interruptions over %d invocations: %d stops with exit 75 (%s), %d SIGKILL (%s)" % (
        len(events), invocations, n_term,
        ", ".join("%s %d" % (k, count[k]) for k in ("usr1", "term", "term1", "usr1_ckpt")), n_kill,
        ", ".join("%s %d" % (k, count[k]) for k in ("kill", "kill_ckpt"))))
    if rss:
        for r in (0, 1):
            x = rss["rank%d" % r]
            print("soak: RSS rank %d: %.2f MiB after warm-up -> %.2f MiB at the end (%+.2f MiB, bound %.1f); "
                  "range after warm-up %.2f-%.2f MiB, slope %+.3f MiB/1000 steps" % (
                      r, x["warmup_median_mib"], x["end_median_mib"], x["growth_mib"], a.rss_bound_mib,
                      x["min_after_warmup_mib"], x["max_after_warmup_mib"], x["slope_mib_per_1000_steps"]))
    peaks = [[p["peak_mib"][r] for p in seg_peaks if p["peak_mib"][r]] for r in (0, 1)]
    if all(peaks):
        print("soak: RSS peaks of the interrupted run's invocations: %.1f-%.1f MiB (rank 0), "
              "%.1f-%.1f MiB (rank 1)" % (min(peaks[0]), max(peaks[0]), min(peaks[1]), max(peaks[1])))
    print("soak: metrics.jsonl of the interrupted run: %d rows%s" % (
        n_rows, ", steps 1..%d once each" % a.steps if not any("metrics.jsonl" in b for b in bad) else ""))
    print("soak: compared %s: %s" % (compared, "identical" if not bad else "DIFFERENT"))
    print("soak: left behind: %d checkpoint .tmp file(s) %s; in /dev/shm %d entries of ours %s "
          "(%d new ones of other processes)" % (len(tmp_left), tmp_left, len(shm_left), shm_left,
                                                len(shm_new) - len(shm_left)))

    result = {"tokdrop": subprocess.run([tokdrop, "--version"], capture_output=True, text=True).stdout.strip(),
              "steps": a.steps, "seed": a.seed, "settings": sets + ["2 ranks x 1 thread (mpirun -n 2)"],
              "wall_s": time.time() - t0, "straight_s": straight_s, "interrupted_s": inter_s,
              "invocations": invocations, "interruptions": events, "counts": count,
              "rss": rss, "rss_samples_straight": [(round(t, 1), s, r[0], r[1]) for t, s, r in straight_samples],
              "rss_samples_columns": ["seconds", "step", "rank0_kib", "rank1_kib"],
              "interrupted_peaks": seg_peaks, "compared": compared, "metrics_rows": n_rows,
              "tmp_left": tmp_left, "shm_left": shm_left,
              "shm_new_others": sorted(set(shm_new) - set(shm_left)), "failures": failures,
              "verdict": "PASS" if not failures else "FAIL"}
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    print("soak: summary, RSS samples and interruptions in %s" % out)
    if failures:
        for x in failures:
            print("soak: FAIL: " + x)
        print("soak: FAIL")
        sys.exit(1)
    print("soak: PASS")


if __name__ == "__main__":
    main()
