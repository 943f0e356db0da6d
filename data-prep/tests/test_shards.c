/* Shards end to end through tdp_shards_run on a synthetic corpus whose
 * documents are recognizable (every line of document k holds the word
 * "dock"): the NVIDIA dataset names, types and shapes, read back with the
 * HDF5 C API; the attributes; the consistency of ids, masks, segments,
 * predictions and token_counts; whole documents held out for eval; masking
 * none; identical output for 1 and 3 threads; removal of stale shards. */
#include "prep_testutil.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "shard_writer.h"
#include "shards.h"
#include "tokdrop/train/data.h"
#include "tokdrop/base/hash.h"
#include "tokdrop/base/vocab.h"

enum { N_DOCS = 40, T = 32, P = 5 };

static const char *WORDS[] = {"the", "cat", "sat", "on", "mat", "a", "dog", "ran", "far",
                              "away", "and", "then", "came", "back", "home", ".", ","};
enum { N_WORDS = sizeof(WORDS) / sizeof(WORDS[0]) };

static char VOCAB_PATH[1100], FILE_A[1100], FILE_B[1200], DIR[1024];
static char *INPUTS[2];

/* Document k: 3 to 9 lines, each "dock" and a few words. */
static void append_doc(char *buf, size_t *n, int k, uint64_t *rng)
{
    int lines = 3 + (int)(k % 7);
    for (int l = 0; l < lines; l++) {
        *n += (size_t)sprintf(buf + *n, "Doc%d", k);
        int words = 4 + (int)((*rng >> 33) % 12);
        for (int w = 0; w < words; w++) {
            *rng = *rng * 6364136223846793005ULL + 1442695040888963407ULL;
            *n += (size_t)sprintf(buf + *n, " %s", WORDS[(*rng >> 33) % N_WORDS]);
        }
        buf[(*n)++] = '\n';
    }
    buf[(*n)++] = '\n'; /* blank line: end of document */
}

static int setup(void **state)
{
    (void)state;
    const char *dir = pt_tmpdir("shards");
    snprintf(DIR, sizeof(DIR), "%s", dir);
    /* vocabulary: specials, doc0..doc39, the words */
    char vocab[4096];
    size_t n = 0;
    n += (size_t)sprintf(vocab + n, "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n");
    for (int k = 0; k < N_DOCS; k++) n += (size_t)sprintf(vocab + n, "doc%d\n", k);
    for (int w = 0; w < N_WORDS; w++) n += (size_t)sprintf(vocab + n, "%s\n", WORDS[w]);
    snprintf(VOCAB_PATH, sizeof(VOCAB_PATH), "%s", pt_write_file(DIR, "vocab.txt", vocab, n));

    char *buf = malloc(1 << 20);
    uint64_t rng = 42;
    n = 0;
    for (int k = 0; k < N_DOCS / 2; k++) append_doc(buf, &n, k, &rng);
    snprintf(FILE_A, sizeof(FILE_A), "%s", pt_write_file(DIR, "a.txt", buf, n));
    /* the second half gzip-compressed */
    n = 0;
    for (int k = N_DOCS / 2; k < N_DOCS; k++) append_doc(buf, &n, k, &rng);
    snprintf(FILE_B, sizeof(FILE_B), "%s/b.txt.gz", DIR);
    gzFile gz = gzopen(FILE_B, "wb");
    assert_non_null(gz);
    assert_int_equal(gzwrite(gz, buf, (unsigned)n), (int)n);
    assert_int_equal(gzclose(gz), Z_OK);
    free(buf);
    INPUTS[0] = FILE_A;
    INPUTS[1] = FILE_B;
    return 0;
}

static tdp_shards_options options(const char *out_dir, int n_jobs)
{
    tdp_shards_options o = {
        .vocab_path = VOCAB_PATH, .out_dir = out_dir, .n_shards = 3,
        .inst = {.seq_len = T, .max_pred = P, .dupe_factor = 2, .short_seq_prob = 0.1,
                 .masked_lm_prob = 0.15, .masking = TDP_MASKING_STATIC, .seed = 5},
        .eval_fraction = 0.2, .lower_case = 1, .n_jobs = n_jobs, .quiet = 1,
    };
    return o;
}

static void run_ok(const tdp_shards_options *o, tdp_shards_summary *sum)
{
    td_error err = {0};
    if (tdp_shards_run(o, (const char *const *)INPUTS, 2, sum, &err) != TD_OK)
        fail_msg("%s", err.msg);
}

/* ---- reading a shard back ----------------------------------------------------------- */

typedef struct {
    int64_t n;
    int64_t *input_ids, *input_mask, *segment_ids, *pos, *mlm_ids, *nsp, *counts;
} shard;

/* Checks name, integer class, byte size, signedness and shape; reads the
 * values converted to int64. */
static int64_t *read_ds(hid_t f, const char *name, size_t size, int rank, const hsize_t *dims)
{
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    if (ds < 0) fail_msg("dataset %s missing", name);
    hid_t type = H5Dget_type(ds);
    assert_int_equal(H5Tget_class(type), H5T_INTEGER);
    if (H5Tget_size(type) != size) fail_msg("%s: %zu-byte integers, expected %zu", name,
                                            H5Tget_size(type), size);
    assert_int_equal(H5Tget_sign(type), H5T_SGN_2);
    H5Tclose(type);
    hid_t space = H5Dget_space(ds);
    assert_int_equal(H5Sget_simple_extent_ndims(space), rank);
    hsize_t d[2] = {0, 0};
    H5Sget_simple_extent_dims(space, d, NULL);
    size_t total = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] != 0 && d[i] != dims[i])
            fail_msg("%s: dimension %d is %llu, expected %llu", name, i, (unsigned long long)d[i],
                     (unsigned long long)dims[i]);
        total *= d[i];
    }
    H5Sclose(space);
    int64_t *v = malloc((total ? total : 1) * sizeof(int64_t));
    assert_true(H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Dclose(ds);
    return v;
}

static void read_attr_str(hid_t f, const char *name, char *out, size_t out_size)
{
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    if (a < 0) fail_msg("attribute %s missing", name);
    hid_t type = H5Aget_type(a);
    assert_int_equal(H5Tget_class(type), H5T_STRING);
    size_t n = H5Tget_size(type);
    assert_true(n < out_size);
    assert_true(H5Aread(a, type, out) >= 0);
    out[n] = '\0';
    H5Tclose(type);
    H5Aclose(a);
}

static int64_t read_attr_i64(hid_t f, const char *name)
{
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    if (a < 0) fail_msg("attribute %s missing", name);
    int64_t v = 0;
    assert_true(H5Aread(a, H5T_NATIVE_INT64, &v) >= 0);
    H5Aclose(a);
    return v;
}

static void read_shard(shard *s, const char *path, const char *masking)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) fail_msg("cannot open %s", path);
    hid_t ds = H5Dopen2(f, "input_ids", H5P_DEFAULT);
    assert_true(ds >= 0);
    hid_t space = H5Dget_space(ds);
    hsize_t d[2];
    H5Sget_simple_extent_dims(space, d, NULL);
    H5Sclose(space);
    H5Dclose(ds);
    s->n = (int64_t)d[0];
    hsize_t nt[2] = {d[0], T}, np[2] = {d[0], P}, n1[1] = {d[0]}, nv[1] = {N_DOCS + N_WORDS + 5};
    s->input_ids = read_ds(f, "input_ids", 4, 2, nt);
    s->input_mask = read_ds(f, "input_mask", 1, 2, nt);
    s->segment_ids = read_ds(f, "segment_ids", 1, 2, nt);
    s->pos = read_ds(f, "masked_lm_positions", 4, 2, np);
    s->mlm_ids = read_ds(f, "masked_lm_ids", 4, 2, np);
    s->nsp = read_ds(f, "next_sentence_labels", 1, 1, n1);
    s->counts = read_ds(f, "token_counts", 8, 1, nv);

    char str[4096];
    read_attr_str(f, "format", str, sizeof(str));
    assert_string_equal(str, "tokdrop-shard");
    assert_int_equal(read_attr_i64(f, "format_version"), TD_SHARD_FORMAT_VERSION);
    assert_int_equal(TD_SHARD_FORMAT_VERSION, 2);
    assert_int_equal(read_attr_i64(f, "seq_length"), T);
    assert_int_equal(read_attr_i64(f, "max_pred"), P);
    read_attr_str(f, "masking", str, sizeof(str));
    assert_string_equal(str, masking);
    read_attr_str(f, "vocab_hash", str, sizeof(str));
    /* the hash the trainer computes of the same file */
    td_vocab tv;
    td_error verr = {0};
    if (td_vocab_load(&tv, VOCAB_PATH, &verr) != TD_OK) fail_msg("%s", verr.msg);
    char want[TD_HASH_HEX_LEN];
    td_hash_hex(want, tv.hash);
    td_vocab_free(&tv);
    assert_string_equal(str, want);
    read_attr_str(f, "source_files", str, sizeof(str));
    char files[2300];
    snprintf(files, sizeof(files), "%s\n%s", FILE_A, FILE_B);
    assert_string_equal(str, files);
    H5Fclose(f);
}

static void free_shard(shard *s)
{
    free(s->input_ids);
    free(s->input_mask);
    free(s->segment_ids);
    free(s->pos);
    free(s->mlm_ids);
    free(s->nsp);
    free(s->counts);
}

/* Row consistency; marks the documents seen (by their docK token) in seen. */
static void check_rows(const shard *s, int static_masking, int *seen)
{
    const int64_t V = N_DOCS + N_WORDS + 5;
    int64_t *counts = calloc((size_t)V, sizeof(int64_t));
    for (int64_t i = 0; i < s->n; i++) {
        const int64_t *ids = s->input_ids + i * T, *mask = s->input_mask + i * T;
        const int64_t *seg = s->segment_ids + i * T, *pos = s->pos + i * P;
        const int64_t *lab = s->mlm_ids + i * P;
        int64_t orig[T];
        int64_t len = 0;
        while (len < T && mask[len] == 1) len++;
        assert_true(len >= 5);
        for (int64_t t = len; t < T; t++) {
            assert_int_equal(mask[t], 0);
            assert_int_equal(ids[t], 0); /* [PAD] */
            assert_int_equal(seg[t], 0);
        }
        for (int64_t t = 0; t < len; t++) orig[t] = ids[t];
        int64_t n_pred = 0;
        while (n_pred < P && pos[n_pred] != 0) n_pred++;
        for (int64_t k = n_pred; k < P; k++) {
            assert_int_equal(pos[k], 0);
            assert_int_equal(lab[k], 0);
        }
        if (static_masking) assert_true(n_pred >= 1);
        else assert_int_equal(n_pred, 0);
        for (int64_t k = 0; k < n_pred; k++) {
            assert_true(pos[k] > 0 && pos[k] < len);
            if (k > 0) assert_true(pos[k] > pos[k - 1]);
            orig[pos[k]] = lab[k];
        }
        assert_int_equal(orig[0], 2); /* [CLS] */
        assert_int_equal(orig[len - 1], 3); /* [SEP] */
        /* segments: 0 through the first [SEP], then 1 */
        int64_t sep = 1;
        while (orig[sep] != 3) sep++;
        for (int64_t t = 0; t < len; t++) assert_int_equal(seg[t], t <= sep ? 0 : 1);
        assert_true(s->nsp[i] == 0 || s->nsp[i] == 1);
        for (int64_t t = 0; t < len; t++) {
            assert_true(orig[t] >= 0 && orig[t] < V);
            counts[orig[t]]++;
            if (orig[t] >= 5 && orig[t] < 5 + N_DOCS) seen[orig[t] - 5] = 1;
        }
        /* without a random next, both segments come from one document */
        if (s->nsp[i] == 0) {
            int64_t doc = -1;
            for (int64_t t = 0; t < len; t++)
                if (orig[t] >= 5 && orig[t] < 5 + N_DOCS) {
                    if (doc < 0) doc = orig[t];
                    assert_int_equal(orig[t], doc);
                }
        }
    }
    for (int64_t v = 0; v < V; v++) assert_int_equal(counts[v], s->counts[v]);
    free(counts);
}

static void shard_path(char *out, size_t n, const char *dir, const char *split, int k)
{
    snprintf(out, n, "%s/%s/shard_%05d.h5", dir, split, k);
}

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

static void test_shards_layout_and_content(void **state)
{
    (void)state;
    char out[1200], path[1300];
    snprintf(out, sizeof(out), "%s/out1", DIR);
    /* a stale shard of an earlier run must disappear */
    mkdir(out, 0777);
    snprintf(path, sizeof(path), "%s/train", out);
    mkdir(path, 0777);
    pt_write_file(path, "shard_00007.h5", "junk", 4);

    tdp_shards_options o = options(out, 1);
    tdp_shards_summary sum;
    run_ok(&o, &sum);
    assert_int_equal(sum.n_docs, N_DOCS);
    assert_int_equal(sum.n_eval_docs, 8);
    assert_int_equal(sum.n_train_docs, 32);
    assert_int_equal(sum.n_train_shards, 3);
    assert_int_equal(sum.n_eval_shards, 1);
    assert_int_equal(sum.n_unk, 0);
    shard_path(path, sizeof(path), out, "train", 7);
    assert_false(exists(path));
    shard_path(path, sizeof(path), out, "train", 3);
    assert_false(exists(path));

    int seen_train[N_DOCS] = {0}, seen_eval[N_DOCS] = {0};
    int64_t n_train = 0, min_n = INT64_MAX, max_n = 0;
    for (int k = 0; k < 3; k++) {
        shard s;
        shard_path(path, sizeof(path), out, "train", k);
        read_shard(&s, path, "static");
        check_rows(&s, 1, seen_train);
        n_train += s.n;
        if (s.n < min_n) min_n = s.n;
        if (s.n > max_n) max_n = s.n;
        free_shard(&s);
    }
    assert_int_equal(n_train, sum.n_train_seqs);
    assert_true(max_n - min_n <= 1);
    shard s;
    shard_path(path, sizeof(path), out, "eval", 0);
    read_shard(&s, path, "static");
    check_rows(&s, 1, seen_eval);
    assert_int_equal(s.n, sum.n_eval_seqs);
    free_shard(&s);
    /* whole documents held out: every document in exactly one split */
    int n_eval = 0;
    for (int k = 0; k < N_DOCS; k++) {
        assert_true(seen_train[k] + seen_eval[k] == 1);
        n_eval += seen_eval[k];
    }
    assert_int_equal(n_eval, 8);

    /* the trainer reads them with the vocabulary they were made with, and
     * refuses them with another one (two tokens swapped), naming both hashes */
    td_vocab tv;
    td_error err = {0};
    if (td_vocab_load(&tv, VOCAB_PATH, &err) != TD_OK) fail_msg("%s", err.msg);
    char pattern[1300];
    snprintf(pattern, sizeof(pattern), "%s/train/*.h5", out);
    td_data_options dopt = {.seq_len = T, .max_pred = P, .vocab_size = tv.size, .n_ranks = 1,
                            .vocab_path = VOCAB_PATH, .vocab_hash = tv.hash};
    td_data *data = NULL;
    if (td_data_open(&data, pattern, &dopt, &err) != TD_OK) fail_msg("%s", err.msg);
    td_data_free(data);
    char *swap = tv.tokens[5];
    tv.tokens[5] = tv.tokens[6];
    tv.tokens[6] = swap;
    char shard_hash[TD_HASH_HEX_LEN], other_hash[TD_HASH_HEX_LEN];
    td_hash_hex(shard_hash, tv.hash);
    dopt.vocab_hash = td_vocab_hash((const char *const *)tv.tokens, tv.size);
    dopt.vocab_path = "other_vocab.txt";
    td_hash_hex(other_hash, dopt.vocab_hash);
    assert_int_equal(td_data_open(&data, pattern, &dopt, &err), TD_ERR_FORMAT);
    assert_null(data);
    const char *needles[4] = {"shard_00000.h5: made with another vocabulary", shard_hash,
                              other_hash, "other_vocab.txt"};
    for (int k = 0; k < 4; k++)
        if (!strstr(err.msg, needles[k])) fail_msg("error '%s' lacks '%s'", err.msg, needles[k]);
    td_vocab_free(&tv);
}

static void compare_files(const char *a, const char *b)
{
    shard x, y;
    read_shard(&x, a, "static");
    read_shard(&y, b, "static");
    assert_int_equal(x.n, y.n);
    assert_memory_equal(x.input_ids, y.input_ids, (size_t)(x.n * T) * sizeof(int64_t));
    assert_memory_equal(x.segment_ids, y.segment_ids, (size_t)(x.n * T) * sizeof(int64_t));
    assert_memory_equal(x.pos, y.pos, (size_t)(x.n * P) * sizeof(int64_t));
    assert_memory_equal(x.mlm_ids, y.mlm_ids, (size_t)(x.n * P) * sizeof(int64_t));
    assert_memory_equal(x.nsp, y.nsp, (size_t)x.n * sizeof(int64_t));
    free_shard(&x);
    free_shard(&y);
}

static void test_threads_do_not_change_output(void **state)
{
    (void)state;
    char out1[1200], out3[1200], a[1300], b[1300];
    snprintf(out1, sizeof(out1), "%s/j1", DIR);
    snprintf(out3, sizeof(out3), "%s/j3", DIR);
    tdp_shards_options o1 = options(out1, 1), o3 = options(out3, 3);
    tdp_shards_summary s1, s3;
    run_ok(&o1, &s1);
    run_ok(&o3, &s3);
    assert_int_equal(s1.n_train_seqs, s3.n_train_seqs);
    for (int k = 0; k < 3; k++) {
        shard_path(a, sizeof(a), out1, "train", k);
        shard_path(b, sizeof(b), out3, "train", k);
        compare_files(a, b);
    }
    shard_path(a, sizeof(a), out1, "eval", 0);
    shard_path(b, sizeof(b), out3, "eval", 0);
    compare_files(a, b);
}

static void test_masking_none(void **state)
{
    (void)state;
    char out[1200], path[1300];
    snprintf(out, sizeof(out), "%s/none", DIR);
    tdp_shards_options o = options(out, 2);
    o.inst.masking = TDP_MASKING_NONE;
    o.eval_fraction = 0.0;
    o.n_shards = 0; /* automatic: one shard */
    tdp_shards_summary sum;
    run_ok(&o, &sum);
    assert_int_equal(sum.n_train_shards, 1);
    assert_int_equal(sum.n_eval_docs, 0);
    snprintf(path, sizeof(path), "%s/eval", out);
    assert_false(exists(path));
    shard s;
    int seen[N_DOCS] = {0};
    shard_path(path, sizeof(path), out, "train", 0);
    read_shard(&s, path, "none");
    check_rows(&s, 0, seen);
    for (int64_t i = 0; i < s.n * T; i++) assert_true(s.input_ids[i] != 4); /* no [MASK] */
    for (int k = 0; k < N_DOCS; k++) assert_int_equal(seen[k], 1);
    free_shard(&s);
}

static void test_long_source_list(void **state)
{
    (void)state;
    /* source_files of a corpus of thousands of files exceeds the 64 KiB of
     * a compact HDF5 attribute */
    size_t n = 200000;
    char *sources = malloc(n + 1);
    for (size_t i = 0; i < n; i++) sources[i] = (i % 50 == 49) ? '\n' : 'a' + (char)(i % 26);
    sources[n] = '\0';
    tdp_shard_arrays a;
    tdp_shard_arrays_init(&a, 2, 8, 2, 10);
    tdp_shard_attrs at = {.vocab_hash = "0123456789abcdef", .masking = "none",
                          .source_files = sources, .split = "train"};
    char path[1200];
    snprintf(path, sizeof(path), "%s/long_attr.h5", DIR);
    td_error err = {0};
    if (tdp_shard_write(path, &a, &at, &err) != TD_OK) fail_msg("%s", err.msg);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    char *back = malloc(n + 16);
    read_attr_str(f, "source_files", back, n + 16);
    assert_string_equal(back, sources);
    H5Fclose(f);
    free(back);
    free(sources);
    tdp_shard_arrays_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shards_layout_and_content),
        cmocka_unit_test(test_threads_do_not_change_output),
        cmocka_unit_test(test_masking_none),
        cmocka_unit_test(test_long_source_list),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
