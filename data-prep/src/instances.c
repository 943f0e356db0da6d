/* Sequence pairs and NSP labels (instances.h). */
#include "instances.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tokdrop/base/error.h"

void tdp_instances_free(tdp_instances *x)
{
    free(x->data.v);
    free(x->start.v);
    memset(x, 0, sizeof(*x));
}

void tdp_instance_scratch_free(tdp_instance_scratch *s)
{
    free(s->a.v);
    free(s->b.v);
    tdp_mask_scratch_free(&s->mask);
    memset(s, 0, sizeof(*s));
}

static void append_segment(tdp_vec_i32 *dst, const tdp_corpus *c, int64_t seg)
{
    int64_t s0 = c->seg_start.v[seg], s1 = c->seg_start.v[seg + 1];
    tdp_vec_i32_reserve(dst, dst->n + (s1 - s0));
    memcpy(dst->v + dst->n, c->tokens.v + s0, (size_t)(s1 - s0) * sizeof(int32_t));
    dst->n += s1 - s0;
}

static int64_t seg_len(const tdp_corpus *c, int64_t seg)
{
    return c->seg_start.v[seg + 1] - c->seg_start.v[seg];
}

static void emit_instance(tdp_instances *out, tdp_instance_scratch *s, int64_t a0, int64_t a1,
                          int64_t b0, int64_t b1, int is_random_next,
                          const tdp_instance_options *o, const tdp_vocab *v, tdp_rng *rng)
{
    int64_t la = a1 - a0, lb = b1 - b0;
    int64_t len = la + lb + 3;
    int64_t max_rec = TDP_REC_HEADER + len + 2 * o->max_pred;
    tdp_vec_i32_reserve(&out->data, out->data.n + max_rec);
    tdp_vec_i64_push(&out->start, out->data.n);
    int32_t *r = out->data.v + out->data.n;
    int32_t *ids = r + TDP_REC_HEADER;
    int64_t k = 0;
    ids[k++] = v->cls_id;
    memcpy(ids + k, s->a.v + a0, (size_t)la * sizeof(int32_t));
    k += la;
    ids[k++] = v->sep_id;
    memcpy(ids + k, s->b.v + b0, (size_t)lb * sizeof(int32_t));
    k += lb;
    ids[k++] = v->sep_id;
    int64_t n_pred = 0;
    if (o->masking == TDP_MASKING_STATIC) {
        tdp_mask_options mo = {o->max_pred, o->masked_lm_prob, o->whole_word};
        n_pred = tdp_mask_tokens(ids + len, ids + len + o->max_pred, ids, len, &mo, v, rng,
                                 &s->mask);
        /* close the gap between positions[max_pred] and replaced */
        memmove(ids + len + n_pred, ids + len + o->max_pred, (size_t)n_pred * sizeof(int32_t));
    }
    r[TDP_REC_LEN] = (int32_t)len;
    r[TDP_REC_SEG0] = (int32_t)(la + 2);
    r[TDP_REC_RANDOM_NEXT] = is_random_next;
    r[TDP_REC_NPRED] = (int32_t)n_pred;
    out->data.n += TDP_REC_HEADER + len + 2 * n_pred;
}

void tdp_instances_from_document(tdp_instances *out, tdp_instance_scratch *s,
                                 const tdp_corpus *c, const int64_t *docs, int64_t n_docs,
                                 int64_t doc_index, int64_t dupe,
                                 const tdp_instance_options *o, const tdp_vocab *v)
{
    int64_t doc = docs[doc_index];
    const int64_t d0 = c->doc_start.v[doc], d1 = c->doc_start.v[doc + 1]; /* segments */
    tdp_rng rng;
    tdp_rng_init(&rng, o->seed, (uint64_t)dupe, (uint64_t)doc, TDP_SITE_INSTANCES);

    const int64_t max_num_tokens = o->seq_len - 3;
    /* Drawn once per document, as the reference does. */
    int64_t target_seq_length = max_num_tokens;
    if (tdp_rng_random(&rng) < o->short_seq_prob)
        target_seq_length = tdp_rng_randint(&rng, 2, max_num_tokens);

    int64_t chunk0 = d0; /* current_chunk is the segments [chunk0, i] */
    int64_t current_length = 0;
    for (int64_t i = d0; i < d1; i++) {
        current_length += seg_len(c, i);
        if (!(i == d1 - 1 || current_length >= target_seq_length)) continue;
        int64_t n_chunk = i + 1 - chunk0;
        int64_t a_end = 1;
        if (n_chunk >= 2) a_end = tdp_rng_randint(&rng, 1, n_chunk - 1);
        s->a.n = 0;
        for (int64_t j = 0; j < a_end; j++) append_segment(&s->a, c, chunk0 + j);
        s->b.n = 0;
        int is_random_next = 0;
        if (n_chunk == 1 || tdp_rng_random(&rng) < 0.5) {
            is_random_next = 1;
            int64_t target_b_length = target_seq_length - s->a.n;
            int64_t rnd = doc_index;
            for (int t = 0; t < 10; t++) {
                rnd = tdp_rng_randint(&rng, 0, n_docs - 1);
                if (rnd != doc_index) break;
            }
            int64_t r0 = c->doc_start.v[docs[rnd]], r1 = c->doc_start.v[docs[rnd] + 1];
            int64_t random_start = tdp_rng_randint(&rng, 0, r1 - r0 - 1);
            for (int64_t j = r0 + random_start; j < r1; j++) {
                append_segment(&s->b, c, j);
                if (s->b.n >= target_b_length) break;
            }
            /* The segments not used for A go back to the document. */
            i -= n_chunk - a_end;
        } else {
            for (int64_t j = a_end; j < n_chunk; j++) append_segment(&s->b, c, chunk0 + j);
        }
        /* truncate_seq_pair: shorten the longer side from a random end. */
        int64_t a0 = 0, a1 = s->a.n, b0 = 0, b1 = s->b.n;
        while ((a1 - a0) + (b1 - b0) > max_num_tokens) {
            int trunc_a = (a1 - a0) > (b1 - b0);
            int front = tdp_rng_random(&rng) < 0.5;
            if (trunc_a) {
                if (front) a0++;
                else a1--;
            } else {
                if (front) b0++;
                else b1--;
            }
        }
        TD_ASSERT(a1 - a0 >= 1 && b1 - b0 >= 1);
        emit_instance(out, s, a0, a1, b0, b1, is_random_next, o, v, &rng);
        chunk0 = i + 1;
        current_length = 0;
    }
}

/* ---- the whole set, in parallel ---------------------------------------------------- */

enum { DOCS_PER_PART = 64 };

typedef struct {
    tdp_instance_set *set;
    const tdp_corpus *c;
    const int64_t *docs;
    int64_t n_docs;
    const tdp_instance_options *o;
    const tdp_vocab *v;
    pthread_mutex_t mu;
    int64_t next_part;
} build_ctx;

static void build_part(build_ctx *b, int64_t part, tdp_instance_scratch *s)
{
    int64_t total = b->o->dupe_factor * b->n_docs;
    int64_t k0 = part * DOCS_PER_PART;
    int64_t k1 = k0 + DOCS_PER_PART < total ? k0 + DOCS_PER_PART : total;
    for (int64_t k = k0; k < k1; k++)
        tdp_instances_from_document(&b->set->parts[part], s, b->c, b->docs, b->n_docs,
                                    k % b->n_docs, k / b->n_docs, b->o, b->v);
}

static void *build_main(void *arg)
{
    build_ctx *b = arg;
    tdp_instance_scratch s;
    memset(&s, 0, sizeof(s));
    for (;;) {
        pthread_mutex_lock(&b->mu);
        int64_t part = b->next_part++;
        pthread_mutex_unlock(&b->mu);
        if (part >= b->set->n_parts) break;
        build_part(b, part, &s);
    }
    tdp_instance_scratch_free(&s);
    return NULL;
}

void tdp_instance_set_build(tdp_instance_set *out, const tdp_corpus *c, const int64_t *docs,
                            int64_t n_docs, const tdp_instance_options *o, const tdp_vocab *v,
                            int n_jobs)
{
    memset(out, 0, sizeof(*out));
    int64_t total = o->dupe_factor * n_docs;
    out->n_parts = (total + DOCS_PER_PART - 1) / DOCS_PER_PART;
    out->parts = td_xcalloc((size_t)(out->n_parts > 0 ? out->n_parts : 1), sizeof(tdp_instances));
    build_ctx b = {.set = out, .c = c, .docs = docs, .n_docs = n_docs, .o = o, .v = v};
    pthread_mutex_init(&b.mu, NULL);
    if (n_jobs <= 1 || out->n_parts <= 1) {
        build_main(&b);
    } else {
        pthread_t *th = td_xmalloc((size_t)n_jobs * sizeof(pthread_t));
        for (int i = 0; i < n_jobs; i++)
            if (pthread_create(&th[i], NULL, build_main, &b) != 0)
                td_assert_fail(__FILE__, __LINE__, "pthread_create failed");
        for (int i = 0; i < n_jobs; i++) pthread_join(th[i], NULL);
        free(th);
    }
    pthread_mutex_destroy(&b.mu);
    for (int64_t p = 0; p < out->n_parts; p++) out->n += out->parts[p].start.n;
    out->rec = td_xmalloc((size_t)(out->n > 0 ? out->n : 1) * sizeof(int32_t *));
    int64_t k = 0;
    for (int64_t p = 0; p < out->n_parts; p++)
        for (int64_t i = 0; i < out->parts[p].start.n; i++)
            out->rec[k++] = out->parts[p].data.v + out->parts[p].start.v[i];
}

void tdp_instance_set_free(tdp_instance_set *x)
{
    for (int64_t p = 0; p < x->n_parts; p++) tdp_instances_free(&x->parts[p]);
    free(x->parts);
    free(x->rec);
    memset(x, 0, sizeof(*x));
}
