/* The importance table and the per-sequence choice of kept tokens. */
#include "tokdrop/nn/drop.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tokdrop/base/rng.h"

static td_status resolve(int64_t *id, const td_token_ref *ref, const char *list, int64_t V,
                         const td_vocab *vocab, td_error *err)
{
    if (ref->id >= 0) {
        if (ref->id >= V)
            return td_error_set(err, TD_ERR_CONFIG, "token_drop.%s: id %lld is not below model.vocab_size = %lld",
                                list, (long long)ref->id, (long long)V);
        *id = ref->id;
        return TD_OK;
    }
    if (!vocab)
        return td_error_set(err, TD_ERR_CONFIG,
                            "token_drop.%s: token '%s' needs model.vocab to resolve it (or give ids)",
                            list, ref->text);
    *id = td_vocab_find(vocab, ref->text);
    if (*id < 0)
        return td_error_set(err, TD_ERR_CONFIG, "token_drop.%s: token '%s' is not in the vocabulary",
                            list, ref->text);
    return TD_OK;
}

td_status td_drop_init(td_drop *d, const td_drop_config *cfg, int64_t V, const td_vocab *vocab,
                       uint64_t seed, td_error *err)
{
    memset(d, 0, sizeof(*d));
    d->V = V;
    d->kind = cfg->importance;
    d->beta = cfg->loss_beta;
    d->seed = seed;
    d->imp = td_xmalloc((size_t)V * sizeof(float));
    d->pinned = td_xcalloc((size_t)V, 1);
    d->stats = td_xcalloc((size_t)(2 * V), sizeof(double));
    for (int64_t i = 0; i < V; i++) d->imp[i] = (float)cfg->loss_init;
    for (int i = 0; i < cfg->n_allow; i++) {
        int64_t id = -1;
        td_status st = resolve(&id, &cfg->allow[i], "allow", V, vocab, err);
        if (st != TD_OK) {
            td_drop_free(d);
            return st;
        }
        d->pinned[id] = TD_PIN_ALLOW;
        d->imp[id] = TD_DROP_ALLOW_SCORE;
    }
    for (int i = 0; i < cfg->n_deny; i++) { /* after allow: deny wins */
        int64_t id = -1;
        td_status st = resolve(&id, &cfg->deny[i], "deny", V, vocab, err);
        if (st != TD_OK) {
            td_drop_free(d);
            return st;
        }
        d->pinned[id] = TD_PIN_DENY;
        d->imp[id] = TD_DROP_DENY_SCORE;
    }
    return TD_OK;
}

void td_drop_free(td_drop *d)
{
    free(d->imp);
    free(d->pinned);
    free(d->stats);
    memset(d, 0, sizeof(*d));
}

void td_drop_set_frequency(td_drop *d, const int64_t *counts)
{
    for (int64_t y = 0; y < d->V; y++)
        if (d->pinned[y] == TD_PIN_NONE) d->imp[y] = (float)-log((double)(counts[y] > 1 ? counts[y] : 1));
}

typedef struct {
    float score;
    int32_t pos;
} scored_pos;

/* Descending score, then ascending position: a total order, so the choice
 * is deterministic. */
static int by_score_then_pos(const void *pa, const void *pb)
{
    const scored_pos *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return (a->pos > b->pos) - (a->pos < b->pos);
}

static int by_int32(const void *pa, const void *pb)
{
    int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
    return (a > b) - (a < b);
}

void td_drop_select(const td_drop *d, int32_t *kept, const td_batch *bt, int64_t K, uint64_t step)
{
    const int64_t T = bt->T;
    TD_ASSERT(K >= 1 && K <= T);
    #pragma omp parallel
    {
        scored_pos *sp = td_xmalloc((size_t)T * sizeof(*sp));
        #pragma omp for schedule(static)
        for (int64_t b = 0; b < bt->B; b++) {
            uint64_t key = td_rng_key(d->seed, step, (uint64_t)bt->sample_ids[b], TD_SITE_DROP_RANDOM);
            for (int64_t t = 0; t < T; t++) {
                int32_t id = bt->input_ids[b * T + t];
                float s = d->imp[id];
                if (d->kind == TD_IMPORTANCE_RANDOM && d->pinned[id] == TD_PIN_NONE)
                    s = td_rng_uniform(key, (uint64_t)t);
                if (!bt->input_mask[b * T + t]) s = -INFINITY;
                sp[t] = (scored_pos){s, (int32_t)t};
            }
            qsort(sp, (size_t)T, sizeof(*sp), by_score_then_pos);
            int32_t *out = kept + b * K;
            for (int64_t i = 0; i < K; i++) out[i] = sp[i].pos;
            qsort(out, (size_t)K, sizeof(*out), by_int32);
        }
        free(sp);
    }
}

void td_drop_stats_clear(td_drop *d)
{
    memset(d->stats, 0, (size_t)(2 * d->V) * sizeof(double));
}

void td_drop_stats_add(td_drop *d, const td_batch *bt, const float *pred_loss)
{
    double *sums = d->stats, *counts = d->stats + d->V;
    for (int64_t i = 0; i < bt->B * bt->max_pred; i++) {
        if (bt->mlm_weights[i] <= 0) continue;
        int32_t y = bt->mlm_ids[i];
        sums[y] += pred_loss[i];
        counts[y] += 1;
    }
}

void td_drop_update(td_drop *d)
{
    const double *sums = d->stats, *counts = d->stats + d->V;
    for (int64_t y = 0; y < d->V; y++) {
        if (counts[y] <= 0 || d->pinned[y] != TD_PIN_NONE) continue;
        double mean = sums[y] / counts[y];
        d->imp[y] = (float)(d->beta * d->imp[y] + (1.0 - d->beta) * mean);
    }
}

int64_t td_drop_keep_at(const td_drop_config *cfg, int64_t seq_len, int64_t total_steps, int64_t t)
{
    if (t > total_steps - cfg->full_last_steps) return seq_len;
    switch (cfg->schedule) {
    case TD_SCHEDULE_CONSTANT:
        return cfg->keep;
    case TD_SCHEDULE_RAMP: {
        if (t - 1 >= cfg->ramp_steps) return seq_len;
        int64_t k = cfg->keep + (seq_len - cfg->keep) * (t - 1) / cfg->ramp_steps;
        k -= k % TD_DROP_RAMP_ROUND;
        return k < cfg->keep ? cfg->keep : k;
    }
    case TD_SCHEDULE_INTERLEAVE:
        return t % cfg->full_every == 0 ? seq_len : cfg->keep;
    }
    return cfg->keep;
}
