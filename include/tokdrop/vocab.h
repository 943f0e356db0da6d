/* A WordPiece vocabulary file as the trainer needs it: one token per line,
 * the line number (from 0) is the id. Used to resolve token strings of the
 * config (allow/deny, special tokens) and to export. */
#ifndef TOKDROP_VOCAB_H
#define TOKDROP_VOCAB_H

#include <stdint.h>

#include "tokdrop/error.h"

typedef struct {
    int64_t size;
    char **tokens; /* (size) */
    char *text;    /* the file's bytes; tokens point into it */
} td_vocab;

td_status td_vocab_load(td_vocab *vocab, const char *path, td_error *err);
void td_vocab_free(td_vocab *vocab);

/* Id of token, or -1. Linear scan: used a handful of times at start-up. */
int64_t td_vocab_find(const td_vocab *vocab, const char *token);

#endif
