/* UTF-8 and the one Unicode property both programs need: strict decoding
 * and validation (Unicode Table 3-7: no overlongs, surrogates or code points
 * past U+10FFFF), encoding, and Python's str.isspace(), which the vocabulary
 * reader strips (vocab.h) and tokdrop-prep's corpus reader uses for blank
 * lines. The rest of Unicode that the BERT tokenizer needs lives in
 * data-prep/src/unicode.h. */
#ifndef TOKDROP_UTF8_H
#define TOKDROP_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Decodes one strict UTF-8 sequence (no overlongs, surrogates or code points
 * past U+10FFFF) from s[0..n_bytes): returns its length in bytes and the code
 * point in *cp, or 0 when s does not start with a valid sequence. */
int td_utf8_decode(uint32_t *cp, const unsigned char *s, size_t n_bytes);

/* Byte offset of the first invalid UTF-8 sequence in s, or n_bytes if all
 * of s is valid. */
size_t td_utf8_validate(const unsigned char *s, size_t n_bytes);

/* Encodes cp (< 0x110000, no surrogate) into out; returns 1 to 4 bytes. */
int td_utf8_encode(char out[4], uint32_t cp);

/* Python's str.isspace() for one code point. */
int td_utf8_is_space(uint32_t cp);

#endif
