/* JSON through jansson (tokdrop/formats/json.h): the one place that includes
 * <jansson.h>. Parsing always rejects duplicate keys; writing always goes
 * through jansson's encoder, which escapes quotes, backslashes and control
 * characters, after text that is not UTF-8 has been made so. */
#include "tokdrop/formats/json.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/fs.h"

/* jansson's iterators take a mutable object; we never change it through them. */
static json_t *mutable_json(const td_json *v)
{
    return (json_t *)(uintptr_t)v;
}

/* ---- reading ------------------------------------------------------------- */

static void fill_syntax(td_json_syntax *where, const json_error_t *e)
{
    if (!where) return;
    where->line = e->line;
    where->column = e->column;
    where->byte = e->position > 0 ? (size_t)e->position : 0;
    snprintf(where->text, sizeof(where->text), "%s", e->text);
}

td_json *td_json_parse(const char *text, size_t n_bytes, td_json_syntax *where)
{
    json_error_t e;
    json_t *v = json_loadb(text, n_bytes, JSON_REJECT_DUPLICATES, &e);
    if (!v) fill_syntax(where, &e);
    return v;
}

td_status td_json_load_file(td_json **out, const char *path, td_error *err)
{
    *out = NULL;
    FILE *f;
    td_status st = td_fs_open_regular(&f, path, "a JSON file", TD_ERR_IO, err);
    if (st != TD_OK) return st;
    json_error_t e;
    json_t *v = json_loadf(f, JSON_REJECT_DUPLICATES, &e);
    bool read_failed = ferror(f);
    fclose(f);
    if (read_failed) {
        json_decref(v);
        return td_error_set(err, TD_ERR_IO, "%s: read failed", path);
    }
    if (!v)
        return td_error_set(err, TD_ERR_FORMAT, "%s:%d:%d: not valid JSON (byte %d): %s", path, e.line, e.column,
                            e.position, e.text);
    *out = v;
    return TD_OK;
}

void td_json_free(td_json *v)
{
    json_decref(v);
}

td_json_kind td_json_kind_of(const td_json *v)
{
    TD_ASSERT(v != NULL);
    switch (json_typeof(v)) {
    case JSON_OBJECT: return TD_JSON_OBJECT;
    case JSON_ARRAY: return TD_JSON_ARRAY;
    case JSON_STRING: return TD_JSON_STRING;
    case JSON_INTEGER: return TD_JSON_INTEGER;
    case JSON_REAL: return TD_JSON_REAL;
    case JSON_TRUE: return TD_JSON_TRUE;
    case JSON_FALSE: return TD_JSON_FALSE;
    case JSON_NULL: break;
    }
    return TD_JSON_NULL;
}

const char *td_json_kind_str(td_json_kind kind)
{
    switch (kind) {
    case TD_JSON_OBJECT: return "an object";
    case TD_JSON_ARRAY: return "an array";
    case TD_JSON_STRING: return "a string";
    case TD_JSON_INTEGER: return "an integer";
    case TD_JSON_REAL: return "a real number";
    case TD_JSON_TRUE:
    case TD_JSON_FALSE: return "a boolean";
    case TD_JSON_NULL: break;
    }
    return "null";
}

/* The fewest significant digits (1..17) with which "%.*g" reads back as x. */
static int shortest_digits(double x)
{
    char buf[40];
    for (int prec = 1; prec < 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, x);
        if (strtod(buf, NULL) == x) return prec;
    }
    return 17;
}

void td_json_brief(const td_json *v, char *buf, size_t size)
{
    if (!v) {
        snprintf(buf, size, "nothing");
        return;
    }
    switch (td_json_kind_of(v)) {
    case TD_JSON_INTEGER: snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); break;
    case TD_JSON_REAL: {
        double x = json_real_value(v);
        snprintf(buf, size, "%.*g", shortest_digits(x), x);
        break;
    }
    case TD_JSON_STRING: {
        const char *s = json_string_value(v);
        size_t n = strlen(s);
        snprintf(buf, size, "\"%.*s%s\"", n > 40 ? 40 : (int)n, s, n > 40 ? "..." : "");
        break;
    }
    case TD_JSON_TRUE: snprintf(buf, size, "true"); break;
    case TD_JSON_FALSE: snprintf(buf, size, "false"); break;
    case TD_JSON_NULL: snprintf(buf, size, "null"); break;
    case TD_JSON_OBJECT:
    case TD_JSON_ARRAY: snprintf(buf, size, "%s", td_json_kind_str(td_json_kind_of(v))); break;
    }
}

const td_json *td_json_get(const td_json *obj, const char *key)
{
    return obj && json_is_object(obj) ? json_object_get(obj, key) : NULL;
}

size_t td_json_size(const td_json *v)
{
    if (json_is_object(v)) return json_object_size(v);
    if (json_is_array(v)) return json_array_size(v);
    return 0;
}

const td_json *td_json_at(const td_json *arr, size_t i)
{
    return json_array_get(arr, i);
}

void *td_json_iter(const td_json *obj)
{
    return json_object_iter(mutable_json(obj));
}

void *td_json_iter_next(const td_json *obj, void *it)
{
    return json_object_iter_next(mutable_json(obj), it);
}

const char *td_json_iter_key(void *it)
{
    return json_object_iter_key(it);
}

const td_json *td_json_iter_value(void *it)
{
    return json_object_iter_value(it);
}

td_status td_json_expected(const td_json *v, const char *where, const char *key, const char *expected,
                           td_error *err)
{
    if (!v) return td_error_set(err, TD_ERR_FORMAT, "%s: key '%s' is missing (expected %s)", where, key, expected);
    char got[64];
    td_json_brief(v, got, sizeof(got));
    return td_error_set(err, TD_ERR_FORMAT, "%s: key '%s': expected %s, got %s", where, key, expected, got);
}

td_status td_json_int(const td_json *v, const char *where, const char *key, int64_t *out, td_error *err)
{
    if (!json_is_integer(v)) return td_json_expected(v, where, key, "an integer", err);
    *out = (int64_t)json_integer_value(v);
    return TD_OK;
}

td_status td_json_number(const td_json *v, const char *where, const char *key, double *out, td_error *err)
{
    if (!json_is_number(v)) return td_json_expected(v, where, key, "a number", err);
    *out = json_number_value(v);
    return TD_OK;
}

td_status td_json_string(const td_json *v, const char *where, const char *key, const char **out, td_error *err)
{
    if (!json_is_string(v)) return td_json_expected(v, where, key, "a string", err);
    *out = json_string_value(v);
    return TD_OK;
}

td_status td_json_int_array(const td_json *v, const char *where, const char *key, int64_t *out, int max_n,
                            int *n_out, td_error *err)
{
    char expected[64];
    snprintf(expected, sizeof(expected), "an array of at most %d integers", max_n);
    if (!json_is_array(v)) return td_json_expected(v, where, key, expected, err);
    size_t n = json_array_size(v);
    if (n > (size_t)max_n)
        return td_error_set(err, TD_ERR_FORMAT, "%s: key '%s': expected %s, got %zu elements", where, key,
                            expected, n);
    for (size_t i = 0; i < n; i++) {
        const json_t *x = json_array_get(v, i);
        if (!json_is_integer(x)) {
            char got[64];
            td_json_brief(x, got, sizeof(got));
            return td_error_set(err, TD_ERR_FORMAT, "%s: key '%s': expected %s, element %zu is %s", where, key,
                                expected, i, got);
        }
        out[i] = (int64_t)json_integer_value(x);
    }
    *n_out = (int)n;
    return TD_OK;
}

/* ---- writing ------------------------------------------------------------- */

/* The length of the UTF-8 sequence at s (1-4), or 0 when it is not one
 * (overlong forms, surrogates and code points past U+10FFFF are not). */
static int utf8_len(const unsigned char *s)
{
    if (s[0] < 0x80) return 1;
    int n;
    uint32_t cp;
    if ((s[0] & 0xe0) == 0xc0) n = 2, cp = s[0] & 0x1f;
    else if ((s[0] & 0xf0) == 0xe0) n = 3, cp = s[0] & 0x0f;
    else if ((s[0] & 0xf8) == 0xf0) n = 4, cp = s[0] & 0x07;
    else return 0;
    for (int k = 1; k < n; k++) {
        if ((s[k] & 0xc0) != 0x80) return 0; /* also stops at the NUL */
        cp = (cp << 6) | (s[k] & 0x3f);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return n;
}

/* s itself when it is UTF-8, else a copy in *owned with U+FFFD for each
 * byte that is not part of a valid sequence. */
static const char *as_utf8(const char *s, char **owned)
{
    *owned = NULL;
    const unsigned char *p = (const unsigned char *)s;
    size_t n_bad = 0, n = 0;
    while (p[n]) {
        int k = utf8_len(p + n);
        n_bad += k == 0;
        n += k ? (size_t)k : 1;
    }
    if (n_bad == 0) return s;
    char *out = td_xmalloc(n + 2 * n_bad + 1), *o = out;
    for (size_t i = 0; i < n;) {
        int k = utf8_len(p + i);
        if (k) {
            memcpy(o, p + i, (size_t)k);
            o += k;
            i += (size_t)k;
        } else {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    *o = '\0';
    *owned = out;
    return out;
}

static json_t *new_string(const char *s)
{
    char *owned;
    json_t *v = json_string(as_utf8(s, &owned));
    free(owned);
    TD_ASSERT(v != NULL);
    return v;
}

td_json *td_json_object_new(void)
{
    json_t *v = json_object();
    TD_ASSERT(v != NULL);
    return v;
}

td_json *td_json_array_new(void)
{
    json_t *v = json_array();
    TD_ASSERT(v != NULL);
    return v;
}

void td_json_set(td_json *obj, const char *key, td_json *value)
{
    TD_ASSERT(json_is_object(obj) && value != NULL);
    char *owned;
    int rc = json_object_set_new(obj, as_utf8(key, &owned), value);
    free(owned);
    TD_ASSERT(rc == 0);
}

void td_json_set_int(td_json *obj, const char *key, int64_t value)
{
    json_t *v = json_integer((json_int_t)value);
    TD_ASSERT(v != NULL);
    td_json_set(obj, key, v);
}

void td_json_set_num(td_json *obj, const char *key, double value)
{
    /* JSON has no NaN or infinity: null keeps the text parseable. */
    json_t *v = isfinite(value) ? json_real(value) : json_null();
    TD_ASSERT(v != NULL);
    td_json_set(obj, key, v);
}

void td_json_set_str(td_json *obj, const char *key, const char *value)
{
    td_json_set(obj, key, new_string(value));
}

void td_json_set_bool(td_json *obj, const char *key, bool value)
{
    td_json_set(obj, key, json_boolean(value));
}

void td_json_push_int(td_json *arr, int64_t value)
{
    json_t *v = json_integer((json_int_t)value);
    TD_ASSERT(v != NULL && json_array_append_new(arr, v) == 0);
}

void td_json_push_str(td_json *arr, const char *value)
{
    TD_ASSERT(json_array_append_new(arr, new_string(value)) == 0);
}

/* The most digits any real of v needs to read back exactly (0: none). */
static int max_shortest_digits(const json_t *v)
{
    int most = 0, d;
    if (json_is_real(v)) return shortest_digits(json_real_value(v));
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            if ((d = max_shortest_digits(json_array_get(v, i))) > most) most = d;
    } else if (json_is_object(v)) {
        for (void *it = td_json_iter(v); it; it = td_json_iter_next(v, it))
            if ((d = max_shortest_digits(json_object_iter_value(it))) > most) most = d;
    }
    return most;
}

char *td_json_dumps(const td_json *v, td_json_style style, int real_digits)
{
    TD_ASSERT(v != NULL && real_digits >= 0 && real_digits <= 17);
    /* Up to 15 digits, "%.*g" of a real whose shortest form has fewer
     * digits still prints that form: a config's 0.1 stays 0.1 beside 0.02. */
    int digits = real_digits ? real_digits : max_shortest_digits(v);
    size_t flags = JSON_ENCODE_ANY | JSON_REAL_PRECISION(digits ? digits : 17);
    if (style == TD_JSON_COMPACT) flags |= JSON_COMPACT;
    else if (style == TD_JSON_PRETTY) flags |= JSON_INDENT(2);
    char *s = json_dumps(v, flags);
    TD_ASSERT(s != NULL);
    return s;
}
