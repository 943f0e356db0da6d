/* Loading vocab.txt (vocab.h). */
#include "tokdrop/base/vocab.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fs.h"
#include "tokdrop/base/hash.h"
#include "tokdrop/base/utf8.h"

/* Python's str.strip(): drops str.isspace() code points at both ends of
 * valid UTF-8. */
static void strip_line(const char **s, int64_t *n)
{
    const unsigned char *p = (const unsigned char *)*s;
    int64_t lo = 0, hi = *n;
    while (lo < hi) {
        uint32_t cp;
        int len = td_utf8_decode(&cp, p + lo, (size_t)(hi - lo));
        if (len == 0 || !td_utf8_is_space(cp)) break;
        lo += len;
    }
    while (hi > lo) {
        int64_t k = hi - 1;
        while (k > lo && (p[k] & 0xC0) == 0x80) k--;
        uint32_t cp;
        int len = td_utf8_decode(&cp, p + k, (size_t)(hi - k));
        if (len == 0 || !td_utf8_is_space(cp)) break;
        hi = k;
    }
    *s += lo;
    *n = hi - lo;
}

static td_status fail(td_vocab *v, char *buf, td_status st)
{
    free(buf);
    td_vocab_free(v);
    return st;
}

td_status td_vocab_load(td_vocab *v, const char *path, td_error *err)
{
    memset(v, 0, sizeof(*v));
    FILE *f;
    td_status st = td_fs_open_regular(&f, path, "a BERT vocab.txt (one token per line)", TD_ERR_IO, err);
    if (st != TD_OK) return st;
    size_t n = 0, cap = 1 << 16, got;
    char *buf = td_xmalloc(cap);
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            cap *= 2;
            char *grown = realloc(buf, cap);
            TD_ASSERT(grown != NULL);
            buf = grown;
        }
    }
    int read_error = ferror(f);
    fclose(f);
    if (read_error)
        return fail(v, buf, td_error_set(err, TD_ERR_IO, "%s: read error on vocabulary file",
                                             path));
    int64_t lines = 0;
    for (size_t i = 0; i < n; i++) lines += buf[i] == '\n';
    if (n > 0 && buf[n - 1] != '\n') lines++;
    if (lines == 0)
        return fail(v, buf, td_error_set(err, TD_ERR_FORMAT, "%s: empty vocabulary file; "
                                             "expected a BERT vocab.txt (one token per line)",
                                             path));
    if (lines > INT32_MAX)
        return fail(v, buf, td_error_set(err, TD_ERR_FORMAT, "%s: %lld tokens; expected at "
                                             "most 2^31-1", path, (long long)lines));
    /* Tokens are copied to the front of buf, each with a NUL in place of
     * its newline: stripping only shortens, so they never overtake. */
    v->tokens = td_xmalloc((size_t)lines * sizeof(char *));
    size_t pos = 0, out = 0;
    for (int64_t line = 0; line < lines; line++) {
        const char *s = buf + pos;
        const char *nl = memchr(s, '\n', n - pos);
        int64_t len = nl ? nl - s : (int64_t)(n - pos);
        pos += (size_t)len + (nl ? 1 : 0);
        size_t bad = td_utf8_validate((const unsigned char *)s, (size_t)len);
        if (bad != (size_t)len)
            return fail(v, buf, td_error_set(err, TD_ERR_FORMAT, "%s:%lld: invalid UTF-8 "
                                                 "(byte 0x%02x at byte column %lld); expected "
                                                 "a UTF-8 vocab.txt", path, (long long)line + 1,
                                                 (unsigned char)s[bad], (long long)bad + 1));
        strip_line(&s, &len);
        if (memchr(s, '\0', (size_t)len))
            return fail(v, buf, td_error_set(err, TD_ERR_FORMAT, "%s:%lld: NUL byte in a "
                                                 "token; expected a text vocab.txt", path,
                                                 (long long)line + 1));
        memmove(buf + out, s, (size_t)len);
        v->tokens[line] = (char *)(uintptr_t)out; /* an offset until buf stops moving */
        out += (size_t)len;
        buf[out++] = '\0';
    }
    /* out is n + 1 when the last line has no newline; the read loop left
     * n < cap, so its NUL fits */
    TD_ASSERT(out <= cap);
    v->text = buf;
    for (int64_t i = 0; i < lines; i++) v->tokens[i] = v->text + (uintptr_t)v->tokens[i];
    v->size = lines;
    v->hash = td_vocab_hash((const char *const *)v->tokens, v->size);
    return TD_OK;
}

void td_vocab_free(td_vocab *v)
{
    free(v->tokens);
    free(v->text);
    memset(v, 0, sizeof(*v));
}

int64_t td_vocab_find(const td_vocab *v, const char *token)
{
    for (int64_t i = 0; i < v->size; i++)
        if (strcmp(v->tokens[i], token) == 0) return i;
    return -1;
}

uint64_t td_vocab_hash(const char *const *tokens, int64_t n_tokens)
{
    td_hash_state *h = td_hash_state_new();
    for (int64_t i = 0; i < n_tokens; i++) {
        td_hash_update(h, tokens[i], strlen(tokens[i]));
        td_hash_update(h, "\n", 1);
    }
    uint64_t d = td_hash_digest(h);
    td_hash_state_free(h);
    return d;
}
