/* Training data (SPEC section 5): one rank's shard files -> a stream of
 * samples read through a bounded window -> micro-batches, with optional
 * dynamic masking.
 *
 * The stream of an epoch. A rank's owned files are put in an order that is
 * reshuffled every epoch from the seed; their owned rows, in file order,
 * form the epoch's stream of n_local samples. The stream is cut into chunks
 * of `window` samples, and the samples of each chunk are shuffled (key:
 * seed, epoch, chunk), so a batch may span files and the order is a pure
 * function of (seed, epoch, position, window): the cursor (epoch, position)
 * resumes it bit-identically, in the middle of a file too.
 *
 * Memory. data.memory_mb bounds the samples a rank holds. When the rank's
 * whole share fits, it is loaded once and each epoch is one chunk: a full
 * shuffle of the share, and no file is read again (this is also the order
 * that checkpoints from before streaming describe). Otherwise two chunks of
 * half the budget each are held: the one being served and the next, which
 * a background thread loads while the steps run, so a step waits for the
 * file system only when the disk is slower than training. This is what
 * NVIDIA's loader does (file order shuffled per epoch, the next file read
 * ahead), with the shuffle over a window instead of within a file.
 *
 * Samples are kept narrowed and validated (data_shard.h): a bad value in a
 * shard is reported when its chunk is loaded, naming file, dataset, row and
 * column. */
#include "tokdrop/train/data.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/data_shard.h"
#include "tokdrop/base/rng.h"

#define TD_DATA_DEFAULT_MEMORY_MB 4096
/* Dynamic masking rate and split (BERT, google-research/bert). */
#define TD_MASK_RATE 0.15
#define TD_MASK_P_MASK 0.8f
#define TD_MASK_P_RANDOM 0.1f

/* ---- batches ------------------------------------------------------------ */

void td_batch_init(td_batch *batch, int64_t B, int64_t T, int64_t max_pred)
{
    TD_ASSERT(B > 0 && T > 0 && max_pred >= 0);
    batch->B = B;
    batch->T = T;
    batch->max_pred = max_pred;
    size_t bt = (size_t)(B * T), bp = (size_t)(B * max_pred);
    batch->input_ids = td_xcalloc(bt, sizeof(int32_t));
    batch->input_mask = td_xcalloc(bt, sizeof(int32_t));
    batch->segment_ids = td_xcalloc(bt, sizeof(int32_t));
    batch->mlm_positions = td_xcalloc(bp, sizeof(int32_t));
    batch->mlm_ids = td_xcalloc(bp, sizeof(int32_t));
    batch->mlm_weights = td_xcalloc(bp, sizeof(float));
    batch->nsp_labels = td_xcalloc((size_t)B, sizeof(int32_t));
    batch->sample_ids = td_xcalloc((size_t)B, sizeof(int64_t));
}

void td_batch_free(td_batch *batch)
{
    if (!batch) return;
    free(batch->input_ids);
    free(batch->input_mask);
    free(batch->segment_ids);
    free(batch->mlm_positions);
    free(batch->mlm_ids);
    free(batch->mlm_weights);
    free(batch->nsp_labels);
    free(batch->sample_ids);
    memset(batch, 0, sizeof(*batch));
}

int64_t td_batch_count_masked(const td_batch *batch)
{
    int64_t n = 0;
    for (int64_t i = 0; i < batch->B * batch->max_pred; i++) n += batch->mlm_weights[i] != 0.0f;
    return n;
}

/* ---- the reader ------------------------------------------------------------ */

/* A chunk of the stream in memory. The background thread fills a slot in
 * state LOADING; only the serving thread touches a READY or EMPTY slot. */
typedef enum { SLOT_EMPTY, SLOT_LOADING, SLOT_READY } slot_state;

typedef struct {
    td_samples s;
    int64_t epoch, chunk; /* what it holds; epoch -1 when resident (every epoch) */
    slot_state state;
    td_status st;         /* of the load */
    td_error err;
} chunk_slot;

struct td_data {
    td_data_options opt;
    td_shard_layout layout;
    td_shard *shards;      /* the files this rank reads, in glob order */
    int64_t n_shards;
    int64_t n_total;       /* samples in all files (or the limit) */
    int64_t n_local;       /* samples of this rank per epoch */
    bool resident;         /* the whole share fits: one chunk, loaded once */
    int64_t window;        /* samples per chunk (n_local when resident) */
    int64_t n_chunks;      /* per epoch */

    chunk_slot slot[2];    /* slot[cur] serves; the other is loaded ahead */
    int cur;
    int64_t *perm;         /* (window) sample order within the served chunk */
    int64_t perm_epoch, perm_chunk; /* what perm is for; -1: nothing yet */
    td_data_cursor cursor; /* index in [0, n_local) */
    int32_t *cand;         /* (T) scratch for dynamic masking */

    /* the background loader */
    pthread_t thread;
    bool thread_started, quit;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t *order;        /* (n_shards) the loader's scratch: an epoch's file order */
};

/* ---- the epoch's stream ------------------------------------------------------- */

/* Fisher-Yates from the end, the k-th swap drawing counter k of key. */
static void shuffle(int64_t *a, int64_t n, uint64_t key)
{
    uint64_t k = 0;
    for (int64_t i = n - 1; i >= 1; i--, k++) {
        int64_t j = td_rng_below(key, k, (uint32_t)(i + 1));
        int64_t tmp = a[i];
        a[i] = a[j];
        a[j] = tmp;
    }
}

/* The order of this rank's files in an epoch: reshuffled every epoch when
 * the stream is read in several chunks (with one chunk, the chunk's own
 * shuffle already mixes every file). */
static void file_order(const td_data *d, int64_t epoch, int64_t *order)
{
    for (int64_t i = 0; i < d->n_shards; i++) order[i] = i;
    if (d->opt.ordered || d->n_chunks == 1) return;
    shuffle(order, d->n_shards,
            td_rng_key(d->opt.seed, (uint64_t)epoch, (uint64_t)d->opt.rank, TD_SITE_FILE_ORDER));
}

static int64_t chunk_len(const td_data *d, int64_t chunk)
{
    int64_t start = chunk * d->window, end = start + d->window;
    return (end < d->n_local ? end : d->n_local) - start;
}

/* Loads stream positions [chunk * window, ...) of an epoch into slot->s:
 * the pieces of the files that cover them, in the epoch's file order. */
static td_status load_chunk(td_data *d, chunk_slot *slot, int64_t epoch, td_error *err)
{
    if (slot->s.cap == 0) {
        td_status st = td_samples_alloc(&slot->s, d->window, &d->layout, err);
        if (st != TD_OK) return st;
    }
    slot->s.n = 0;
    const int64_t start = slot->chunk * d->window, end = start + chunk_len(d, slot->chunk);
    file_order(d, epoch, d->order);
    int64_t pos = 0; /* stream position of the current file's first owned row */
    for (int64_t k = 0; k < d->n_shards && pos < end; k++) {
        const td_shard *sh = &d->shards[d->order[k]];
        int64_t a = start > pos ? start : pos;
        int64_t b = end < pos + sh->n_owned ? end : pos + sh->n_owned;
        if (a < b) {
            td_status st = td_shard_read(&slot->s, sh, a - pos, b - pos, &d->layout, err);
            if (st != TD_OK) return st;
        }
        pos += sh->n_owned;
    }
    TD_ASSERT(slot->s.n == end - start);
    return TD_OK;
}

static void *loader_main(void *arg)
{
    td_data *d = arg;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        chunk_slot *slot = NULL;
        while (!d->quit && !slot) {
            for (int i = 0; i < 2; i++)
                if (d->slot[i].state == SLOT_LOADING) slot = &d->slot[i];
            if (!slot) pthread_cond_wait(&d->cv, &d->mu);
        }
        if (d->quit) break;
        pthread_mutex_unlock(&d->mu);
        td_error err = {0};
        int64_t epoch = slot->epoch < 0 ? 0 : slot->epoch;
        td_status st = load_chunk(d, slot, epoch, &err);
        pthread_mutex_lock(&d->mu);
        slot->st = st;
        slot->err = err;
        slot->state = SLOT_READY;
        pthread_cond_broadcast(&d->cv);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

/* Asks the loader for (epoch, chunk) in slot i; the caller holds d->mu and
 * has made sure that the loader is not filling slot i. */
static void request(td_data *d, int i, int64_t epoch, int64_t chunk)
{
    d->slot[i].epoch = d->resident ? -1 : epoch;
    d->slot[i].chunk = chunk;
    d->slot[i].state = SLOT_LOADING;
    pthread_cond_broadcast(&d->cv);
}

static bool slot_holds(const td_data *d, int i, int64_t epoch, int64_t chunk)
{
    const chunk_slot *s = &d->slot[i];
    return s->state != SLOT_EMPTY && s->epoch == (d->resident ? -1 : epoch) && s->chunk == chunk;
}

/* Makes slot[cur] hold (epoch, chunk), waiting for the loader if needed,
 * and asks for the chunk after it. */
static td_status serve_chunk(td_data *d, int64_t epoch, int64_t chunk, td_error *err)
{
    if (slot_holds(d, d->cur, epoch, chunk) && d->slot[d->cur].state == SLOT_READY) return TD_OK;
    pthread_mutex_lock(&d->mu);
    int next = 1 - d->cur;
    if (!slot_holds(d, next, epoch, chunk)) {
        /* not what was read ahead (a resume, or the first chunk): wait for
         * the loader to finish what it is doing, then ask for this one */
        while (d->slot[next].state == SLOT_LOADING) pthread_cond_wait(&d->cv, &d->mu);
        request(d, next, epoch, chunk);
    }
    while (d->slot[next].state == SLOT_LOADING) pthread_cond_wait(&d->cv, &d->mu);
    d->cur = next;
    chunk_slot *s = &d->slot[next];
    td_status st = s->st;
    if (st != TD_OK) {
        *err = s->err;
        s->state = SLOT_EMPTY; /* a later call tries again */
    } else if (!d->resident) {
        int64_t e = chunk + 1 < d->n_chunks ? epoch : epoch + 1;
        int64_t c = chunk + 1 < d->n_chunks ? chunk + 1 : 0;
        request(d, 1 - next, e, c);
    }
    pthread_mutex_unlock(&d->mu);
    return st;
}

/* ---- opening ------------------------------------------------------------------- */

static td_status check_options(const td_data_options *o, td_error *err)
{
    if (o->seq_len < 2 || o->seq_len > 65536)
        return td_error_set(err, TD_ERR_ARG,
                            "data: seq_len %lld, expected 2..65536 (data.seq_len)",
                            (long long)o->seq_len);
    if (o->max_pred < 1 || o->max_pred > o->seq_len)
        return td_error_set(err, TD_ERR_ARG,
                            "data: max_pred %lld, expected 1..seq_len %lld (data.max_pred)",
                            (long long)o->max_pred, (long long)o->seq_len);
    if (o->vocab_size < 1 || o->vocab_size > INT32_MAX)
        return td_error_set(err, TD_ERR_ARG,
                            "data: vocab_size %lld out of range (model.vocab_size)",
                            (long long)o->vocab_size);
    if (o->memory_bytes < 0 || o->limit < 0)
        return td_error_set(err, TD_ERR_ARG, "data: memory %lld bytes, limit %lld: expected >= 0",
                            (long long)o->memory_bytes, (long long)o->limit);
    if (o->n_ranks < 1 || o->rank < 0 || o->rank >= o->n_ranks)
        return td_error_set(err, TD_ERR_ARG, "data: rank %d of %d ranks", o->rank, o->n_ranks);
    if (o->dynamic_masking) {
        const int32_t ids[4] = {o->mask_id, o->cls_id, o->sep_id, o->pad_id};
        const char *names[4] = {"[MASK]", "[CLS]", "[SEP]", "[PAD]"};
        for (int k = 0; k < 4; k++)
            if (ids[k] < 0 || ids[k] >= o->vocab_size)
                return td_error_set(err, TD_ERR_ARG,
                                    "data: dynamic masking: %s id %d outside [0, %lld) "
                                    "(model.vocab_size)",
                                    names[k], ids[k], (long long)o->vocab_size);
    }
    return TD_OK;
}

/* This rank's rows of file i: the whole file when files are dealt out,
 * else (fewer files than ranks, or an ordered set) the global ids
 * g % n_ranks == rank, below the limit. */
static void assign_rows(td_shard *sh, int64_t i, int64_t n_files, const td_data_options *o,
                        int64_t limit)
{
    sh->first = 0;
    sh->stride = 1;
    sh->n_owned = 0;
    int64_t rows = sh->n_rows;
    if (sh->offset + rows > limit) rows = limit > sh->offset ? limit - sh->offset : 0;
    if (o->ordered || n_files < o->n_ranks) {
        sh->stride = o->n_ranks;
        sh->first = (o->rank - sh->offset % o->n_ranks + o->n_ranks) % o->n_ranks;
        if (sh->first < rows) sh->n_owned = (rows - 1 - sh->first) / o->n_ranks + 1;
    } else if (i % o->n_ranks == o->rank) {
        sh->n_owned = rows;
    }
}

/* Chooses resident or streaming and the chunk size from the budget. */
static td_status size_window(td_data *d, const char *glob_pattern, td_error *err)
{
    const td_data_options *o = &d->opt;
    int64_t bytes = o->memory_bytes > 0 ? o->memory_bytes : (int64_t)TD_DATA_DEFAULT_MEMORY_MB << 20;
    int64_t per_sample = td_samples_sample_bytes(&d->layout) + (int64_t)sizeof(int64_t); /* + perm */
    int64_t fit = bytes / per_sample;
    d->resident = d->n_local <= fit;
    d->window = d->resident ? d->n_local : fit / 2;
    if (d->window < 1)
        return td_error_set(err, TD_ERR_ARG,
                            "data: data.memory_mb = %.3g holds %lld samples of %lld bytes "
                            "(seq_len %lld); the reader needs room for 2",
                            (double)bytes / (1 << 20), (long long)fit, (long long)per_sample,
                            (long long)d->layout.T);
    if (d->window > (int64_t)UINT32_MAX)
        return td_error_set(err, TD_ERR_ARG,
                            "data: rank %d would hold %lld samples of '%s' at once, at most %u; "
                            "lower data.memory_mb or use more ranks",
                            o->rank, (long long)d->window, glob_pattern, UINT32_MAX);
    d->n_chunks = d->n_local == 0 ? 1 : (d->n_local + d->window - 1) / d->window;
    return TD_OK;
}

static td_status serve_position(td_data *d, td_error *err);

td_status td_data_open(td_data **out, const char *glob_pattern, const td_data_options *opt,
                       td_error *err)
{
    *out = NULL;
    td_status st = check_options(opt, err);
    if (st != TD_OK) return st;
    const char *key = opt->key ? opt->key : "data.train";
    char **paths = NULL;
    int64_t n_files = 0;
    st = td_shard_glob(&paths, &n_files, glob_pattern, key, err);
    if (st != TD_OK) return st;

    td_data *d = td_xcalloc(1, sizeof(td_data));
    d->opt = *opt;
    d->opt.key = NULL; /* not owned */
    d->layout = (td_shard_layout){opt->seq_len, opt->max_pred, opt->vocab_size,
                                  opt->dynamic_masking != 0, opt->vocab_path, opt->vocab_hash};
    d->perm_epoch = d->perm_chunk = -1;
    d->shards = td_xcalloc((size_t)n_files, sizeof(td_shard));
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);

    /* Every file's metadata, owned or not, so all ranks agree on global
     * sample ids and all report a malformed shard the same way. */
    int64_t offset = 0;
    for (int64_t i = 0; i < n_files; i++) {
        td_shard *sh = &d->shards[i];
        sh->path = paths[i];
        sh->offset = offset;
        st = td_shard_probe(&sh->n_rows, sh->path, &d->layout, err);
        if (st != TD_OK) goto done;
        offset += sh->n_rows;
    }
    d->layout.vocab_path = d->opt.vocab_path = NULL; /* not owned, and no longer needed */
    d->n_total = opt->limit > 0 && opt->limit < offset ? opt->limit : offset;
    /* keep the files this rank reads from */
    for (int64_t i = 0; i < n_files; i++) {
        td_shard sh = d->shards[i];
        assign_rows(&sh, i, n_files, opt, d->n_total);
        if (sh.n_owned > 0) {
            d->shards[d->n_shards++] = sh;
            d->n_local += sh.n_owned;
            paths[i] = NULL; /* owned by d->shards now */
        }
    }
    if (d->n_local == 0 && !opt->ordered) {
        st = td_error_set(err, TD_ERR_FORMAT,
                          "data: rank %d of %d gets no samples from the %lld file(s) matching "
                          "'%s' (%s; %lld samples in all)",
                          opt->rank, opt->n_ranks, (long long)n_files, glob_pattern, key,
                          (long long)d->n_total);
        goto done;
    }
    if ((st = size_window(d, glob_pattern, err)) != TD_OK) goto done;
    d->perm = malloc((size_t)d->window * sizeof(int64_t));
    if (!d->perm) {
        st = td_error_set(err, TD_ERR_NOMEM, "data: cannot allocate the order of %lld samples",
                          (long long)d->window);
        goto done;
    }
    d->order = td_xmalloc((size_t)(d->n_shards > 0 ? d->n_shards : 1) * sizeof(int64_t));
    d->cand = td_xmalloc((size_t)d->layout.T * sizeof(int32_t));
    if (pthread_create(&d->thread, NULL, loader_main, d) != 0) {
        st = td_error_set(err, TD_ERR_NOMEM, "data: cannot start the reader thread");
        goto done;
    }
    d->thread_started = true;
    /* the first chunk now: a bad value in it (all of the rank's data when
     * it fits in memory) fails here, before any training */
    if (d->n_local > 0) st = serve_position(d, err);

done:
    td_shard_free_paths(paths, n_files);
    if (st != TD_OK) {
        td_data_free(d);
        return st;
    }
    *out = d;
    return TD_OK;
}

void td_data_free(td_data *data)
{
    if (!data) return;
    if (data->thread_started) {
        pthread_mutex_lock(&data->mu);
        data->quit = true;
        pthread_cond_broadcast(&data->cv);
        pthread_mutex_unlock(&data->mu);
        pthread_join(data->thread, NULL); /* after the chunk it may be loading */
    }
    pthread_cond_destroy(&data->cv);
    pthread_mutex_destroy(&data->mu);
    for (int i = 0; i < 2; i++) td_samples_free(&data->slot[i].s);
    for (int64_t i = 0; i < data->n_shards; i++) free(data->shards[i].path);
    free(data->shards);
    free(data->perm);
    free(data->order);
    free(data->cand);
    free(data);
}

/* ---- serving ------------------------------------------------------------------ */

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Dynamic masking of batch row b (its inputs already copied), BERT style:
 * n = min(max_pred, max(1, round(0.15 * candidates))) candidate positions
 * (real tokens other than [CLS]/[SEP]/[PAD]) chosen by a partial
 * Fisher-Yates (counters 0..n-1), sorted; each becomes [MASK] (80%), a
 * uniform random id in [0, V) (10%) or stays (10%), drawing counters
 * P + 2i and P + 2i + 1 for the i-th chosen position. */
static void mask_dynamic(td_data *d, td_batch *batch, int64_t b, int64_t sample_id)
{
    const int64_t T = d->layout.T, P = d->layout.P;
    const td_data_options *o = &d->opt;
    int32_t *ids = batch->input_ids + b * T;
    const int32_t *mask = batch->input_mask + b * T;
    int64_t nc = 0;
    for (int64_t t = 0; t < T; t++)
        if (mask[t] == 1 && ids[t] != o->cls_id && ids[t] != o->sep_id && ids[t] != o->pad_id)
            d->cand[nc++] = (int32_t)t;
    int64_t n = 0;
    if (nc > 0) {
        /* nearbyint rounds half to even, like Python's round() in google-research/bert */
        n = (int64_t)nearbyint(TD_MASK_RATE * (double)nc);
        if (n < 1) n = 1;
        if (n > P) n = P;
    }
    uint64_t key = td_rng_key(o->seed, (uint64_t)d->cursor.epoch, (uint64_t)sample_id,
                              TD_SITE_MASKING);
    for (int64_t k = 0; k < n; k++) {
        int64_t j = k + td_rng_below(key, (uint64_t)k, (uint32_t)(nc - k));
        int32_t tmp = d->cand[k];
        d->cand[k] = d->cand[j];
        d->cand[j] = tmp;
    }
    qsort(d->cand, (size_t)n, sizeof(int32_t), cmp_i32);
    int32_t *pos = batch->mlm_positions + b * P, *lab = batch->mlm_ids + b * P;
    float *w = batch->mlm_weights + b * P;
    for (int64_t i = 0; i < P; i++) {
        if (i >= n) {
            pos[i] = 0;
            lab[i] = 0;
            w[i] = 0.0f;
            continue;
        }
        int32_t t = d->cand[i];
        pos[i] = t;
        lab[i] = ids[t];
        w[i] = 1.0f;
        float u = td_rng_uniform(key, (uint64_t)(P + 2 * i));
        if (u < TD_MASK_P_MASK)
            ids[t] = o->mask_id;
        else if (u < TD_MASK_P_MASK + TD_MASK_P_RANDOM)
            ids[t] = (int32_t)td_rng_below(key, (uint64_t)(P + 2 * i + 1), (uint32_t)d->layout.V);
    }
}

static void fill_row(td_data *d, td_batch *batch, int64_t b, const td_samples *s, int64_t i)
{
    const int64_t T = d->layout.T, P = d->layout.P;
    for (int64_t t = 0; t < T; t++) {
        batch->input_ids[b * T + t] = td_column_get(&s->col[TD_D_IDS], i * T + t);
        batch->input_mask[b * T + t] = td_column_get(&s->col[TD_D_MASK], i * T + t);
        batch->segment_ids[b * T + t] = td_column_get(&s->col[TD_D_SEG], i * T + t);
    }
    batch->nsp_labels[b] = td_column_get(&s->col[TD_D_NSP], i);
    batch->sample_ids[b] = s->global_ids[i];
    if (d->opt.dynamic_masking) {
        mask_dynamic(d, batch, b, s->global_ids[i]);
        return;
    }
    /* Stored positions after the first 0 are already 0 (data_shard.c). */
    int ended = 0;
    for (int64_t k = 0; k < P; k++) {
        int32_t p = td_column_get(&s->col[TD_D_POS], i * P + k);
        ended = ended || p == 0;
        batch->mlm_positions[b * P + k] = p;
        batch->mlm_ids[b * P + k] = td_column_get(&s->col[TD_D_MLM], i * P + k);
        batch->mlm_weights[b * P + k] = ended ? 0.0f : 1.0f;
    }
}

/* Makes the chunk of the cursor's position served, with its order: a
 * shuffle keyed by (seed, epoch, chunk), or none for an ordered set. */
static td_status serve_position(td_data *d, td_error *err)
{
    int64_t epoch = d->cursor.epoch, chunk = d->cursor.index / d->window;
    if (d->perm_epoch == epoch && d->perm_chunk == chunk) return TD_OK;
    td_status st = serve_chunk(d, epoch, chunk, err);
    if (st != TD_OK) return st;
    int64_t n = chunk_len(d, chunk);
    for (int64_t i = 0; i < n; i++) d->perm[i] = i;
    if (!d->opt.ordered)
        shuffle(d->perm, n, td_rng_key(d->opt.seed, (uint64_t)epoch, (uint64_t)chunk, TD_SITE_SHUFFLE));
    d->perm_epoch = epoch;
    d->perm_chunk = chunk;
    return TD_OK;
}

td_status td_data_next(td_data *data, td_batch *batch, td_error *err)
{
    if (batch->T != data->layout.T || batch->max_pred != data->layout.P || batch->B < 1)
        return td_error_set(err, TD_ERR_ARG,
                            "data: batch is B=%lld, T=%lld, max_pred=%lld; the reader has "
                            "T=%lld (data.seq_len), max_pred=%lld (data.max_pred)",
                            (long long)batch->B, (long long)batch->T, (long long)batch->max_pred,
                            (long long)data->layout.T, (long long)data->layout.P);
    if (data->n_local == 0)
        return td_error_set(err, TD_ERR_ARG, "data: rank %d has no samples to read", data->opt.rank);
    for (int64_t b = 0; b < batch->B; b++) {
        td_status st = serve_position(data, err);
        if (st != TD_OK) return st;
        int64_t in_chunk = data->cursor.index - data->perm_chunk * data->window;
        fill_row(data, batch, b, &data->slot[data->cur].s, data->perm[in_chunk]);
        if (++data->cursor.index == data->n_local) {
            data->cursor.index = 0;
            data->cursor.epoch++;
        }
    }
    return TD_OK;
}

td_data_cursor td_data_get_cursor(const td_data *data)
{
    td_data_cursor c = data->cursor;
    c.window = data->resident ? 0 : data->window;
    return c;
}

void td_data_set_cursor(td_data *data, td_data_cursor cursor)
{
    /* The caller checks a cursor read from a checkpoint against
     * td_data_rank_samples; index == n_local is the end of that epoch. */
    TD_ASSERT(cursor.epoch >= 0 && cursor.index >= 0 && cursor.index <= data->n_local);
    if (cursor.index == data->n_local) {
        cursor.epoch++;
        cursor.index = 0;
    }
    data->cursor = (td_data_cursor){cursor.epoch, cursor.index, 0};
}

int64_t td_data_rank_samples(const td_data *data)
{
    return data->n_local;
}

int64_t td_data_total_samples(const td_data *data)
{
    return data->n_total;
}

void td_data_describe_position(const td_data *d, char *out, size_t n)
{
    if (d->n_local == 0) {
        snprintf(out, n, "no samples");
        return;
    }
    int64_t *order = td_xmalloc((size_t)d->n_shards * sizeof(int64_t));
    file_order(d, d->cursor.epoch, order);
    int64_t pos = 0;
    const td_shard *sh = &d->shards[order[0]];
    for (int64_t k = 0; k < d->n_shards; k++) {
        sh = &d->shards[order[k]];
        if (d->cursor.index < pos + sh->n_owned) break;
        pos += sh->n_owned;
    }
    int64_t j = d->cursor.index - pos;
    snprintf(out, n, "epoch %lld, sample %lld of %lld: %s row %lld", (long long)d->cursor.epoch,
             (long long)d->cursor.index, (long long)d->n_local, sh->path,
             (long long)(sh->first + j * sh->stride));
    free(order);
}

int64_t td_data_default_memory_mb(int ranks_on_node)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    int64_t node_mb = pages > 0 && page > 0 ? ((int64_t)pages * page) >> 20 : 8192;
    int64_t mb = node_mb / 8 / (ranks_on_node > 0 ? ranks_on_node : 1);
    return mb < 256 ? 256 : mb > TD_DATA_DEFAULT_MEMORY_MB ? TD_DATA_DEFAULT_MEMORY_MB : mb;
}
