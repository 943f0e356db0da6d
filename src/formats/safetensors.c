/* Hugging Face safetensors, read and write, for export/import and for
 * model.init. Format: an 8-byte little-endian header length N, N bytes of
 * JSON {"__metadata__": {...}, name: {"dtype", "shape", "data_offsets"}},
 * then the data; offsets are relative to the first byte after the header.
 * The header is read and written through tokdrop/formats/json.h. It comes from
 * files we did not write, so every entry is checked, also those we do not
 * read; a syntax error names the file and the byte, any other error the
 * file and the tensor. */
#include "tokdrop/formats/safetensors.h"

#include "base/fs.h"
#include "tokdrop/formats/json.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
    const char *header;
    size_t header_len;
    const td_tensor_info *tensors;
    int n_tensors;
    const float *block;
} st_content;

static td_status fill_file(FILE *f, const void *ctx, td_error *err)
{
    (void)err; /* a failed fwrite is seen by td_fs_write_atomic through ferror */
    const st_content *c = ctx;
    unsigned char len_le[8];
    for (int k = 0; k < 8; k++) len_le[k] = (unsigned char)((uint64_t)c->header_len >> (8 * k));
    bool ok = write_all(f, len_le, 8) && write_all(f, c->header, c->header_len);
    for (int i = 0; ok && i < c->n_tensors; i++)
        ok = write_f32_le(f, c->block + c->tensors[i].offset, c->tensors[i].n_elems);
    return TD_OK;
}

td_status td_safetensors_write(const char *path, const td_tensor_info *tensors, int n_tensors,
                               const float *block, td_error *err)
{
    TD_ASSERT(path != NULL && (n_tensors == 0 || (tensors != NULL && block != NULL)));
    td_json *root = td_json_object_new(), *meta = td_json_object_new();
    td_json_set_str(meta, "format", "pt");
    td_json_set(root, "__metadata__", meta);
    uint64_t pos = 0;
    for (int i = 0; i < n_tensors; i++) {
        const td_tensor_info *t = &tensors[i];
        TD_ASSERT(t->ndim >= 1 && t->ndim <= 2 && t->n_elems >= 0);
        uint64_t n_bytes = (uint64_t)t->n_elems * sizeof(float);
        td_json *e = td_json_object_new(), *shape = td_json_array_new(), *offsets = td_json_array_new();
        td_json_set_str(e, "dtype", "F32");
        for (int d = 0; d < t->ndim; d++) td_json_push_int(shape, t->shape[d]);
        td_json_set(e, "shape", shape);
        td_json_push_int(offsets, (int64_t)pos);
        td_json_push_int(offsets, (int64_t)(pos + n_bytes));
        td_json_set(e, "data_offsets", offsets);
        td_json_set(root, t->name, e);
        TD_ASSERT(td_json_size(root) == (size_t)i + 2); /* table names are unique */
        pos += n_bytes;
    }
    char *text = td_json_dumps(root, TD_JSON_COMPACT, 0);
    td_json_free(root);
    /* Pad with spaces so the data starts 8-byte aligned, as the reference
     * writer does (readers may then map F32/F64 data in place). */
    size_t len = strlen(text), padded = (len + 7) / 8 * 8;
    char *header = td_xmalloc(padded);
    memcpy(header, text, len);
    memset(header + len, ' ', padded - len);
    free(text);

    st_content c = {header, padded, tensors, n_tensors, block};
    td_status st = td_fs_write_atomic(path, fill_file, &c, err);
    free(header);
    return st;
}

/* ---- the header --------------------------------------------------------------------- */

typedef enum { DT_OTHER = 0, DT_F32, DT_F16, DT_BF16 } st_dtype;

/* One tensor entry of the header. */
typedef struct {
    const char *name;      /* the key, owned by the header document */
    char dtype[16];        /* as written, for messages */
    st_dtype kind;
    int ndim;
    int64_t shape[TD_ST_MAX_DIMS];
    uint64_t begin, end;   /* data_offsets, relative to the data section */
    bool used;
} st_entry;

typedef struct {
    td_json *doc;
    st_entry *entries; /* sorted by name */
    int n_entries;
} st_header;

static st_dtype dtype_kind(const char *s)
{
    if (strcmp(s, "F32") == 0) return DT_F32;
    if (strcmp(s, "F16") == 0) return DT_F16;
    if (strcmp(s, "BF16") == 0) return DT_BF16;
    return DT_OTHER;
}

/* {"dtype": "...", "shape": [...], "data_offsets": [b, e]}; other members
 * are ignored. */
static td_status parse_entry(const char *path, const char *name, const td_json *v, st_entry *e, td_error *err)
{
    char where[TD_ERROR_MSG_LEN];
    snprintf(where, sizeof(where), "%s: tensor %s", path, name);
    memset(e, 0, sizeof(*e));
    e->name = name;
    if (td_json_kind_of(v) != TD_JSON_OBJECT)
        return td_error_set(err, TD_ERR_FORMAT,
                            "%s: header entry is %s, expected an object {\"dtype\", \"shape\", \"data_offsets\"}",
                            where, td_json_kind_str(td_json_kind_of(v)));
    const td_json *dtype = td_json_get(v, "dtype"), *shape = td_json_get(v, "shape"),
                  *offsets = td_json_get(v, "data_offsets");
    if (!dtype || !shape || !offsets)
        return td_error_set(err, TD_ERR_FORMAT, "%s: header entry lacks \"%s\"", where,
                            !dtype ? "dtype" : !shape ? "shape" : "data_offsets");
    const char *dt;
    td_status st = td_json_string(dtype, where, "dtype", &dt, err);
    if (st != TD_OK) return st;
    snprintf(e->dtype, sizeof(e->dtype), "%s", dt);
    e->kind = dtype_kind(dt);
    if ((st = td_json_int_array(shape, where, "shape", e->shape, TD_ST_MAX_DIMS, &e->ndim, err)) != TD_OK)
        return st;
    for (int d = 0; d < e->ndim; d++)
        if (e->shape[d] < 0)
            return td_error_set(err, TD_ERR_FORMAT, "%s: negative dimension %" PRId64, where, e->shape[d]);
    int64_t off[2];
    int n;
    if ((st = td_json_int_array(offsets, where, "data_offsets", off, 2, &n, err)) != TD_OK) return st;
    if (n != 2 || off[0] < 0 || off[1] < off[0]) {
        char got[64];
        if (n == 2) snprintf(got, sizeof(got), "[%" PRId64 ", %" PRId64 "]", off[0], off[1]);
        else snprintf(got, sizeof(got), "%d integers", n);
        return td_error_set(err, TD_ERR_FORMAT,
                            "%s: key 'data_offsets': expected [begin, end] with 0 <= begin <= end, got %s", where,
                            got);
    }
    e->begin = (uint64_t)off[0];
    e->end = (uint64_t)off[1];
    return TD_OK;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const st_entry *)a)->name, ((const st_entry *)b)->name);
}

/* The header text: one object of entries and __metadata__. The parser
 * refuses duplicate names, and nesting deeper than its limit (2048). */
static td_status parse_header(const char *path, const char *text, size_t n_bytes, st_header *h, td_error *err)
{
    td_json_syntax syn;
    h->doc = td_json_parse(text, n_bytes, &syn);
    /* Offsets in messages count from the start of the file (8 + header
     * byte), which is what a hex dump of the file shows. */
    if (!h->doc)
        return td_error_set(err, TD_ERR_FORMAT,
                            "%s: malformed safetensors header at file byte %zu (header byte %zu, line %d, "
                            "column %d): %s",
                            path, syn.byte + 8, syn.byte, syn.line, syn.column, syn.text);
    if (td_json_kind_of(h->doc) != TD_JSON_OBJECT)
        return td_error_set(err, TD_ERR_FORMAT, "%s: the safetensors header (file byte 8) is %s, expected an object",
                            path, td_json_kind_str(td_json_kind_of(h->doc)));
    h->entries = td_xmalloc((td_json_size(h->doc) + 1) * sizeof(st_entry));
    for (void *it = td_json_iter(h->doc); it; it = td_json_iter_next(h->doc, it)) {
        const char *key = td_json_iter_key(it);
        const td_json *v = td_json_iter_value(it);
        if (strcmp(key, "__metadata__") == 0) {
            if (td_json_kind_of(v) != TD_JSON_OBJECT) return td_json_expected(v, path, key, "an object", err);
            continue;
        }
        td_status st = parse_entry(path, key, v, &h->entries[h->n_entries++], err);
        if (st != TD_OK) return st;
    }
    /* Sorted by name: look-ups are a bsearch, and a hostile header with a
     * million entries costs n log n, not n^2. */
    if (h->n_entries > 1) qsort(h->entries, (size_t)h->n_entries, sizeof(st_entry), entry_cmp);
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
static st_entry *find_entry(const st_header *h, const char *name)
{
    if (h->n_entries == 0) return NULL;
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
            st_entry *e = bsearch(&key, h->entries, (size_t)h->n_entries, sizeof(st_entry), entry_cmp);
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
    int fd;
    td_status opened = td_fs_open_regular_fd(&fd, path, "a safetensors file", TD_ERR_IO, err);
    if (opened != TD_OK) return opened;

    td_status st = TD_OK;
    char *header = NULL;
    uint16_t *scratch = NULL;
    st_header h = {0};
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
    header = td_xmalloc((size_t)header_len);
    if (!pread_all(fd, header, (size_t)header_len, 8)) {
        st = td_error_set(err, TD_ERR_IO, "%s: cannot read the header: %s", path,
                          errno ? strerror(errno) : "unexpected end of file");
        goto done;
    }
    if ((st = parse_header(path, header, (size_t)header_len, &h, err)) != TD_OK) goto done;

    uint64_t data_start = 8 + header_len, data_size = file_size - data_start;
    scratch = malloc(TD_ST_CONVERT_CHUNK * sizeof(uint16_t));
    TD_ASSERT(scratch != NULL);
    for (int i = 0; i < n_tensors; i++) {
        const td_tensor_info *t = &tensors[i];
        st_entry *e = find_entry(&h, t->name);
        if (present) present[i] = e != NULL;
        if (!e && present) continue;
        if (!e) {
            st = td_error_set(err, TD_ERR_FORMAT,
                              "%s: tensor %s: missing (the file holds %d tensors)", path, t->name,
                              h.n_entries);
            goto done;
        }
        e->used = true;
        st = read_tensor(fd, path, data_start, data_size, t, e, block + t->offset, scratch, err);
        if (st != TD_OK) goto done;
    }
    if (n_ignored)
        for (int j = 0; j < h.n_entries; j++) *n_ignored += !h.entries[j].used;
done:
    close(fd);
    free(header);
    free(scratch);
    td_json_free(h.doc);
    free(h.entries);
    return st;
}

td_status td_safetensors_read(const char *path, const td_tensor_info *tensors, int n_tensors,
                              float *block, int *n_ignored, td_error *err)
{
    return td_safetensors_read_some(path, tensors, n_tensors, block, NULL, n_ignored, err);
}
