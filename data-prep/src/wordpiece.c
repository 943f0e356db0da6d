/* vocab.txt loading and WordPiece. Continuation pieces live in their own map
 * keyed without "##", so the greedy match looks up substrings of the word in
 * place instead of building "##" + substring for every candidate. */
#include "wordpiece.h"

#include <stdlib.h>
#include <string.h>

#include "tokdrop/base/vocab.h"

static int64_t count_chars(const char *s, int64_t n_bytes)
{
    int64_t n = 0;
    for (int64_t i = 0; i < n_bytes; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) n++;
    return n;
}

/* Builds the maps from v->text / v->tok_off, then checks the specials. */
static td_status finish_vocab(tdp_vocab *v, const char *what, td_error *err)
{
    tdp_strmap_init(&v->full, v->n_tokens);
    tdp_strmap_init(&v->cont, v->n_tokens);
    v->is_cont = td_xcalloc((size_t)v->n_tokens, 1);
    v->max_chars = 1;
    for (int64_t id = 0; id < v->n_tokens; id++) {
        const char *tok = v->text + v->tok_off[id];
        int32_t len = (int32_t)strlen(tok);
        *tdp_strmap_upsert(&v->full, tok, len, id, NULL) = id;
        int64_t nc = count_chars(tok, len);
        if (len > 2 && tok[0] == '#' && tok[1] == '#') {
            v->is_cont[id] = 1;
            *tdp_strmap_upsert(&v->cont, tok + 2, len - 2, id, NULL) = id;
            nc -= 2;
        }
        if (nc > v->max_chars) v->max_chars = nc;
    }
    static const char *const names[5] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    int32_t *ids[5] = {&v->pad_id, &v->unk_id, &v->cls_id, &v->sep_id, &v->mask_id};
    for (int k = 0; k < 5; k++) {
        *ids[k] = tdp_vocab_find(v, names[k]);
        if (*ids[k] < 0) {
            td_error_set(err, TD_ERR_FORMAT,
                         "%s: special token %s not found; expected a BERT vocab.txt (one token "
                         "per line) holding [PAD] [UNK] [CLS] [SEP] [MASK]",
                         what, names[k]);
            tdp_vocab_free(v);
            return TD_ERR_FORMAT;
        }
    }
    return TD_OK;
}

td_status tdp_vocab_from_tokens(tdp_vocab *v, const char *const *tokens, int64_t n,
                                const char *what, td_error *err)
{
    memset(v, 0, sizeof(*v));
    size_t total = 0;
    for (int64_t i = 0; i < n; i++) total += strlen(tokens[i]) + 1;
    v->text = td_xmalloc(total);
    v->tok_off = td_xmalloc((size_t)(n > 0 ? n : 1) * sizeof(int64_t));
    size_t off = 0;
    for (int64_t i = 0; i < n; i++) {
        size_t len = strlen(tokens[i]);
        memcpy(v->text + off, tokens[i], len + 1);
        v->tok_off[i] = (int64_t)off;
        off += len + 1;
    }
    v->n_tokens = n;
    v->hash = td_vocab_hash(tokens, n);
    return finish_vocab(v, what, err);
}

td_status tdp_vocab_load(tdp_vocab *v, const char *path, td_error *err)
{
    /* the trainer's reader, so that both programs see the same tokens */
    td_vocab file;
    td_status st = td_vocab_load(&file, path, err);
    if (st != TD_OK) {
        memset(v, 0, sizeof(*v));
        return st;
    }
    st = tdp_vocab_from_tokens(v, (const char *const *)file.tokens, file.size, path, err);
    td_vocab_free(&file);
    return st;
}

void tdp_vocab_free(tdp_vocab *v)
{
    free(v->text);
    free(v->tok_off);
    free(v->is_cont);
    if (v->full.slots) tdp_strmap_free(&v->full);
    if (v->cont.slots) tdp_strmap_free(&v->cont);
    memset(v, 0, sizeof(*v));
}

const char *tdp_vocab_token(const tdp_vocab *v, int32_t id)
{
    TD_ASSERT(id >= 0 && id < v->n_tokens);
    return v->text + v->tok_off[id];
}

int32_t tdp_vocab_find(const tdp_vocab *v, const char *token)
{
    const int64_t *id = tdp_strmap_find(&v->full, token, (int32_t)strlen(token));
    return id ? (int32_t)*id : -1;
}

void tdp_wordpiece(tdp_vec_i32 *out, const tdp_vocab *v, const char *word, int64_t n_bytes,
                   int64_t n_chars)
{
    if (n_chars > TDP_MAX_WORD_CHARS) {
        tdp_vec_i32_push(out, v->unk_id);
        return;
    }
    int64_t off[TDP_MAX_WORD_CHARS + 1]; /* byte offset of each code point */
    if (n_bytes == n_chars) {
        for (int64_t i = 0; i <= n_chars; i++) off[i] = i;
    } else {
        int64_t c = 0;
        for (int64_t i = 0; i < n_bytes; i++)
            if (((unsigned char)word[i] & 0xC0) != 0x80) off[c++] = i;
        TD_ASSERT(c == n_chars);
        off[c] = n_bytes;
    }
    int64_t mark = out->n;
    int64_t start = 0;
    while (start < n_chars) {
        /* No vocab piece is longer than max_chars, so longer candidates
         * cannot match: starting there gives the same result faster. */
        int64_t end = n_chars - start > v->max_chars ? start + v->max_chars : n_chars;
        const tdp_strmap *m = start > 0 ? &v->cont : &v->full;
        const int64_t *id = NULL;
        while (start < end) {
            id = tdp_strmap_find(m, word + off[start], (int32_t)(off[end] - off[start]));
            if (id) break;
            end--;
        }
        if (!id) {
            out->n = mark;
            tdp_vec_i32_push(out, v->unk_id);
            return;
        }
        tdp_vec_i32_push(out, (int32_t)*id);
        start = end;
    }
}

void tdp_tokenizer_init(tdp_tokenizer *t, const tdp_vocab *v, int lower_case)
{
    t->vocab = v;
    t->lower_case = lower_case;
    tdp_words_init(&t->words);
}

void tdp_tokenizer_free(tdp_tokenizer *t) { tdp_words_free(&t->words); }

void tdp_tokenize_line(tdp_tokenizer *t, tdp_vec_i32 *out, const char *line, size_t n_bytes)
{
    tdp_words *w = &t->words;
    tdp_basic_tokenize(w, line, n_bytes, t->lower_case);
    for (int64_t i = 0; i < w->n_words; i++)
        tdp_wordpiece(out, t->vocab, w->bytes + w->start[i], w->start[i + 1] - w->start[i],
                      w->n_chars[i]);
}
