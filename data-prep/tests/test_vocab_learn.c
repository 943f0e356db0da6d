/* Vocabulary learning on the classic BPE example (low x5, lower x2,
 * newest x6, widest x3), with the merges worked out by hand:
 *   characters by frequency (ties by code point): e w s t l o n d i r,
 *   then their ## forms; the pair counts (##e ##s) = (##s ##t) = 9 tie and
 *   the smaller pair of symbol ids wins: ##es; then ##est (9); lo and low
 *   (7, lo first by id); ne (6); ##west (6, smaller ids than ne+##w); then
 *   newest (6). */
#include "prep_testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vocab_learn.h"

static void counts_init(tdp_strmap *m)
{
    const char *words[] = {"low", "lower", "newest", "widest"};
    const int64_t n[] = {5, 2, 6, 3};
    tdp_strmap_init(m, 16);
    for (int i = 0; i < 4; i++)
        *tdp_strmap_upsert(m, words[i], (int32_t)strlen(words[i]), 0, NULL) = n[i];
}

/* Learns into a temporary file and returns its lines joined by spaces. */
static void learn(char *out, size_t out_size, int64_t size, tdp_vocab_learn_summary *sum)
{
    tdp_strmap counts;
    counts_init(&counts);
    tdp_vocab_learn_options o = {.vocab_size = size, .lower_case = 1, .n_jobs = 1, .quiet = 1,
                                 .min_pair_count = 2};
    memset(sum, 0, sizeof(*sum));
    td_error err = {0};
    FILE *f = tmpfile();
    assert_non_null(f);
    if (tdp_vocab_learn_from_counts(f, &counts, &o, sum, &err) != TD_OK) fail_msg("%s", err.msg);
    rewind(f);
    size_t n = fread(out, 1, out_size - 1, f);
    out[n] = '\0';
    fclose(f);
    for (size_t i = 0; i < n; i++)
        if (out[i] == '\n') out[i] = ' ';
    tdp_strmap_free(&counts);
}

static void test_merges_in_order(void **state)
{
    (void)state;
    char got[4096];
    tdp_vocab_learn_summary sum;
    learn(got, sizeof(got), 32, &sum);
    assert_string_equal(got,
                        "[PAD] [UNK] [CLS] [SEP] [MASK] e w s t l o n d i r "
                        "##e ##w ##s ##t ##l ##o ##n ##d ##i ##r "
                        "##es ##est lo low ne ##west newest ");
    assert_int_equal(sum.n_tokens, 32);
    assert_int_equal(sum.n_chars, 10);
    assert_int_equal(sum.n_merges, 7);
}

static void test_stops_when_no_pair_repeats(void **state)
{
    (void)state;
    char got[8192];
    tdp_vocab_learn_summary sum;
    learn(got, sizeof(got), 1000, &sum);
    /* every word occurs at least twice, so merging goes on until each word
     * is one piece */
    assert_true(sum.n_tokens < 1000);
    const char *whole[] = {" low ", " lower ", " newest ", " widest "};
    for (int i = 0; i < 4; i++)
        if (!strstr(got, whole[i])) fail_msg("\"%s\" not in the vocabulary: %s", whole[i], got);
    /* and the result tokenizes as expected: the count-3 merges of widest go
     * wi (smallest ids), ##dest, widest, so "wide" is no piece; lower's go
     * ##er (ids 10, 19 beat low + ##e), lower. Greedy longest match on
     * "wider": wi, ##d, ##er. */
    tdp_vocab v;
    char *toks[200];
    int n = 0;
    for (char *p = strtok(got, " "); p && n < 200; p = strtok(NULL, " ")) toks[n++] = p;
    td_error err = {0};
    assert_int_equal(tdp_vocab_from_tokens(&v, (const char *const *)toks, n, "learned", &err),
                     TD_OK);
    char line[256];
    pt_tokenize(line, sizeof(line), &v, 1, "Newest lowest wider");
    assert_string_equal(line, "newest low ##est wi ##d ##er");
    tdp_vocab_free(&v);
}

static void test_alphabet_is_cut_to_fit(void **state)
{
    (void)state;
    char got[4096];
    tdp_vocab_learn_summary sum;
    /* room for 5 characters and their ## forms: e w s t l (the most
     * frequent); words with other characters are left out of the merges, so
     * none remains with a pair */
    learn(got, sizeof(got), 16, &sum);
    assert_int_equal(sum.n_chars, 5);
    assert_int_equal(sum.n_chars_dropped, 5);
    assert_string_equal(got, "[PAD] [UNK] [CLS] [SEP] [MASK] e w s t l ##e ##w ##s ##t ##l ");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merges_in_order),
        cmocka_unit_test(test_stops_when_no_pair_repeats),
        cmocka_unit_test(test_alphabet_is_cut_to_fit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
