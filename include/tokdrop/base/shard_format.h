/* The training shard format, written by tokdrop-prep (data-prep/src/
 * shard_writer.c) and read by the trainer (src/formats/data_shard.c): one HDF5 file
 * in NVIDIA DeepLearningExamples' BERT layout (the six per-sample
 * datasets), plus tokdrop-prep's token_counts and root attributes.
 *
 * A file with the `format` attribute is tokdrop-prep's and is checked on
 * read: `format` must be TD_SHARD_FORMAT, `format_version` this version,
 * and `vocab_hash` the hash of model.vocab (td_vocab_hash, vocab.h) when
 * the run has one. A file without `format` is NVIDIA's (or made by hand)
 * and is read without those checks.
 *
 * Versions: 1 stored the FNV-1a 64 hash of the vocabulary file's bytes as
 * vocab_hash; 2 stores td_vocab_hash (XXH3-64 of the tokens as read). The
 * trainer refuses version 1 and asks for the shards to be prepared again,
 * rather than keep a second hash function to check them. */
#ifndef TOKDROP_SHARD_FORMAT_H
#define TOKDROP_SHARD_FORMAT_H

#include <stdint.h>

#define TD_SHARD_FORMAT "tokdrop-shard"
#define TD_SHARD_FORMAT_VERSION 2

/* Datasets: N samples of T = seq_length tokens, P = max_pred predictions,
 * V = vocab_size. The first six are NVIDIA's, in the trainer's column
 * order; token_counts is tokdrop-prep's. */
typedef enum {
    TD_SHARD_INPUT_IDS,     /* (N, T) int32: [PAD] after the real ids */
    TD_SHARD_INPUT_MASK,    /* (N, T) int8: 1 = real id */
    TD_SHARD_SEGMENT_IDS,   /* (N, T) int8 */
    TD_SHARD_MLM_POSITIONS, /* (N, P) int32: sorted, then 0 */
    TD_SHARD_MLM_IDS,       /* (N, P) int32: labels (original ids), then 0 */
    TD_SHARD_NSP_LABELS,    /* (N) int8: 1 = random next */
    TD_SHARD_TOKEN_COUNTS,  /* (V) int64: original ids at real positions */
    TD_SHARD_N_DATASETS
} td_shard_dataset;

typedef struct {
    const char *name;
    int elem_bytes; /* stored as little-endian signed integers of this size */
} td_shard_dataset_info;

extern const td_shard_dataset_info td_shard_datasets[TD_SHARD_N_DATASETS];

/* Attributes of the root group. Strings are fixed-length UTF-8; numbers
 * int64. */
#define TD_SHARD_ATTR_FORMAT "format"                 /* TD_SHARD_FORMAT */
#define TD_SHARD_ATTR_FORMAT_VERSION "format_version" /* TD_SHARD_FORMAT_VERSION */
#define TD_SHARD_ATTR_VOCAB_HASH "vocab_hash"         /* 16 hex digits: td_vocab_hash */
#define TD_SHARD_ATTR_VOCAB_SIZE "vocab_size"         /* V */
#define TD_SHARD_ATTR_SEQ_LENGTH "seq_length"         /* T */
#define TD_SHARD_ATTR_MAX_PRED "max_pred"             /* P */
#define TD_SHARD_ATTR_MASKING "masking"               /* "static" or "none" */
#define TD_SHARD_ATTR_SOURCE_FILES "source_files"     /* input paths joined by '\n' */
#define TD_SHARD_ATTR_SPLIT "split"                   /* "train" or "eval" */
#define TD_SHARD_ATTR_SEED "seed"
#define TD_SHARD_ATTR_DUPE_FACTOR "dupe_factor"
#define TD_SHARD_ATTR_WHOLE_WORD "whole_word"         /* 0 or 1 */
#define TD_SHARD_ATTR_LOWER_CASE "lower_case"         /* 0 or 1 */

#endif
