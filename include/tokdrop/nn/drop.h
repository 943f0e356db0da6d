/* Token dropping (SPEC section 2): the importance table, per-sequence
 * selection of the kept positions, and the EMA update from the step's
 * masked-LM losses. The layer schedule itself lives in model.c. */
#ifndef TOKDROP_DROP_H
#define TOKDROP_DROP_H

#include <stdbool.h>
#include <stdint.h>

#include "tokdrop/base/error.h"
#include "tokdrop/base/vocab.h"
#include "tokdrop/nn/batch.h"

#define TD_TOKEN_LIST_MAX 64
#define TD_TOKEN_TEXT_LEN 64

typedef enum { TD_IMPORTANCE_LOSS = 0, TD_IMPORTANCE_FREQUENCY, TD_IMPORTANCE_RANDOM } td_importance;
/* How many tokens a step keeps (SPEC section 8; td_drop_keep_at). */
typedef enum { TD_SCHEDULE_CONSTANT = 0, TD_SCHEDULE_RAMP, TD_SCHEDULE_INTERLEAVE } td_drop_schedule;

/* An allow/deny entry: a token string resolved through the vocabulary, or,
 * when the YAML gave a plain integer, a token id (id >= 0, text empty). */
typedef struct {
    char text[TD_TOKEN_TEXT_LEN];
    int64_t id; /* -1 when given as text */
} td_token_ref;

typedef struct {
    bool enabled;
    int64_t keep;        /* 0 = seq_len / 2 (resolved by td_config_resolve) */
    int64_t first_layer; /* -1 = layers / 2 - 1 (resolved) */
    td_importance importance;
    double loss_init;
    double loss_beta;
    td_token_ref allow[TD_TOKEN_LIST_MAX];
    int n_allow;
    td_token_ref deny[TD_TOKEN_LIST_MAX];
    int n_deny;
    td_drop_schedule schedule;
    int64_t ramp_steps;      /* ramp: steps over which keep grows to seq_len */
    int64_t full_every;      /* interleave: every full_every-th step is full */
    int64_t full_last_steps; /* any schedule: the last steps are full */
} td_drop_config;


#define TD_DROP_ALLOW_SCORE 1e4f
#define TD_DROP_DENY_SCORE (-1e4f)

typedef enum { TD_PIN_NONE = 0, TD_PIN_ALLOW = 1, TD_PIN_DENY = 2 } td_pin;

typedef struct {
    int64_t V;
    td_importance kind;
    double beta;
    uint64_t seed;
    float *imp;      /* (V) importance of each vocabulary id */
    uint8_t *pinned; /* (V) td_pin: allow and deny ids never change */
    double *stats;   /* (2V) this step's per-id CE sums, then counts; summed over
                        ranks by one allreduce before td_drop_update */
} td_drop;

/* Builds the table: loss_init everywhere, +1e4 allow, -1e4 deny (deny wins).
 * Token strings are resolved through vocab (may be NULL only when every
 * entry is an id); an unknown token or id out of range is an error. */
td_status td_drop_init(td_drop *drop, const td_drop_config *cfg, int64_t V, const td_vocab *vocab,
                       uint64_t seed, td_error *err);
void td_drop_free(td_drop *drop);

/* importance: frequency: imp[y] = -log(max(count_y, 1)) for unpinned ids. */
void td_drop_set_frequency(td_drop *drop, const int64_t *counts);

/* kept (B, K): per sequence the K highest-scoring positions in ascending
 * order; score = imp[id], or a uniform draw for importance: random (pinned
 * ids keep their +-1e4); padding scores below everything; ties go to the
 * lower position. */
void td_drop_select(const td_drop *drop, int32_t *kept, const td_batch *batch, int64_t K,
                    uint64_t step);

/* How many tokens step t (1-based) of a run of total_steps keeps through the
 * middle layers under cfg's schedule; seq_len means a full-sequence step.
 *   constant    keep;
 *   ramp        linear from keep at step 1 to seq_len at step ramp_steps + 1
 *               and after, rounded down to a multiple of TD_DROP_RAMP_ROUND
 *               but never below keep (so never 0);
 *   interleave  seq_len on every full_every-th step, keep otherwise;
 * and seq_len on the last full_last_steps steps under every schedule.
 * A function of the step alone, so a resumed run keeps the same counts. */
#define TD_DROP_RAMP_ROUND 8
int64_t td_drop_keep_at(const td_drop_config *cfg, int64_t seq_len, int64_t total_steps, int64_t t);

void td_drop_stats_clear(td_drop *drop);
/* Adds the batch's weighted predictions: pred_loss (B, max_pred). */
void td_drop_stats_add(td_drop *drop, const td_batch *batch, const float *pred_loss);
/* imp[y] = beta imp[y] + (1 - beta) mean_y for every unpinned y seen. */
void td_drop_update(td_drop *drop);

#endif
