/* Shard files as the data reader sees them (SPEC section 5); private to
 * data.c and data_shard.c. A shard is an NVIDIA-format HDF5 file; the reader
 * keeps samples in memory narrowed to the smallest unsigned width that holds
 * every valid value (ids: 1, 2 or 4 bytes from vocab_size; masks, segments,
 * NSP labels: 1 byte; positions: 1 or 2 bytes from seq_len), which makes a
 * BERT sample (T=128, P=20, V=30522) take ~570 bytes instead of ~1.7 KB as
 * int32. Every value is validated as it is read (ids in [0, V), masks,
 * segments and labels in {0, 1}, positions in [0, T)), so the model can
 * index embeddings without checks. */
#ifndef TOKDROP_DATA_SHARD_H
#define TOKDROP_DATA_SHARD_H

#include <stdbool.h>
#include <stdint.h>

#include "tokdrop/base/error.h"
#include "tokdrop/base/shard_format.h"

/* The per-sample datasets (the format's first six), as columns. */
enum {
    TD_D_IDS = TD_SHARD_INPUT_IDS,
    TD_D_MASK = TD_SHARD_INPUT_MASK,
    TD_D_SEG = TD_SHARD_SEGMENT_IDS,
    TD_D_POS = TD_SHARD_MLM_POSITIONS,
    TD_D_MLM = TD_SHARD_MLM_IDS,
    TD_D_NSP = TD_SHARD_NSP_LABELS,
    TD_D_COUNT
};

/* What a sample looks like: sizes, and whether the shard's masked_lm_*
 * datasets are used (static masking) or not (dynamic); and the vocabulary
 * that tokdrop-prep's shards must have been made with (vocab_path NULL:
 * the run has none, so their vocab_hash is not checked). */
typedef struct {
    int64_t T, P, V;
    bool dynamic_masking;
    const char *vocab_path; /* model.vocab, for messages */
    uint64_t vocab_hash;    /* its td_vocab_hash */
} td_shard_layout;

/* One shard file and the rows of it that this rank owns: rows
 * first + j * stride for j in [0, n_owned). */
typedef struct {
    char *path;
    int64_t n_rows;
    int64_t offset;  /* global sample id of row 0 (files in glob order) */
    int64_t first, stride, n_owned;
} td_shard;

/* Narrowed samples in memory: column k holds cap rows of its width. */
typedef struct {
    void *p;
    int width;
} td_column;

typedef struct {
    int64_t cap, n;
    td_column col[TD_D_COUNT]; /* IDS..SEG (cap, T), POS/MLM (cap, P) or NULL, NSP (cap) */
    int64_t *global_ids;       /* (cap) */
} td_samples;

static inline int32_t td_column_get(const td_column *c, int64_t i)
{
    switch (c->width) {
    case 1: return ((const uint8_t *)c->p)[i];
    case 2: return ((const uint16_t *)c->p)[i];
    default: return ((const int32_t *)c->p)[i];
    }
}

/* Bytes one sample takes in a td_samples block, its global id included. */
int64_t td_samples_sample_bytes(const td_shard_layout *l);

/* Allocates a block for cap samples; TD_ERR_NOMEM (naming the size) when
 * memory is short. td_samples_free accepts a zeroed or failed block. */
td_status td_samples_alloc(td_samples *s, int64_t cap, const td_shard_layout *l, td_error *err);
void td_samples_free(td_samples *s);

/* Expands a glob into a byte-order sorted list of paths (independent of the
 * locale, so all ranks agree on file indices). `key` names the config key
 * the pattern came from, for the message when nothing matches. */
td_status td_shard_glob(char ***paths, int64_t *n_paths, const char *pattern, const char *key,
                        td_error *err);
void td_shard_free_paths(char **paths, int64_t n);

/* Checks one shard and returns its row count: tokdrop-prep's attributes
 * when it has them (format, format_version, vocab_hash against
 * l->vocab_hash), then the datasets (presence, integer type, rank, shape,
 * equal row counts). */
td_status td_shard_probe(int64_t *n_rows, const char *path, const td_shard_layout *l,
                         td_error *err);

/* Appends the owned rows j in [j0, j1) of the shard to s (which has room),
 * validating every value; an error names the file, dataset, row and column. */
td_status td_shard_read(td_samples *s, const td_shard *sh, int64_t j0, int64_t j1,
                        const td_shard_layout *l, td_error *err);

/* Sum of the `token_counts [V]` datasets of ALL shard files matching the
 * glob (so every rank gets the same counts). Files without the dataset are
 * an error naming the file (frequency importance needs it). counts is (V). */
td_status td_data_token_counts(const char *glob_pattern, int64_t vocab_size, int64_t *counts,
                               td_error *err);

#endif
