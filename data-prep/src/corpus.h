/* The tokenized corpus: documents made of segments (one per non-empty input
 * line) made of WordPiece ids, as create_pretraining_data.py's
 * all_documents. A blank line (whitespace only) ends a document, and so does
 * the end of each input file; empty documents are dropped. With
 * doc_per_file, only file ends do (for corpora like documentation trees,
 * where blank lines separate paragraphs, not documents). */
#ifndef TDP_CORPUS_H
#define TDP_CORPUS_H

#include <stdint.h>
#include <stdio.h>

#include "input.h"
#include "tokdrop/base/error.h"
#include "util.h"
#include "wordpiece.h"

typedef struct {
    tdp_vec_i32 tokens;    /* ids of all segments, concatenated */
    tdp_vec_i64 seg_start; /* (n_segs + 1) offsets into tokens */
    tdp_vec_i64 doc_start; /* (n_docs + 1) offsets into segments */
    int64_t n_unk;         /* [UNK] ids among tokens */
    int64_t n_lines;       /* input lines read */
    int64_t n_bytes;       /* input bytes read (after gunzip) */
} tdp_corpus;

int64_t tdp_corpus_n_docs(const tdp_corpus *c);

/* Progress callback: called on the calling thread after each chunk. */
typedef void (*tdp_progress_fn)(void *ctx, const tdp_corpus *c);

/* Reads and tokenizes all inputs with n_jobs threads. Errors name the file
 * (and line): unreadable input, invalid UTF-8, an empty corpus. */
td_status tdp_corpus_read(tdp_corpus *out, const tdp_inputs *in, const tdp_vocab *vocab,
                          int lower_case, int doc_per_file, int n_jobs, tdp_progress_fn progress,
                          void *progress_ctx, td_error *err);

void tdp_corpus_free(tdp_corpus *c);

/* Tokenizes all inputs and writes, per input line, its tokens joined by one
 * space (the tokenize subcommand); *n_bytes gets the input bytes read. */
td_status tdp_tokenize_to_file(FILE *out, const tdp_inputs *in, const tdp_vocab *vocab,
                               int lower_case, int n_jobs, int64_t *n_bytes, td_error *err);

/* The chunk size the pipeline uses (bytes). */
#define TDP_CHUNK_BYTES (1 << 20)

#endif
