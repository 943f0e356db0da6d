/* Vocabulary learning (vocab_learn.h). Merges use the usual BPE training
 * structures: pair counts in a hash map, for each pair the words it occurs
 * in, and a max-heap of (count, pair) with lazy deletion (an entry whose
 * count is no longer current is skipped when popped). A merge rewrites only
 * the words that contain the pair: their pairs are subtracted, the word is
 * rewritten, and its pairs are added back. Ties between equal counts go to
 * the smaller pair key, and symbol ids follow sorted orders, so the
 * vocabulary does not depend on hash order or thread count. */
#include "vocab_learn.h"

#include <stdlib.h>
#include <string.h>

#include "basic_tokenizer.h"
#include "base/fs.h"
#include "input.h"
#include "unicode.h"
#include "util.h"
#include "wordpiece.h"

/* ---- counting words ----------------------------------------------------------------- */

typedef struct {
    int lower_case;
    tdp_words words;
    tdp_strmap counts;
} count_worker;

typedef struct {
    int64_t n_lines, n_words;
} count_result;

static td_status count_work(void *worker, const tdp_chunk *c, void **result, td_error *err)
{
    count_worker *w = worker;
    count_result *r = td_xcalloc(1, sizeof(*r));
    int64_t pos = 0, line_no = c->first_line;
    const char *line;
    int64_t n;
    for (; tdp_chunk_next_line(c, &pos, &line, &n); line_no++) {
        td_status st = tdp_check_utf8(c, line_no, line, n, err);
        if (st != TD_OK) {
            free(r);
            return st;
        }
        tdp_basic_tokenize(&w->words, line, (size_t)n, w->lower_case);
        for (int64_t i = 0; i < w->words.n_words; i++) {
            if (w->words.n_chars[i] > TDP_MAX_WORD_CHARS) continue;
            int64_t s = w->words.start[i];
            (*tdp_strmap_upsert(&w->counts, w->words.bytes + s,
                                (int32_t)(w->words.start[i + 1] - s), 0, NULL))++;
            r->n_words++;
        }
        r->n_lines++;
    }
    *result = r;
    return TD_OK;
}

typedef struct {
    tdp_vocab_learn_summary *sum;
    tdp_progress *progress;
} count_ctx;

static td_status count_done(void *ctx, const tdp_chunk *chunk, void *result, td_error *err)
{
    count_ctx *cc = ctx;
    count_result *r = result;
    cc->sum->n_lines += r->n_lines;
    cc->sum->n_words += r->n_words;
    cc->sum->n_bytes += chunk->n_bytes;
    free(r);
    tdp_progress_say(cc->progress, 0, "read %.1f MB, %lld lines, %lld words",
                     (double)cc->sum->n_bytes / 1e6, (long long)cc->sum->n_lines,
                     (long long)cc->sum->n_words);
    return TD_OK;
}

td_status tdp_vocab_count_words(tdp_strmap *counts, const char *const *inputs, int64_t n_inputs,
                                const tdp_vocab_learn_options *o,
                                tdp_vocab_learn_summary *sum, td_error *err)
{
    double t0 = tdp_now();
    tdp_inputs in;
    td_status st = tdp_inputs_expand(&in, inputs, n_inputs, 0, err);
    if (st != TD_OK) return st;
    int n_jobs = o->n_jobs < 1 ? 1 : o->n_jobs;
    count_worker *ws = td_xcalloc((size_t)n_jobs, sizeof(*ws));
    void **workers = td_xmalloc((size_t)n_jobs * sizeof(void *));
    for (int i = 0; i < n_jobs; i++) {
        ws[i].lower_case = o->lower_case;
        tdp_words_init(&ws[i].words);
        tdp_strmap_init(&ws[i].counts, 1 << 16);
        workers[i] = &ws[i];
    }
    tdp_progress progress;
    tdp_progress_init(&progress, o->quiet);
    count_ctx cc = {sum, &progress};
    tdp_pipeline p = {
        .n_jobs = n_jobs,
        .chunk_bytes = 1 << 20,
        .work = count_work,
        .workers = workers,
        .done = count_done,
        .free_result = free,
        .ctx = &cc,
    };
    st = tdp_pipeline_run(&p, &in, err);
    /* The sum over the workers' maps does not depend on which chunk each
     * worker happened to get. */
    tdp_strmap_init(counts, ws[0].counts.n_keys);
    for (int i = 0; i < n_jobs; i++) {
        const tdp_strmap *m = &ws[i].counts;
        for (int64_t k = 0; k < m->cap && st == TD_OK; k++) {
            const tdp_strmap_slot *s = &m->slots[k];
            if (s->hash == 0) continue;
            *tdp_strmap_upsert(counts, tdp_strmap_key(m, s), s->key_len, 0, NULL) += s->value;
        }
        tdp_words_free(&ws[i].words);
        tdp_strmap_free(&ws[i].counts);
    }
    free(ws);
    free(workers);
    if (st == TD_OK && counts->n_keys == 0)
        st = td_error_set(err, TD_ERR_FORMAT, "%s%s: empty corpus (no words in %lld line(s)); "
                          "expected UTF-8 text, one sentence or paragraph per line",
                          in.paths[0], in.n > 1 ? " and the other inputs" : "",
                          (long long)sum->n_lines);
    if (st != TD_OK) tdp_strmap_free(counts);
    else sum->n_unique_words = counts->n_keys;
    tdp_inputs_free(&in);
    sum->t_count_s = tdp_now() - t0;
    return st;
}

/* ---- pair map and heap ------------------------------------------------------------- */

/* uint64 pair key -> pair index; keys are stored + 1 so 0 means empty. */
typedef struct {
    uint64_t *keys;
    int32_t *vals;
    int64_t cap, n;
} pair_map;

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void pair_map_init(pair_map *m, int64_t expected)
{
    m->cap = 1024;
    while (m->cap < 2 * expected) m->cap *= 2;
    m->keys = td_xcalloc((size_t)m->cap, sizeof(uint64_t));
    m->vals = td_xmalloc((size_t)m->cap * sizeof(int32_t));
    m->n = 0;
}

static void pair_map_free(pair_map *m)
{
    free(m->keys);
    free(m->vals);
}

/* Index of key, inserting next_index when absent (then *inserted = 1). */
static int32_t pair_map_get(pair_map *m, uint64_t key, int32_t next_index, int *inserted)
{
    if (2 * (m->n + 1) > m->cap) {
        int64_t cap = m->cap * 2;
        uint64_t *keys = td_xcalloc((size_t)cap, sizeof(uint64_t));
        int32_t *vals = td_xmalloc((size_t)cap * sizeof(int32_t));
        for (int64_t i = 0; i < m->cap; i++) {
            if (!m->keys[i]) continue;
            uint64_t j = mix64(m->keys[i] - 1) & (uint64_t)(cap - 1);
            while (keys[j]) j = (j + 1) & (uint64_t)(cap - 1);
            keys[j] = m->keys[i];
            vals[j] = m->vals[i];
        }
        free(m->keys);
        free(m->vals);
        m->keys = keys;
        m->vals = vals;
        m->cap = cap;
    }
    uint64_t mask = (uint64_t)m->cap - 1;
    uint64_t j = mix64(key) & mask;
    while (m->keys[j]) {
        if (m->keys[j] == key + 1) {
            *inserted = 0;
            return m->vals[j];
        }
        j = (j + 1) & mask;
    }
    m->keys[j] = key + 1;
    m->vals[j] = next_index;
    m->n++;
    *inserted = 1;
    return next_index;
}

typedef struct {
    int64_t count;
    uint64_t key;
} heap_entry;

typedef struct {
    heap_entry *v;
    int64_t n, cap;
} heap;

/* a goes before b: more frequent, then the smaller key. */
static int heap_before(heap_entry a, heap_entry b)
{
    return a.count > b.count || (a.count == b.count && a.key < b.key);
}

static void heap_push(heap *h, int64_t count, uint64_t key)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 1024;
        h->v = tdp_xrealloc(h->v, (size_t)h->cap * sizeof(heap_entry));
    }
    heap_entry e = {count, key};
    int64_t i = h->n++;
    while (i > 0) {
        int64_t parent = (i - 1) / 2;
        if (!heap_before(e, h->v[parent])) break;
        h->v[i] = h->v[parent];
        i = parent;
    }
    h->v[i] = e;
}

static heap_entry heap_pop(heap *h)
{
    heap_entry top = h->v[0];
    heap_entry last = h->v[--h->n];
    int64_t i = 0;
    for (;;) {
        int64_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && heap_before(h->v[c + 1], h->v[c])) c++;
        if (!heap_before(h->v[c], last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n > 0) h->v[i] = last;
    return top;
}

/* ---- learning ------------------------------------------------------------------------- */

typedef struct {
    const char *s;
    int32_t len;
    int64_t count;
} word_entry;

static int cmp_word(const void *pa, const void *pb)
{
    const word_entry *a = pa, *b = pb;
    if (a->count != b->count) return a->count > b->count ? -1 : 1;
    int32_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->s, b->s, (size_t)n);
    if (c) return c;
    return (a->len > b->len) - (a->len < b->len);
}

typedef struct {
    uint32_t cp;
    int64_t count;
} char_entry;

static int cmp_char(const void *pa, const void *pb)
{
    const char_entry *a = pa, *b = pb;
    if (a->count != b->count) return a->count > b->count ? -1 : 1;
    return (a->cp > b->cp) - (a->cp < b->cp);
}

typedef struct {
    /* symbols: strings in an arena; "##" forms carry the prefix */
    tdp_strmap sym_ids; /* string -> symbol id */
    tdp_vec_char sym_text;
    tdp_vec_i64 sym_off, sym_len;
    /* words as symbol sequences */
    int32_t *wsym;   /* flat */
    int64_t *wstart; /* (n_words) */
    int32_t *wlen;   /* (n_words) current length */
    int64_t *wcount; /* (n_words) */
    int64_t *wstamp; /* (n_words) last merge that visited the word */
    int64_t n_words;
    /* pairs, by index */
    pair_map pmap;
    tdp_vec_i64 pkey;     /* (n_pairs) a << 32 | b */
    tdp_vec_i64 pcount;   /* (n_pairs) */
    tdp_vec_i64 pold;     /* (n_pairs) count before the current merge */
    tdp_vec_i64 pstamp;   /* (n_pairs) the merge that last changed it */
    tdp_vec_i32 *pwhere;  /* (n_pairs) words that hold or held the pair */
    int64_t pwhere_cap;
    tdp_vec_i32 dirty;    /* pairs changed by the current merge */
    heap h;
    int64_t iter;
} learner;

static int32_t symbol(learner *L, const char *s, int32_t len, int *is_new)
{
    int inserted;
    int64_t *id = tdp_strmap_upsert(&L->sym_ids, s, len, L->sym_off.n, &inserted);
    if (inserted) {
        tdp_vec_i64_push(&L->sym_off, L->sym_text.n);
        tdp_vec_i64_push(&L->sym_len, len);
        tdp_vec_char_append(&L->sym_text, s, len);
    }
    if (is_new) *is_new = inserted;
    return (int32_t)*id;
}

static void add_pair(learner *L, int32_t a, int32_t b, int64_t delta, int32_t word)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    int inserted;
    int32_t p = pair_map_get(&L->pmap, key, (int32_t)L->pcount.n, &inserted);
    if (inserted) {
        tdp_vec_i64_push(&L->pkey, (int64_t)key);
        tdp_vec_i64_push(&L->pcount, 0);
        tdp_vec_i64_push(&L->pold, 0);
        tdp_vec_i64_push(&L->pstamp, -1);
        if (L->pcount.n > L->pwhere_cap) {
            int64_t cap = L->pwhere_cap ? 2 * L->pwhere_cap : 1024;
            L->pwhere = tdp_xrealloc(L->pwhere, (size_t)cap * sizeof(tdp_vec_i32));
            memset(L->pwhere + L->pwhere_cap, 0,
                   (size_t)(cap - L->pwhere_cap) * sizeof(tdp_vec_i32));
            L->pwhere_cap = cap;
        }
    }
    if (L->pstamp.v[p] != L->iter) {
        L->pstamp.v[p] = L->iter;
        L->pold.v[p] = L->pcount.v[p];
        tdp_vec_i32_push(&L->dirty, p);
    }
    L->pcount.v[p] += delta;
    tdp_vec_i32 *wh = &L->pwhere[p];
    if (delta > 0 && (wh->n == 0 || wh->v[wh->n - 1] != word)) tdp_vec_i32_push(wh, word);
}

static void word_pairs(learner *L, int32_t w, int64_t sign)
{
    const int32_t *s = L->wsym + L->wstart[w];
    for (int32_t i = 0; i + 1 < L->wlen[w]; i++)
        add_pair(L, s[i], s[i + 1], sign * L->wcount[w], w);
}

/* Pushes the pairs whose count the current merge changed. */
static void push_dirty(learner *L)
{
    for (int64_t k = 0; k < L->dirty.n; k++) {
        int32_t p = L->dirty.v[k];
        if (L->pcount.v[p] != L->pold.v[p] && L->pcount.v[p] > 0)
            heap_push(&L->h, L->pcount.v[p], (uint64_t)L->pkey.v[p]);
    }
    L->dirty.n = 0;
}

static void learner_free(learner *L)
{
    tdp_strmap_free(&L->sym_ids);
    free(L->sym_text.v);
    free(L->sym_off.v);
    free(L->sym_len.v);
    free(L->wsym);
    free(L->wstart);
    free(L->wlen);
    free(L->wcount);
    free(L->wstamp);
    pair_map_free(&L->pmap);
    free(L->pkey.v);
    free(L->pcount.v);
    free(L->pold.v);
    free(L->pstamp.v);
    for (int64_t p = 0; p < L->pwhere_cap; p++) free(L->pwhere[p].v);
    free(L->pwhere);
    free(L->dirty.v);
    free(L->h.v);
}

static const char *const SPECIALS[5] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};

td_status tdp_vocab_learn_from_counts(FILE *out, const tdp_strmap *counts,
                                      const tdp_vocab_learn_options *o,
                                      tdp_vocab_learn_summary *sum, td_error *err)
{
    double t0 = tdp_now();
    if (o->vocab_size < 16 || o->vocab_size > INT32_MAX)
        return td_error_set(err, TD_ERR_ARG, "--size %lld: expected 16..2^31-1",
                            (long long)o->vocab_size);
    tdp_progress progress;
    tdp_progress_init(&progress, o->quiet);

    /* Words in a fixed order: by count, then bytes. */
    int64_t n_words = counts->n_keys;
    word_entry *words = td_xmalloc((size_t)(n_words > 0 ? n_words : 1) * sizeof(word_entry));
    int64_t k = 0;
    for (int64_t i = 0; i < counts->cap; i++) {
        const tdp_strmap_slot *s = &counts->slots[i];
        if (s->hash == 0) continue;
        words[k].s = tdp_strmap_key(counts, s);
        words[k].len = s->key_len;
        words[k].count = s->value;
        k++;
    }
    qsort(words, (size_t)n_words, sizeof(word_entry), cmp_word);

    /* The alphabet: characters by frequency; as many as fit with their
     * "##" forms. */
    tdp_strmap char_ids;
    tdp_strmap_init(&char_ids, 4096);
    char_entry *chars = NULL;
    int64_t n_chars = 0, cap_chars = 0;
    for (int64_t w = 0; w < n_words; w++) {
        const unsigned char *s = (const unsigned char *)words[w].s;
        for (int32_t i = 0; i < words[w].len;) {
            uint32_t cp;
            int len = td_utf8_decode(&cp, s + i, (size_t)(words[w].len - i));
            TD_ASSERT(len > 0);
            int inserted;
            int64_t *ci = tdp_strmap_upsert(&char_ids, (const char *)s + i, len, n_chars, &inserted);
            if (inserted) {
                if (n_chars == cap_chars) {
                    cap_chars = cap_chars ? 2 * cap_chars : 256;
                    chars = tdp_xrealloc(chars, (size_t)cap_chars * sizeof(char_entry));
                }
                chars[n_chars].cp = cp;
                chars[n_chars].count = 0;
                n_chars++;
            }
            chars[*ci].count += words[w].count;
            i += len;
        }
    }
    qsort(chars, (size_t)n_chars, sizeof(char_entry), cmp_char);
    int64_t max_chars = (o->vocab_size - 5) / 2;
    int64_t n_keep = n_chars < max_chars ? n_chars : max_chars;
    sum->n_chars = n_keep;
    sum->n_chars_dropped = n_chars - n_keep;

    learner L;
    memset(&L, 0, sizeof(L));
    L.iter = 0;
    tdp_strmap_init(&L.sym_ids, o->vocab_size);
    /* symbols 0..n_keep-1: characters; n_keep..2*n_keep-1: their ## forms */
    tdp_strmap_free(&char_ids);
    tdp_strmap_init(&char_ids, n_keep);
    for (int64_t c = 0; c < n_keep; c++) {
        char buf[6];
        int len = td_utf8_encode(buf, chars[c].cp);
        symbol(&L, buf, len, NULL);
        *tdp_strmap_upsert(&char_ids, buf, len, c, NULL) = c;
    }
    for (int64_t c = 0; c < n_keep; c++) {
        char buf[6] = {'#', '#'};
        int len = td_utf8_encode(buf + 2, chars[c].cp);
        symbol(&L, buf, len + 2, NULL);
    }

    /* Words of two or more characters, all kept, as symbol sequences. */
    int64_t total_chars = 0;
    for (int64_t w = 0; w < n_words; w++) total_chars += words[w].len;
    L.wsym = td_xmalloc((size_t)(total_chars > 0 ? total_chars : 1) * sizeof(int32_t));
    L.wstart = td_xmalloc((size_t)(n_words > 0 ? n_words : 1) * sizeof(int64_t));
    L.wlen = td_xmalloc((size_t)(n_words > 0 ? n_words : 1) * sizeof(int32_t));
    L.wcount = td_xmalloc((size_t)(n_words > 0 ? n_words : 1) * sizeof(int64_t));
    int64_t n_sym = 0;
    for (int64_t w = 0; w < n_words; w++) {
        const unsigned char *s = (const unsigned char *)words[w].s;
        int64_t start = n_sym;
        int ok = 1;
        for (int32_t i = 0; i < words[w].len && ok;) {
            uint32_t cp;
            int len = td_utf8_decode(&cp, s + i, (size_t)(words[w].len - i));
            const int64_t *c = tdp_strmap_find(&char_ids, (const char *)s + i, len);
            if (!c) ok = 0; /* a dropped character: the word would be [UNK] */
            else L.wsym[n_sym++] = (int32_t)(*c + (i > 0 ? n_keep : 0));
            i += len;
        }
        if (!ok || n_sym - start < 2) {
            n_sym = start;
            continue;
        }
        L.wstart[L.n_words] = start;
        L.wlen[L.n_words] = (int32_t)(n_sym - start);
        L.wcount[L.n_words] = words[w].count;
        L.n_words++;
    }
    L.wstamp = td_xmalloc((size_t)(L.n_words > 0 ? L.n_words : 1) * sizeof(int64_t));
    for (int64_t w = 0; w < L.n_words; w++) L.wstamp[w] = -1;
    pair_map_init(&L.pmap, 1 << 16);
    for (int64_t w = 0; w < L.n_words; w++) word_pairs(&L, (int32_t)w, 1);
    push_dirty(&L);

    /* Merges, in order; the new pieces follow the alphabet in the file. */
    tdp_vec_i32 merged = {0};
    int64_t n_vocab = 5 + 2 * n_keep;
    tdp_vec_char buf = {0};
    while (n_vocab < o->vocab_size && L.h.n > 0) {
        heap_entry top = heap_pop(&L.h);
        int inserted;
        int32_t p = pair_map_get(&L.pmap, top.key, -1, &inserted);
        TD_ASSERT(!inserted);
        if (L.pcount.v[p] != top.count) continue; /* stale entry */
        if (top.count < o->min_pair_count) break;
        int32_t a = (int32_t)(top.key >> 32), b = (int32_t)(top.key & 0xffffffffu);
        buf.n = 0;
        tdp_vec_char_append(&buf, L.sym_text.v + L.sym_off.v[a], L.sym_len.v[a]);
        TD_ASSERT(L.sym_len.v[b] > 2 && L.sym_text.v[L.sym_off.v[b]] == '#');
        tdp_vec_char_append(&buf, L.sym_text.v + L.sym_off.v[b] + 2, L.sym_len.v[b] - 2);
        int is_new;
        int32_t m = symbol(&L, buf.v, (int32_t)buf.n, &is_new);
        if (is_new) {
            tdp_vec_i32_push(&merged, m);
            n_vocab++;
        }
        sum->n_merges++;
        L.iter++;
        /* Rewrite the words holding (a, b). The list is detached first:
         * word_pairs appends to other pairs' lists (and to this one's only
         * if the word still held the pair, which a rewrite rules out). */
        tdp_vec_i32 where = L.pwhere[p];
        memset(&L.pwhere[p], 0, sizeof(tdp_vec_i32));
        for (int64_t i = 0; i < where.n; i++) {
            int32_t w = where.v[i];
            if (L.wstamp[w] == L.iter) continue;
            L.wstamp[w] = L.iter;
            int32_t *s = L.wsym + L.wstart[w];
            int32_t len = L.wlen[w];
            int found = 0;
            for (int32_t j = 0; j + 1 < len && !found; j++) found = s[j] == a && s[j + 1] == b;
            if (!found) continue;
            word_pairs(&L, w, -1);
            int32_t q = 0;
            for (int32_t j = 0; j < len;) {
                if (j + 1 < len && s[j] == a && s[j + 1] == b) {
                    s[q++] = m;
                    j += 2;
                } else {
                    s[q++] = s[j++];
                }
            }
            L.wlen[w] = q;
            word_pairs(&L, w, 1);
        }
        free(where.v);
        push_dirty(&L);
        tdp_progress_say(&progress, 0, "vocabulary: %lld of %lld tokens (pair count %lld)",
                         (long long)n_vocab, (long long)o->vocab_size, (long long)top.count);
    }

    /* The file: specials, characters, ## characters, merged pieces. */
    int io_err = 0;
    for (int i = 0; i < 5; i++) io_err |= fprintf(out, "%s\n", SPECIALS[i]) < 0;
    for (int64_t c = 0; c < 2 * n_keep; c++)
        io_err |= fprintf(out, "%.*s\n", (int)L.sym_len.v[c], L.sym_text.v + L.sym_off.v[c]) < 0;
    for (int64_t i = 0; i < merged.n; i++) {
        int32_t id = merged.v[i];
        io_err |= fprintf(out, "%.*s\n", (int)L.sym_len.v[id], L.sym_text.v + L.sym_off.v[id]) < 0;
    }
    sum->n_tokens = n_vocab;
    sum->t_merge_s = tdp_now() - t0;

    free(buf.v);
    free(merged.v);
    learner_free(&L);
    tdp_strmap_free(&char_ids);
    free(chars);
    free(words);
    if (io_err) return td_error_set(err, TD_ERR_IO, "cannot write the vocabulary (disk full?)");
    return TD_OK;
}

/* What tdp_vocab_learn hands to td_fs_write_atomic. */
typedef struct {
    const tdp_strmap *counts;
    const tdp_vocab_learn_options *o;
    tdp_vocab_learn_summary *sum;
} learn_ctx;

static td_status fill_vocab(FILE *f, const void *ctx, td_error *err)
{
    const learn_ctx *c = ctx;
    return tdp_vocab_learn_from_counts(f, c->counts, c->o, c->sum, err);
}

td_status tdp_vocab_learn(const char *out_path, const char *const *inputs, int64_t n_inputs,
                          const tdp_vocab_learn_options *o, tdp_vocab_learn_summary *sum,
                          td_error *err)
{
    memset(sum, 0, sizeof(*sum));
    if (o->vocab_size < 16 || o->vocab_size > INT32_MAX)
        return td_error_set(err, TD_ERR_ARG, "--size %lld: expected 16..2^31-1",
                            (long long)o->vocab_size);
    tdp_strmap counts;
    td_status st = tdp_vocab_count_words(&counts, inputs, n_inputs, o, sum, err);
    if (st != TD_OK) return st;
    learn_ctx c = {&counts, o, sum};
    st = td_fs_write_atomic(out_path, fill_vocab, &c, err);
    tdp_strmap_free(&counts);
    return st;
}
