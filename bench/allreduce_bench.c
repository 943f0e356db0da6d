/* The gradient allreduce of a model as tokdrop runs it, and when the
 * backward hands its buckets over. Prints one JSON object. Timings, not a
 * test.
 *
 *   mpirun -n P [transport flags] td-bench-allreduce CONFIG allreduce [REPEATS]
 *     through tokdrop's own td_dist calls: the whole gradient block (as
 *     train.allreduce=blocking reduces it), the buckets the backward hands
 *     over (heads, layers L-1..0, embeddings; td_model_*_range) one by one
 *     and all started at once (as the overlap mode does), one small message
 *     (latency), and how much of one layer bucket's non-blocking sum
 *     finishes behind a fixed amount of computation (twice its blocking
 *     time, at least 0.1 s) when the rank calls into MPI never (poll_ms 0),
 *     every 20, 5 or 1 ms while it computes (Open MPI moves a non-blocking
 *     collective on only inside MPI calls); what MPI does inside those
 *     calls counts as exposed, since the computation waits for it.
 *   td-bench-allreduce CONFIG schedule MICRO_BATCH THREADS fp32|bf16 [STEPS]
 *     one rank: forward and backward of a random micro-batch at seq_len of
 *     CONFIG; the time into the backward at which each bucket is final.
 *
 * Figures: algbw = bytes / time; busbw = algbw * 2 (P-1) / P, what a
 * ring-allreduce moves over each link (nccl-tests' convention), comparable
 * with the link's bandwidth. Medians over REPEATS after one warm-up. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "tokdrop/nn/blas.h"
#include "tokdrop/train/config.h"
#include "tokdrop/train/data.h"
#include "tokdrop/train/dist.h"
#include "tokdrop/nn/gemm.h"
#include "tokdrop/base/report.h"
#include "tokdrop/nn/model.h"
#include "tokdrop/base/rng.h"

#define MAX_BUCKETS 256
#define MAX_REPEATS 64

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *x, int n)
{
    qsort(x, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

typedef struct {
    char name[32];
    int64_t offset, n_elems;
} bucket;

/* The buckets in the order the backward finishes them (model.h). */
static int model_buckets(const td_model *m, bucket *out)
{
    int n = 0;
    td_model_heads_range(m, &out[n].offset, &out[n].n_elems);
    snprintf(out[n++].name, sizeof(out[0].name), "heads");
    for (int64_t l = m->L - 1; l >= 0; l--) {
        td_model_layer_range(m, l, &out[n].offset, &out[n].n_elems);
        snprintf(out[n++].name, sizeof(out[0].name), "layer.%lld", (long long)l);
    }
    td_model_embeddings_range(m, &out[n].offset, &out[n].n_elems);
    snprintf(out[n++].name, sizeof(out[0].name), "embeddings");
    return n;
}

static td_status load_config(td_config *cfg, const char *path, td_error *err)
{
    td_config_defaults(cfg);
    td_status st = td_config_load(cfg, path, err);
    if (st != TD_OK) return st;
    td_config_resolve(cfg);
    return td_config_validate(cfg, err);
}

/* ---- allreduce ---------------------------------------------------------------- */

typedef struct {
    const td_dist *dist;
    MPI_Comm comm;
    int rank, size, repeats;
    td_dist_pending *pending;
} bench_ctx;

/* The slowest rank's seconds, so that every rank reports the same figure. */
static double slowest(const bench_ctx *c, double dt)
{
    MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, c->comm);
    return dt;
}

/* Median seconds of one in-place sum of n floats, as the trainer's
 * blocking mode does it (td_dist_allreduce_f32). */
static double time_allreduce(const bench_ctx *c, float *buf, int64_t n)
{
    double t[MAX_REPEATS];
    for (int r = -1; r < c->repeats; r++) {
        MPI_Barrier(c->comm);
        double t0 = now_s();
        td_dist_allreduce_f32(c->dist, buf, n);
        double dt = slowest(c, now_s() - t0);
        if (r >= 0) t[r] = dt;
    }
    return median(t, c->repeats);
}

/* The buckets one after another (blocking) or all started, then waited for. */
static double time_buckets(const bench_ctx *c, float *grads, const bucket *b, int nb, int nonblocking)
{
    double t[MAX_REPEATS];
    for (int r = -1; r < c->repeats; r++) {
        MPI_Barrier(c->comm);
        double t0 = now_s();
        for (int i = 0; i < nb; i++) {
            if (nonblocking)
                td_dist_iallreduce_f32(c->dist, grads + b[i].offset, b[i].n_elems, c->pending);
            else
                td_dist_allreduce_f32(c->dist, grads + b[i].offset, b[i].n_elems);
        }
        td_dist_wait(c->pending);
        double dt = slowest(c, now_s() - t0);
        if (r >= 0) t[r] = dt;
    }
    return median(t, c->repeats);
}

/* Stands for the backward: `blocks` blocks of arithmetic on a
 * cache-resident buffer, letting MPI progress every poll_s (0: never). The
 * work is fixed, so time spent in the polls (copies and sums that MPI does
 * on the calling core) shows as a longer run, as it would in a backward. */
static float compute_blocks(int64_t blocks, double poll_s, td_dist_pending *p)
{
    static float x[256];
    float acc = 0.0f;
    double next_poll = now_s() + poll_s;
    for (int64_t b = 0; b < blocks; b++) {
        for (int k = 0; k < 100; k++)
            for (int i = 0; i < 256; i++) x[i] = x[i] * 0.999f + 1e-3f;
        acc += x[7];
        if (poll_s > 0) {
            double t = now_s();
            if (t >= next_poll) {
                td_dist_progress(p);
                next_poll = t + poll_s;
            }
        }
    }
    return acc;
}

/* Blocks of compute_blocks that take about `seconds` on their own. */
static int64_t calibrate_blocks(const bench_ctx *c, double seconds)
{
    int64_t blocks = 1000;
    double dt;
    volatile float sink = 0.0f;
    for (;;) {
        double t0 = now_s();
        sink += compute_blocks(blocks, 0.0, c->pending);
        dt = now_s() - t0;
        if (dt > 0.02) break;
        blocks *= 4;
    }
    (void)sink;
    double b = (double)blocks * seconds / dt;
    MPI_Allreduce(MPI_IN_PLACE, &b, 1, MPI_DOUBLE, MPI_MIN, c->comm); /* the same work on every rank */
    return (int64_t)b;
}

/* Share of one non-blocking sum of n floats hidden behind a fixed amount of
 * work: 1 - (work with the sum running, until the sum is done, minus the
 * work alone) / (the blocking sum). Each repeat times the work alone too. */
static double hidden_share(const bench_ctx *c, float *buf, int64_t n, double t_blocking, int64_t blocks,
                           double poll_s, double *exposed_out)
{
    double t[MAX_REPEATS];
    volatile float sink = 0.0f;
    for (int r = -1; r < c->repeats; r++) {
        MPI_Barrier(c->comm);
        double t0 = now_s();
        sink += compute_blocks(blocks, 0.0, c->pending);
        double alone = slowest(c, now_s() - t0);
        MPI_Barrier(c->comm);
        t0 = now_s();
        td_dist_iallreduce_f32(c->dist, buf, n, c->pending);
        sink += compute_blocks(blocks, poll_s, c->pending);
        td_dist_wait(c->pending);
        double dt = slowest(c, now_s() - t0);
        if (r >= 0) t[r] = dt - alone;
    }
    (void)sink;
    *exposed_out = median(t, c->repeats);
    return 1.0 - *exposed_out / t_blocking;
}

/* Do the buckets, started at once, sum to what they should? Small
 * integers, so the sums are exact in any order. */
static bool buckets_sum_right(const bench_ctx *c, float *g, int64_t n_params, const bucket *b, int nb)
{
    for (int64_t i = 0; i < n_params; i++) g[i] = (float)((c->rank + 1) * (i % 13 - 6));
    for (int i = 0; i < nb; i++) td_dist_iallreduce_f32(c->dist, g + b[i].offset, b[i].n_elems, c->pending);
    td_dist_wait(c->pending);
    const float f = (float)(c->size * (c->size + 1) / 2);
    int ok = 1;
    for (int i = 0; i < nb; i++)
        for (int64_t k = b[i].offset; k < b[i].offset + b[i].n_elems; k++)
            if (g[k] != f * (float)(k % 13 - 6)) ok = 0;
    MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, c->comm);
    return ok != 0;
}

static void print_rate(const char *name, double seconds, int64_t n_elems, int size)
{
    double bytes = 4.0 * (double)n_elems, algbw = bytes / seconds / 1e9;
    printf("    {\"what\": \"%s\", \"n_elems\": %lld, \"bytes\": %.0f, \"seconds\": %.6f, "
           "\"algbw_gbs\": %.3f, \"busbw_gbs\": %.3f}",
           name, (long long)n_elems, bytes, seconds, algbw, algbw * 2.0 * (size - 1) / size);
}

static int run_allreduce(const td_dist *dist, const td_config *cfg, const char *cfg_path, int repeats)
{
    td_dist_pending pending;
    bench_ctx c = {.dist = dist, .comm = dist->comm, .rank = dist->rank, .size = dist->size,
                   .repeats = repeats, .pending = &pending};
    if (c.size < 2) {
        fprintf(stderr, "td-bench-allreduce: allreduce needs at least 2 ranks (mpirun -n 2 ...)\n");
        return 1;
    }
    td_model model;
    td_error err;
    if (td_model_init(&model, &cfg->model, 1, 1, 1, &err) != TD_OK) {
        fprintf(stderr, "td-bench-allreduce: %s\n", err.msg);
        return 1;
    }
    float *g = model.grads;
    for (int64_t i = 0; i < model.n_params; i++) g[i] = 1e-3f * (float)(i % 1000);
    bucket b[MAX_BUCKETS];
    TD_ASSERT(model.L + 2 <= MAX_BUCKETS);
    int nb = model_buckets(&model, b);
    const bucket *layer = &b[1], *emb = &b[nb - 1];
    td_dist_pending_init(&pending, 4 * MAX_BUCKETS);

    float small[4] = {1, 2, 3, 4};
    double t_lat = time_allreduce(&c, small, 1);
    double t_full = time_allreduce(&c, g, model.n_params);
    double t_heads = time_allreduce(&c, g + b[0].offset, b[0].n_elems);
    double t_layer = time_allreduce(&c, g + layer->offset, layer->n_elems);
    double t_emb = time_allreduce(&c, g + emb->offset, emb->n_elems);
    double t_seq = time_buckets(&c, g, b, nb, 0);
    double t_nb = time_buckets(&c, g, b, nb, 1);
    bool sums_right = buckets_sum_right(&c, g, model.n_params, b, nb);
    /* the overlap probe: one layer bucket behind twice its blocking time */
    /* never; every 20 ms (a product of the backward on one core of the
     * project VM), 5 ms (on a 64-core node) and 1 ms */
    static const int polls_ms[] = {0, 20, 5, 1};
    enum { N_POLLS = sizeof(polls_ms) / sizeof(polls_ms[0]) };
    double hidden[N_POLLS], exposed[N_POLLS], compute = 2.0 * t_layer;
    if (compute < 0.1) compute = 0.1; /* room for a few polls at 20 ms */
    int64_t blocks = calibrate_blocks(&c, compute);
    for (int i = 0; i < N_POLLS; i++)
        hidden[i] = hidden_share(&c, g + layer->offset, layer->n_elems, t_layer, blocks, 1e-3 * polls_ms[i],
                                 &exposed[i]);

    if (c.rank == 0) {
        printf("{\"config\": \"%s\", \"ranks\": %d, \"repeats\": %d, \"n_params\": %lld, \"bytes\": %lld,\n",
               cfg_path, c.size, repeats, (long long)model.n_params, (long long)(4 * model.n_params));
        printf(" \"buckets\": [");
        for (int i = 0; i < nb; i++)
            printf("%s{\"name\": \"%s\", \"n_elems\": %lld}", i ? ", " : "", b[i].name, (long long)b[i].n_elems);
        printf("],\n \"word_embeddings_n_elems\": %lld,\n", (long long)(model.V * model.H));
        printf(" \"latency_us\": %.2f,\n \"single\": [\n", 1e6 * t_lat);
        print_rate("full", t_full, model.n_params, c.size);
        printf(",\n");
        print_rate("heads", t_heads, b[0].n_elems, c.size);
        printf(",\n");
        print_rate("layer", t_layer, layer->n_elems, c.size);
        printf(",\n");
        print_rate("embeddings", t_emb, emb->n_elems, c.size);
        printf("],\n \"buckets_blocking_s\": %.6f, \"buckets_nonblocking_s\": %.6f, \"nonblocking_sums_right\": %s,\n",
               t_seq, t_nb, sums_right ? "true" : "false");
        printf(" \"overlap_probe\": {\"bucket\": \"layer\", \"compute_s\": %.6f, \"blocking_s\": %.6f, \"runs\": [",
               compute, t_layer);
        for (int i = 0; i < N_POLLS; i++)
            printf("%s{\"poll_ms\": %d, \"exposed_s\": %.6f, \"hidden_share\": %.3f}", i ? ", " : "",
                   polls_ms[i], exposed[i], hidden[i]);
        printf("]}}\n");
    }
    td_dist_pending_free(&pending);
    td_model_free(&model);
    return 0;
}

/* ---- schedule ------------------------------------------------------------------- */

typedef struct {
    double t0;
    int n;
    double t[MAX_BUCKETS];
    int64_t offset[MAX_BUCKETS], n_elems[MAX_BUCKETS];
} schedule_log;

static void on_ready(void *ctx, int64_t offset, int64_t n_elems)
{
    schedule_log *s = ctx;
    TD_ASSERT(s->n < MAX_BUCKETS);
    s->t[s->n] = now_s() - s->t0;
    s->offset[s->n] = offset;
    s->n_elems[s->n++] = n_elems;
}

/* A micro-batch of random tokens, every sequence full length, max_pred
 * distinct masked positions from 1 on. */
static void random_batch(td_batch *bt, int64_t V, uint64_t seed)
{
    const int64_t B = bt->B, T = bt->T, MP = bt->max_pred;
    const uint64_t key = td_rng_key(seed, 0, 0, TD_SITE_MASKING);
    for (int64_t i = 0; i < B * T; i++) {
        bt->input_ids[i] = (int32_t)(5 + td_rng_below(key, (uint64_t)i, (uint32_t)(V - 5)));
        bt->input_mask[i] = 1;
        bt->segment_ids[i] = (int32_t)((i % T) >= T / 2);
    }
    for (int64_t b = 0; b < B; b++) {
        for (int64_t j = 0; j < MP; j++) {
            bt->mlm_positions[b * MP + j] = (int32_t)(1 + j * (T - 1) / MP);
            bt->mlm_ids[b * MP + j] = bt->input_ids[b * T + 1 + j * (T - 1) / MP];
            bt->mlm_weights[b * MP + j] = 1.0f;
        }
        bt->nsp_labels[b] = (int32_t)(b % 2);
        bt->sample_ids[b] = b;
    }
}

static int run_schedule(const td_config *cfg, const char *cfg_path, int64_t B, int threads,
                        const char *precision, int steps)
{
    td_error err;
    td_precision prec = strcmp(precision, "bf16") == 0 ? TD_PRECISION_BF16 : TD_PRECISION_FP32;
    td_blas_set_threads(threads);
    const int64_t T = cfg->data.seq_len, MP = cfg->data.max_pred;
    td_model model;
    if (td_model_init(&model, &cfg->model, B, T, MP, &err) != TD_OK ||
        td_model_set_precision(&model, prec, &err) != TD_OK) {
        fprintf(stderr, "td-bench-allreduce: %s\n", err.msg);
        return 1;
    }
    td_model_init_weights(&model, 1);
    td_batch bt;
    td_batch_init(&bt, B, T, MP);
    bucket b[MAX_BUCKETS];
    TD_ASSERT(model.L + 2 <= MAX_BUCKETS);
    int nb = model_buckets(&model, b);
    schedule_log s = {0};
    double t_fwd = 0, t_bwd = 0;
    for (int step = 0; step <= steps; step++) { /* step 0: warm-up */
        random_batch(&bt, model.V, (uint64_t)step + 1);
        td_forward_args fa = {.batch = &bt, .keep = T, .training = true, .seed = 1, .step = (uint64_t)step + 1,
                              .mlm_scale = 1.0f / (float)(B * MP), .nsp_scale = 1.0f / (float)B};
        td_forward_stats fs;
        td_model_zero_grads(&model);
        double t0 = now_s();
        td_model_forward(&model, &fa, &fs);
        double t1 = now_s();
        schedule_log cur = {.t0 = t1};
        td_model_backward(&model, on_ready, &cur);
        double t2 = now_s();
        TD_ASSERT(cur.n == nb);
        if (step == 0) continue;
        t_fwd += t1 - t0;
        t_bwd += t2 - t1;
        for (int i = 0; i < nb; i++) {
            TD_ASSERT(cur.offset[i] == b[i].offset && cur.n_elems[i] == b[i].n_elems);
            s.t[i] += cur.t[i];
        }
    }
    printf("{\"config\": \"%s\", \"micro_batch\": %lld, \"seq_len\": %lld, \"threads\": %d, "
           "\"precision\": \"%s\", \"steps\": %d,\n \"forward_s\": %.4f, \"backward_s\": %.4f,\n \"ready\": [",
           cfg_path, (long long)B, (long long)T, threads, precision, steps, t_fwd / steps, t_bwd / steps);
    for (int i = 0; i < nb; i++)
        printf("%s{\"name\": \"%s\", \"n_elems\": %lld, \"t_s\": %.4f}", i ? ",\n   " : "", b[i].name,
               (long long)b[i].n_elems, s.t[i] / steps);
    printf("]}\n");
    td_batch_free(&bt);
    td_model_free(&model);
    return 0;
}

int main(int argc, char **argv)
{
    td_report_set_sink(td_report_stderr, "td-bench-allreduce");
    if (argc < 3 || (strcmp(argv[2], "allreduce") != 0 && strcmp(argv[2], "schedule") != 0) ||
        (strcmp(argv[2], "schedule") == 0 && argc < 6)) {
        fprintf(stderr, "usage: mpirun -n P td-bench-allreduce CONFIG allreduce [REPEATS]\n"
                        "       td-bench-allreduce CONFIG schedule MICRO_BATCH THREADS fp32|bf16 [STEPS]\n");
        return 2;
    }
    bool schedule = strcmp(argv[2], "schedule") == 0;
    if (schedule) td_cli_restart_for_fast_kernels(argv);
    td_dist dist;
    td_config cfg;
    td_error err;
    int rc;
    if (td_dist_init(&dist, &argc, &argv, &err) != TD_OK) {
        fprintf(stderr, "td-bench-allreduce: %s\n", err.msg);
        return 1;
    }
    if (load_config(&cfg, argv[1], &err) != TD_OK) {
        fprintf(stderr, "td-bench-allreduce: %s\n", err.msg);
        rc = 1;
    } else if (schedule) {
        rc = run_schedule(&cfg, argv[1], atoll(argv[3]), atoi(argv[4]), argv[5], argc > 6 ? atoi(argv[6]) : 2);
    } else {
        int repeats = argc > 3 ? atoi(argv[3]) : 5;
        if (repeats < 1 || repeats > MAX_REPEATS) repeats = 5;
        rc = run_allreduce(&dist, &cfg, argv[1], repeats);
    }
    td_dist_finalize(&dist);
    return rc;
}
