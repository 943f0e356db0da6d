/* config.json of a Hugging Face BERT, both ways, through tokdrop/formats/json.h. */
#include "tokdrop/formats/hf.h"

#include "base/fs.h"
#include "tokdrop/formats/json.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static td_status fill_text(FILE *f, const void *ctx, td_error *err)
{
    (void)err; /* a failed write is seen by td_fs_write_atomic through ferror */
    fputs(ctx, f);
    fputc('\n', f);
    return TD_OK;
}

td_status td_hf_write_config(const char *path, const td_model_config *mc, td_error *err)
{
    td_json *c = td_json_object_new(), *arch = td_json_array_new();
    td_json_push_str(arch, "BertForPreTraining");
    td_json_set(c, "architectures", arch);
    td_json_set_str(c, "model_type", "bert");
    td_json_set_int(c, "vocab_size", mc->vocab_size);
    td_json_set_int(c, "hidden_size", mc->hidden);
    td_json_set_int(c, "num_hidden_layers", mc->layers);
    td_json_set_int(c, "num_attention_heads", mc->heads);
    td_json_set_int(c, "intermediate_size", mc->intermediate);
    /* gelu_new is Hugging Face's name for the tanh approximation. */
    td_json_set_str(c, "hidden_act", mc->hidden_act == TD_ACT_GELU ? "gelu" : "gelu_new");
    td_json_set_num(c, "hidden_dropout_prob", mc->hidden_dropout);
    td_json_set_num(c, "attention_probs_dropout_prob", mc->attention_dropout);
    td_json_set_int(c, "max_position_embeddings", mc->max_position);
    td_json_set_int(c, "type_vocab_size", mc->type_vocab);
    td_json_set_num(c, "initializer_range", mc->initializer_range);
    td_json_set_num(c, "layer_norm_eps", 1e-12);
    td_json_set_int(c, "pad_token_id", 0);
    td_json_set_str(c, "position_embedding_type", "absolute");
    td_json_set_str(c, "torch_dtype", "float32");
    char *text = td_json_dumps(c, TD_JSON_PRETTY, 0); /* 0.1 stays 0.1 */
    td_json_free(c);
    td_status st = td_fs_write_atomic(path, fill_text, text, err);
    free(text);
    return st;
}

static td_status fill_copy(FILE *f, const void *ctx, td_error *err)
{
    const char *src = ctx;
    FILE *in = fopen(src, "rb");
    if (!in) return td_error_set(err, TD_ERR_IO, "%s: cannot open: %s", src, strerror(errno));
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0) fwrite(buf, 1, n, f);
    td_status st = ferror(in) ? td_error_set(err, TD_ERR_IO, "%s: read failed", src) : TD_OK;
    fclose(in);
    return st;
}

td_status td_hf_copy_file(const char *src, const char *dst, td_error *err)
{
    return td_fs_write_atomic(dst, fill_copy, src, err);
}

/* ---- reading config.json ------------------------------------------------- */

typedef enum { HF_INT, HF_DOUBLE } hf_kind;

static const struct {
    const char *name;
    hf_kind kind;
    size_t offset;
} hf_keys[] = {
    {"vocab_size", HF_INT, offsetof(td_model_config, vocab_size)},
    {"hidden_size", HF_INT, offsetof(td_model_config, hidden)},
    {"num_hidden_layers", HF_INT, offsetof(td_model_config, layers)},
    {"num_attention_heads", HF_INT, offsetof(td_model_config, heads)},
    {"intermediate_size", HF_INT, offsetof(td_model_config, intermediate)},
    {"max_position_embeddings", HF_INT, offsetof(td_model_config, max_position)},
    {"type_vocab_size", HF_INT, offsetof(td_model_config, type_vocab)},
    {"hidden_dropout_prob", HF_DOUBLE, offsetof(td_model_config, hidden_dropout)},
    {"attention_probs_dropout_prob", HF_DOUBLE, offsetof(td_model_config, attention_dropout)},
    {"initializer_range", HF_DOUBLE, offsetof(td_model_config, initializer_range)},
};

static bool is_string(const td_json *v, const char *text)
{
    const char *s;
    return td_json_string(v, "", "", &s, NULL) == TD_OK && strcmp(s, text) == 0;
}

static td_status apply_pair(td_model_config *mc, const char *path, const char *key, const td_json *value,
                            td_error *err)
{
    for (size_t k = 0; k < sizeof(hf_keys) / sizeof(hf_keys[0]); k++) {
        if (strcmp(key, hf_keys[k].name) != 0) continue;
        if (hf_keys[k].kind == HF_INT) {
            int64_t v = 0;
            if (td_json_int(value, path, key, &v, NULL) != TD_OK || v < 1)
                return td_json_expected(value, path, key, "a positive integer", err);
            *(int64_t *)((char *)mc + hf_keys[k].offset) = v;
            return TD_OK;
        }
        return td_json_number(value, path, key, (double *)((char *)mc + hf_keys[k].offset), err);
    }
    if (strcmp(key, "hidden_act") == 0) {
        if (is_string(value, "gelu")) {
            mc->hidden_act = TD_ACT_GELU;
        } else if (is_string(value, "gelu_new") || is_string(value, "gelu_pytorch_tanh") ||
                   is_string(value, "gelu_fast")) {
            mc->hidden_act = TD_ACT_GELU_TANH;
        } else {
            return td_json_expected(value, path, key,
                                    "gelu, or gelu_new / gelu_pytorch_tanh (the tanh approximation)", err);
        }
    } else if (strcmp(key, "model_type") == 0) {
        if (!is_string(value, "bert")) return td_json_expected(value, path, key, "bert", err);
    } else if (strcmp(key, "layer_norm_eps") == 0) {
        double eps = 0;
        if (td_json_number(value, path, key, &eps, err) != TD_OK) return TD_ERR_FORMAT;
        if (!(fabs(eps - 1e-12) <= 1e-15))
            return td_json_expected(value, path, key, "1e-12 (tokdrop computes BERT's)", err);
    } else if (strcmp(key, "position_embedding_type") == 0) {
        if (!is_string(value, "absolute"))
            return td_json_expected(value, path, key, "absolute (tokdrop computes absolute position embeddings)",
                                    err);
    }
    return TD_OK;
}

td_status td_hf_read_config(const char *path, td_model_config *mc, td_error *err)
{
    td_json *doc;
    td_status st = td_json_load_file(&doc, path, err);
    if (st != TD_OK) return st;
    if (td_json_kind_of(doc) != TD_JSON_OBJECT) {
        st = td_error_set(err, TD_ERR_FORMAT, "%s: expected a JSON object of BertConfig keys, got %s", path,
                          td_json_kind_str(td_json_kind_of(doc)));
    } else {
        td_model_config work = *mc; /* mc untouched on an error */
        for (void *it = td_json_iter(doc); st == TD_OK && it; it = td_json_iter_next(doc, it))
            st = apply_pair(&work, path, td_json_iter_key(it), td_json_iter_value(it), err);
        if (st == TD_OK) *mc = work;
    }
    td_json_free(doc);
    return st;
}
