/* One output shard in the format of tokdrop/base/shard_format.h (NVIDIA
 * DeepLearningExamples' BERT HDF5 layout plus tokdrop's token_counts and
 * attributes). Every dataset is written in one H5Dwrite from arrays built
 * in memory. */
#ifndef TDP_SHARD_WRITER_H
#define TDP_SHARD_WRITER_H

#include <stdint.h>

#include "tokdrop/base/error.h"
#include "tokdrop/base/shard_format.h"

typedef struct {
    int64_t n, seq_len, max_pred, vocab_size; /* N, T, P, V */
    int32_t *input_ids;     /* (N, T) [PAD] after the real ids */
    int8_t *input_mask;     /* (N, T) 1 = real id */
    int8_t *segment_ids;    /* (N, T) */
    int32_t *mlm_positions; /* (N, P) sorted, then 0 */
    int32_t *mlm_ids;       /* (N, P) labels (original ids), then 0 */
    int8_t *nsp_labels;     /* (N) 1 = random next */
    int64_t *token_counts;  /* (V) original ids at real positions */
} tdp_shard_arrays;

void tdp_shard_arrays_init(tdp_shard_arrays *a, int64_t n, int64_t seq_len, int64_t max_pred,
                           int64_t vocab_size);
void tdp_shard_arrays_free(tdp_shard_arrays *a);

/* Fills the arrays from n instance records (layout in instances.h). */
void tdp_shard_arrays_fill(tdp_shard_arrays *a, const int32_t *const *rec, int32_t pad_id);

typedef struct {
    const char *vocab_hash;   /* 16 hex digits of td_vocab_hash (vocab.h) */
    const char *masking;      /* "static" or "none" */
    const char *source_files; /* input paths joined by '\n' */
    const char *split;        /* "train" or "eval" */
    int64_t seed, dupe_factor, whole_word, lower_case;
} tdp_shard_attrs;

/* Writes path atomically (DIR/.NAME.tmp, fsync, rename). The HDF5 library may not be
 * thread-safe: callers serialize calls. Errors name the file. */
td_status tdp_shard_write(const char *path, const tdp_shard_arrays *a, const tdp_shard_attrs *at,
                          td_error *err);

#endif
