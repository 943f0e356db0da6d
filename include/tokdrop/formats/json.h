/* JSON, read and written through jansson behind this one header (src/formats/json.c
 * is the only file that includes <jansson.h>), so the library can be
 * swapped. Reading rejects duplicate keys and reports a syntax error with
 * its line, column and byte; the typed getters name the source and the key
 * ("config.json: key 'hidden_size': expected an integer, got "768""), since
 * a parsed value no longer knows where it stood in the text. Writing
 * escapes every string and key; text that is not UTF-8 (a path, say) is
 * written with U+FFFD for each byte that is not, so the output is always
 * valid JSON. Allocation failures abort (TD_ASSERT). */
#ifndef TOKDROP_JSON_H
#define TOKDROP_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tokdrop/base/error.h"

/* A JSON value; a document is its root value. Opaque. */
typedef struct json_t td_json;

typedef enum {
    TD_JSON_OBJECT,
    TD_JSON_ARRAY,
    TD_JSON_STRING,
    TD_JSON_INTEGER,
    TD_JSON_REAL,
    TD_JSON_TRUE,
    TD_JSON_FALSE,
    TD_JSON_NULL,
} td_json_kind;

/* ---- reading ------------------------------------------------------------- */

/* Where and why parsing stopped. */
typedef struct {
    int line, column;  /* 1-based; column counts characters */
    size_t byte;       /* bytes of the text read when the error was seen */
    char text[160];    /* what was wrong, e.g. "']' expected near '16'" */
} td_json_syntax;

/* Parses n_bytes of text holding one object or array (white space around
 * it only). Returns the document, or NULL with *where filled (where may be
 * NULL). For callers that phrase the message themselves. */
td_json *td_json_parse(const char *text, size_t n_bytes, td_json_syntax *where);

/* The same for a whole file. A syntax error reads
 * "PATH:LINE:COLUMN: not valid JSON (byte B): TEXT". */
td_status td_json_load_file(td_json **out, const char *path, td_error *err);

void td_json_free(td_json *v);

td_json_kind td_json_kind_of(const td_json *v);
/* "an object", "an integer", ... for messages. */
const char *td_json_kind_str(td_json_kind kind);
/* v in a few words for a message: a number or a quoted string as written
 * (long strings cut), true/false/null, "an object" or "an array". */
void td_json_brief(const td_json *v, char *buf, size_t size);

/* The member key of obj, or NULL when obj lacks it or is no object. */
const td_json *td_json_get(const td_json *obj, const char *key);
/* Members of an object or elements of an array; 0 for other values. */
size_t td_json_size(const td_json *v);
/* Element i of an array (NULL past its end). */
const td_json *td_json_at(const td_json *arr, size_t i);

/* The members of obj in the order of the text:
 *   for (void *it = td_json_iter(obj); it; it = td_json_iter_next(obj, it))
 *       use td_json_iter_key(it), td_json_iter_value(it); */
void *td_json_iter(const td_json *obj);
void *td_json_iter_next(const td_json *obj, void *it);
const char *td_json_iter_key(void *it);
const td_json *td_json_iter_value(void *it);

/* Typed getters for a value v found under key in `where` (a file name, or
 * "FILE: tensor x"). On a mismatch they return TD_ERR_FORMAT with
 * "WHERE: key 'KEY': expected an integer, got ..." (v NULL: "missing"). */
td_status td_json_int(const td_json *v, const char *where, const char *key, int64_t *out, td_error *err);
/* An integer or a real, as a finite double. */
td_status td_json_number(const td_json *v, const char *where, const char *key, double *out, td_error *err);
/* The string's UTF-8 text (no NUL inside: the parser refuses \u0000),
 * valid while the document is. */
td_status td_json_string(const td_json *v, const char *where, const char *key, const char **out,
                         td_error *err);
/* An array of at most max_n integers into out; *n_out gets the count. */
td_status td_json_int_array(const td_json *v, const char *where, const char *key, int64_t *out, int max_n,
                            int *n_out, td_error *err);
/* The getters' message for checks of the caller's own: TD_ERR_FORMAT with
 * "WHERE: key 'KEY': expected EXPECTED, got ..." (v NULL: "missing"). */
td_status td_json_expected(const td_json *v, const char *where, const char *key, const char *expected,
                           td_error *err);

/* ---- writing ------------------------------------------------------------- */

td_json *td_json_object_new(void);
td_json *td_json_array_new(void);

/* Sets obj[key] (members keep the order in which they were first set). */
void td_json_set_int(td_json *obj, const char *key, int64_t value);
void td_json_set_num(td_json *obj, const char *key, double value); /* NaN, inf: null */
void td_json_set_str(td_json *obj, const char *key, const char *value);
void td_json_set_bool(td_json *obj, const char *key, bool value);
void td_json_set(td_json *obj, const char *key, td_json *value); /* takes value */

void td_json_push_int(td_json *arr, int64_t value);
void td_json_push_str(td_json *arr, const char *value);

typedef enum {
    TD_JSON_COMPACT, /* {"a":1,"b":[1,2]} */
    TD_JSON_LINE,    /* {"a": 1, "b": [1, 2]}: one line, for JSON-lines files */
    TD_JSON_PRETTY,  /* two-space indents, one member per line */
} td_json_style;

/* v as text (malloc'd, NUL-terminated, no final newline). Reals get
 * real_digits significant digits, or with 0 the fewest digits with which
 * every real of v reads back exactly. */
char *td_json_dumps(const td_json *v, td_json_style style, int real_digits);

#endif
