/* Checkpoints (SPEC section 6): writing one HDF5 file per checkpoint safely,
 * finding the newest valid one, and reading it back bit-exactly.
 *
 * File layout (every number little-endian):
 *   attributes of /
 *     format          fixed-length string  "tokdrop-checkpoint"
 *     format_version  int32                2 (1 is still read)
 *     step            int64                optimizer updates applied
 *     seed            uint64               the run's RNG seed
 *     n_ranks         int32                ranks whose cursors are stored
 *     checksum        fixed-length string  16 lower-case hex digits (below)
 *   datasets
 *     config          scalar fixed-length string: the resolved config YAML
 *     data_cursors    int64 (n_ranks, 3): each rank's (epoch, index, window);
 *                     files written before the streaming reader hold
 *                     (n_ranks, 2), read as window 0 (data.h)
 *     importance      float32 (V); absent when the run keeps no table
 *     param/<name>    float32, the tensor's shape; <name> is the HF name
 *     optim/m/<name>  float32, LAMB first moment, same shape
 *     optim/v/<name>  float32, LAMB second moment, same shape
 *
 * Checksum: the project's hash (hash.h, XXH3-64) of a byte stream: 8-byte
 * little-endian words of format_version, step, seed and n_ranks, then
 * every dataset in the order config, data_cursors, importance, the groups
 * param, optim/m, optim/v (names within a group in strcmp order, so that it
 * is computable from the file alone, without a tensor table): its full name
 * with the NUL, a kind tag, ndim, dims and byte count as 8-byte words, then
 * its raw bytes (for config the text without the NUL). Format version 1
 * hashed the same stream with a multiply-rotate hash of its own (legacy_step
 * below); version 1 files are still verified with it, so that runs resume
 * from checkpoints written before version 2. Verifying reads the whole file: a
 * checkpoint is read a handful of times per run, and one checked in part is
 * not worth resuming from. Files are written in the HDF5 1.8 object formats,
 * whose metadata carries checksums of its own.
 *
 * Writing: HDF5 builds the file in memory (h5util.h), which then goes to
 * DIR/.ckpt-<step>.h5.tmp, is fsynced and renamed to DIR/ckpt-<step>.h5
 * before the directory is fsynced (fs.h), so a crash at any point leaves
 * either the old set of checkpoints or the new one, and a failed write (a
 * full disk) removes the temporary file and leaves the old set as it was. */
#include "tokdrop/train/ckpt.h"

#include <errno.h>
#include <hdf5.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "formats/h5util.h"
#include "tokdrop/base/hash.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ckpt.c hashes values in memory order; the checksum is defined over little-endian bytes"
#endif

#define CKPT_FORMAT "tokdrop-checkpoint"
#define CKPT_VERSION 2 /* 2: XXH3-64 checksum; 1: legacy_step's */
/* "optim/m/" + a tensor name; longer names in a file cannot be ours */
#define CKPT_DSET_NAME_LEN (TD_TENSOR_NAME_LEN + 16)
/* Datasets that the caller does not want (checksum only) are read through a
 * scratch buffer of about this size. */
#define CKPT_BLOCK_BYTES ((size_t)8 << 20)
/* More ranks than this in a file means a damaged attribute, not a cluster. */
#define CKPT_MAX_RANKS (1 << 24)

enum { KIND_F32 = 1, KIND_I64 = 2, KIND_STR = 3 };

static const char *const group_names[3] = {"param", "optim/m", "optim/v"};

/* ---- checksum ---------------------------------------------------------------- */

typedef struct {
    td_hash_state *x; /* format version >= 2; NULL: version 1's hash below */
    uint64_t h, n_bytes;
    unsigned char tail[8];
    size_t n_tail;
} ckpt_hash;

static void hash_init(ckpt_hash *s, int64_t version)
{
    s->x = version >= 2 ? td_hash_state_new() : NULL;
    s->h = 0x746f6b64726f7031ULL; /* "tokdrop1" */
    s->n_bytes = 0;
    s->n_tail = 0;
}

static void hash_free(ckpt_hash *s)
{
    td_hash_state_free(s->x);
    s->x = NULL;
}

/* Version 1's hash, kept only to verify version 1 files: each step is a
 * bijection of the state for a fixed 8-byte word and of the word for a
 * fixed state. */
static inline uint64_t legacy_step(uint64_t h, uint64_t w)
{
    h ^= w * 0x9e3779b97f4a7c15ULL;
    h = (h << 31) | (h >> 33);
    return h * 0xc2b2ae3d27d4eb4fULL;
}

static void hash_update(ckpt_hash *s, const void *data, size_t n)
{
    if (s->x) {
        td_hash_update(s->x, data, n);
        return;
    }
    const unsigned char *p = data;
    s->n_bytes += n;
    if (s->n_tail > 0) {
        size_t take = 8 - s->n_tail < n ? 8 - s->n_tail : n;
        memcpy(s->tail + s->n_tail, p, take);
        s->n_tail += take;
        p += take;
        n -= take;
        if (s->n_tail < 8) return;
        uint64_t w;
        memcpy(&w, s->tail, 8);
        s->h = legacy_step(s->h, w);
        s->n_tail = 0;
    }
    uint64_t h = s->h;
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = legacy_step(h, w);
    }
    s->h = h;
    memcpy(s->tail, p, n);
    s->n_tail = n;
}

static void hash_u64(ckpt_hash *s, uint64_t v)
{
    hash_update(s, &v, sizeof(v));
}

static uint64_t hash_finish(const ckpt_hash *s)
{
    if (s->x) return td_hash_digest(s->x);
    uint64_t h = s->h;
    if (s->n_tail > 0) {
        unsigned char last[8] = {0};
        memcpy(last, s->tail, s->n_tail);
        uint64_t w;
        memcpy(&w, last, 8);
        h = legacy_step(h, w);
    }
    h = legacy_step(h, s->n_bytes);
    /* MurmurHash3's finalizer: spreads every input bit over the output */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 33);
}

static void hash_header(ckpt_hash *s, int64_t version, int64_t step, uint64_t seed, int64_t n_ranks)
{
    hash_u64(s, (uint64_t)version);
    hash_u64(s, (uint64_t)step);
    hash_u64(s, seed);
    hash_u64(s, (uint64_t)n_ranks);
}

static void hash_dataset_head(ckpt_hash *s, const char *name, int kind, int ndim,
                              const hsize_t *dims, uint64_t n_bytes)
{
    hash_update(s, name, strlen(name) + 1);
    hash_u64(s, (uint64_t)kind);
    hash_u64(s, (uint64_t)ndim);
    for (int d = 0; d < ndim; d++) hash_u64(s, (uint64_t)dims[d]);
    hash_u64(s, n_bytes);
}

/* ---- HDF5 file access ------------------------------------------------------- */

/* File access. Closing the file closes anything we left open. No file
 * locks: they fail on cluster filesystems mounted without flock (Lustre,
 * some NFS), and only rank 0 writes while nobody reads. For writing, every
 * byte of the file is made to matter: the 1.8 object formats checksum all
 * metadata (damage there is reported by HDF5 rather than parsed; HDF5 >=
 * 1.8 reads them), and without metadata block aggregation there are no
 * unused bytes in which damage would go unnoticed (tests/test_ckpt.c flips
 * bytes across a whole file and sees every one rejected). */
static hid_t make_fapl(bool for_writing)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return fapl;
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
#if H5_VERSION_GE(1, 12, 1) || (H5_VERS_MAJOR == 1 && H5_VERS_MINOR == 10 && H5_VERS_RELEASE >= 7)
    H5Pset_file_locking(fapl, 0, 1);
#endif
    if (for_writing) {
#if H5_VERSION_GE(1, 10, 2)
        H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18);
#else
        H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
#endif
        H5Pset_meta_block_size(fapl, 0);
        H5Pset_small_data_block_size(fapl, 0);
    }
    return fapl;
}

static void fmt_shape(char *buf, size_t len, int ndim, const hsize_t *dims)
{
    if (ndim == 1)
        snprintf(buf, len, "[%llu]", (unsigned long long)dims[0]);
    else
        snprintf(buf, len, "[%llu, %llu]", (unsigned long long)dims[0],
                 (unsigned long long)dims[1]);
}

/* ---- directory listing ------------------------------------------------------ */

/* "ckpt-<digits>.h5" exactly; anything else in the directory (the .tmp
 * files of interrupted writes, the user's notes) is not ours to read. */
static bool parse_ckpt_name(const char *name, int64_t *step)
{
    if (strncmp(name, "ckpt-", 5) != 0) return false;
    const char *p = name + 5;
    int64_t v = 0;
    int n_digits = 0;
    for (; *p >= '0' && *p <= '9'; p++, n_digits++) {
        if (n_digits >= 18) return false;
        v = v * 10 + (*p - '0');
    }
    if (n_digits == 0 || strcmp(p, ".h5") != 0) return false;
    *step = v;
    return true;
}

typedef struct {
    int64_t step;
    char *name;
} ckpt_entry;

/* Newest first; equal steps (ckpt-5.h5 next to ckpt-00000005.h5) by name. */
static int cmp_entry_desc(const void *a, const void *b)
{
    const ckpt_entry *x = a, *y = b;
    if (x->step != y->step) return x->step < y->step ? 1 : -1;
    return -strcmp(x->name, y->name);
}

static void free_entries(ckpt_entry *e, int64_t n)
{
    for (int64_t i = 0; i < n; i++) free(e[i].name);
    free(e);
}

/* The checkpoints in dir, newest first; *missing when dir does not exist. */
static td_status list_ckpts(ckpt_entry **out, int64_t *n_out, bool *missing, const char *dir,
                            td_error *err)
{
    *out = NULL;
    *n_out = 0;
    char **names;
    int64_t n_names;
    td_status st = td_fs_list(dir, &names, &n_names, missing, err);
    if (st != TD_OK || *missing) return st; /* nothing listed, nothing to free */
    ckpt_entry *e = td_xcalloc((size_t)n_names + 1, sizeof(*e));
    int64_t n = 0;
    for (int64_t i = 0; i < n_names; i++) {
        if (!parse_ckpt_name(names[i], &e[n].step)) continue;
        e[n++].name = names[i];
        names[i] = NULL;
    }
    td_fs_list_free(names, n_names);
    if (n > 1) qsort(e, (size_t)n, sizeof(*e), cmp_entry_desc);
    *out = e;
    *n_out = n;
    return TD_OK;
}

/* ---- writing ----------------------------------------------------------------- */

typedef struct {
    td_h5_writer h5;
    ckpt_hash hash;
} ckpt_writer;

/* Writes one dataset (KIND_STR: data is a C string stored as a scalar) and
 * adds it to the checksum. */
static void w_dataset(ckpt_writer *w, const char *name, int kind, int ndim, const hsize_t *dims,
                      const void *data)
{
    uint64_t n_bytes;
    if (kind == KIND_STR) {
        n_bytes = strlen(data);
        ndim = 0;
        td_h5_write_str_dataset(&w->h5, name, data);
    } else {
        uint64_t n_elems = 1;
        for (int d = 0; d < ndim; d++) n_elems *= (uint64_t)dims[d];
        n_bytes = n_elems * (kind == KIND_F32 ? 4 : 8);
        td_h5_write_dataset(&w->h5, name, kind == KIND_F32 ? H5T_IEEE_F32LE : H5T_STD_I64LE,
                            kind == KIND_F32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_INT64, ndim, dims,
                            data);
    }
    if (w->h5.st != TD_OK) return;
    hash_dataset_head(&w->hash, name, kind, ndim, dims, n_bytes);
    hash_update(&w->hash, data, (size_t)n_bytes);
}

/* Links stay in the group's object header however many there are: that
 * header is checksummed, whereas dense storage keeps link names in a
 * fractal heap whose blocks are not, and HDF5 1.10 crashes (invalid free)
 * on some flipped bits there instead of reporting them. */
static void w_group(ckpt_writer *w, const char *name)
{
    if (w->h5.st != TD_OK) return;
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    if (gcpl < 0 || H5Pset_link_phase_change(gcpl, 65535, 65535) < 0)
        w->h5.st = td_h5_fail(w->h5.err, w->h5.path, name, "H5Pcreate/H5Pset_link_phase_change",
                              __FILE__, __LINE__);
    else
        td_h5_write_group(&w->h5, name, gcpl);
    td_h5_close_id(gcpl, H5Pclose);
}

static int cmp_tensor_name(const void *a, const void *b)
{
    const td_tensor_info *x = *(const td_tensor_info *const *)a;
    const td_tensor_info *y = *(const td_tensor_info *const *)b;
    return strcmp(x->name, y->name);
}

/* Writes the whole file at path atomically (fs.h); the datasets go in
 * checksum order so that hashing follows writing. HDF5 printing must be off. */
static td_status write_file(const char *path, const td_ckpt *c, const td_tensor_info *const *sorted,
                            td_error *err)
{
    ckpt_writer w;
    hid_t fapl = make_fapl(true);
    if (fapl < 0) return td_h5_fail(err, path, "file", "H5Pcreate", __FILE__, __LINE__);
    td_h5_writer_create(&w.h5, path, fapl, err);
    H5Pclose(fapl);

    const int32_t version = CKPT_VERSION, n_ranks = c->n_ranks;
    hash_init(&w.hash, version);
    hash_header(&w.hash, version, c->step, c->seed, n_ranks);
    td_h5_write_attr_str(&w.h5, "format", CKPT_FORMAT);
    td_h5_write_attr_num(&w.h5, "format_version", H5T_STD_I32LE, H5T_NATIVE_INT32, &version);
    td_h5_write_attr_num(&w.h5, "step", H5T_STD_I64LE, H5T_NATIVE_INT64, &c->step);
    td_h5_write_attr_num(&w.h5, "seed", H5T_STD_U64LE, H5T_NATIVE_UINT64, &c->seed);
    td_h5_write_attr_num(&w.h5, "n_ranks", H5T_STD_I32LE, H5T_NATIVE_INT32, &n_ranks);

    w_dataset(&w, "config", KIND_STR, 0, NULL, c->config_yaml ? c->config_yaml : "");
    int64_t *cursors = td_xmalloc((size_t)c->n_ranks * 3 * sizeof(int64_t)); /* (n_ranks, 3) */
    for (int r = 0; r < c->n_ranks; r++) {
        cursors[3 * r] = c->cursors[r].epoch;
        cursors[3 * r + 1] = c->cursors[r].index;
        cursors[3 * r + 2] = c->cursors[r].window;
    }
    hsize_t dc[2] = {(hsize_t)c->n_ranks, 3};
    w_dataset(&w, "data_cursors", KIND_I64, 2, dc, cursors);
    free(cursors);
    if (c->V > 0) {
        hsize_t dv[1] = {(hsize_t)c->V};
        w_dataset(&w, "importance", KIND_F32, 1, dv, c->importance);
    }
    w_group(&w, "param");
    w_group(&w, "optim");
    w_group(&w, "optim/m");
    w_group(&w, "optim/v");
    const float *bases[3] = {c->params, c->m, c->v};
    for (int g = 0; g < 3; g++) {
        for (int i = 0; i < c->n_tensors; i++) {
            const td_tensor_info *t = sorted[i];
            char name[CKPT_DSET_NAME_LEN];
            snprintf(name, sizeof(name), "%s/%s", group_names[g], t->name);
            hsize_t dims[2] = {(hsize_t)t->shape[0], t->ndim == 2 ? (hsize_t)t->shape[1] : 0};
            w_dataset(&w, name, KIND_F32, t->ndim, dims, bases[g] + t->offset);
        }
    }
    char hex[17];
    snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)hash_finish(&w.hash));
    hash_free(&w.hash);
    td_h5_write_attr_str(&w.h5, "checksum", hex);
    return td_h5_writer_close(&w.h5);
}

/* Leftovers of writes that were killed (.ckpt-<step>.h5.tmp): only rank 0
 * writes, and only one checkpoint at a time, so once a write has finished
 * any such file in dir is stale; one of a step that is never written again
 * (a stop checkpoint) would otherwise stay for good. */
static void remove_stale_tmp(const char *dir)
{
    char **names;
    int64_t n_names;
    bool missing;
    if (td_fs_list(dir, &names, &n_names, &missing, NULL) != TD_OK) return;
    for (int64_t i = 0; i < n_names; i++) {
        int64_t step;
        size_t n = strlen(names[i]);
        if (names[i][0] != '.' || n < 5 || strcmp(names[i] + n - 4, ".tmp") != 0) continue;
        names[i][n - 4] = '\0';
        if (!parse_ckpt_name(names[i] + 1, &step)) continue;
        names[i][n - 4] = '.';
        char *p = td_fs_join_alloc(dir, names[i]);
        unlink(p);
        free(p);
    }
    td_fs_list_free(names, n_names);
}

/* Removes all but the newest `keep` checkpoints, the one just written always
 * among them. Files with a larger step than it are from a timeline that was
 * abandoned (resume skipped them as corrupt): left in place, the next resume
 * would prefer them over what this run has written since. */
static td_status prune(const char *dir, const char *written, int64_t written_step, int keep,
                       td_error *err)
{
    ckpt_entry *e;
    int64_t n;
    bool missing;
    td_status st = list_ckpts(&e, &n, &missing, dir, err);
    if (st != TD_OK) return st;
    int kept = 1; /* the one just written */
    for (int64_t i = 0; i < n && st == TD_OK; i++) {
        if (strcmp(e[i].name, written) == 0) continue;
        if (e[i].step <= written_step && kept < keep) {
            kept++;
            continue;
        }
        char *p = td_fs_join_alloc(dir, e[i].name);
        if (unlink(p) != 0 && errno != ENOENT)
            st = td_error_set(err, TD_ERR_IO,
                              "%s: cannot remove an old checkpoint (the new one is written): %s", p,
                              strerror(errno));
        free(p);
    }
    free_entries(e, n);
    return st;
}

/* Argument checks shared by the writers; on success *sorted_out is the
 * table sorted by name (the order of the datasets), which the caller frees. */
static td_status check_for_writing(const td_ckpt *ckpt, const td_tensor_info ***sorted_out,
                                   td_error *err)
{
    if (ckpt->step < 0)
        return td_error_set(err, TD_ERR_ARG, "td_ckpt_write: step is %lld, expected >= 0",
                            (long long)ckpt->step);
    if (ckpt->n_ranks < 1 || !ckpt->cursors)
        return td_error_set(err, TD_ERR_ARG, "td_ckpt_write: %d ranks, expected >= 1 with cursors",
                            ckpt->n_ranks);
    if (ckpt->V < 0 || (ckpt->V > 0 && !ckpt->importance))
        return td_error_set(err, TD_ERR_ARG, "td_ckpt_write: V is %lld without an importance table",
                            (long long)ckpt->V);
    if (ckpt->n_tensors < 0 ||
        (ckpt->n_tensors > 0 && (!ckpt->tensors || !ckpt->params || !ckpt->m || !ckpt->v)))
        return td_error_set(err, TD_ERR_ARG,
                            "td_ckpt_write: the tensor table, params, m and v are all required");

    /* The table is built by the model; a bad one is a bug, not input. */
    const td_tensor_info **sorted = td_xmalloc((size_t)(ckpt->n_tensors + 1) * sizeof(*sorted));
    for (int i = 0; i < ckpt->n_tensors; i++) {
        const td_tensor_info *t = &ckpt->tensors[i];
        TD_ASSERT(t->name[0] != '\0' && strchr(t->name, '/') == NULL);
        TD_ASSERT(t->ndim == 1 || t->ndim == 2);
        TD_ASSERT(t->n_elems == t->shape[0] * (t->ndim == 2 ? t->shape[1] : 1));
        TD_ASSERT(t->offset >= 0 && t->offset + t->n_elems <= ckpt->n_params);
        sorted[i] = t;
    }
    qsort(sorted, (size_t)ckpt->n_tensors, sizeof(*sorted), cmp_tensor_name);
    for (int i = 1; i < ckpt->n_tensors; i++)
        TD_ASSERT(strcmp(sorted[i - 1]->name, sorted[i]->name) != 0);
    *sorted_out = sorted;
    return TD_OK;
}

/* write_file with HDF5's printing off. */
static td_status write_quietly(const char *path, const td_ckpt *c,
                               const td_tensor_info *const *sorted, td_error *err)
{
    td_h5_quiet q = td_h5_quiet_begin();
    td_status st = write_file(path, c, sorted, err);
    td_h5_quiet_end(q);
    return st;
}

static void ckpt_name(char *out, size_t len, int64_t step)
{
    snprintf(out, len, "ckpt-%08lld.h5", (long long)step);
}

td_status td_ckpt_prune(const char *dir, int64_t step, int keep, td_error *err)
{
    if (keep < 1) return td_error_set(err, TD_ERR_ARG, "td_ckpt_prune: keep is %d, expected >= 1", keep);
    char name[64];
    ckpt_name(name, sizeof(name), step);
    return prune(dir, name, step, keep, err);
}

td_status td_ckpt_set_aside(const char *dir, int64_t step, const char *suffix, char *out, size_t out_len,
                            td_error *err)
{
    if (out_len > 0) out[0] = '\0';
    char name[64];
    ckpt_name(name, sizeof(name), step);
    char *from = td_fs_join_alloc(dir, name);
    size_t n = strlen(from) + strlen(suffix) + 1;
    char *to = td_xmalloc(n);
    snprintf(to, n, "%s%s", from, suffix);
    td_status st = TD_OK;
    if (rename(from, to) == 0)
        snprintf(out, out_len, "%s", to);
    else if (errno != ENOENT)
        st = td_error_set(err, TD_ERR_IO, "%s: cannot rename it to %s: %s", from, to, strerror(errno));
    free(from);
    free(to);
    return st;
}

/* Adds to the message of a failed write what it left: the checkpoints
 * already in dir, untouched (prune runs only after a successful write). */
static void note_untouched(const char *dir, td_error *err)
{
    ckpt_entry *e;
    int64_t n;
    bool missing;
    if (!err || list_ckpts(&e, &n, &missing, dir, NULL) != TD_OK) return;
    char msg[TD_ERROR_MSG_LEN];
    snprintf(msg, sizeof(msg), "%s", err->msg);
    if (n > 0)
        td_error_set(err, err->status, "%s; the checkpoints written before are intact, the newest is %s/%s",
                     msg, dir, e[0].name);
    else
        td_error_set(err, err->status, "%s; no checkpoint was written before this one", msg);
    free_entries(e, n);
}

td_status td_ckpt_write(const char *dir, const td_ckpt *ckpt, int keep, td_error *err)
{
    if (!dir || !dir[0] || !ckpt)
        return td_error_set(err, TD_ERR_ARG, "td_ckpt_write: no directory or no checkpoint");
    if (keep < 1)
        return td_error_set(err, TD_ERR_ARG, "td_ckpt_write: keep is %d, expected >= 1", keep);
    const td_tensor_info **sorted;
    td_status st = check_for_writing(ckpt, &sorted, err);
    if (st != TD_OK) return st;

    char final_name[64];
    ckpt_name(final_name, sizeof(final_name), ckpt->step);
    char *final = td_fs_join_alloc(dir, final_name);
    st = td_fs_mkdir_p(dir, NULL, NULL, err);
    if (st == TD_OK) {
        st = write_quietly(final, ckpt, sorted, err);
        if (st != TD_OK) note_untouched(dir, err);
    }
    if (st == TD_OK) st = prune(dir, final_name, ckpt->step, keep, err);
    if (st == TD_OK) remove_stale_tmp(dir);
    free(final);
    free(sorted);
    return st;
}

td_status td_ckpt_write_file(const char *path, const td_ckpt *ckpt, td_error *err)
{
    if (!path || !path[0] || !ckpt)
        return td_error_set(err, TD_ERR_ARG, "td_ckpt_write_file: no path or no checkpoint");
    const td_tensor_info **sorted;
    td_status st = check_for_writing(ckpt, &sorted, err);
    if (st != TD_OK) return st;
    st = write_quietly(path, ckpt, sorted, err);
    free(sorted);
    return st;
}

/* ---- reading and verifying --------------------------------------------------- */

typedef struct {
    const char *path;
    hid_t file;
    uint64_t file_bytes; /* bounds what any dataset may claim to hold */
    ckpt_hash hash;
    void *scratch;
    size_t scratch_bytes;
    /* The first content mismatch (shape, V, missing tensor): reported only
     * once the checksum holds, since damage could explain it too. */
    td_status mismatch_st;
    td_error mismatch;
} ckpt_reader;

static void r_mismatch(ckpt_reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void r_mismatch(ckpt_reader *r, const char *fmt, ...)
{
    if (r->mismatch_st != TD_OK) return;
    char body[TD_ERROR_MSG_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    r->mismatch_st = td_error_set(&r->mismatch, TD_ERR_FORMAT, "%s: %s", r->path, body);
}

static td_status r_open(ckpt_reader *r, td_error *err)
{
    struct stat sb;
    if (stat(r->path, &sb) != 0)
        return td_error_set(err, TD_ERR_IO, "%s: cannot read: %s", r->path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return td_error_set(err, TD_ERR_IO, "%s: not a regular file", r->path);
    if (access(r->path, R_OK) != 0)
        return td_error_set(err, TD_ERR_IO, "%s: cannot read: %s", r->path, strerror(errno));
    r->file_bytes = (uint64_t)sb.st_size;
    htri_t is = H5Fis_hdf5(r->path);
    if (is == 0) return td_error_set(err, TD_ERR_FORMAT, "%s: not an HDF5 file", r->path);
    if (is < 0) return td_h5_fail(err, r->path, "file", "H5Fis_hdf5", __FILE__, __LINE__);
    hid_t fapl = make_fapl(false);
    if (fapl < 0) return td_h5_fail(err, r->path, "file", "H5Pcreate", __FILE__, __LINE__);
    r->file = H5Fopen(r->path, H5F_ACC_RDONLY, fapl);
    td_h5_why w = td_h5_get_why(); /* before the next call clears the stack */
    H5Pclose(fapl);
    if (r->file < 0) {
        if (w.truncated)
            return td_error_set(err, TD_ERR_FORMAT, "%s: truncated (HDF5: %s)", r->path, w.desc);
        return td_error_set(err, TD_ERR_IO, "%s: cannot open as HDF5: %s", r->path, w.desc);
    }
    return TD_OK;
}

/* A scalar attribute of the root (h5util.h). */
static td_status r_attr(void *out, size_t out_len, hid_t mem_type, ckpt_reader *r, const char *name,
                        td_error *err)
{
    return td_h5_read_attr(out, out_len, mem_type, r->file, r->path, name, err);
}

/* The config text (malloc'd into *out), added to the checksum. */
static td_status r_config(char **out, ckpt_reader *r, td_error *err)
{
    td_status st = td_h5_read_str_dataset(out, r->file, r->path, "config", r->file_bytes, err);
    if (st != TD_OK) return st;
    size_t len = strlen(*out);
    hash_dataset_head(&r->hash, "config", KIND_STR, 0, NULL, len);
    hash_update(&r->hash, *out, len);
    return TD_OK;
}

/* Opens a numeric dataset of loc and checks its type (float32 or int64), its
 * rank (1 or 2) and that the file can hold what its dims claim. */
static td_status r_dataset_open(hid_t *ds, int *ndim, hsize_t dims[2], ckpt_reader *r, hid_t loc,
                                const char *local_name, const char *full_name, int kind,
                                td_error *err)
{
    td_status st = TD_OK;
    hid_t type = -1, space = -1;
    char what[CKPT_DSET_NAME_LEN + 16];
    snprintf(what, sizeof(what), "dataset %s", full_name);
    TD_H5(r->path, what, *ds = H5Dopen2(loc, local_name, H5P_DEFAULT));
    TD_H5(r->path, what, type = H5Dget_type(*ds));
    TD_H5(r->path, what, space = H5Dget_space(*ds));
    const bool type_ok = kind == KIND_F32
                             ? H5Tget_class(type) == H5T_FLOAT && H5Tget_size(type) == 4
                             : H5Tget_class(type) == H5T_INTEGER && H5Tget_size(type) == 8 &&
                                   H5Tget_sign(type) == H5T_SGN_2;
    if (!type_ok) {
        st = td_error_set(err, TD_ERR_FORMAT, "%s: dataset %s is not %s", r->path, full_name,
                          kind == KIND_F32 ? "float32" : "int64");
        goto done;
    }
    *ndim = H5Sget_simple_extent_ndims(space);
    if (*ndim < 1 || *ndim > 2) {
        st = td_error_set(err, TD_ERR_FORMAT, "%s: dataset %s has %d dimensions, expected 1 or 2",
                          r->path, full_name, *ndim);
        goto done;
    }
    dims[1] = 1;
    TD_H5(r->path, what, H5Sget_simple_extent_dims(space, dims, NULL));
    if (*ndim == 1) dims[1] = 1;
    const uint64_t max_elems = r->file_bytes / (kind == KIND_F32 ? 4 : 8);
    if (dims[0] > max_elems || dims[1] > max_elems ||
        (dims[1] > 0 && dims[0] > max_elems / dims[1])) {
        st = td_error_set(err, TD_ERR_FORMAT,
                          "%s: dataset %s claims more elements than the file holds", r->path,
                          full_name);
        goto done;
    }
done:
    if (st != TD_OK && *ds >= 0) {
        H5Dclose(*ds);
        *ds = -1;
    }
    td_h5_close_id(space, H5Sclose);
    td_h5_close_id(type, H5Tclose);
    return st;
}

/* Reads a dataset opened by r_dataset_open into dest, or through the
 * scratch buffer when dest is NULL, and adds it to the checksum. */
static td_status r_dataset_read(ckpt_reader *r, hid_t ds, const char *full_name, int kind, int ndim,
                                const hsize_t dims[2], void *dest, td_error *err)
{
    td_status st = TD_OK;
    hid_t fspace = -1, mspace = -1;
    char what[CKPT_DSET_NAME_LEN + 16];
    snprintf(what, sizeof(what), "dataset %s", full_name);
    const size_t esize = kind == KIND_F32 ? 4 : 8;
    const hid_t mem_type = kind == KIND_F32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_INT64;
    const uint64_t row = ndim == 2 ? dims[1] : 1, n_elems = dims[0] * row;
    hash_dataset_head(&r->hash, full_name, kind, ndim, dims, n_elems * esize);
    if (n_elems == 0) return TD_OK;
    if (dest) {
        TD_H5(r->path, what, H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, dest));
        hash_update(&r->hash, dest, (size_t)(n_elems * esize));
        return TD_OK;
    }
    uint64_t rows_per = CKPT_BLOCK_BYTES / (row * esize);
    if (rows_per == 0) rows_per = 1;
    size_t need = (size_t)(rows_per * row * esize);
    if (need > r->scratch_bytes) {
        free(r->scratch);
        r->scratch = malloc(need);
        r->scratch_bytes = r->scratch ? need : 0;
        if (!r->scratch)
            return td_error_set(err, TD_ERR_NOMEM, "%s: no memory to read dataset %s", r->path,
                                full_name);
    }
    TD_H5(r->path, what, fspace = H5Dget_space(ds));
    for (uint64_t r0 = 0; r0 < dims[0]; r0 += rows_per) {
        hsize_t start[2] = {r0, 0};
        hsize_t count[2] = {dims[0] - r0 < rows_per ? dims[0] - r0 : rows_per, row};
        TD_H5(r->path, what, H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL));
        TD_H5(r->path, what, mspace = H5Screate_simple(ndim, count, NULL));
        TD_H5(r->path, what, H5Dread(ds, mem_type, mspace, fspace, H5P_DEFAULT, r->scratch));
        H5Sclose(mspace);
        mspace = -1;
        hash_update(&r->hash, r->scratch, (size_t)(count[0] * row * esize));
    }
done:
    td_h5_close_id(mspace, H5Sclose);
    td_h5_close_id(fspace, H5Sclose);
    return st;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The link names of a group, in strcmp order (our checksum order; not left
 * to HDF5's index order, which is the file's business). */
static td_status r_group_names(char ***out, int64_t *n_out, ckpt_reader *r, hid_t group,
                               const char *group_name, td_error *err)
{
    td_status st = TD_OK;
    H5G_info_t info;
    char what[64];
    snprintf(what, sizeof(what), "group %s", group_name);
    *out = NULL;
    *n_out = 0;
    TD_H5(r->path, what, H5Gget_info(group, &info));
    char **names = td_xcalloc(info.nlinks + 1, sizeof(char *));
    for (hsize_t i = 0; i < info.nlinks; i++) {
        ssize_t len =
            H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, NULL, 0, H5P_DEFAULT);
        if (len >= 0) {
            names[i] = td_xmalloc((size_t)len + 1);
            len = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, names[i],
                                     (size_t)len + 1, H5P_DEFAULT);
        }
        if (len < 0) {
            for (hsize_t j = 0; j <= i; j++) free(names[j]);
            free(names);
            st = td_h5_fail(err, r->path, what, "H5Lget_name_by_idx", __FILE__, __LINE__);
            goto done;
        }
    }
    qsort(names, (size_t)info.nlinks, sizeof(char *), cmp_str);
    *out = names;
    *n_out = (int64_t)info.nlinks;
done:
    return st;
}

/* One of param, optim/m, optim/v: every dataset read (into the caller's
 * block at the tensor's offset when base is set and the shape matches) and
 * hashed; with a table, missing, extra and misshapen tensors are recorded. */
static td_status r_tensor_group(ckpt_reader *r, int g, const td_ckpt *want, float *base,
                                td_error *err)
{
    const char *gname = group_names[g];
    td_status st = TD_OK;
    hid_t group = -1, ds = -1;
    char **names = NULL;
    int64_t n_names = 0;
    bool *seen = NULL;
    char what[64];
    snprintf(what, sizeof(what), "group %s", gname);
    /* H5Lexists on "optim/m" fails (rather than saying no) without "optim" */
    htri_t exists;
    TD_H5(r->path, what, exists = H5Lexists(r->file, g == 0 ? "param" : "optim", H5P_DEFAULT));
    if (exists && g > 0) TD_H5(r->path, what, exists = H5Lexists(r->file, gname, H5P_DEFAULT));
    if (!exists) {
        st = td_error_set(err, TD_ERR_FORMAT, "%s: group %s missing", r->path, gname);
        goto done;
    }
    TD_H5(r->path, what, group = H5Gopen2(r->file, gname, H5P_DEFAULT));
    st = r_group_names(&names, &n_names, r, group, gname, err);
    if (st != TD_OK) goto done;
    const bool check = want && base;
    if (check) seen = td_xcalloc((size_t)want->n_tensors + 1, sizeof(bool));
    for (int64_t k = 0; k < n_names; k++) {
        char full[CKPT_DSET_NAME_LEN + 64];
        snprintf(full, sizeof(full), "%s/%s", gname, names[k]);
        int ndim;
        hsize_t dims[2];
        st = r_dataset_open(&ds, &ndim, dims, r, group, names[k], full, KIND_F32, err);
        if (st != TD_OK) goto done;
        float *dest = NULL;
        if (check) {
            int idx = strlen(names[k]) < TD_TENSOR_NAME_LEN
                          ? td_tensor_find(want->tensors, want->n_tensors, names[k])
                          : -1;
            if (idx < 0) {
                r_mismatch(r,
                           "dataset %s is not a tensor of this model (the config describes "
                           "another model than the one that wrote the checkpoint)",
                           full);
            } else {
                const td_tensor_info *t = &want->tensors[idx];
                seen[idx] = true;
                hsize_t want_dims[2] = {(hsize_t)t->shape[0],
                                        t->ndim == 2 ? (hsize_t)t->shape[1] : 1};
                if (ndim == t->ndim && dims[0] == want_dims[0] && dims[1] == want_dims[1]) {
                    dest = base + t->offset;
                } else {
                    char have_s[64], want_s[64];
                    fmt_shape(have_s, sizeof(have_s), ndim, dims);
                    fmt_shape(want_s, sizeof(want_s), t->ndim, want_dims);
                    r_mismatch(r,
                               "dataset %s has shape %s, expected %s (the config describes "
                               "another model than the one that wrote the checkpoint)",
                               full, have_s, want_s);
                }
            }
        }
        st = r_dataset_read(r, ds, full, KIND_F32, ndim, dims, dest, err);
        H5Dclose(ds);
        ds = -1;
        if (st != TD_OK) goto done;
    }
    if (check) {
        for (int i = 0; i < want->n_tensors; i++) {
            if (seen[i]) continue;
            const td_tensor_info *t = &want->tensors[i];
            hsize_t want_dims[2] = {(hsize_t)t->shape[0], t->ndim == 2 ? (hsize_t)t->shape[1] : 1};
            char want_s[64];
            fmt_shape(want_s, sizeof(want_s), t->ndim, want_dims);
            r_mismatch(r, "dataset %s/%s missing, expected float32 %s", gname, t->name, want_s);
        }
    }
done:
    free(seen);
    for (int64_t k = 0; k < n_names; k++) free(names[k]);
    free(names);
    td_h5_close_id(ds, H5Dclose);
    td_h5_close_id(group, H5Gclose);
    return st;
}

/* Verifies format, version and checksum of path and, when want is set,
 * reads it into want (see td_ckpt_read). Arrays are read in place while
 * the checksum is computed, so on an error they may hold part of the file;
 * cursors, step, seed and config are set only on success. The checksum is
 * checked before a shape or size mismatch is reported, so that a
 * damaged file is never reported as a model mismatch. HDF5 printing must
 * be off. */
static td_status ckpt_load(const char *path, td_ckpt *want, bool *ranks_match, char **config_out,
                           td_error *err)
{
    ckpt_reader r = {.path = path, .file = -1, .mismatch_st = TD_OK};
    td_status st = r_open(&r, err);
    if (st != TD_OK) return st;
    char *config = NULL;
    int64_t *cursors = NULL;
    int cursor_width = 3;
    hid_t ds = -1;

    char format[64], checksum[64];
    int64_t version = 0, step = 0, n_ranks = 0;
    uint64_t seed = 0;
    htri_t has_format;
    TD_H5(path, "attribute format", has_format = H5Aexists(r.file, "format"));
    if (!has_format) {
        st = td_error_set(err, TD_ERR_FORMAT, "%s: not a tokdrop checkpoint (no format attribute)",
                          path);
        goto done;
    }
    if ((st = r_attr(format, sizeof(format), -1, &r, "format", err)) != TD_OK) goto done;
    if (strcmp(format, CKPT_FORMAT) != 0) {
        st = td_error_set(err, TD_ERR_FORMAT, "%s: format is '%s', expected '" CKPT_FORMAT "'",
                          path, format);
        goto done;
    }
    if ((st = r_attr(&version, 0, H5T_NATIVE_INT64, &r, "format_version", err)) != TD_OK) goto done;
    if (version < 1 || version > CKPT_VERSION) {
        st = td_error_set(err, TD_ERR_FORMAT,
                          "%s: format_version %lld, this tokdrop reads versions 1 to %d", path,
                          (long long)version, CKPT_VERSION);
        goto done;
    }
    if ((st = r_attr(&step, 0, H5T_NATIVE_INT64, &r, "step", err)) != TD_OK) goto done;
    if ((st = r_attr(&seed, 0, H5T_NATIVE_UINT64, &r, "seed", err)) != TD_OK) goto done;
    if ((st = r_attr(&n_ranks, 0, H5T_NATIVE_INT64, &r, "n_ranks", err)) != TD_OK) goto done;
    if ((st = r_attr(checksum, sizeof(checksum), -1, &r, "checksum", err)) != TD_OK) goto done;
    if (n_ranks < 1 || n_ranks > CKPT_MAX_RANKS) {
        st = td_error_set(err, TD_ERR_FORMAT, "%s: attribute n_ranks is %lld, expected >= 1", path,
                          (long long)n_ranks);
        goto done;
    }
    hash_init(&r.hash, version);
    hash_header(&r.hash, version, step, seed, n_ranks);

    if ((st = r_config(&config, &r, err)) != TD_OK) goto done;

    int ndim;
    hsize_t dims[2];
    htri_t exists;
    TD_H5(path, "dataset data_cursors", exists = H5Lexists(r.file, "data_cursors", H5P_DEFAULT));
    if (!exists) {
        st = td_error_set(err, TD_ERR_FORMAT, "%s: dataset data_cursors missing", path);
        goto done;
    }
    st =
        r_dataset_open(&ds, &ndim, dims, &r, r.file, "data_cursors", "data_cursors", KIND_I64, err);
    if (st != TD_OK) goto done;
    if (ndim != 2 || dims[0] != (hsize_t)n_ranks || (dims[1] != 2 && dims[1] != 3)) {
        char have_s[64];
        fmt_shape(have_s, sizeof(have_s), ndim, dims);
        st = td_error_set(err, TD_ERR_FORMAT,
                          "%s: dataset data_cursors has shape %s, expected [%lld, 3]", path, have_s,
                          (long long)n_ranks);
        goto done;
    }
    cursor_width = (int)dims[1];
    cursors = td_xcalloc((size_t)n_ranks * 3, sizeof(int64_t)); /* (n_ranks, cursor_width) */
    st = r_dataset_read(&r, ds, "data_cursors", KIND_I64, ndim, dims, cursors, err);
    H5Dclose(ds);
    ds = -1;
    if (st != TD_OK) goto done;

    TD_H5(path, "dataset importance", exists = H5Lexists(r.file, "importance", H5P_DEFAULT));
    if (exists) {
        st =
            r_dataset_open(&ds, &ndim, dims, &r, r.file, "importance", "importance", KIND_F32, err);
        if (st != TD_OK) goto done;
        float *dest = NULL;
        if (ndim != 1) {
            st = td_error_set(err, TD_ERR_FORMAT,
                              "%s: dataset importance has %d dimensions, expected 1", path, ndim);
            goto done;
        }
        if (want && want->V > 0) {
            if (dims[0] == (hsize_t)want->V)
                dest = want->importance;
            else
                r_mismatch(&r,
                           "dataset importance has %llu entries, expected %lld (the vocabulary "
                           "size differs from the run that wrote the checkpoint)",
                           (unsigned long long)dims[0], (long long)want->V);
        }
        st = r_dataset_read(&r, ds, "importance", KIND_F32, ndim, dims, dest, err);
        H5Dclose(ds);
        ds = -1;
        if (st != TD_OK) goto done;
    } else if (want && want->V > 0) {
        r_mismatch(&r,
                   "dataset importance missing, expected float32 [%lld] (the checkpoint was "
                   "written by a run without token dropping)",
                   (long long)want->V);
    }

    for (int g = 0; g < 3; g++) {
        float *base = !want ? NULL : g == 0 ? want->params : g == 1 ? want->m : want->v;
        if ((st = r_tensor_group(&r, g, want, base, err)) != TD_OK) goto done;
    }

    uint64_t stored = 0, computed = hash_finish(&r.hash);
    char *end = NULL;
    errno = 0;
    stored = strtoull(checksum, &end, 16);
    if (strlen(checksum) != 16 || errno != 0 || *end != '\0') {
        st = td_error_set(err, TD_ERR_FORMAT, "%s: attribute checksum '%s' is not 16 hex digits",
                          path, checksum);
        goto done;
    }
    if (stored != computed) {
        st =
            td_error_set(err, TD_ERR_FORMAT,
                         "%s: checksum mismatch (stored %s, computed %016llx): the file is corrupt",
                         path, checksum, (unsigned long long)computed);
        goto done;
    }
    if (r.mismatch_st != TD_OK) {
        st = r.mismatch_st;
        if (err) *err = r.mismatch;
        goto done;
    }
    if (want) {
        bool match = n_ranks == want->n_ranks;
        if (match) {
            for (int64_t i = 0; i < n_ranks; i++) {
                const int64_t *c = cursors + cursor_width * i;
                want->cursors[i] = (td_data_cursor){c[0], c[1], cursor_width == 3 ? c[2] : 0};
            }
        }
        if (ranks_match) *ranks_match = match;
        want->step = step;
        want->seed = seed;
        want->config_yaml = config;
        config = NULL;
    } else if (config_out) {
        *config_out = config;
        config = NULL;
    }
done:
    hash_free(&r.hash);
    td_h5_close_id(ds, H5Dclose);
    free(config);
    free(cursors);
    free(r.scratch);
    if (r.file >= 0) H5Fclose(r.file);
    return st;
}

td_status td_ckpt_find_latest(const char *dir, char *path, size_t path_len,
                              void (*warn)(void *ctx, const char *msg), void *warn_ctx,
                              td_error *err)
{
    if (!dir || !path || path_len == 0)
        return td_error_set(err, TD_ERR_ARG,
                            "td_ckpt_find_latest: no directory or no output buffer");
    path[0] = '\0';
    ckpt_entry *e;
    int64_t n;
    bool missing;
    td_status st = list_ckpts(&e, &n, &missing, dir, err);
    if (st != TD_OK || missing) return st;
    int64_t n_bad = 0;
    td_h5_quiet q = td_h5_quiet_begin();
    for (int64_t i = 0; i < n; i++) {
        char *p = td_fs_join_alloc(dir, e[i].name);
        td_error why = {TD_OK, ""};
        if (ckpt_load(p, NULL, NULL, NULL, &why) == TD_OK) {
            if (strlen(p) >= path_len)
                st = td_error_set(err, TD_ERR_ARG, "%s: path longer than the %zu-byte buffer", p,
                                  path_len);
            else
                memcpy(path, p, strlen(p) + 1);
            free(p);
            break;
        }
        n_bad++;
        if (warn) {
            char msg[TD_ERROR_MSG_LEN + 16];
            snprintf(msg, sizeof(msg), "%s, skipping", why.msg);
            warn(warn_ctx, msg);
        }
        free(p);
    }
    td_h5_quiet_end(q);
    /* Starting over would throw the run away and, at the first checkpoint,
     * remove these files; that is for the user to decide. */
    if (st == TD_OK && path[0] == '\0' && n_bad > 0)
        st = td_error_set(err, TD_ERR_FORMAT,
                          "%s: none of the %lld checkpoints is valid (see the warnings); move them "
                          "away to start the run from scratch",
                          dir, (long long)n_bad);
    free_entries(e, n);
    return st;
}

td_status td_ckpt_read(const char *path, td_ckpt *ckpt, bool *ranks_match, td_error *err)
{
    if (!path || !ckpt)
        return td_error_set(err, TD_ERR_ARG, "td_ckpt_read: no path or no checkpoint");
    if (ckpt->n_tensors < 0 || (ckpt->n_tensors > 0 && (!ckpt->tensors || !ckpt->params)))
        return td_error_set(err, TD_ERR_ARG,
                            "td_ckpt_read: %s: the tensor table and params are required", path);
    if (ckpt->V < 0 || (ckpt->V > 0 && !ckpt->importance))
        return td_error_set(err, TD_ERR_ARG,
                            "td_ckpt_read: %s: V is %lld without an importance array", path,
                            (long long)ckpt->V);
    if (ckpt->n_ranks < 0 || (ckpt->n_ranks > 0 && !ckpt->cursors))
        return td_error_set(err, TD_ERR_ARG, "td_ckpt_read: %s: %d ranks without a cursor array",
                            path, ckpt->n_ranks);
    td_h5_quiet q = td_h5_quiet_begin();
    td_status st = ckpt_load(path, ckpt, ranks_match, NULL, err);
    td_h5_quiet_end(q);
    return st;
}

td_status td_ckpt_read_config(const char *path, char **config_yaml, td_error *err)
{
    if (!path || !config_yaml)
        return td_error_set(err, TD_ERR_ARG, "td_ckpt_read_config: no path or no output");
    *config_yaml = NULL;
    td_h5_quiet q = td_h5_quiet_begin();
    td_status st = ckpt_load(path, NULL, NULL, config_yaml, err);
    td_h5_quiet_end(q);
    return st;
}
