/* Static masked-LM predictions, as create_masked_lm_predictions in
 * google-research/bert create_pretraining_data.py: candidates are all
 * positions but [CLS]/[SEP] (with whole-word masking, a "##" piece joins the
 * candidate before it), shuffled; round(len * 15%) of them (at least 1, at
 * most max_pred) are chosen, each replaced by [MASK] 80%, kept 10%, a random
 * vocabulary id 10% of the time. */
#ifndef TDP_MASKING_H
#define TDP_MASKING_H

#include <stdint.h>

#include "util.h"
#include "wordpiece.h"

typedef enum {
    TDP_MASKING_NONE = 0,   /* no predictions: the trainer masks dynamically */
    TDP_MASKING_STATIC = 1, /* predictions fixed in the shard */
} tdp_masking;

typedef struct {
    int64_t max_pred;
    double masked_lm_prob; /* 0.15 */
    int whole_word;
} tdp_mask_options;

/* Reusable buffers of the candidate lists. */
typedef struct {
    tdp_vec_i64 cand;        /* candidate positions, grouped */
    tdp_vec_i64 group_start; /* (n_groups + 1) offsets into cand */
    tdp_vec_i64 order;       /* shuffled group indices */
} tdp_mask_scratch;

void tdp_mask_scratch_free(tdp_mask_scratch *s);

/* Chooses the predictions of one sequence of len ids (tokens, [CLS] and
 * [SEP] included). Writes the chosen positions in increasing order to
 * positions and, at the same index, the id the position holds in the model
 * input to replaced ([MASK], the original id, or a random one); returns
 * their number (<= max_pred). The labels are tokens[positions[k]]. */
int64_t tdp_mask_tokens(int32_t *positions, int32_t *replaced, const int32_t *tokens,
                        int64_t len, const tdp_mask_options *o, const tdp_vocab *v, tdp_rng *rng,
                        tdp_mask_scratch *s);

#endif
