/* Helpers for the data-prep tests (prep_testutil.h). */
#include "prep_testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "input.h"
#include "util.h"

static void remove_tree(const char *path)
{
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    if (system(cmd) != 0) fail_msg("cannot clear %s", path);
}

const char *pt_tmpdir(const char *name)
{
    static char path[1024];
    snprintf(path, sizeof(path), "%s/%s", TDP_TEST_TMPDIR, name);
    remove_tree(path);
    mkdir(TDP_TEST_TMPDIR, 0777);
    if (mkdir(path, 0777) != 0) fail_msg("cannot create %s", path);
    return path;
}

const char *pt_write_file(const char *dir, const char *name, const char *data, size_t n_bytes)
{
    static char paths[8][1024];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, 1024, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n_bytes, f), n_bytes);
    assert_int_equal(fclose(f), 0);
    return p;
}

void pt_vocab(tdp_vocab *v, const char *const *tokens, int64_t n)
{
    const char **all = malloc((size_t)(n + 5) * sizeof(char *));
    const char *specials[5] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    for (int i = 0; i < 5; i++) all[i] = specials[i];
    for (int64_t i = 0; i < n; i++) all[5 + i] = tokens[i];
    td_error err = {0};
    td_status st = tdp_vocab_from_tokens(v, all, n + 5, "test vocab", &err);
    free(all);
    if (st != TD_OK) fail_msg("%s", err.msg);
}

void pt_tokenize(char *out, size_t out_size, const tdp_vocab *v, int lower_case, const char *line)
{
    tdp_tokenizer t;
    tdp_tokenizer_init(&t, v, lower_case);
    tdp_vec_i32 ids = {0};
    tdp_tokenize_line(&t, &ids, line, strlen(line));
    size_t k = 0;
    out[0] = '\0';
    for (int64_t i = 0; i < ids.n; i++) {
        int n = snprintf(out + k, out_size - k, "%s%s", i ? " " : "", tdp_vocab_token(v, ids.v[i]));
        assert_true(n >= 0 && (size_t)n < out_size - k);
        k += (size_t)n;
    }
    free(ids.v);
    tdp_tokenizer_free(&t);
}

int64_t pt_doc_files(const char **paths, int64_t max_files, int64_t max_bytes)
{
    static tdp_inputs in;
    if (in.n == 0) {
        const char *root = TDP_DOC_CORPUS;
        td_error err = {0};
        if (tdp_inputs_expand(&in, &root, 1, 0, &err) != TD_OK)
            fail_msg("the python3.11-doc corpus is needed (Debian package python3.11-doc): %s",
                     err.msg);
    }
    int64_t n = 0, bytes = 0;
    for (int64_t i = 0; i < in.n && n < max_files && bytes < max_bytes; i++) {
        struct stat sb;
        if (stat(in.paths[i], &sb) != 0) continue;
        paths[n++] = in.paths[i];
        bytes += sb.st_size;
    }
    return n;
}
