/* Fuzzes the training shard reader's checks (src/formats/data_shard.c):
 * td_shard_probe (tokdrop-prep's attributes, the datasets' presence,
 * types, ranks and shapes), td_shard_read (every value validated) and
 * td_data_token_counts. The harness builds the shard with HDF5 (see
 * fuzz_h5.h): a valid tokdrop-prep shard for a layout taken from the first
 * four bytes, then edits of its attributes and datasets (fz_obj_edit), each
 * a byte naming the object followed by the edit's bytes (fuzz_h5.h says
 * why the file is built rather than mutated). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/data_shard.h"
#include "fuzz_h5.h"
#include "tokdrop/base/hash.h"

enum { N_ATTRS = 3 };
static const char *const attr_names[N_ATTRS] = {TD_SHARD_ATTR_FORMAT, TD_SHARD_ATTR_FORMAT_VERSION,
                                                 TD_SHARD_ATTR_VOCAB_HASH};
#define VOCAB_HASH 0x0123456789abcdefULL

static fz_obj attrs[N_ATTRS], dsets[TD_SHARD_N_DATASETS];

/* A valid shard of n rows for the layout. */
static void base_shard(int64_t n, const td_shard_layout *l)
{
    char hash[TD_HASH_HEX_LEN];
    td_hash_hex(hash, VOCAB_HASH);
    fz_obj_str(&attrs[0], TD_SHARD_FORMAT);
    fz_obj_int(&attrs[1], FZ_I64, TD_SHARD_FORMAT_VERSION);
    fz_obj_str(&attrs[2], hash);
    for (int d = 0; d < TD_SHARD_N_DATASETS; d++) {
        fz_obj *o = &dsets[d];
        fz_obj_int(o, td_shard_datasets[d].elem_bytes == 1 ? FZ_I8 : td_shard_datasets[d].elem_bytes == 8 ? FZ_I64 : FZ_I32, 0);
        int64_t width = d == TD_SHARD_NSP_LABELS ? 0 : d == TD_SHARD_MLM_POSITIONS || d == TD_SHARD_MLM_IDS ? l->P
                        : d == TD_SHARD_TOKEN_COUNTS ? -1 : l->T;
        o->ndim = width == 0 || width < 0 ? 1 : 2;
        o->dims[0] = width < 0 ? (hsize_t)l->V : (hsize_t)n;
        o->dims[1] = width > 0 ? (hsize_t)width : 0;
        int64_t w = width > 0 ? width : 1;
        o->unwritten = fz_obj_elems(o) > FZ_MAX_ELEMS; /* HDF5's fill value 0 is a valid count */
        for (int64_t i = 0; !o->unwritten && i < (int64_t)fz_obj_elems(o); i++) {
            int64_t r = i / w, c = i % w;
            switch (d) {
            case TD_SHARD_INPUT_IDS: o->nums[i] = (r + c) % l->V; break;
            case TD_SHARD_INPUT_MASK: o->nums[i] = 1; break;
            case TD_SHARD_SEGMENT_IDS: o->nums[i] = c >= l->T / 2; break;
            case TD_SHARD_MLM_POSITIONS: o->nums[i] = c + 1 < l->T ? c + 1 : 0; break;
            case TD_SHARD_MLM_IDS: o->nums[i] = (r + c + 1) % l->V; break;
            case TD_SHARD_NSP_LABELS: o->nums[i] = r & 1; break;
            default: o->nums[i] = i; break;
            }
        }
    }
}

static bool write_shard(const char *path)
{
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    bool ok = file >= 0;
    for (int a = 0; ok && a < N_ATTRS; a++) ok = fz_write_attr(file, attr_names[a], &attrs[a]);
    for (int d = 0; ok && d < TD_SHARD_N_DATASETS; d++)
        ok = fz_write_dataset(file, td_shard_datasets[d].name, &dsets[d]);
    if (file >= 0 && H5Fclose(file) < 0) ok = false;
    return ok;
}

/* Reads at most 64 owned rows, as the data reader's window would. */
static void read_rows(const char *path, int64_t n_rows, const td_shard_layout *l, fz_bytes *b)
{
    td_shard sh = {.path = strdup(path), .n_rows = n_rows, .offset = 1000};
    sh.stride = 1 + fz_u8(b) % 3;
    sh.first = n_rows > 0 ? fz_u8(b) % (sh.stride < n_rows ? sh.stride : n_rows) : 0;
    sh.n_owned = n_rows > sh.first ? (n_rows - sh.first + sh.stride - 1) / sh.stride : 0;
    int64_t j0 = sh.n_owned > 0 ? fz_u8(b) % sh.n_owned : 0, j1 = j0 + 64;
    if (j1 > sh.n_owned) j1 = sh.n_owned;
    td_samples s;
    td_error err = {0};
    if (td_samples_alloc(&s, j1 - j0 + 1, l, &err) != TD_OK) abort();
    td_status st = td_shard_read(&s, &sh, j0, j1, l, &err);
    fz_check_error(st, &err, "td_shard_read");
    if (st == TD_OK) { /* what the model indexes with must be in range */
        if (s.n != j1 - j0) abort();
        for (int64_t i = 0; i < s.n * l->T; i++)
            if (td_column_get(&s.col[TD_D_IDS], i) >= l->V || td_column_get(&s.col[TD_D_MASK], i) > 1 ||
                td_column_get(&s.col[TD_D_SEG], i) > 1)
                abort();
        for (int64_t i = 0; !l->dynamic_masking && i < s.n * l->P; i++)
            if (td_column_get(&s.col[TD_D_POS], i) >= l->T || td_column_get(&s.col[TD_D_MLM], i) >= l->V)
                abort();
    }
    td_samples_free(&s);
    free(sh.path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_bytes b = {data, size};
    uint8_t shape = fz_u8(&b);
    td_shard_layout l = {.T = 2 + fz_u8(&b) % 15, .P = 1 + fz_u8(&b) % 6,
                         .V = 1 + (int64_t)fz_u8(&b) * ((shape & 0x40) ? 300 : 1)};
    l.dynamic_masking = shape & 1;
    if (shape & 2) {
        l.vocab_path = "vocab.txt";
        l.vocab_hash = VOCAB_HASH;
    }
    base_shard(1 + (shape >> 2) % 8, &l);
    while (b.n > 0) {
        uint8_t what = fz_u8(&b);
        fz_obj_edit(what < 32 ? &attrs[what % N_ATTRS] : &dsets[what % TD_SHARD_N_DATASETS], &b);
    }
    const char *path = fz_path(0);
    if (!write_shard(path)) return 0;

    td_error err = {0};
    int64_t n_rows = -1;
    td_status st = td_shard_probe(&n_rows, path, &l, &err);
    fz_check_error(st, &err, "td_shard_probe");
    fz_bytes again = {data, size}; /* the read's choices, from the input's start */
    if (st == TD_OK) {
        if (n_rows < 0) abort();
        read_rows(path, n_rows, &l, &again);
    }
    int64_t *counts = malloc((size_t)l.V * sizeof(int64_t));
    st = td_data_token_counts(path, l.V, counts, &err);
    fz_check_error(st, &err, "td_data_token_counts");
    for (int64_t v = 0; st == TD_OK && v < l.V; v++)
        if (counts[v] < 0) abort();
    free(counts);
    return 0;
}
