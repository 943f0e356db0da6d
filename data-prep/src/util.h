/* Small helpers shared by tokdrop-prep: growable arrays, a random stream on
 * top of the library's counter-based generator, wall-clock time, and the
 * random-stream sites this program uses. */
#ifndef TDP_UTIL_H
#define TDP_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "tokdrop/base/rng.h"

/* realloc that aborts with the call site on failure (like td_xmalloc). */
void *tdp_xrealloc_at(void *p, size_t n_bytes, const char *file, int line);
#define tdp_xrealloc(p, n_bytes) tdp_xrealloc_at((p), (n_bytes), __FILE__, __LINE__)

/* Duplicates a string with td_xmalloc. */
char *tdp_xstrdup(const char *s);

typedef struct {
    int32_t *v;
    int64_t n, cap;
} tdp_vec_i32;

typedef struct {
    int64_t *v;
    int64_t n, cap;
} tdp_vec_i64;

typedef struct {
    char *v;
    int64_t n, cap;
} tdp_vec_char;

void tdp_vec_i32_reserve(tdp_vec_i32 *a, int64_t n_elems);
void tdp_vec_i64_reserve(tdp_vec_i64 *a, int64_t n_elems);
void tdp_vec_char_reserve(tdp_vec_char *a, int64_t n_elems);

void tdp_vec_i32_push(tdp_vec_i32 *a, int32_t x);
void tdp_vec_i64_push(tdp_vec_i64 *a, int64_t x);

void tdp_vec_char_append(tdp_vec_char *a, const char *s, int64_t n_bytes);

/* Random-stream sites of tokdrop-prep (the library's td_rng_site values stay
 * below 100 plus layer counts; these are kept apart from them). */
enum {
    TDP_SITE_DOC_ORDER = 1001,  /* the document permutation (train/eval split) */
    TDP_SITE_INSTANCES = 1002,  /* sequence building and masking of one document */
    TDP_SITE_SHUFFLE = 1003,    /* the order of all training instances */
};

/* A sequential stream over td_rng_u64(key, counter): the same draws as
 * Python's random.Random methods the google-research script uses, in
 * meaning (not in values). */
typedef struct {
    uint64_t key;
    uint64_t counter;
} tdp_rng;

void tdp_rng_init(tdp_rng *r, uint64_t seed, uint64_t a, uint64_t b, uint64_t site);
/* Uniform double in [0, 1) with 53 random bits. */
double tdp_rng_random(tdp_rng *r);
/* Uniform integer in [lo, hi], both inclusive (random.randint); hi - lo < 2^32. */
int64_t tdp_rng_randint(tdp_rng *r, int64_t lo, int64_t hi);

/* Seconds on a monotonic clock. */
double tdp_now(void);

/* Progress lines on stderr for long runs: at most one per interval. */
typedef struct {
    int quiet;
    double t_start, t_last, interval_s;
} tdp_progress;

void tdp_progress_init(tdp_progress *p, int quiet);
/* Prints "tokdrop-prep: <message>" when not quiet and, unless force, when
 * interval_s has passed since the last line. */
void tdp_progress_say(tdp_progress *p, int force, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
