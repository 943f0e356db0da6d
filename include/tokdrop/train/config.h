/* The experiment configuration (SPEC section 8; docs/config.md): one table
 * of keys with their defaults, ranges and descriptions; YAML loading with
 * file:line errors, `--set key.path=value` overrides, validation, the
 * resolved config written back as YAML, and the reference documentation. */
#ifndef TOKDROP_CONFIG_H
#define TOKDROP_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "tokdrop/base/error.h"
#include "tokdrop/nn/drop.h"
#include "tokdrop/nn/gemm.h"
#include "tokdrop/nn/model.h"
#include "tokdrop/nn/optim.h"

typedef enum { TD_MASKING_STATIC = 0, TD_MASKING_DYNAMIC } td_masking;
/* train.allreduce, how gradients are summed over ranks: in one allreduce
 * after the backward (the default); a bucket per layer during the backward
 * as soon as it is final; or the two on alternate steps (odd steps
 * overlapped), so that a benchmark sees both under the same machine noise.
 * The sums, and so the results, are the same bits in every mode. */
typedef enum { TD_ALLREDUCE_BLOCKING = 0, TD_ALLREDUCE_OVERLAP, TD_ALLREDUCE_ALTERNATE } td_allreduce_mode;

typedef struct {
    char train[TD_PATH_LEN];
    char eval[TD_PATH_LEN];
    int64_t seq_len;
    int64_t max_pred;
    td_masking masking;
    int64_t memory_mb; /* per-rank window of samples; 0 = sized for the node (resolved at start) */
} td_data_config;

typedef struct {
    int64_t steps;
    int64_t micro_batch;
    int64_t accumulation;
    uint64_t seed;
    int64_t threads;
    td_precision precision;
    td_allreduce_mode allreduce;
    int64_t max_bad_steps; /* consecutive non-finite steps that stop the run */
} td_train_config;

typedef struct {
    char dir[TD_PATH_LEN];
    int64_t log_every;
    int64_t eval_every;
    int64_t eval_batches;
    int64_t checkpoint_every;
    int64_t keep_checkpoints;
} td_run_config;

typedef struct {
    td_model_config model;
    td_drop_config token_drop;
    td_data_config data;
    td_train_config train;
    td_optim_config optimizer;
    td_run_config run;
} td_config;

/* Fills cfg with the defaults of the key table (docs/config.md). */
void td_config_defaults(td_config *cfg);

/* Applies the keys of the YAML file at path on top of what cfg holds. An
 * unknown key, a wrong type or an unparsable value is TD_ERR_CONFIG with a
 * message "path:line: key a.b: expected ..., got ...". */
td_status td_config_load(td_config *cfg, const char *path, td_error *err);

/* The same for YAML held in memory (a checkpoint's resolved config); name
 * stands for the file in messages. */
td_status td_config_load_text(td_config *cfg, const char *text, const char *name, td_error *err);

/* Applies one override "a.b=value" (value parsed as a YAML scalar or flow
 * sequence, e.g. token_drop.allow=[CLS],[SEP] or ["[CLS]","[SEP]"]). */
td_status td_config_set(td_config *cfg, const char *assignment, td_error *err);

/* Replaces the "auto" values (keep 0, first_layer -1) by what they mean.
 * train.precision auto depends on the CPU: td_gemm_resolve_precision. */
void td_config_resolve(td_config *cfg);

/* Range and consistency checks of a resolved config: every key within its
 * range in the table, then what depends on several keys (heads divide
 * hidden, keep in [1, seq_len], first_layer in [0, layers-2] when dropping,
 * a model that fits in TD_CONFIG_MAX_RANK_BYTES). The message names the key. */
td_status td_config_validate(const td_config *cfg, td_error *err);

/* The config as YAML text that td_config_load reads back to the same values;
 * malloc'd, the caller frees. */
char *td_config_to_yaml(const td_config *cfg);

/* What a config's model needs per rank at least, in bytes: parameters,
 * gradients and the two optimizer moments (fp32), and the activation arena
 * of one micro-batch. Doubles, so that no product of sizes overflows. */
typedef struct {
    double n_params;
    double param_bytes;
    double act_bytes;
} td_memory_estimate;

td_memory_estimate td_config_estimate_memory(const td_config *cfg);

/* More per rank than any node has (1 PiB); td_config_validate refuses it,
 * so that no size computed from a valid config overflows int64. */
#define TD_CONFIG_MAX_RANK_BYTES 1125899906842624.0

/* TD_ERR_CONFIG, naming the keys to lower, when the estimate exceeds
 * available_bytes; where says whose bytes ("the 64 GiB of this node for
 * each of its 4 ranks"). */
td_status td_config_check_memory(const td_config *cfg, double available_bytes, const char *where, td_error *err);

/* The key table, one key at a time, for the configuration reference
 * (docs/config.md, written by tools/config_doc.c). */
typedef struct {
    char name[64];           /* "model.hidden" */
    const char *type;        /* "integer", "number", "string", "boolean", "choice", "token list" */
    char default_text[256];  /* as the resolved config.yaml writes it */
    char range[256];         /* "[1, 65536]", "> 0", "gelu, gelu_tanh", ... */
    const char *description; /* one line, Markdown */
} td_config_key_doc;

int td_config_n_keys(void);
void td_config_describe_key(int i, td_config_key_doc *doc);

const char *td_act_str(td_act act);
const char *td_importance_str(td_importance importance);
const char *td_drop_schedule_str(td_drop_schedule schedule);
const char *td_masking_str(td_masking masking);
const char *td_optim_kind_str(td_optim_kind kind);
const char *td_precision_str(td_precision precision);

#endif
