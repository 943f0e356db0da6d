/* Fuzzes tokdrop-prep's input path: the input file read plain or as gzip,
 * cut into lines, checked for UTF-8, and run through the BasicTokenizer and
 * WordPiece, both as `shards` reads it (tdp_corpus_read) and as `tokenize`
 * prints it (tdp_tokenize_to_file).
 * Input: one flags byte, then the text. Flags: 1 = write the text
 * gzip-compressed (otherwise as is, so a text that is itself a damaged
 * gzip stream reaches zlib's errors), 2 = cased, 4 = a document per file,
 * 8 = two worker threads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "corpus.h"
#include "fuzz_util.h"
#include "input.h"

/* The specials, some words, pieces and characters, CJK among them. */
static const char *const tokens[] = {
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "un", "##aff", "##able", "##s",
    "##ing", "play", "hello", "world", ",", ".", "!", "'", "(", ")", "e", "##e", "t", "##t", "é",
    "ß", "中", "文", "##中", "1", "##2", "x", "##x",
};

static const tdp_vocab *vocab(void)
{
    static tdp_vocab v;
    if (v.n_tokens == 0) {
        td_error err = {0};
        if (tdp_vocab_from_tokens(&v, tokens, sizeof(tokens) / sizeof(tokens[0]), "fuzz vocab",
                                  &err) != TD_OK)
            abort();
    }
    return &v;
}

/* What the reader must see: the text, decompressed when it is gzip. */
static void write_input(const char *path, const uint8_t *text, size_t n, int gzip)
{
    if (!gzip) {
        fz_write(0, text, n);
        return;
    }
    gzFile gz = gzopen(path, "wb");
    if (!gz || (n && gzwrite(gz, text, (unsigned)n) != (int)n) || gzclose(gz) != Z_OK) abort();
}

static int64_t count_lines(const char *s, size_t n)
{
    int64_t lines = 0;
    for (size_t i = 0; i < n; i++) lines += s[i] == '\n';
    return lines + (n > 0 && s[n - 1] != '\n');
}

static void check_corpus(const tdp_corpus *c, int64_t n_bytes)
{
    const tdp_vec_i64 *seg = &c->seg_start, *doc = &c->doc_start;
    if (c->n_bytes != n_bytes || seg->v[0] != 0 || seg->v[seg->n - 1] != c->tokens.n) abort();
    for (int64_t i = 1; i < seg->n; i++)
        if (seg->v[i] <= seg->v[i - 1]) abort(); /* no empty segment */
    if (doc->n < 2 || doc->v[0] != 0 || doc->v[doc->n - 1] != seg->n - 1) abort();
    for (int64_t i = 1; i < doc->n; i++)
        if (doc->v[i] <= doc->v[i - 1]) abort(); /* no empty document */
    for (int64_t i = 0; i < c->tokens.n; i++)
        if (c->tokens.v[i] < 0 || c->tokens.v[i] >= vocab()->n_tokens) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_bytes in_bytes = {data, size};
    uint8_t flags = fz_u8(&in_bytes);
    const int gzip = flags & 1, lower_case = !(flags & 2), doc_per_file = !!(flags & 4);
    const int n_jobs = flags & 8 ? 2 : 1;
    const char *path = fz_path(0);
    write_input(path, in_bytes.p, in_bytes.n, gzip);
    /* the text as the reader sees it: zlib reads a plain file as is */
    gzFile gz = gzopen(path, "rb");
    if (!gz) abort();
    size_t cap = in_bytes.n * 4 + 64, n = 0;
    char *plain = malloc(cap);
    int got;
    while ((got = gzread(gz, plain + n, (unsigned)(cap - n))) > 0 && (n += (size_t)got) < cap) {}
    int damaged = got < 0 || n == cap; /* a stream we do not compare with */
    gzclose(gz);

    const char *args[1] = {path};
    tdp_inputs in;
    td_error err = {0};
    td_status st = tdp_inputs_expand(&in, args, 1, 0, &err);
    fz_check_error(st, &err, "tdp_inputs_expand");
    if (st != TD_OK) abort(); /* the file exists */

    tdp_corpus corpus;
    td_status cst = tdp_corpus_read(&corpus, &in, vocab(), lower_case, doc_per_file, n_jobs, NULL,
                                    NULL, &err);
    fz_check_error(cst, &err, "tdp_corpus_read");
    if (cst == TD_OK) {
        if (!damaged) check_corpus(&corpus, (int64_t)n);
        tdp_corpus_free(&corpus);
    }

    char *out = NULL;
    size_t out_len = 0;
    FILE *f = open_memstream(&out, &out_len);
    int64_t n_read = -1;
    td_status tst = tdp_tokenize_to_file(f, &in, vocab(), lower_case, n_jobs, &n_read, &err);
    fz_check_error(tst, &err, "tdp_tokenize_to_file");
    fclose(f);
    if (cst == TD_OK && tst != TD_OK) abort(); /* shards read what tokenize refuses */
    /* one output line per input line */
    if (tst == TD_OK && !damaged &&
        (n_read != (int64_t)n || count_lines(out, out_len) != count_lines(plain, n)))
        abort();
    free(out);
    free(plain);
    tdp_inputs_free(&in);
    return 0;
}
