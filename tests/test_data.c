/* The shard reader (data.h) on synthetic NVIDIA-format shards written here
 * with the HDF5 C API: exact rows, rank ownership with simulated ranks,
 * epochs and cursors, the masked-prediction convention, dynamic masking
 * statistics, token counts, and one test per malformed-input error. */
#include "testutil.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/data_shard.h"
#include "tokdrop/train/data.h"
#include "tokdrop/base/hash.h"
#include "tokdrop/base/shard_format.h"
#include "tokdrop/base/vocab.h"

#define CLS 2
#define SEP 3
#define MASK 4
#define PAD 0
#define FIRST_WORD 5 /* generated word ids are >= this, so never special */

/* ---- synthetic shards ------------------------------------------------------ */

/* n rows of one shard as int32 (N, T) / (N, P) / (N) arrays. */
typedef struct {
    int64_t n, T, P;
    int32_t *ids, *mask, *seg, *pos, *mlm, *nsp;
} rows_t;

static uint64_t hash3(uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t z = a * 0x9e3779b97f4a7c15ULL;
    z ^= (b + 0x632be59bd9b4e019ULL) * 0xbf58476d1ce4e5b9ULL ^ c;
    z ^= z >> 31;
    z *= 0x94d049bb133111ebULL;
    return z ^ (z >> 29);
}

/* Real predictions of sample g (0..P); the rest of the P slots start with a
 * 0 terminator followed by junk (non-zero positions, ids >= V) that the
 * reader must ignore. */
static int64_t gen_n_pred(int64_t g, int64_t P)
{
    return g % (P + 1);
}

/* Row of global sample g: [CLS] words [SEP] words [SEP] [PAD]..., with a
 * length between 6 and T that depends on g. */
static void gen_row(rows_t *r, int64_t row, int64_t g, int64_t V)
{
    const int64_t T = r->T, P = r->P;
    int32_t *ids = r->ids + row * T, *mask = r->mask + row * T, *seg = r->seg + row * T;
    int32_t *pos = r->pos + row * P, *mlm = r->mlm + row * P;
    int64_t len = 6 + (int64_t)(hash3((uint64_t)g, 1, 0) % (uint64_t)(T - 5));
    int64_t mid = len / 2;
    for (int64_t t = 0; t < T; t++) {
        uint64_t h = hash3((uint64_t)g, (uint64_t)t, 2);
        int32_t w = FIRST_WORD + (int32_t)(h % (uint64_t)(V - FIRST_WORD));
        ids[t] = t >= len ? PAD : t == 0 ? CLS : (t == mid || t == len - 1) ? SEP : w;
        mask[t] = t < len;
        seg[t] = t > mid && t < len;
    }
    int64_t np = gen_n_pred(g, P);
    for (int64_t k = 0; k < P; k++) {
        if (k < np) {
            pos[k] = (int32_t)(1 + 2 * k);
            mlm[k] = FIRST_WORD + (int32_t)((g + k) % (V - FIRST_WORD));
        } else if (k == np) {
            pos[k] = 0;
            mlm[k] = (int32_t)(V + 7);
        } else {
            pos[k] = (int32_t)(1 + k);
            mlm[k] = (int32_t)(V + 7 + k);
        }
    }
    r->nsp[row] = (int32_t)(g % 2);
}

static void rows_init(rows_t *r, int64_t n, int64_t T, int64_t P)
{
    r->n = n;
    r->T = T;
    r->P = P;
    size_t nt = (size_t)(n * T) + 1, np = (size_t)(n * P) + 1;
    r->ids = calloc(nt, 4);
    r->mask = calloc(nt, 4);
    r->seg = calloc(nt, 4);
    r->pos = calloc(np, 4);
    r->mlm = calloc(np, 4);
    r->nsp = calloc((size_t)n + 1, 4);
    assert_non_null(r->ids);
    assert_non_null(r->nsp);
}

static void rows_gen(rows_t *r, int64_t n, int64_t T, int64_t P, int64_t V, int64_t first_g)
{
    rows_init(r, n, T, P);
    for (int64_t i = 0; i < n; i++) gen_row(r, i, first_g + i, V);
}

static void rows_free(rows_t *r)
{
    free(r->ids);
    free(r->mask);
    free(r->seg);
    free(r->pos);
    free(r->mlm);
    free(r->nsp);
}

enum {
    W_ALT_TYPES = 1,    /* other integer widths/signs, chunked + gzip */
    W_NO_SEG = 2,       /* segment_ids missing */
    W_MASK_RANK1 = 4,   /* input_mask stored flat as [N*T] */
    W_NSP_FLOAT = 8,    /* next_sentence_labels as float32 */
    W_NSP_SHORT = 16,   /* next_sentence_labels with N-1 rows */
    W_NO_MLM = 32,      /* masked_lm_* missing */
    W_IDS_FLOAT = 64,   /* input_ids as float32 */
    W_IDS_HUGE = 128,   /* input_ids as int64, row 2 column 1 = 5e9 */
};

static void write_ds(hid_t file, const char *name, hid_t ftype, int rank, hsize_t d0, hsize_t d1,
                     const void *data, hid_t mtype, int chunked)
{
    hsize_t dims[2] = {d0, d1};
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (chunked && d0 > 0) {
        hsize_t chunk[2] = {d0 < 4 ? d0 : 4, rank == 2 ? (d1 < 8 ? d1 : 8) : 1};
        assert_true(H5Pset_chunk(dcpl, rank, chunk) >= 0);
        assert_true(H5Pset_deflate(dcpl, 4) >= 0);
    }
    hid_t ds = H5Dcreate2(file, name, ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    assert_true(ds >= 0);
    assert_true(H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(space);
}

/* Writes an NVIDIA-format shard: input_ids int32, input_mask and
 * segment_ids int8, masked_lm_* int32, next_sentence_labels int8, like
 * NVIDIA's create_pretraining_data; W_ALT_TYPES uses other widths. */
static void write_shard(const char *path, const rows_t *r, unsigned flags)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(f >= 0);
    int alt = (flags & W_ALT_TYPES) != 0;
    hsize_t n = (hsize_t)r->n, T = (hsize_t)r->T, P = (hsize_t)r->P;
    if (flags & W_IDS_HUGE) {
        int64_t *wide = calloc(n * T, sizeof(int64_t));
        assert_non_null(wide);
        for (hsize_t i = 0; i < n * T; i++) wide[i] = r->ids[i];
        wide[2 * T + 1] = 5000000000LL;
        write_ds(f, "input_ids", H5T_STD_I64LE, 2, n, T, wide, H5T_NATIVE_INT64, 0);
        free(wide);
    } else {
        write_ds(f, "input_ids",
                 (flags & W_IDS_FLOAT) ? H5T_IEEE_F32LE : alt ? H5T_STD_U32LE : H5T_STD_I32LE, 2, n,
                 T, r->ids, H5T_NATIVE_INT32, alt);
    }
    if (flags & W_MASK_RANK1)
        write_ds(f, "input_mask", H5T_STD_I8LE, 1, n * T, 0, r->mask, H5T_NATIVE_INT32, 0);
    else
        write_ds(f, "input_mask", alt ? H5T_STD_U16BE : H5T_STD_I8LE, 2, n, T, r->mask,
                 H5T_NATIVE_INT32, alt);
    if (!(flags & W_NO_SEG))
        write_ds(f, "segment_ids", alt ? H5T_STD_I64LE : H5T_STD_I8LE, 2, n, T, r->seg,
                 H5T_NATIVE_INT32, alt);
    if (!(flags & W_NO_MLM)) {
        /* junk ids after the terminator exceed V, so widen where they may not fit */
        write_ds(f, "masked_lm_positions", alt ? H5T_STD_I16LE : H5T_STD_I32LE, 2, n, P, r->pos,
                 H5T_NATIVE_INT32, alt);
        write_ds(f, "masked_lm_ids", alt ? H5T_STD_I64BE : H5T_STD_I32LE, 2, n, P, r->mlm,
                 H5T_NATIVE_INT32, alt);
    }
    hsize_t n_nsp = (flags & W_NSP_SHORT) ? n - 1 : n;
    write_ds(f, "next_sentence_labels", (flags & W_NSP_FLOAT) ? H5T_IEEE_F32LE : H5T_STD_I8LE, 1,
             n_nsp, 0, r->nsp, H5T_NATIVE_INT32, 0);
    H5Fclose(f);
}

/* Writes shards dir/shard_<i>.h5 with the given row counts, global ids
 * consecutive in file order. Returns the total. */
static int64_t write_shards(const char *dir, const int64_t *n_rows, int n_files, int64_t T,
                            int64_t P, int64_t V)
{
    int64_t g = 0;
    for (int i = 0; i < n_files; i++) {
        char path[4200];
        snprintf(path, sizeof(path), "%s/shard_%02d.h5", dir, i);
        rows_t r;
        rows_gen(&r, n_rows[i], T, P, V, g);
        write_shard(path, &r, (i % 2) ? W_ALT_TYPES : 0);
        rows_free(&r);
        g += n_rows[i];
    }
    return g;
}

/* ---- helpers ----------------------------------------------------------------- */

static td_data_options opts(int64_t T, int64_t P, int64_t V, int rank, int n_ranks, uint64_t seed)
{
    td_data_options o;
    memset(&o, 0, sizeof(o));
    o.seq_len = T;
    o.max_pred = P;
    o.vocab_size = V;
    o.rank = rank;
    o.n_ranks = n_ranks;
    o.seed = seed;
    o.mask_id = MASK;
    o.cls_id = CLS;
    o.sep_id = SEP;
    o.pad_id = PAD;
    return o;
}

static td_data *open_ok(const char *pattern, const td_data_options *o)
{
    td_data *d = NULL;
    td_error e;
    memset(&e, 0, sizeof(e));
    td_status st = td_data_open(&d, pattern, o, &e);
    if (st != TD_OK) fail_msg("td_data_open(%s): %s", pattern, e.msg);
    assert_non_null(d);
    return d;
}

static void next_ok(td_data *d, td_batch *b)
{
    td_error e;
    memset(&e, 0, sizeof(e));
    td_status st = td_data_next(d, b, &e);
    if (st != TD_OK) fail_msg("td_data_next: %s", e.msg);
}

static void pattern_of(char *out, size_t n, const char *dir)
{
    snprintf(out, n, "%s/shard_*.h5", dir);
}

/* Batch row b must hold exactly global sample g, with the static-masking
 * convention applied: weight 1 before the first position 0, and positions
 * and ids 0 from it on. */
static void check_row_is_sample(const td_batch *b, int64_t row, int64_t g, int64_t V)
{
    const int64_t T = b->T, P = b->max_pred;
    rows_t want;
    rows_init(&want, 1, T, P);
    gen_row(&want, 0, g, V);
    assert_int_equal(b->sample_ids[row], g);
    assert_memory_equal(b->input_ids + row * T, want.ids, (size_t)T * 4);
    assert_memory_equal(b->input_mask + row * T, want.mask, (size_t)T * 4);
    assert_memory_equal(b->segment_ids + row * T, want.seg, (size_t)T * 4);
    assert_int_equal(b->nsp_labels[row], want.nsp[0]);
    int64_t np = gen_n_pred(g, P);
    for (int64_t k = 0; k < P; k++) {
        int real = k < np;
        assert_int_equal(b->mlm_positions[row * P + k], real ? want.pos[k] : 0);
        assert_int_equal(b->mlm_ids[row * P + k], real ? want.mlm[k] : 0);
        assert_true(b->mlm_weights[row * P + k] == (real ? 1.0f : 0.0f));
    }
    rows_free(&want);
}

/* Reads one epoch of a rank (rank_samples samples, batch size 1) and adds
 * 1 to seen[g] for every global sample g read. */
static void read_rank_epoch(const char *pattern, const td_data_options *o, int *seen,
                            int64_t n_total, int64_t V)
{
    td_data *d = open_ok(pattern, o);
    assert_int_equal(td_data_total_samples(d), n_total);
    td_batch b;
    td_batch_init(&b, 1, o->seq_len, o->max_pred);
    int64_t n = td_data_rank_samples(d);
    for (int64_t i = 0; i < n; i++) {
        next_ok(d, &b);
        int64_t g = b.sample_ids[0];
        assert_true(g >= 0 && g < n_total);
        seen[g]++;
        check_row_is_sample(&b, 0, g, V);
    }
    td_data_cursor c = td_data_get_cursor(d);
    assert_int_equal(c.epoch, 1);
    assert_int_equal(c.index, 0);
    td_batch_free(&b);
    td_data_free(d);
}

/* ---- tests ---------------------------------------------------------------------- */

static void test_batch_helpers(void **state)
{
    (void)state;
    td_batch b;
    td_batch_init(&b, 3, 8, 4);
    assert_int_equal(b.B, 3);
    assert_int_equal(b.T, 8);
    assert_int_equal(b.max_pred, 4);
    for (int i = 0; i < 24; i++) assert_int_equal(b.input_ids[i], 0);
    assert_int_equal(td_batch_count_masked(&b), 0);
    b.mlm_weights[0] = 1.0f;
    b.mlm_weights[5] = 1.0f;
    b.mlm_weights[11] = 1.0f;
    assert_int_equal(td_batch_count_masked(&b), 3);
    td_batch_free(&b);
    assert_null(b.input_ids);
}

/* Batches hold exactly the rows of the files, for 1-, 2- and 4-byte id
 * storage and 1- and 2-byte positions, NVIDIA and other integer types. */
static void test_rows_exact(void **state)
{
    (void)state;
    const struct { int64_t T, P, V; } geoms[] = {{16, 4, 100}, {300, 6, 1000}, {24, 5, 70000}};
    for (int gi = 0; gi < 3; gi++) {
        char dir[4096], pattern[4200], other[4200];
        snprintf(dir, sizeof(dir), "%s", tu_tmpdir("data_rows"));
        const int64_t n_rows[2] = {7, 5};
        int64_t T = geoms[gi].T, P = geoms[gi].P, V = geoms[gi].V;
        int64_t total = write_shards(dir, n_rows, 2, T, P, V);
        /* a file the glob must not pick up */
        snprintf(other, sizeof(other), "%s/notes.txt", dir);
        FILE *f = fopen(other, "w");
        assert_non_null(f);
        fputs("not a shard\n", f);
        fclose(f);
        pattern_of(pattern, sizeof(pattern), dir);
        td_data_options o = opts(T, P, V, 0, 1, 7);
        td_data *d = open_ok(pattern, &o);
        assert_int_equal(td_data_rank_samples(d), total);
        assert_int_equal(td_data_total_samples(d), total);
        td_batch b;
        td_batch_init(&b, 3, T, P);
        int seen[12] = {0};
        for (int s = 0; s < 4; s++) {
            next_ok(d, &b);
            for (int64_t r = 0; r < 3; r++) {
                check_row_is_sample(&b, r, b.sample_ids[r], V);
                seen[b.sample_ids[r]]++;
            }
        }
        for (int g = 0; g < 12; g++) assert_int_equal(seen[g], 1);
        td_batch_free(&b);
        td_data_free(d);
    }
}

/* 5 files over 2 and 3 ranks: file i on rank i % P, every sample read by
 * exactly one rank per epoch. */
static void test_ownership(void **state)
{
    (void)state;
    char dir[4096], pattern[4200];
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir("data_own"));
    const int64_t n_rows[5] = {3, 4, 5, 2, 6};
    const int64_t T = 16, P = 4, V = 100;
    int64_t total = write_shards(dir, n_rows, 5, T, P, V);
    assert_int_equal(total, 20);
    pattern_of(pattern, sizeof(pattern), dir);
    for (int n_ranks = 2; n_ranks <= 3; n_ranks++) {
        int seen_all[20] = {0};
        for (int rank = 0; rank < n_ranks; rank++) {
            int seen[20] = {0};
            td_data_options o = opts(T, P, V, rank, n_ranks, 11);
            read_rank_epoch(pattern, &o, seen, total, V);
            int64_t first = 0;
            for (int i = 0; i < 5; i++) {
                for (int64_t g = first; g < first + n_rows[i]; g++)
                    assert_int_equal(seen[g], i % n_ranks == rank ? 1 : 0);
                first += n_rows[i];
            }
            for (int g = 0; g < 20; g++) seen_all[g] += seen[g];
        }
        for (int g = 0; g < 20; g++) assert_int_equal(seen_all[g], 1);
    }
}

/* Fewer files than ranks: every rank reads all files and takes the global
 * samples g % n_ranks == rank. */
static void test_fewer_files_than_ranks(void **state)
{
    (void)state;
    const int64_t T = 16, P = 4, V = 100;
    char dir[4096], pattern[4200];
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir("data_fewer1"));
    const int64_t one[1] = {9};
    int64_t total = write_shards(dir, one, 1, T, P, V);
    pattern_of(pattern, sizeof(pattern), dir);
    int seen_all[9] = {0};
    for (int rank = 0; rank < 2; rank++) {
        int seen[9] = {0};
        td_data_options o = opts(T, P, V, rank, 2, 5);
        read_rank_epoch(pattern, &o, seen, total, V);
        for (int g = 0; g < 9; g++) {
            assert_int_equal(seen[g], g % 2 == rank);
            seen_all[g] += seen[g];
        }
    }
    for (int g = 0; g < 9; g++) assert_int_equal(seen_all[g], 1);

    /* 2 files (4 + 5 rows) over 3 ranks: the stride runs across files */
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir("data_fewer2"));
    const int64_t two[2] = {4, 5};
    total = write_shards(dir, two, 2, T, P, V);
    pattern_of(pattern, sizeof(pattern), dir);
    memset(seen_all, 0, sizeof(seen_all));
    for (int rank = 0; rank < 3; rank++) {
        int seen[9] = {0};
        td_data_options o = opts(T, P, V, rank, 3, 5);
        read_rank_epoch(pattern, &o, seen, total, V);
        for (int g = 0; g < 9; g++) {
            assert_int_equal(seen[g], g % 3 == rank);
            seen_all[g] += seen[g];
        }
    }
    for (int g = 0; g < 9; g++) assert_int_equal(seen_all[g], 1);
}

/* Reads n_batches of B and records the sample ids. */
static void read_ids(td_data *d, int64_t B, int64_t n_batches, int64_t *ids, int64_t T, int64_t P)
{
    td_batch b;
    td_batch_init(&b, B, T, P);
    for (int64_t s = 0; s < n_batches; s++) {
        next_ok(d, &b);
        memcpy(ids + s * B, b.sample_ids, (size_t)B * sizeof(int64_t));
    }
    td_batch_free(&b);
}

/* An epoch visits every sample once; the next epoch is another order; the
 * same seed gives the same order, another seed another. Batches span
 * epochs (20 samples, B = 3). */
static void test_epochs(void **state)
{
    (void)state;
    const int64_t T = 16, P = 4, V = 100;
    char dir[4096], pattern[4200];
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir("data_epochs"));
    const int64_t n_rows[2] = {13, 7};
    write_shards(dir, n_rows, 2, T, P, V);
    pattern_of(pattern, sizeof(pattern), dir);
    td_data_options o = opts(T, P, V, 0, 1, 1234);
    int64_t a[42], b2[42], c[42];
    td_data *d = open_ok(pattern, &o);
    read_ids(d, 3, 14, a, T, P);
    td_data_cursor cur = td_data_get_cursor(d);
    assert_int_equal(cur.epoch, 2);
    assert_int_equal(cur.index, 2);
    td_data_free(d);
    for (int e = 0; e < 2; e++) {
        int seen[20] = {0};
        for (int i = 0; i < 20; i++) seen[a[e * 20 + i]]++;
        for (int g = 0; g < 20; g++) assert_int_equal(seen[g], 1);
    }
    int same_order = 1, identity = 1;
    for (int i = 0; i < 20; i++) {
        same_order &= a[i] == a[20 + i];
        identity &= a[i] == i;
    }
    assert_false(same_order);
    assert_false(identity);

    d = open_ok(pattern, &o);
    read_ids(d, 3, 14, b2, T, P);
    td_data_free(d);
    assert_memory_equal(a, b2, sizeof(a));

    o.seed = 4321;
    d = open_ok(pattern, &o);
    read_ids(d, 3, 14, c, T, P);
    td_data_free(d);
    int differ = 0;
    for (int i = 0; i < 20; i++) differ += a[i] != c[i];
    assert_true(differ > 0);
}

/* A reader resumed from a cursor continues exactly like the original, within
 * epoch 0, in a later epoch, and from the end of an epoch. */
static void test_cursor_resume(void **state)
{
    (void)state;
    const int64_t T = 16, P = 4, V = 100;
    char dir[4096], pattern[4200];
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir("data_cursor"));
    const int64_t n_rows[3] = {5, 6, 4};
    write_shards(dir, n_rows, 3, T, P, V);
    pattern_of(pattern, sizeof(pattern), dir);
    td_data_options o = opts(T, P, V, 0, 1, 99);
    const int64_t skips[3] = {2, 9, 5}; /* batches of 3 before the checkpoint */
    for (int s = 0; s < 3; s++) {
        td_data *d = open_ok(pattern, &o);
        int64_t before[27], after[21], resumed[21];
        read_ids(d, 3, skips[s], before, T, P);
        td_data_cursor cur = td_data_get_cursor(d);
        assert_int_equal(cur.epoch * 15 + cur.index, skips[s] * 3);
        read_ids(d, 3, 7, after, T, P);
        td_data_free(d);

        td_data *r = open_ok(pattern, &o);
        td_data_set_cursor(r, cur);
        cur = td_data_get_cursor(r);
        assert_int_equal(cur.epoch * 15 + cur.index, skips[s] * 3);
        read_ids(r, 3, 7, resumed, T, P);
        td_data_free(r);
        assert_memory_equal(after, resumed, sizeof(after));
    }
    /* (epoch 0, index n) is the same place as (epoch 1, 0) */
    int64_t x[6], y[6];
    td_data *d = open_ok(pattern, &o);
    td_data_set_cursor(d, (td_data_cursor){0, 15, 0});
    td_data_cursor c = td_data_get_cursor(d);
    assert_int_equal(c.epoch, 1);
    assert_int_equal(c.index, 0);
    read_ids(d, 3, 2, x, T, P);
    td_data_set_cursor(d, (td_data_cursor){1, 0, 0});
    read_ids(d, 3, 2, y, T, P);
    td_data_free(d);
    assert_memory_equal(x, y, sizeof(x));
}

/* Real predictions end at the first position 0; weights, positions and ids
 * after it are 0 whatever the shard holds there. */
/* ---- streaming through a window smaller than the data --------------------------- */

#define STREAM_FILES 9
#define STREAM_TOTAL 400 /* >= the sum of the row counts below */

/* Shards of 30..50 rows (uneven, so chunks straddle files); returns total. */
static int64_t stream_shards(char *pattern, size_t n, const char *name, int64_t T, int64_t P,
                             int64_t V)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir(name));
    const int64_t rows[STREAM_FILES] = {30, 50, 41, 33, 47, 36, 44, 39, 35};
    int64_t total = write_shards(dir, rows, STREAM_FILES, T, P, V);
    pattern_of(pattern, n, dir);
    return total;
}

/* File index of global sample g for stream_shards' row counts. */
static int file_of(int64_t g)
{
    const int64_t rows[STREAM_FILES] = {30, 50, 41, 33, 47, 36, 44, 39, 35};
    for (int i = 0; i < STREAM_FILES; i++) {
        if (g < rows[i]) return i;
        g -= rows[i];
    }
    return -1;
}

/* A window of ~41 samples over 355: every epoch reads each sample exactly
 * once with its exact contents, file order and sample order change from
 * epoch to epoch, and a chunk of `window` consecutive draws comes from the
 * files of one window (at most 3 here: 41 draws, files of 30 rows or more). */
static void test_streaming_epochs(void **state)
{
    (void)state;
    const int64_t T = 16, P = 4, V = 100;
    char pattern[4200];
    int64_t total = stream_shards(pattern, sizeof(pattern), "data_stream", T, P, V);
    td_data_options o = opts(T, P, V, 0, 1, 77);
    o.memory_bytes = 6000;
    td_data *d = open_ok(pattern, &o);
    int64_t window = td_data_get_cursor(d).window;
    assert_true(window > 0 && window < 50); /* streaming: smaller than the largest file */
    td_batch b;
    td_batch_init(&b, 1, T, P);
    int64_t first_of_epoch[2] = {-1, -1};
    int64_t order[2][STREAM_TOTAL];
    for (int epoch = 0; epoch < 2; epoch++) {
        int seen[STREAM_TOTAL] = {0};
        unsigned files_in_chunk = 0;
        for (int64_t i = 0; i < total; i++) {
            next_ok(d, &b);
            int64_t g = b.sample_ids[0];
            assert_true(g >= 0 && g < total);
            check_row_is_sample(&b, 0, g, V);
            seen[g]++;
            order[epoch][i] = g;
            if (i == 0) first_of_epoch[epoch] = g;
            if (i % window == 0) files_in_chunk = 0;
            files_in_chunk |= 1u << file_of(g);
            assert_true(__builtin_popcount(files_in_chunk) <= 3);
        }
        for (int64_t g = 0; g < total; g++) assert_int_equal(seen[g], 1);
        td_data_cursor c = td_data_get_cursor(d);
        assert_int_equal(c.epoch, epoch + 1);
        assert_int_equal(c.index, 0);
    }
    assert_true(file_of(first_of_epoch[0]) != file_of(first_of_epoch[1]) ||
                memcmp(order[0], order[1], sizeof(order[0])) != 0);
    /* consecutive draws are shuffled within the chunk, not in file order */
    int in_row_order = 0;
    for (int64_t i = 1; i < total; i++) in_row_order += order[0][i] == order[0][i - 1] + 1;
    assert_true(in_row_order < total / 4);
    td_batch_free(&b);
    td_data_free(d);
}

/* Reading k samples, checkpointing the cursor and resuming in a new reader
 * gives exactly the samples the uninterrupted reader gives, for positions
 * in the middle of a chunk and file, on a chunk boundary and across an
 * epoch; with 2 ranks each rank reads its own files. */
static void test_streaming_resume(void **state)
{
    (void)state;
    const int64_t T = 16, P = 4, V = 100;
    char pattern[4200];
    int64_t total = stream_shards(pattern, sizeof(pattern), "data_stream_resume", T, P, V);
    for (int n_ranks = 1; n_ranks <= 2; n_ranks++) {
        for (int rank = 0; rank < n_ranks; rank++) {
            td_data_options o = opts(T, P, V, rank, n_ranks, 5150);
            o.memory_bytes = 6000;
            o.dynamic_masking = 1; /* the epoch must reach the masking key too */
            td_data *ref = open_ok(pattern, &o);
            int64_t n = td_data_rank_samples(ref), window = td_data_get_cursor(ref).window;
            assert_true(window > 0);
            const int64_t stops[] = {window / 2 + 3, 2 * window, n - 1, n + window + 1};
            td_batch a, b;
            td_batch_init(&a, 1, T, P);
            td_batch_init(&b, 1, T, P);
            int64_t done = 0;
            for (size_t s = 0; s < sizeof(stops) / sizeof(stops[0]); s++) {
                for (; done < stops[s]; done++) next_ok(ref, &a);
                td_data_cursor c = td_data_get_cursor(ref);
                td_data *re = open_ok(pattern, &o);
                td_data_set_cursor(re, c);
                for (int64_t k = 0; k < window + 5; k++) {
                    next_ok(ref, &a);
                    next_ok(re, &b);
                    assert_int_equal(a.sample_ids[0], b.sample_ids[0]);
                    assert_memory_equal(a.input_ids, b.input_ids, (size_t)T * sizeof(int32_t));
                    assert_memory_equal(a.mlm_positions, b.mlm_positions, (size_t)P * sizeof(int32_t));
                }
                done += window + 5;
                td_data_free(re);
            }
            assert_true(td_data_get_cursor(ref).epoch >= 1);
            (void)total;
            td_batch_free(&a);
            td_batch_free(&b);
            td_data_free(ref);
        }
    }
}

/* An ordered set (evaluation) is the first `limit` samples in file order,
 * split over ranks by global index: the same set on 1, 2 or 3 ranks, read
 * in order, streaming or not. */
static void test_ordered_set(void **state)
{
    (void)state;
    const int64_t T = 16, P = 4, V = 100;
    char pattern[4200];
    stream_shards(pattern, sizeof(pattern), "data_ordered", T, P, V);
    const int64_t limit = 101;
    for (int stream = 0; stream < 2; stream++) {
        for (int n_ranks = 1; n_ranks <= 3; n_ranks++) {
            int seen[STREAM_TOTAL] = {0};
            for (int rank = 0; rank < n_ranks; rank++) {
                td_data_options o = opts(T, P, V, rank, n_ranks, 1);
                o.ordered = 1;
                o.limit = limit;
                o.memory_bytes = stream ? 1500 : 0;
                td_data *d = open_ok(pattern, &o);
                assert_int_equal(td_data_total_samples(d), limit);
                assert_int_equal(td_data_get_cursor(d).window == 0, !stream);
                int64_t n = td_data_rank_samples(d);
                assert_int_equal(n, (limit - rank + n_ranks - 1) / n_ranks);
                td_batch b;
                td_batch_init(&b, 1, T, P);
                for (int64_t i = 0; i < n; i++) {
                    next_ok(d, &b);
                    assert_int_equal(b.sample_ids[0], rank + i * n_ranks);
                    check_row_is_sample(&b, 0, b.sample_ids[0], V);
                    seen[b.sample_ids[0]]++;
                }
                td_batch_free(&b);
                td_data_free(d);
            }
            for (int64_t g = 0; g < STREAM_TOTAL; g++) assert_int_equal(seen[g], g < limit);
        }
    }
}

/* A bad value in a shard that is read later in a streamed epoch is an
 * error from td_data_next naming file, dataset, row and column. */
static void test_streaming_bad_value(void **state)
{
    (void)state;
    const int64_t T = 16, P = 4, V = 100;
    char pattern[4200];
    stream_shards(pattern, sizeof(pattern), "data_stream_bad", T, P, V);
    td_data_options o = opts(T, P, V, 0, 1, 3);
    o.memory_bytes = 6000;
    o.vocab_size = 90; /* ids in the shards go up to 99 */
    td_data *d = NULL;
    td_error e;
    memset(&e, 0, sizeof(e));
    td_status st = td_data_open(&d, pattern, &o, &e);
    if (st == TD_OK) {
        td_batch b;
        td_batch_init(&b, 1, T, P);
        for (int i = 0; i < 400 && st == TD_OK; i++) st = td_data_next(d, &b, &e);
        td_batch_free(&b);
        td_data_free(d);
    }
    assert_int_not_equal(st, TD_OK);
    printf("expected error: %s\n", e.msg);
    assert_non_null(strstr(e.msg, "shard_"));
    assert_non_null(strstr(e.msg, "input_ids"));
    assert_non_null(strstr(e.msg, "model.vocab_size"));
}

static void test_mlm_weights(void **state)
{
    (void)state;
    const int64_t T = 16, P = 4, V = 100;
    char dir[4096], pattern[4200], path[4200];
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir("data_mlm"));
    rows_t r;
    rows_gen(&r, 4, T, P, V, 0);
    const int32_t pos[4][4] = {{5, 9, 0, 7}, {3, 0, 0, 0}, {1, 2, 3, 4}, {0, 5, 6, 7}};
    const int32_t ids[4][4] = {
        {11, 12, 13, 14}, {21, 999, 0, 5000}, {31, 32, 33, 34}, {41, 42, 43, 44}};
    memcpy(r.pos, pos, sizeof(pos));
    memcpy(r.mlm, ids, sizeof(ids));
    snprintf(path, sizeof(path), "%s/shard_0.h5", dir);
    write_shard(path, &r, 0);
    rows_free(&r);
    pattern_of(pattern, sizeof(pattern), dir);
    td_data_options o = opts(T, P, V, 0, 1, 3);
    td_data *d = open_ok(pattern, &o);
    td_batch b;
    td_batch_init(&b, 4, T, P);
    next_ok(d, &b);
    const int32_t want_pos[4][4] = {{5, 9, 0, 0}, {3, 0, 0, 0}, {1, 2, 3, 4}, {0, 0, 0, 0}};
    const int32_t want_ids[4][4] = {{11, 12, 0, 0}, {21, 0, 0, 0}, {31, 32, 33, 34}, {0, 0, 0, 0}};
    const float want_w[4][4] = {{1, 1, 0, 0}, {1, 0, 0, 0}, {1, 1, 1, 1}, {0, 0, 0, 0}};
    for (int row = 0; row < 4; row++) {
        int64_t g = b.sample_ids[row];
        for (int k = 0; k < 4; k++) {
            assert_int_equal(b.mlm_positions[row * 4 + k], want_pos[g][k]);
            assert_int_equal(b.mlm_ids[row * 4 + k], want_ids[g][k]);
            assert_true(b.mlm_weights[row * 4 + k] == want_w[g][k]);
        }
    }
    assert_int_equal(td_batch_count_masked(&b), 2 + 1 + 4 + 0);
    td_batch_free(&b);
    td_data_free(d);
}

typedef struct {
    int64_t n_cand, n_pred, n_mask, n_random, n_same;
} mask_stats;

/* Checks one dynamically masked batch row against the original sample and
 * accumulates the 80/10/10 counts. Returns a hash of the chosen positions. */
static uint64_t check_dynamic_row(const td_batch *b, int64_t row, int64_t V, mask_stats *ms)
{
    const int64_t T = b->T, P = b->max_pred;
    rows_t want;
    rows_init(&want, 1, T, P);
    gen_row(&want, 0, b->sample_ids[row], V);
    const int32_t *ids = b->input_ids + row * T;
    assert_memory_equal(b->input_mask + row * T, want.mask, (size_t)T * 4);
    assert_memory_equal(b->segment_ids + row * T, want.seg, (size_t)T * 4);
    assert_int_equal(b->nsp_labels[row], want.nsp[0]);
    int64_t nc = 0;
    for (int64_t t = 0; t < T; t++)
        nc += want.mask[t] && want.ids[t] != CLS && want.ids[t] != SEP && want.ids[t] != PAD;
    int64_t n = (int64_t)nearbyint(0.15 * (double)nc);
    if (n < 1) n = 1;
    if (n > P) n = P;
    if (nc == 0) n = 0;
    int chosen[1024] = {0};
    uint64_t h = 0;
    for (int64_t k = 0; k < P; k++) {
        int32_t p = b->mlm_positions[row * P + k];
        float w = b->mlm_weights[row * P + k];
        if (k >= n) {
            assert_true(w == 0.0f);
            assert_int_equal(p, 0);
            assert_int_equal(b->mlm_ids[row * P + k], 0);
            continue;
        }
        assert_true(w == 1.0f);
        assert_true(p > 0 && p < T);
        if (k > 0) assert_true(p > b->mlm_positions[row * P + k - 1]);
        int32_t orig = want.ids[p];
        assert_int_equal(want.mask[p], 1); /* never padding */
        assert_true(orig != CLS && orig != SEP && orig != PAD);
        assert_int_equal(b->mlm_ids[row * P + k], orig); /* label = original id */
        assert_true(ids[p] >= 0 && ids[p] < V);
        if (ids[p] == MASK)
            ms->n_mask++;
        else if (ids[p] == orig)
            ms->n_same++;
        else
            ms->n_random++;
        chosen[p] = 1;
        h = h * 1000003u + (uint64_t)p;
    }
    for (int64_t t = 0; t < T; t++)
        if (!chosen[t]) assert_int_equal(ids[t], want.ids[t]);
    ms->n_cand += nc;
    ms->n_pred += n;
    rows_free(&want);
    return h;
}

/* Dynamic masking: 15% of candidates, 80/10/10, never [CLS]/[SEP]/padding,
 * labels are the original ids, deterministic per (seed, epoch, sample) and
 * different in the next epoch. The shard's masked_lm_* are ignored (one
 * file has none). */
static void test_dynamic_masking(void **state)
{
    (void)state;
    const int64_t T = 64, P = 12, V = 1000, N = 400;
    char dir[4096], pattern[4200], path[4200];
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir("data_dyn"));
    rows_t r;
    rows_gen(&r, N, T, P, V, 0);
    snprintf(path, sizeof(path), "%s/shard_0.h5", dir);
    write_shard(path, &r, 0);
    rows_free(&r);
    rows_gen(&r, N, T, P, V, N);
    snprintf(path, sizeof(path), "%s/shard_1.h5", dir);
    write_shard(path, &r, W_NO_MLM | W_ALT_TYPES);
    rows_free(&r);
    pattern_of(pattern, sizeof(pattern), dir);

    td_data_options o = opts(T, P, V, 0, 1, 2024);
    o.dynamic_masking = 1;
    td_data *d = open_ok(pattern, &o);
    assert_int_equal(td_data_rank_samples(d), 2 * N);
    const int64_t B = 16, n_batches = 2 * N / B;
    td_batch b;
    td_batch_init(&b, B, T, P);
    mask_stats ms = {0};
    uint64_t *h0 = calloc((size_t)(2 * N), sizeof(uint64_t));
    int32_t *ids0 = calloc((size_t)(2 * N * T), sizeof(int32_t));
    for (int64_t s = 0; s < n_batches; s++) {
        next_ok(d, &b);
        for (int64_t row = 0; row < B; row++) {
            int64_t g = b.sample_ids[row];
            h0[g] = check_dynamic_row(&b, row, V, &ms);
            memcpy(ids0 + g * T, b.input_ids + row * T, (size_t)T * 4);
        }
    }
    double rate = (double)ms.n_pred / (double)ms.n_cand;
    double f_mask = (double)ms.n_mask / (double)ms.n_pred;
    double f_rand = (double)ms.n_random / (double)ms.n_pred;
    double f_same = (double)ms.n_same / (double)ms.n_pred;
    print_message("dynamic masking: %lld predictions, rate %.4f, mask %.4f random %.4f same %.4f\n",
                  (long long)ms.n_pred, rate, f_mask, f_rand, f_same);
    assert_true(ms.n_pred > 3000);
    assert_true(fabs(rate - 0.15) < 0.01);
    assert_true(fabs(f_mask - 0.8) < 0.03);
    assert_true(fabs(f_rand - 0.1) < 0.025);
    assert_true(fabs(f_same - 0.1) < 0.025);

    /* epoch 1 masks the same samples differently */
    mask_stats ms1 = {0};
    int64_t differ = 0;
    for (int64_t s = 0; s < n_batches; s++) {
        next_ok(d, &b);
        for (int64_t row = 0; row < B; row++)
            differ += check_dynamic_row(&b, row, V, &ms1) != h0[b.sample_ids[row]];
    }
    assert_true(differ > N);
    td_data_free(d);

    /* the same seed reproduces epoch 0 exactly */
    d = open_ok(pattern, &o);
    for (int64_t s = 0; s < n_batches; s++) {
        next_ok(d, &b);
        for (int64_t row = 0; row < B; row++) {
            int64_t g = b.sample_ids[row];
            assert_memory_equal(b.input_ids + row * T, ids0 + g * T, (size_t)T * 4);
        }
    }
    td_data_free(d);
    td_batch_free(&b);
    free(h0);
    free(ids0);
}

/* Sum of token_counts over all files, any integer type; missing or wrong
 * length is an error naming the file and dataset. */
static void test_token_counts(void **state)
{
    (void)state;
    const int64_t V = 50;
    char dir[4096], pattern[4200], path[4200];
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir("data_counts"));
    int32_t c32[50];
    int64_t c64[50], want[50], got[51];
    for (int v = 0; v < 50; v++) {
        c32[v] = v * 3 + 1;
        c64[v] = (int64_t)v * 1000000007LL;
        want[v] = c32[v] + c64[v];
    }
    rows_t r;
    rows_gen(&r, 2, 16, 4, V, 0);
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/shard_%d.h5", dir, i);
        write_shard(path, &r, 0);
        hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
        assert_true(f >= 0);
        if (i == 0)
            write_ds(f, "token_counts", H5T_STD_I32LE, 1, 50, 0, c32, H5T_NATIVE_INT32, 0);
        else
            write_ds(f, "token_counts", H5T_STD_U64LE, 1, 50, 0, c64, H5T_NATIVE_INT64, 0);
        H5Fclose(f);
    }
    pattern_of(pattern, sizeof(pattern), dir);
    td_error e;
    memset(&e, 0, sizeof(e));
    td_status st = td_data_token_counts(pattern, V, got, &e);
    if (st != TD_OK) fail_msg("token counts: %s", e.msg);
    assert_memory_equal(got, want, sizeof(want));

    /* wrong length (counts needs room for the V it is told) */
    st = td_data_token_counts(pattern, V + 1, got, &e);
    assert_int_not_equal(st, TD_OK);
    assert_non_null(strstr(e.msg, "shard_0.h5"));
    assert_non_null(strstr(e.msg, "token_counts"));

    /* a third file without the dataset */
    snprintf(path, sizeof(path), "%s/shard_2.h5", dir);
    write_shard(path, &r, 0);
    rows_free(&r);
    st = td_data_token_counts(pattern, V, got, &e);
    assert_int_not_equal(st, TD_OK);
    assert_non_null(strstr(e.msg, "shard_2.h5"));
    assert_non_null(strstr(e.msg, "token_counts"));
}

/* ---- malformed input ------------------------------------------------------------- */

/* Opens dir/shard_*.h5 and expects failure with every needle in the message. */
static void expect_open_error(const char *dir, const td_data_options *o, const char *n1,
                              const char *n2, const char *n3)
{
    char pattern[4200];
    pattern_of(pattern, sizeof(pattern), dir);
    td_data *d = NULL;
    td_error e;
    memset(&e, 0, sizeof(e));
    td_status st = td_data_open(&d, pattern, o, &e);
    if (st == TD_OK) fail_msg("open of %s succeeded, expected an error with '%s'", dir, n2);
    assert_null(d);
    print_message("expected error: %s\n", e.msg);
    const char *needles[3] = {n1, n2, n3};
    for (int k = 0; k < 3; k++)
        if (needles[k] && !strstr(e.msg, needles[k]))
            fail_msg("error '%s' lacks '%s'", e.msg, needles[k]);
}

/* A directory with one generated shard (T=16, P=4 in the file unless
 * changed), modified by flags and by edit(). */
static void bad_shard_dir(char *dir, size_t n, const char *name, int64_t T, int64_t P,
                          unsigned flags, void (*edit)(rows_t *))
{
    snprintf(dir, n, "%s", tu_tmpdir(name));
    rows_t r;
    rows_gen(&r, 6, T, P, 100, 0);
    if (edit) edit(&r);
    char path[4200];
    snprintf(path, sizeof(path), "%s/shard_bad.h5", dir);
    write_shard(path, &r, flags);
    rows_free(&r);
}

/* ---- tokdrop-prep's attributes (shard_format.h) ------------------------------- */

/* Adds a string attribute to the root of path: fixed-length as tokdrop-prep
 * writes it, or variable-length as h5py does. */
static void add_attr_str(const char *path, const char *name, const char *value, int vlen)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t type = H5Tcopy(H5T_C_S1);
    assert_true(H5Tset_size(type, vlen ? H5T_VARIABLE : strlen(value) + 1) >= 0);
    if (vlen) assert_true(H5Tset_cset(type, H5T_CSET_UTF8) >= 0); /* as h5py writes str */
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0);
    assert_true(H5Awrite(a, type, vlen ? (const void *)&value : (const void *)value) >= 0);
    H5Aclose(a);
    H5Sclose(space);
    H5Tclose(type);
    H5Fclose(f);
}

static void add_attr_i64(const char *path, const char *name, int64_t value)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0);
    assert_true(H5Awrite(a, H5T_NATIVE_INT64, &value) >= 0);
    H5Aclose(a);
    H5Sclose(space);
    H5Fclose(f);
}

/* dir/shard_bad.h5 (6 rows, V = 100) with tokdrop-prep's attributes:
 * format, format_version (< 0: none) and vocab_hash (NULL: none). */
static void attr_shard(char *dir, size_t n, const char *name, const char *format, int64_t version,
                       const char *vocab_hash, int vlen)
{
    bad_shard_dir(dir, n, name, 16, 4, 0, NULL);
    char path[4200];
    snprintf(path, sizeof(path), "%s/shard_bad.h5", dir);
    if (format) add_attr_str(path, TD_SHARD_ATTR_FORMAT, format, vlen);
    if (version >= 0) add_attr_i64(path, TD_SHARD_ATTR_FORMAT_VERSION, version);
    if (vocab_hash) add_attr_str(path, TD_SHARD_ATTR_VOCAB_HASH, vocab_hash, vlen);
}

static void open_close_ok(const char *dir, const td_data_options *o)
{
    char pattern[4200];
    pattern_of(pattern, sizeof(pattern), dir);
    td_data_free(open_ok(pattern, o));
}

static void test_shard_attributes(void **state)
{
    (void)state;
    /* the run's vocabulary and its hash */
    char vocab_path[4096 + 16];
    snprintf(vocab_path, sizeof(vocab_path), "%s/vocab.txt", tu_tmpdir("attr_vocab"));
    FILE *vf = fopen(vocab_path, "w");
    assert_non_null(vf);
    for (int i = 0; i < 100; i++) fprintf(vf, "tok%d\n", i);
    fclose(vf);
    td_vocab vocab;
    td_error e = {0};
    if (td_vocab_load(&vocab, vocab_path, &e) != TD_OK) fail_msg("%s", e.msg);
    char good[TD_HASH_HEX_LEN];
    td_hash_hex(good, vocab.hash);
    td_data_options o = opts(16, 4, 100, 0, 1, 1);
    o.vocab_path = vocab_path;
    o.vocab_hash = vocab.hash;
    char dir[4096];

    /* NVIDIA's shards carry no attributes: read as before */
    attr_shard(dir, sizeof(dir), "attr_nvidia", NULL, -1, NULL, 0);
    open_close_ok(dir, &o);
    /* tokdrop-prep's, made with this vocabulary: fixed- or variable-length strings */
    attr_shard(dir, sizeof(dir), "attr_ok", TD_SHARD_FORMAT, TD_SHARD_FORMAT_VERSION, good, 0);
    open_close_ok(dir, &o);
    attr_shard(dir, sizeof(dir), "attr_ok_vlen", TD_SHARD_FORMAT, TD_SHARD_FORMAT_VERSION, good,
               1);
    open_close_ok(dir, &o);

    /* another vocabulary: both hashes, the shard and model.vocab named */
    attr_shard(dir, sizeof(dir), "attr_vocab", TD_SHARD_FORMAT, TD_SHARD_FORMAT_VERSION,
               "0123456789abcdef", 0);
    expect_open_error(dir, &o, "attr_vocab/shard_bad.h5: made with another vocabulary",
                      "its vocab_hash is 0123456789abcdef", good);
    expect_open_error(dir, &o, "model.vocab", vocab_path, NULL);
    /* ... which a run without model.vocab cannot check */
    td_data_options no_vocab = opts(16, 4, 100, 0, 1, 1);
    open_close_ok(dir, &no_vocab);
    /* a tokdrop-prep shard without vocab_hash */
    attr_shard(dir, sizeof(dir), "attr_no_hash", TD_SHARD_FORMAT, TD_SHARD_FORMAT_VERSION, NULL,
               0);
    expect_open_error(dir, &o, "attr_no_hash/shard_bad.h5", "vocab_hash missing", good);

    /* another format version (1: vocab_hash was FNV-1a of the file): both
     * versions named, and what to do */
    attr_shard(dir, sizeof(dir), "attr_v1", TD_SHARD_FORMAT, 1, good, 0);
    expect_open_error(dir, &o, "attr_v1/shard_bad.h5: shard format_version 1",
                      "reads version 2", "prepare the shards again");
    attr_shard(dir, sizeof(dir), "attr_v3", TD_SHARD_FORMAT, 3, good, 0);
    expect_open_error(dir, &no_vocab, "format_version 3", "reads version 2", NULL);
    attr_shard(dir, sizeof(dir), "attr_no_version", TD_SHARD_FORMAT, -1, good, 0);
    expect_open_error(dir, &o, "attr_no_version/shard_bad.h5", "format_version missing",
                      "expected 2");
    /* another format */
    attr_shard(dir, sizeof(dir), "attr_format", "something-else", TD_SHARD_FORMAT_VERSION, good,
               0);
    expect_open_error(dir, &o, "attr_format/shard_bad.h5", "format is 'something-else'",
                      "expected '" TD_SHARD_FORMAT "'");
    td_vocab_free(&vocab);
}

static void edit_id_too_big(rows_t *r)
{
    r->ids[3 * r->T + 5] = 100; /* row 3, column 5, == vocab_size */
}

static void edit_id_negative(rows_t *r)
{
    r->ids[2 * r->T + 1] = -4;
}

static void edit_mlm_id_too_big(rows_t *r)
{
    r->pos[4 * r->P + 0] = 3; /* row 4: one real prediction with id 100 */
    r->mlm[4 * r->P + 0] = 100;
    r->pos[4 * r->P + 1] = 0;
}

static void edit_segment_two(rows_t *r)
{
    r->seg[1 * r->T + 2] = 2;
}

static void test_errors(void **state)
{
    (void)state;
    char dir[4096], path[4200];
    td_data_options o = opts(16, 4, 100, 0, 1, 1);

    /* not an HDF5 file */
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir("data_err_nothdf5"));
    snprintf(path, sizeof(path), "%s/shard_text.h5", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("this is not HDF5\n", f);
    fclose(f);
    expect_open_error(dir, &o, "shard_text.h5", "not an HDF5 file", NULL);

    bad_shard_dir(dir, sizeof(dir), "data_err_missing", 16, 4, W_NO_SEG, NULL);
    expect_open_error(dir, &o, "shard_bad.h5", "segment_ids", "missing");

    bad_shard_dir(dir, sizeof(dir), "data_err_rank", 16, 4, W_MASK_RANK1, NULL);
    expect_open_error(dir, &o, "shard_bad.h5", "input_mask", "rank 1");

    bad_shard_dir(dir, sizeof(dir), "data_err_seqlen", 16, 4, 0, NULL);
    td_data_options o32 = opts(32, 4, 100, 0, 1, 1);
    expect_open_error(dir, &o32, "shard_bad.h5", "input_ids", "expected [N, 32] (data.seq_len)");

    bad_shard_dir(dir, sizeof(dir), "data_err_maxpred", 16, 6, 0, NULL);
    expect_open_error(dir, &o, "shard_bad.h5", "masked_lm_positions",
                      "shape [6, 6], expected [N, 4] (data.max_pred)");

    bad_shard_dir(dir, sizeof(dir), "data_err_id", 16, 4, 0, edit_id_too_big);
    expect_open_error(dir, &o, "shard_bad.h5", "dataset input_ids: row 3, column 5: 100",
                      "[0, 100)");

    bad_shard_dir(dir, sizeof(dir), "data_err_hugeid", 16, 4, W_IDS_HUGE, NULL);
    expect_open_error(dir, &o, "shard_bad.h5", "dataset input_ids: row 2, column 1: 5000000000",
                      NULL);

    bad_shard_dir(dir, sizeof(dir), "data_err_negid2", 16, 4, 0, edit_id_negative);
    expect_open_error(dir, &o, "shard_bad.h5", "dataset input_ids: row 2, column 1: -4", NULL);

    bad_shard_dir(dir, sizeof(dir), "data_err_mlmid", 16, 4, 0, edit_mlm_id_too_big);
    expect_open_error(dir, &o, "shard_bad.h5", "dataset masked_lm_ids: row 4, column 0: 100", NULL);

    bad_shard_dir(dir, sizeof(dir), "data_err_seg", 16, 4, 0, edit_segment_two);
    expect_open_error(dir, &o, "shard_bad.h5", "segment_ids", "expected 0 or 1");

    bad_shard_dir(dir, sizeof(dir), "data_err_float", 16, 4, W_NSP_FLOAT, NULL);
    expect_open_error(dir, &o, "shard_bad.h5", "next_sentence_labels", "integer");

    bad_shard_dir(dir, sizeof(dir), "data_err_float2", 16, 4, W_IDS_FLOAT, NULL);
    expect_open_error(dir, &o, "shard_bad.h5", "input_ids", "type float");

    bad_shard_dir(dir, sizeof(dir), "data_err_rows", 16, 4, W_NSP_SHORT, NULL);
    expect_open_error(dir, &o, "shard_bad.h5", "next_sentence_labels", "5 rows, expected 6");

    /* a malformed file owned by another rank still fails every rank */
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir("data_err_other"));
    rows_t r;
    rows_gen(&r, 6, 16, 4, 100, 0);
    snprintf(path, sizeof(path), "%s/shard_0.h5", dir);
    write_shard(path, &r, 0);
    snprintf(path, sizeof(path), "%s/shard_1.h5", dir);
    write_shard(path, &r, W_NO_SEG);
    rows_free(&r);
    td_data_options o2 = opts(16, 4, 100, 0, 2, 1);
    expect_open_error(dir, &o2, "shard_1.h5", "segment_ids", NULL);

    /* dynamic masking does not need masked_lm_*, static masking does */
    bad_shard_dir(dir, sizeof(dir), "data_err_nomlm", 16, 4, W_NO_MLM, NULL);
    expect_open_error(dir, &o, "shard_bad.h5", "masked_lm_positions", "missing");
    td_data_options od = o;
    od.dynamic_masking = 1;
    char pattern[4200];
    pattern_of(pattern, sizeof(pattern), dir);
    td_data *d = open_ok(pattern, &od);
    td_data_free(d);

    /* a window that cannot hold two samples */
    od.memory_bytes = 100;
    expect_open_error(dir, &od, "data.memory_mb", "room for 2", NULL);

    /* a glob that matches nothing */
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir("data_err_empty"));
    expect_open_error(dir, &o, dir, "shard_*.h5", "no file matches");
    td_error e;
    memset(&e, 0, sizeof(e));
    int64_t counts[100];
    pattern_of(pattern, sizeof(pattern), dir);
    assert_int_not_equal(td_data_token_counts(pattern, 100, counts, &e), TD_OK);
    assert_non_null(strstr(e.msg, pattern));

    /* a batch of the wrong shape is an argument error, not a crash */
    bad_shard_dir(dir, sizeof(dir), "data_err_batch", 16, 4, 0, NULL);
    pattern_of(pattern, sizeof(pattern), dir);
    d = open_ok(pattern, &o);
    td_batch b;
    td_batch_init(&b, 2, 32, 4);
    assert_int_equal(td_data_next(d, &b, &e), TD_ERR_ARG);
    assert_non_null(strstr(e.msg, "data.seq_len"));
    td_batch_free(&b);
    td_data_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_helpers),
        cmocka_unit_test(test_rows_exact),
        cmocka_unit_test(test_ownership),
        cmocka_unit_test(test_fewer_files_than_ranks),
        cmocka_unit_test(test_epochs),
        cmocka_unit_test(test_cursor_resume),
        cmocka_unit_test(test_streaming_epochs),
        cmocka_unit_test(test_streaming_resume),
        cmocka_unit_test(test_ordered_set),
        cmocka_unit_test(test_streaming_bad_value),
        cmocka_unit_test(test_mlm_weights),
        cmocka_unit_test(test_dynamic_masking),
        cmocka_unit_test(test_token_counts),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_shard_attributes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
