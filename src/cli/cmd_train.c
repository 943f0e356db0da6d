/* `tokdrop train CONFIG.yaml [--set k=v ...] [--dump FILE]`. */
#define _GNU_SOURCE /* sched_getaffinity */
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_args.h"
#include "base/fs.h"
#include "tokdrop/nn/blas.h"
#include "tokdrop/train/config.h"
#include "tokdrop/train/dist.h"
#include "tokdrop/train/log.h"
#include "tokdrop/train/train.h"

#ifndef TD_DEFAULT_THREADS
#define TD_DEFAULT_THREADS 0
#endif

/* What this invocation created in the run directory (directories of
 * run.dir it had to make, files that did not exist), in creation order:
 * a run that fails before its first step removes exactly these, never
 * anything that was there before. */
#define TD_MAX_CREATED 64
typedef struct {
    char *paths[TD_MAX_CREATED];
    int n;
} created_paths;

static void created_add(created_paths *c, const char *path)
{
    if (c->n < TD_MAX_CREATED) c->paths[c->n++] = strdup(path);
}

/* Newest first, so files go before their directories. remove() leaves a
 * directory that holds anything else. */
static void created_remove(created_paths *c)
{
    for (int i = c->n - 1; i >= 0; i--)
        if (c->paths[i]) remove(c->paths[i]);
}

static void created_free(created_paths *c)
{
    for (int i = 0; i < c->n; i++) free(c->paths[i]);
    c->n = 0;
}

static void on_made_dir(void *ctx, const char *dir)
{
    created_add(ctx, dir);
}

/* Rank 0, once set-up and resume succeeded: run.dir with the resolved
 * config.yaml, and metrics.jsonl / eval.jsonl opened for appending after
 * dropping the rows past from_step (a resumed run computes them again). */
static td_status open_run_dir(const td_config *cfg, const td_dist *dist, int64_t from_step, td_jsonl *metrics,
                              td_jsonl *evals, created_paths *created, td_error *err)
{
    td_status st = td_fs_mkdir_p(cfg->run.dir, on_made_dir, created, err);
    if (st != TD_OK) {
        char why[TD_ERROR_MSG_LEN];
        snprintf(why, sizeof(why), "%s", err->msg);
        return td_error_set(err, st, "run.dir: %s", why);
    }
    char path[TD_PATH_LEN + 32];
    st = td_fs_join(path, sizeof(path), cfg->run.dir, "config.yaml", err);
    if (st != TD_OK) return st;
    if (access(path, F_OK) != 0) created_add(created, path);
    char *yaml = td_config_to_yaml(cfg);
    st = td_fs_write_text(path, yaml, err);
    free(yaml);
    const char *names[2] = {"metrics.jsonl", "eval.jsonl"};
    td_jsonl *files[2] = {metrics, evals};
    for (int i = 0; i < 2 && st == TD_OK; i++) {
        if (i == 1 && !cfg->data.eval[0]) break;
        int64_t dropped = 0;
        st = td_fs_join(path, sizeof(path), cfg->run.dir, names[i], err);
        if (st == TD_OK) st = td_jsonl_keep_steps(path, from_step, &dropped, err);
        if (st == TD_OK && dropped > 0)
            td_log(dist, "%s: dropped %lld row%s past step %lld (computed again)", path, (long long)dropped,
                   dropped > 1 ? "s" : "", (long long)from_step);
        if (st == TD_OK && access(path, F_OK) != 0) created_add(created, path);
        if (st == TD_OK) st = td_jsonl_open(files[i], dist, path, err);
    }
    return st;
}

/* Threads per rank: the config's, else the cores this rank may use. When a
 * launcher bound the rank to a subset of cores, that subset is its share;
 * otherwise the node's cores are split among the ranks on the node. */
static int threads_per_rank(const td_config *cfg, const td_dist *dist)
{
    if (cfg->train.threads > 0) return (int)cfg->train.threads;
    if (TD_DEFAULT_THREADS > 0) return TD_DEFAULT_THREADS;
    cpu_set_t set;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int allowed = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : (int)online;
    if (allowed < online) return allowed > 0 ? allowed : 1;
    int n = (int)(online / td_dist_ranks_on_node(dist));
    return n > 0 ? n : 1;
}

/* "off", or what the schedule does, for the first log line. */
static void describe_dropping(char *out, size_t size, const td_config *cfg)
{
    const td_drop_config *d = &cfg->token_drop;
    if (!d->enabled) {
        snprintf(out, size, "off");
        return;
    }
    int n = snprintf(out, size, "on (keep %lld of %lld from layer %lld", (long long)d->keep,
                     (long long)cfg->data.seq_len, (long long)d->first_layer);
    if (n >= 0 && (size_t)n < size && d->schedule == TD_SCHEDULE_RAMP)
        n += snprintf(out + n, size - (size_t)n, ", growing to %lld by step %lld", (long long)cfg->data.seq_len,
                      (long long)d->ramp_steps + 1);
    if (n >= 0 && (size_t)n < size && d->schedule == TD_SCHEDULE_INTERLEAVE)
        n += snprintf(out + n, size - (size_t)n, ", one step in %lld full", (long long)d->full_every);
    if (n >= 0 && (size_t)n < size && d->full_last_steps > 0)
        n += snprintf(out + n, size - (size_t)n, ", the last %lld steps full", (long long)d->full_last_steps);
    if (n >= 0 && (size_t)n < size) snprintf(out + n, size - (size_t)n, ")");
}

static td_status write_metrics(td_jsonl *j, const td_step_stats *s, td_error *err)
{
    td_jsonl_begin(j);
    td_jsonl_int(j, "step", s->step);
    td_jsonl_num(j, "loss", s->loss);
    td_jsonl_num(j, "mlm_loss", s->mlm_loss);
    td_jsonl_num(j, "nsp_loss", s->nsp_loss);
    td_jsonl_num(j, "mlm_acc", s->mlm_acc);
    td_jsonl_num(j, "lr", s->lr);
    td_jsonl_num(j, "grad_norm", s->grad_norm);
    td_jsonl_num(j, "seq_per_s", (double)s->sequences / s->t_total);
    td_jsonl_num(j, "tokens_per_s", (double)s->tokens / s->t_total);
    td_jsonl_str(j, "mode", s->keep > 0 ? "drop" : "full");
    td_jsonl_bool(j, "skipped", s->skipped);
    td_jsonl_num(j, "kept_fraction", s->kept_fraction);
    td_jsonl_num(j, "time_forward", s->t_forward);
    td_jsonl_num(j, "time_backward", s->t_backward);
    td_jsonl_num(j, "time_allreduce", s->t_allreduce);
    td_jsonl_num(j, "time_optimizer", s->t_optimizer);
    td_jsonl_num(j, "time_data", s->t_data);
    td_jsonl_num(j, "time_step", s->t_total);
    return td_jsonl_end(j, err);
}

/* train.max_bad_steps non-finite steps in a row: the checkpoint written
 * just before them led straight to them, so it is set aside; the error
 * says so and names what a rerun resumes from. */
static td_status stop_diverged(td_trainer *tr, int64_t bad_steps, td_error *err)
{
    char aside[TD_PATH_LEN + 80];
    td_status st = td_trainer_set_aside_checkpoint(tr, aside, sizeof(aside), err);
    if (st != TD_OK) return st;
    return td_error_set(err, TD_ERR_ARG,
                        "stopping after step %lld: %lld steps in a row had a loss or gradient norm that is "
                        "not finite (train.max_bad_steps); %s%s%slower optimizer.lr or check the data",
                        (long long)tr->step, (long long)bad_steps, aside[0] ? "the checkpoint before them "
                        "was set aside as " : "", aside, aside[0] ? " (a rerun resumes from the one before); " : "");
}

/* Set by SIGTERM/SIGUSR1 (Slurm --signal, scancel --signal, mpirun's
 * forwarding of SIGUSR1): the run finishes its step, checkpoints and exits
 * with TD_EXIT_STOPPED. Holds the signal's number. */
static volatile sig_atomic_t stop_signal = 0;

/* Open MPI's mpirun cannot forward SIGTERM: on SIGTERM it ends the job
 * itself (exit status 1; its ranks get SIGCONT, SIGTERM a second later and
 * SIGKILL a second after that), whatever the ranks do. Rank 0 says so when
 * SIGTERM reaches it under mpirun, since the job's exit status will not. */
static char mpirun_sigterm_note[512];
static size_t mpirun_sigterm_note_len = 0;

static void on_stop_signal(int sig)
{
    if (sig == SIGTERM && mpirun_sigterm_note_len > 0 && stop_signal == 0)
        (void)!write(STDERR_FILENO, mpirun_sigterm_note, mpirun_sigterm_note_len);
    stop_signal = sig;
}

/* Installed before set-up: a signal that arrives while the data loads
 * stops the run after its first step rather than killing it. */
static void install_stop_handlers(const td_dist *dist)
{
    /* an mpirun (ORTE) launch is the one that sets the HNP's address */
    if (dist->rank == 0 && getenv("OMPI_MCA_orte_hnp_uri")) {
        snprintf(mpirun_sigterm_note, sizeof(mpirun_sigterm_note),
                 "tokdrop: rank 0: SIGTERM under Open MPI's mpirun: if mpirun got it too, it ends "
                 "the job with status 1 and kills the ranks, checkpoint or not; send SIGUSR1 to "
                 "mpirun to stop at a checkpoint with status 75 (README, \"Stop signals and "
                 "launchers\")\n");
        mpirun_sigterm_note_len = strlen(mpirun_sigterm_note);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

static td_status write_eval(td_jsonl *j, int64_t step, double elapsed, const td_eval_result *r,
                            td_error *err)
{
    td_jsonl_begin(j);
    td_jsonl_int(j, "step", step);
    td_jsonl_num(j, "elapsed_s", elapsed);
    td_jsonl_int(j, "sequences", r->sequences);
    td_jsonl_num(j, "mlm_loss", r->mlm_loss);
    td_jsonl_num(j, "mlm_acc", r->mlm_acc);
    td_jsonl_num(j, "nsp_loss", r->nsp_loss);
    td_jsonl_num(j, "nsp_acc", r->nsp_acc);
    return td_jsonl_end(j, err);
}

/* Collective, after rank 0 wrote to the run directory (st: its status
 * there; TD_OK on the other ranks): rank 0's status on every rank, so that
 * all stop together and with the same exit status. */
static td_status rank0_wrote(const td_dist *dist, td_status st, const char *what, td_error *err)
{
    td_status code = (td_status)td_dist_bcast_int(dist, (int)st);
    if (code != TD_OK && dist->rank != 0) td_error_set(err, code, "rank 0 could not write %s", what);
    return code;
}

/* The watchdog's limit: TOKDROP_TIMEOUT seconds (0 disables), else the
 * default. */
static double watchdog_timeout(void)
{
    const char *s = getenv("TOKDROP_TIMEOUT");
    if (!s || !*s) return TD_WATCHDOG_DEFAULT_S;
    char *end;
    double v = strtod(s, &end);
    return (*end == '\0' && v >= 0) ? v : TD_WATCHDOG_DEFAULT_S;
}

/* Fault injection for the tests, not for production use:
 * TOKDROP_FAULT=stall:R:S makes rank R stop responding after step S (it
 * sleeps; the watchdogs of the other ranks must end the job);
 * TOKDROP_FAULT=nan:R:S:N makes rank R's loss NaN on N steps from step S
 * (every rank must skip them alike). */
static void arm_nan_fault(td_trainer *tr)
{
    const char *f = getenv("TOKDROP_FAULT");
    int rank = -1;
    long long from = 0, n = 0;
    if (!f || sscanf(f, "nan:%d:%lld:%lld", &rank, &from, &n) != 3 || rank != tr->dist->rank) return;
    tr->fault_nan_from = from;
    tr->fault_nan_steps = n;
}

static void maybe_inject_fault(const td_dist *dist, int64_t step)
{
    const char *f = getenv("TOKDROP_FAULT");
    int rank = -1;
    long long at = -1;
    if (!f || sscanf(f, "stall:%d:%lld", &rank, &at) != 2) return;
    if (rank != dist->rank || step != at) return;
    fprintf(stderr, "tokdrop: rank %d: TOKDROP_FAULT: stalling after step %lld\n", rank, at);
    for (;;) {
        struct timespec t = {3600, 0};
        nanosleep(&t, NULL);
    }
}

/* Parameters are compared across ranks this often (and at the end). */
#define TD_REPLICA_CHECK_EVERY 100

static const char TRAIN_HELP[] =
    "usage: tokdrop train CONFIG.yaml [--set key.path=value ...] [--dump FILE]\n"
    "\n"
    "Trains BERT as CONFIG.yaml says, into its run.dir; resumes by itself from the\n"
    "newest checkpoint there. SIGUSR1 (also through mpirun and srun) or SIGTERM (no\n"
    "launcher) writes a checkpoint and exits with status 75; run again to continue.\n"
    "Run under mpirun or srun for several ranks.\n"
    "\n"
    "  CONFIG.yaml           the experiment (configs/ holds examples)\n"
    "  --set key.path=value  override a config key, e.g. --set train.micro_batch=16;\n"
    "                        may be given several times\n"
    "  --dump FILE           run one step and write loss, gradients and updated\n"
    "                        parameters to FILE (HDF5), for comparisons\n"
    "  -h, --help            this help\n"
    "\n"
    "Exit status: 0 done, 1 the run failed, 2 bad command line or config,\n"
    "74 could not write to run.dir (a checkpoint, metrics.jsonl, eval.jsonl or\n"
    "config.yaml: disk full, quota or I/O error; the checkpoints written before are\n"
    "intact: free space and run again to resume), 75 stopped by a signal at a\n"
    "checkpoint.\n";

int td_cmd_train(int argc, char **argv)
{
    td_cli_opt opts[] = {TD_CLI_LIST("set"), TD_CLI_VALUE("dump")};
    static const char *const positional[] = {"a config file", NULL};
    td_cli_cmd cmd = {.prog = "tokdrop train", .help = TRAIN_HELP, .opts = opts,
                      .n_opts = TD_CLI_N_OPTS(opts), .positional = positional};
    td_cli_result parsed = td_cli_parse(&cmd, argc, argv);
    if (parsed != TD_CLI_OK) return td_cli_exit_status(parsed);
    int rc = TD_EXIT_OK;
    const char *config_path = cmd.pos[0], *dump_path = opts[1].value;
    td_dist dist;
    static td_config cfg;
    if (rc == TD_EXIT_OK)
        rc = td_cli_start(&dist, &cfg, config_path, opts[0].values, opts[0].n_values, &argc, &argv);
    td_cli_free(&cmd);
    if (rc != TD_EXIT_OK) return rc;
    td_error err = {0};
    td_status st = TD_OK;

    int threads = threads_per_rank(&cfg, &dist);
    td_blas_set_threads(threads);
    td_cli_log_placement(&dist, threads);
    td_cli_log_precision(&dist, &cfg, threads);
    if (!dump_path) install_stop_handlers(&dist);

    /* everything that can fail on a bad path or file comes before run.dir
     * is touched, so such a run leaves nothing behind */
    td_trainer tr;
    st = td_trainer_init(&tr, &cfg, &dist, &err);
    if (st != TD_OK) fprintf(stderr, "tokdrop: rank %d: %s\n", dist.rank, err.msg);
    if (td_dist_any_failed(&dist, st != TD_OK)) {
        if (st == TD_OK) td_trainer_free(&tr);
        td_dist_finalize(&dist);
        return TD_EXIT_FAILURE;
    }
    char dropping[160];
    describe_dropping(dropping, sizeof(dropping), &cfg);
    td_log(&dist, "model: %lld parameters, %lld layers, hidden %lld; token dropping %s; "
           "activations %.1f MiB (%.2f MiB per sequence)",
           (long long)tr.model.n_params, (long long)cfg.model.layers, (long long)cfg.model.hidden,
           dropping, (double)tr.model.acts_bytes / (1 << 20),
           (double)tr.model.acts_bytes / (1 << 20) / (double)cfg.train.micro_batch);

    int exit_code = TD_EXIT_OK;
    if (dump_path) {
        tr.grads_before_clip = td_xmalloc((size_t)tr.model.n_params * sizeof(float));
        td_step_stats s;
        st = td_trainer_step(&tr, &s, &err);
        if (st == TD_OK && s.skipped)
            st = td_error_set(&err, TD_ERR_ARG, "step 1: loss %g, gradient norm %g: not finite", s.loss,
                              s.grad_norm);
        if (st == TD_OK) st = td_trainer_write_dump(&tr, &s, dump_path, &err);
        if (st != TD_OK) {
            fprintf(stderr, "tokdrop: rank %d: %s\n", dist.rank, err.msg);
            exit_code = TD_EXIT_FAILURE;
        } else {
            td_log(&dist, "step 1 loss %.6f (mlm %.6f, nsp %.6f) dumped to %s", s.loss, s.mlm_loss,
                   s.nsp_loss, dump_path);
        }
        td_trainer_free(&tr);
        td_dist_finalize(&dist);
        return exit_code;
    }

    int64_t from_step = 0;
    char ckpt_path[TD_PATH_LEN + 64];
    st = td_trainer_resume(&tr, &from_step, ckpt_path, sizeof(ckpt_path), &err);
    if (st == TD_OK && ckpt_path[0] && from_step >= cfg.train.steps) {
        /* a requeued or repeated job of a run that is done: nothing to
         * train, and metrics.jsonl stays as it is */
        td_log(&dist, "the run in %s is finished: step %lld%s of train.steps %lld, checkpoint %s; "
               "nothing to train", cfg.run.dir, (long long)from_step,
               from_step > cfg.train.steps ? " (past the end)" : "", (long long)cfg.train.steps, ckpt_path);
        td_trainer_free(&tr);
        td_dist_finalize(&dist);
        return TD_EXIT_OK;
    }
    if (st == TD_OK && ckpt_path[0] && dist.rank == 0) {
        char where[TD_PATH_LEN + 128];
        td_data_describe_position(tr.data, where, sizeof(where));
        td_log(&dist, "resuming from %s (step %lld); rank 0 data at %s", ckpt_path, (long long)from_step, where);
    }

    td_jsonl metrics = {0}, evals = {0};
    created_paths created = {0};
    bool write_failed = false; /* to run.dir: TD_EXIT_IOERR */
    td_status dir_st = TD_OK;
    if (st == TD_OK && dist.rank == 0)
        st = dir_st = open_run_dir(&cfg, &dist, from_step, &metrics, &evals, &created, &err);
    if ((dir_st = rank0_wrote(&dist, dir_st, "to the run directory", &err)) != TD_OK) {
        st = dir_st;
        write_failed = dir_st == TD_ERR_IO;
    }

    tr.watchdog = td_watchdog_start(&dist, watchdog_timeout());
    arm_nan_fault(&tr);
    double elapsed = 0;     /* seconds of training and evaluation since the start or resume */
    int64_t steps_done = 0; /* by this invocation */
    int64_t bad_steps = 0;  /* consecutive skipped (non-finite) steps */
    int64_t updates = 0;    /* steps of this invocation that were not skipped */
    while (st == TD_OK && tr.step < cfg.train.steps) {
        td_step_stats s;
        st = td_trainer_step(&tr, &s, &err);
        if (st != TD_OK) break;
        steps_done++;
        elapsed += s.t_total;
        maybe_inject_fault(&dist, s.step);
        bool last = s.step == cfg.train.steps;
        /* a non-finite step was skipped; train.max_bad_steps in a row end
         * the run (below, once its rows are written), with the newest
         * checkpoint being the last good one */
        bad_steps = s.skipped ? bad_steps + 1 : 0;
        updates += !s.skipped;
        if (!s.skipped && (st = td_trainer_confirm_checkpoint(&tr, &err)) != TD_OK) break;
        /* the same on every rank; every skipped step has its row */
        bool logged = s.skipped || s.step % cfg.run.log_every == 0 || last;
        td_status log_st = TD_OK; /* rank 0's rows */
        if (logged) log_st = write_metrics(&metrics, &s, &err);
        if (s.skipped) {
            td_log(&dist, "step %lld: loss %g, gradient norm %g: not finite, update skipped (%lld of at most "
                   "%lld in a row)", (long long)s.step, s.loss, s.grad_norm, (long long)bad_steps,
                   (long long)cfg.train.max_bad_steps);
        } else if (logged) {
            /* the time per step of this invocation: a resumed run's earlier
             * steps took time in another job */
            double eta = elapsed / (double)steps_done * (double)(cfg.train.steps - s.step);
            td_log(&dist, "step %lld/%lld loss %.4f (mlm %.4f acc %.3f, nsp %.4f) lr %.3g |g| %.3g %.1f seq/s eta %.0fs",
                   (long long)s.step, (long long)cfg.train.steps, s.loss, s.mlm_loss, s.mlm_acc,
                   s.nsp_loss, s.lr, s.grad_norm, (double)s.sequences / s.t_total, eta);
        }
        if ((s.step % TD_REPLICA_CHECK_EVERY == 0 || last) &&
            (st = td_trainer_check_replicas(&tr, &err)) != TD_OK)
            break;
        bool eval_due = cfg.run.eval_every > 0 && s.step % cfg.run.eval_every == 0;
        if (tr.eval_data && (eval_due || last)) {
            double t0 = MPI_Wtime();
            td_eval_result r;
            if ((st = td_trainer_eval(&tr, &r, &err)) != TD_OK) break;
            elapsed += MPI_Wtime() - t0;
            if (log_st == TD_OK) log_st = write_eval(&evals, s.step, elapsed, &r, &err);
            logged = true;
            td_log(&dist, "eval at step %lld: mlm loss %.4f acc %.4f, nsp loss %.4f acc %.4f (%lld sequences)",
                   (long long)s.step, r.mlm_loss, r.mlm_acc, r.nsp_loss, r.nsp_acc,
                   (long long)r.sequences);
        }
        if (logged && (st = rank0_wrote(&dist, log_st, "metrics.jsonl or eval.jsonl", &err)) != TD_OK) {
            write_failed = st == TD_ERR_IO;
            break;
        }
        if (bad_steps >= cfg.train.max_bad_steps) {
            st = stop_diverged(&tr, bad_steps, &err);
            break;
        }
        /* every rank learns of a signal to any rank at the same step, and
         * which one: Slurm signals the tasks one by one, so some ranks may
         * not have received it yet; a signal during the last step changes
         * nothing: the run is done */
        td_watchdog_beat(tr.watchdog, "agreeing with the other ranks on stop signals");
        int sig = td_dist_max_int(&dist, stop_signal);
        bool stopped = sig != 0 && !last;
        bool ckpt_due = cfg.run.checkpoint_every > 0 && s.step % cfg.run.checkpoint_every == 0;
        if ((ckpt_due || last || stopped) && bad_steps > 0) {
            /* the parameters are those of before the bad steps, but whether
             * they lead anywhere is not known yet */
            td_log(&dist, "no checkpoint at step %lld: the last %lld step%s not finite", (long long)s.step,
                   (long long)bad_steps, bad_steps > 1 ? "s were" : " was");
        } else if (ckpt_due || last || stopped) {
            if ((st = td_trainer_save(&tr, &err)) != TD_OK) {
                write_failed = st == TD_ERR_IO;
                break;
            }
            td_log(&dist, "checkpoint at step %lld", (long long)s.step);
            /* nothing follows the last step to vouch for it */
            if (last && (st = td_trainer_confirm_checkpoint(&tr, &err)) != TD_OK) break;
        }
        if (last && bad_steps > 0) {
            st = td_error_set(&err, TD_ERR_ARG, "the run ended on %lld step%s whose loss was not finite; no final "
                              "checkpoint was written", (long long)bad_steps, bad_steps > 1 ? "s" : "");
            break;
        }
        if (stopped) {
            td_log(&dist, "stopped by %s after step %lld; run again to continue",
                   sig == SIGTERM ? "SIGTERM" : sig == SIGUSR1 ? "SIGUSR1" : "a signal",
                   (long long)s.step);
            exit_code = TD_EXIT_STOPPED;
            break;
        }
    }
    td_watchdog_stop(tr.watchdog);
    tr.watchdog = NULL;
    if (st != TD_OK) {
        fprintf(stderr, "tokdrop: rank %d: %s\n", dist.rank, err.msg);
        exit_code = write_failed ? TD_EXIT_IOERR : TD_EXIT_FAILURE;
        if (write_failed && dist.rank == 0)
            fprintf(stderr, "tokdrop: could not write to the run directory %s: free space there (or mend the "
                    "I/O error) and run the same command again; it resumes from the newest checkpoint "
                    "(exit status %d)\n", cfg.run.dir, TD_EXIT_IOERR);
    }
    td_jsonl_close(&metrics);
    td_jsonl_close(&evals);
    /* failed before it updated anything: leave no half-made run directory */
    if (exit_code != TD_EXIT_OK && updates == 0) created_remove(&created);
    created_free(&created);
    td_trainer_free(&tr);
    td_dist_finalize(&dist);
    return exit_code;
}
