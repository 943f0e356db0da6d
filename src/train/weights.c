/* Starting weights from a safetensors file or a tokdrop checkpoint. */
#include "tokdrop/train/weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fs.h"
#include "tokdrop/train/ckpt.h"
#include "tokdrop/formats/safetensors.h"

bool td_weights_is_hdf5(const char *path)
{
    static const unsigned char signature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    unsigned char head[8];
    FILE *f;
    td_error ignored; /* not a regular file: the safetensors reader says what it is */
    if (td_fs_open_regular(&f, path, "a file", TD_ERR_IO, &ignored) != TD_OK) return false;
    bool is = fread(head, 1, sizeof(head), f) == sizeof(head) && memcmp(head, signature, 8) == 0;
    fclose(f);
    return is;
}

/* Tensors a pretraining run may start without: files saved from BertModel
 * have no cls.* heads, and some have no pooler either. */
static bool is_head(const char *name)
{
    return strncmp(name, "cls.", 4) == 0 || strncmp(name, "bert.pooler.", 12) == 0;
}

static td_status load_checkpoint(td_model *m, const char *path, td_error *err)
{
    td_ckpt ck = {
        .tensors = m->tensors,
        .n_tensors = m->n_tensors,
        .n_params = m->n_params,
        .params = m->params,
    };
    td_status st = td_ckpt_read(path, &ck, NULL, err);
    free(ck.config_yaml);
    return st;
}

static td_status load_safetensors(td_model *m, const char *path, int *n_new_heads, td_error *err)
{
    bool *present = td_xcalloc((size_t)m->n_tensors, sizeof(bool));
    td_status st = td_safetensors_read_some(path, m->tensors, m->n_tensors, m->params, present, NULL, err);
    int n_missing_heads = 0;
    for (int i = 0; st == TD_OK && i < m->n_tensors; i++) {
        if (present[i]) continue;
        if (is_head(m->tensors[i].name))
            n_missing_heads++;
        else
            st = td_error_set(err, TD_ERR_FORMAT,
                              "%s: tensor %s: missing (also looked for it without \"bert.\" and "
                              "with LayerNorm gamma/beta)",
                              path, m->tensors[i].name);
    }
    free(present);
    if (st == TD_OK && n_new_heads) *n_new_heads = n_missing_heads;
    return st;
}

td_status td_weights_load(td_model *model, const char *path, int *n_new_heads, td_error *err)
{
    if (n_new_heads) *n_new_heads = 0;
    if (td_weights_is_hdf5(path)) return load_checkpoint(model, path, err);
    return load_safetensors(model, path, n_new_heads, err);
}
