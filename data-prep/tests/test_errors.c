/* Bad input gives a status and one message that names the file (and line)
 * and what was expected; nothing crashes. */
#include "prep_testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "corpus.h"
#include "input.h"
#include "shards.h"
#include "tokdrop/base/vocab.h"
#include "vocab_learn.h"
#include "wordpiece.h"

static const char *DIR;
static char VOCAB[1100];

static int setup(void **state)
{
    (void)state;
    DIR = pt_tmpdir("errors");
    const char *v = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n";
    snprintf(VOCAB, sizeof(VOCAB), "%s", pt_write_file(DIR, "vocab.txt", v, strlen(v)));
    return 0;
}

static void assert_contains(const char *msg, const char *part)
{
    if (!strstr(msg, part)) fail_msg("message \"%s\" does not contain \"%s\"", msg, part);
    assert_null(strchr(msg, '\n')); /* one line */
}

/* Reads the corpus of the given files; returns the status, message in err. */
static td_status read_corpus(const char *const *files, int64_t n, int jobs, td_error *err)
{
    tdp_vocab v;
    assert_int_equal(tdp_vocab_load(&v, VOCAB, err), TD_OK);
    tdp_inputs in;
    td_status st = tdp_inputs_expand(&in, files, n, 0, err);
    if (st == TD_OK) {
        tdp_corpus c;
        st = tdp_corpus_read(&c, &in, &v, 1, 0, jobs, NULL, NULL, err);
        if (st == TD_OK) tdp_corpus_free(&c);
        tdp_inputs_free(&in);
    }
    tdp_vocab_free(&v);
    return st;
}

static void test_missing_input(void **state)
{
    (void)state;
    td_error err = {0};
    const char *files[] = {"/nonexistent/corpus.txt"};
    assert_int_equal(read_corpus(files, 1, 1, &err), TD_ERR_IO);
    assert_contains(err.msg, "/nonexistent/corpus.txt");
    tdp_inputs in;
    assert_int_equal(tdp_inputs_expand(&in, NULL, 0, 0, &err), TD_ERR_ARG);
    assert_contains(err.msg, "INPUT");
}

static void test_empty_corpus(void **state)
{
    (void)state;
    td_error err = {0};
    const char *f = pt_write_file(DIR, "blank.txt", "\n  \n\t\n\n", 7);
    const char *files[] = {f};
    assert_int_equal(read_corpus(files, 1, 1, &err), TD_ERR_FORMAT);
    assert_contains(err.msg, "blank.txt");
    assert_contains(err.msg, "empty corpus");
    /* an empty directory */
    char sub[1200];
    snprintf(sub, sizeof(sub), "%s/emptydir", DIR);
    assert_int_equal(mkdir(sub, 0777), 0);
    tdp_inputs in;
    const char *dirs[] = {sub};
    assert_int_equal(tdp_inputs_expand(&in, dirs, 1, 0, &err), TD_ERR_IO);
    assert_contains(err.msg, "emptydir");
    /* vocabulary learning on nothing */
    tdp_vocab_learn_options o = {.vocab_size = 100, .lower_case = 1, .n_jobs = 1, .quiet = 1,
                                 .min_pair_count = 2};
    tdp_vocab_learn_summary sum;
    char out[1200];
    snprintf(out, sizeof(out), "%s/learned.txt", DIR);
    assert_int_equal(tdp_vocab_learn(out, files, 1, &o, &sum, &err), TD_ERR_FORMAT);
    assert_contains(err.msg, "blank.txt");
}

static void test_bad_vocab(void **state)
{
    (void)state;
    td_error err = {0};
    tdp_vocab v;
    const char *no_mask = "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n";
    const char *p = pt_write_file(DIR, "nomask.txt", no_mask, strlen(no_mask));
    assert_int_equal(tdp_vocab_load(&v, p, &err), TD_ERR_FORMAT);
    assert_contains(err.msg, "nomask.txt");
    assert_contains(err.msg, "[MASK]");
    p = pt_write_file(DIR, "empty_vocab.txt", "", 0);
    assert_int_equal(tdp_vocab_load(&v, p, &err), TD_ERR_FORMAT);
    assert_contains(err.msg, "empty_vocab.txt");
    const char *bad = "[PAD]\n[UNK]\n[CLS]\nca\xff\n[SEP]\n[MASK]\n";
    p = pt_write_file(DIR, "bad_vocab.txt", bad, strlen(bad));
    assert_int_equal(tdp_vocab_load(&v, p, &err), TD_ERR_FORMAT);
    assert_contains(err.msg, "bad_vocab.txt:4:");
    assert_contains(err.msg, "UTF-8");
    assert_int_equal(tdp_vocab_load(&v, "/nonexistent/vocab.txt", &err), TD_ERR_IO);
    assert_contains(err.msg, "/nonexistent/vocab.txt");
    /* surrounding whitespace and \r\n line ends are stripped, as load_vocab does */
    const char *crlf = "[PAD]\r\n [UNK]\r\n[CLS]\r\n[SEP]\r\n[MASK]\r\nhello \r\n";
    p = pt_write_file(DIR, "crlf.txt", crlf, strlen(crlf));
    assert_int_equal(tdp_vocab_load(&v, p, &err), TD_OK);
    assert_int_equal(v.unk_id, 1);
    assert_int_equal(tdp_vocab_find(&v, "hello"), 5);
    tdp_vocab_free(&v);
}

/* tokdrop-prep and the trainer read a vocabulary the same way: "[CLS] "
 * (a trailing space) and other surrounding whitespace (tab, U+3000, U+00A0)
 * give the same ids in both, and the same hash (the shards' vocab_hash). */
static void test_vocab_same_as_trainer(void **state)
{
    (void)state;
    td_error err = {0};
    const char text[] = "[PAD]\n[UNK]\t\n[CLS] \n\xe3\x80\x80[SEP]\r\n[MASK]\xc2\xa0\nhello world\n";
    const char *p = pt_write_file(DIR, "spaces.txt", text, sizeof(text) - 1);
    tdp_vocab v;
    if (tdp_vocab_load(&v, p, &err) != TD_OK) fail_msg("%s", err.msg);
    td_vocab t;
    if (td_vocab_load(&t, p, &err) != TD_OK) fail_msg("%s", err.msg);
    assert_int_equal(v.n_tokens, t.size);
    assert_int_equal(v.cls_id, 2);
    assert_int_equal(td_vocab_find(&t, "[CLS]"), 2);
    assert_int_equal(v.sep_id, 3);
    assert_int_equal(td_vocab_find(&t, "[SEP]"), 3);
    assert_int_equal(v.mask_id, 4);
    for (int64_t i = 0; i < t.size; i++)
        assert_string_equal(tdp_vocab_token(&v, (int32_t)i), t.tokens[i]);
    assert_int_equal(tdp_vocab_find(&v, "hello world"), 5);
    assert_true(v.hash == t.hash);
    /* tdp_vocab_from_tokens (vocabulary learning) hashes the same way */
    tdp_vocab m;
    if (tdp_vocab_from_tokens(&m, (const char *const *)t.tokens, t.size, "tokens", &err) != TD_OK)
        fail_msg("%s", err.msg);
    assert_true(m.hash == t.hash);
    tdp_vocab_free(&m);
    td_vocab_free(&t);
    tdp_vocab_free(&v);
}

static void test_invalid_utf8_names_file_and_line(void **state)
{
    (void)state;
    td_error err = {0};
    const char *good = pt_write_file(DIR, "good.txt", "hello world\n\nworld\n", 19);
    const char *text = "hello\nworld\nhel\xc3\x28lo\nworld\n";
    char bad[1200];
    snprintf(bad, sizeof(bad), "%s", pt_write_file(DIR, "bad.txt", text, strlen(text)));
    const char *files[] = {good, bad};
    for (int jobs = 1; jobs <= 3; jobs += 2) {
        assert_int_equal(read_corpus(files, 2, jobs, &err), TD_ERR_FORMAT);
        assert_contains(err.msg, "bad.txt:3:");
        assert_contains(err.msg, "invalid UTF-8");
    }
    /* a line number far into a file read in several chunks */
    size_t n = 3 * TDP_CHUNK_BYTES;
    char *big = malloc(n + 64);
    size_t k = 0;
    int64_t lines = 0;
    while (k + 12 < n) {
        memcpy(big + k, "hello world\n", 12);
        k += 12;
        lines++;
    }
    memcpy(big + k, "bad \xed\xa0\x80 surrogate\n", 19);
    k += 19;
    const char *bigp = pt_write_file(DIR, "big.txt", big, k);
    free(big);
    const char *files2[] = {bigp, bad};
    char want[64];
    snprintf(want, sizeof(want), "big.txt:%lld:", (long long)(lines + 1));
    for (int jobs = 1; jobs <= 3; jobs += 2) {
        assert_int_equal(read_corpus(files2, 2, jobs, &err), TD_ERR_FORMAT);
        assert_contains(err.msg, want); /* the first error in input order */
    }
}

static void test_corrupt_gzip(void **state)
{
    (void)state;
    td_error err = {0};
    /* a gzip header followed by garbage */
    const char junk[] = "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage-not-deflate";
    const char *p = pt_write_file(DIR, "corrupt.txt.gz", junk, sizeof(junk) - 1);
    const char *files[] = {p};
    td_status st = read_corpus(files, 1, 1, &err);
    assert_true(st != TD_OK);
    assert_contains(err.msg, "corrupt.txt.gz");
}

static void test_option_ranges(void **state)
{
    (void)state;
    td_error err = {0};
    tdp_shards_options o = {
        .vocab_path = VOCAB, .out_dir = DIR,
        .inst = {.seq_len = 4, .max_pred = 2, .dupe_factor = 1, .masked_lm_prob = 0.15},
        .n_jobs = 1,
    };
    assert_int_equal(tdp_shards_check_options(&o, &err), TD_ERR_ARG);
    assert_contains(err.msg, "--seq-len");
    o.inst.seq_len = 16;
    o.inst.max_pred = 17;
    assert_int_equal(tdp_shards_check_options(&o, &err), TD_ERR_ARG);
    assert_contains(err.msg, "--max-pred");
    o.inst.max_pred = 2;
    o.eval_fraction = 1.0;
    assert_int_equal(tdp_shards_check_options(&o, &err), TD_ERR_ARG);
    assert_contains(err.msg, "--eval-fraction");
    o.eval_fraction = 0.0;
    assert_int_equal(tdp_shards_check_options(&o, &err), TD_OK);
}

static void test_eval_needs_two_documents(void **state)
{
    (void)state;
    td_error err = {0};
    const char *one = pt_write_file(DIR, "one.txt", "hello world\nworld\n", 18);
    char out[1200];
    snprintf(out, sizeof(out), "%s/out_one", DIR);
    tdp_shards_options o = {
        .vocab_path = VOCAB, .out_dir = out,
        .inst = {.seq_len = 16, .max_pred = 2, .dupe_factor = 1, .masked_lm_prob = 0.15,
                 .masking = TDP_MASKING_STATIC, .seed = 1},
        .eval_fraction = 0.5, .lower_case = 1, .n_jobs = 1, .quiet = 1,
    };
    tdp_shards_summary sum;
    assert_int_equal(tdp_shards_run(&o, &one, 1, &sum, &err), TD_ERR_ARG);
    assert_contains(err.msg, "--eval-fraction");
    /* one document without eval works, even though every pair is then a
     * "random" next from the same document */
    o.eval_fraction = 0.0;
    if (tdp_shards_run(&o, &one, 1, &sum, &err) != TD_OK) fail_msg("%s", err.msg);
    assert_int_equal(sum.n_docs, 1);
    assert_true(sum.n_train_seqs >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_input),
        cmocka_unit_test(test_empty_corpus),
        cmocka_unit_test(test_bad_vocab),
        cmocka_unit_test(test_vocab_same_as_trainer),
        cmocka_unit_test(test_invalid_utf8_names_file_and_line),
        cmocka_unit_test(test_corrupt_gzip),
        cmocka_unit_test(test_option_ranges),
        cmocka_unit_test(test_eval_needs_two_documents),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
