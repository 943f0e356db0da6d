/* The JSON wrapper (tokdrop/formats/json.h): duplicate keys refused, syntax errors
 * placed by line, column and byte, typed getters' messages, every string
 * escaped on the way out and read back unchanged, and reals written with
 * the digits asked for. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokdrop/formats/json.h"

static td_json *parse_ok(const char *text)
{
    td_json_syntax where;
    td_json *v = td_json_parse(text, strlen(text), &where);
    if (!v) fail_msg("%s: line %d column %d byte %zu: %s", text, where.line, where.column, where.byte, where.text);
    return v;
}

static void expect_msg(td_status got, const td_error *err, const char *n1, const char *n2)
{
    if (got != TD_ERR_FORMAT) fail_msg("status %d, message %s", got, err->msg);
    if (n1 && !strstr(err->msg, n1)) fail_msg("message \"%s\" lacks \"%s\"", err->msg, n1);
    if (n2 && !strstr(err->msg, n2)) fail_msg("message \"%s\" lacks \"%s\"", err->msg, n2);
}

static void test_duplicate_keys(void **state)
{
    (void)state;
    const char *texts[] = {
        "{\"a\": 1, \"b\": 2, \"a\": 3}",
        "{\"a\": {\"x\": 1, \"x\": 1}}",
        "[{\"k\": [], \"k\": []}]",
        "{\"\\u0061\": 1, \"a\": 2}", /* the same key once decoded */
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        td_json_syntax where;
        td_json *v = td_json_parse(texts[i], strlen(texts[i]), &where);
        if (v) fail_msg("accepted %s", texts[i]);
        if (!strstr(where.text, "duplicate object key")) fail_msg("%s: %s", texts[i], where.text);
        assert_int_equal(where.line, 1);
        assert_true(where.byte > 0 && where.byte <= strlen(texts[i]));
    }
    td_json_free(parse_ok("{\"a\": {\"x\": 1}, \"b\": {\"x\": 1}}")); /* equal keys in different objects */
}

static void test_syntax_position(void **state)
{
    (void)state;
    /* the error is the missing ',' before "c", on line 4 */
    const char *text = "{\n  \"a\": 1,\n  \"b\": 2\n  \"c\": 3\n}";
    td_json_syntax where;
    assert_null(td_json_parse(text, strlen(text), &where));
    assert_int_equal(where.line, 4);
    size_t c_at = (size_t)(strstr(text, "\"c\"") - text);
    assert_true(where.byte >= c_at && where.byte <= c_at + 4);
    assert_true(where.column >= 3 && where.column <= 6);
    assert_non_null(strstr(where.text, "'}' expected"));

    /* the same through a file: PATH:LINE:COLUMN and the byte */
    char path[1024];
    snprintf(path, sizeof(path), "%s/bad.json", tu_tmpdir("json_file"));
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    td_json *doc = NULL;
    td_error err = {0};
    td_status st = td_json_load_file(&doc, path, &err);
    char want[1100];
    snprintf(want, sizeof(want), "%s:4:%d: not valid JSON (byte %zu)", path, where.column, where.byte);
    expect_msg(st, &err, want, "'}' expected");
    assert_null(doc);

    snprintf(path, sizeof(path), "%s/absent.json", tu_tmpdir("json_file"));
    st = td_json_load_file(&doc, path, &err);
    assert_int_equal(st, TD_ERR_IO);
    assert_non_null(strstr(err.msg, "absent.json: cannot open"));

    /* a bare value, trailing text and an empty text are refused */
    assert_null(td_json_parse("3", 1, &where));
    assert_null(td_json_parse("{} {}", 5, &where));
    assert_null(td_json_parse("", 0, &where));
}

static void test_getters(void **state)
{
    (void)state;
    td_json *doc = parse_ok("{\"i\": -7, \"r\": 2.5, \"s\": \"768\", \"a\": [1, 2, 3], \"b\": [1, 2.5], \"o\": {}}");
    td_error err = {0};
    int64_t i = 0;
    double r = 0;
    const char *s = NULL;
    assert_int_equal(td_json_int(td_json_get(doc, "i"), "f.json", "i", &i, &err), TD_OK);
    assert_int_equal(i, -7);
    assert_int_equal(td_json_number(td_json_get(doc, "i"), "f.json", "i", &r, &err), TD_OK);
    assert_true(r == -7.0);
    assert_int_equal(td_json_number(td_json_get(doc, "r"), "f.json", "r", &r, &err), TD_OK);
    assert_true(r == 2.5);
    assert_int_equal(td_json_string(td_json_get(doc, "s"), "f.json", "s", &s, &err), TD_OK);
    assert_string_equal(s, "768");
    int64_t arr[3];
    int n = 0;
    assert_int_equal(td_json_int_array(td_json_get(doc, "a"), "f.json", "a", arr, 3, &n, &err), TD_OK);
    assert_int_equal(n, 3);
    assert_true(arr[0] == 1 && arr[2] == 3);

    expect_msg(td_json_int(td_json_get(doc, "s"), "f.json", "s", &i, &err), &err,
               "f.json: key 's': expected an integer, got \"768\"", NULL);
    expect_msg(td_json_int(td_json_get(doc, "r"), "f.json", "r", &i, &err), &err, "expected an integer, got 2.5",
               NULL);
    expect_msg(td_json_number(td_json_get(doc, "o"), "f.json", "o", &r, &err), &err,
               "key 'o': expected a number, got an object", NULL);
    expect_msg(td_json_string(td_json_get(doc, "zz"), "f.json", "zz", &s, &err), &err,
               "f.json: key 'zz' is missing (expected a string)", NULL);
    expect_msg(td_json_int_array(td_json_get(doc, "a"), "f.json", "a", arr, 2, &n, &err), &err,
               "expected an array of at most 2 integers, got 3 elements", NULL);
    expect_msg(td_json_int_array(td_json_get(doc, "b"), "f.json", "b", arr, 3, &n, &err), &err,
               "element 1 is 2.5", NULL);
    expect_msg(td_json_expected(td_json_get(doc, "s"), "f.json", "s", "bert", &err), &err,
               "f.json: key 's': expected bert, got \"768\"", NULL);

    /* members in the order of the text */
    const char *keys[] = {"i", "r", "s", "a", "b", "o"};
    size_t k = 0;
    for (void *it = td_json_iter(doc); it; it = td_json_iter_next(doc, it), k++)
        assert_string_equal(td_json_iter_key(it), keys[k]);
    assert_int_equal(k, 6);
    assert_int_equal(td_json_size(doc), 6);
    assert_int_equal(td_json_kind_of(td_json_at(td_json_get(doc, "b"), 1)), TD_JSON_REAL);
    assert_null(td_json_at(td_json_get(doc, "b"), 2));
    td_json_free(doc);
}

/* Strings and keys with quotes, backslashes, control characters, a slash,
 * non-ASCII text and bytes that are not UTF-8 dump to valid JSON and read
 * back as written (invalid bytes as U+FFFD). */
static void test_escaping_round_trip(void **state)
{
    (void)state;
    const char *texts[] = {
        "run\"dir", "back\\slash", "tab\there\nnewline\r\x01\x1f", "a/b", "caf\xc3\xa9 \xf0\x9f\x98\x80",
        "/tmp/x\"y\\z/ckpt-00000004.h5", "",
    };
    const size_t n_texts = sizeof(texts) / sizeof(texts[0]);
    for (int style = TD_JSON_COMPACT; style <= TD_JSON_PRETTY; style++) {
        td_json *obj = td_json_object_new(), *arr = td_json_array_new();
        for (size_t i = 0; i < n_texts; i++) {
            char key[16];
            snprintf(key, sizeof(key), "k%zu", i);
            td_json_set_str(obj, key, texts[i]);
            td_json_set_int(obj, texts[i], (int64_t)i); /* as a key too */
            td_json_push_str(arr, texts[i]);
        }
        td_json_set_str(obj, "bad", "a\xff" "b\xc3(\xed\xa0\x80z");
        td_json_set(obj, "arr", arr);
        char *text = td_json_dumps(obj, (td_json_style)style, 0);
        td_json_free(obj);
        if (style != TD_JSON_PRETTY) assert_null(strchr(text, '\n'));
        for (const char *p = text; *p; p++) assert_true((unsigned char)*p >= 0x20 || *p == '\n');

        td_json *back = parse_ok(text);
        td_error err = {0};
        const td_json *back_arr = td_json_get(back, "arr");
        for (size_t i = 0; i < n_texts; i++) {
            char key[16];
            snprintf(key, sizeof(key), "k%zu", i);
            const char *s;
            int64_t v;
            assert_int_equal(td_json_string(td_json_get(back, key), "dump", key, &s, &err), TD_OK);
            assert_string_equal(s, texts[i]);
            assert_int_equal(td_json_int(td_json_get(back, texts[i]), "dump", texts[i], &v, &err), TD_OK);
            assert_int_equal(v, (int64_t)i);
            assert_int_equal(td_json_string(td_json_at(back_arr, i), "dump", "arr", &s, &err), TD_OK);
            assert_string_equal(s, texts[i]);
        }
        const char *s;
        assert_int_equal(td_json_string(td_json_get(back, "bad"), "dump", "bad", &s, &err), TD_OK);
        /* each byte outside a valid sequence (0xff, 0xc3 before '(', the
         * three bytes of an encoded surrogate) becomes U+FFFD */
        assert_string_equal(s, "a\xef\xbf\xbd" "b\xef\xbf\xbd(\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz");
        td_json_free(back);
        free(text);
    }
}

static void test_styles_and_reals(void **state)
{
    (void)state;
    td_json *obj = td_json_object_new(), *arr = td_json_array_new();
    td_json_set_int(obj, "step", 3);
    td_json_set_num(obj, "p", 0.1);
    td_json_set_num(obj, "q", 0.02);
    td_json_set_num(obj, "eps", 1e-12);
    td_json_set_num(obj, "nan", NAN);
    td_json_set_num(obj, "inf", -INFINITY);
    td_json_push_int(arr, 1);
    td_json_push_int(arr, -2);
    td_json_set(obj, "a", arr);
    td_json_set_int(obj, "step", 4); /* replaces, keeps its place */

    char *s = td_json_dumps(obj, TD_JSON_COMPACT, 0);
    assert_string_equal(s, "{\"step\":4,\"p\":0.1,\"q\":0.02,\"eps\":1e-12,\"nan\":null,\"inf\":null,\"a\":[1,-2]}");
    free(s);
    s = td_json_dumps(obj, TD_JSON_LINE, 0);
    assert_string_equal(s,
                        "{\"step\": 4, \"p\": 0.1, \"q\": 0.02, \"eps\": 1e-12, \"nan\": null, \"inf\": null, \"a\": [1, -2]}");
    free(s);
    s = td_json_dumps(obj, TD_JSON_PRETTY, 0);
    assert_non_null(strstr(s, "{\n  \"step\": 4,\n  \"p\": 0.1,\n"));
    free(s);
    td_json_free(obj);

    /* the fewest digits that read back; or the digits asked for */
    obj = td_json_object_new();
    td_json_set_num(obj, "third", 1.0 / 3.0);
    td_json_set_num(obj, "one", 1.0);
    s = td_json_dumps(obj, TD_JSON_COMPACT, 0);
    td_json *back = parse_ok(s);
    double x = 0;
    td_error err = {0};
    assert_int_equal(td_json_number(td_json_get(back, "third"), "dump", "third", &x, &err), TD_OK);
    assert_true(x == 1.0 / 3.0);
    td_json_free(back);
    free(s);
    s = td_json_dumps(obj, TD_JSON_COMPACT, 9);
    assert_string_equal(s, "{\"third\":0.333333333,\"one\":1.0}");
    free(s);
    td_json_free(obj);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_syntax_position),
        cmocka_unit_test(test_getters),
        cmocka_unit_test(test_escaping_round_trip),
        cmocka_unit_test(test_styles_and_reals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
