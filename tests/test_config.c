/* Config: SPEC section 8 defaults, YAML loading with file:line errors,
 * --set overrides, resolution, validation and the YAML round trip. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokdrop/train/config.h"

/* Writes text to DIR/name and returns the path (static storage, one at a time). */
static const char *write_file(const char *dir, const char *name, const char *text)
{
    static char path[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    return path;
}

/* strcpy that also clears the rest of the buffer, as the library does, so
 * that whole configs compare with memcmp. */
#define SET_STR(dst, src) \
    do { \
        memset((dst), 0, sizeof(dst)); \
        strcpy((dst), (src)); \
    } while (0)

static void assert_contains(const char *haystack, const char *needle)
{
    if (!strstr(haystack, needle)) fail_msg("expected \"%s\" in \"%s\"", needle, haystack);
}

static void assert_token_text(const td_token_ref *ref, const char *text)
{
    assert_string_equal(ref->text, text);
    assert_int_equal(ref->id, -1);
}

static void assert_token_id(const td_token_ref *ref, int64_t id)
{
    assert_string_equal(ref->text, "");
    assert_int_equal(ref->id, id);
}

/* Field by field, so that a failure names the field; the caller adds memcmp. */
static void assert_configs_equal(const td_config *a, const td_config *b)
{
    assert_string_equal(a->model.vocab, b->model.vocab);
    assert_int_equal(a->model.vocab_size, b->model.vocab_size);
    assert_int_equal(a->model.hidden, b->model.hidden);
    assert_int_equal(a->model.layers, b->model.layers);
    assert_int_equal(a->model.heads, b->model.heads);
    assert_int_equal(a->model.intermediate, b->model.intermediate);
    assert_int_equal(a->model.max_position, b->model.max_position);
    assert_int_equal(a->model.type_vocab, b->model.type_vocab);
    assert_int_equal(a->model.hidden_act, b->model.hidden_act);
    assert_true(a->model.hidden_dropout == b->model.hidden_dropout);
    assert_true(a->model.attention_dropout == b->model.attention_dropout);
    assert_true(a->model.initializer_range == b->model.initializer_range);
    assert_string_equal(a->model.init, b->model.init);
    assert_int_equal(a->token_drop.enabled, b->token_drop.enabled);
    assert_int_equal(a->token_drop.keep, b->token_drop.keep);
    assert_int_equal(a->token_drop.first_layer, b->token_drop.first_layer);
    assert_int_equal(a->token_drop.importance, b->token_drop.importance);
    assert_true(a->token_drop.loss_init == b->token_drop.loss_init);
    assert_true(a->token_drop.loss_beta == b->token_drop.loss_beta);
    assert_int_equal(a->token_drop.schedule, b->token_drop.schedule);
    assert_int_equal(a->token_drop.ramp_steps, b->token_drop.ramp_steps);
    assert_int_equal(a->token_drop.full_every, b->token_drop.full_every);
    assert_int_equal(a->token_drop.full_last_steps, b->token_drop.full_last_steps);
    assert_int_equal(a->token_drop.n_allow, b->token_drop.n_allow);
    for (int i = 0; i < a->token_drop.n_allow; i++) {
        assert_string_equal(a->token_drop.allow[i].text, b->token_drop.allow[i].text);
        assert_int_equal(a->token_drop.allow[i].id, b->token_drop.allow[i].id);
    }
    assert_int_equal(a->token_drop.n_deny, b->token_drop.n_deny);
    for (int i = 0; i < a->token_drop.n_deny; i++) {
        assert_string_equal(a->token_drop.deny[i].text, b->token_drop.deny[i].text);
        assert_int_equal(a->token_drop.deny[i].id, b->token_drop.deny[i].id);
    }
    assert_string_equal(a->data.train, b->data.train);
    assert_string_equal(a->data.eval, b->data.eval);
    assert_int_equal(a->data.seq_len, b->data.seq_len);
    assert_int_equal(a->data.max_pred, b->data.max_pred);
    assert_int_equal(a->data.masking, b->data.masking);
    assert_int_equal(a->train.steps, b->train.steps);
    assert_int_equal(a->train.micro_batch, b->train.micro_batch);
    assert_int_equal(a->train.accumulation, b->train.accumulation);
    assert_true(a->train.seed == b->train.seed);
    assert_int_equal(a->train.threads, b->train.threads);
    assert_int_equal(a->optimizer.name, b->optimizer.name);
    assert_true(a->optimizer.lr == b->optimizer.lr);
    assert_true(a->optimizer.end_lr == b->optimizer.end_lr);
    assert_int_equal(a->optimizer.warmup_steps, b->optimizer.warmup_steps);
    assert_true(a->optimizer.power == b->optimizer.power);
    assert_true(a->optimizer.beta1 == b->optimizer.beta1);
    assert_true(a->optimizer.beta2 == b->optimizer.beta2);
    assert_true(a->optimizer.eps == b->optimizer.eps);
    assert_true(a->optimizer.weight_decay == b->optimizer.weight_decay);
    assert_true(a->optimizer.max_grad_norm == b->optimizer.max_grad_norm);
    assert_string_equal(a->run.dir, b->run.dir);
    assert_int_equal(a->run.log_every, b->run.log_every);
    assert_int_equal(a->run.eval_every, b->run.eval_every);
    assert_int_equal(a->run.eval_batches, b->run.eval_batches);
    assert_int_equal(a->run.checkpoint_every, b->run.checkpoint_every);
    assert_int_equal(a->run.keep_checkpoints, b->run.keep_checkpoints);
}

static void test_defaults_match_spec(void **state)
{
    (void)state;
    td_config c;
    td_config_defaults(&c);
    assert_string_equal(c.model.vocab, "");
    assert_int_equal(c.model.vocab_size, 30522);
    assert_int_equal(c.model.hidden, 768);
    assert_int_equal(c.model.layers, 12);
    assert_int_equal(c.model.heads, 12);
    assert_int_equal(c.model.intermediate, 3072);
    assert_int_equal(c.model.max_position, 512);
    assert_int_equal(c.model.type_vocab, 2);
    assert_int_equal(c.model.hidden_act, TD_ACT_GELU);
    assert_true(c.model.hidden_dropout == 0.1);
    assert_true(c.model.attention_dropout == 0.1);
    assert_true(c.model.initializer_range == 0.02);
    assert_string_equal(c.model.init, "");
    assert_false(c.token_drop.enabled);
    assert_int_equal(c.token_drop.keep, 0);
    assert_int_equal(c.token_drop.first_layer, -1);
    assert_int_equal(c.token_drop.importance, TD_IMPORTANCE_LOSS);
    assert_true(c.token_drop.loss_init == 10.0);
    assert_true(c.token_drop.loss_beta == 0.995);
    assert_int_equal(c.token_drop.schedule, TD_SCHEDULE_CONSTANT);
    assert_int_equal(c.token_drop.ramp_steps, 0);
    assert_int_equal(c.token_drop.full_every, 0);
    assert_int_equal(c.token_drop.full_last_steps, 0);
    assert_int_equal(c.token_drop.n_allow, 4);
    assert_token_text(&c.token_drop.allow[0], "[UNK]");
    assert_token_text(&c.token_drop.allow[1], "[CLS]");
    assert_token_text(&c.token_drop.allow[2], "[SEP]");
    assert_token_text(&c.token_drop.allow[3], "[MASK]");
    assert_int_equal(c.token_drop.n_deny, 1);
    assert_token_text(&c.token_drop.deny[0], "[PAD]");
    assert_string_equal(c.data.train, "data/train/*.h5");
    assert_string_equal(c.data.eval, "");
    assert_int_equal(c.data.seq_len, 128);
    assert_int_equal(c.data.max_pred, 20);
    assert_int_equal(c.data.masking, TD_MASKING_STATIC);
    assert_int_equal(c.train.steps, 1000);
    assert_int_equal(c.train.micro_batch, 32);
    assert_int_equal(c.train.accumulation, 1);
    assert_true(c.train.seed == 12345);
    assert_int_equal(c.train.threads, 0);
    assert_int_equal(c.optimizer.name, TD_OPTIM_LAMB);
    assert_true(c.optimizer.lr == 0.001);
    assert_true(c.optimizer.end_lr == 0.0);
    assert_int_equal(c.optimizer.warmup_steps, 100);
    assert_true(c.optimizer.power == 1.0);
    assert_true(c.optimizer.beta1 == 0.9);
    assert_true(c.optimizer.beta2 == 0.999);
    assert_true(c.optimizer.eps == 1.0e-6);
    assert_true(c.optimizer.weight_decay == 0.01);
    assert_true(c.optimizer.max_grad_norm == 1.0);
    assert_string_equal(c.run.dir, "runs/default");
    assert_int_equal(c.run.log_every, 10);
    assert_int_equal(c.run.eval_every, 0);
    assert_int_equal(c.run.eval_batches, 20);
    assert_int_equal(c.run.checkpoint_every, 500);
    assert_int_equal(c.run.keep_checkpoints, 3);

    /* The defaults, resolved, are a valid config. */
    td_error err = {0};
    td_config_resolve(&c);
    assert_int_equal(td_config_validate(&c, &err), TD_OK);
}

/* Every key with a value different from its default. */
static const char full_yaml[] =
    "# a full config\n"
    "model:\n"
    "  vocab: \"vocab dir/vocab.txt\"\n"
    "  vocab_size: 1000\n"
    "  hidden: 64\n"
    "  layers: 4\n"
    "  heads: 2\n"
    "  intermediate: 256\n"
    "  max_position: 256\n"
    "  type_vocab: 3\n"
    "  hidden_act: gelu_tanh\n"
    "  hidden_dropout: 0.0\n"
    "  attention_dropout: 1e-1\n"
    "  initializer_range: .05\n"
    "  init: init/model.safetensors\n"
    "token_drop:\n"
    "  enabled: true\n"
    "  keep: 32\n"
    "  first_layer: 1\n"
    "  importance: frequency\n"
    "  loss_init: 5\n"
    "  loss_beta: 0.9\n"
    "  allow: [\"[CLS]\", 5, \"7\", \"[SEP]\"]\n"
    "  deny:\n"
    "    - \"[PAD]\"\n"
    "    - 0\n"
    "  schedule: ramp\n"
    "  ramp_steps: 40\n"
    "  full_last_steps: 5\n"
    "data:\n"
    "  train: 'shards/train/*.h5'\n"
    "  eval: shards/eval/*.h5\n"
    "  seq_len: 64\n"
    "  max_pred: 10\n"
    "  masking: dynamic\n"
    "train:\n"
    "  steps: 50\n"
    "  micro_batch: 8\n"
    "  accumulation: 4\n"
    "  seed: 18446744073709551615\n"
    "  threads: 2\n"
    "optimizer:\n"
    "  name: adamw\n"
    "  lr: 2.5e-4\n"
    "  end_lr: 1.0e-6\n"
    "  warmup_steps: 7\n"
    "  power: 0.5\n"
    "  beta1: 0.8\n"
    "  beta2: 0.98\n"
    "  eps: 1e-8\n"
    "  weight_decay: 0.001\n"
    "  max_grad_norm: 2\n"
    "run:\n"
    "  dir: runs/full\n"
    "  log_every: 1\n"
    "  eval_every: 25\n"
    "  eval_batches: 2\n"
    "  checkpoint_every: 0\n"
    "  keep_checkpoints: 1\n";

static void test_load_full_file(void **state)
{
    (void)state;
    const char *path = write_file(tu_tmpdir("config"), "full.yaml", full_yaml);
    td_config c;
    td_config_defaults(&c);
    td_error err = {0};
    td_status st = td_config_load(&c, path, &err);
    if (st != TD_OK) fail_msg("%s", err.msg);
    assert_string_equal(c.model.vocab, "vocab dir/vocab.txt");
    assert_int_equal(c.model.vocab_size, 1000);
    assert_int_equal(c.model.hidden, 64);
    assert_int_equal(c.model.layers, 4);
    assert_int_equal(c.model.heads, 2);
    assert_int_equal(c.model.intermediate, 256);
    assert_int_equal(c.model.max_position, 256);
    assert_int_equal(c.model.type_vocab, 3);
    assert_int_equal(c.model.hidden_act, TD_ACT_GELU_TANH);
    assert_true(c.model.hidden_dropout == 0.0);
    assert_true(c.model.attention_dropout == 0.1);
    assert_true(c.model.initializer_range == 0.05);
    assert_string_equal(c.model.init, "init/model.safetensors");
    assert_true(c.token_drop.enabled);
    assert_int_equal(c.token_drop.keep, 32);
    assert_int_equal(c.token_drop.first_layer, 1);
    assert_int_equal(c.token_drop.importance, TD_IMPORTANCE_FREQUENCY);
    assert_true(c.token_drop.loss_init == 5.0);
    assert_true(c.token_drop.loss_beta == 0.9);
    assert_int_equal(c.token_drop.n_allow, 4);
    assert_token_text(&c.token_drop.allow[0], "[CLS]");
    assert_token_id(&c.token_drop.allow[1], 5);
    assert_token_text(&c.token_drop.allow[2], "7"); /* quoted: a string, not an id */
    assert_token_text(&c.token_drop.allow[3], "[SEP]");
    assert_int_equal(c.token_drop.n_deny, 2);
    assert_token_text(&c.token_drop.deny[0], "[PAD]");
    assert_token_id(&c.token_drop.deny[1], 0);
    assert_int_equal(c.token_drop.schedule, TD_SCHEDULE_RAMP);
    assert_int_equal(c.token_drop.ramp_steps, 40);
    assert_int_equal(c.token_drop.full_every, 0);
    assert_int_equal(c.token_drop.full_last_steps, 5);
    assert_string_equal(c.data.train, "shards/train/*.h5");
    assert_string_equal(c.data.eval, "shards/eval/*.h5");
    assert_int_equal(c.data.seq_len, 64);
    assert_int_equal(c.data.max_pred, 10);
    assert_int_equal(c.data.masking, TD_MASKING_DYNAMIC);
    assert_int_equal(c.train.steps, 50);
    assert_int_equal(c.train.micro_batch, 8);
    assert_int_equal(c.train.accumulation, 4);
    assert_true(c.train.seed == UINT64_MAX);
    assert_int_equal(c.train.threads, 2);
    assert_int_equal(c.optimizer.name, TD_OPTIM_ADAMW);
    assert_true(c.optimizer.lr == 2.5e-4);
    assert_true(c.optimizer.end_lr == 1.0e-6);
    assert_int_equal(c.optimizer.warmup_steps, 7);
    assert_true(c.optimizer.power == 0.5);
    assert_true(c.optimizer.beta1 == 0.8);
    assert_true(c.optimizer.beta2 == 0.98);
    assert_true(c.optimizer.eps == 1e-8);
    assert_true(c.optimizer.weight_decay == 0.001);
    assert_true(c.optimizer.max_grad_norm == 2.0);
    assert_string_equal(c.run.dir, "runs/full");
    assert_int_equal(c.run.log_every, 1);
    assert_int_equal(c.run.eval_every, 25);
    assert_int_equal(c.run.eval_batches, 2);
    assert_int_equal(c.run.checkpoint_every, 0);
    assert_int_equal(c.run.keep_checkpoints, 1);
    td_config_resolve(&c);
    st = td_config_validate(&c, &err);
    if (st != TD_OK) fail_msg("%s", err.msg);
}

static void test_partial_file_keeps_other_values(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("config");
    td_config c, expect;
    td_config_defaults(&c);
    td_config_defaults(&expect);
    td_error err = {0};
    /* A section with nothing under it, and a comment-only file, change nothing. */
    const char *path = write_file(dir, "partial.yaml", "model:\n  hidden: 256\nrun:\n");
    assert_int_equal(td_config_load(&c, path, &err), TD_OK);
    expect.model.hidden = 256;
    assert_configs_equal(&c, &expect);
    path = write_file(dir, "empty.yaml", "# nothing here\n");
    assert_int_equal(td_config_load(&c, path, &err), TD_OK);
    assert_configs_equal(&c, &expect);
    /* A leading and a trailing document marker are fine. */
    path = write_file(dir, "markers.yaml", "---\nmodel:\n  hidden: 256\n---\n");
    assert_int_equal(td_config_load(&c, path, &err), TD_OK);
    assert_configs_equal(&c, &expect);
    /* An empty list and an explicit null list both clear it. */
    path = write_file(dir, "lists.yaml", "token_drop:\n  allow: []\n  deny:\n");
    assert_int_equal(td_config_load(&c, path, &err), TD_OK);
    assert_int_equal(c.token_drop.n_allow, 0);
    assert_int_equal(c.token_drop.n_deny, 0);
}

static void test_round_trip(void **state)
{
    (void)state;
    td_config c;
    td_config_defaults(&c);
    /* Awkward strings and doubles that a careless printer would break. */
    SET_STR(c.model.vocab, "has \"quotes\", a \\backslash\\, # hash: colon\ttab");
    c.model.vocab_size = 123;
    c.model.hidden = 96;
    c.model.layers = 3;
    c.model.heads = 3;
    c.model.intermediate = 100;
    c.model.max_position = 77;
    c.model.type_vocab = 1;
    c.model.hidden_act = TD_ACT_GELU_TANH;
    c.model.hidden_dropout = 0.1 + 0.2;
    c.model.attention_dropout = 1.0 / 3.0;
    c.model.initializer_range = 5e-324; /* the smallest denormal */
    SET_STR(c.model.init, "true");       /* must stay a string */
    c.token_drop.enabled = true;
    c.token_drop.keep = 33;
    c.token_drop.first_layer = 0;
    c.token_drop.importance = TD_IMPORTANCE_RANDOM;
    c.token_drop.loss_init = -1.5e300;
    c.token_drop.loss_beta = 0.123456789012345678;
    c.token_drop.n_allow = 3;
    memset(c.token_drop.allow, 0, sizeof(c.token_drop.allow));
    SET_STR(c.token_drop.allow[0].text, "[CLS]");
    c.token_drop.allow[0].id = -1;
    c.token_drop.allow[1].id = 42;
    SET_STR(c.token_drop.allow[2].text, "12"); /* a string that looks like an id */
    c.token_drop.allow[2].id = -1;
    c.token_drop.n_deny = 0;
    memset(c.token_drop.deny, 0, sizeof(c.token_drop.deny));
    c.token_drop.schedule = TD_SCHEDULE_INTERLEAVE;
    c.token_drop.full_every = 4;
    c.token_drop.full_last_steps = 9;
    SET_STR(c.data.train, "[brackets]/*.h5");
    SET_STR(c.data.eval, " leading space");
    c.data.seq_len = 66;
    c.data.max_pred = 11;
    c.data.masking = TD_MASKING_DYNAMIC;
    c.train.steps = 9;
    c.train.micro_batch = 2;
    c.train.accumulation = 3;
    c.train.seed = UINT64_MAX - 1;
    c.train.threads = 1;
    c.optimizer.name = TD_OPTIM_ADAMW;
    c.optimizer.lr = 3e-4;
    c.optimizer.end_lr = -0.0;
    c.optimizer.warmup_steps = 1000000;
    c.optimizer.power = 2.0;
    c.optimizer.beta1 = 0.0;
    c.optimizer.beta2 = 0.9999;
    c.optimizer.eps = 1e-12;
    c.optimizer.weight_decay = 1e10;
    c.optimizer.max_grad_norm = 1e-5;
    SET_STR(c.run.dir, "");
    c.run.log_every = 7;
    c.run.eval_every = 8;
    c.run.eval_batches = 9;
    c.run.checkpoint_every = 10;
    c.run.keep_checkpoints = 11;

    char *yaml = td_config_to_yaml(&c);
    assert_non_null(yaml);
    /* Same layout as SPEC section 8. */
    assert_contains(yaml, "model:\n  vocab: ");
    assert_contains(yaml, "\ntoken_drop:\n  enabled: true\n");
    assert_contains(yaml, "  allow: [\"[CLS]\", 42, \"12\"]\n");
    assert_contains(yaml, "  deny: []\n");
    assert_contains(yaml, "\noptimizer:\n  name: adamw\n");
    const char *path = write_file(tu_tmpdir("config"), "round.yaml", yaml);

    td_config back;
    td_config_defaults(&back);
    td_error err = {0};
    td_status st = td_config_load(&back, path, &err);
    if (st != TD_OK) fail_msg("%s\n%s", err.msg, yaml);
    assert_configs_equal(&back, &c);
    assert_true(signbit(back.optimizer.end_lr));
    assert_memory_equal(&back, &c, sizeof(c));

    /* Printing what was read back gives the same text. */
    char *again = td_config_to_yaml(&back);
    assert_string_equal(again, yaml);
    free(again);
    free(yaml);

    /* The defaults round-trip too, and print floats as SPEC writes them. */
    td_config d, d_back;
    td_config_defaults(&d);
    td_config_defaults(&d_back);
    d_back.model.hidden = 1; /* so that the load must change it back */
    yaml = td_config_to_yaml(&d);
    assert_contains(yaml, "  hidden_dropout: 0.1\n");
    assert_contains(yaml, "  lr: 0.001\n");
    assert_contains(yaml, "  end_lr: 0.0\n");
    assert_contains(yaml, "  loss_init: 10.0\n");
    assert_contains(yaml, "  vocab_size: 30522\n");
    assert_contains(yaml, "  eps: 1e-06\n");
    assert_contains(yaml, "  allow: [\"[UNK]\", \"[CLS]\", \"[SEP]\", \"[MASK]\"]\n");
    path = write_file(tu_tmpdir("config"), "defaults.yaml", yaml);
    assert_int_equal(td_config_load(&d_back, path, &err), TD_OK);
    assert_memory_equal(&d_back, &d, sizeof(d));
    free(yaml);
}

static void set_ok(td_config *c, const char *assignment)
{
    td_error err = {0};
    td_status st = td_config_set(c, assignment, &err);
    if (st != TD_OK) fail_msg("--set %s failed: %s", assignment, err.msg);
}

static void test_set_overrides(void **state)
{
    (void)state;
    td_config c;
    td_config_defaults(&c);
    set_ok(&c, "model.hidden=1024");
    assert_int_equal(c.model.hidden, 1024);
    set_ok(&c, " train.steps = 7 ");
    assert_int_equal(c.train.steps, 7);
    set_ok(&c, "token_drop.enabled=true");
    assert_true(c.token_drop.enabled);
    set_ok(&c, "optimizer.lr=2e-4");
    assert_true(c.optimizer.lr == 2e-4);
    set_ok(&c, "optimizer.name=adamw");
    assert_int_equal(c.optimizer.name, TD_OPTIM_ADAMW);
    set_ok(&c, "train.seed=99");
    assert_true(c.train.seed == 99);
    set_ok(&c, "data.train=shards/*.h5");
    assert_string_equal(c.data.train, "shards/*.h5");
    set_ok(&c, "run.dir=*starts with star");
    assert_string_equal(c.run.dir, "*starts with star");
    set_ok(&c, "run.dir=\"quoted # not a comment\"");
    assert_string_equal(c.run.dir, "quoted # not a comment");
    set_ok(&c, "model.init=");
    assert_string_equal(c.model.init, "");

    /* Lists: a YAML flow sequence, the comma form, a single token, ids, empty. */
    set_ok(&c, "token_drop.allow=[\"[CLS]\", 5]");
    assert_int_equal(c.token_drop.n_allow, 2);
    assert_token_text(&c.token_drop.allow[0], "[CLS]");
    assert_token_id(&c.token_drop.allow[1], 5);
    set_ok(&c, "token_drop.allow=[CLS],[SEP], [MASK]");
    assert_int_equal(c.token_drop.n_allow, 3);
    assert_token_text(&c.token_drop.allow[0], "[CLS]");
    assert_token_text(&c.token_drop.allow[1], "[SEP]");
    assert_token_text(&c.token_drop.allow[2], "[MASK]");
    set_ok(&c, "token_drop.deny=[PAD]");
    assert_int_equal(c.token_drop.n_deny, 1);
    assert_token_text(&c.token_drop.deny[0], "[PAD]");
    set_ok(&c, "token_drop.deny=3,'4',7");
    assert_int_equal(c.token_drop.n_deny, 3);
    assert_token_id(&c.token_drop.deny[0], 3);
    assert_token_text(&c.token_drop.deny[1], "4");
    assert_token_id(&c.token_drop.deny[2], 7);
    set_ok(&c, "token_drop.deny=[UNK], \"a,b\" ,'[X]',5");
    assert_int_equal(c.token_drop.n_deny, 4);
    assert_token_text(&c.token_drop.deny[0], "[UNK]");
    assert_token_text(&c.token_drop.deny[1], "a,b");
    assert_token_text(&c.token_drop.deny[2], "[X]");
    assert_token_id(&c.token_drop.deny[3], 5);
    set_ok(&c, "token_drop.deny=[8, 9]");
    assert_int_equal(c.token_drop.n_deny, 2);
    assert_token_id(&c.token_drop.deny[0], 8);
    assert_token_id(&c.token_drop.deny[1], 9);
    set_ok(&c, "token_drop.deny=\"a,b\"");
    assert_int_equal(c.token_drop.n_deny, 1);
    assert_token_text(&c.token_drop.deny[0], "a,b");
    set_ok(&c, "token_drop.deny=[]");
    assert_int_equal(c.token_drop.n_deny, 0);
    set_ok(&c, "token_drop.allow=");
    assert_int_equal(c.token_drop.n_allow, 0);
}

static void set_fails(const char *assignment, const char *key_in_message)
{
    td_config c, before;
    td_config_defaults(&c);
    td_config_defaults(&before);
    td_error err = {0};
    assert_int_equal(td_config_set(&c, assignment, &err), TD_ERR_CONFIG);
    char prefix[256];
    snprintf(prefix, sizeof(prefix), "--set %s: ", assignment);
    assert_contains(err.msg, prefix);
    assert_contains(err.msg, key_in_message);
    /* A failed override changes nothing. */
    assert_memory_equal(&c, &before, sizeof(c));
}

static void test_set_errors(void **state)
{
    (void)state;
    set_fails("model.hiden=3", "unknown key 'model.hiden'");
    set_fails("model.hiden=3", "did you mean 'model.hidden'");
    set_fails("modle.hidden=3", "'modle.hidden'");
    set_fails("model.hidden=abc", "model.hidden: expected an integer, got 'abc'");
    set_fails("model.hidden=1.5", "model.hidden");
    set_fails("model.hidden=", "model.hidden: expected an integer, got nothing");
    set_fails("model.hidden=[1, 2", "YAML syntax error");
    set_fails("train.seed=-1", "train.seed");
    set_fails("token_drop.enabled=yes", "token_drop.enabled: expected true or false");
    set_fails("model.hidden_act=relu", "gelu, gelu_tanh");
    set_fails("token_drop.deny=-3", "token_drop.deny");
    set_fails("token_drop.deny=a,,b", "token_drop.deny");
    set_fails("token_drop.allow=[CLS, 5]", "cannot read '[CLS'");
    set_fails("token_drop.allow=\"[CLS]", "token_drop.allow: unterminated quote");
    set_fails("model.hidden", "expected section.key=value");
    set_fails("hidden=3", "expected section.key=value");
}

/* Loads text from a file and expects TD_ERR_CONFIG with "path:line:" and
 * every one of the given fragments in the message. */
static void load_fails(const char *text, int line, const char *frag1, const char *frag2)
{
    const char *path = write_file(tu_tmpdir("config"), "bad.yaml", text);
    td_config c, before;
    td_config_defaults(&c);
    td_config_defaults(&before);
    td_error err = {0};
    assert_int_equal(td_config_load(&c, path, &err), TD_ERR_CONFIG);
    char where[4300];
    snprintf(where, sizeof(where), "%s:%d: ", path, line);
    assert_contains(err.msg, where);
    assert_contains(err.msg, frag1);
    if (frag2) assert_contains(err.msg, frag2);
    /* A bad file leaves the config as it was, even after valid keys. */
    assert_memory_equal(&c, &before, sizeof(c));
}

static void test_load_unknown_keys(void **state)
{
    (void)state;
    load_fails("model:\n  hidden: 8\n  hiddn: 4\n", 3, "unknown key 'model.hiddn'", "did you mean 'model.hidden'");
    load_fails("model:\n  seq_len: 8\n", 2, "unknown key 'model.seq_len'", "did you mean 'data.seq_len'");
    load_fails("model:\n  hidden: 8\n  zzzzzzzz: 4\n", 3, "unknown key 'model.zzzzzzzz'", "model keys are");
    load_fails("modle:\n  hidden: 8\n", 1, "unknown section 'modle'", "did you mean 'model'");
}

static void test_load_wrong_types(void **state)
{
    (void)state;
    load_fails("model:\n  hidden: abc\n", 2, "model.hidden: expected an integer, got 'abc'", NULL);
    load_fails("model:\n  layers: 1.5\n", 2, "model.layers: expected an integer", NULL);
    load_fails("model:\n  hidden: \"128\"\n", 2, "model.hidden: expected an integer", "quoted");
    load_fails("model:\n  hidden: 99999999999999999999\n", 2, "model.hidden", "out of range");
    load_fails("model:\n  hidden: [1, 2]\n", 2, "model.hidden: expected an integer, got a sequence", NULL);
    load_fails("train:\n  steps: 3\n  seed: -1\n", 3, "train.seed: expected a non-negative integer", NULL);
    load_fails("token_drop:\n  enabled: 1\n", 2, "token_drop.enabled: expected true or false", NULL);
    load_fails("optimizer:\n  lr: fast\n", 2, "optimizer.lr: expected a number, got 'fast'", NULL);
    load_fails("optimizer:\n  lr: 0x10\n", 2, "optimizer.lr: expected a number", NULL);
    load_fails("optimizer:\n  lr: 1e999\n", 2, "optimizer.lr", "out of range");
    load_fails("run:\n  dir: [a]\n", 2, "run.dir: expected a string, got a sequence", NULL);
    load_fails("token_drop:\n  deny: \"[PAD]\"\n", 2, "token_drop.deny: expected a sequence", NULL);
    load_fails("token_drop:\n  allow:\n    - \"[CLS]\"\n    - -4\n", 4, "token_drop.allow[1]", "non-negative");
    load_fails("token_drop:\n  allow:\n    - [CLS]\n", 3, "token_drop.allow[0]", "quote special tokens");
    load_fails("token_drop:\n  allow: [\"\"]\n", 2, "token_drop.allow[0]", "empty token");
    load_fails("model:\n  hidden\n", 2, "model: expected a mapping of keys", NULL);
}

static void test_load_bad_enums(void **state)
{
    (void)state;
    load_fails("model:\n  hidden_act: relu\n", 2, "model.hidden_act: expected one of gelu, gelu_tanh, got 'relu'",
               NULL);
    load_fails("token_drop:\n  importance: attention\n", 2, "token_drop.importance",
               "one of loss, frequency, random");
    load_fails("data:\n  masking: none\n", 2, "data.masking", "one of static, dynamic");
    load_fails("optimizer:\n  name: sgd\n", 2, "optimizer.name", "one of lamb, adamw");
}

static void test_load_syntax_and_structure(void **state)
{
    (void)state;
    load_fails("model:\n  hidden: 8\n  layers: [1, 2\ndata:\n  seq_len: 4\n", 4, "YAML syntax error", NULL);
    load_fails("model:\n  hidden: 8\n layers: 2\n", 3, "YAML syntax error", NULL);
    load_fails("model:\n  hidden: 8\n  hidden: 16\n", 3, "duplicate key 'model.hidden'", "first given at line 2");
    load_fails("model:\n  hidden: 8\ndata:\n  seq_len: 8\nmodel:\n  layers: 2\n", 5, "duplicate key 'model'",
               NULL);
    load_fails("- model\n- data\n", 1, "expected a mapping of sections", NULL);
    load_fails("model:\n  hidden: 8\n  vocab: \"\xc3\x28\"\n", 3, "cannot read the YAML text", "UTF-8");
    load_fails("model:\n  hidden: 8\n---\nmodel:\n  hidden: 9\n", 4, "second YAML document", NULL);
}

static void test_load_missing_file(void **state)
{
    (void)state;
    char path[4200];
    snprintf(path, sizeof(path), "%s/does-not-exist.yaml", tu_tmpdir("config"));
    td_config c;
    td_config_defaults(&c);
    td_error err = {0};
    assert_int_equal(td_config_load(&c, path, &err), TD_ERR_CONFIG);
    assert_contains(err.msg, path);
    assert_contains(err.msg, "cannot open");
    /* A directory is not a config file either. */
    assert_int_equal(td_config_load(&c, tu_tmpdir("config"), &err), TD_ERR_CONFIG);
    assert_contains(err.msg, "directory");
}

static void test_resolve(void **state)
{
    (void)state;
    td_config c;
    td_config_defaults(&c);
    c.data.seq_len = 100;
    c.model.layers = 6;
    td_config_resolve(&c);
    assert_int_equal(c.token_drop.keep, 50);
    assert_int_equal(c.token_drop.first_layer, 2);
    /* Explicit values are kept; resolving twice changes nothing. */
    td_config_defaults(&c);
    c.token_drop.keep = 17;
    c.token_drop.first_layer = 0;
    td_config_resolve(&c);
    td_config_resolve(&c);
    assert_int_equal(c.token_drop.keep, 17);
    assert_int_equal(c.token_drop.first_layer, 0);
}

/* A resolved default config with token dropping on, which validates. */
static void valid_config(td_config *c)
{
    td_config_defaults(c);
    c->token_drop.enabled = true;
    td_config_resolve(c);
    td_error err = {0};
    td_status st = td_config_validate(c, &err);
    if (st != TD_OK) fail_msg("%s", err.msg);
}

static void validate_fails(const td_config *c, const char *fragment)
{
    td_error err = {0};
    assert_int_equal(td_config_validate(c, &err), TD_ERR_CONFIG);
    assert_contains(err.msg, fragment);
}

static void test_validate(void **state)
{
    (void)state;
    td_config c;

    valid_config(&c);
    c.model.heads = 5;
    validate_fails(&c, "model.heads = 5: must divide model.hidden = 768");

    valid_config(&c);
    c.token_drop.keep = 129;
    validate_fails(&c, "token_drop.keep = 129: must lie in [1, 128]");
    c.token_drop.keep = 128; /* keep == seq_len is allowed */
    td_error err = {0};
    assert_int_equal(td_config_validate(&c, &err), TD_OK);
    c.token_drop.enabled = false; /* and unchecked without dropping */
    c.token_drop.keep = 1000;
    assert_int_equal(td_config_validate(&c, &err), TD_OK);

    valid_config(&c);
    c.token_drop.first_layer = 11;
    validate_fails(&c, "token_drop.first_layer = 11: must lie in [0, 10] (layers - 2)");
    c.token_drop.first_layer = -1;
    validate_fails(&c, "token_drop.first_layer = -1");

    /* schedules: their own keys set, the others' left at 0 */
    valid_config(&c);
    c.token_drop.schedule = TD_SCHEDULE_RAMP;
    validate_fails(&c, "token_drop.ramp_steps = 0: must be >= 1 with schedule: ramp");
    c.token_drop.ramp_steps = 500;
    assert_int_equal(td_config_validate(&c, &err), TD_OK);
    c.token_drop.full_every = 3;
    validate_fails(&c, "token_drop.full_every = 3: only used by schedule: interleave (schedule is ramp)");
    valid_config(&c);
    c.token_drop.schedule = TD_SCHEDULE_INTERLEAVE;
    c.token_drop.full_every = 1;
    validate_fails(&c, "token_drop.full_every = 1: must be >= 2 with schedule: interleave");
    c.token_drop.full_every = 2;
    assert_int_equal(td_config_validate(&c, &err), TD_OK);
    c.token_drop.ramp_steps = 10;
    validate_fails(&c, "token_drop.ramp_steps = 10: only used by schedule: ramp (schedule is interleave)");
    valid_config(&c);
    c.token_drop.full_last_steps = 1001;
    validate_fails(&c, "token_drop.full_last_steps = 1001: must lie in [0, 1000] (train.steps)");
    c.token_drop.full_last_steps = 1000;
    assert_int_equal(td_config_validate(&c, &err), TD_OK);

    valid_config(&c);
    c.model.layers = 1;
    c.token_drop.first_layer = 0;
    validate_fails(&c, "model.layers = 1: must be >= 2");

    valid_config(&c);
    c.train.micro_batch = 0;
    validate_fails(&c, "train.micro_batch = 0: must lie in [1, 65536]");

    valid_config(&c);
    c.model.hidden_dropout = 1.0;
    validate_fails(&c, "model.hidden_dropout = 1.0: must lie in [0, 1)");

    valid_config(&c);
    c.model.attention_dropout = -0.1;
    validate_fails(&c, "model.attention_dropout");

    valid_config(&c);
    c.data.seq_len = 1024;
    validate_fails(&c, "data.seq_len = 1024: must lie in [2, 512] (model.max_position)");

    valid_config(&c);
    c.data.max_pred = 129;
    validate_fails(&c, "data.max_pred");

    valid_config(&c);
    c.optimizer.lr = 0.0;
    validate_fails(&c, "optimizer.lr = 0.0: must be > 0");

    valid_config(&c);
    c.optimizer.beta2 = 1.0;
    validate_fails(&c, "optimizer.beta2");

    valid_config(&c);
    c.optimizer.eps = NAN;
    validate_fails(&c, "optimizer.eps = .nan: must be a finite number");

    valid_config(&c);
    c.token_drop.loss_beta = 1.0;
    validate_fails(&c, "token_drop.loss_beta");

    valid_config(&c);
    c.token_drop.deny[0].id = 30522;
    c.token_drop.deny[0].text[0] = '\0';
    validate_fails(&c, "token_drop.deny[0] = 30522");

    valid_config(&c);
    c.run.eval_batches = 0;
    validate_fails(&c, "run.eval_batches");

    valid_config(&c);
    c.train.threads = -1;
    validate_fails(&c, "train.threads");

    valid_config(&c);
    c.optimizer.warmup_steps = c.train.steps + 1; /* allowed */
    assert_int_equal(td_config_validate(&c, &err), TD_OK);
}

/* Sizes no machine can hold are config errors naming the key and its
 * range, from the file or from --set, never an assertion or a failed
 * allocation. */
static void test_size_limits(void **state)
{
    (void)state;
    static const struct {
        const char *set, *message;
    } cases[] = {
        {"model.layers=100000000", "model.layers = 100000000: must lie in [1, 1024]"},
        {"model.hidden=1000000000", "model.hidden = 1000000000: must lie in [1, 65536]"},
        {"model.vocab_size=4000000000", "model.vocab_size = 4000000000: must lie in [1, 16777216]"},
        {"model.intermediate=1000000000", "model.intermediate = 1000000000: must lie in [1, 262144]"},
        {"model.heads=100000", "model.heads = 100000: must lie in [1, 1024]"},
        {"model.max_position=100000000", "model.max_position = 100000000: must lie in [1, 65536]"},
        {"model.type_vocab=100000000", "model.type_vocab = 100000000: must lie in [1, 1024]"},
        {"data.seq_len=100000000", "data.seq_len = 100000000: must lie in [2, 65536]"},
        {"data.max_pred=100000000", "data.max_pred = 100000000: must lie in [1, 65536]"},
        {"train.micro_batch=100000000", "train.micro_batch = 100000000: must lie in [1, 65536]"},
        {"train.accumulation=100000000", "train.accumulation = 100000000: must lie in [1, 65536]"},
        {"train.threads=100000000", "train.threads = 100000000: must lie in [0, 4096]"},
        {"run.keep_checkpoints=100000000", "run.keep_checkpoints = 100000000: must lie in [1, 1000000]"},
        {"token_drop.keep=-3", "token_drop.keep = -3: must be >= 0"},
        {"token_drop.first_layer=-2", "token_drop.first_layer = -2: must be >= -1"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        td_config c;
        td_error err = {0};
        td_config_defaults(&c);
        assert_int_equal(td_config_set(&c, cases[i].set, &err), TD_ERR_CONFIG);
        assert_contains(err.msg, cases[i].set);
        assert_contains(err.msg, cases[i].message);
    }
    /* in a file, with its line; and in a config built in code, by validation */
    const char *path = write_file(tu_tmpdir("config"), "huge.yaml", "model:\n  hidden: 256\n  layers: 100000000\n");
    td_config c;
    td_error err = {0};
    td_config_defaults(&c);
    assert_int_equal(td_config_load(&c, path, &err), TD_ERR_CONFIG);
    assert_contains(err.msg, "huge.yaml:3: model.layers = 100000000: must lie in [1, 1024]");
    td_config_defaults(&c);
    c.model.layers = 100000000;
    td_config_resolve(&c);
    validate_fails(&c, "model.layers = 100000000: must lie in [1, 1024]");
    assert_int_equal(td_config_set(&c, "optimizer.lr=-1", &err), TD_ERR_CONFIG);
    assert_contains(err.msg, "optimizer.lr = -1.0: must be > 0");

    /* Each size within its range, but their products past any node (and
     * past int64 in bytes): refused with the keys to lower. */
    td_config_defaults(&c);
    c.model.hidden = 65536;
    c.model.heads = 1024;
    c.model.max_position = 65536;
    c.data.seq_len = 65536;
    c.train.micro_batch = 65536;
    td_config_resolve(&c);
    validate_fails(&c, "the model needs at least");
    validate_fails(&c, "any node has");
    validate_fails(&c, "lower train.micro_batch, data.seq_len or model.layers");

    /* Against a node's memory: BERT-base fits in 64 GiB, not in 1 GiB. */
    td_config_defaults(&c);
    td_config_resolve(&c);
    const double gib = 1024.0 * 1024.0 * 1024.0;
    assert_int_equal(td_config_check_memory(&c, 64 * gib, "this node", &err), TD_OK);
    assert_int_equal(td_config_check_memory(&c, 1 * gib, "this node has", &err), TD_ERR_CONFIG);
    assert_contains(err.msg, "more than this node has (1 GiB)");
    assert_contains(err.msg, "lower train.micro_batch"); /* the activations are the larger part */
    c.train.micro_batch = 1;
    assert_int_equal(td_config_check_memory(&c, 1 * gib, "this node has", &err), TD_ERR_CONFIG);
    assert_contains(err.msg, "lower model.hidden, model.layers");
    /* BERT-base: 110M parameters (SPEC section 1's tensors) */
    td_memory_estimate e = td_config_estimate_memory(&c);
    assert_true(e.n_params > 109e6 && e.n_params < 111e6);
}

/* The key table as docs/config.md shows it: every key named once, typed,
 * with a default that loads back and a description. */
static void test_key_docs(void **state)
{
    (void)state;
    int n = td_config_n_keys();
    assert_true(n > 50);
    char yaml[16384] = "";
    char section[64] = "";
    for (int i = 0; i < n; i++) {
        td_config_key_doc doc;
        td_config_describe_key(i, &doc);
        assert_non_null(strchr(doc.name, '.'));
        assert_non_null(doc.type);
        assert_non_null(doc.description);
        assert_true(strlen(doc.description) > 10);
        assert_true(strlen(doc.default_text) > 0);
        for (int j = 0; j < i; j++) {
            td_config_key_doc other;
            td_config_describe_key(j, &other);
            assert_string_not_equal(doc.name, other.name);
        }
        /* the defaults, written as the doc shows them, load back to td_config_defaults */
        const char *dot = strchr(doc.name, '.');
        if (strncmp(section, doc.name, (size_t)(dot - doc.name)) != 0 || section[dot - doc.name] != '\0') {
            snprintf(section, sizeof(section), "%.*s", (int)(dot - doc.name), doc.name);
            strcat(yaml, section);
            strcat(yaml, ":\n");
        }
        size_t len = strlen(yaml);
        snprintf(yaml + len, sizeof(yaml) - len, "  %s: %s\n", dot + 1, doc.default_text);
    }
    td_config defaults, loaded;
    td_config_defaults(&defaults);
    memset(&loaded, 0xff, sizeof(loaded));
    td_config_defaults(&loaded);
    td_error err = {0};
    assert_int_equal(td_config_load_text(&loaded, yaml, "docs", &err), TD_OK);
    assert_memory_equal(&defaults, &loaded, sizeof(defaults));

    td_config_key_doc doc;
    td_config_describe_key(2, &doc);
    assert_string_equal(doc.name, "model.hidden");
    assert_string_equal(doc.type, "integer");
    assert_string_equal(doc.default_text, "768");
    assert_string_equal(doc.range, "[1, 65536]");
    td_config_describe_key(9, &doc);
    assert_string_equal(doc.name, "model.hidden_dropout");
    assert_string_equal(doc.range, "[0, 1)");
}

static void test_enum_strings(void **state)
{
    (void)state;
    assert_string_equal(td_act_str(TD_ACT_GELU), "gelu");
    assert_string_equal(td_act_str(TD_ACT_GELU_TANH), "gelu_tanh");
    assert_string_equal(td_importance_str(TD_IMPORTANCE_LOSS), "loss");
    assert_string_equal(td_importance_str(TD_IMPORTANCE_FREQUENCY), "frequency");
    assert_string_equal(td_importance_str(TD_IMPORTANCE_RANDOM), "random");
    assert_string_equal(td_drop_schedule_str(TD_SCHEDULE_CONSTANT), "constant");
    assert_string_equal(td_drop_schedule_str(TD_SCHEDULE_RAMP), "ramp");
    assert_string_equal(td_drop_schedule_str(TD_SCHEDULE_INTERLEAVE), "interleave");
    assert_string_equal(td_masking_str(TD_MASKING_STATIC), "static");
    assert_string_equal(td_masking_str(TD_MASKING_DYNAMIC), "dynamic");
    assert_string_equal(td_optim_kind_str(TD_OPTIM_LAMB), "lamb");
    assert_string_equal(td_optim_kind_str(TD_OPTIM_ADAMW), "adamw");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_match_spec),
        cmocka_unit_test(test_load_full_file),
        cmocka_unit_test(test_partial_file_keeps_other_values),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_set_overrides),
        cmocka_unit_test(test_set_errors),
        cmocka_unit_test(test_load_unknown_keys),
        cmocka_unit_test(test_load_wrong_types),
        cmocka_unit_test(test_load_bad_enums),
        cmocka_unit_test(test_load_syntax_and_structure),
        cmocka_unit_test(test_load_missing_file),
        cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_size_limits),
        cmocka_unit_test(test_key_docs),
        cmocka_unit_test(test_enum_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
