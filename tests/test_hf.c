/* The Hugging Face side (export/import, model.init): config.json written
 * and read back, a published bert-base-uncased config.json, configs of
 * models tokdrop does not compute refused with file, line and key; weights
 * from files spelt as published BERT files are (no "bert." prefix,
 * LayerNorm gamma/beta, no pretraining heads) and from a checkpoint; a
 * checkpoint written to a named file and its config read back. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokdrop/train/ckpt.h"
#include "tokdrop/train/config.h"
#include "tokdrop/formats/hf.h"
#include "tokdrop/nn/model.h"
#include "tokdrop/formats/safetensors.h"
#include "tokdrop/train/weights.h"

static const char *path_in(const char *dir, const char *name)
{
    static char buf[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof(buf[k]), "%s/%s", dir, name);
    return buf[k];
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void expect_error(td_status got, const td_error *err, const char *n1, const char *n2)
{
    if (got == TD_OK) fail_msg("accepted; expected an error naming \"%s\"", n1);
    if (n1 && !strstr(err->msg, n1)) fail_msg("message \"%s\" lacks \"%s\"", err->msg, n1);
    if (n2 && !strstr(err->msg, n2)) fail_msg("message \"%s\" lacks \"%s\"", err->msg, n2);
}

static td_model_config tiny_config(void)
{
    td_config c;
    td_config_defaults(&c);
    c.model.vocab_size = 12;
    c.model.hidden = 8;
    c.model.layers = 2;
    c.model.heads = 2;
    c.model.intermediate = 16;
    c.model.max_position = 16;
    return c.model;
}

/* ---- config.json -------------------------------------------------------- */

static void test_config_round_trip(void **unused)
{
    (void)unused;
    const char *dir = tu_tmpdir("hf_config_round_trip");
    td_model_config a = tiny_config();
    a.hidden_act = TD_ACT_GELU_TANH;
    a.hidden_dropout = 0.1;
    a.attention_dropout = 0.0;
    a.initializer_range = 0.037;
    td_error err = {0};
    const char *path = path_in(dir, "config.json");
    assert_int_equal(td_hf_write_config(path, &a, &err), TD_OK);
    td_config d;
    td_config_defaults(&d);
    td_status st = td_hf_read_config(path, &d.model, &err);
    if (st != TD_OK) fail_msg("%s", err.msg);
    assert_int_equal(d.model.vocab_size, 12);
    assert_int_equal(d.model.hidden, 8);
    assert_int_equal(d.model.layers, 2);
    assert_int_equal(d.model.heads, 2);
    assert_int_equal(d.model.intermediate, 16);
    assert_int_equal(d.model.max_position, 16);
    assert_int_equal(d.model.type_vocab, 2);
    assert_int_equal(d.model.hidden_act, TD_ACT_GELU_TANH);
    assert_true(d.model.hidden_dropout == 0.1 && d.model.attention_dropout == 0.0);
    assert_true(d.model.initializer_range == 0.037);
}

/* bert-base-uncased's config.json as published (keys sorted, extra keys). */
static void test_published_config(void **unused)
{
    (void)unused;
    const char *dir = tu_tmpdir("hf_published_config");
    const char *path = path_in(dir, "config.json");
    write_text(path, "{\n  \"architectures\": [\n    \"BertForMaskedLM\"\n  ],\n"
                     "  \"attention_probs_dropout_prob\": 0.1,\n  \"gradient_checkpointing\": false,\n"
                     "  \"hidden_act\": \"gelu\",\n  \"hidden_dropout_prob\": 0.1,\n  \"hidden_size\": 768,\n"
                     "  \"initializer_range\": 0.02,\n  \"intermediate_size\": 3072,\n"
                     "  \"layer_norm_eps\": 1e-12,\n  \"max_position_embeddings\": 512,\n"
                     "  \"model_type\": \"bert\",\n  \"num_attention_heads\": 12,\n"
                     "  \"num_hidden_layers\": 12,\n  \"pad_token_id\": 0,\n"
                     "  \"position_embedding_type\": \"absolute\",\n"
                     "  \"transformers_version\": \"4.6.0.dev0\",\n  \"type_vocab_size\": 2,\n"
                     "  \"use_cache\": true,\n  \"vocab_size\": 30522\n}\n");
    td_model_config m = tiny_config();
    td_error err = {0};
    td_status st = td_hf_read_config(path, &m, &err);
    if (st != TD_OK) fail_msg("%s", err.msg);
    assert_int_equal(m.vocab_size, 30522);
    assert_int_equal(m.hidden, 768);
    assert_int_equal(m.layers, 12);
    assert_int_equal(m.heads, 12);
    assert_int_equal(m.intermediate, 3072);
    assert_int_equal(m.max_position, 512);
    assert_int_equal(m.hidden_act, TD_ACT_GELU);
    assert_true(m.hidden_dropout == 0.1 && m.attention_dropout == 0.1 && m.initializer_range == 0.02);
}

static void test_config_refused(void **unused)
{
    (void)unused;
    const char *dir = tu_tmpdir("hf_config_refused");
    const char *path = path_in(dir, "config.json");
    static const struct {
        const char *text, *n1, *n2;
    } cases[] = {
        {"{\"model_type\": \"roberta\"}", "model_type", "roberta"},
        {"{\"hidden_size\": 8,\n \"hidden_act\": \"relu\"}", "config.json: key 'hidden_act'", "\"relu\""},
        {"{\"layer_norm_eps\": 1e-05}", "layer_norm_eps", "1e-05"},
        {"{\"position_embedding_type\": \"relative_key\"}", "position_embedding_type", "relative_key"},
        {"{\"hidden_size\": \"768\"}", "hidden_size", "positive integer"},
        {"{\"num_hidden_layers\": 0}", "num_hidden_layers", "positive integer"},
        {"{\"hidden_dropout_prob\": [0.1]}", "hidden_dropout_prob", "a number"},
        {"{\"hidden_size\": 768,,}", "config.json:1", "not valid JSON"},
        {"[1, 2]", "config.json", "JSON object"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        write_text(path, cases[i].text);
        td_model_config m = tiny_config(), before = m;
        td_error err = {0};
        expect_error(td_hf_read_config(path, &m, &err), &err, cases[i].n1, cases[i].n2);
        assert_memory_equal(&m, &before, sizeof(m)); /* untouched on an error */
    }
    td_model_config m = tiny_config();
    td_error err = {0};
    expect_error(td_hf_read_config(path_in(dir, "absent.json"), &m, &err), &err, "absent.json", "cannot open");
}

/* ---- weights ------------------------------------------------------------ */

/* A safetensors file of model m's parameters under the names a BertModel
 * converted from TF has: no "bert." prefix, LayerNorm gamma/beta, and no
 * cls.* heads (nor the pooler when drop_pooler). */
static int write_bertmodel_file(const char *path, const td_model *m, bool drop_pooler)
{
    td_tensor_info *t = calloc((size_t)m->n_tensors, sizeof(*t));
    int n = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const char *name = m->tensors[i].name;
        if (strncmp(name, "cls.", 4) == 0 || (drop_pooler && strstr(name, "pooler"))) continue;
        t[n] = m->tensors[i];
        char renamed[TD_TENSOR_NAME_LEN];
        snprintf(renamed, sizeof(renamed), "%s", name + 5); /* past "bert." */
        char *ln = strstr(renamed, "LayerNorm.");
        if (ln) snprintf(ln, sizeof(renamed) - (size_t)(ln - renamed), "LayerNorm.%s",
                         strcmp(ln + 10, "weight") == 0 ? "gamma" : "beta");
        snprintf(t[n].name, sizeof(t[n].name), "%s", renamed);
        n++;
    }
    td_error err = {0};
    assert_int_equal(td_safetensors_write(path, t, n, m->params, &err), TD_OK);
    free(t);
    return n;
}

static void test_weights_published_names(void **unused)
{
    (void)unused;
    const char *dir = tu_tmpdir("hf_weights_names");
    td_model_config mc = tiny_config();
    td_model src, dst;
    td_error err = {0};
    assert_int_equal(td_model_init(&src, &mc, 1, 4, 1, &err), TD_OK);
    assert_int_equal(td_model_init(&dst, &mc, 1, 4, 1, &err), TD_OK);
    td_model_init_weights(&src, 1);
    tu_fill_uniform(src.params, src.n_params, -1.0f, 1.0f, 7); /* LayerNorm not 1, biases not 0 */

    for (int drop_pooler = 0; drop_pooler <= 1; drop_pooler++) {
        const char *path = path_in(dir, drop_pooler ? "no_pooler.safetensors" : "bertmodel.safetensors");
        int n_written = write_bertmodel_file(path, &src, drop_pooler);
        td_model_init_weights(&dst, 2); /* the heads keep this init */
        float *init = malloc((size_t)dst.n_params * sizeof(float));
        memcpy(init, dst.params, (size_t)dst.n_params * sizeof(float));
        int n_new_heads = -1;
        td_status st = td_weights_load(&dst, path, &n_new_heads, &err);
        if (st != TD_OK) fail_msg("%s", err.msg);
        assert_int_equal(n_new_heads, dst.n_tensors - n_written);
        for (int i = 0; i < dst.n_tensors; i++) {
            const td_tensor_info *t = &dst.tensors[i];
            bool head = strncmp(t->name, "cls.", 4) == 0 || (drop_pooler && strstr(t->name, "pooler"));
            const float *want = (head ? init : src.params) + t->offset;
            if (memcmp(dst.params + t->offset, want, (size_t)t->n_elems * sizeof(float)) != 0)
                fail_msg("tensor %s: %s", t->name, head ? "the head's init was overwritten" : "not loaded");
        }
        free(init);
    }

    /* an encoder tensor missing is an error naming it */
    td_model_config other = mc;
    other.layers = 1;
    td_model small;
    assert_int_equal(td_model_init(&small, &other, 1, 4, 1, &err), TD_OK);
    const char *path = path_in(dir, "one_layer.safetensors");
    assert_int_equal(td_safetensors_write(path, small.tensors, small.n_tensors, small.params, &err), TD_OK);
    expect_error(td_weights_load(&dst, path, NULL, &err), &err, "one_layer.safetensors",
                 "bert.encoder.layer.1.attention.self.query.weight");
    td_model_free(&small);
    td_model_free(&src);
    td_model_free(&dst);
}

/* A checkpoint written to a named file (what `tokdrop import` writes)
 * serves as model.init, and its config is read back without the model. */
static void test_checkpoint_file(void **unused)
{
    (void)unused;
    const char *dir = tu_tmpdir("hf_checkpoint_file");
    td_config cfg;
    td_config_defaults(&cfg);
    cfg.model = tiny_config();
    cfg.data.seq_len = 16;
    td_model src, dst;
    td_error err = {0};
    assert_int_equal(td_model_init(&src, &cfg.model, 1, 4, 1, &err), TD_OK);
    assert_int_equal(td_model_init(&dst, &cfg.model, 1, 4, 1, &err), TD_OK);
    tu_fill_uniform(src.params, src.n_params, -1.0f, 1.0f, 3);
    float *zeros = calloc((size_t)src.n_params, sizeof(float));
    td_data_cursor cursor = {0, 0, 0};
    char *yaml = td_config_to_yaml(&cfg);
    td_ckpt ck = {.tensors = src.tensors, .n_tensors = src.n_tensors, .n_params = src.n_params,
                  .params = src.params, .m = zeros, .v = zeros, .n_ranks = 1, .cursors = &cursor,
                  .config_yaml = yaml};
    const char *path = path_in(dir, "init.h5");
    assert_int_equal(td_ckpt_write_file(path, &ck, &err), TD_OK);
    assert_true(td_weights_is_hdf5(path));

    assert_int_equal(td_weights_load(&dst, path, NULL, &err), TD_OK);
    for (int i = 0; i < src.n_tensors; i++) {
        const td_tensor_info *t = &src.tensors[i];
        assert_memory_equal(dst.params + t->offset, src.params + t->offset, (size_t)t->n_elems * 4);
    }

    char *back = NULL;
    assert_int_equal(td_ckpt_read_config(path, &back, &err), TD_OK);
    td_config again;
    td_config_defaults(&again);
    td_status st = td_config_load_text(&again, back, path, &err);
    if (st != TD_OK) fail_msg("%s", err.msg);
    assert_int_equal(again.model.hidden, 8);
    assert_int_equal(again.model.vocab_size, 12);
    assert_int_equal(again.data.seq_len, 16);
    free(back);

    /* a config text with an error names the file it came from */
    td_config_defaults(&again);
    expect_error(td_config_load_text(&again, "model:\n  hiden: 3\n", "ckpt-1.h5", &err), &err, "ckpt-1.h5:2",
                 "model.hiden");

    /* a model of another shape is refused, naming the dataset */
    td_model_config wide = cfg.model;
    wide.hidden = 12;
    wide.heads = 3;
    td_model w;
    assert_int_equal(td_model_init(&w, &wide, 1, 4, 1, &err), TD_OK);
    expect_error(td_weights_load(&w, path, NULL, &err), &err, "init.h5", "bert.embeddings");
    td_model_free(&w);
    free(yaml);
    free(zeros);
    td_model_free(&src);
    td_model_free(&dst);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_round_trip), cmocka_unit_test(test_published_config),
        cmocka_unit_test(test_config_refused),    cmocka_unit_test(test_weights_published_names),
        cmocka_unit_test(test_checkpoint_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
