/* Fuzzes the checkpoint reader's checks (src/train/ckpt.c): the format,
 * version and other root attributes, the config text, the data cursors,
 * the importance table, the tensor groups and the checksum, through
 * td_ckpt_read_config and td_ckpt_read, and the config text a resumed run
 * loads. The harness builds the file with HDF5 (see fuzz_h5.h): a valid
 * checkpoint of a 3-tensor model, then edits of its attributes, datasets
 * and groups, each a byte naming the object followed by the edit's bytes
 * (fuzz_h5.h says why the file is built rather than mutated). So that the checks after the checksum run too, the harness
 * can set the checksum to the one the reader computes (flags bit 0). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_h5.h"
#include "tokdrop/train/ckpt.h"
#include "tokdrop/train/config.h"

enum { A_FORMAT, A_VERSION, A_STEP, A_SEED, A_N_RANKS, A_CHECKSUM, N_ATTRS };
static const char *const attr_names[N_ATTRS] = {"format", "format_version", "step",
                                                 "seed",   "n_ranks",        "checksum"};
enum { N_TENSORS = 3, N_PARAMS = 18, V = 6, N_RANKS = 2 };
static const td_tensor_info table[N_TENSORS] = {
    {"bert.embeddings.LayerNorm.weight", 0, 4, 1, {4, 0}, true},
    {"bert.pooler.dense.weight", 4, 8, 2, {2, 4}, false},
    {"cls.predictions.bias", 12, 6, 1, {6, 0}, true},
};
static const char *const group_names[4] = {"param", "optim", "optim/m", "optim/v"};
/* config, data_cursors, importance, the tensors of param, optim/m and
 * optim/v, and one more dataset in param whose name is its text */
enum { D_CONFIG, D_CURSORS, D_IMPORTANCE, D_TENSORS, D_EXTRA = D_TENSORS + 3 * N_TENSORS, N_DSETS };

static fz_obj attrs[N_ATTRS], dsets[N_DSETS];
static bool groups[4];

static void base_ckpt(void)
{
    fz_obj_str(&attrs[A_FORMAT], "tokdrop-checkpoint");
    fz_obj_int(&attrs[A_VERSION], FZ_I32, 2);
    fz_obj_int(&attrs[A_STEP], FZ_I64, 7);
    fz_obj_int(&attrs[A_SEED], FZ_U64, 12345);
    fz_obj_int(&attrs[A_N_RANKS], FZ_I32, N_RANKS);
    fz_obj_str(&attrs[A_CHECKSUM], "0000000000000000");
    fz_obj_str(&dsets[D_CONFIG], "model:\n  hidden: 4\ntrain:\n  steps: 10\n");
    fz_obj_int(&dsets[D_CURSORS], FZ_I64, 0);
    dsets[D_CURSORS].ndim = 2;
    dsets[D_CURSORS].dims[0] = N_RANKS;
    dsets[D_CURSORS].dims[1] = 3;
    fz_obj_int(&dsets[D_IMPORTANCE], FZ_F32, 10);
    dsets[D_IMPORTANCE].ndim = 1;
    dsets[D_IMPORTANCE].dims[0] = V;
    for (int k = 0; k < 3 * N_TENSORS; k++) {
        const td_tensor_info *t = &table[k % N_TENSORS];
        fz_obj *o = &dsets[D_TENSORS + k];
        fz_obj_int(o, FZ_F32, k);
        o->ndim = t->ndim;
        o->dims[0] = (hsize_t)t->shape[0];
        o->dims[1] = (hsize_t)t->shape[1];
    }
    fz_obj_str(&dsets[D_EXTRA], "extra");
    dsets[D_EXTRA].present = false;
    for (int g = 0; g < 4; g++) groups[g] = true;
}

static bool write_ckpt(const char *path)
{
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    bool ok = file >= 0;
    for (int a = 0; ok && a < N_ATTRS; a++) ok = fz_write_attr(file, attr_names[a], &attrs[a]);
    ok = ok && fz_write_dataset(file, "config", &dsets[D_CONFIG]) &&
         fz_write_dataset(file, "data_cursors", &dsets[D_CURSORS]) &&
         fz_write_dataset(file, "importance", &dsets[D_IMPORTANCE]);
    bool made[4] = {false};
    for (int g = 0; ok && g < 4; g++) {
        if (!groups[g] || (g >= 2 && !made[1])) continue;
        hid_t id = H5Gcreate2(file, group_names[g], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        ok = id >= 0 && H5Gclose(id) >= 0;
        made[g] = true;
    }
    for (int k = 0; ok && k < 3 * N_TENSORS; k++) {
        int g = k / N_TENSORS == 0 ? 0 : k / N_TENSORS + 1;
        char name[128];
        snprintf(name, sizeof(name), "%s/%s", group_names[g], table[k % N_TENSORS].name);
        if (made[g]) ok = fz_write_dataset(file, name, &dsets[D_TENSORS + k]);
    }
    if (ok && made[0] && dsets[D_EXTRA].present) {
        hid_t param = H5Gopen2(file, "param", H5P_DEFAULT);
        ok = param >= 0 && fz_write_dataset(param, dsets[D_EXTRA].text, &dsets[D_EXTRA]);
        if (param >= 0) H5Gclose(param);
    }
    if (file >= 0 && H5Fclose(file) < 0) ok = false;
    return ok;
}

/* A checkpoint that reads holds what the harness wrote: every dataset the
 * caller asked for, value for value (an F32 dataset that was not edited
 * into another type holds its numbers as float). */
static void check_values(const td_ckpt *c, bool ranks_match)
{
    if (!c->config_yaml || ranks_match != ((hsize_t)c->n_ranks == dsets[D_CURSORS].dims[0])) abort();
    const float *blocks[3] = {c->params, c->m, c->v};
    for (int k = 0; k < 3 * N_TENSORS; k++) {
        const td_tensor_info *t = &table[k % N_TENSORS];
        for (int64_t i = 0; blocks[k / N_TENSORS] && i < t->n_elems; i++)
            if (blocks[k / N_TENSORS][t->offset + i] != (float)dsets[D_TENSORS + k].nums[i]) abort();
    }
    for (int64_t i = 0; i < c->V; i++)
        if (c->importance[i] != (float)dsets[D_IMPORTANCE].nums[i]) abort();
    const int64_t width = (int64_t)dsets[D_CURSORS].dims[1], *cur = dsets[D_CURSORS].nums;
    for (int r = 0; ranks_match && r < c->n_ranks; r++)
        if (c->cursors[r].epoch != cur[width * r] || c->cursors[r].index != cur[width * r + 1] ||
            c->cursors[r].window != (width == 3 ? cur[width * r + 2] : 0))
            abort();
}

/* Both readers, with the caller's expectations taken from flags. */
static void read_ckpt(const char *path, uint8_t flags)
{
    char *yaml = NULL;
    td_error err = {0};
    td_status st = td_ckpt_read_config(path, &yaml, &err);
    fz_check_error(st, &err, "td_ckpt_read_config");
    if (st == TD_OK) { /* a resumed run reads its config back */
        if (!yaml) abort();
        static td_config cfg;
        td_config_defaults(&cfg);
        fz_check_error(td_config_load_text(&cfg, yaml, path, &err), &err, "td_config_load_text");
        free(yaml);
    }
    int n_ranks = flags & 8 ? 1 : N_RANKS;
    float *params = malloc(N_PARAMS * sizeof(float)), *m = malloc(N_PARAMS * sizeof(float)),
          *v = malloc(N_PARAMS * sizeof(float)), *importance = malloc(V * sizeof(float));
    td_data_cursor *cursors = malloc((size_t)n_ranks * sizeof(td_data_cursor));
    td_ckpt want = {.tensors = table, .n_tensors = N_TENSORS, .n_params = N_PARAMS, .params = params,
                    .m = flags & 2 ? NULL : m, .v = flags & 2 ? NULL : v, .V = flags & 4 ? 0 : V,
                    .importance = importance, .n_ranks = n_ranks, .cursors = cursors};
    bool ranks_match = false;
    st = td_ckpt_read(path, &want, &ranks_match, &err);
    fz_check_error(st, &err, "td_ckpt_read");
    if (st == TD_OK) check_values(&want, ranks_match);
    free(want.config_yaml);
    free(params);
    free(m);
    free(v);
    free(importance);
    free(cursors);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_bytes b = {data, size};
    uint8_t flags = fz_u8(&b);
    base_ckpt();
    while (b.n > 0) {
        uint8_t what = fz_u8(&b);
        if (what < 16)
            groups[what % 4] = !groups[what % 4];
        else if (what < 64)
            fz_obj_edit(&attrs[what % N_ATTRS], &b);
        else
            fz_obj_edit(&dsets[what % N_DSETS], &b);
    }
    const char *path = fz_path(0);
    if (!write_ckpt(path)) return 0;
    const fz_obj *sum = &attrs[A_CHECKSUM];
    if ((flags & 1) && sum->present && sum->type == FZ_STR && sum->ndim == 0 &&
        strcmp(sum->text, "0000000000000000") == 0) {
        /* the reader says what it computed: write that and read again */
        char *yaml = NULL;
        td_error err = {0};
        if (td_ckpt_read_config(path, &yaml, &err) == TD_OK) abort(); /* a zero checksum */
        const char *at = strstr(err.msg, ", computed ");
        char hex[17];
        if (at && sscanf(at, ", computed %16[0-9a-f])", hex) == 1) {
            fz_obj_str(&attrs[A_CHECKSUM], hex);
            if (!write_ckpt(path)) abort();
        }
    }
    read_ckpt(path, flags);
    return 0;
}
