/* Training data (SPEC section 5): NVIDIA-format HDF5 shards -> one rank's
 * shuffled sample stream -> micro-batches, with optional dynamic masking.
 *
 * Reading strategy: at td_data_open each rank reads the rows it owns wholly
 * into memory, narrowed to the smallest unsigned width that holds every
 * valid value (ids: 1, 2 or 4 bytes from vocab_size; masks, segments, NSP
 * labels: 1 byte; positions: 1 or 2 bytes from seq_len). We chose this over
 * a streaming reader because the epoch order is a full permutation of the
 * rank's samples across all of its files (SPEC 5: a batch may span files),
 * which needs random access to any row; serving that from gzip-chunked HDF5
 * files would decompress a chunk per sample and need a prefetch thread
 * (HDF5 serial builds are not thread-safe) to stay off the step's critical
 * path. In memory, td_data_next is a few memcpy-sized loops and never
 * stalls. Narrowing makes a BERT sample (T=128, P=20, V=30522) take ~590
 * bytes with its order entries instead of ~1.7 KB as int32, so the default
 * budget of 4 GiB per rank holds ~7M samples. A rank whose share exceeds the
 * budget gets a clear error at open (how much it needs, how to fix it)
 * instead of swapping; the environment variable TOKDROP_DATA_MEMORY_MB sets
 * another budget (there is no config key for it in SPEC section 8).
 *
 * Every value is validated at open (ids in [0, V), masks/segments/labels in
 * {0, 1}, positions in [0, T)), so a bad shard fails before training starts
 * and the model can index embeddings without checks. */
#include "tokdrop/data.h"

#include <errno.h>
#include <glob.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h5util.h"
#include "tokdrop/rng.h"

#define TD_DATA_DEFAULT_BUDGET_MB 4096
#define TD_DATA_BUDGET_ENV "TOKDROP_DATA_MEMORY_MB"
/* Rows are read in blocks of about this many int64 bytes, so the temporary
 * conversion buffers stay small whatever the shard size. */
#define TD_DATA_BLOCK_BYTES ((int64_t)16 << 20)
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

/* ---- narrow in-memory columns --------------------------------------------- */

/* n_elems values, each stored unsigned in width bytes (1, 2 or 4). */
typedef struct {
    void *p;
    int width;
} column;

static int width_for(int64_t bound) /* values are in [0, bound) */
{
    return bound <= 256 ? 1 : bound <= 65536 ? 2 : 4;
}

static void col_set(column *c, int64_t i, int32_t v)
{
    switch (c->width) {
    case 1: ((uint8_t *)c->p)[i] = (uint8_t)v; break;
    case 2: ((uint16_t *)c->p)[i] = (uint16_t)v; break;
    default: ((int32_t *)c->p)[i] = v; break;
    }
}

static int32_t col_get(const column *c, int64_t i)
{
    switch (c->width) {
    case 1: return ((const uint8_t *)c->p)[i];
    case 2: return ((const uint16_t *)c->p)[i];
    default: return ((const int32_t *)c->p)[i];
    }
}

/* ---- the reader ------------------------------------------------------------ */

enum { D_IDS, D_MASK, D_SEG, D_POS, D_MLM, D_NSP, D_COUNT };
static const char *const dset_names[D_COUNT] = {
    "input_ids",           "input_mask",    "segment_ids",
    "masked_lm_positions", "masked_lm_ids", "next_sentence_labels",
};

struct td_data {
    td_data_options opt;
    int64_t T, P, V;
    int64_t n_total;       /* rows in all files of the glob */
    int64_t n_local;       /* samples of this rank */
    int64_t *global_ids;   /* (n_local) global sample id of each local sample */
    column col[D_COUNT];   /* D_IDS..D_SEG (n_local, T), D_POS/D_MLM (n_local, P), D_NSP (n_local);
                              D_POS/D_MLM unused (NULL) with dynamic masking */
    int64_t *perm;         /* (n_local) local sample order of epoch perm_epoch */
    int64_t perm_epoch;    /* -1: perm not built yet */
    td_data_cursor cursor; /* index in [0, n_local) */
    int32_t *cand;         /* (T) scratch for dynamic masking */
};

typedef struct {
    char *path;
    int64_t n_rows;
} shard_info;

/* ---- glob and file probing ----------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Expands the pattern into a byte-order sorted list (independent of the
 * locale, so all ranks agree on file indices). */
static td_status expand_glob(char ***paths, int64_t *n_paths, const char *pattern, td_error *err)
{
    glob_t g;
    int rc = glob(pattern, 0, NULL, &g);
    if (rc == GLOB_NOMATCH || (rc == 0 && g.gl_pathc == 0)) {
        if (rc == 0) globfree(&g);
        return td_error_set(err, TD_ERR_IO, "data: no file matches '%s' (data.train / data.eval)",
                            pattern);
    }
    if (rc != 0)
        return td_error_set(err, TD_ERR_IO, "data: cannot expand '%s': %s", pattern,
                            rc == GLOB_NOSPACE ? "out of memory" : "read error");
    char **list = td_xmalloc(g.gl_pathc * sizeof(char *));
    for (size_t i = 0; i < g.gl_pathc; i++) {
        list[i] = strdup(g.gl_pathv[i]);
        TD_ASSERT(list[i] != NULL);
    }
    qsort(list, g.gl_pathc, sizeof(char *), cmp_str);
    *n_paths = (int64_t)g.gl_pathc;
    *paths = list;
    globfree(&g);
    return TD_OK;
}

static void free_paths(char **paths, int64_t n)
{
    if (!paths) return;
    for (int64_t i = 0; i < n; i++) free(paths[i]);
    free(paths);
}

/* Opens a shard read-only, with "not an HDF5 file" and errno-based messages
 * rather than HDF5's stack for the common cases. */
static td_status open_shard(hid_t *file, const char *path, td_error *err)
{
    if (access(path, R_OK) != 0)
        return td_error_set(err, TD_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    htri_t is = H5Fis_hdf5(path);
    if (is == 0) return td_error_set(err, TD_ERR_FORMAT, "%s: not an HDF5 file", path);
    if (is < 0) return td_h5_fail(err, path, NULL, "H5Fis_hdf5", __FILE__, __LINE__);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return td_h5_fail(err, path, NULL, "H5Pcreate", __FILE__, __LINE__);
#if H5_VERSION_GE(1, 12, 1) || (H5_VERS_MAJOR == 1 && H5_VERS_MINOR == 10 && H5_VERS_RELEASE >= 7)
    /* Shards are read-only inputs; HDF5's file lock protects nothing here and
     * fails on cluster filesystems mounted without flock (Lustre, some NFS). */
    H5Pset_file_locking(fapl, 0, 1);
#endif
    *file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (*file < 0) return td_h5_fail(err, path, NULL, "H5Fopen", __FILE__, __LINE__);
    return TD_OK;
}

static const char *type_class_name(H5T_class_t c)
{
    switch (c) {
    case H5T_INTEGER: return "integer";
    case H5T_FLOAT: return "float";
    case H5T_STRING: return "string";
    case H5T_COMPOUND: return "compound";
    case H5T_ENUM: return "enum";
    case H5T_ARRAY: return "array";
    default: return "non-numeric";
    }
}

/* Checks that dataset `name` exists and is an integer array [N] (width 0)
 * or [N, width]; returns N. width_key names the config key the width comes
 * from, for the message. */
static td_status check_dataset(int64_t *n_rows, hid_t file, const char *path, const char *name,
                               int64_t width, const char *width_key, td_error *err)
{
    td_status st = TD_OK;
    hid_t dset = -1, space = -1, type = -1;
    int want_rank = width ? 2 : 1;
    char what[64];
    snprintf(what, sizeof(what), "dataset %s", name);
    char want[96];
    if (width)
        snprintf(want, sizeof(want), "[N, %lld] (%s)", (long long)width, width_key);
    else
        snprintf(want, sizeof(want), "[N]");

    htri_t exists = H5Lexists(file, name, H5P_DEFAULT);
    if (exists < 0) return td_h5_fail(err, path, what, "H5Lexists", __FILE__, __LINE__);
    if (exists == 0)
        return td_error_set(err, TD_ERR_FORMAT,
                            "%s: dataset %s missing, expected an integer array %s", path, name,
                            want);
    TD_H5(path, what, dset = H5Dopen2(file, name, H5P_DEFAULT));
    TD_H5(path, what, type = H5Dget_type(dset));
    H5T_class_t cls = H5Tget_class(type);
    if (cls != H5T_INTEGER) {
        st = td_error_set(err, TD_ERR_FORMAT, "%s: dataset %s: type %s, expected an integer type",
                          path, name, type_class_name(cls));
        goto done;
    }
    TD_H5(path, what, space = H5Dget_space(dset));
    int rank = H5Sget_simple_extent_ndims(space);
    if (rank != want_rank) {
        st = td_error_set(err, TD_ERR_FORMAT, "%s: dataset %s: rank %d, expected %d: %s", path,
                          name, rank, want_rank, want);
        goto done;
    }
    hsize_t dims[2] = {0, 0};
    TD_H5(path, what, H5Sget_simple_extent_dims(space, dims, NULL));
    if (width && (int64_t)dims[1] != width) {
        st = td_error_set(err, TD_ERR_FORMAT, "%s: dataset %s: shape [%llu, %llu], expected %s",
                          path, name, (unsigned long long)dims[0], (unsigned long long)dims[1],
                          want);
        goto done;
    }
    *n_rows = (int64_t)dims[0];
done:
    td_h5_close_id(space, H5Sclose);
    td_h5_close_id(type, H5Tclose);
    td_h5_close_id(dset, H5Dclose);
    return st;
}

/* Checks the datasets of one shard and returns its row count. With dynamic
 * masking the shard's masked_lm_* are not used, so not required. */
static td_status probe_shard(int64_t *n_rows, const char *path, const td_data_options *opt,
                             td_error *err)
{
    hid_t file = -1;
    td_status st = open_shard(&file, path, err);
    if (st != TD_OK) return st;
    int64_t n0 = -1;
    for (int d = 0; d < D_COUNT; d++) {
        if (opt->dynamic_masking && (d == D_POS || d == D_MLM)) continue;
        int64_t width = d == D_NSP ? 0 : (d == D_POS || d == D_MLM) ? opt->max_pred : opt->seq_len;
        const char *key = (d == D_POS || d == D_MLM) ? "data.max_pred" : "data.seq_len";
        int64_t n = 0;
        st = check_dataset(&n, file, path, dset_names[d], width, key, err);
        if (st != TD_OK) goto done;
        if (n0 < 0) {
            n0 = n;
        } else if (n != n0) {
            st = td_error_set(err, TD_ERR_FORMAT,
                              "%s: dataset %s: %lld rows, expected %lld (the rows of %s)", path,
                              dset_names[d], (long long)n, (long long)n0, dset_names[0]);
            goto done;
        }
    }
    *n_rows = n0;
done:
    H5Fclose(file);
    return st;
}

/* ---- loading ------------------------------------------------------------------- */

/* Reads rows [r0, r0 + n_rows) of a [N] or [N, width] dataset as int64:
 * HDF5 converts from any integer type, and int64 holds every stored value
 * exactly (bar uint64 above 2^63, clipped, still invalid), so the messages
 * quote the value in the file. */
static td_status read_rows(int64_t *buf, hid_t dset, int64_t r0, int64_t n_rows, int64_t width,
                           const char *path, const char *name, td_error *err)
{
    td_status st = TD_OK;
    hid_t fspace = -1, mspace = -1;
    char what[64];
    snprintf(what, sizeof(what), "dataset %s", name);
    hsize_t start[2] = {(hsize_t)r0, 0};
    hsize_t count[2] = {(hsize_t)n_rows, (hsize_t)width};
    int rank = width ? 2 : 1;
    TD_H5(path, what, fspace = H5Dget_space(dset));
    TD_H5(path, what, H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL));
    TD_H5(path, what, mspace = H5Screate_simple(rank, count, NULL));
    TD_H5(path, what, H5Dread(dset, H5T_NATIVE_INT64, mspace, fspace, H5P_DEFAULT, buf));
done:
    td_h5_close_id(mspace, H5Sclose);
    td_h5_close_id(fspace, H5Sclose);
    return st;
}

static td_status bad_value(const char *path, const char *name, int64_t row, int64_t col,
                           int64_t v, const char *want, td_error *err)
{
    if (col >= 0)
        return td_error_set(err, TD_ERR_FORMAT, "%s: dataset %s: row %lld, column %lld: %lld, %s",
                            path, name, (long long)row, (long long)col, (long long)v, want);
    return td_error_set(err, TD_ERR_FORMAT, "%s: dataset %s: row %lld: %lld, %s", path, name,
                        (long long)row, (long long)v, want);
}

/* Validates one row (already read as int64 into rows[d] at row offset rr)
 * and stores it as local sample li. Static masking: the first position 0
 * ends the real predictions; positions/ids after it are stored as 0. */
static td_status store_row(td_data *d, int64_t li, int64_t *const rows[D_COUNT], int64_t rr,
                           const char *path, int64_t row, td_error *err)
{
    const int64_t T = d->T, P = d->P;
    const int64_t V = d->V;
    char want_id[64];
    snprintf(want_id, sizeof(want_id), "expected an id in [0, %lld) (model.vocab_size)",
             (long long)V);
    for (int dd = D_IDS; dd <= D_SEG; dd++) {
        const int64_t *src = rows[dd] + rr * T;
        int64_t bound = dd == D_IDS ? V : 2;
        for (int64_t t = 0; t < T; t++) {
            if (src[t] < 0 || src[t] >= bound)
                return bad_value(path, dset_names[dd], row, t, src[t],
                                 dd == D_IDS ? want_id : "expected 0 or 1", err);
            col_set(&d->col[dd], li * T + t, (int32_t)src[t]);
        }
    }
    int64_t nsp = rows[D_NSP][rr];
    if (nsp != 0 && nsp != 1)
        return bad_value(path, dset_names[D_NSP], row, -1, nsp, "expected 0 or 1", err);
    col_set(&d->col[D_NSP], li, (int32_t)nsp);
    if (d->opt.dynamic_masking) return TD_OK;

    const int64_t *pos = rows[D_POS] + rr * P, *ids = rows[D_MLM] + rr * P;
    int ended = 0;
    for (int64_t k = 0; k < P; k++) {
        ended = ended || pos[k] == 0;
        if (ended) {
            col_set(&d->col[D_POS], li * P + k, 0);
            col_set(&d->col[D_MLM], li * P + k, 0);
            continue;
        }
        if (pos[k] < 0 || pos[k] >= T) {
            char want[64];
            snprintf(want, sizeof(want), "expected a position in [0, %lld) (data.seq_len)",
                     (long long)T);
            return bad_value(path, dset_names[D_POS], row, k, pos[k], want, err);
        }
        if (ids[k] < 0 || ids[k] >= V)
            return bad_value(path, dset_names[D_MLM], row, k, ids[k], want_id, err);
        col_set(&d->col[D_POS], li * P + k, (int32_t)pos[k]);
        col_set(&d->col[D_MLM], li * P + k, (int32_t)ids[k]);
    }
    return TD_OK;
}

/* Reads the rows of one shard this rank owns (all rows, or with `stride`
 * the global ids g with g % n_ranks == rank) into local samples from *li. */
static td_status load_shard(td_data *d, int64_t *li, const shard_info *sh, int64_t offset,
                            int stride, td_error *err)
{
    const char *path = sh->path;
    const int64_t T = d->T, P = d->P;
    hid_t file = -1;
    hid_t dsets[D_COUNT];
    int64_t *rows[D_COUNT] = {NULL};
    for (int k = 0; k < D_COUNT; k++) dsets[k] = -1;
    td_status st = open_shard(&file, path, err);
    if (st != TD_OK) return st;

    int64_t row_bytes = (int64_t)sizeof(int64_t) * (3 * T + 2 * P + 1);
    int64_t block = TD_DATA_BLOCK_BYTES / row_bytes;
    if (block < 1) block = 1;
    if (block > sh->n_rows) block = sh->n_rows;
    for (int k = 0; k < D_COUNT; k++) {
        if (d->opt.dynamic_masking && (k == D_POS || k == D_MLM)) continue;
        int64_t width = k == D_NSP ? 1 : (k == D_POS || k == D_MLM) ? P : T;
        rows[k] = td_xmalloc((size_t)(block * width) * sizeof(int64_t));
        char what[64];
        snprintf(what, sizeof(what), "dataset %s", dset_names[k]);
        TD_H5(path, what, dsets[k] = H5Dopen2(file, dset_names[k], H5P_DEFAULT));
    }
    for (int64_t r0 = 0; r0 < sh->n_rows; r0 += block) {
        int64_t nr = sh->n_rows - r0 < block ? sh->n_rows - r0 : block;
        for (int k = 0; k < D_COUNT; k++) {
            if (!rows[k]) continue;
            int64_t width = k == D_NSP ? 0 : (k == D_POS || k == D_MLM) ? P : T;
            st = read_rows(rows[k], dsets[k], r0, nr, width, path, dset_names[k], err);
            if (st != TD_OK) goto done;
        }
        for (int64_t rr = 0; rr < nr; rr++) {
            int64_t g = offset + r0 + rr;
            if (stride && g % d->opt.n_ranks != d->opt.rank) continue;
            st = store_row(d, *li, rows, rr, path, r0 + rr, err);
            if (st != TD_OK) goto done;
            d->global_ids[*li] = g;
            (*li)++;
        }
    }
done:
    for (int k = 0; k < D_COUNT; k++) {
        td_h5_close_id(dsets[k], H5Dclose);
        free(rows[k]);
    }
    H5Fclose(file);
    return st;
}

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

static int64_t memory_budget_bytes(void)
{
    const char *s = getenv(TD_DATA_BUDGET_ENV);
    if (s && *s) {
        char *end = NULL;
        long long mb = strtoll(s, &end, 10);
        if (end && *end == '\0' && mb >= 0) return (int64_t)mb << 20;
    }
    return (int64_t)TD_DATA_DEFAULT_BUDGET_MB << 20;
}

td_status td_data_open(td_data **out, const char *glob_pattern, const td_data_options *opt,
                       td_error *err)
{
    *out = NULL;
    td_status st = check_options(opt, err);
    if (st != TD_OK) return st;
    char **paths = NULL;
    int64_t n_files = 0;
    st = expand_glob(&paths, &n_files, glob_pattern, err);
    if (st != TD_OK) return st;

    td_h5_quiet quiet = td_h5_quiet_begin();
    td_data *d = td_xcalloc(1, sizeof(td_data));
    d->opt = *opt;
    d->T = opt->seq_len;
    d->P = opt->max_pred;
    d->V = opt->vocab_size;
    d->perm_epoch = -1;
    shard_info *shards = td_xcalloc((size_t)n_files, sizeof(shard_info));
    const int stride = n_files < opt->n_ranks; /* fewer files than ranks: stride samples */

    /* Pass 1: every file's metadata, owned or not, so all ranks agree on
     * global sample ids and all report a malformed shard the same way. */
    for (int64_t i = 0; i < n_files; i++) {
        shards[i].path = paths[i];
        st = probe_shard(&shards[i].n_rows, paths[i], opt, err);
        if (st != TD_OK) goto done;
    }
    for (int64_t i = 0; i < n_files; i++) {
        int64_t n = shards[i].n_rows;
        if (stride) {
            /* the global ids g in [n_total, n_total + n) with g % n_ranks == rank */
            int64_t skip = (opt->rank - d->n_total % opt->n_ranks + opt->n_ranks) % opt->n_ranks;
            if (skip < n) d->n_local += (n - 1 - skip) / opt->n_ranks + 1;
        } else if (i % opt->n_ranks == opt->rank) {
            d->n_local += n;
        }
        d->n_total += n;
    }
    if (d->n_local == 0) {
        st = td_error_set(err, TD_ERR_FORMAT,
                          "data: rank %d of %d gets no samples from the %lld file(s) matching "
                          "'%s' (%lld samples in all)",
                          opt->rank, opt->n_ranks, (long long)n_files, glob_pattern,
                          (long long)d->n_total);
        goto done;
    }
    if (d->n_local > (int64_t)UINT32_MAX) {
        st = td_error_set(err, TD_ERR_ARG, "data: rank %d would read %lld samples, at most %u "
                          "per rank; use more ranks", opt->rank, (long long)d->n_local, UINT32_MAX);
        goto done;
    }

    d->col[D_IDS].width = width_for(d->V);
    d->col[D_MASK].width = 1;
    d->col[D_SEG].width = 1;
    d->col[D_NSP].width = 1;
    d->col[D_POS].width = width_for(d->T);
    d->col[D_MLM].width = width_for(d->V);
    int64_t sample_bytes = d->T * (d->col[D_IDS].width + 2) + d->col[D_NSP].width +
                           2 * (int64_t)sizeof(int64_t); /* global id + permutation */
    if (!opt->dynamic_masking) sample_bytes += d->P * (d->col[D_POS].width + d->col[D_MLM].width);
    int64_t need = d->n_local * sample_bytes, budget = memory_budget_bytes();
    if (need > budget) {
        st = td_error_set(err, TD_ERR_NOMEM,
                          "data: rank %d of %d would hold %lld samples (%lld MiB) from '%s', over "
                          "the in-memory budget of %lld MiB per rank; use more ranks or raise "
                          "the budget with %s=<MiB>",
                          opt->rank, opt->n_ranks, (long long)d->n_local,
                          (long long)((need + (1 << 20) - 1) >> 20), glob_pattern,
                          (long long)(budget >> 20), TD_DATA_BUDGET_ENV);
        goto done;
    }
    for (int k = 0; k < D_COUNT; k++) {
        if (opt->dynamic_masking && (k == D_POS || k == D_MLM)) continue;
        int64_t width = k == D_NSP ? 1 : (k == D_POS || k == D_MLM) ? d->P : d->T;
        d->col[k].p = malloc((size_t)(d->n_local * width * d->col[k].width));
        if (!d->col[k].p) {
            st = td_error_set(err, TD_ERR_NOMEM,
                              "data: cannot allocate the rank's samples (%lld MiB in all, at %s)",
                              (long long)((need + (1 << 20) - 1) >> 20), dset_names[k]);
            goto done;
        }
    }
    d->global_ids = malloc((size_t)d->n_local * sizeof(int64_t));
    d->perm = malloc((size_t)d->n_local * sizeof(int64_t));
    if (!d->global_ids || !d->perm) {
        st = td_error_set(err, TD_ERR_NOMEM, "data: cannot allocate the sample order");
        goto done;
    }
    d->cand = td_xmalloc((size_t)d->T * sizeof(int32_t));

    /* Pass 2: the rows this rank owns, in file order then row order. */
    int64_t li = 0, offset = 0;
    for (int64_t i = 0; i < n_files; i++) {
        if (stride || i % opt->n_ranks == opt->rank) {
            st = load_shard(d, &li, &shards[i], offset, stride, err);
            if (st != TD_OK) goto done;
        }
        offset += shards[i].n_rows;
    }
    TD_ASSERT(li == d->n_local);

done:
    td_h5_quiet_end(quiet);
    free(shards);
    free_paths(paths, n_files);
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
    for (int k = 0; k < D_COUNT; k++) free(data->col[k].p);
    free(data->global_ids);
    free(data->perm);
    free(data->cand);
    free(data);
}

/* ---- the stream --------------------------------------------------------------- */

/* This epoch's order: Fisher-Yates from the end, the k-th swap drawing
 * counter k of the (seed, epoch, SHUFFLE) stream. */
static void build_perm(td_data *d)
{
    int64_t n = d->n_local;
    uint64_t key = td_rng_key(d->opt.seed, (uint64_t)d->cursor.epoch, 0, TD_SITE_SHUFFLE);
    for (int64_t i = 0; i < n; i++) d->perm[i] = i;
    uint64_t k = 0;
    for (int64_t i = n - 1; i >= 1; i--, k++) {
        int64_t j = td_rng_below(key, k, (uint32_t)(i + 1));
        int64_t tmp = d->perm[i];
        d->perm[i] = d->perm[j];
        d->perm[j] = tmp;
    }
    d->perm_epoch = d->cursor.epoch;
}

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
    const int64_t T = d->T, P = d->P;
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
            ids[t] = (int32_t)td_rng_below(key, (uint64_t)(P + 2 * i + 1), (uint32_t)d->V);
    }
}

static void fill_row(td_data *d, td_batch *batch, int64_t b, int64_t li)
{
    const int64_t T = d->T, P = d->P;
    for (int64_t t = 0; t < T; t++) {
        batch->input_ids[b * T + t] = col_get(&d->col[D_IDS], li * T + t);
        batch->input_mask[b * T + t] = col_get(&d->col[D_MASK], li * T + t);
        batch->segment_ids[b * T + t] = col_get(&d->col[D_SEG], li * T + t);
    }
    batch->nsp_labels[b] = col_get(&d->col[D_NSP], li);
    batch->sample_ids[b] = d->global_ids[li];
    if (d->opt.dynamic_masking) {
        mask_dynamic(d, batch, b, d->global_ids[li]);
        return;
    }
    /* Stored positions after the first 0 are already 0 (store_row). */
    int ended = 0;
    for (int64_t k = 0; k < P; k++) {
        int32_t p = col_get(&d->col[D_POS], li * P + k);
        ended = ended || p == 0;
        batch->mlm_positions[b * P + k] = p;
        batch->mlm_ids[b * P + k] = col_get(&d->col[D_MLM], li * P + k);
        batch->mlm_weights[b * P + k] = ended ? 0.0f : 1.0f;
    }
}

td_status td_data_next(td_data *data, td_batch *batch, td_error *err)
{
    /* Ids were checked against vocab_size when the shards were loaded. */
    if (batch->T != data->T || batch->max_pred != data->P || batch->B < 1)
        return td_error_set(err, TD_ERR_ARG,
                            "data: batch is B=%lld, T=%lld, max_pred=%lld; the reader has "
                            "T=%lld (data.seq_len), max_pred=%lld (data.max_pred)",
                            (long long)batch->B, (long long)batch->T, (long long)batch->max_pred,
                            (long long)data->T, (long long)data->P);
    for (int64_t b = 0; b < batch->B; b++) {
        if (data->perm_epoch != data->cursor.epoch) build_perm(data);
        fill_row(data, batch, b, data->perm[data->cursor.index]);
        if (++data->cursor.index == data->n_local) {
            data->cursor.index = 0;
            data->cursor.epoch++;
        }
    }
    return TD_OK;
}

td_data_cursor td_data_get_cursor(const td_data *data)
{
    return data->cursor;
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
    data->cursor = cursor;
}

int64_t td_data_rank_samples(const td_data *data)
{
    return data->n_local;
}

int64_t td_data_total_samples(const td_data *data)
{
    return data->n_total;
}

/* ---- token counts --------------------------------------------------------------- */

static td_status add_token_counts(int64_t *counts, int64_t *tmp, const char *path,
                                  int64_t vocab_size, td_error *err)
{
    static const char name[] = "token_counts";
    static const char what[] = "dataset token_counts";
    hid_t file = -1, dset = -1, space = -1, type = -1;
    td_status st = open_shard(&file, path, err);
    if (st != TD_OK) return st;
    htri_t exists = H5Lexists(file, name, H5P_DEFAULT);
    if (exists <= 0) {
        st = exists < 0 ? td_h5_fail(err, path, what, "H5Lexists", __FILE__, __LINE__)
                        : td_error_set(err, TD_ERR_FORMAT,
                                       "%s: dataset token_counts missing, expected an integer "
                                       "array [%lld] (model.vocab_size); frequency importance "
                                       "needs shards written by tokdrop-prep",
                                       path, (long long)vocab_size);
        goto done;
    }
    TD_H5(path, what, dset = H5Dopen2(file, name, H5P_DEFAULT));
    TD_H5(path, what, type = H5Dget_type(dset));
    if (H5Tget_class(type) != H5T_INTEGER) {
        st = td_error_set(err, TD_ERR_FORMAT, "%s: dataset token_counts: type %s, expected an "
                          "integer type", path, type_class_name(H5Tget_class(type)));
        goto done;
    }
    TD_H5(path, what, space = H5Dget_space(dset));
    hsize_t dims[2] = {0, 0};
    int rank = H5Sget_simple_extent_ndims(space);
    if (rank == 1) TD_H5(path, what, H5Sget_simple_extent_dims(space, dims, NULL));
    if (rank != 1 || (int64_t)dims[0] != vocab_size) {
        st = td_error_set(err, TD_ERR_FORMAT,
                          "%s: dataset token_counts: rank %d, length %llu, expected [%lld] "
                          "(model.vocab_size)",
                          path, rank, (unsigned long long)dims[0], (long long)vocab_size);
        goto done;
    }
    TD_H5(path, what, H5Dread(dset, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, tmp));
    for (int64_t v = 0; v < vocab_size; v++) {
        if (tmp[v] < 0) {
            st = td_error_set(err, TD_ERR_FORMAT, "%s: dataset token_counts: entry %lld is %lld, "
                              "expected a count >= 0", path, (long long)v, (long long)tmp[v]);
            goto done;
        }
        counts[v] += tmp[v];
    }
done:
    td_h5_close_id(space, H5Sclose);
    td_h5_close_id(type, H5Tclose);
    td_h5_close_id(dset, H5Dclose);
    H5Fclose(file);
    return st;
}

td_status td_data_token_counts(const char *glob_pattern, int64_t vocab_size, int64_t *counts,
                               td_error *err)
{
    if (vocab_size < 1)
        return td_error_set(err, TD_ERR_ARG, "data: vocab_size %lld (model.vocab_size)",
                            (long long)vocab_size);
    char **paths = NULL;
    int64_t n_files = 0;
    td_status st = expand_glob(&paths, &n_files, glob_pattern, err);
    if (st != TD_OK) return st;
    td_h5_quiet quiet = td_h5_quiet_begin();
    int64_t *tmp = td_xmalloc((size_t)vocab_size * sizeof(int64_t));
    memset(counts, 0, (size_t)vocab_size * sizeof(int64_t));
    for (int64_t i = 0; i < n_files && st == TD_OK; i++)
        st = add_token_counts(counts, tmp, paths[i], vocab_size, err);
    free(tmp);
    td_h5_quiet_end(quiet);
    free_paths(paths, n_files);
    return st;
}
