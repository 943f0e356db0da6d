/* Loading vocab.txt. */
#include "tokdrop/vocab.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

td_status td_vocab_load(td_vocab *v, const char *path, td_error *err)
{
    memset(v, 0, sizeof(*v));
    FILE *f = fopen(path, "rb");
    if (!f) return td_error_set(err, TD_ERR_IO, "%s: cannot open vocabulary: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    v->text = malloc((size_t)n + 1);
    if (!v->text || fread(v->text, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        td_vocab_free(v);
        return td_error_set(err, TD_ERR_IO, "%s: cannot read vocabulary", path);
    }
    fclose(f);
    v->text[n] = '\0';
    int64_t lines = 0;
    for (long i = 0; i < n; i++) lines += v->text[i] == '\n';
    if (n > 0 && v->text[n - 1] != '\n') lines++;
    if (lines == 0) {
        td_vocab_free(v);
        return td_error_set(err, TD_ERR_FORMAT, "%s: empty vocabulary (expected one token per line)", path);
    }
    v->tokens = malloc((size_t)lines * sizeof(char *));
    if (!v->tokens) {
        td_vocab_free(v);
        return td_error_set(err, TD_ERR_NOMEM, "%s: out of memory", path);
    }
    char *p = v->text;
    for (int64_t i = 0; i < lines; i++) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = '\0';
        size_t len = strlen(p);
        if (len > 0 && p[len - 1] == '\r') p[len - 1] = '\0';
        v->tokens[i] = p;
        p = nl ? nl + 1 : p + len;
    }
    v->size = lines;
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
