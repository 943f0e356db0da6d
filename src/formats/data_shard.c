/* Shard files (data_shard.h): globbing, probing the datasets of a file,
 * reading the rows a rank owns into narrowed in-memory columns with every
 * value validated, and the token counts that tokdrop-prep stores.
 *
 * Functions here may run on the data reader's background thread: Debian's
 * HDF5 is built thread-safe (H5_HAVE_THREADSAFE), and HDF5's error stack and
 * its automatic printing are per thread, so each public function silences
 * printing for its own thread. */
#include "formats/data_shard.h"

#include <errno.h>
#include <glob.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/h5util.h"
#include "tokdrop/base/hash.h"

#if !defined(H5_HAVE_THREADSAFE)
#error "the data reader loads shards on a background thread: it needs a thread-safe HDF5 build"
#endif

/* Rows are read in blocks of about this many int64 bytes, so the temporary
 * conversion buffers stay small whatever the shard size. */
#define TD_DATA_BLOCK_BYTES ((int64_t)16 << 20)

/* ---- narrow in-memory columns --------------------------------------------- */

static int width_for(int64_t bound) /* values are in [0, bound) */
{
    return bound <= 256 ? 1 : bound <= 65536 ? 2 : 4;
}

static void col_set(td_column *c, int64_t i, int32_t v)
{
    switch (c->width) {
    case 1: ((uint8_t *)c->p)[i] = (uint8_t)v; break;
    case 2: ((uint16_t *)c->p)[i] = (uint16_t)v; break;
    default: ((int32_t *)c->p)[i] = v; break;
    }
}

static bool column_used(int k, const td_shard_layout *l)
{
    return !(l->dynamic_masking && (k == TD_D_POS || k == TD_D_MLM));
}

/* Values per sample in column k, and their width in bytes. */
static int64_t column_len(int k, const td_shard_layout *l)
{
    return k == TD_D_NSP ? 1 : (k == TD_D_POS || k == TD_D_MLM) ? l->P : l->T;
}

static int column_width(int k, const td_shard_layout *l)
{
    switch (k) {
    case TD_D_IDS: case TD_D_MLM: return width_for(l->V);
    case TD_D_POS: return width_for(l->T);
    default: return 1;
    }
}

int64_t td_samples_sample_bytes(const td_shard_layout *l)
{
    int64_t bytes = (int64_t)sizeof(int64_t); /* global id */
    for (int k = 0; k < TD_D_COUNT; k++)
        if (column_used(k, l)) bytes += column_len(k, l) * column_width(k, l);
    return bytes;
}

td_status td_samples_alloc(td_samples *s, int64_t cap, const td_shard_layout *l, td_error *err)
{
    memset(s, 0, sizeof(*s));
    s->cap = cap;
    bool ok = (s->global_ids = malloc((size_t)cap * sizeof(int64_t))) != NULL;
    for (int k = 0; ok && k < TD_D_COUNT; k++) {
        s->col[k].width = column_width(k, l);
        if (column_used(k, l))
            ok = (s->col[k].p = malloc((size_t)(cap * column_len(k, l) * s->col[k].width))) != NULL;
    }
    if (ok) return TD_OK;
    td_samples_free(s);
    return td_error_set(err, TD_ERR_NOMEM, "data: cannot allocate %lld samples (%lld MiB)",
                        (long long)cap,
                        (long long)((cap * td_samples_sample_bytes(l) + (1 << 20) - 1) >> 20));
}

void td_samples_free(td_samples *s)
{
    for (int k = 0; k < TD_D_COUNT; k++) free(s->col[k].p);
    free(s->global_ids);
    memset(s, 0, sizeof(*s));
}

/* ---- glob and file probing ----------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Expands the pattern into a byte-order sorted list (independent of the
 * locale, so all ranks agree on file indices). */
td_status td_shard_glob(char ***paths, int64_t *n_paths, const char *pattern, const char *key,
                        td_error *err)
{
    glob_t g;
    int rc = glob(pattern, 0, NULL, &g);
    if (rc == GLOB_NOMATCH || (rc == 0 && g.gl_pathc == 0)) {
        if (rc == 0) globfree(&g);
        return td_error_set(err, TD_ERR_IO, "data: no file matches '%s' (%s)", pattern, key);
    }
    if (rc != 0)
        return td_error_set(err, TD_ERR_IO, "data: cannot expand '%s' (%s): %s", pattern, key,
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

void td_shard_free_paths(char **paths, int64_t n)
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

/* Reads string attribute name of the root group into out; *found is false
 * when the file has no such attribute. */
static td_status read_attr_str(char *out, size_t n_out, bool *found, hid_t file,
                               const char *path, const char *name, td_error *err)
{
    td_status st = td_h5_attr_exists(found, file, path, name, err);
    if (st != TD_OK || !*found) return st;
    return td_h5_read_attr(out, n_out, -1, file, path, name, err);
}

/* tokdrop-prep's attributes (shard_format.h): a file with `format` must be
 * of this format and version, and made with the run's vocabulary. Files
 * without `format` (NVIDIA's) are not checked. */
static td_status check_attributes(hid_t file, const char *path, const td_shard_layout *l,
                                  td_error *err)
{
    char format[64], hash[64];
    bool found = false;
    td_status st = read_attr_str(format, sizeof(format), &found, file, path,
                                 TD_SHARD_ATTR_FORMAT, err);
    if (st != TD_OK || !found) return st;
    if (strcmp(format, TD_SHARD_FORMAT) != 0)
        return td_error_set(err, TD_ERR_FORMAT, "%s: attribute format is '%s', expected '"
                            TD_SHARD_FORMAT "' (or no format attribute, as in NVIDIA's shards)",
                            path, format);
    int64_t version = 0;
    st = td_h5_attr_exists(&found, file, path, TD_SHARD_ATTR_FORMAT_VERSION, err);
    if (st != TD_OK) return st;
    if (!found)
        return td_error_set(err, TD_ERR_FORMAT, "%s: attribute " TD_SHARD_ATTR_FORMAT_VERSION
                            " missing, expected %d", path, TD_SHARD_FORMAT_VERSION);
    st = td_h5_read_attr(&version, sizeof(version), H5T_NATIVE_INT64, file, path,
                         TD_SHARD_ATTR_FORMAT_VERSION, err);
    if (st != TD_OK) return st;
    if (version != TD_SHARD_FORMAT_VERSION) {
        st = td_error_set(err, TD_ERR_FORMAT,
                          "%s: shard format_version %lld, this tokdrop reads version %d; "
                          "prepare the shards again with this tokdrop's tokdrop-prep",
                          path, (long long)version, TD_SHARD_FORMAT_VERSION);
        goto done;
    }
    if (!l->vocab_path) goto done;
    st = read_attr_str(hash, sizeof(hash), &found, file, path, TD_SHARD_ATTR_VOCAB_HASH, err);
    if (st != TD_OK) goto done;
    char want[TD_HASH_HEX_LEN];
    td_hash_hex(want, l->vocab_hash);
    if (!found) {
        st = td_error_set(err, TD_ERR_FORMAT, "%s: attribute " TD_SHARD_ATTR_VOCAB_HASH
                          " missing, expected %s (the hash of model.vocab %s)", path, want,
                          l->vocab_path);
    } else if (strcmp(hash, want) != 0) {
        st = td_error_set(err, TD_ERR_FORMAT,
                          "%s: made with another vocabulary: its vocab_hash is %s, the hash of "
                          "model.vocab %s is %s; set model.vocab to the vocabulary the shards "
                          "were prepared with, or prepare them again with --vocab %s",
                          path, hash, l->vocab_path, want, l->vocab_path);
    }
done:
    return st;
}

/* Checks the attributes and the datasets of one shard and returns its row
 * count. With dynamic masking the shard's masked_lm_* are not used, so not
 * required. */
td_status td_shard_probe(int64_t *n_rows, const char *path, const td_shard_layout *l,
                         td_error *err)
{
    td_h5_quiet quiet = td_h5_quiet_begin();
    hid_t file = -1;
    td_status st = open_shard(&file, path, err);
    if (st != TD_OK) goto out;
    if ((st = check_attributes(file, path, l, err)) != TD_OK) goto done;
    int64_t n0 = -1;
    for (int d = 0; d < TD_D_COUNT; d++) {
        if (!column_used(d, l)) continue;
        int64_t width = d == TD_D_NSP ? 0 : column_len(d, l);
        const char *key = (d == TD_D_POS || d == TD_D_MLM) ? "data.max_pred" : "data.seq_len";
        int64_t n = 0;
        st = check_dataset(&n, file, path, td_shard_datasets[d].name, width, key, err);
        if (st != TD_OK) goto done;
        if (n0 < 0) {
            n0 = n;
        } else if (n != n0) {
            st = td_error_set(err, TD_ERR_FORMAT,
                              "%s: dataset %s: %lld rows, expected %lld (the rows of %s)", path,
                              td_shard_datasets[d].name, (long long)n, (long long)n0, td_shard_datasets[0].name);
            goto done;
        }
    }
    *n_rows = n0;
done:
    H5Fclose(file);
out:
    td_h5_quiet_end(quiet);
    return st;
}

/* ---- reading -------------------------------------------------------------------- */


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
/* Validates one row (already read as int64 into rows[d] at row offset rr)
 * and stores it as sample i of s. Static masking: the first position 0
 * ends the real predictions; positions/ids after it are stored as 0. */
static td_status store_row(td_samples *s, int64_t i, int64_t *const rows[TD_D_COUNT], int64_t rr,
                           const td_shard_layout *l, const char *path, int64_t row, td_error *err)
{
    const int64_t T = l->T, P = l->P, V = l->V;
    char want_id[64];
    snprintf(want_id, sizeof(want_id), "expected an id in [0, %lld) (model.vocab_size)",
             (long long)V);
    for (int dd = TD_D_IDS; dd <= TD_D_SEG; dd++) {
        const int64_t *src = rows[dd] + rr * T;
        int64_t bound = dd == TD_D_IDS ? V : 2;
        for (int64_t t = 0; t < T; t++) {
            if (src[t] < 0 || src[t] >= bound)
                return bad_value(path, td_shard_datasets[dd].name, row, t, src[t],
                                 dd == TD_D_IDS ? want_id : "expected 0 or 1", err);
            col_set(&s->col[dd], i * T + t, (int32_t)src[t]);
        }
    }
    int64_t nsp = rows[TD_D_NSP][rr];
    if (nsp != 0 && nsp != 1)
        return bad_value(path, td_shard_datasets[TD_D_NSP].name, row, -1, nsp, "expected 0 or 1", err);
    col_set(&s->col[TD_D_NSP], i, (int32_t)nsp);
    if (l->dynamic_masking) return TD_OK;

    const int64_t *pos = rows[TD_D_POS] + rr * P, *ids = rows[TD_D_MLM] + rr * P;
    int ended = 0;
    for (int64_t k = 0; k < P; k++) {
        ended = ended || pos[k] == 0;
        if (ended) {
            col_set(&s->col[TD_D_POS], i * P + k, 0);
            col_set(&s->col[TD_D_MLM], i * P + k, 0);
            continue;
        }
        if (pos[k] < 0 || pos[k] >= T) {
            char want[64];
            snprintf(want, sizeof(want), "expected a position in [0, %lld) (data.seq_len)",
                     (long long)T);
            return bad_value(path, td_shard_datasets[TD_D_POS].name, row, k, pos[k], want, err);
        }
        if (ids[k] < 0 || ids[k] >= V)
            return bad_value(path, td_shard_datasets[TD_D_MLM].name, row, k, ids[k], want_id, err);
        col_set(&s->col[TD_D_POS], i * P + k, (int32_t)pos[k]);
        col_set(&s->col[TD_D_MLM], i * P + k, (int32_t)ids[k]);
    }
    return TD_OK;
}

td_status td_shard_read(td_samples *s, const td_shard *sh, int64_t j0, int64_t j1,
                        const td_shard_layout *l, td_error *err)
{
    TD_ASSERT(j0 >= 0 && j0 <= j1 && j1 <= sh->n_owned && s->n + (j1 - j0) <= s->cap);
    if (j0 == j1) return TD_OK;
    const char *path = sh->path;
    /* the file rows to read: from the first owned row wanted to the last,
     * keeping every stride-th */
    const int64_t row0 = sh->first + j0 * sh->stride, row_end = sh->first + (j1 - 1) * sh->stride + 1;
    td_h5_quiet quiet = td_h5_quiet_begin();
    hid_t file = -1;
    hid_t dsets[TD_D_COUNT];
    int64_t *rows[TD_D_COUNT] = {NULL};
    for (int k = 0; k < TD_D_COUNT; k++) dsets[k] = -1;
    td_status st = open_shard(&file, path, err);
    if (st != TD_OK) goto out;

    int64_t row_bytes = (int64_t)sizeof(int64_t) * (3 * l->T + 2 * l->P + 1);
    int64_t block = TD_DATA_BLOCK_BYTES / row_bytes;
    if (block < 1) block = 1;
    if (block > row_end - row0) block = row_end - row0;
    for (int k = 0; k < TD_D_COUNT; k++) {
        if (!column_used(k, l)) continue;
        rows[k] = td_xmalloc((size_t)(block * column_len(k, l)) * sizeof(int64_t));
        char what[64];
        snprintf(what, sizeof(what), "dataset %s", td_shard_datasets[k].name);
        TD_H5(path, what, dsets[k] = H5Dopen2(file, td_shard_datasets[k].name, H5P_DEFAULT));
    }
    for (int64_t r0 = row0; r0 < row_end; r0 += block) {
        int64_t nr = row_end - r0 < block ? row_end - r0 : block;
        for (int k = 0; k < TD_D_COUNT; k++) {
            if (!rows[k]) continue;
            int64_t width = k == TD_D_NSP ? 0 : column_len(k, l);
            st = read_rows(rows[k], dsets[k], r0, nr, width, path, td_shard_datasets[k].name, err);
            if (st != TD_OK) goto done;
        }
        for (int64_t rr = 0; rr < nr; rr++) {
            int64_t row = r0 + rr;
            if ((row - sh->first) % sh->stride != 0) continue;
            st = store_row(s, s->n, rows, rr, l, path, row, err);
            if (st != TD_OK) goto done;
            s->global_ids[s->n++] = sh->offset + row;
        }
    }
done:
    for (int k = 0; k < TD_D_COUNT; k++) {
        td_h5_close_id(dsets[k], H5Dclose);
        free(rows[k]);
    }
    H5Fclose(file);
out:
    td_h5_quiet_end(quiet);
    return st;
}

/* ---- token counts --------------------------------------------------------------- */

static td_status add_token_counts(int64_t *counts, int64_t *tmp, const char *path,
                                  int64_t vocab_size, td_error *err)
{
    const char *name = td_shard_datasets[TD_SHARD_TOKEN_COUNTS].name;
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
    td_status st = td_shard_glob(&paths, &n_files, glob_pattern, "data.train", err);
    if (st != TD_OK) return st;
    td_h5_quiet quiet = td_h5_quiet_begin();
    int64_t *tmp = td_xmalloc((size_t)vocab_size * sizeof(int64_t));
    memset(counts, 0, (size_t)vocab_size * sizeof(int64_t));
    for (int64_t i = 0; i < n_files && st == TD_OK; i++)
        st = add_token_counts(counts, tmp, paths[i], vocab_size, err);
    free(tmp);
    td_h5_quiet_end(quiet);
    td_shard_free_paths(paths, n_files);
    return st;
}
