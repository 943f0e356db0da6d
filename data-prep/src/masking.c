/* Static masking (masking.h). The draws have the meaning of the reference
 * script's (a random order of the candidates, then per chosen position
 * random() < 0.8, random() < 0.5, randint); the values come from tokdrop's
 * counter-based stream, so they are not Python's. */
#include "masking.h"

#include <math.h>
#include <stdlib.h>

void tdp_mask_scratch_free(tdp_mask_scratch *s)
{
    free(s->cand.v);
    free(s->group_start.v);
    free(s->order.v);
}

int64_t tdp_mask_tokens(int32_t *positions, int32_t *replaced, const int32_t *tokens,
                        int64_t len, const tdp_mask_options *o, const tdp_vocab *v, tdp_rng *rng,
                        tdp_mask_scratch *s)
{
    tdp_vec_i64_reserve(&s->cand, len);
    tdp_vec_i64_reserve(&s->group_start, len + 1);
    tdp_vec_i64_reserve(&s->order, len);
    int64_t *cand = s->cand.v, *group_start = s->group_start.v, *order = s->order.v;
    int64_t n_cand = 0, n_groups = 0;
    for (int64_t i = 0; i < len; i++) {
        int32_t t = tokens[i];
        if (t == v->cls_id || t == v->sep_id) continue;
        /* A "##" piece joins the last candidate group, even across a [SEP]
         * (the reference does the same: it only looks at the group list). */
        if (!(o->whole_word && n_groups > 0 && v->is_cont[t])) group_start[n_groups++] = n_cand;
        cand[n_cand++] = i;
    }
    group_start[n_groups] = n_cand;

    /* Python's round() rounds half to even, as rint does by default. */
    int64_t n_to_predict = (int64_t)rint((double)len * o->masked_lm_prob);
    if (n_to_predict < 1) n_to_predict = 1;
    if (n_to_predict > o->max_pred) n_to_predict = o->max_pred;

    /* The groups in a uniformly random order, as random.shuffle gives; only
     * the prefix that is visited gets drawn (forward Fisher-Yates), which
     * saves most of the draws: ~len/7 groups are visited, not len. Groups
     * are disjoint, so the reference's "already covered" test never fires
     * and is left out. */
    for (int64_t g = 0; g < n_groups; g++) order[g] = g;
    int64_t n = 0;
    for (int64_t k = 0; k < n_groups && n < n_to_predict; k++) {
        int64_t j = tdp_rng_randint(rng, k, n_groups - 1);
        int64_t g = order[j];
        order[j] = order[k];
        order[k] = g;
        int64_t g0 = group_start[g], g1 = group_start[g + 1];
        if (n + (g1 - g0) > n_to_predict) continue;
        for (int64_t c = g0; c < g1; c++) {
            int64_t pos = cand[c];
            int32_t id;
            if (tdp_rng_random(rng) < 0.8) id = v->mask_id;
            else if (tdp_rng_random(rng) < 0.5) id = tokens[pos];
            else id = (int32_t)tdp_rng_randint(rng, 0, v->n_tokens - 1);
            /* insertion keeps the predictions sorted by position */
            int64_t j2 = n;
            while (j2 > 0 && positions[j2 - 1] > pos) {
                positions[j2] = positions[j2 - 1];
                replaced[j2] = replaced[j2 - 1];
                j2--;
            }
            positions[j2] = (int32_t)pos;
            replaced[j2] = id;
            n++;
        }
    }
    return n;
}
