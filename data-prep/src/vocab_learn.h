/* Learning a WordPiece vocabulary from a corpus (the vocab subcommand):
 * words are counted after BasicTokenizer; the vocabulary starts with
 * [PAD] [UNK] [CLS] [SEP] [MASK], then every character seen, then every
 * character's "##" form, then the most frequent adjacent pair of pieces
 * inside words is merged (BPE's frequency criterion; a merge of "x" and
 * "##y" is the piece "xy", of "##x" and "##y" the piece "##xy") until the
 * requested size is reached or no pair occurs twice. */
#ifndef TDP_VOCAB_LEARN_H
#define TDP_VOCAB_LEARN_H

#include <stdint.h>
#include <stdio.h>

#include "strmap.h"
#include "tokdrop/base/error.h"

typedef struct {
    int64_t vocab_size;     /* target size, specials included */
    int lower_case;
    int n_jobs;
    int quiet;
    int64_t min_pair_count; /* stop when the best pair occurs fewer times (2) */
} tdp_vocab_learn_options;

typedef struct {
    int64_t n_bytes, n_lines;
    int64_t n_words, n_unique_words;
    int64_t n_chars;        /* distinct characters kept */
    int64_t n_chars_dropped;/* rare characters left out because the size was too small */
    int64_t n_merges;
    int64_t n_tokens;       /* size of the vocabulary written */
    double t_count_s, t_merge_s;
} tdp_vocab_learn_summary;

/* Counts the words of the inputs (BasicTokenizer; words longer than 100
 * characters are left out, WordPiece maps them to [UNK]) into counts, a map
 * word -> count that the caller frees. */
td_status tdp_vocab_count_words(tdp_strmap *counts, const char *const *inputs, int64_t n_inputs,
                                const tdp_vocab_learn_options *o,
                                tdp_vocab_learn_summary *sum, td_error *err);

/* Learns the vocabulary from word counts and writes it, one token a line,
 * to out. */
td_status tdp_vocab_learn_from_counts(FILE *out, const tdp_strmap *counts,
                                      const tdp_vocab_learn_options *o,
                                      tdp_vocab_learn_summary *sum, td_error *err);

/* Both, writing out_path. */
td_status tdp_vocab_learn(const char *out_path, const char *const *inputs, int64_t n_inputs,
                          const tdp_vocab_learn_options *o, tdp_vocab_learn_summary *sum,
                          td_error *err);

#endif
