/* config.json of a Hugging Face BERT, both ways. JSON is read with libyaml
 * (a JSON document of this kind is YAML), which gives line numbers for
 * the messages. */
#include "tokdrop/hf.h"

#include "fs.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* The shortest decimal that reads back as x (JSON has no exact floats). */
static void fmt_double(char *buf, size_t len, double x)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) return;
    }
}

static td_status fill_config(FILE *f, const void *ctx, td_error *err)
{
    (void)err;
    const td_model_config *mc = ctx;
    char hd[32], ad[32], ir[32];
    fmt_double(hd, sizeof(hd), mc->hidden_dropout);
    fmt_double(ad, sizeof(ad), mc->attention_dropout);
    fmt_double(ir, sizeof(ir), mc->initializer_range);
    /* gelu_new is Hugging Face's name for the tanh approximation. */
    fprintf(f,
            "{\n"
            "  \"architectures\": [\"BertForPreTraining\"],\n"
            "  \"model_type\": \"bert\",\n"
            "  \"vocab_size\": %lld,\n"
            "  \"hidden_size\": %lld,\n"
            "  \"num_hidden_layers\": %lld,\n"
            "  \"num_attention_heads\": %lld,\n"
            "  \"intermediate_size\": %lld,\n"
            "  \"hidden_act\": \"%s\",\n"
            "  \"hidden_dropout_prob\": %s,\n"
            "  \"attention_probs_dropout_prob\": %s,\n"
            "  \"max_position_embeddings\": %lld,\n"
            "  \"type_vocab_size\": %lld,\n"
            "  \"initializer_range\": %s,\n"
            "  \"layer_norm_eps\": 1e-12,\n"
            "  \"pad_token_id\": 0,\n"
            "  \"position_embedding_type\": \"absolute\",\n"
            "  \"torch_dtype\": \"float32\"\n"
            "}\n",
            (long long)mc->vocab_size, (long long)mc->hidden, (long long)mc->layers, (long long)mc->heads,
            (long long)mc->intermediate, mc->hidden_act == TD_ACT_GELU ? "gelu" : "gelu_new", hd, ad,
            (long long)mc->max_position, (long long)mc->type_vocab, ir);
    return TD_OK;
}

td_status td_hf_write_config(const char *path, const td_model_config *mc, td_error *err)
{
    return td_fs_write_atomic(path, fill_config, mc, err);
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

/* The scalar text of node, or NULL when it is not a scalar. */
static const char *scalar(const yaml_node_t *node)
{
    return node && node->type == YAML_SCALAR_NODE ? (const char *)node->data.scalar.value : NULL;
}

static bool quoted(const yaml_node_t *node)
{
    return node->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
           node->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
}

static td_status apply_pair(td_model_config *mc, const char *path, const char *key, const yaml_node_t *value,
                            td_error *err)
{
    size_t line = value->start_mark.line + 1;
    const char *text = scalar(value);
    for (size_t k = 0; k < sizeof(hf_keys) / sizeof(hf_keys[0]); k++) {
        if (strcmp(key, hf_keys[k].name) != 0) continue;
        char *end = NULL;
        errno = 0;
        if (hf_keys[k].kind == HF_INT) {
            long long v = text && !quoted(value) ? strtoll(text, &end, 10) : 0;
            if (!text || quoted(value) || end == text || *end || errno || v < 1)
                return td_error_set(err, TD_ERR_FORMAT, "%s:%zu: %s: expected a positive integer, got %s", path,
                                    line, key, text ? text : "a list or object");
            *(int64_t *)((char *)mc + hf_keys[k].offset) = v;
        } else {
            double v = text && !quoted(value) ? strtod(text, &end) : 0;
            if (!text || quoted(value) || end == text || *end || errno || !isfinite(v))
                return td_error_set(err, TD_ERR_FORMAT, "%s:%zu: %s: expected a number, got %s", path, line,
                                    key, text ? text : "a list or object");
            *(double *)((char *)mc + hf_keys[k].offset) = v;
        }
        return TD_OK;
    }
    if (strcmp(key, "hidden_act") == 0) {
        if (text && strcmp(text, "gelu") == 0) {
            mc->hidden_act = TD_ACT_GELU;
        } else if (text && (strcmp(text, "gelu_new") == 0 || strcmp(text, "gelu_pytorch_tanh") == 0 ||
                            strcmp(text, "gelu_fast") == 0)) {
            mc->hidden_act = TD_ACT_GELU_TANH;
        } else {
            return td_error_set(err, TD_ERR_FORMAT,
                                "%s:%zu: hidden_act: expected gelu, or gelu_new / gelu_pytorch_tanh (the tanh "
                                "approximation), got %s",
                                path, line, text ? text : "a list or object");
        }
    } else if (strcmp(key, "model_type") == 0) {
        if (!text || strcmp(text, "bert") != 0)
            return td_error_set(err, TD_ERR_FORMAT, "%s:%zu: model_type: expected bert, got %s", path, line,
                                text ? text : "a list or object");
    } else if (strcmp(key, "layer_norm_eps") == 0) {
        double eps = text ? strtod(text, NULL) : 0;
        if (!(fabs(eps - 1e-12) <= 1e-15))
            return td_error_set(err, TD_ERR_FORMAT,
                                "%s:%zu: layer_norm_eps: tokdrop computes BERT's 1e-12, the file says %s", path,
                                line, text ? text : "a list or object");
    } else if (strcmp(key, "position_embedding_type") == 0) {
        if (!text || strcmp(text, "absolute") != 0)
            return td_error_set(err, TD_ERR_FORMAT,
                                "%s:%zu: position_embedding_type: tokdrop computes absolute position "
                                "embeddings, the file says %s",
                                path, line, text ? text : "a list or object");
    }
    return TD_OK;
}

td_status td_hf_read_config(const char *path, td_model_config *mc, td_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return td_error_set(err, TD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        return td_error_set(err, TD_ERR_NOMEM, "%s: cannot initialise the JSON parser", path);
    }
    yaml_parser_set_input_file(&parser, f);
    yaml_document_t doc;
    td_status st = TD_OK;
    if (!yaml_parser_load(&parser, &doc)) {
        st = td_error_set(err, TD_ERR_FORMAT, "%s:%zu: not valid JSON: %s", path, parser.problem_mark.line + 1,
                          parser.problem ? parser.problem : "syntax error");
        goto out;
    }
    const yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || root->type != YAML_MAPPING_NODE) {
        st = td_error_set(err, TD_ERR_FORMAT, "%s: expected a JSON object of BertConfig keys", path);
    } else {
        td_model_config work = *mc; /* mc untouched on an error */
        for (yaml_node_pair_t *p = root->data.mapping.pairs.start; st == TD_OK && p < root->data.mapping.pairs.top;
             p++) {
            const char *key = scalar(yaml_document_get_node(&doc, p->key));
            if (key) st = apply_pair(&work, path, key, yaml_document_get_node(&doc, p->value), err);
        }
        if (st == TD_OK) *mc = work;
    }
    yaml_document_delete(&doc);
out:
    yaml_parser_delete(&parser);
    fclose(f);
    return st;
}
