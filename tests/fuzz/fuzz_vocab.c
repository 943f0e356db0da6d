/* Fuzzes the vocabulary reader (td_vocab_load, the trainer's) and
 * tokdrop-prep's vocabulary on top of it (tdp_vocab_load: the WordPiece
 * maps, the special tokens). The two must agree on every token and on
 * the hash that ties shards to their vocabulary. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "tokdrop/base/vocab.h"
#include "wordpiece.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fz_write(0, data, size);
    td_vocab v;
    td_error err = {0};
    td_status st = td_vocab_load(&v, path, &err);
    fz_check_error(st, &err, "td_vocab_load");
    if (st == TD_OK) {
        if (v.size < 1 || v.hash != td_vocab_hash((const char *const *)v.tokens, v.size)) abort();
        for (int64_t i = 0; i < v.size; i++) {
            if (strchr(v.tokens[i], '\n')) abort();
            int64_t id = td_vocab_find(&v, v.tokens[i]);
            if (id < 0 || id > i || strcmp(v.tokens[id], v.tokens[i]) != 0) abort();
        }
    }
    tdp_vocab pv;
    td_status pst = tdp_vocab_load(&pv, path, &err);
    fz_check_error(pst, &err, "tdp_vocab_load");
    if (st != TD_OK && pst == TD_OK) abort(); /* prep reads through the trainer's reader */
    if (pst == TD_OK) {
        if (pv.n_tokens != v.size || pv.hash != v.hash) abort();
        for (int64_t i = 0; i < v.size; i++) {
            if (strcmp(tdp_vocab_token(&pv, (int32_t)i), v.tokens[i]) != 0) abort();
            int32_t id = tdp_vocab_find(&pv, v.tokens[i]); /* a later duplicate wins */
            if (id < i || strcmp(v.tokens[id], v.tokens[i]) != 0) abort();
        }
        tdp_vocab_free(&pv);
    }
    if (st == TD_OK) td_vocab_free(&v);
    return 0;
}
