/* `tokdrop train CONFIG.yaml [--set k=v ...] [--dump FILE]`. */
#define _GNU_SOURCE /* sched_getaffinity */
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "tokdrop/blas.h"
#include "tokdrop/config.h"
#include "tokdrop/dist.h"
#include "tokdrop/log.h"
#include "tokdrop/train.h"

#ifndef TD_DEFAULT_THREADS
#define TD_DEFAULT_THREADS 0
#endif

/* mkdir -p */
static td_status make_dirs(const char *path, td_error *err)
{
    char buf[TD_PATH_LEN];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return td_error_set(err, TD_ERR_IO, "cannot create directory %s: %s", buf, strerror(errno));
            *p = c;
            if (c == '\0') break;
        }
    }
    return TD_OK;
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
    MPI_Comm node;
    int on_node = 1;
    MPI_Comm_split_type(dist->comm, MPI_COMM_TYPE_SHARED, dist->rank, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &on_node);
    MPI_Comm_free(&node);
    int n = (int)(online / on_node);
    return n > 0 ? n : 1;
}

static void write_metrics(td_jsonl *j, const td_step_stats *s)
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
    td_jsonl_num(j, "kept_fraction", s->kept_fraction);
    td_jsonl_num(j, "time_forward", s->t_forward);
    td_jsonl_num(j, "time_backward", s->t_backward);
    td_jsonl_num(j, "time_allreduce", s->t_allreduce);
    td_jsonl_num(j, "time_optimizer", s->t_optimizer);
    td_jsonl_num(j, "time_data", s->t_data);
    td_jsonl_end(j);
}

/* Set by SIGTERM/SIGUSR1 (Slurm preemption, scancel, --signal): the run
 * finishes its step, checkpoints and exits with TD_EXIT_STOPPED. */
static volatile sig_atomic_t stop_requested = 0;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void install_stop_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

static void write_eval(td_jsonl *j, int64_t step, double elapsed, const td_eval_result *r)
{
    td_jsonl_begin(j);
    td_jsonl_int(j, "step", step);
    td_jsonl_num(j, "elapsed_s", elapsed);
    td_jsonl_int(j, "sequences", r->sequences);
    td_jsonl_num(j, "mlm_loss", r->mlm_loss);
    td_jsonl_num(j, "mlm_acc", r->mlm_acc);
    td_jsonl_num(j, "nsp_loss", r->nsp_loss);
    td_jsonl_num(j, "nsp_acc", r->nsp_acc);
    td_jsonl_end(j);
}

/* Fault injection for the tests of hang protection: TOKDROP_FAULT=stall:R:S
 * makes rank R stop responding after step S (it sleeps; the watchdogs of
 * the other ranks must end the job). Not for production use. */
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

static int usage_error(const char *msg)
{
    fprintf(stderr, "tokdrop train: %s\nusage: tokdrop train CONFIG.yaml [--set key.path=value ...] [--dump FILE]\n", msg);
    return TD_EXIT_USAGE;
}

int td_cmd_train(int argc, char **argv)
{
    const char *config_path = NULL, *dump_path = NULL;
    const char **sets = calloc((size_t)argc, sizeof(char *));
    int n_sets = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--set") == 0 && i + 1 < argc) sets[n_sets++] = argv[++i];
        else if (strncmp(argv[i], "--set=", 6) == 0) sets[n_sets++] = argv[i] + 6;
        else if (strcmp(argv[i], "--dump") == 0 && i + 1 < argc) dump_path = argv[++i];
        else if (argv[i][0] == '-') {
            free(sets);
            char msg[256];
            snprintf(msg, sizeof(msg), "unknown or incomplete option '%s'", argv[i]);
            return usage_error(msg);
        } else if (!config_path) config_path = argv[i];
        else {
            free(sets);
            return usage_error("more than one config file given");
        }
    }
    if (!config_path) {
        free(sets);
        return usage_error("no config file given");
    }

    td_dist dist;
    static td_config cfg;
    int rc = td_cli_start(&dist, &cfg, config_path, sets, n_sets, &argc, &argv);
    if (rc != TD_EXIT_OK) return rc;
    td_error err = {0};
    td_status st = TD_OK;

    int threads = threads_per_rank(&cfg, &dist);
    td_blas_set_threads(threads);
    td_cli_log_placement(&dist, threads);
    td_cli_log_precision(&dist, &cfg, threads);

    td_jsonl metrics = {0}, evals = {0};
    if (!dump_path && dist.rank == 0) {
        st = make_dirs(cfg.run.dir, &err);
        if (st == TD_OK) {
            char path[TD_PATH_LEN + 32];
            snprintf(path, sizeof(path), "%s/config.yaml", cfg.run.dir);
            char *yaml = td_config_to_yaml(&cfg);
            FILE *f = fopen(path, "w");
            if (!f || fputs(yaml, f) < 0) st = td_error_set(&err, TD_ERR_IO, "cannot write %s", path);
            if (f) fclose(f);
            free(yaml);
            snprintf(path, sizeof(path), "%s/metrics.jsonl", cfg.run.dir);
            if (st == TD_OK) st = td_jsonl_open(&metrics, &dist, path, &err);
            snprintf(path, sizeof(path), "%s/eval.jsonl", cfg.run.dir);
            if (st == TD_OK && cfg.data.eval[0]) st = td_jsonl_open(&evals, &dist, path, &err);
        }
    }
    td_trainer tr;
    if (st == TD_OK) st = td_trainer_init(&tr, &cfg, &dist, &err);
    if (st != TD_OK) fprintf(stderr, "tokdrop: rank %d: %s\n", dist.rank, err.msg);
    if (td_dist_any_failed(&dist, st != TD_OK)) {
        if (st == TD_OK) td_trainer_free(&tr);
        td_jsonl_close(&metrics);
        td_jsonl_close(&evals);
        td_dist_finalize(&dist);
        return TD_EXIT_FAILURE;
    }
    td_log(&dist, "model: %lld parameters, %lld layers, hidden %lld; token dropping %s; "
           "activations %.1f MiB (%.2f MiB per sequence)",
           (long long)tr.model.n_params, (long long)cfg.model.layers, (long long)cfg.model.hidden,
           cfg.token_drop.enabled ? "on" : "off", (double)tr.model.acts_bytes / (1 << 20),
           (double)tr.model.acts_bytes / (1 << 20) / (double)cfg.train.micro_batch);

    int exit_code = TD_EXIT_OK;
    if (dump_path) {
        tr.grads_before_clip = td_xmalloc((size_t)tr.model.n_params * sizeof(float));
        td_step_stats s;
        st = td_trainer_step(&tr, &s, &err);
        if (st == TD_OK) st = td_trainer_write_dump(&tr, &s, dump_path, &err);
        if (st != TD_OK) {
            fprintf(stderr, "tokdrop: rank %d: %s\n", dist.rank, err.msg);
            exit_code = TD_EXIT_FAILURE;
        } else {
            td_log(&dist, "step 1 loss %.6f (mlm %.6f, nsp %.6f) dumped to %s", s.loss, s.mlm_loss,
                   s.nsp_loss, dump_path);
        }
    } else {
        int64_t from_step = 0;
        st = td_trainer_resume(&tr, &from_step, &err);
        tr.watchdog = td_watchdog_start(&dist, td_watchdog_timeout_from_env());
        install_stop_handlers();
        double elapsed = 0; /* seconds of training and evaluation */
        bool stopped = false;
        while (st == TD_OK && tr.step < cfg.train.steps) {
            td_step_stats s;
            st = td_trainer_step(&tr, &s, &err);
            if (st != TD_OK) break;
            elapsed += s.t_total;
            maybe_inject_fault(&dist, s.step);
            bool last = s.step == cfg.train.steps;
            if (s.step % cfg.run.log_every == 0 || last) {
                write_metrics(&metrics, &s);
                double eta = elapsed / (double)s.step * (double)(cfg.train.steps - s.step);
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
                write_eval(&evals, s.step, elapsed, &r);
                td_log(&dist, "eval at step %lld: mlm loss %.4f acc %.4f, nsp loss %.4f acc %.4f (%lld sequences)",
                       (long long)s.step, r.mlm_loss, r.mlm_acc, r.nsp_loss, r.nsp_acc,
                       (long long)r.sequences);
            }
            /* every rank learns of a signal to any rank at the same step */
            td_watchdog_beat(tr.watchdog, "agreeing with the other ranks on stop signals");
            stopped = td_dist_any_failed(&dist, stop_requested != 0);
            bool ckpt_due = cfg.run.checkpoint_every > 0 && s.step % cfg.run.checkpoint_every == 0;
            if (ckpt_due || last || stopped) {
                if ((st = td_trainer_save(&tr, &err)) != TD_OK) break;
                td_log(&dist, "checkpoint at step %lld", (long long)s.step);
            }
            if (stopped) {
                td_log(&dist, "stopped by a signal after step %lld; run again to continue", (long long)s.step);
                exit_code = TD_EXIT_STOPPED;
                break;
            }
        }
        td_watchdog_stop(tr.watchdog);
        tr.watchdog = NULL;
        if (st != TD_OK) {
            fprintf(stderr, "tokdrop: rank %d: %s\n", dist.rank, err.msg);
            exit_code = TD_EXIT_FAILURE;
        }
    }
    td_jsonl_close(&metrics);
    td_jsonl_close(&evals);
    td_trainer_free(&tr);
    td_dist_finalize(&dist);
    return exit_code;
}
