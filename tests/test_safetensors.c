/* safetensors: round trip through our writer and reader, a file laid out by
 * hand the way PyTorch / Hugging Face write them (extra I64 tensors, BF16 and
 * F16 data, escapes in names), and every kind of bad file we promise to
 * reject with a message naming the file and the tensor or byte. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tokdrop/formats/safetensors.h"

static void set_tensor(td_tensor_info *t, const char *name, int64_t offset, int ndim, int64_t d0,
                       int64_t d1)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->offset = offset;
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = ndim == 2 ? d1 : 0;
    t->n_elems = ndim == 2 ? d0 * d1 : d0;
}

static char *path_in(const char *dir, const char *name)
{
    static char buf[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof(buf[k]), "%s/%s", dir, name);
    return buf[k];
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)size + 1);
    assert_int_equal(fread(b, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    b[size] = 0;
    *n = (size_t)size;
    return b;
}

/* A safetensors file from a header string and raw data; header_len_field
 * overrides the length prefix when nonzero. */
static void write_raw(const char *path, const char *header, const void *data, size_t data_len,
                      uint64_t header_len_field)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint64_t n = header_len_field ? header_len_field : strlen(header);
    unsigned char le[8];
    for (int k = 0; k < 8; k++) le[k] = (unsigned char)(n >> (8 * k));
    assert_int_equal(fwrite(le, 1, 8, f), 8);
    assert_int_equal(fwrite(header, 1, strlen(header), f), strlen(header));
    if (data_len) assert_int_equal(fwrite(data, 1, data_len, f), data_len);
    fclose(f);
}

static void put_u16(unsigned char *b, uint16_t v)
{
    b[0] = (unsigned char)v;
    b[1] = (unsigned char)(v >> 8);
}

static void put_f32(unsigned char *b, float f)
{
    uint32_t v;
    memcpy(&v, &f, 4);
    for (int k = 0; k < 4; k++) b[k] = (unsigned char)(v >> (8 * k));
}

/* Asserts status and that every needle occurs in the message. */
static void expect_error(td_status got, const td_error *err, td_status want, const char *n1,
                         const char *n2, const char *n3)
{
    if (got != want)
        fail_msg("status %d (%s), want %d; message: %s", got, td_status_str(got), want, err->msg);
    const char *needles[3] = {n1, n2, n3};
    for (int i = 0; i < 3; i++)
        if (needles[i] && !strstr(err->msg, needles[i]))
            fail_msg("message \"%s\" lacks \"%s\"", err->msg, needles[i]);
}

/* ---- round trip ----------------------------------------------------------------- */

static void test_round_trip(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("safetensors_round_trip");
    const char *path = path_in(dir, "model.safetensors");
    /* three tensors with a 4-element gap in the block after the first, to
     * check that both sides index through the table */
    td_tensor_info t[3];
    set_tensor(&t[0], "bert.encoder.layer.0.attention.self.query.weight", 0, 2, 3, 4);
    set_tensor(&t[1], "bert.encoder.layer.0.attention.self.query.bias", 16, 1, 4, 0);
    set_tensor(&t[2], "cls.seq_relationship.weight", 20, 2, 2, 5);
    enum { N = 30 };
    float a[N], b[N] = {0};
    tu_fill_uniform(a, N, -2.0f, 2.0f, 5);
    a[1] = -0.0f;
    a[2] = INFINITY;
    a[3] = NAN;
    a[16] = 1e-42f; /* subnormal */
    td_error err = {0};
    /* write twice: the second replaces the first through the temporary */
    assert_int_equal(td_safetensors_write(path, t, 3, b, &err), TD_OK);
    assert_int_equal(td_safetensors_write(path, t, 3, a, &err), TD_OK);
    assert_true(access(path_in(dir, ".model.safetensors.tmp"), F_OK) != 0);

    for (int i = 0; i < N; i++) b[i] = 42.0f;
    int n_ignored = -1;
    td_status st = td_safetensors_read(path, t, 3, b, &n_ignored, &err);
    if (st != TD_OK) fail_msg("%s", err.msg);
    assert_int_equal(n_ignored, 0);
    for (int i = 0; i < 3; i++)
        assert_memory_equal(a + t[i].offset, b + t[i].offset, (size_t)t[i].n_elems * 4);
    for (int i = 12; i < 16; i++) assert_true(b[i] == 42.0f); /* the gap is not touched */

    /* the bytes: length prefix, header padded to 8 with spaces, F32 data */
    size_t n;
    unsigned char *raw = slurp(path, &n);
    uint64_t hl = 0;
    for (int k = 7; k >= 0; k--) hl = (hl << 8) | raw[k];
    assert_int_equal(hl % 8, 0);
    assert_int_equal(n, 8 + hl + (12 + 4 + 10) * 4);
    const char *expect_head =
        "{\"__metadata__\":{\"format\":\"pt\"},"
        "\"bert.encoder.layer.0.attention.self.query.weight\":"
        "{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[0,48]},"
        "\"bert.encoder.layer.0.attention.self.query.bias\":"
        "{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[48,64]},"
        "\"cls.seq_relationship.weight\":"
        "{\"dtype\":\"F32\",\"shape\":[2,5],\"data_offsets\":[64,104]}}";
    size_t eh = strlen(expect_head);
    assert_true(hl >= eh && hl < eh + 8);
    assert_memory_equal(raw + 8, expect_head, eh);
    for (size_t k = 8 + eh; k < 8 + hl; k++) assert_int_equal(raw[k], ' ');
    /* the last tensor's first value, little-endian */
    unsigned char le[4];
    put_f32(le, a[20]);
    assert_memory_equal(raw + 8 + hl + 64, le, 4);
    free(raw);

    /* the table may read a subset of the file: the rest is counted */
    float c[N] = {0};
    assert_int_equal(td_safetensors_read(path, &t[2], 1, c, &n_ignored, &err), TD_OK);
    assert_int_equal(n_ignored, 2);
    assert_memory_equal(c + 20, a + 20, 40);
    /* n_ignored may be NULL */
    assert_int_equal(td_safetensors_read(path, t, 3, c, NULL, &err), TD_OK);
}

static void test_write_error(void **state)
{
    (void)state;
    td_tensor_info t;
    set_tensor(&t, "x", 0, 1, 2, 0);
    float x[2] = {1, 2};
    td_error err = {0};
    td_status st = td_safetensors_write("/nonexistent-dir/sub/model.safetensors", &t, 1, x, &err);
    expect_error(st, &err, TD_ERR_IO, "/nonexistent-dir/sub/model.safetensors", NULL, NULL);
}

/* ---- a file as PyTorch / Hugging Face write it -------------------------------------- */

static void test_hf_style_file(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("safetensors_hf");
    const char *path = path_in(dir, "model.safetensors");
    /* Not padded, white space and newlines between tokens, metadata with an
     * escaped quote and a non-ASCII escape, an I64 buffer and a tied decoder
     * weight that the table lacks, and "enc.\u0066" which must decode to
     * "enc.f". Data: position_ids 0..32 (I64 [1,4]), enc.w 32..40 (BF16),
     * enc.b 40..56 (F16), enc.f 56..64 (F32), decoder 64..72 (F32). */
    const char *header =
        "{\"__metadata__\": {\"format\": \"pt\", \"note\": \"a \\\"quoted\\\" \\u00e9\"},\n"
        " \"bert.embeddings.position_ids\": {\"dtype\": \"I64\", \"shape\": [1, 4], "
        "\"data_offsets\": [0, 32]},\n"
        " \"enc.w\": {\"shape\": [2, 2], \"dtype\": \"BF16\", \"data_offsets\": [32, 40]},\n"
        " \"enc.b\": {\"dtype\": \"F16\", \"data_offsets\": [40, 56], \"shape\": [8]},\n"
        " \"enc.\\u0066\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [56, 64]},\n"
        " \"cls.predictions.decoder.weight\": {\"dtype\": \"F32\", \"shape\": [2], "
        "\"data_offsets\": [64, 72]}\n}";
    unsigned char data[72] = {0};
    for (int i = 0; i < 4; i++) data[8 * i] = (unsigned char)i; /* position_ids 0 1 2 3 */
    /* BF16 = the top 16 bits of a float: 0x3F80 = 1.0, 0xC020 = -2.5,
     * 0x3E20 = 0.15625, 0x4049 = 3.140625 */
    const uint16_t bf[4] = {0x3F80, 0xC020, 0x3E20, 0x4049};
    for (int i = 0; i < 4; i++) put_u16(data + 32 + 2 * i, bf[i]);
    /* F16: 0x3C00 = 1, 0xB800 = -0.5, 0x7BFF = 65504 (largest), 0x0001 =
     * 2^-24 (smallest subnormal), 0x03FF = 1023 * 2^-24 (largest subnormal),
     * 0x0400 = 2^-14 (smallest normal), 0xFC00 = -inf, 0x7E00 = NaN */
    const uint16_t hf[8] = {0x3C00, 0xB800, 0x7BFF, 0x0001, 0x03FF, 0x0400, 0xFC00, 0x7E00};
    for (int i = 0; i < 8; i++) put_u16(data + 40 + 2 * i, hf[i]);
    put_f32(data + 56, 0.25f);
    put_f32(data + 60, -7.5f);
    put_f32(data + 64, 99.0f);
    put_f32(data + 68, 98.0f);
    write_raw(path, header, data, sizeof(data), 0);

    td_tensor_info t[3]; /* not in file order */
    set_tensor(&t[0], "enc.f", 0, 1, 2, 0);
    set_tensor(&t[1], "enc.b", 2, 1, 8, 0);
    set_tensor(&t[2], "enc.w", 10, 2, 2, 2);
    float block[14];
    for (int i = 0; i < 14; i++) block[i] = -1;
    int n_ignored = -1;
    td_error err = {0};
    td_status st = td_safetensors_read(path, t, 3, block, &n_ignored, &err);
    if (st != TD_OK) fail_msg("%s", err.msg);
    assert_int_equal(n_ignored, 2); /* position_ids and the decoder weight */
    assert_true(block[0] == 0.25f && block[1] == -7.5f);
    const float want_b[6] = {1.0f, -0.5f, 65504.0f, 5.9604644775390625e-8f,
                             6.097555160522461e-5f, 6.103515625e-5f};
    for (int i = 0; i < 6; i++)
        if (block[2 + i] != want_b[i]) fail_msg("F16[%d] = %.10g, want %.10g", i, block[2 + i], want_b[i]);
    assert_true(isinf(block[8]) && block[8] < 0);
    assert_true(isnan(block[9]));
    const float want_w[4] = {1.0f, -2.5f, 0.15625f, 3.140625f};
    for (int i = 0; i < 4; i++) assert_true(block[10 + i] == want_w[i]);
}

/* ---- errors --------------------------------------------------------------------- */

/* A valid one-tensor file "w" [2, 2] F32 with values 1..4. */
static const char *one_tensor_file(const char *dir, const char *name)
{
    const char *path = path_in(dir, name);
    td_tensor_info t;
    set_tensor(&t, "w", 0, 2, 2, 2);
    float x[4] = {1, 2, 3, 4};
    td_error err = {0};
    assert_int_equal(td_safetensors_write(path, &t, 1, x, &err), TD_OK);
    return path;
}

static void test_missing_and_shape(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("safetensors_shape");
    const char *path = path_in(dir, "model.safetensors");
    td_tensor_info t[2];
    set_tensor(&t[0], "bert.pooler.dense.weight", 0, 2, 4, 8);
    set_tensor(&t[1], "bert.pooler.dense.bias", 32, 1, 8, 0);
    float x[40];
    tu_fill_uniform(x, 40, -1, 1, 3);
    td_error err = {0};
    assert_int_equal(td_safetensors_write(path, t, 2, x, &err), TD_OK);

    float y[80];
    td_tensor_info r[3];
    /* wrong shape */
    set_tensor(&r[0], "bert.pooler.dense.weight", 0, 2, 8, 8);
    set_tensor(&r[1], "bert.pooler.dense.bias", 64, 1, 8, 0);
    td_status st = td_safetensors_read(path, r, 2, y, NULL, &err);
    expect_error(st, &err, TD_ERR_FORMAT, path,
                 "tensor bert.pooler.dense.weight: shape [4, 8], expected [8, 8]", NULL);
    /* wrong rank */
    set_tensor(&r[0], "bert.pooler.dense.weight", 0, 1, 32, 0);
    st = td_safetensors_read(path, r, 2, y, NULL, &err);
    expect_error(st, &err, TD_ERR_FORMAT, path, "shape [4, 8], expected [32]", NULL);
    /* missing tensor */
    set_tensor(&r[0], "bert.pooler.dense.weight", 0, 2, 4, 8);
    set_tensor(&r[2], "cls.predictions.bias", 72, 1, 8, 0);
    st = td_safetensors_read(path, r, 3, y, NULL, &err);
    expect_error(st, &err, TD_ERR_FORMAT, path, "tensor cls.predictions.bias: missing", NULL);
    /* the table's first two alone are fine */
    assert_int_equal(td_safetensors_read(path, r, 2, y, NULL, &err), TD_OK);
    /* a file that does not exist is an I/O error naming it */
    const char *nofile = path_in(dir, "nope.safetensors");
    st = td_safetensors_read(nofile, r, 2, y, NULL, &err);
    expect_error(st, &err, TD_ERR_IO, nofile, NULL, NULL);
}

static void test_truncated_and_bad_length(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("safetensors_trunc");
    td_tensor_info t;
    set_tensor(&t, "w", 0, 2, 2, 2);
    float y[4];
    td_error err = {0};
    size_t n;

    /* data cut short by 4 bytes: the tensor runs past the end */
    const char *p1 = one_tensor_file(dir, "a.safetensors");
    unsigned char *raw = slurp(p1, &n);
    free(raw);
    assert_int_equal(truncate(p1, (off_t)n - 4), 0);
    td_status st = td_safetensors_read(p1, &t, 1, y, NULL, &err);
    expect_error(st, &err, TD_ERR_FORMAT, p1, "tensor w: data_offsets [0, 16]", "truncated");

    /* cut inside the header: the length prefix exceeds the file */
    const char *p2 = one_tensor_file(dir, "b.safetensors");
    assert_int_equal(truncate(p2, 20), 0);
    st = td_safetensors_read(p2, &t, 1, y, NULL, &err);
    expect_error(st, &err, TD_ERR_FORMAT, p2, "header length", NULL);

    /* shorter than the length prefix itself */
    const char *p3 = one_tensor_file(dir, "c.safetensors");
    assert_int_equal(truncate(p3, 5), 0);
    st = td_safetensors_read(p3, &t, 1, y, NULL, &err);
    expect_error(st, &err, TD_ERR_FORMAT, p3, "too short", NULL);

    /* a huge length prefix (2^40), and zero */
    const char *p4 = path_in(dir, "d.safetensors");
    const char *h = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";
    float x[4] = {1, 2, 3, 4};
    write_raw(p4, h, x, 16, UINT64_C(1) << 40);
    st = td_safetensors_read(p4, &t, 1, y, NULL, &err);
    expect_error(st, &err, TD_ERR_FORMAT, p4, "header length 1099511627776", NULL);
    /* within the file size but not below 100 MB: refused by the limit alone
     * (a sparse 200 MB file, so the test writes almost nothing) */
    write_raw(p4, h, x, 16, 150000000);
    assert_int_equal(truncate(p4, 200000000), 0);
    st = td_safetensors_read(p4, &t, 1, y, NULL, &err);
    expect_error(st, &err, TD_ERR_FORMAT, p4, "header length 150000000", "100 MB");
    assert_int_equal(unlink(p4), 0);
    write_raw(p4, "", NULL, 0, 0);
    st = td_safetensors_read(p4, &t, 1, y, NULL, &err);
    expect_error(st, &err, TD_ERR_FORMAT, p4, "header length 0", NULL);

    /* offsets of the wrong byte length (F32 [2, 2] is 16 bytes) */
    const char *p5 = path_in(dir, "e.safetensors");
    write_raw(p5, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", x, 16, 0);
    st = td_safetensors_read(p5, &t, 1, y, NULL, &err);
    expect_error(st, &err, TD_ERR_FORMAT, p5, "tensor w: data_offsets [0, 12] span 12 bytes",
                 "expected 16");

    /* an integer dtype for a table tensor */
    write_raw(p5, "{\"w\":{\"dtype\":\"I32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", x, 16, 0);
    st = td_safetensors_read(p5, &t, 1, y, NULL, &err);
    expect_error(st, &err, TD_ERR_FORMAT, p5, "tensor w: dtype I32, expected F32, F16 or BF16",
                 NULL);

    /* an entry without data_offsets */
    write_raw(p5, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2]}}", x, 16, 0);
    st = td_safetensors_read(p5, &t, 1, y, NULL, &err);
    expect_error(st, &err, TD_ERR_FORMAT, p5, "tensor w: header entry", "lacks \"data_offsets\"");

    /* the same tensor twice */
    write_raw(p5,
              "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
              "\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}",
              x, 16, 0);
    st = td_safetensors_read(p5, &t, 1, y, NULL, &err);
    expect_error(st, &err, TD_ERR_FORMAT, p5, "duplicate object key near '\"w\"'", "file byte 68");

    /* end before begin */
    write_raw(p5, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[16,0]}}", x, 16, 0);
    st = td_safetensors_read(p5, &t, 1, y, NULL, &err);
    expect_error(st, &err, TD_ERR_FORMAT, p5, "begin <= end", NULL);
}

/* A header of hlen bytes (NULs allowed) then 16 bytes of data. */
static void write_header_bytes(const char *path, const char *header, size_t hlen)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    unsigned char le[8];
    for (int k = 0; k < 8; k++) le[k] = (unsigned char)((uint64_t)hlen >> (8 * k));
    float x[4] = {1, 2, 3, 4};
    assert_int_equal(fwrite(le, 1, 8, f), 8);
    assert_int_equal(fwrite(header, 1, hlen, f), hlen);
    assert_int_equal(fwrite(x, 1, 16, f), 16);
    fclose(f);
}

/* Headers that are not JSON: each is rejected with the file and the byte
 * at which parsing stopped (file byte = 8 + header byte), which lies at or
 * just past the offending token `at` (its first occurrence; NULL: the end
 * of the header), and says what was wrong. */
static void test_malformed_json(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("safetensors_json");
    const char *path = path_in(dir, "model.safetensors");
    /* deeper than the parser's limit of 2048 levels */
    static char deep[3000];
    strcpy(deep, "{\"__metadata__\":{\"x\":");
    memset(deep + strlen(deep), '[', 2100);
    const struct {
        const char *header, *at, *what;
    } cases[] = {
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0 16]}}", "16]", "']' expected"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},}", ",}", "string or '}' expected"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}} x", " x", "end of file expected"},
        {"{\"w\\q\":{}}", "\"w\\q", "invalid escape"},
        {"{\"w\" {\"dtype\":\"F32\"}}", "{\"dtype", "':' expected"},
        {"{\"w\":{\"dtype\":F32}}", "F32", "invalid token"},
        {"{\"w\":{\"dtype\":\"F\x01\"}}", "\"F\x01", "control character 0x1"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,16]}}", "99999999999999999999",
         "too big integer"},
        {"{\"w\":{\"dtype\":\"\\ud800x\"}}", "\"\\ud800x\"", "invalid Unicode"},
        {"{\"w\":{\"dtype\":\"a\\u0000b\"}}", "\"a\\u0000b\"", "\\u0000 is not allowed"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[02,2],\"data_offsets\":[0,16]}}", "02", "invalid token"},
        {"{\"w\":{\"dtype\":\"F\xff\"}}", "\"F\xff", "unable to decode byte 0xff"},
        {"{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", "\"dtype\":\"F16",
         "duplicate object key"},
        {deep, NULL, "maximum parsing depth"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}", NULL, "'}' expected"},
        {"{\"w", NULL, "premature end of input"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", NULL,
         "end of file expected"}, /* padded with two NUL bytes below, not spaces */
    };
    float y[4];
    td_tensor_info t;
    set_tensor(&t, "w", 0, 2, 2, 2);
    const size_t n_cases = sizeof(cases) / sizeof(cases[0]);
    for (size_t c = 0; c < n_cases; c++) {
        const char *h = cases[c].header;
        char buf[4096];
        size_t hlen = strlen(h);
        memcpy(buf, h, hlen);
        if (c == n_cases - 1) { /* NUL padding */
            buf[hlen] = buf[hlen + 1] = 0;
            hlen += 2;
        }
        write_header_bytes(path, buf, hlen);

        td_error err = {0};
        td_status st = td_safetensors_read(path, &t, 1, y, NULL, &err);
        if (st != TD_ERR_FORMAT) fail_msg("case %zu: status %d, message %s", c, st, err.msg);
        if (!strstr(err.msg, path)) fail_msg("case %zu: message lacks the path: %s", c, err.msg);
        const char *m = strstr(err.msg, "malformed safetensors header at file byte ");
        size_t file_byte, header_byte;
        if (!m || sscanf(m, "malformed safetensors header at file byte %zu (header byte %zu", &file_byte,
                         &header_byte) != 2)
            fail_msg("case %zu: message lacks the byte: %s", c, err.msg);
        if (file_byte != header_byte + 8) fail_msg("case %zu: file byte is not 8 + header byte: %s", c, err.msg);
        size_t lo = cases[c].at ? (size_t)(strstr(h, cases[c].at) - h) : strlen(h);
        size_t hi = cases[c].at ? lo + strlen(cases[c].at) + 1 : hlen;
        if (h == deep) { /* the 2048th level is the 2047th '[' after the two objects */
            lo = strlen("{\"__metadata__\":{\"x\":") + 2046;
            hi = lo + 2;
        }
        if (header_byte < lo || header_byte > hi)
            fail_msg("case %zu: header byte %zu not in [%zu, %zu]: %s", c, header_byte, lo, hi, err.msg);
        if (!strstr(err.msg, "line 1, column"))
            if (c != n_cases - 1) fail_msg("case %zu: message lacks line and column: %s", c, err.msg);
        if (!strstr(err.msg, cases[c].what)) fail_msg("case %zu: want \"%s\" in: %s", c, cases[c].what, err.msg);
    }
}

/* JSON that parses but is no safetensors header: each is rejected naming
 * the file, the tensor where there is one, and what was wrong. */
static void test_bad_entries(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("safetensors_entries");
    const char *path = path_in(dir, "model.safetensors");
    const struct {
        const char *header, *n1, *n2;
    } cases[] = {
        {"[1, 2]", "header (file byte 8) is an array", "expected an object"},
        {"{\"__metadata__\":[1],\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}",
         "key '__metadata__': expected an object", "got an array"},
        {"{\"w\":5}", "tensor w: header entry is an integer", "expected an object"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5,2],\"data_offsets\":[0,16]}}", "tensor w: key 'shape'",
         "element 0 is 2.5"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,4],\"data_offsets\":[0,16]}}",
         "tensor w: key 'shape': expected an array of at most 8 integers", "got 9 elements"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[-2,2],\"data_offsets\":[0,16]}}", "tensor w: negative dimension -2",
         NULL},
        {"{\"w\":{\"dtype\":32,\"shape\":[2,2],\"data_offsets\":[0,16]}}", "tensor w: key 'dtype'",
         "expected a string, got 32"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16,32]}}", "tensor w: key 'data_offsets'",
         "at most 2 integers"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[16]}}", "tensor w: key 'data_offsets'",
         "got 1 integers"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[-16,0]}}", "0 <= begin", "got [-16, 0]"},
        {"{\"w\":{\"shape\":[2,2],\"data_offsets\":[0,16]}}", "tensor w: header entry lacks \"dtype\"", NULL},
        {"{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,16]}}", "tensor w: header entry lacks \"shape\"", NULL},
        /* an entry the table does not read is checked all the same */
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},\"v\":{\"dtype\":\"F32\"}}",
         "tensor v: header entry lacks \"shape\"", NULL},
        {"{}", "tensor w: missing (the file holds 0 tensors)", NULL},
    };
    float y[4];
    td_tensor_info t;
    set_tensor(&t, "w", 0, 2, 2, 2);
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        write_header_bytes(path, cases[c].header, strlen(cases[c].header));
        td_error err = {0};
        td_status st = td_safetensors_read(path, &t, 1, y, NULL, &err);
        if (st != TD_ERR_FORMAT) fail_msg("case %zu: status %d, message %s", c, st, err.msg);
        if (strncmp(err.msg, path, strlen(path)) != 0) fail_msg("case %zu: message lacks the path: %s", c, err.msg);
        expect_error(st, &err, TD_ERR_FORMAT, cases[c].n1, cases[c].n2, NULL);
    }
}

/* What a header may hold besides our entries: metadata of any JSON values,
 * unknown entry members, escaped names, an empty shape (a scalar), an
 * empty tensor, and white space; a tensor whose name is spelled with
 * \u escapes is found under its decoded name. */
static void test_header_accepted(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("safetensors_accepted");
    const char *path = path_in(dir, "model.safetensors");
    const char *header =
        "\t{ \"__metadata__\" : {\"a\": [1.5e3, -0.25, true, false, null, {\"b\": {}}], \"c\": \"\\ud83d\\ude00\"},\r\n"
        "  \"\\u0077\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [0, 16], \"extra\": {\"x\": [1]}},\n"
        "  \"scalar\": {\"dtype\": \"I64\", \"shape\": [], \"data_offsets\": [16, 16]},\n"
        "  \"a \\\"quoted\\\\ name\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [16, 16]}\n"
        "}   \n";
    write_header_bytes(path, header, strlen(header));
    td_tensor_info t[2];
    set_tensor(&t[0], "w", 0, 2, 2, 2);
    set_tensor(&t[1], "a \"quoted\\ name", 4, 1, 0, 0);
    float y[4] = {0};
    int n_ignored = -1;
    td_error err = {0};
    td_status st = td_safetensors_read(path, t, 2, y, &n_ignored, &err);
    if (st != TD_OK) fail_msg("%s", err.msg);
    assert_int_equal(n_ignored, 1); /* the scalar */
    for (int i = 0; i < 4; i++) assert_true(y[i] == (float)(i + 1));
}

/* Names with quotes, backslashes, control characters and non-ASCII text
 * are escaped by the writer and read back. */
static void test_escaped_names(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("safetensors_names");
    const char *path = path_in(dir, "model.safetensors");
    td_tensor_info t[3];
    set_tensor(&t[0], "a\"b", 0, 1, 2, 0);
    set_tensor(&t[1], "c\\d\n\x01", 2, 1, 2, 0);
    set_tensor(&t[2], "caf\xc3\xa9/x", 4, 1, 2, 0);
    float x[6] = {1, 2, 3, 4, 5, 6}, y[6] = {0};
    td_error err = {0};
    assert_int_equal(td_safetensors_write(path, t, 3, x, &err), TD_OK);
    size_t n;
    unsigned char *raw = slurp(path, &n);
    assert_non_null(strstr((const char *)raw + 8, "\"a\\\"b\":"));
    assert_non_null(strstr((const char *)raw + 8, "\"c\\\\d\\n\\u0001\":"));
    free(raw);
    assert_int_equal(td_safetensors_read(path, t, 3, y, NULL, &err), TD_OK);
    assert_memory_equal(x, y, sizeof(x));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_write_error),
        cmocka_unit_test(test_hf_style_file),
        cmocka_unit_test(test_missing_and_shape),
        cmocka_unit_test(test_truncated_and_bad_length),
        cmocka_unit_test(test_malformed_json),
        cmocka_unit_test(test_bad_entries),
        cmocka_unit_test(test_header_accepted),
        cmocka_unit_test(test_escaped_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
