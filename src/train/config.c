/* The experiment configuration (SPEC section 8). One table of keys holds,
 * per key, its place in td_config, type, default, range and description;
 * defaults, YAML loading, `--set` overrides, validation, the resolved
 * config.yaml and docs/config.md (tools/config_doc.c) all come from it, so a
 * new key is one table line. Checks across keys follow the table's in
 * td_config_validate. YAML is read with libyaml's document API, whose nodes
 * carry the line numbers that every error message starts with. */
#include "tokdrop/train/config.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "base/fs.h"
#include "tokdrop/base/utf8.h"

/* ---- the key table ------------------------------------------------------- */

typedef enum { KEY_STR, KEY_INT, KEY_U64, KEY_DOUBLE, KEY_BOOL, KEY_ENUM, KEY_TOKENS } key_type;

/* One configuration key: where it lives, its default, its range and what it
 * means. Loading, --set, validation, td_config_to_yaml and docs/config.md
 * (through td_config_key_doc) all read this table. */
typedef struct {
    const char *section;
    const char *name;
    key_type type;
    size_t offset;              /* of the value in td_config */
    size_t size;                /* KEY_STR: bytes of the buffer, NUL included */
    const char *const *choices; /* KEY_ENUM: names indexed by value, NULL-terminated */
    size_t count_offset;        /* KEY_TOKENS: the int holding the list length */
    const char *def;            /* the default, written as after --set key= */
    int64_t min, max;           /* KEY_INT: the allowed range, both ends included */
    double lo, hi;              /* KEY_DOUBLE: the allowed range, ends open when flagged */
    bool lo_open, hi_open;
    const char *doc;            /* one line for docs/config.md */
} key_spec;

/* Enum fields are read and written as int through memcpy. */
_Static_assert(sizeof(td_act) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(td_importance) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(td_masking) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(td_drop_schedule) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(td_optim_kind) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(td_precision) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(td_allreduce_mode) == sizeof(int), "enum fields are stored as int");

static const char *const act_names[] = {"gelu", "gelu_tanh", NULL};
static const char *const importance_names[] = {"loss", "frequency", "random", NULL};
static const char *const schedule_names[] = {"constant", "ramp", "interleave", NULL};
static const char *const masking_names[] = {"static", "dynamic", NULL};
static const char *const optim_names[] = {"lamb", "adamw", NULL};
static const char *const precision_names[] = {"fp32", "bf16", "auto", NULL};
static const char *const allreduce_names[] = {"blocking", "overlap", "alternate", NULL};

#define OFF(field) offsetof(td_config, field)
#define K_STR(sec, nm, field, dflt, text) \
    {.section = sec, .name = nm, .type = KEY_STR, .offset = OFF(field), \
     .size = sizeof(((td_config *)0)->field), .def = dflt, .doc = text}
#define K_INT(sec, nm, field, dflt, lo_, hi_, text) \
    {.section = sec, .name = nm, .type = KEY_INT, .offset = OFF(field), .def = dflt, .min = lo_, .max = hi_, \
     .doc = text}
#define K_U64(sec, nm, field, dflt, text) \
    {.section = sec, .name = nm, .type = KEY_U64, .offset = OFF(field), .def = dflt, .doc = text}
#define K_DBL(sec, nm, field, dflt, range, text) \
    {.section = sec, .name = nm, .type = KEY_DOUBLE, .offset = OFF(field), .def = dflt, range, .doc = text}
#define K_BOOL(sec, nm, field, dflt, text) \
    {.section = sec, .name = nm, .type = KEY_BOOL, .offset = OFF(field), .def = dflt, .doc = text}
#define K_ENUM(sec, nm, field, names, dflt, text) \
    {.section = sec, .name = nm, .type = KEY_ENUM, .offset = OFF(field), .choices = names, .def = dflt, \
     .doc = text}
#define K_TOKENS(sec, nm, field, count, dflt, text) \
    {.section = sec, .name = nm, .type = KEY_TOKENS, .offset = OFF(field), .count_offset = OFF(count), \
     .def = dflt, .doc = text}

/* Ranges of the number keys. */
#define ANY_FINITE .lo = -INFINITY, .hi = INFINITY
#define POSITIVE .lo = 0, .lo_open = true, .hi = INFINITY
#define NON_NEGATIVE .lo = 0, .hi = INFINITY
#define FRACTION .lo = 0, .hi = 1, .hi_open = true /* probabilities and decays */

/* Upper bounds of the sizes: far beyond any BERT (BERT-large is hidden 1024,
 * 24 layers, 16 heads, intermediate 4096), low enough that every product of
 * them fits int64; whether the model fits in memory is checked afterwards
 * from their products (td_config_validate, td_config_check_memory). */
#define NO_MAX INT64_MAX
#define MAX_VOCAB ((int64_t)1 << 24)
#define MAX_WIDTH ((int64_t)1 << 16)  /* hidden, positions, sequence length */
#define MAX_FFN ((int64_t)1 << 18)    /* intermediate */
#define MAX_COUNT ((int64_t)1 << 10)  /* layers, heads, type vocabulary */
#define MAX_BATCH ((int64_t)1 << 16)  /* micro_batch, accumulation */
#define MAX_THREADS ((int64_t)1 << 12)

/* keep and first_layer have no upper bound of their own: with dropping on,
 * td_config_validate holds them to data.seq_len and model.layers - 2, which
 * also bound what 0 and -1 resolve to.
 *
 * In the order of the resolved config.yaml (td_config_to_yaml) and of docs/config.md. */
static const key_spec keys[] = {
    K_STR("model", "vocab", model.vocab, "",
          "vocab.txt, one token a line; needed to resolve `allow`/`deny` strings and to export"),
    K_INT("model", "vocab_size", model.vocab_size, "30522", 1, MAX_VOCAB,
          "rows of the word embedding; must match `model.vocab` when both are given"),
    K_INT("model", "hidden", model.hidden, "768", 1, MAX_WIDTH, "hidden size; a multiple of `model.heads`"),
    K_INT("model", "layers", model.layers, "12", 1, MAX_COUNT,
          "encoder layers (at least 2 with `token_drop.enabled`)"),
    K_INT("model", "heads", model.heads, "12", 1, MAX_COUNT, "attention heads; must divide `model.hidden`"),
    K_INT("model", "intermediate", model.intermediate, "3072", 1, MAX_FFN, "feed-forward size"),
    K_INT("model", "max_position", model.max_position, "512", 1, MAX_WIDTH,
          "rows of the position embedding: the longest `data.seq_len` the model takes"),
    K_INT("model", "type_vocab", model.type_vocab, "2", 1, MAX_COUNT,
          "rows of the token type (segment) embedding"),
    K_ENUM("model", "hidden_act", model.hidden_act, act_names, "gelu",
           "feed-forward activation: `gelu` (erf) or `gelu_tanh` (tanh approximation)"),
    K_DBL("model", "hidden_dropout", model.hidden_dropout, "0.1", FRACTION,
          "dropout probability of the embeddings, attention output and feed-forward output"),
    K_DBL("model", "attention_dropout", model.attention_dropout, "0.1", FRACTION,
          "dropout probability of the attention probabilities"),
    K_DBL("model", "initializer_range", model.initializer_range, "0.02", POSITIVE,
          "standard deviation of the random initial weights"),
    K_STR("model", "init", model.init, "",
          "weights to start from: a safetensors file in Hugging Face names or a tokdrop checkpoint; "
          "`\"\"` = random init"),
    K_BOOL("token_drop", "enabled", token_drop.enabled, "false",
           "token dropping: the middle layers see only the `keep` most important tokens"),
    K_INT("token_drop", "keep", token_drop.keep, "0", 0, NO_MAX,
          "tokens kept per sequence, at most `data.seq_len`; 0 = `data.seq_len / 2`"),
    K_INT("token_drop", "first_layer", token_drop.first_layer, "-1", -1, NO_MAX,
          "first layer that sees only the kept tokens, at most `model.layers - 2`; -1 = `model.layers / 2 - 1`"),
    K_ENUM("token_drop", "importance", token_drop.importance, importance_names, "loss",
           "which tokens are kept: `loss` (running masked-LM loss of each token), `frequency` (rare ones) "
           "or `random`"),
    K_DBL("token_drop", "loss_init", token_drop.loss_init, "10.0", ANY_FINITE,
          "`importance: loss`: the starting importance of every token"),
    K_DBL("token_drop", "loss_beta", token_drop.loss_beta, "0.995", FRACTION,
          "`importance: loss`: decay of the running average of each token's loss"),
    K_TOKENS("token_drop", "allow", token_drop.allow, token_drop.n_allow,
             "[\"[UNK]\", \"[CLS]\", \"[SEP]\", \"[MASK]\"]",
             "tokens always kept: strings (looked up in `model.vocab`) or integer ids"),
    K_TOKENS("token_drop", "deny", token_drop.deny, token_drop.n_deny, "[\"[PAD]\"]",
             "tokens dropped first: strings (looked up in `model.vocab`) or integer ids"),
    K_ENUM("token_drop", "schedule", token_drop.schedule, schedule_names, "constant",
           "how many tokens a step keeps: `constant` (`keep`), `ramp` (from `keep` to all) or `interleave` "
           "(some steps full)"),
    K_INT("token_drop", "ramp_steps", token_drop.ramp_steps, "0", 0, NO_MAX,
          "`schedule: ramp` (and only then, >= 1): the kept count grows linearly from `keep` to "
          "`data.seq_len` over these steps"),
    K_INT("token_drop", "full_every", token_drop.full_every, "0", 0, NO_MAX,
          "`schedule: interleave` (and only then, >= 2): every N-th step runs full sequences"),
    K_INT("token_drop", "full_last_steps", token_drop.full_last_steps, "0", 0, NO_MAX,
          "any schedule: the last N steps run full sequences; at most `train.steps`"),
    K_STR("data", "train", data.train, "data/train/*.h5", "glob of the training shards (HDF5)"),
    K_STR("data", "eval", data.eval, "", "glob of the held-out shards; `\"\"` = no evaluation"),
    K_INT("data", "seq_len", data.seq_len, "128", 2, MAX_WIDTH,
          "positions per sequence, as in the shards; at most `model.max_position`"),
    K_INT("data", "max_pred", data.max_pred, "20", 1, MAX_WIDTH,
          "masked predictions per sequence, as in the shards; at most `data.seq_len`"),
    K_ENUM("data", "masking", data.masking, masking_names, "static",
           "`static` (the masks stored in the shards) or `dynamic` (15% drawn anew at read time from the seed, "
           "80/10/10)"),
    K_INT("data", "memory_mb", data.memory_mb, "0", 0, (int64_t)1 << 30,
          "MiB per rank for the window of streamed shards; 0 = a default sized for the node"),
    K_INT("train", "steps", train.steps, "1000", 1, NO_MAX, "optimizer steps of the run"),
    K_INT("train", "micro_batch", train.micro_batch, "32", 1, MAX_BATCH, "sequences per rank per micro-step"),
    K_INT("train", "accumulation", train.accumulation, "1", 1, MAX_BATCH, "micro-steps per optimizer step"),
    K_U64("train", "seed", train.seed, "12345",
          "seed of every random choice: initial weights, shuffling, masking, dropout"),
    K_INT("train", "threads", train.threads, "0", 0, MAX_THREADS,
          "threads per rank; 0 = the cores the rank may use (its CPU binding, else cores / ranks on the node)"),
    K_ENUM("train", "precision", train.precision, precision_names, "fp32",
           "matrix products in `fp32`, `bf16` (parameters stay fp32), or `auto` (bf16 where the CPU has bf16 "
           "instructions)"),
    K_ENUM("train", "allreduce", train.allreduce, allreduce_names, "blocking",
           "gradient sums: `blocking` after the backward, `overlap` bucket by bucket during it, or `alternate` "
           "(the two by turns, to measure the overlap; same results)"),
    K_INT("train", "max_bad_steps", train.max_bad_steps, "3", 1, NO_MAX,
          "a step whose loss or gradient norm is not finite is skipped (no update); this many in a row stop "
          "the run, and the checkpoint written just before them is set aside"),
    K_ENUM("optimizer", "name", optimizer.name, optim_names, "lamb", "`lamb` or `adamw`"),
    K_DBL("optimizer", "lr", optimizer.lr, "0.001", POSITIVE, "peak learning rate, reached at the end of warmup"),
    K_DBL("optimizer", "end_lr", optimizer.end_lr, "0.0", NON_NEGATIVE, "learning rate at the last step"),
    K_INT("optimizer", "warmup_steps", optimizer.warmup_steps, "100", 0, NO_MAX,
          "steps of linear warmup from 0 to `lr`"),
    K_DBL("optimizer", "power", optimizer.power, "1.0", POSITIVE,
          "exponent of the polynomial decay from `lr` to `end_lr` after warmup (1 = linear)"),
    K_DBL("optimizer", "beta1", optimizer.beta1, "0.9", FRACTION, "decay of the first moment"),
    K_DBL("optimizer", "beta2", optimizer.beta2, "0.999", FRACTION, "decay of the second moment"),
    K_DBL("optimizer", "eps", optimizer.eps, "1.0e-6", POSITIVE, "added to the root of the second moment"),
    K_DBL("optimizer", "weight_decay", optimizer.weight_decay, "0.01", NON_NEGATIVE,
          "decoupled weight decay (not on biases and LayerNorm weights)"),
    K_DBL("optimizer", "max_grad_norm", optimizer.max_grad_norm, "1.0", POSITIVE,
          "the global gradient norm is clipped to this"),
    K_STR("run", "dir", run.dir, "runs/default",
          "run directory: the resolved config.yaml, metrics.jsonl, eval.jsonl and checkpoints/"),
    K_INT("run", "log_every", run.log_every, "10", 1, NO_MAX, "steps between progress lines and metrics.jsonl rows"),
    K_INT("run", "eval_every", run.eval_every, "0", 0, NO_MAX,
          "steps between evaluations on `data.eval`; 0 = only at the end"),
    K_INT("run", "eval_batches", run.eval_batches, "20", 1, (int64_t)1 << 30,
          "an evaluation reads `eval_batches x train.micro_batch` sequences of `data.eval`"),
    K_INT("run", "checkpoint_every", run.checkpoint_every, "500", 0, NO_MAX,
          "steps between checkpoints; 0 = only at the end"),
    K_INT("run", "keep_checkpoints", run.keep_checkpoints, "3", 1, 1000000,
          "the newest checkpoints kept in `run.dir/checkpoints`; older ones are deleted"),
};
#define N_KEYS ((int)(sizeof(keys) / sizeof(keys[0])))

static const char *const sections[] = {"model", "token_drop", "data", "train", "optimizer", "run"};
#define N_SECTIONS ((int)(sizeof(sections) / sizeof(sections[0])))

static void *field_of(td_config *cfg, const key_spec *key) { return (char *)cfg + key->offset; }

static const void *const_field_of(const td_config *cfg, const key_spec *key)
{
    return (const char *)cfg + key->offset;
}

static int enum_count(const char *const *names)
{
    int n = 0;
    while (names[n]) n++;
    return n;
}

static const char *enum_name(const char *const *names, int value)
{
    if (value < 0 || value >= enum_count(names)) return "unknown";
    return names[value];
}

const char *td_act_str(td_act act) { return enum_name(act_names, (int)act); }
const char *td_importance_str(td_importance importance) { return enum_name(importance_names, (int)importance); }
const char *td_precision_str(td_precision precision) { return enum_name(precision_names, (int)precision); }
const char *td_drop_schedule_str(td_drop_schedule schedule) { return enum_name(schedule_names, (int)schedule); }
const char *td_masking_str(td_masking masking) { return enum_name(masking_names, (int)masking); }
const char *td_optim_kind_str(td_optim_kind kind) { return enum_name(optim_names, (int)kind); }

/* ---- resolution ---------------------------------------------------------- */

static void set_text(char *dst, size_t size, const char *src)
{
    /* Zero the whole buffer so that configs compare equal with memcmp. */
    memset(dst, 0, size);
    size_t n = strlen(src);
    TD_ASSERT(n < size);
    memcpy(dst, src, n);
}

void td_config_resolve(td_config *cfg)
{
    if (cfg->token_drop.keep == 0) cfg->token_drop.keep = cfg->data.seq_len / 2;
    if (cfg->token_drop.first_layer == -1) cfg->token_drop.first_layer = cfg->model.layers / 2 - 1;
}

/* ---- key lookup and suggestions ------------------------------------------ */

static const key_spec *find_key(const char *section, const char *name)
{
    for (int i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0) return &keys[i];
    return NULL;
}

static bool is_section(const char *name)
{
    for (int i = 0; i < N_SECTIONS; i++)
        if (strcmp(sections[i], name) == 0) return true;
    return false;
}

/* Levenshtein distance, for "did you mean"; long strings are never close. */
static int edit_distance(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    if (na > 63 || nb > 63) return 1000;
    int row[64];
    for (size_t j = 0; j <= nb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb];
}

static bool close_enough(int distance, const char *typed)
{
    int limit = (int)strlen(typed) / 3;
    return distance <= (limit > 2 ? limit : 2);
}

/* Writes " (did you mean 'x.y'?)" or, with nothing close, the section's keys. */
static void key_hint(char *out, size_t size, const char *section, const char *name)
{
    char typed[160];
    snprintf(typed, sizeof(typed), "%s.%s", section, name);
    const key_spec *best = NULL;
    int best_d = 1000;
    for (int i = 0; i < N_KEYS; i++) {
        char full[160];
        snprintf(full, sizeof(full), "%s.%s", keys[i].section, keys[i].name);
        int d = edit_distance(typed, full);
        /* The right key in the wrong section (model.seq_len for data.seq_len). */
        if (strcmp(keys[i].name, name) == 0 && d > 1) d = 1;
        if (d < best_d) {
            best_d = d;
            best = &keys[i];
        }
    }
    if (best && close_enough(best_d, typed)) {
        snprintf(out, size, " (did you mean '%s.%s'?)", best->section, best->name);
        return;
    }
    size_t len = (size_t)snprintf(out, size, "; the %s keys are", section);
    const char *sep = " ";
    for (int i = 0; i < N_KEYS && len < size; i++) {
        if (strcmp(keys[i].section, section) != 0) continue;
        len += (size_t)snprintf(out + len, size - len, "%s%s", sep, keys[i].name);
        sep = ", ";
    }
}

static void section_hint(char *out, size_t size, const char *name)
{
    int best = -1, best_d = 1000;
    for (int i = 0; i < N_SECTIONS; i++) {
        int d = edit_distance(name, sections[i]);
        if (d < best_d) {
            best_d = d;
            best = i;
        }
    }
    if (best >= 0 && close_enough(best_d, name)) {
        snprintf(out, size, " (did you mean '%s'?)", sections[best]);
        return;
    }
    size_t len = (size_t)snprintf(out, size, "; the sections are");
    for (int i = 0; i < N_SECTIONS && len < size; i++)
        len += (size_t)snprintf(out + len, size - len, "%s%s", i ? ", " : " ", sections[i]);
}

/* ---- error messages ------------------------------------------------------ */

/* Where a value came from: a YAML file (messages start "path:line: ") or a
 * --set override (messages start "--set a.b=v: "). */
typedef struct {
    const char *path;
    const char *assignment;
    td_error *err;
} source;

__attribute__((format(printf, 3, 4))) static td_status fail_line(const source *src, size_t line,
                                                                 const char *fmt, ...)
{
    char body[TD_ERROR_MSG_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    if (!src->path) return td_error_set(src->err, TD_ERR_CONFIG, "--set %s: %s", src->assignment, body);
    if (line == 0) return td_error_set(src->err, TD_ERR_CONFIG, "%s: %s", src->path, body);
    return td_error_set(src->err, TD_ERR_CONFIG, "%s:%zu: %s", src->path, line, body);
}

static size_t line_of(const yaml_node_t *node) { return node ? node->start_mark.line + 1 : 0; }

static const char *scalar_text(const yaml_node_t *node) { return (const char *)node->data.scalar.value; }

static bool is_plain(const yaml_node_t *node)
{
    return node->type == YAML_SCALAR_NODE && node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

/* YAML's null: an empty plain value, ~ or null. */
static bool is_null(const yaml_node_t *node)
{
    if (!node) return true;
    if (!is_plain(node)) return false;
    const char *s = scalar_text(node);
    return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
           strcmp(s, "NULL") == 0;
}

/* What the user wrote, for "got ...": long values are cut. */
static void describe(char *out, size_t size, const yaml_node_t *node)
{
    if (!node || (is_plain(node) && scalar_text(node)[0] == '\0')) {
        snprintf(out, size, "nothing");
    } else if (node->type == YAML_SEQUENCE_NODE) {
        snprintf(out, size, "a sequence");
    } else if (node->type == YAML_MAPPING_NODE) {
        snprintf(out, size, "a mapping");
    } else {
        const char *s = scalar_text(node);
        const char *cut = strlen(s) > 60 ? "..." : "";
        if (is_plain(node))
            snprintf(out, size, "'%.60s%s'", s, cut);
        else
            snprintf(out, size, "\"%.60s%s\" (quoted, so a string)", s, cut);
    }
}

static void expectation(char *out, size_t size, const key_spec *key)
{
    switch (key->type) {
    case KEY_STR: snprintf(out, size, "a string"); return;
    case KEY_INT: snprintf(out, size, "an integer"); return;
    case KEY_U64: snprintf(out, size, "a non-negative integer below 2^64"); return;
    case KEY_DOUBLE: snprintf(out, size, "a number"); return;
    case KEY_BOOL: snprintf(out, size, "true or false"); return;
    case KEY_TOKENS:
        snprintf(out, size, "a sequence of token strings or integer ids, e.g. [\"[CLS]\", 5]");
        return;
    case KEY_ENUM: {
        size_t len = (size_t)snprintf(out, size, "one of");
        for (int i = 0; key->choices[i] && len < size; i++)
            len += (size_t)snprintf(out + len, size - len, "%s%s", i ? ", " : " ", key->choices[i]);
        return;
    }
    }
}

static td_status fail_type(const source *src, const key_spec *key, const yaml_node_t *node)
{
    char want[256], got[128];
    expectation(want, sizeof(want), key);
    describe(got, sizeof(got), node);
    return fail_line(src, line_of(node), "%s.%s: expected %s, got %s", key->section, key->name, want, got);
}

/* ---- scalar syntax ------------------------------------------------------- */

static bool all_digits(const char *s)
{
    if (*s == '\0') return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return false;
    return true;
}

typedef enum { NUM_OK, NUM_SYNTAX, NUM_RANGE } num_result;

/* YAML core-schema decimal integers: [-+]?[0-9]+. */
static num_result parse_int64(const char *s, int64_t *out)
{
    const char *digits = (*s == '-' || *s == '+') ? s + 1 : s;
    if (!all_digits(digits)) return NUM_SYNTAX;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno == ERANGE) return NUM_RANGE;
    *out = (int64_t)v;
    return NUM_OK;
}

static num_result parse_uint64(const char *s, uint64_t *out)
{
    const char *digits = (*s == '+') ? s + 1 : s;
    if (!all_digits(digits)) return NUM_SYNTAX;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(digits, &end, 10);
    if (errno == ERANGE) return NUM_RANGE;
    *out = (uint64_t)v;
    return NUM_OK;
}

/* YAML 1.2 core-schema floats (1, 1.5, .5, 1e-6, 1.0e-6, .inf, -.inf, .nan);
 * strtod alone would also take hex floats, "inf" and "nan". */
static num_result parse_double(const char *s, double *out)
{
    const char *p = (*s == '-' || *s == '+') ? s + 1 : s;
    if (strcmp(p, ".inf") == 0 || strcmp(p, ".Inf") == 0 || strcmp(p, ".INF") == 0) {
        *out = *s == '-' ? -HUGE_VAL : HUGE_VAL;
        return NUM_OK;
    }
    if (strcmp(s, ".nan") == 0 || strcmp(s, ".NaN") == 0 || strcmp(s, ".NAN") == 0) {
        *out = NAN;
        return NUM_OK;
    }
    int n_mantissa = 0;
    while (*p >= '0' && *p <= '9') p++, n_mantissa++;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') p++, n_mantissa++;
    }
    if (n_mantissa == 0) return NUM_SYNTAX;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '-' || *p == '+') p++;
        if (!all_digits(p)) return NUM_SYNTAX;
        p += strlen(p);
    }
    if (*p != '\0') return NUM_SYNTAX;
    errno = 0;
    double v = strtod(s, NULL);
    /* Underflow to a denormal or zero is fine; overflow is not. */
    if (errno == ERANGE && isinf(v)) return NUM_RANGE;
    *out = v;
    return NUM_OK;
}

/* The shortest %g form that reads back to the same double, always with a
 * '.' or an exponent so that YAML sees a float; .inf/.nan as YAML spells them. */
static void format_double(char *out, size_t size, double v)
{
    if (isnan(v)) {
        snprintf(out, size, ".nan");
        return;
    }
    if (isinf(v)) {
        snprintf(out, size, v < 0 ? "-.inf" : ".inf");
        return;
    }
    /* Starting at the number of integer digits prints 10 as "10", not "1e+01". */
    double magnitude = fabs(v);
    int start = magnitude >= 1 ? (int)floor(log10(magnitude)) + 1 : 1;
    if (start > 17) start = 17;
    for (int precision = start; precision <= 17; precision++) {
        snprintf(out, size, "%.*g", precision, v);
        if (strtod(out, NULL) == v) break;
    }
    if (!strpbrk(out, ".e")) {
        size_t len = strlen(out);
        if (len + 2 < size) memcpy(out + len, ".0", 3);
    }
}

/* ---- applying one value -------------------------------------------------- */

static td_status set_string(td_config *cfg, const key_spec *key, const char *text, size_t len,
                            const yaml_node_t *node, const source *src)
{
    if (strlen(text) != len)
        return fail_line(src, line_of(node), "%s.%s: the string contains a NUL character", key->section,
                         key->name);
    size_t bad = td_utf8_validate((const unsigned char *)text, len);
    if (bad != len) /* from --set: a YAML file is UTF-8, and config.yaml must read back */
        return fail_line(src, line_of(node), "%s.%s: the string is not UTF-8 (byte 0x%02x at byte %zu)",
                         key->section, key->name, (unsigned char)text[bad], bad + 1);
    if (len >= key->size)
        return fail_line(src, line_of(node), "%s.%s: the string is %zu bytes long, at most %zu allowed",
                         key->section, key->name, len, key->size - 1);
    set_text(field_of(cfg, key), key->size, text);
    return TD_OK;
}

/* One allow/deny entry: a plain integer is an id, anything else the token text. */
static td_status add_token(td_token_ref *list, int *n, const key_spec *key, const char *text, size_t len,
                           bool plain, const yaml_node_t *node, const source *src)
{
    if (*n >= TD_TOKEN_LIST_MAX)
        return fail_line(src, line_of(node), "%s.%s: more than %d entries", key->section, key->name,
                         TD_TOKEN_LIST_MAX);
    td_token_ref *ref = &list[*n];
    memset(ref, 0, sizeof(*ref));
    int64_t id;
    num_result r = plain ? parse_int64(text, &id) : NUM_SYNTAX;
    if (r == NUM_RANGE || (r == NUM_OK && id < 0))
        return fail_line(src, line_of(node), "%s.%s[%d]: token id %s must be a non-negative integer",
                         key->section, key->name, *n, text);
    if (r == NUM_OK) {
        ref->id = id;
    } else {
        if (len == 0 || strlen(text) != len)
            return fail_line(src, line_of(node), "%s.%s[%d]: empty token string, or one with a NUL character",
                             key->section, key->name, *n);
        size_t bad = td_utf8_validate((const unsigned char *)text, len);
        if (bad != len)
            return fail_line(src, line_of(node), "%s.%s[%d]: the token is not UTF-8 (byte 0x%02x at byte %zu)",
                             key->section, key->name, *n, (unsigned char)text[bad], bad + 1);
        if (len >= TD_TOKEN_TEXT_LEN)
            return fail_line(src, line_of(node), "%s.%s[%d]: token '%.40s...' is %zu bytes long, at most %d allowed",
                             key->section, key->name, *n, text, len, TD_TOKEN_TEXT_LEN - 1);
        memcpy(ref->text, text, len);
        ref->id = -1;
    }
    (*n)++;
    return TD_OK;
}

static void set_tokens(td_config *cfg, const key_spec *key, const td_token_ref *list, int n)
{
    td_token_ref *dst = field_of(cfg, key);
    memset(dst, 0, sizeof(td_token_ref) * TD_TOKEN_LIST_MAX);
    memcpy(dst, list, sizeof(td_token_ref) * (size_t)n);
    memcpy((char *)cfg + key->count_offset, &n, sizeof(n));
}

/* A YAML sequence of scalars (or null, for an empty list). */
static td_status apply_token_sequence(td_config *cfg, const key_spec *key, yaml_document_t *doc,
                                      const yaml_node_t *node, const source *src)
{
    td_token_ref list[TD_TOKEN_LIST_MAX];
    int n = 0;
    if (!is_null(node)) {
        if (node->type != YAML_SEQUENCE_NODE) return fail_type(src, key, node);
        for (yaml_node_item_t *it = node->data.sequence.items.start; it < node->data.sequence.items.top; it++) {
            const yaml_node_t *item = yaml_document_get_node(doc, *it);
            if (item->type != YAML_SCALAR_NODE) {
                char got[128];
                describe(got, sizeof(got), item);
                return fail_line(src, line_of(item),
                                 "%s.%s[%d]: expected a token string or integer id, got %s "
                                 "(quote special tokens: \"[CLS]\")",
                                 key->section, key->name, n, got);
            }
            td_status st = add_token(list, &n, key, scalar_text(item), item->data.scalar.length, is_plain(item),
                                     item, src);
            if (st != TD_OK) return st;
        }
    }
    set_tokens(cfg, key, list, n);
    return TD_OK;
}

static td_status check_key(const td_config *cfg, const key_spec *key, td_error *err);

static td_status apply_scalar(td_config *cfg, const key_spec *key, const yaml_node_t *node, const source *src)
{
    if (!node || node->type != YAML_SCALAR_NODE) return fail_type(src, key, node);
    const char *text = scalar_text(node);
    size_t len = node->data.scalar.length;
    bool plain = is_plain(node);
    void *field = field_of(cfg, key);
    num_result r = NUM_SYNTAX;

    switch (key->type) {
    case KEY_STR:
        if (is_null(node)) text = "", len = 0;
        return set_string(cfg, key, text, len, node, src);
    case KEY_INT: {
        int64_t v;
        if (plain) r = parse_int64(text, &v);
        if (r == NUM_OK) memcpy(field, &v, sizeof(v));
        break;
    }
    case KEY_U64: {
        uint64_t v;
        if (plain) r = parse_uint64(text, &v);
        if (r == NUM_OK) memcpy(field, &v, sizeof(v));
        break;
    }
    case KEY_DOUBLE: {
        double v;
        if (plain) r = parse_double(text, &v);
        if (r == NUM_OK) memcpy(field, &v, sizeof(v));
        break;
    }
    case KEY_BOOL: {
        /* YAML 1.2 core booleans only: "yes"/"on" are too easy to misread. */
        bool is_true = strcmp(text, "true") == 0 || strcmp(text, "True") == 0 || strcmp(text, "TRUE") == 0;
        bool is_false = strcmp(text, "false") == 0 || strcmp(text, "False") == 0 || strcmp(text, "FALSE") == 0;
        if (!plain || !(is_true || is_false)) return fail_type(src, key, node);
        bool v = is_true;
        memcpy(field, &v, sizeof(v));
        return TD_OK;
    }
    case KEY_ENUM:
        for (int i = 0; key->choices[i]; i++) {
            if (strcmp(text, key->choices[i]) == 0) {
                memcpy(field, &i, sizeof(i));
                return TD_OK;
            }
        }
        return fail_type(src, key, node);
    case KEY_TOKENS:
        TD_ASSERT(!"token lists are applied by apply_token_sequence");
    }
    if (r == NUM_RANGE)
        return fail_line(src, line_of(node), "%s.%s: the number '%.60s' is out of range", key->section,
                         key->name, text);
    if (r != NUM_OK) return fail_type(src, key, node);
    /* The key's own range, here where the line is known (validation checks it again). */
    td_error range_err;
    if (check_key(cfg, key, &range_err) != TD_OK) return fail_line(src, line_of(node), "%s", range_err.msg);
    return TD_OK;
}

static td_status apply_key(td_config *cfg, const key_spec *key, yaml_document_t *doc, const yaml_node_t *node,
                           const source *src)
{
    if (key->type == KEY_TOKENS) return apply_token_sequence(cfg, key, doc, node, src);
    return apply_scalar(cfg, key, node, src);
}

/* ---- YAML files ---------------------------------------------------------- */

static td_status syntax_error(const yaml_parser_t *parser, const source *src)
{
    const char *problem = parser->problem ? parser->problem : "unknown error";
    if (parser->error == YAML_MEMORY_ERROR) return fail_line(src, 0, "out of memory while reading YAML");
    if (parser->error == YAML_READER_ERROR)
        return fail_line(src, 0, "cannot read the YAML text at byte %zu: %s", parser->problem_offset, problem);
    char context[160] = "";
    if (parser->context)
        snprintf(context, sizeof(context), " (%s at line %zu)", parser->context, parser->context_mark.line + 1);
    return fail_line(src, parser->problem_mark.line + 1, "YAML syntax error: %s%s", problem, context);
}

/* Loads the stream's one document into doc (whose root is NULL for an empty
 * stream); doc needs yaml_document_delete only when this returns TD_OK. */
static td_status load_document(yaml_document_t *doc, yaml_parser_t *parser, const source *src)
{
    if (!yaml_parser_load(parser, doc)) return syntax_error(parser, src);
    if (!yaml_document_get_root_node(doc)) return TD_OK;
    yaml_document_t extra;
    td_status st = TD_OK;
    if (!yaml_parser_load(parser, &extra)) {
        st = syntax_error(parser, src);
    } else {
        yaml_node_t *extra_root = yaml_document_get_root_node(&extra);
        /* A trailing "---" gives an empty document, which is harmless. */
        if (extra_root && !is_null(extra_root))
            st = fail_line(src, line_of(extra_root), "a second YAML document; a config is one mapping");
        yaml_document_delete(&extra);
    }
    if (st != TD_OK) yaml_document_delete(doc);
    return st;
}

/* The key of a mapping pair as a name, refusing complex and duplicate keys. */
static td_status pair_name(const char **name, yaml_document_t *doc, const yaml_node_t *map,
                           const yaml_node_pair_t *pair, const char *section, const source *src)
{
    const yaml_node_t *key = yaml_document_get_node(doc, pair->key);
    if (key->type != YAML_SCALAR_NODE)
        return fail_line(src, line_of(key), "%s%sexpected a key name, got a %s", section ? section : "",
                         section ? ": " : "", key->type == YAML_MAPPING_NODE ? "mapping" : "sequence");
    *name = scalar_text(key);
    for (const yaml_node_pair_t *prev = map->data.mapping.pairs.start; prev < pair; prev++) {
        const yaml_node_t *prev_key = yaml_document_get_node(doc, prev->key);
        if (prev_key->type == YAML_SCALAR_NODE && strcmp(scalar_text(prev_key), *name) == 0)
            return fail_line(src, line_of(key), "duplicate key '%s%s%s' (first given at line %zu)",
                             section ? section : "", section ? "." : "", *name, line_of(prev_key));
    }
    return TD_OK;
}

static td_status apply_section(td_config *cfg, yaml_document_t *doc, const char *section, const yaml_node_t *map,
                               const source *src)
{
    if (is_null(map)) return TD_OK; /* "model:" with nothing under it */
    if (map->type != YAML_MAPPING_NODE) {
        char got[128];
        describe(got, sizeof(got), map);
        return fail_line(src, line_of(map), "%s: expected a mapping of keys, got %s", section, got);
    }
    for (yaml_node_pair_t *pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; pair++) {
        const char *name;
        td_status st = pair_name(&name, doc, map, pair, section, src);
        if (st != TD_OK) return st;
        const key_spec *key = find_key(section, name);
        if (!key) {
            char hint[512];
            key_hint(hint, sizeof(hint), section, name);
            return fail_line(src, line_of(yaml_document_get_node(doc, pair->key)), "unknown key '%s.%.80s'%s",
                             section, name, hint);
        }
        st = apply_key(cfg, key, doc, yaml_document_get_node(doc, pair->value), src);
        if (st != TD_OK) return st;
    }
    return TD_OK;
}

static td_status apply_root(td_config *cfg, yaml_document_t *doc, const yaml_node_t *root, const source *src)
{
    if (root->type != YAML_MAPPING_NODE) {
        char got[128];
        describe(got, sizeof(got), root);
        return fail_line(src, line_of(root), "expected a mapping of sections (model, token_drop, data, train, "
                                             "optimizer, run), got %s", got);
    }
    for (yaml_node_pair_t *pair = root->data.mapping.pairs.start; pair < root->data.mapping.pairs.top; pair++) {
        const char *name;
        td_status st = pair_name(&name, doc, root, pair, NULL, src);
        if (st != TD_OK) return st;
        if (!is_section(name)) {
            char hint[256];
            section_hint(hint, sizeof(hint), name);
            return fail_line(src, line_of(yaml_document_get_node(doc, pair->key)), "unknown section '%.80s'%s",
                             name, hint);
        }
        st = apply_section(cfg, doc, name, yaml_document_get_node(doc, pair->value), src);
        if (st != TD_OK) return st;
    }
    return TD_OK;
}

/* Applies the YAML read from f (named name in messages) on top of cfg;
 * cfg is left untouched on an error. */
static td_status load_stream(td_config *cfg, FILE *f, const char *name, td_error *err)
{
    source src = {name, NULL, err};
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return td_error_set(err, TD_ERR_NOMEM, "%s: cannot initialise the YAML parser", name);
    yaml_parser_set_input_file(&parser, f);
    yaml_document_t doc;
    td_status st = load_document(&doc, &parser, &src);
    if (st != TD_OK && parser.error == YAML_READER_ERROR) {
        /* libyaml knows only the byte offset of bad encoding; give the line. */
        size_t line = 1;
        rewind(f);
        for (size_t i = 0; i < parser.problem_offset; i++) {
            int ch = fgetc(f);
            if (ch == EOF) break;
            line += ch == '\n';
        }
        st = fail_line(&src, line, "cannot read the YAML text: %s (byte %zu)",
                       parser.problem ? parser.problem : "bad encoding", parser.problem_offset);
    }
    if (st == TD_OK) {
        /* An empty file (or only comments) leaves cfg as it is. */
        const yaml_node_t *root = yaml_document_get_root_node(&doc);
        if (root) {
            /* Work on a copy so that a bad file leaves cfg untouched. */
            td_config *work = td_xmalloc(sizeof(*work));
            memcpy(work, cfg, sizeof(*work));
            st = apply_root(work, &doc, root, &src);
            if (st == TD_OK) memcpy(cfg, work, sizeof(*cfg));
            free(work);
        }
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    return st;
}

td_status td_config_load(td_config *cfg, const char *path, td_error *err)
{
    FILE *f;
    td_status st = td_fs_open_regular(&f, path, "a YAML config file", TD_ERR_CONFIG, err);
    if (st != TD_OK) return st;
    st = load_stream(cfg, f, path, err);
    fclose(f);
    return st;
}

td_status td_config_load_text(td_config *cfg, const char *text, const char *name, td_error *err)
{
    size_t n = strlen(text);
    char *copy = td_xmalloc(n + 1); /* fmemopen takes a writable buffer */
    memcpy(copy, text, n + 1);
    FILE *f = fmemopen(copy, n, "rb");
    td_status st = f ? load_stream(cfg, f, name, err)
                     : td_error_set(err, TD_ERR_NOMEM, "%s: cannot read the config text: %s", name, strerror(errno));
    if (f) fclose(f);
    free(copy);
    return st;
}

/* ---- --set overrides ----------------------------------------------------- */

static void trim(const char **begin, const char **end)
{
    while (*begin < *end && (**begin == ' ' || **begin == '\t')) (*begin)++;
    while (*end > *begin && ((*end)[-1] == ' ' || (*end)[-1] == '\t')) (*end)--;
}

/* "[CLS],[SEP],5": the form a shell user types. Pieces may be quoted ('a,b'
 * is one token); a piece with a lone bracket, as in [CLS, 5], is refused
 * rather than read as the tokens "[CLS" and "5]". */
static td_status apply_token_commas(td_config *cfg, const key_spec *key, const char *value, const source *src)
{
    td_token_ref list[TD_TOKEN_LIST_MAX];
    int n = 0;
    const char *p = value;
    while (*value) { /* an empty value is the empty list */
        while (*p == ' ' || *p == '\t') p++;
        const char *begin = p, *end;
        bool plain = *p != '"' && *p != '\'';
        if (!plain) {
            const char *close = strchr(p + 1, *p);
            if (!close) return fail_line(src, 0, "%s.%s: unterminated quote", key->section, key->name);
            begin = p + 1;
            end = close;
            p = close + 1;
            while (*p == ' ' || *p == '\t') p++;
            if (*p != ',' && *p != '\0')
                return fail_line(src, 0, "%s.%s: expected ',' after the quoted token", key->section, key->name);
        } else {
            p += strcspn(p, ",");
            end = p;
            trim(&begin, &end);
        }
        size_t len = (size_t)(end - begin);
        if (plain && len == 0)
            return fail_line(src, 0, "%s.%s: empty entry in the comma-separated list", key->section, key->name);
        if (plain && (begin[0] == '[') != (end[-1] == ']'))
            return fail_line(src, 0,
                             "%s.%s: cannot read '%.*s': write [\"[CLS]\", 5] (YAML, tokens quoted) "
                             "or [CLS],5 (comma-separated)",
                             key->section, key->name, (int)(len < 60 ? len : 60), begin);
        if (len >= TD_TOKEN_TEXT_LEN)
            return fail_line(src, 0, "%s.%s[%d]: token is %zu bytes long, at most %d allowed", key->section,
                             key->name, n, len, TD_TOKEN_TEXT_LEN - 1);
        char piece[TD_TOKEN_TEXT_LEN];
        memcpy(piece, begin, len);
        piece[len] = '\0';
        td_status st = add_token(list, &n, key, piece, len, plain, NULL, src);
        if (st != TD_OK) return st;
        if (*p == '\0') break;
        p++; /* the comma */
    }
    set_tokens(cfg, key, list, n);
    return TD_OK;
}

/* Flow sequences are taken as YAML only when they cannot be the comma form:
 * every item quoted or a plain integer. "[CLS]" means the token, not ["CLS"]. */
static bool unambiguous_sequence(yaml_document_t *doc, const yaml_node_t *node)
{
    if (!node || node->type != YAML_SEQUENCE_NODE) return false;
    for (yaml_node_item_t *it = node->data.sequence.items.start; it < node->data.sequence.items.top; it++) {
        const yaml_node_t *item = yaml_document_get_node(doc, *it);
        int64_t id;
        if (item->type != YAML_SCALAR_NODE) return false;
        if (is_plain(item) && parse_int64(scalar_text(item), &id) != NUM_OK) return false;
    }
    return true;
}

static td_status apply_override(td_config *cfg, const key_spec *key, const char *value, const source *src)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) return td_error_set(src->err, TD_ERR_NOMEM, "--set: cannot initialise YAML");
    yaml_parser_set_input_string(&parser, (const unsigned char *)value, strlen(value));
    yaml_document_t doc;
    td_error parse_err;
    source quiet = {NULL, src->assignment, &parse_err};
    bool parsed = load_document(&doc, &parser, key->type == KEY_STR || key->type == KEY_TOKENS ? &quiet : src) ==
                  TD_OK;
    const yaml_node_t *root = parsed ? yaml_document_get_root_node(&doc) : NULL;
    td_status st;
    if (key->type == KEY_STR) {
        /* A YAML scalar gives its value (so quotes can be used); anything
         * else is taken verbatim, so that paths like *.h5 need no quoting. */
        if (root && root->type == YAML_SCALAR_NODE)
            st = apply_scalar(cfg, key, root, src);
        else if (parsed && !root)
            st = set_string(cfg, key, "", 0, NULL, src);
        else
            st = set_string(cfg, key, value, strlen(value), NULL, src);
    } else if (key->type == KEY_TOKENS) {
        if (unambiguous_sequence(&doc, root)) {
            st = apply_token_sequence(cfg, key, &doc, root, src);
        } else if (root && root->type == YAML_SCALAR_NODE && !is_plain(root)) {
            /* One quoted string, which may hold commas: "a,b". */
            td_token_ref list[1];
            int n = 0;
            st = add_token(list, &n, key, scalar_text(root), root->data.scalar.length, false, NULL, src);
            if (st == TD_OK) set_tokens(cfg, key, list, n);
        } else {
            st = apply_token_commas(cfg, key, value, src);
        }
    } else if (!parsed) {
        st = TD_ERR_CONFIG; /* load_document reported it */
    } else {
        st = apply_scalar(cfg, key, root, src);
    }
    if (parsed) yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return st;
}

td_status td_config_set(td_config *cfg, const char *assignment, td_error *err)
{
    source src = {NULL, assignment, err};
    const char *eq = strchr(assignment, '=');
    if (!eq) return fail_line(&src, 0, "expected section.key=value");
    const char *begin = assignment, *end = eq;
    trim(&begin, &end);
    const char *dot = memchr(begin, '.', (size_t)(end - begin));
    char section[64], name[64];
    if (!dot || dot - begin >= (ptrdiff_t)sizeof(section) || end - dot - 1 >= (ptrdiff_t)sizeof(name))
        return fail_line(&src, 0, "expected section.key=value, e.g. model.hidden=256");
    memcpy(section, begin, (size_t)(dot - begin));
    section[dot - begin] = '\0';
    memcpy(name, dot + 1, (size_t)(end - dot - 1));
    name[end - dot - 1] = '\0';
    if (!is_section(section)) {
        char hint[256];
        section_hint(hint, sizeof(hint), section);
        return fail_line(&src, 0, "unknown key '%s.%s': no section '%s'%s", section, name, section, hint);
    }
    const key_spec *key = find_key(section, name);
    if (!key) {
        char hint[512];
        key_hint(hint, sizeof(hint), section, name);
        return fail_line(&src, 0, "unknown key '%s.%s'%s", section, name, hint);
    }

    const char *vbegin = eq + 1, *vend = eq + strlen(eq);
    trim(&vbegin, &vend);
    size_t vlen = (size_t)(vend - vbegin);
    char *value = td_xmalloc(vlen + 1);
    memcpy(value, vbegin, vlen);
    value[vlen] = '\0';
    td_config *work = td_xmalloc(sizeof(*work));
    memcpy(work, cfg, sizeof(*work));
    td_status st = apply_override(work, key, value, &src);
    if (st == TD_OK) memcpy(cfg, work, sizeof(*cfg));
    free(work);
    free(value);
    return st;
}

/* ---- defaults ------------------------------------------------------------ */

void td_config_defaults(td_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    td_error err = {0};
    source src = {NULL, "(default)", &err};
    for (int i = 0; i < N_KEYS; i++) {
        /* A default the table cannot parse is a bug in the table. */
        td_status st = apply_override(cfg, &keys[i], keys[i].def, &src);
        if (st != TD_OK) td_assert_fail(__FILE__, __LINE__, err.msg);
    }
}

/* ---- validation ---------------------------------------------------------- */

/* A number key's range as messages and docs/config.md write it: "[1, 1024]",
 * ">= 0", "> 0", "[0, 1)"; "any finite number" when there is no bound. */
static void range_text(char *out, size_t size, const key_spec *key)
{
    if (key->type == KEY_INT) {
        if (key->max == NO_MAX)
            snprintf(out, size, ">= %" PRId64, key->min);
        else
            snprintf(out, size, "[%" PRId64 ", %" PRId64 "]", key->min, key->max);
    } else if (key->type == KEY_DOUBLE) {
        if (isinf(key->lo) && isinf(key->hi))
            snprintf(out, size, "any finite number");
        else if (isinf(key->hi))
            snprintf(out, size, "%s %g", key->lo_open ? ">" : ">=", key->lo);
        else
            snprintf(out, size, "%c%g, %g%c", key->lo_open ? '(' : '[', key->lo, key->hi, key->hi_open ? ')' : ']');
    } else {
        out[0] = '\0';
    }
}

/* "must be >= 1" or "must lie in [1, 1024]". */
static const char *range_verb(const char *range) { return range[0] == '[' || range[0] == '(' ? "lie in" : "be"; }

/* Each key against its own range in the table; NaN fails every check. */
static td_status check_key(const td_config *cfg, const key_spec *key, td_error *err)
{
    char range[96];
    range_text(range, sizeof(range), key);
    if (key->type == KEY_INT) {
        int64_t v;
        memcpy(&v, const_field_of(cfg, key), sizeof(v));
        if (v >= key->min && v <= key->max) return TD_OK;
        return td_error_set(err, TD_ERR_CONFIG, "%s.%s = %" PRId64 ": must %s %s", key->section, key->name, v,
                            range_verb(range), range);
    }
    if (key->type == KEY_DOUBLE) {
        double v;
        memcpy(&v, const_field_of(cfg, key), sizeof(v));
        char text[64];
        format_double(text, sizeof(text), v);
        if (!isfinite(v))
            return td_error_set(err, TD_ERR_CONFIG, "%s.%s = %s: must be a finite number", key->section,
                                key->name, text);
        bool above = key->lo_open ? v > key->lo : v >= key->lo;
        bool below = key->hi_open ? v < key->hi : v <= key->hi;
        if (above && below) return TD_OK;
        return td_error_set(err, TD_ERR_CONFIG, "%s.%s = %s: must %s %s", key->section, key->name, text,
                            range_verb(range), range);
    }
    if (key->type == KEY_ENUM) {
        int v;
        memcpy(&v, const_field_of(cfg, key), sizeof(v));
        if (v < 0 || v >= enum_count(key->choices))
            return td_error_set(err, TD_ERR_CONFIG, "%s.%s = %d: not a valid choice", key->section, key->name, v);
    }
    return TD_OK;
}

static td_status need_within(td_error *err, const char *key, int64_t v, int64_t lo, int64_t hi, const char *why)
{
    if (v >= lo && v <= hi) return TD_OK;
    return td_error_set(err, TD_ERR_CONFIG, "%s = %" PRId64 ": must lie in [%" PRId64 ", %" PRId64 "] (%s)", key, v,
                        lo, hi, why);
}

static td_status check_token_ids(td_error *err, const char *key, const td_token_ref *list, int n, int64_t vocab_size)
{
    if (n < 0 || n > TD_TOKEN_LIST_MAX)
        return td_error_set(err, TD_ERR_CONFIG, "%s: %d entries, must lie in [0, %d]", key, n, TD_TOKEN_LIST_MAX);
    for (int i = 0; i < n; i++) {
        if (list[i].id >= vocab_size)
            return td_error_set(err, TD_ERR_CONFIG,
                                "%s[%d] = %" PRId64 ": token id must lie in [0, %" PRId64 "] (model.vocab_size - 1)",
                                key, i, list[i].id, vocab_size - 1);
    }
    return TD_OK;
}

#define CHECK(call) \
    do { \
        td_status check_status_ = (call); \
        if (check_status_ != TD_OK) return check_status_; \
    } while (0)

/* A schedule's own keys must be set and the others' left at 0: a key that
 * would silently do nothing is more likely a mistake than a wish. */
static td_status check_schedule(td_error *err, const td_drop_config *td, int64_t steps)
{
    CHECK(need_within(err, "token_drop.full_last_steps", td->full_last_steps, 0, steps, "train.steps"));
    if (td->schedule == TD_SCHEDULE_RAMP && td->ramp_steps < 1)
        return td_error_set(err, TD_ERR_CONFIG, "token_drop.ramp_steps = %" PRId64 ": must be >= 1 with schedule: ramp",
                            td->ramp_steps);
    if (td->schedule != TD_SCHEDULE_RAMP && td->ramp_steps != 0)
        return td_error_set(err, TD_ERR_CONFIG,
                            "token_drop.ramp_steps = %" PRId64 ": only used by schedule: ramp (schedule is %s)",
                            td->ramp_steps, schedule_names[td->schedule]);
    /* full_every 1 would never drop: that is token_drop.enabled: false */
    if (td->schedule == TD_SCHEDULE_INTERLEAVE && td->full_every < 2)
        return td_error_set(err, TD_ERR_CONFIG,
                            "token_drop.full_every = %" PRId64 ": must be >= 2 with schedule: interleave",
                            td->full_every);
    if (td->schedule != TD_SCHEDULE_INTERLEAVE && td->full_every != 0)
        return td_error_set(err, TD_ERR_CONFIG,
                            "token_drop.full_every = %" PRId64 ": only used by schedule: interleave (schedule is %s)",
                            td->full_every, schedule_names[td->schedule]);
    return TD_OK;
}

td_memory_estimate td_config_estimate_memory(const td_config *cfg)
{
    /* Doubles: within the table's ranges the products can pass 2^63. */
    const td_model_config *m = &cfg->model;
    const double V = (double)m->vocab_size, H = (double)m->hidden, L = (double)m->layers;
    const double A = (double)m->heads, I = (double)m->intermediate, P = (double)m->max_position;
    const double B = (double)cfg->train.micro_batch, T = (double)cfg->data.seq_len;
    const double N = B * T, R = B * (double)cfg->data.max_pred, att = B * A * T * T;
    td_memory_estimate e;
    /* The tensors of SPEC section 1 (the decoder is tied to the word embedding). */
    e.n_params = (V + P + (double)m->type_vocab + 2) * H + L * (4 * H * H + 2 * H * I + 9 * H + I) +
                 2 * (H * H + H) + 2 * H + V + 2 * H + 2;
    /* Parameters, gradients and the optimizer's two moments, in fp32. */
    e.param_bytes = 16 * e.n_params;
    /* What td_model_init's arena holds for a micro-batch: per layer the
     * forward's rows and attention probabilities (twice with attention
     * dropout), then the backward's scratch and the MLM head's logits. */
    double per_layer = 8 * N * H + 2 * N * I + 4 * N + att * (m->attention_dropout > 0 ? 2 : 1);
    e.act_bytes = 4 * (L * per_layer + 15 * N * H + 2 * N * I + att + 2 * R * V + 8 * R * H);
    return e;
}

td_status td_config_check_memory(const td_config *cfg, double available_bytes, const char *where, td_error *err)
{
    td_memory_estimate e = td_config_estimate_memory(cfg);
    double need = e.param_bytes + e.act_bytes;
    if (need <= available_bytes) return TD_OK;
    const double gib = 1024.0 * 1024.0 * 1024.0;
    /* Name the keys behind the larger part. */
    const char *lower = e.param_bytes >= e.act_bytes
                            ? "lower model.hidden, model.layers, model.intermediate or model.vocab_size"
                            : "lower train.micro_batch, data.seq_len or model.layers";
    return td_error_set(err, TD_ERR_CONFIG,
                        "the model needs at least %.4g GiB per rank, more than %s (%.4g GiB): %.4g parameters "
                        "take %.4g GiB with gradients and optimizer moments, the activations of "
                        "train.micro_batch %" PRId64 " x data.seq_len %" PRId64 " take %.4g GiB; %s",
                        need / gib, where, available_bytes / gib, e.n_params, e.param_bytes / gib,
                        cfg->train.micro_batch, cfg->data.seq_len, e.act_bytes / gib, lower);
}

td_status td_config_validate(const td_config *cfg, td_error *err)
{
    for (int i = 0; i < N_KEYS; i++) CHECK(check_key(cfg, &keys[i], err));

    /* What the table cannot say: ranges that depend on other keys. */
    const td_model_config *m = &cfg->model;
    if (m->hidden % m->heads != 0)
        return td_error_set(err, TD_ERR_CONFIG,
                            "model.heads = %" PRId64 ": must divide model.hidden = %" PRId64 " (head size)", m->heads,
                            m->hidden);
    const td_data_config *d = &cfg->data;
    CHECK(need_within(err, "data.seq_len", d->seq_len, 2, m->max_position, "model.max_position"));
    CHECK(need_within(err, "data.max_pred", d->max_pred, 1, d->seq_len, "data.seq_len"));

    const td_drop_config *td = &cfg->token_drop;
    if (td->enabled) {
        if (m->layers < 2)
            return td_error_set(err, TD_ERR_CONFIG,
                                "model.layers = %" PRId64 ": must be >= 2 when token_drop.enabled", m->layers);
        CHECK(need_within(err, "token_drop.keep", td->keep, 1, d->seq_len, "data.seq_len"));
        CHECK(need_within(err, "token_drop.first_layer", td->first_layer, 0, m->layers - 2, "layers - 2"));
        CHECK(check_schedule(err, td, cfg->train.steps));
    }
    CHECK(check_token_ids(err, "token_drop.allow", td->allow, td->n_allow, m->vocab_size));
    CHECK(check_token_ids(err, "token_drop.deny", td->deny, td->n_deny, m->vocab_size));

    /* Sizes each within range can still multiply past what any node holds
     * (or int64): refuse them here rather than fail to allocate. */
    return td_config_check_memory(cfg, TD_CONFIG_MAX_RANK_BYTES, "any node has", err);
}

/* ---- printing ------------------------------------------------------------ */

typedef struct {
    char *data;
    size_t len, cap;
} text_buf;

__attribute__((format(printf, 2, 3))) static void buf_printf(text_buf *b, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    TD_ASSERT(n >= 0);
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (b->len + (size_t)n + 1 > cap) cap *= 2;
        char *grown = realloc(b->data, cap);
        TD_ASSERT(grown != NULL);
        b->data = grown;
        b->cap = cap;
    }
    vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap2);
    va_end(ap2);
    b->len += (size_t)n;
}

/* A YAML double-quoted string: safe for any text (brackets, '#', ': ', leading
 * spaces, words like "true" that would otherwise change type). */
static void buf_quoted(text_buf *b, const char *s)
{
    buf_printf(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            buf_printf(b, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            buf_printf(b, "\\x%02x", *p);
        else
            buf_printf(b, "%c", *p);
    }
    buf_printf(b, "\"");
}

static void print_value(text_buf *b, const td_config *cfg, const key_spec *key)
{
    const void *field = const_field_of(cfg, key);
    switch (key->type) {
    case KEY_STR: buf_quoted(b, field); return;
    case KEY_INT: {
        int64_t v;
        memcpy(&v, field, sizeof(v));
        buf_printf(b, "%" PRId64, v);
        return;
    }
    case KEY_U64: {
        uint64_t v;
        memcpy(&v, field, sizeof(v));
        buf_printf(b, "%" PRIu64, v);
        return;
    }
    case KEY_DOUBLE: {
        double v;
        memcpy(&v, field, sizeof(v));
        char text[64];
        format_double(text, sizeof(text), v);
        buf_printf(b, "%s", text);
        return;
    }
    case KEY_BOOL: {
        bool v;
        memcpy(&v, field, sizeof(v));
        buf_printf(b, "%s", v ? "true" : "false");
        return;
    }
    case KEY_ENUM: {
        int v;
        memcpy(&v, field, sizeof(v));
        buf_printf(b, "%s", enum_name(key->choices, v));
        return;
    }
    case KEY_TOKENS: {
        const td_token_ref *list = field;
        int n;
        memcpy(&n, (const char *)cfg + key->count_offset, sizeof(n));
        TD_ASSERT(n >= 0 && n <= TD_TOKEN_LIST_MAX);
        buf_printf(b, "[");
        for (int i = 0; i < n; i++) {
            if (i) buf_printf(b, ", ");
            if (list[i].id >= 0)
                buf_printf(b, "%" PRId64, list[i].id);
            else
                buf_quoted(b, list[i].text);
        }
        buf_printf(b, "]");
        return;
    }
    }
}

char *td_config_to_yaml(const td_config *cfg)
{
    text_buf b = {NULL, 0, 0};
    const char *section = NULL;
    for (int i = 0; i < N_KEYS; i++) {
        const key_spec *key = &keys[i];
        if (!section || strcmp(section, key->section) != 0) {
            section = key->section;
            buf_printf(&b, "%s:\n", section);
        }
        buf_printf(&b, "  %s: ", key->name);
        print_value(&b, cfg, key);
        buf_printf(&b, "\n");
    }
    return b.data;
}

/* ---- the reference documentation ----------------------------------------- */

int td_config_n_keys(void) { return N_KEYS; }

void td_config_describe_key(int i, td_config_key_doc *doc)
{
    TD_ASSERT(i >= 0 && i < N_KEYS);
    const key_spec *key = &keys[i];
    memset(doc, 0, sizeof(*doc));
    snprintf(doc->name, sizeof(doc->name), "%s.%s", key->section, key->name);
    doc->description = key->doc;

    td_config defaults;
    td_config_defaults(&defaults);
    text_buf b = {NULL, 0, 0};
    print_value(&b, &defaults, key);
    snprintf(doc->default_text, sizeof(doc->default_text), "%s", b.data);
    free(b.data);

    switch (key->type) {
    case KEY_STR:
        doc->type = "string";
        snprintf(doc->range, sizeof(doc->range), "up to %zu bytes", key->size - 1);
        break;
    case KEY_INT:
        doc->type = "integer";
        range_text(doc->range, sizeof(doc->range), key);
        break;
    case KEY_U64:
        doc->type = "integer";
        snprintf(doc->range, sizeof(doc->range), "[0, 2^64 - 1]");
        break;
    case KEY_DOUBLE:
        doc->type = "number";
        range_text(doc->range, sizeof(doc->range), key);
        break;
    case KEY_BOOL:
        doc->type = "boolean";
        snprintf(doc->range, sizeof(doc->range), "true, false");
        break;
    case KEY_ENUM: {
        doc->type = "choice";
        size_t len = 0;
        for (int c = 0; key->choices[c] && len < sizeof(doc->range); c++)
            len += (size_t)snprintf(doc->range + len, sizeof(doc->range) - len, "%s%s", c ? ", " : "",
                                    key->choices[c]);
        break;
    }
    case KEY_TOKENS:
        doc->type = "token list";
        snprintf(doc->range, sizeof(doc->range), "up to %d tokens of up to %d bytes, or ids", TD_TOKEN_LIST_MAX,
                 TD_TOKEN_TEXT_LEN - 1);
        break;
    }
}
