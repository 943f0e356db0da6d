/* BasicTokenizer + WordPiece on tricky strings. The expected tokens follow
 * google-research/bert tokenization.py step by step (clean text, CJK
 * spacing, whitespace split, lower + NFD + drop Mn, punctuation split,
 * greedy longest-match WordPiece) on the small vocabulary below. */
#include "prep_testutil.h"

#include <stdlib.h>
#include <string.h>

#include "basic_tokenizer.h"
#include "unicode.h"

static const char *const TOKENS[] = {
    "hello", "world", "don", "'", "t", "!", "\xe4\xb8\xad" /* 中 */, "\xe6\x96\x87" /* 文 */,
    "abc", "un", "##aff", "##able", "a", "##a", "b", "$", "^", "`",
    "\xe2\x80\x94" /* — */, "H\xc3\xa9llo" /* Héllo, cased */, "World",
    "\xce\xbf\xce\xb4\xce\xbf\xcf\x82" /* οδος, final sigma */, "\xcf\x83\xce\xb1" /* σα */,
    "istanbul", "\xe1\x84\x92\xe1\x85\xa1\xe1\x86\xab" /* 한 as conjoining jamo */, ".",
};

static tdp_vocab V;

static int setup(void **state)
{
    (void)state;
    pt_vocab(&V, TOKENS, (int64_t)(sizeof(TOKENS) / sizeof(TOKENS[0])));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tdp_vocab_free(&V);
    return 0;
}

static void expect(int lower_case, const char *line, const char *want)
{
    char got[8192];
    pt_tokenize(got, sizeof(got), &V, lower_case, line);
    if (strcmp(got, want) != 0)
        fail_msg("tokenize(%s, \"%s\"):\n  got  \"%s\"\n  want \"%s\"",
                 lower_case ? "uncased" : "cased", line, got, want);
}

static void test_accents_are_stripped(void **state)
{
    (void)state;
    /* lower: "héllo wörld"; NFD splits é into e + U+0301 (Mn, dropped) */
    expect(1, "H\xc3\xa9llo W\xc3\xb6rld", "hello world");
    /* already decomposed input gives the same */
    expect(1, "He\xcc\x81llo", "hello");
}

static void test_punctuation_is_split(void **state)
{
    (void)state;
    expect(1, "don't!", "don ' t !");
    /* ASCII symbols in the punctuation ranges, and a Unicode dash (Pd) */
    expect(1, "a$b^a`b", "a $ b ^ a ` b");
    expect(1, "hello\xe2\x80\x94world", "hello \xe2\x80\x94 world");
}

static void test_cjk_characters_are_split(void **state)
{
    (void)state;
    expect(1, "\xe4\xb8\xad\xe6\x96\x87" "abc", "\xe4\xb8\xad \xe6\x96\x87 abc");
    expect(1, "abc\xe4\xb8\xad", "abc \xe4\xb8\xad");
}

static void test_long_words_are_unknown(void **state)
{
    (void)state;
    char line[512], want[1024];
    /* 100 characters: still split by WordPiece, a + 99 x ##a */
    memset(line, 'a', 100);
    line[100] = '\0';
    strcpy(want, "a");
    for (int i = 0; i < 99; i++) strcat(want, " ##a");
    expect(1, line, want);
    /* 101 characters: [UNK] */
    memset(line, 'a', 101);
    line[101] = '\0';
    expect(1, line, "[UNK]");
    /* the limit counts characters after normalization: 100 x "ä" (2 bytes,
     * then a + U+0308 after NFD) is "a" x 100 */
    size_t k = 0;
    for (int i = 0; i < 100; i++) {
        line[k++] = (char)0xc3;
        line[k++] = (char)0xa4;
    }
    line[k] = '\0';
    expect(1, line, want);
    /* cased, 101 "ä" are one 101-character word */
    k = 0;
    for (int i = 0; i < 101; i++) {
        line[k++] = (char)0xc3;
        line[k++] = (char)0xa4;
    }
    line[k] = '\0';
    expect(0, line, "[UNK]");
}

static void test_control_characters_are_removed(void **state)
{
    (void)state;
    /* \x01 and DEL are Cc, U+200B is Cf, U+FFFD is removed explicitly; none
     * of them separates words */
    expect(1, "hel\x01lo\x7f wor\xe2\x80\x8bld\xef\xbf\xbd", "hello world");
    /* a NUL byte inside the line is removed too */
    tdp_tokenizer t;
    tdp_tokenizer_init(&t, &V, 1);
    tdp_vec_i32 ids = {0};
    tdp_tokenize_line(&t, &ids, "hel\0lo", 6);
    assert_int_equal(ids.n, 1);
    assert_string_equal(tdp_vocab_token(&V, ids.v[0]), "hello");
    free(ids.v);
    tdp_tokenizer_free(&t);
}

static void test_whitespace_kinds(void **state)
{
    (void)state;
    /* tab, U+3000 and U+00A0 (Zs), U+2028 (split by str.split), \r */
    expect(1, "hello\tworld\xe3\x80\x80hello\xc2\xa0world\xe2\x80\xa8hello\r",
           "hello world hello world hello");
    expect(1, "", "");
    expect(1, " \t ", "");
}

static void test_unknown_pieces(void **state)
{
    (void)state;
    /* "hellox": hello matches, but no ##x (nor ##ox, ...): the whole word is
     * [UNK], not "hello [UNK]" */
    expect(1, "hellox world", "[UNK] world");
    expect(1, "zzz", "[UNK]");
}

static void test_continuations(void **state)
{
    (void)state;
    expect(1, "unaffable", "un ##aff ##able");
    expect(1, "UnAffable!", "un ##aff ##able !");
    /* longest match first: "abc" beats "a" + "##..." */
    expect(1, "abc aa", "abc a ##a");
}

static void test_cased_mode(void **state)
{
    (void)state;
    expect(0, "H\xc3\xa9llo World", "H\xc3\xa9llo World");
    /* no lower-casing: HELLO is not in the vocabulary */
    expect(0, "HELLO", "[UNK]");
    expect(1, "HELLO", "hello");
    /* no accent stripping either */
    expect(0, "h\xc3\xa9llo", "[UNK]");
}

static void test_casing_context(void **state)
{
    (void)state;
    /* Python's str.lower(): a capital sigma at the end of a word is final */
    expect(1, "\xce\x9f\xce\x94\xce\x9f\xce\xa3", "\xce\xbf\xce\xb4\xce\xbf\xcf\x82");
    /* "." is case-ignorable, so the sigma is still final; then "." splits */
    expect(1, "\xce\x9f\xce\x94\xce\x9f\xce\xa3.", "\xce\xbf\xce\xb4\xce\xbf\xcf\x82 .");
    /* not final when a letter follows */
    expect(1, "\xce\xa3\xce\x91", "\xcf\x83\xce\xb1");
    /* U+0130 lowers to i + U+0307, whose Mn is then dropped */
    expect(1, "\xc4\xb0stanbul", "istanbul");
    /* Hangul syllables decompose to conjoining jamo (not Mn) */
    expect(1, "\xed\x95\x9c", "\xe1\x84\x92\xe1\x85\xa1\xe1\x86\xab");
    expect(0, "\xed\x95\x9c", "[UNK]");
}

static void test_basic_words_and_char_counts(void **state)
{
    (void)state;
    tdp_words w;
    tdp_words_init(&w);
    const char *s = "Caf\xc3\xa9, na\xc3\xafve \xe4\xb8\xad!";
    tdp_basic_tokenize(&w, s, strlen(s), 1);
    const char *want[] = {"cafe", ",", "naive", "\xe4\xb8\xad", "!"};
    const int64_t chars[] = {4, 1, 5, 1, 1};
    assert_int_equal(w.n_words, 5);
    for (int i = 0; i < 5; i++) {
        int64_t n = w.start[i + 1] - w.start[i];
        assert_int_equal(n, (int64_t)strlen(want[i]));
        assert_memory_equal(w.bytes + w.start[i], want[i], (size_t)n);
        assert_int_equal(w.n_chars[i], chars[i]);
    }
    tdp_basic_tokenize(&w, s, strlen(s), 0);
    assert_int_equal(w.n_words, 5);
    assert_memory_equal(w.bytes + w.start[0], "Caf\xc3\xa9", 5);
    assert_int_equal(w.n_chars[0], 4);
    tdp_words_free(&w);
}

static void test_utf8_validation(void **state)
{
    (void)state;
    struct {
        const char *s;
        size_t bad;
    } cases[] = {
        {"plain ascii", 11},
        {"ok \xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80", 14},
        {"ab\xc0\xaf", 2},         /* overlong '/' */
        {"ab\xe0\x80\xaf", 2},     /* overlong, 3 bytes */
        {"a\xed\xa0\x80", 1},      /* surrogate U+D800 */
        {"a\xf4\x90\x80\x80", 1},  /* past U+10FFFF */
        {"abc\xc3", 3},            /* truncated */
        {"abcdefghijk\x80", 11},   /* lone continuation byte after the 8-byte fast path */
        {"\xff", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t got = td_utf8_validate((const unsigned char *)cases[i].s, strlen(cases[i].s));
        if (got != cases[i].bad)
            fail_msg("case %zu: first invalid byte at %zu, expected %zu", i, got, cases[i].bad);
    }
}

static void test_unicode_properties(void **state)
{
    (void)state;
    assert_true(tdp_unicode_flags(0x0301) & TDP_UC_MN);
    assert_true(tdp_unicode_flags(0x200B) & TDP_UC_CONTROL);
    assert_true(tdp_unicode_flags(0x0000) & TDP_UC_CONTROL);
    assert_false(tdp_unicode_flags('\t') & TDP_UC_CONTROL);
    assert_true(tdp_unicode_flags('\t') & TDP_UC_SPACE);
    assert_true(tdp_unicode_flags(0x3000) & TDP_UC_SPACE);
    assert_true(tdp_unicode_flags('$') & TDP_UC_PUNCT);
    assert_true(tdp_unicode_flags(0x00BF) & TDP_UC_PUNCT); /* ¿ Po */
    assert_false(tdp_unicode_flags(0x00A9) & TDP_UC_PUNCT); /* © So */
    assert_true(tdp_unicode_is_cjk(0x4E2D));
    assert_false(tdp_unicode_is_cjk(0x3042)); /* hiragana is not in the ranges */
    uint32_t d[4];
    assert_int_equal(tdp_unicode_decompose(d, 0x00E9), 2);
    assert_int_equal(d[0], 'e');
    assert_int_equal(d[1], 0x0301);
    assert_int_equal(tdp_unicode_decompose(d, 0xAC01), 3); /* 각 */
    uint32_t l[3];
    assert_int_equal(tdp_unicode_lower(l, 0x0130), 2);
    assert_int_equal(l[0], 'i');
    assert_int_equal(l[1], 0x0307);
    assert_int_equal(tdp_unicode_ccc(0x0301), 230);
    assert_int_equal(tdp_unicode_ccc('a'), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accents_are_stripped),
        cmocka_unit_test(test_punctuation_is_split),
        cmocka_unit_test(test_cjk_characters_are_split),
        cmocka_unit_test(test_long_words_are_unknown),
        cmocka_unit_test(test_control_characters_are_removed),
        cmocka_unit_test(test_whitespace_kinds),
        cmocka_unit_test(test_unknown_pieces),
        cmocka_unit_test(test_continuations),
        cmocka_unit_test(test_cased_mode),
        cmocka_unit_test(test_casing_context),
        cmocka_unit_test(test_basic_words_and_char_counts),
        cmocka_unit_test(test_utf8_validation),
        cmocka_unit_test(test_unicode_properties),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
