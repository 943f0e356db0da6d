/* BasicTokenizer, one whitespace-separated token at a time: the code points
 * of a token are collected (controls removed, CJK ideographs cut out), then
 * lower-cased with Python's str.lower() semantics (final sigma included),
 * NFD-decomposed with canonical ordering, stripped of Mn, and split at
 * punctuation. ASCII-only tokens skip the Unicode steps. */
#include "basic_tokenizer.h"

#include <stdlib.h>
#include <string.h>

#include "tokdrop/base/error.h"
#include "unicode.h"
#include "util.h"

enum { SIGMA_CAPITAL = 0x3A3, SIGMA_FINAL = 0x3C2, SIGMA_SMALL = 0x3C3 };

void tdp_words_init(tdp_words *w)
{
    memset(w, 0, sizeof(*w));
    w->cap_bytes = 256;
    w->bytes = td_xmalloc((size_t)w->cap_bytes);
    w->cap_words = 64;
    w->start = td_xmalloc((size_t)(w->cap_words + 1) * sizeof(int64_t));
    w->n_chars = td_xmalloc((size_t)w->cap_words * sizeof(int64_t));
    w->start[0] = 0;
    for (uint32_t c = 0; c < 128; c++) w->ascii_flags[c] = tdp_unicode_flags(c);
}

void tdp_words_free(tdp_words *w)
{
    free(w->bytes);
    free(w->start);
    free(w->n_chars);
    free(w->cps);
    free(w->lowered);
    free(w->nfd);
    free(w->ccc);
    memset(w, 0, sizeof(*w));
}

static int64_t grown(int64_t cap, int64_t n)
{
    cap = cap ? cap : 64;
    while (cap < n) cap *= 2;
    return cap;
}

static void reserve_cps(tdp_words *w, int64_t n)
{
    if (n <= w->cap_cps) return;
    w->cap_cps = grown(w->cap_cps, n);
    w->cps = tdp_xrealloc(w->cps, (size_t)w->cap_cps * sizeof(uint32_t));
}

/* The Unicode path of a token of n code points: lower-casing at most
 * doubles it (U+0130), canonical decomposition at most quadruples that.
 * Sized per token, so that only long non-ASCII tokens cost memory. */
static void reserve_unicode(tdp_words *w, int64_t n)
{
    if (2 * n > w->cap_lowered) {
        w->cap_lowered = grown(w->cap_lowered, 2 * n);
        w->lowered = tdp_xrealloc(w->lowered, (size_t)w->cap_lowered * sizeof(uint32_t));
    }
    if (8 * n > w->cap_nfd) {
        w->cap_nfd = grown(w->cap_nfd, 8 * n);
        w->nfd = tdp_xrealloc(w->nfd, (size_t)w->cap_nfd * sizeof(uint32_t));
        w->ccc = tdp_xrealloc(w->ccc, (size_t)w->cap_nfd);
    }
}

static void emit_word(tdp_words *w, const uint32_t *cps, int64_t n)
{
    if (w->n_bytes + 4 * n > w->cap_bytes) {
        while (w->n_bytes + 4 * n > w->cap_bytes) w->cap_bytes *= 2;
        w->bytes = tdp_xrealloc(w->bytes, (size_t)w->cap_bytes);
    }
    if (w->n_words == w->cap_words) {
        w->cap_words *= 2;
        w->start = tdp_xrealloc(w->start, (size_t)(w->cap_words + 1) * sizeof(int64_t));
        w->n_chars = tdp_xrealloc(w->n_chars, (size_t)w->cap_words * sizeof(int64_t));
    }
    char *out = w->bytes + w->n_bytes;
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        if (cps[i] < 0x80) out[k++] = (char)cps[i];
        else k += td_utf8_encode(out + k, cps[i]);
    }
    w->n_bytes += k;
    w->n_chars[w->n_words] = n;
    w->start[++w->n_words] = w->n_bytes;
}

/* _run_split_on_punc: each punctuation character is a word of its own. */
static void split_punct_emit(tdp_words *w, const uint32_t *cps, int64_t n)
{
    int64_t ws = 0;
    for (int64_t i = 0; i < n; i++) {
        uint8_t f = cps[i] < 0x80 ? w->ascii_flags[cps[i]] : tdp_unicode_flags(cps[i]);
        if (f & TDP_UC_PUNCT) {
            if (i > ws) emit_word(w, cps + ws, i - ws);
            emit_word(w, cps + i, 1);
            ws = i + 1;
        }
    }
    if (n > ws) emit_word(w, cps + ws, n - ws);
}

/* Python's Final_Sigma condition for in[i] == U+03A3:
 * cased case-ignorable* SIGMA !(case-ignorable* cased). */
static int is_final_sigma(const uint32_t *in, int64_t n, int64_t i)
{
    int64_t j = i - 1;
    while (j >= 0 && (tdp_unicode_flags(in[j]) & TDP_UC_CASE_IGNORABLE)) j--;
    if (j < 0 || !(tdp_unicode_flags(in[j]) & TDP_UC_CASED)) return 0;
    j = i + 1;
    while (j < n && (tdp_unicode_flags(in[j]) & TDP_UC_CASE_IGNORABLE)) j++;
    return j == n || !(tdp_unicode_flags(in[j]) & TDP_UC_CASED);
}

/* str.lower() of a whole token; out holds up to 2n code points. */
static int64_t lower_token(uint32_t *out, const uint32_t *in, int64_t n)
{
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t cp = in[i];
        if (cp == SIGMA_CAPITAL) {
            out[k++] = is_final_sigma(in, n, i) ? SIGMA_FINAL : SIGMA_SMALL;
        } else if (tdp_unicode_flags(cp) & TDP_UC_HAS_LOWER) {
            uint32_t m[3];
            int len = tdp_unicode_lower(m, cp);
            for (int t = 0; t < len; t++) out[k++] = m[t];
        } else {
            out[k++] = cp;
        }
    }
    return k;
}

/* _run_strip_accents: NFD (full canonical decomposition, then the canonical
 * ordering of each run of non-starters), then drop Mn. The ordering matters
 * because a few non-Mn marks (Mc with non-zero class) survive the drop.
 * out holds up to 4n code points, ccc as many bytes. */
static int64_t strip_accents(uint32_t *out, uint8_t *ccc, const uint32_t *in, int64_t n)
{
    int64_t k = 0;
    int reorder = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t cp = in[i];
        uint32_t d[4];
        int len = 1;
        d[0] = cp;
        if (cp >= 0x80 && (tdp_unicode_flags(cp) & TDP_UC_HAS_DECOMP)) len = tdp_unicode_decompose(d, cp);
        for (int t = 0; t < len; t++) {
            uint8_t c = d[t] < 0x300 ? 0 : tdp_unicode_ccc(d[t]);
            if (c && k > 0 && ccc[k - 1] > c) reorder = 1;
            out[k] = d[t];
            ccc[k++] = c;
        }
    }
    if (reorder) {
        /* Stable insertion sort by class inside each run of non-starters. */
        for (int64_t i = 1; i < k; i++) {
            uint8_t c = ccc[i];
            if (c == 0) continue;
            uint32_t cp = out[i];
            int64_t j = i - 1;
            while (j >= 0 && ccc[j] > c) {
                out[j + 1] = out[j];
                ccc[j + 1] = ccc[j];
                j--;
            }
            out[j + 1] = cp;
            ccc[j + 1] = c;
        }
    }
    int64_t m = 0;
    for (int64_t i = 0; i < k; i++)
        if (!(tdp_unicode_flags(out[i]) & TDP_UC_MN)) out[m++] = out[i];
    return m;
}

static void flush_token(tdp_words *w, int64_t n, int ascii, int lower_case)
{
    if (n == 0) return;
    uint32_t *cps = w->cps;
    if (lower_case) {
        if (ascii) {
            for (int64_t i = 0; i < n; i++)
                if (cps[i] >= 'A' && cps[i] <= 'Z') cps[i] += 32;
        } else {
            reserve_unicode(w, n);
            int64_t nl = lower_token(w->lowered, cps, n);
            n = strip_accents(w->nfd, w->ccc, w->lowered, nl);
            cps = w->nfd;
        }
    }
    split_punct_emit(w, cps, n);
}

void tdp_basic_tokenize(tdp_words *out, const char *text, size_t n_bytes, int lower_case)
{
    const unsigned char *s = (const unsigned char *)text;
    out->n_bytes = 0;
    out->n_words = 0;
    out->start[0] = 0;
    reserve_cps(out, 64);
    int64_t nt = 0; /* code points of the current token */
    int ascii = 1;
    size_t i = 0;
    while (i < n_bytes) {
        uint32_t cp = s[i];
        if (cp < 0x80) {
            i++;
        } else {
            int len = td_utf8_decode(&cp, s + i, n_bytes - i);
            if (len == 0) {
                i++;
                continue;
            }
            i += (size_t)len;
        }
        uint8_t f = cp < 0x80 ? out->ascii_flags[cp] : tdp_unicode_flags(cp);
        if (f & TDP_UC_CONTROL) continue;
        if (f & TDP_UC_SPACE) {
            flush_token(out, nt, ascii, lower_case);
            nt = 0;
            ascii = 1;
            continue;
        }
        if (cp >= 0x3400 && tdp_unicode_is_cjk(cp)) {
            /* _tokenize_chinese_chars puts spaces around it. */
            flush_token(out, nt, ascii, lower_case);
            out->cps[0] = cp;
            flush_token(out, 1, 0, lower_case);
            nt = 0;
            ascii = 1;
            continue;
        }
        if (nt == out->cap_cps) reserve_cps(out, nt + 1);
        out->cps[nt++] = cp;
        if (cp >= 0x80) ascii = 0;
    }
    flush_token(out, nt, ascii, lower_case);
}
