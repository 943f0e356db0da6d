/* Sequence building and static masking on a real corpus (a part of the
 * python3.11 documentation sources, one document per file): masking
 * statistics (15% of the tokens, 80/10/10), NSP labels near 50/50, the
 * structure of every instance, whole-word masking, and determinism across
 * thread counts and seeds. */
#include "prep_testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corpus.h"
#include "instances.h"
#include "vocab_learn.h"

enum { T = 128, P = 20 };

static tdp_vocab V;
static tdp_corpus C;
static int64_t *DOCS;

static int setup(void **state)
{
    (void)state;
    const char *files[600];
    int64_t n = pt_doc_files(files, 600, 3000000);
    /* a vocabulary learned from the same text */
    tdp_vocab_learn_options lo = {.vocab_size = 4096, .lower_case = 1, .n_jobs = 1, .quiet = 1,
                                  .min_pair_count = 2};
    tdp_vocab_learn_summary ls;
    memset(&ls, 0, sizeof(ls));
    td_error err = {0};
    const char *dir = pt_tmpdir("masking");
    char vocab_path[1100];
    snprintf(vocab_path, sizeof(vocab_path), "%s/vocab.txt", dir);
    if (tdp_vocab_learn(vocab_path, files, n, &lo, &ls, &err) != TD_OK) fail_msg("%s", err.msg);
    assert_int_equal(ls.n_tokens, 4096);
    if (tdp_vocab_load(&V, vocab_path, &err) != TD_OK) fail_msg("%s", err.msg);
    tdp_inputs in;
    if (tdp_inputs_expand(&in, files, n, 0, &err) != TD_OK) fail_msg("%s", err.msg);
    if (tdp_corpus_read(&C, &in, &V, 1, 1, 1, NULL, NULL, &err) != TD_OK) fail_msg("%s", err.msg);
    tdp_inputs_free(&in);
    assert_int_equal(tdp_corpus_n_docs(&C), n);
    DOCS = malloc((size_t)n * sizeof(int64_t));
    for (int64_t d = 0; d < n; d++) DOCS[d] = d;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(DOCS);
    tdp_corpus_free(&C);
    tdp_vocab_free(&V);
    return 0;
}

static tdp_instance_options options(uint64_t seed, int whole_word)
{
    tdp_instance_options o = {.seq_len = T, .max_pred = P, .dupe_factor = 2,
                              .short_seq_prob = 0.1, .masked_lm_prob = 0.15,
                              .masking = TDP_MASKING_STATIC, .whole_word = whole_word,
                              .seed = seed};
    return o;
}

/* Checks the layout of every record; returns the number of predictions. */
static int64_t check_structure(const tdp_instance_set *s, int whole_word)
{
    int64_t n_pred_total = 0;
    for (int64_t i = 0; i < s->n; i++) {
        const int32_t *r = s->rec[i];
        int64_t len = r[TDP_REC_LEN], seg0 = r[TDP_REC_SEG0], np = r[TDP_REC_NPRED];
        const int32_t *ids = r + TDP_REC_HEADER, *pos = ids + len, *rep = pos + np;
        assert_true(len >= 5 && len <= T);
        assert_true(seg0 >= 3 && seg0 <= len - 2);
        assert_int_equal(ids[0], V.cls_id);
        assert_int_equal(ids[seg0 - 1], V.sep_id);
        assert_int_equal(ids[len - 1], V.sep_id);
        assert_true(r[TDP_REC_RANDOM_NEXT] == 0 || r[TDP_REC_RANDOM_NEXT] == 1);
        int64_t want = (int64_t)rint(0.15 * (double)len);
        if (want < 1) want = 1;
        if (want > P) want = P;
        assert_true(np >= 1 && np <= want);
        if (!whole_word) assert_int_equal(np, want);
        for (int64_t k = 0; k < np; k++) {
            assert_true(pos[k] > 0 && pos[k] < len - 1);
            if (k > 0) assert_true(pos[k] > pos[k - 1]);
            assert_true(ids[pos[k]] != V.cls_id && ids[pos[k]] != V.sep_id);
            assert_true(rep[k] >= 0 && rep[k] < V.n_tokens);
        }
        if (whole_word) {
            /* a masked piece's "##" successors are masked with it */
            for (int64_t k = 0; k < np; k++) {
                int64_t p = pos[k];
                if (p + 1 < len && V.is_cont[ids[p + 1]]) {
                    int found = 0;
                    for (int64_t j = 0; j < np; j++) found |= pos[j] == p + 1;
                    assert_true(found);
                }
                if (V.is_cont[ids[p]] && ids[p - 1] != V.sep_id && ids[p - 1] != V.cls_id) {
                    int found = 0;
                    for (int64_t j = 0; j < np; j++) found |= pos[j] == p - 1;
                    assert_true(found);
                }
            }
        }
        n_pred_total += np;
    }
    return n_pred_total;
}

static void test_mask_and_nsp_statistics(void **state)
{
    (void)state;
    tdp_instance_options o = options(12345, 0);
    tdp_instance_set s;
    tdp_instance_set_build(&s, &C, DOCS, tdp_corpus_n_docs(&C), &o, &V, 1);
    assert_true(s.n > 10000);
    int64_t n_pred = check_structure(&s, 0);
    int64_t n_tokens = 0, n_mask = 0, n_same = 0, n_random = 0, n_nsp = 0, n_full = 0;
    for (int64_t i = 0; i < s.n; i++) {
        const int32_t *r = s.rec[i];
        int64_t len = r[TDP_REC_LEN], np = r[TDP_REC_NPRED];
        const int32_t *ids = r + TDP_REC_HEADER, *pos = ids + len, *rep = pos + np;
        n_tokens += len;
        n_nsp += r[TDP_REC_RANDOM_NEXT];
        n_full += len >= T - 8;
        for (int64_t k = 0; k < np; k++) {
            if (rep[k] == V.mask_id) n_mask++;
            else if (rep[k] == ids[pos[k]]) n_same++;
            else n_random++;
        }
    }
    double f_pred = (double)n_pred / (double)n_tokens;
    double f_mask = (double)n_mask / (double)n_pred;
    double f_same = (double)n_same / (double)n_pred;
    double f_rand = (double)n_random / (double)n_pred;
    double f_nsp = (double)n_nsp / (double)s.n;
    printf("# %lld sequences, %lld tokens: predicted %.4f, [MASK] %.4f, kept %.4f, random %.4f, "
           "random next %.4f, near-full %.3f\n", (long long)s.n, (long long)n_tokens, f_pred,
           f_mask, f_same, f_rand, f_nsp, (double)n_full / (double)s.n);
    /* round(len * 0.15) per sequence: 15% up to rounding */
    assert_true(fabs(f_pred - 0.15) < 0.005);
    assert_true(fabs(f_mask - 0.80) < 0.01);
    assert_true(fabs(f_same - 0.10) < 0.01);
    assert_true(fabs(f_rand - 0.10) < 0.01);
    /* 50% random next, plus the chunks of a single segment, which always
     * take a random next segment (as in the reference) */
    assert_true(f_nsp > 0.47 && f_nsp < 0.57);
    /* most sequences fill the target length (short_seq_prob is 0.1) */
    assert_true((double)n_full / (double)s.n > 0.5);
    tdp_instance_set_free(&s);
}

static void test_whole_word_masking(void **state)
{
    (void)state;
    tdp_instance_options o = options(7, 1);
    tdp_instance_set s;
    /* a tenth of the documents is enough for the structure */
    int64_t n_docs = tdp_corpus_n_docs(&C) / 10;
    tdp_instance_set_build(&s, &C, DOCS, n_docs, &o, &V, 1);
    int64_t n_pred = check_structure(&s, 1);
    int64_t n_tokens = 0, n_cont = 0;
    for (int64_t i = 0; i < s.n; i++) {
        const int32_t *r = s.rec[i];
        int64_t len = r[TDP_REC_LEN], np = r[TDP_REC_NPRED];
        const int32_t *ids = r + TDP_REC_HEADER, *pos = ids + len;
        n_tokens += len;
        for (int64_t k = 0; k < np; k++) n_cont += V.is_cont[ids[pos[k]]];
    }
    /* groups that would overshoot are skipped, so slightly fewer */
    double f = (double)n_pred / (double)n_tokens;
    assert_true(f > 0.13 && f < 0.155);
    assert_true(n_cont > 0);
    tdp_instance_set_free(&s);
}

static int same_sets(const tdp_instance_set *a, const tdp_instance_set *b)
{
    if (a->n != b->n) return 0;
    for (int64_t i = 0; i < a->n; i++) {
        const int32_t *x = a->rec[i], *y = b->rec[i];
        int64_t n = TDP_REC_HEADER + x[TDP_REC_LEN] + 2 * x[TDP_REC_NPRED];
        if (memcmp(x, y, (size_t)n * sizeof(int32_t)) != 0) return 0;
    }
    return 1;
}

static void test_deterministic(void **state)
{
    (void)state;
    int64_t n_docs = tdp_corpus_n_docs(&C) / 4;
    tdp_instance_options o = options(99, 0);
    tdp_instance_set a, b, c;
    tdp_instance_set_build(&a, &C, DOCS, n_docs, &o, &V, 1);
    tdp_instance_set_build(&b, &C, DOCS, n_docs, &o, &V, 3);
    assert_true(same_sets(&a, &b));
    o.seed = 100;
    tdp_instance_set_build(&c, &C, DOCS, n_docs, &o, &V, 2);
    assert_false(same_sets(&a, &c));
    tdp_instance_set_free(&a);
    tdp_instance_set_free(&b);
    tdp_instance_set_free(&c);
}

static void test_corpus_reading_is_thread_independent(void **state)
{
    (void)state;
    const char *files[600];
    int64_t n = pt_doc_files(files, 600, 1500000);
    tdp_inputs in;
    tdp_corpus a, b;
    td_error err = {0};
    assert_int_equal(tdp_inputs_expand(&in, files, n, 0, &err), TD_OK);
    /* blank lines end documents here */
    assert_int_equal(tdp_corpus_read(&a, &in, &V, 1, 0, 1, NULL, NULL, &err), TD_OK);
    assert_int_equal(tdp_corpus_read(&b, &in, &V, 1, 0, 3, NULL, NULL, &err), TD_OK);
    assert_true(tdp_corpus_n_docs(&a) > n);
    assert_int_equal(a.tokens.n, b.tokens.n);
    assert_memory_equal(a.tokens.v, b.tokens.v, (size_t)a.tokens.n * sizeof(int32_t));
    assert_int_equal(a.seg_start.n, b.seg_start.n);
    assert_memory_equal(a.seg_start.v, b.seg_start.v, (size_t)a.seg_start.n * sizeof(int64_t));
    assert_int_equal(a.doc_start.n, b.doc_start.n);
    assert_memory_equal(a.doc_start.v, b.doc_start.v, (size_t)a.doc_start.n * sizeof(int64_t));
    /* a learned vocabulary covers its own corpus: almost no [UNK] */
    assert_true((double)a.n_unk < 1e-3 * (double)a.tokens.n);
    tdp_corpus_free(&a);
    tdp_corpus_free(&b);
    tdp_inputs_free(&in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mask_and_nsp_statistics),
        cmocka_unit_test(test_whole_word_masking),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_corpus_reading_is_thread_independent),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
