/* BERT's BasicTokenizer (google-research/bert tokenization.py): remove
 * control characters, split on whitespace, put CJK ideographs in words of
 * their own, lower-case and strip accents (NFD, drop Mn) unless cased, and
 * split off every punctuation character. */
#ifndef TDP_BASIC_TOKENIZER_H
#define TDP_BASIC_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

/* The words of one line: reusable buffers, grown as needed. */
typedef struct {
    char *bytes;        /* the words' UTF-8, concatenated */
    int64_t n_bytes, cap_bytes;
    int64_t *start;     /* (n_words + 1) byte offsets into bytes */
    int64_t *n_chars;   /* (n_words) code points per word */
    int64_t n_words, cap_words;
    /* scratch for the whitespace-separated token being processed: its code
     * points, lower-cased (up to 2x), NFD-decomposed (up to 4x that) */
    uint32_t *cps, *lowered, *nfd;
    uint8_t *ccc;
    int64_t cap_cps, cap_lowered, cap_nfd;
    uint8_t ascii_flags[128]; /* tdp_unicode_flags of ASCII, without the call */
} tdp_words;

void tdp_words_init(tdp_words *w);
void tdp_words_free(tdp_words *w);

/* Replaces the content of out with the words of text (n_bytes of UTF-8; a
 * byte sequence that is not valid UTF-8 is dropped, so callers that must
 * report it validate first). lower_case: the uncased model's lower-casing
 * and accent stripping. */
void tdp_basic_tokenize(tdp_words *out, const char *text, size_t n_bytes, int lower_case);

#endif
