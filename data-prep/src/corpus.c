/* Tokenizing the inputs through the pipeline: workers turn chunks of lines
 * into ids (one tdp_tokenizer each), the calling thread appends them to the
 * corpus in input order, so documents and ids do not depend on n_jobs. */
#include "corpus.h"

#include <stdlib.h>
#include <string.h>

#include "unicode.h"

int64_t tdp_corpus_n_docs(const tdp_corpus *c) { return c->doc_start.n - 1; }

/* A line is blank for create_pretraining_data.py when strip() empties it. */
static int is_blank(const char *line, int64_t n)
{
    const unsigned char *s = (const unsigned char *)line;
    for (int64_t i = 0; i < n;) {
        uint32_t cp = s[i];
        int len = 1;
        if (cp >= 0x80) {
            len = td_utf8_decode(&cp, s + i, (size_t)(n - i));
            if (len == 0) return 0;
        }
        if (!td_utf8_is_space(cp)) return 0;
        i += len;
    }
    return 1;
}

typedef struct {
    tdp_vec_i32 ids;
    tdp_vec_i64 line_ntok; /* per line: its number of ids, -1 for a blank line */
} chunk_ids;

static void chunk_ids_free(void *p)
{
    chunk_ids *r = p;
    if (!r) return;
    free(r->ids.v);
    free(r->line_ntok.v);
    free(r);
}

static td_status ids_work(void *worker, const tdp_chunk *c, void **result, td_error *err)
{
    tdp_tokenizer *t = worker;
    chunk_ids *r = td_xcalloc(1, sizeof(*r));
    tdp_vec_i32_reserve(&r->ids, c->n_bytes / 4 + 16);
    int64_t pos = 0, line_no = c->first_line;
    const char *line;
    int64_t n;
    for (; tdp_chunk_next_line(c, &pos, &line, &n); line_no++) {
        td_status st = tdp_check_utf8(c, line_no, line, n, err);
        if (st != TD_OK) {
            chunk_ids_free(r);
            return st;
        }
        if (is_blank(line, n)) {
            tdp_vec_i64_push(&r->line_ntok, -1);
            continue;
        }
        int64_t before = r->ids.n;
        tdp_tokenize_line(t, &r->ids, line, (size_t)n);
        tdp_vec_i64_push(&r->line_ntok, r->ids.n - before);
    }
    *result = r;
    return TD_OK;
}

typedef struct {
    tdp_corpus *corpus;
    int32_t unk_id;
    int doc_per_file;
    tdp_progress_fn progress;
    void *progress_ctx;
} corpus_ctx;

static void end_document(tdp_corpus *c)
{
    int64_t n_segs = c->seg_start.n - 1;
    if (n_segs > c->doc_start.v[c->doc_start.n - 1]) tdp_vec_i64_push(&c->doc_start, n_segs);
}

static td_status corpus_done(void *ctx, const tdp_chunk *chunk, void *result, td_error *err)
{
    corpus_ctx *cc = ctx;
    tdp_corpus *c = cc->corpus;
    chunk_ids *r = result;
    if (chunk->file_start) end_document(c);
    tdp_vec_i32_reserve(&c->tokens, c->tokens.n + r->ids.n);
    int64_t k = 0;
    for (int64_t i = 0; i < r->line_ntok.n; i++) {
        int64_t nt = r->line_ntok.v[i];
        if (nt < 0) {
            if (!cc->doc_per_file) end_document(c);
            continue;
        }
        if (nt == 0) continue;
        memcpy(c->tokens.v + c->tokens.n, r->ids.v + k, (size_t)nt * sizeof(int32_t));
        for (int64_t j = 0; j < nt; j++) c->n_unk += r->ids.v[k + j] == cc->unk_id;
        c->tokens.n += nt;
        k += nt;
        tdp_vec_i64_push(&c->seg_start, c->tokens.n);
    }
    c->n_lines += r->line_ntok.n;
    c->n_bytes += chunk->n_bytes;
    chunk_ids_free(r);
    if (cc->progress) cc->progress(cc->progress_ctx, c);
    return TD_OK;
}

static td_status run_tokenizers(const tdp_inputs *in, const tdp_vocab *vocab, int lower_case,
                                int n_jobs, tdp_chunk_work_fn work, tdp_chunk_done_fn done,
                                tdp_result_free_fn free_result, void *ctx, td_error *err)
{
    if (n_jobs < 1) n_jobs = 1;
    tdp_tokenizer *toks = td_xmalloc((size_t)n_jobs * sizeof(*toks));
    void **workers = td_xmalloc((size_t)n_jobs * sizeof(void *));
    for (int i = 0; i < n_jobs; i++) {
        tdp_tokenizer_init(&toks[i], vocab, lower_case);
        workers[i] = &toks[i];
    }
    tdp_pipeline p = {
        .n_jobs = n_jobs,
        .chunk_bytes = TDP_CHUNK_BYTES,
        .work = work,
        .workers = workers,
        .done = done,
        .free_result = free_result,
        .ctx = ctx,
    };
    td_status st = tdp_pipeline_run(&p, in, err);
    for (int i = 0; i < n_jobs; i++) tdp_tokenizer_free(&toks[i]);
    free(toks);
    free(workers);
    return st;
}

td_status tdp_corpus_read(tdp_corpus *out, const tdp_inputs *in, const tdp_vocab *vocab,
                          int lower_case, int doc_per_file, int n_jobs, tdp_progress_fn progress,
                          void *progress_ctx, td_error *err)
{
    memset(out, 0, sizeof(*out));
    tdp_vec_i64_push(&out->seg_start, 0);
    tdp_vec_i64_push(&out->doc_start, 0);
    corpus_ctx cc = {out, vocab->unk_id, doc_per_file, progress, progress_ctx};
    td_status st = run_tokenizers(in, vocab, lower_case, n_jobs, ids_work, corpus_done,
                                  chunk_ids_free, &cc, err);
    if (st == TD_OK) {
        end_document(out);
        if (tdp_corpus_n_docs(out) == 0)
            st = td_error_set(err, TD_ERR_FORMAT, "%s%s: empty corpus (no tokens in %lld "
                              "line(s)); expected UTF-8 text, one sentence or paragraph per line",
                              in->n > 0 ? in->paths[0] : "-", in->n > 1 ? " and the other inputs" : "",
                              (long long)out->n_lines);
    }
    if (st != TD_OK) tdp_corpus_free(out);
    return st;
}

void tdp_corpus_free(tdp_corpus *c)
{
    free(c->tokens.v);
    free(c->seg_start.v);
    free(c->doc_start.v);
    memset(c, 0, sizeof(*c));
}

/* ---- tokenize subcommand -------------------------------------------------------- */

static void text_free(void *p)
{
    tdp_vec_char *t = p;
    if (!t) return;
    free(t->v);
    free(t);
}

typedef struct {
    tdp_tokenizer tok;
    tdp_vec_i32 ids;
} text_worker;

static td_status text_work(void *worker, const tdp_chunk *c, void **result, td_error *err)
{
    text_worker *w = worker;
    const tdp_vocab *v = w->tok.vocab;
    tdp_vec_char *out = td_xcalloc(1, sizeof(*out));
    tdp_vec_char_reserve(out, c->n_bytes + c->n_bytes / 2 + 16);
    int64_t pos = 0, line_no = c->first_line;
    const char *line;
    int64_t n;
    for (; tdp_chunk_next_line(c, &pos, &line, &n); line_no++) {
        td_status st = tdp_check_utf8(c, line_no, line, n, err);
        if (st != TD_OK) {
            text_free(out);
            return st;
        }
        w->ids.n = 0;
        tdp_tokenize_line(&w->tok, &w->ids, line, (size_t)n);
        for (int64_t i = 0; i < w->ids.n; i++) {
            const char *s = tdp_vocab_token(v, w->ids.v[i]);
            if (i > 0) tdp_vec_char_append(out, " ", 1);
            tdp_vec_char_append(out, s, (int64_t)strlen(s));
        }
        tdp_vec_char_append(out, "\n", 1);
    }
    *result = out;
    return TD_OK;
}

typedef struct {
    FILE *out;
    int64_t n_bytes;
} text_ctx;

static td_status text_done(void *ctx, const tdp_chunk *chunk, void *result, td_error *err)
{
    text_ctx *tc = ctx;
    tdp_vec_char *t = result;
    size_t want = (size_t)t->n;
    size_t put = fwrite(t->v, 1, want, tc->out);
    text_free(t);
    tc->n_bytes += chunk->n_bytes;
    if (put != want)
        return td_error_set(err, TD_ERR_IO, "cannot write the tokens to the output (disk full "
                            "or closed pipe?)");
    return TD_OK;
}

td_status tdp_tokenize_to_file(FILE *out, const tdp_inputs *in, const tdp_vocab *vocab,
                               int lower_case, int n_jobs, int64_t *n_bytes, td_error *err)
{
    if (n_jobs < 1) n_jobs = 1;
    text_worker *ws = td_xcalloc((size_t)n_jobs, sizeof(*ws));
    void **workers = td_xmalloc((size_t)n_jobs * sizeof(void *));
    for (int i = 0; i < n_jobs; i++) {
        tdp_tokenizer_init(&ws[i].tok, vocab, lower_case);
        workers[i] = &ws[i];
    }
    text_ctx tc = {out, 0};
    tdp_pipeline p = {
        .n_jobs = n_jobs,
        .chunk_bytes = TDP_CHUNK_BYTES,
        .work = text_work,
        .workers = workers,
        .done = text_done,
        .free_result = text_free,
        .ctx = &tc,
    };
    td_status st = tdp_pipeline_run(&p, in, err);
    for (int i = 0; i < n_jobs; i++) {
        tdp_tokenizer_free(&ws[i].tok);
        free(ws[i].ids.v);
    }
    free(ws);
    free(workers);
    if (n_bytes) *n_bytes = tc.n_bytes;
    return st;
}
