/* Hugging Face safetensors, read and write, for export/import and for
 * model.init. Format: an 8-byte little-endian header length N, N bytes of
 * JSON {"__metadata__": {...}, name: {"dtype", "shape", "data_offsets"}},
 * then the data; offsets are relative to the first byte after the header.
 * The JSON parser is small and strict (objects, arrays, strings with escapes,
 * integers, true/false/null inside metadata) because the header comes from
 * files we did not write; every error names the file and a byte offset or
 * the tensor. */
#include "tokdrop/safetensors.h"

#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The reference implementation refuses headers above 100 MB as well. */
#define TD_ST_MAX_HEADER (100u * 1000u * 1000u)
#define TD_ST_MAX_DIMS 8
#define TD_ST_MAX_DEPTH 64
/* Elements converted per read for F16/BF16 (bounded temporary buffer). */
#define TD_ST_CONVERT_CHUNK 65536

static bool host_is_little_endian(void)
{
    const uint32_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static void swap32(void *p, int64_t n)
{
    unsigned char *b = p;
    for (int64_t i = 0; i < n; i++, b += 4) {
        unsigned char t0 = b[0], t1 = b[1];
        b[0] = b[3];
        b[1] = b[2];
        b[2] = t1;
        b[3] = t0;
    }
}

/* ---- writing -------------------------------------------------------------------- */

/* A growable text buffer for the header. */
typedef struct {
    char *s;
    size_t len, cap;
} strbuf;

static void sb_putn(strbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (b->len + n + 1 > cap) cap *= 2;
        char *p = realloc(b->s, cap);
        TD_ASSERT(p != NULL);
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_puts(strbuf *b, const char *s)
{
    sb_putn(b, s, strlen(s));
}

static void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(strbuf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    TD_ASSERT(n >= 0 && (size_t)n < sizeof(tmp));
    sb_putn(b, tmp, (size_t)n);
}

/* A JSON string literal; tensor names are ASCII in practice, but a quote,
 * backslash or control character must not break the header. */
static void sb_put_json_string(strbuf *b, const char *s)
{
    sb_puts(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            sb_putn(b, esc, 2);
        } else if (*p < 0x20) {
            sb_printf(b, "\\u%04x", *p);
        } else {
            sb_putn(b, (const char *)p, 1);
        }
    }
    sb_puts(b, "\"");
}

static bool write_all(FILE *f, const void *p, size_t n)
{
    return fwrite(p, 1, n, f) == n;
}

/* n floats as little-endian F32. */
static bool write_f32_le(FILE *f, const float *x, int64_t n)
{
    if (host_is_little_endian()) return write_all(f, x, (size_t)n * sizeof(float));
    float buf[4096];
    for (int64_t i = 0; i < n; i += 4096) {
        int64_t k = n - i < 4096 ? n - i : 4096;
        memcpy(buf, x + i, (size_t)k * sizeof(float));
        swap32(buf, k);
        if (!write_all(f, buf, (size_t)k * sizeof(float))) return false;
    }
    return true;
}

/* What the writer hands to td_fs_write_atomic. */
typedef struct {
    const strbuf *header;
    const td_tensor_info *tensors;
    int n_tensors;
    const float *block;
} st_content;

static td_status fill_file(FILE *f, const void *ctx, td_error *err)
{
    (void)err; /* a failed fwrite is seen by td_fs_write_atomic through ferror */
    const st_content *c = ctx;
    unsigned char len_le[8];
    for (int k = 0; k < 8; k++) len_le[k] = (unsigned char)((uint64_t)c->header->len >> (8 * k));
    bool ok = write_all(f, len_le, 8) && write_all(f, c->header->s, c->header->len);
    for (int i = 0; ok && i < c->n_tensors; i++)
        ok = write_f32_le(f, c->block + c->tensors[i].offset, c->tensors[i].n_elems);
    return TD_OK;
}

td_status td_safetensors_write(const char *path, const td_tensor_info *tensors, int n_tensors,
                               const float *block, td_error *err)
{
    TD_ASSERT(path != NULL && (n_tensors == 0 || (tensors != NULL && block != NULL)));
    strbuf h = {0};
    sb_puts(&h, "{\"__metadata__\":{\"format\":\"pt\"}");
    uint64_t pos = 0;
    for (int i = 0; i < n_tensors; i++) {
        const td_tensor_info *t = &tensors[i];
        TD_ASSERT(t->ndim >= 1 && t->ndim <= 2 && t->n_elems >= 0);
        uint64_t n_bytes = (uint64_t)t->n_elems * sizeof(float);
        sb_puts(&h, ",");
        sb_put_json_string(&h, t->name);
        sb_puts(&h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) sb_printf(&h, d ? ",%" PRId64 : "%" PRId64, t->shape[d]);
        sb_printf(&h, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", pos, pos + n_bytes);
        pos += n_bytes;
    }
    sb_puts(&h, "}");
    /* Pad with spaces so the data starts 8-byte aligned, as the reference
     * writer does (readers may then map F32/F64 data in place). */
    while (h.len % 8 != 0) sb_puts(&h, " ");

    st_content c = {&h, tensors, n_tensors, block};
    td_status st = td_fs_write_atomic(path, fill_file, &c, err);
    free(h.s);
    return st;
}

/* ---- the header parser ------------------------------------------------------------ */

typedef enum { DT_OTHER = 0, DT_F32, DT_F16, DT_BF16 } st_dtype;

/* One tensor entry of the header. */
typedef struct {
    const char *name;      /* in the parser's string arena */
    char dtype[16];        /* as written, for messages */
    st_dtype kind;
    int ndim;
    int64_t shape[TD_ST_MAX_DIMS];
    uint64_t begin, end;   /* data_offsets, relative to the data section */
    size_t header_pos;     /* byte of the entry's key in the header */
    bool used;
} st_entry;

typedef struct {
    const char *s; /* the header text (not NUL-terminated) */
    size_t n, pos;
    const char *path;
    td_error *err;
    char *arena; /* decoded strings; never longer than the header */
    size_t arena_used;
    st_entry *entries;
    int n_entries, cap_entries;
} st_parser;

/* Offsets in messages count from the start of the file (8 + header byte),
 * which is what a hex dump of the file shows. */
static td_status syntax_error(st_parser *p, const char *what)
{
    char found[16];
    if (p->pos >= p->n) snprintf(found, sizeof(found), "end of header");
    else if (p->s[p->pos] >= 0x20 && p->s[p->pos] < 0x7f)
        snprintf(found, sizeof(found), "'%c'", p->s[p->pos]);
    else snprintf(found, sizeof(found), "byte 0x%02x", (unsigned char)p->s[p->pos]);
    return td_error_set(p->err, TD_ERR_FORMAT,
                        "%s: malformed safetensors header at file byte %zu (header byte %zu): "
                        "expected %s, found %s",
                        p->path, p->pos + 8, p->pos, what, found);
}

static void skip_ws(st_parser *p)
{
    while (p->pos < p->n) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

/* Skips white space, then consumes c if it is next. */
static bool accept(st_parser *p, char c)
{
    skip_ws(p);
    if (p->pos < p->n && p->s[p->pos] == c) {
        p->pos++;
        return true;
    }
    return false;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool read_hex4(st_parser *p, uint32_t *out)
{
    if (p->n - p->pos < 4) return false;
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        int d = hex_digit(p->s[p->pos + (size_t)k]);
        if (d < 0) return false;
        v = v * 16 + (uint32_t)d;
    }
    p->pos += 4;
    *out = v;
    return true;
}

static void arena_put(st_parser *p, uint32_t byte)
{
    p->arena[p->arena_used++] = (char)byte;
}

/* Appends code point cp as UTF-8; its encoding is never longer than the
 * escape that produced it, so the arena cannot overflow. */
static void arena_put_utf8(st_parser *p, uint32_t cp)
{
    if (cp < 0x80) {
        arena_put(p, cp);
    } else if (cp < 0x800) {
        arena_put(p, 0xc0 | (cp >> 6));
        arena_put(p, 0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        arena_put(p, 0xe0 | (cp >> 12));
        arena_put(p, 0x80 | ((cp >> 6) & 0x3f));
        arena_put(p, 0x80 | (cp & 0x3f));
    } else {
        arena_put(p, 0xf0 | (cp >> 18));
        arena_put(p, 0x80 | ((cp >> 12) & 0x3f));
        arena_put(p, 0x80 | ((cp >> 6) & 0x3f));
        arena_put(p, 0x80 | (cp & 0x3f));
    }
}

/* A string literal, decoded into the arena; *out points at it. */
static td_status parse_string(st_parser *p, const char **out)
{
    skip_ws(p);
    if (p->pos >= p->n || p->s[p->pos] != '"') return syntax_error(p, "a string");
    p->pos++;
    char *start = p->arena + p->arena_used;
    for (;;) {
        if (p->pos >= p->n) return syntax_error(p, "a closing '\"'");
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"') {
            p->pos++;
            break;
        }
        if (c < 0x20) return syntax_error(p, "a string character (control bytes must be escaped)");
        if (c != '\\') {
            arena_put(p, c);
            p->pos++;
            continue;
        }
        p->pos++;
        if (p->pos >= p->n) return syntax_error(p, "an escape character");
        char e = p->s[p->pos];
        const char *simple = "\"\\/bfnrt", *value = "\"\\/\b\f\n\r\t";
        const char *hit = e ? strchr(simple, e) : NULL;
        if (hit) {
            arena_put(p, (unsigned char)value[hit - simple]);
            p->pos++;
            continue;
        }
        if (e != 'u') return syntax_error(p, "an escape (one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u)");
        p->pos++;
        uint32_t cp;
        if (!read_hex4(p, &cp)) return syntax_error(p, "4 hex digits after \\u");
        if (cp >= 0xdc00 && cp <= 0xdfff) return syntax_error(p, "a high surrogate before a low one");
        if (cp >= 0xd800 && cp <= 0xdbff) {
            uint32_t lo;
            if (p->n - p->pos < 2 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
                return syntax_error(p, "a \\u low surrogate after a high surrogate");
            p->pos += 2;
            if (!read_hex4(p, &lo) || lo < 0xdc00 || lo > 0xdfff)
                return syntax_error(p, "a low surrogate \\udc00-\\udfff");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }
        if (cp == 0) return syntax_error(p, "a string without \\u0000");
        arena_put_utf8(p, cp);
    }
    arena_put(p, 0);
    *out = start;
    return TD_OK;
}

/* A non-negative or negative integer that fits int64; fractions and
 * exponents are rejected (shapes and offsets are integers). */
static td_status parse_int(st_parser *p, int64_t *out)
{
    skip_ws(p);
    size_t start = p->pos;
    bool neg = false;
    if (p->pos < p->n && p->s[p->pos] == '-') neg = true, p->pos++;
    if (p->pos >= p->n || p->s[p->pos] < '0' || p->s[p->pos] > '9') {
        p->pos = start;
        return syntax_error(p, "an integer");
    }
    if (p->s[p->pos] == '0' && p->pos + 1 < p->n && p->s[p->pos + 1] >= '0' &&
        p->s[p->pos + 1] <= '9')
        return syntax_error(p, "an integer without leading zeros");
    uint64_t v = 0;
    while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
        uint64_t d = (uint64_t)(p->s[p->pos] - '0');
        if (v > (UINT64_C(9223372036854775807) - d) / 10) {
            p->pos = start;
            return syntax_error(p, "an integer that fits 64 bits");
        }
        v = v * 10 + d;
        p->pos++;
    }
    if (p->pos < p->n && (p->s[p->pos] == '.' || p->s[p->pos] == 'e' || p->s[p->pos] == 'E'))
        return syntax_error(p, "an integer (no fraction or exponent)");
    *out = neg ? -(int64_t)v : (int64_t)v;
    return TD_OK;
}

static bool accept_word(st_parser *p, const char *w)
{
    size_t k = strlen(w);
    if (p->n - p->pos >= k && memcmp(p->s + p->pos, w, k) == 0) {
        p->pos += k;
        return true;
    }
    return false;
}

/* Any JSON value that we do not need (metadata, unknown entry fields). */
static td_status skip_value(st_parser *p, int depth)
{
    if (depth > TD_ST_MAX_DEPTH) return syntax_error(p, "less deeply nested values");
    skip_ws(p);
    if (p->pos >= p->n) return syntax_error(p, "a value");
    char c = p->s[p->pos];
    td_status st;
    if (c == '"') {
        const char *s;
        return parse_string(p, &s);
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        /* numbers in metadata may have fractions; consume JSON number syntax */
        size_t start = p->pos;
        if (c == '-') p->pos++;
        size_t digits = p->pos;
        while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
        if (p->pos == digits) {
            p->pos = start;
            return syntax_error(p, "a number");
        }
        if (p->pos < p->n && p->s[p->pos] == '.') {
            p->pos++;
            size_t f = p->pos;
            while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
            if (p->pos == f) return syntax_error(p, "digits after '.'");
        }
        if (p->pos < p->n && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
            p->pos++;
            if (p->pos < p->n && (p->s[p->pos] == '+' || p->s[p->pos] == '-')) p->pos++;
            size_t f = p->pos;
            while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
            if (p->pos == f) return syntax_error(p, "digits in the exponent");
        }
        return TD_OK;
    }
    if (accept_word(p, "true") || accept_word(p, "false") || accept_word(p, "null")) return TD_OK;
    if (c == '[') {
        p->pos++;
        if (accept(p, ']')) return TD_OK;
        do {
            if ((st = skip_value(p, depth + 1)) != TD_OK) return st;
        } while (accept(p, ','));
        if (!accept(p, ']')) return syntax_error(p, "',' or ']'");
        return TD_OK;
    }
    if (c == '{') {
        p->pos++;
        if (accept(p, '}')) return TD_OK;
        do {
            const char *key;
            if ((st = parse_string(p, &key)) != TD_OK) return st;
            if (!accept(p, ':')) return syntax_error(p, "':'");
            if ((st = skip_value(p, depth + 1)) != TD_OK) return st;
        } while (accept(p, ','));
        if (!accept(p, '}')) return syntax_error(p, "',' or '}'");
        return TD_OK;
    }
    return syntax_error(p, "a value");
}

/* [int, int, ...] into out (at most max_n); *n gets the count. */
static td_status parse_int_array(st_parser *p, int64_t *out, int max_n, int *n,
                                 const char *too_many)
{
    *n = 0;
    if (!accept(p, '[')) return syntax_error(p, "'['");
    if (accept(p, ']')) return TD_OK;
    do {
        int64_t v = 0;
        if (*n >= max_n) return syntax_error(p, too_many);
        td_status st = parse_int(p, &v);
        if (st != TD_OK) return st;
        out[(*n)++] = v;
    } while (accept(p, ','));
    if (!accept(p, ']')) return syntax_error(p, "',' or ']'");
    return TD_OK;
}

static st_dtype dtype_kind(const char *s)
{
    if (strcmp(s, "F32") == 0) return DT_F32;
    if (strcmp(s, "F16") == 0) return DT_F16;
    if (strcmp(s, "BF16") == 0) return DT_BF16;
    return DT_OTHER;
}

/* {"dtype": "...", "shape": [...], "data_offsets": [b, e]} in any order. */
static td_status parse_entry(st_parser *p, st_entry *e)
{
    if (!accept(p, '{')) return syntax_error(p, "'{' (a tensor entry)");
    bool has_dtype = false, has_shape = false, has_offsets = false;
    td_status st;
    if (!accept(p, '}')) {
        do {
            const char *key;
            skip_ws(p);
            if ((st = parse_string(p, &key)) != TD_OK) return st;
            if (!accept(p, ':')) return syntax_error(p, "':'");
            if (strcmp(key, "dtype") == 0) {
                const char *dt;
                skip_ws(p);
                if ((st = parse_string(p, &dt)) != TD_OK) return st;
                snprintf(e->dtype, sizeof(e->dtype), "%s", dt);
                e->kind = dtype_kind(dt);
                has_dtype = true;
            } else if (strcmp(key, "shape") == 0) {
                if ((st = parse_int_array(p, e->shape, TD_ST_MAX_DIMS, &e->ndim,
                                          "at most 8 dimensions")) != TD_OK)
                    return st;
                has_shape = true;
            } else if (strcmp(key, "data_offsets") == 0) {
                int64_t off[2];
                int n;
                size_t at = p->pos;
                if ((st = parse_int_array(p, off, 2, &n, "at most 2 data_offsets")) != TD_OK) return st;
                if (n != 2 || off[0] < 0 || off[1] < off[0]) {
                    p->pos = at;
                    skip_ws(p);
                    return syntax_error(p, "data_offsets [begin, end] with 0 <= begin <= end");
                }
                e->begin = (uint64_t)off[0];
                e->end = (uint64_t)off[1];
                has_offsets = true;
            } else {
                if ((st = skip_value(p, 1)) != TD_OK) return st;
            }
        } while (accept(p, ','));
        if (!accept(p, '}')) return syntax_error(p, "',' or '}'");
    }
    if (!has_dtype || !has_shape || !has_offsets)
        return td_error_set(p->err, TD_ERR_FORMAT,
                            "%s: tensor %s: header entry (byte %zu) lacks \"%s\"", p->path,
                            e->name, e->header_pos + 8,
                            !has_dtype ? "dtype" : !has_shape ? "shape" : "data_offsets");
    for (int d = 0; d < e->ndim; d++)
        if (e->shape[d] < 0)
            return td_error_set(p->err, TD_ERR_FORMAT, "%s: tensor %s: negative dimension %" PRId64,
                                p->path, e->name, e->shape[d]);
    return TD_OK;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const st_entry *)a)->name, ((const st_entry *)b)->name);
}

/* The whole header: one object of entries, then only white space. */
static td_status parse_header(st_parser *p)
{
    td_status st;
    if (!accept(p, '{')) return syntax_error(p, "'{' (the header is a JSON object)");
    if (!accept(p, '}')) {
        do {
            skip_ws(p);
            size_t key_pos = p->pos;
            const char *key;
            if ((st = parse_string(p, &key)) != TD_OK) return st;
            if (!accept(p, ':')) return syntax_error(p, "':'");
            if (strcmp(key, "__metadata__") == 0) {
                skip_ws(p);
                if (p->pos >= p->n || p->s[p->pos] != '{')
                    return syntax_error(p, "'{' (__metadata__ is an object)");
                if ((st = skip_value(p, 1)) != TD_OK) return st;
                continue;
            }
            if (p->n_entries == p->cap_entries) {
                int cap = p->cap_entries ? 2 * p->cap_entries : 64;
                st_entry *ne = realloc(p->entries, (size_t)cap * sizeof(*ne));
                TD_ASSERT(ne != NULL);
                p->entries = ne;
                p->cap_entries = cap;
            }
            st_entry *e = &p->entries[p->n_entries++];
            memset(e, 0, sizeof(*e));
            e->name = key;
            e->header_pos = key_pos;
            if ((st = parse_entry(p, e)) != TD_OK) return st;
        } while (accept(p, ','));
        if (!accept(p, '}')) return syntax_error(p, "',' or '}'");
    }
    skip_ws(p);
    if (p->pos != p->n) return syntax_error(p, "only white space after the header object");
    /* Sorted by name: duplicates become neighbours, look-ups a bsearch, and a
     * hostile header with a million entries costs n log n, not n^2. */
    if (p->n_entries > 1) qsort(p->entries, (size_t)p->n_entries, sizeof(st_entry), entry_cmp);
    for (int i = 1; i < p->n_entries; i++) {
        const st_entry *a = &p->entries[i - 1], *b = &p->entries[i];
        if (strcmp(a->name, b->name) == 0)
            return td_error_set(p->err, TD_ERR_FORMAT,
                                "%s: tensor %s appears twice in the header (file bytes %zu and "
                                "%zu)",
                                p->path, a->name, a->header_pos + 8, b->header_pos + 8);
    }
    return TD_OK;
}

/* ---- reading ---------------------------------------------------------------------- */

/* Reads exactly n bytes at offset, retrying short reads. */
static bool pread_all(int fd, void *buf, size_t n, uint64_t offset)
{
    unsigned char *b = buf;
    while (n > 0) {
        ssize_t k = pread(fd, b, n, (off_t)offset);
        if (k < 0 && errno == EINTR) continue;
        if (k == 0) errno = 0; /* end of file: callers say so instead of a stale errno */
        if (k <= 0) return false;
        b += k;
        n -= (size_t)k;
        offset += (uint64_t)k;
    }
    return true;
}

static float bf16_to_float(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* IEEE half to float, exactly (every half is a float), with subnormals,
 * infinities and NaN. */
static float f16_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else {
        /* subnormal: normalise the mantissa */
        int e = -1;
        do {
            man <<= 1;
            e++;
        } while (!(man & 0x400));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static void format_shape(char *buf, size_t size, int ndim, const int64_t *shape)
{
    size_t k = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < ndim && k < size; d++)
        k += (size_t)snprintf(buf + k, size - k, d ? ", %" PRId64 : "%" PRId64, shape[d]);
    if (k < size) snprintf(buf + k, size - k, "]");
}

/* Checks one table tensor against its header entry and reads its data. */
static td_status read_tensor(int fd, const char *path, uint64_t data_start, uint64_t data_size,
                             const td_tensor_info *t, const st_entry *e, float *dst,
                             uint16_t *scratch, td_error *err)
{
    bool shape_ok = e->ndim == t->ndim;
    for (int d = 0; shape_ok && d < t->ndim; d++) shape_ok = e->shape[d] == t->shape[d];
    if (!shape_ok) {
        char got[160], want[64];
        format_shape(got, sizeof(got), e->ndim, e->shape);
        format_shape(want, sizeof(want), t->ndim, t->shape);
        return td_error_set(err, TD_ERR_FORMAT, "%s: tensor %s: shape %s, expected %s", path,
                            t->name, got, want);
    }
    if (e->kind == DT_OTHER)
        return td_error_set(err, TD_ERR_FORMAT, "%s: tensor %s: dtype %s, expected F32, F16 or BF16",
                            path, t->name, e->dtype);
    uint64_t elem_bytes = e->kind == DT_F32 ? 4 : 2;
    uint64_t want_bytes = (uint64_t)t->n_elems * elem_bytes;
    if (e->end - e->begin != want_bytes)
        return td_error_set(err, TD_ERR_FORMAT,
                            "%s: tensor %s: data_offsets [%" PRIu64 ", %" PRIu64 "] span %" PRIu64
                            " bytes, expected %" PRIu64 " (%" PRId64 " x %s)",
                            path, t->name, e->begin, e->end, e->end - e->begin, want_bytes,
                            t->n_elems, e->dtype);
    if (e->end > data_size)
        return td_error_set(err, TD_ERR_FORMAT,
                            "%s: tensor %s: data_offsets [%" PRIu64 ", %" PRIu64
                            "] run past the end of the data (%" PRIu64
                            " bytes; is the file truncated?)",
                            path, t->name, e->begin, e->end, data_size);
    uint64_t at = data_start + e->begin;
    if (e->kind == DT_F32) {
        if (!pread_all(fd, dst, (size_t)want_bytes, at))
            return td_error_set(err, TD_ERR_IO, "%s: tensor %s: read failed: %s", path, t->name,
                                errno ? strerror(errno) : "unexpected end of file");
        if (!host_is_little_endian()) swap32(dst, t->n_elems);
        return TD_OK;
    }
    for (int64_t i = 0; i < t->n_elems; i += TD_ST_CONVERT_CHUNK) {
        int64_t k = t->n_elems - i < TD_ST_CONVERT_CHUNK ? t->n_elems - i : TD_ST_CONVERT_CHUNK;
        if (!pread_all(fd, scratch, (size_t)k * 2, at + (uint64_t)i * 2))
            return td_error_set(err, TD_ERR_IO, "%s: tensor %s: read failed: %s", path, t->name,
                                errno ? strerror(errno) : "unexpected end of file");
        const unsigned char *b = (const unsigned char *)scratch;
        for (int64_t j = 0; j < k; j++) {
            uint16_t h = (uint16_t)(b[2 * j] | (b[2 * j + 1] << 8)); /* little-endian */
            dst[i + j] = e->kind == DT_BF16 ? bf16_to_float(h) : f16_to_float(h);
        }
    }
    return TD_OK;
}

/* The file's entry for the table name, or NULL. Besides the name itself,
 * the spellings published BERT files use: without the "bert." prefix
 * (files saved from BertModel) and LayerNorm gamma/beta for weight/bias
 * (files converted from the original TF checkpoints), in that order. */
static st_entry *find_entry(st_parser *p, const char *name)
{
    if (p->n_entries == 0) return NULL;
    static const char prefix[] = "bert.";
    static const struct { const char *suffix, *alias; } ln[] = {
        {"LayerNorm.weight", "LayerNorm.gamma"}, {"LayerNorm.bias", "LayerNorm.beta"},
    };
    char cand[2 * TD_TENSOR_NAME_LEN];
    for (int strip = 0; strip <= 1; strip++) {
        const char *base = name;
        if (strip) {
            if (strncmp(name, prefix, sizeof(prefix) - 1) != 0) break;
            base = name + sizeof(prefix) - 1;
        }
        for (int a = -1; a < 2; a++) {
            size_t n = strlen(base);
            if (a < 0) {
                snprintf(cand, sizeof(cand), "%s", base);
            } else {
                size_t k = strlen(ln[a].suffix);
                if (n < k || strcmp(base + n - k, ln[a].suffix) != 0) continue;
                snprintf(cand, sizeof(cand), "%.*s%s", (int)(n - k), base, ln[a].alias);
            }
            st_entry key = {.name = cand};
            st_entry *e = bsearch(&key, p->entries, (size_t)p->n_entries, sizeof(st_entry), entry_cmp);
            if (e) return e;
        }
    }
    return NULL;
}

td_status td_safetensors_read_some(const char *path, const td_tensor_info *tensors, int n_tensors,
                                   float *block, bool *present, int *n_ignored, td_error *err)
{
    TD_ASSERT(path != NULL && (n_tensors == 0 || (tensors != NULL && block != NULL)));
    if (n_ignored) *n_ignored = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return td_error_set(err, TD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));

    td_status st = TD_OK;
    char *header = NULL;
    uint16_t *scratch = NULL;
    st_parser p = {0};
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        st = td_error_set(err, TD_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto done;
    }
    uint64_t file_size = (uint64_t)sb.st_size;
    unsigned char len_le[8];
    if (file_size < 8 || !pread_all(fd, len_le, 8, 0)) {
        st = td_error_set(err, TD_ERR_FORMAT,
                          "%s: %" PRIu64 " bytes, too short for a safetensors file (8-byte header "
                          "length first)",
                          path, file_size);
        goto done;
    }
    uint64_t header_len = 0;
    for (int k = 7; k >= 0; k--) header_len = (header_len << 8) | len_le[k];
    if (header_len == 0 || header_len > file_size - 8 || header_len >= TD_ST_MAX_HEADER) {
        st = td_error_set(err, TD_ERR_FORMAT,
                          "%s: header length %" PRIu64 " (first 8 bytes, little-endian) is not in "
                          "[1, min(file size - 8 = %" PRIu64 ", 100 MB)]: not a safetensors file, "
                          "or truncated",
                          path, header_len, file_size - 8);
        goto done;
    }
    header = malloc((size_t)header_len);
    p.arena = malloc((size_t)header_len + 1);
    TD_ASSERT(header != NULL && p.arena != NULL);
    if (!pread_all(fd, header, (size_t)header_len, 8)) {
        st = td_error_set(err, TD_ERR_IO, "%s: cannot read the header: %s", path,
                          errno ? strerror(errno) : "unexpected end of file");
        goto done;
    }
    p.s = header;
    p.n = (size_t)header_len;
    p.path = path;
    p.err = err;
    if ((st = parse_header(&p)) != TD_OK) goto done;

    uint64_t data_start = 8 + header_len, data_size = file_size - data_start;
    scratch = malloc(TD_ST_CONVERT_CHUNK * sizeof(uint16_t));
    TD_ASSERT(scratch != NULL);
    for (int i = 0; i < n_tensors; i++) {
        const td_tensor_info *t = &tensors[i];
        st_entry *e = find_entry(&p, t->name);
        if (present) present[i] = e != NULL;
        if (!e && present) continue;
        if (!e) {
            st = td_error_set(err, TD_ERR_FORMAT,
                              "%s: tensor %s: missing (the file holds %d tensors)", path, t->name,
                              p.n_entries);
            goto done;
        }
        e->used = true;
        st = read_tensor(fd, path, data_start, data_size, t, e, block + t->offset, scratch, err);
        if (st != TD_OK) goto done;
    }
    if (n_ignored)
        for (int j = 0; j < p.n_entries; j++) *n_ignored += !p.entries[j].used;
done:
    close(fd);
    free(header);
    free(scratch);
    free(p.arena);
    free(p.entries);
    return st;
}

td_status td_safetensors_read(const char *path, const td_tensor_info *tensors, int n_tensors,
                              float *block, int *n_ignored, td_error *err)
{
    return td_safetensors_read_some(path, tensors, n_tensors, block, NULL, n_ignored, err);
}
