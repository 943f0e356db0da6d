/* Growable arrays, the random stream and the clock (see util.h). */
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tokdrop/base/error.h"

void *tdp_xrealloc_at(void *p, size_t n_bytes, const char *file, int line)
{
    void *q = realloc(p, n_bytes ? n_bytes : 1);
    if (!q) td_assert_fail(file, line, "realloc returned NULL");
    return q;
}

char *tdp_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = td_xmalloc(n);
    memcpy(d, s, n);
    return d;
}

/* Grows capacity geometrically so that pushes are amortized O(1). */
static int64_t grown(int64_t cap, int64_t need)
{
    int64_t c = cap > 0 ? cap : 16;
    while (c < need) c += c / 2 + 16;
    return c;
}

void tdp_vec_i32_reserve(tdp_vec_i32 *a, int64_t n_elems)
{
    if (n_elems <= a->cap) return;
    a->cap = grown(a->cap, n_elems);
    a->v = tdp_xrealloc(a->v, (size_t)a->cap * sizeof(*a->v));
}

void tdp_vec_i64_reserve(tdp_vec_i64 *a, int64_t n_elems)
{
    if (n_elems <= a->cap) return;
    a->cap = grown(a->cap, n_elems);
    a->v = tdp_xrealloc(a->v, (size_t)a->cap * sizeof(*a->v));
}

void tdp_vec_char_reserve(tdp_vec_char *a, int64_t n_elems)
{
    if (n_elems <= a->cap) return;
    a->cap = grown(a->cap, n_elems);
    a->v = tdp_xrealloc(a->v, (size_t)a->cap);
}

void tdp_vec_i32_push(tdp_vec_i32 *a, int32_t x)
{
    if (a->n == a->cap) tdp_vec_i32_reserve(a, a->n + 1);
    a->v[a->n++] = x;
}

void tdp_vec_i64_push(tdp_vec_i64 *a, int64_t x)
{
    if (a->n == a->cap) tdp_vec_i64_reserve(a, a->n + 1);
    a->v[a->n++] = x;
}

void tdp_vec_char_append(tdp_vec_char *a, const char *s, int64_t n_bytes)
{
    if (n_bytes <= 0) return;
    tdp_vec_char_reserve(a, a->n + n_bytes);
    memcpy(a->v + a->n, s, (size_t)n_bytes);
    a->n += n_bytes;
}

void tdp_rng_init(tdp_rng *r, uint64_t seed, uint64_t a, uint64_t b, uint64_t site)
{
    r->key = td_rng_key(seed, a, b, site);
    r->counter = 0;
}

double tdp_rng_random(tdp_rng *r)
{
    return (double)(td_rng_u64(r->key, r->counter++) >> 11) * (1.0 / 9007199254740992.0);
}

int64_t tdp_rng_randint(tdp_rng *r, int64_t lo, int64_t hi)
{
    TD_ASSERT(hi >= lo && hi - lo < (int64_t)UINT32_MAX);
    return lo + (int64_t)td_rng_below(r->key, r->counter++, (uint32_t)(hi - lo + 1));
}

double tdp_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void tdp_progress_init(tdp_progress *p, int quiet)
{
    p->quiet = quiet;
    p->t_start = p->t_last = tdp_now();
    p->interval_s = 2.0;
}

void tdp_progress_say(tdp_progress *p, int force, const char *fmt, ...)
{
    if (p->quiet) return;
    double t = tdp_now();
    if (!force && t - p->t_last < p->interval_s) return;
    p->t_last = t;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "tokdrop-prep: [%6.1fs] ", t - p->t_start);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}
