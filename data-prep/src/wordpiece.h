/* The vocabulary file (BERT vocab.txt: one token per line, id = line index)
 * and WordPiece: greedy longest-match-first with "##" continuations,
 * "[UNK]" for a word longer than 100 code points or with no match, as in
 * google-research/bert tokenization.py WordpieceTokenizer. tdp_tokenizer
 * puts BasicTokenizer and WordPiece together (FullTokenizer). */
#ifndef TDP_WORDPIECE_H
#define TDP_WORDPIECE_H

#include <stddef.h>
#include <stdint.h>

#include "basic_tokenizer.h"
#include "strmap.h"
#include "tokdrop/base/error.h"
#include "util.h"

#define TDP_MAX_WORD_CHARS 100 /* max_input_chars_per_word */

typedef struct {
    int64_t n_tokens;      /* V */
    char *text;            /* all token strings, each NUL-terminated */
    int64_t *tok_off;      /* (V) offset of token id's string in text */
    tdp_strmap full;       /* token string -> id (a later duplicate line wins, as in load_vocab) */
    tdp_strmap cont;       /* for tokens "##x": "x" -> id */
    uint8_t *is_cont;      /* (V) 1 when the token starts with "##" (whole-word masking) */
    int64_t max_chars;     /* longest token in code points, "##" excluded: bounds the match */
    int32_t pad_id, unk_id, cls_id, sep_id, mask_id;
    uint64_t hash;         /* td_vocab_hash of the tokens (vocab.h) */
} tdp_vocab;

/* Reads a vocab file through the trainer's reader (td_vocab_load: its
 * whitespace rule and errors). Also an error naming the file: one of [PAD]
 * [UNK] [CLS] [SEP] [MASK] absent. */
td_status tdp_vocab_load(tdp_vocab *v, const char *path, td_error *err);

/* Builds a vocabulary from n tokens in memory (tests, vocabulary learning);
 * the special tokens are checked as for a file, with `what` in messages. */
td_status tdp_vocab_from_tokens(tdp_vocab *v, const char *const *tokens, int64_t n,
                                const char *what, td_error *err);

void tdp_vocab_free(tdp_vocab *v);

const char *tdp_vocab_token(const tdp_vocab *v, int32_t id);

/* Id of a whole token string (as written in vocab.txt), or -1. */
int32_t tdp_vocab_find(const tdp_vocab *v, const char *token);

/* Appends the WordPiece ids of one word (UTF-8, n_chars code points) to out. */
void tdp_wordpiece(tdp_vec_i32 *out, const tdp_vocab *v, const char *word, int64_t n_bytes,
                   int64_t n_chars);

/* BasicTokenizer + WordPiece with reusable buffers; one per thread. (A
 * per-thread cache of word -> ids was measured: no gain, the vocab lookup
 * of a whole word costs about what the cache lookup does.) */
typedef struct {
    const tdp_vocab *vocab;
    int lower_case;
    tdp_words words;
} tdp_tokenizer;

void tdp_tokenizer_init(tdp_tokenizer *t, const tdp_vocab *v, int lower_case);
void tdp_tokenizer_free(tdp_tokenizer *t);

/* Appends the token ids of one line of valid UTF-8 to out. */
void tdp_tokenize_line(tdp_tokenizer *t, tdp_vec_i32 *out, const char *line, size_t n_bytes);

#endif
