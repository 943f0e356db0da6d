/* The shards subcommand: read and tokenize the corpus, hold out whole
 * documents for evaluation, build instances (dupe_factor passes, NSP pairs,
 * masking), shuffle them, and write DIR/train/shard_NNNNN.h5 (and
 * DIR/eval/...). The output is a function of the inputs, the vocabulary and
 * the options; --jobs only changes how fast it comes. */
#ifndef TDP_SHARDS_H
#define TDP_SHARDS_H

#include <stdint.h>

#include "instances.h"
#include "tokdrop/base/error.h"

/* Sequences per shard when the number of shards is automatic. */
#define TDP_AUTO_SHARD_SEQS 65536

typedef struct {
    const char *vocab_path;
    const char *out_dir;
    int64_t n_shards;          /* train shards; 0 = one per TDP_AUTO_SHARD_SEQS sequences */
    tdp_instance_options inst; /* seq_len, max_pred, dupe_factor, ... seed */
    double eval_fraction;      /* of documents, held out whole (eval uses dupe factor 1) */
    int lower_case;
    int doc_per_file;          /* documents end at file ends only, not at blank lines */
    int n_jobs;
    int quiet;                 /* no progress lines */
} tdp_shards_options;

typedef struct {
    int64_t n_files, n_lines, n_bytes;
    int64_t n_docs, n_train_docs, n_eval_docs;
    int64_t n_tokens, n_unk;   /* of the tokenized corpus */
    int64_t n_train_seqs, n_eval_seqs;
    int64_t n_train_shards, n_eval_shards;
    double t_read_s, t_build_s, t_write_s, t_total_s;
} tdp_shards_summary;

/* Checks option ranges; the message names the option. */
td_status tdp_shards_check_options(const tdp_shards_options *o, td_error *err);

td_status tdp_shards_run(const tdp_shards_options *o, const char *const *inputs,
                         int64_t n_inputs, tdp_shards_summary *sum, td_error *err);

#endif
