/* The vocabulary reader (vocab.h) that the trainer and tokdrop-prep share:
 * the whitespace rule (Python's str.strip() on every line), the errors,
 * and the hash that shards carry. data-prep/tests/test_errors.c checks that
 * tokdrop-prep resolves the same file to the same ids and hash. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokdrop/base/hash.h"
#include "tokdrop/base/vocab.h"

static const char *write_file(const char *name, const char *text, size_t n)
{
    static char path[4200];
    snprintf(path, sizeof(path), "%s/%s", tu_tmpdir("vocab"), name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, n, f), n);
    fclose(f);
    return path;
}

/* "[CLS] " (a trailing space), CRLF, a tab, U+3000 and U+00A0 around
 * tokens: all stripped, so the specials resolve; inner spaces stay. */
static void test_whitespace_rule(void **state)
{
    (void)state;
    const char text[] = "[PAD]\n[UNK] \n\t[CLS]\r\n[SEP]\xe3\x80\x80\n\xc2\xa0[MASK]\nhello world\n"
                        "##x";
    td_vocab v;
    td_error err = {0};
    if (td_vocab_load(&v, write_file("spaces.txt", text, sizeof(text) - 1), &err) != TD_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(v.size, 7);
    assert_int_equal(td_vocab_find(&v, "[PAD]"), 0);
    assert_int_equal(td_vocab_find(&v, "[UNK]"), 1);
    assert_int_equal(td_vocab_find(&v, "[CLS]"), 2);
    assert_int_equal(td_vocab_find(&v, "[SEP]"), 3);
    assert_int_equal(td_vocab_find(&v, "[MASK]"), 4);
    assert_int_equal(td_vocab_find(&v, "hello world"), 5);
    assert_int_equal(td_vocab_find(&v, "##x"), 6);
    assert_int_equal(td_vocab_find(&v, "[CLS] "), -1);

    /* the hash is of the tokens as read: the clean file hashes the same */
    const char clean[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello world\n##x\n";
    td_vocab c;
    if (td_vocab_load(&c, write_file("clean.txt", clean, sizeof(clean) - 1), &err) != TD_OK)
        fail_msg("%s", err.msg);
    assert_true(c.hash == v.hash);
    assert_true(c.hash == td_hash64(clean, sizeof(clean) - 1));
    assert_true(c.hash == td_vocab_hash((const char *const *)c.tokens, c.size));
    td_vocab_free(&c);

    /* another id for a token is another vocabulary */
    const char swapped[] = "[PAD]\n[CLS]\n[UNK]\n[SEP]\n[MASK]\nhello world\n##x\n";
    if (td_vocab_load(&c, write_file("swapped.txt", swapped, sizeof(swapped) - 1), &err) != TD_OK)
        fail_msg("%s", err.msg);
    assert_true(c.hash != v.hash);
    td_vocab_free(&c);
    td_vocab_free(&v);

    /* blank lines keep their ids (empty tokens) */
    const char blank[] = "a\n\n  \nb\n";
    if (td_vocab_load(&v, write_file("blank.txt", blank, sizeof(blank) - 1), &err) != TD_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(v.size, 4);
    assert_string_equal(v.tokens[2], "");
    assert_int_equal(td_vocab_find(&v, "b"), 3);
    td_vocab_free(&v);
}

static void expect_error(const char *name, const char *text, size_t n, td_status want,
                         const char *needle)
{
    td_vocab v;
    td_error err = {0};
    const char *path = write_file(name, text, n);
    assert_int_equal(td_vocab_load(&v, path, &err), want);
    if (!strstr(err.msg, name) || !strstr(err.msg, needle))
        fail_msg("error '%s' lacks '%s' or '%s'", err.msg, name, needle);
    assert_null(v.tokens);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("empty.txt", "", 0, TD_ERR_FORMAT, "empty vocabulary");
    expect_error("utf8.txt", "[PAD]\nca\xff\n", 9, TD_ERR_FORMAT, "utf8.txt:2: invalid UTF-8");
    expect_error("nul.txt", "[PAD]\na\0b\n", 10, TD_ERR_FORMAT, "nul.txt:2: NUL byte");
    td_vocab v;
    td_error err = {0};
    assert_int_equal(td_vocab_load(&v, "/nonexistent/vocab.txt", &err), TD_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent/vocab.txt"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whitespace_rule),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
