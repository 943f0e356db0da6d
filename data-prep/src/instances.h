/* Training instances (sequence pairs) from documents, as
 * create_instances_from_document in google-research/bert
 * create_pretraining_data.py: a target length (max_seq_length - 3, or with
 * probability short_seq_prob a random length in [2, that]), segments
 * gathered until it is reached, a random split point into A and B, B
 * replaced 50% of the time (always when there is only one segment) by text
 * from a random other document, truncate_seq_pair removing from a random end
 * of the longer side, then [CLS] A [SEP] B [SEP] and masking. Each
 * (dupe pass, document) has its own random stream, so the instances do not
 * depend on thread count or on the order in which documents are processed. */
#ifndef TDP_INSTANCES_H
#define TDP_INSTANCES_H

#include <stdint.h>

#include "corpus.h"
#include "masking.h"
#include "util.h"
#include "wordpiece.h"

typedef struct {
    int64_t seq_len;       /* T, >= 5 */
    int64_t max_pred;
    int64_t dupe_factor;
    double short_seq_prob;
    double masked_lm_prob; /* 0.15 */
    tdp_masking masking;
    int whole_word;
    uint64_t seed;
} tdp_instance_options;

/* Instance records, flat: record i starts at data.v[start.v[i]] and holds
 *   [0] len        number of ids, [CLS] and both [SEP] included (<= T)
 *   [1] len_seg0   ids with segment 0: [CLS] A [SEP]
 *   [2] is_random_next
 *   [3] n_pred
 *   ids[len], positions[n_pred], replaced[n_pred]   (see tdp_mask_tokens) */
enum { TDP_REC_LEN = 0, TDP_REC_SEG0, TDP_REC_RANDOM_NEXT, TDP_REC_NPRED, TDP_REC_HEADER };

typedef struct {
    tdp_vec_i32 data;
    tdp_vec_i64 start;
} tdp_instances;

void tdp_instances_free(tdp_instances *x);

/* Reusable buffers for one thread. */
typedef struct {
    tdp_vec_i32 a, b;
    tdp_mask_scratch mask;
} tdp_instance_scratch;

void tdp_instance_scratch_free(tdp_instance_scratch *s);

/* Appends the instances of document docs[doc_index] in dupe pass `dupe` to
 * out; random next segments come from the other documents of docs. */
void tdp_instances_from_document(tdp_instances *out, tdp_instance_scratch *s,
                                 const tdp_corpus *c, const int64_t *docs, int64_t n_docs,
                                 int64_t doc_index, int64_t dupe,
                                 const tdp_instance_options *o, const tdp_vocab *v);

/* All instances of a document set, in (dupe, document) order, built by
 * n_jobs threads; rec[i] points at record i. */
typedef struct {
    tdp_instances *parts; /* (n_parts) one per block of work */
    int64_t n_parts;
    const int32_t **rec;  /* (n) */
    int64_t n;
} tdp_instance_set;

void tdp_instance_set_build(tdp_instance_set *out, const tdp_corpus *c, const int64_t *docs,
                            int64_t n_docs, const tdp_instance_options *o, const tdp_vocab *v,
                            int n_jobs);
void tdp_instance_set_free(tdp_instance_set *x);

#endif
