/* The vocabulary file (BERT vocab.txt: one token per line, the line number
 * from 0 is the id), read the same way by the trainer (config token
 * strings, dynamic masking, the shards' vocab_hash) and by tokdrop-prep
 * (WordPiece, on top of this reader). */
#ifndef TOKDROP_VOCAB_H
#define TOKDROP_VOCAB_H

#include <stdint.h>

#include "tokdrop/base/error.h"

typedef struct {
    int64_t size;
    char **tokens; /* (size) NUL-terminated, surrounding whitespace stripped */
    char *text;    /* the tokens' bytes; tokens point into it */
    uint64_t hash; /* td_vocab_hash of the tokens */
} td_vocab;

/* Reads path. Lines end at '\n'; each is stripped of the code points for
 * which Python's str.isspace() holds at both ends (so "[CLS] " and a CRLF
 * line both give "[CLS]"), as google-research/bert's load_vocab does with
 * token.strip(). That reader made the vocabularies and the pretraining data
 * BERT is trained on, and tokdrop-prep follows it; Hugging Face's
 * BertTokenizer only drops the newline (rstrip("\n")), but a token with
 * surrounding whitespace can never come out of the BasicTokenizer, which
 * splits on whitespace, so stripping loses no token text could produce
 * while it keeps an editor's stray space from hiding a special token.
 * Errors name the file (and line): unreadable, invalid UTF-8, a NUL byte,
 * no lines, or more than 2^31-1 of them. */
td_status td_vocab_load(td_vocab *vocab, const char *path, td_error *err);
void td_vocab_free(td_vocab *vocab);

/* Id of token, or -1. Linear scan: used a handful of times at start-up. */
int64_t td_vocab_find(const td_vocab *vocab, const char *token);

/* The vocabulary's identity, stored by tokdrop-prep in each shard's
 * vocab_hash attribute and checked by the trainer: the project's hash
 * (hash.h) of the tokens as read, each followed by '\n' (the file a clean
 * vocabulary is), so it depends on the ids and token strings only, not on
 * stray whitespace or line endings. */
uint64_t td_vocab_hash(const char *const *tokens, int64_t n_tokens);

#endif
