/* Counter-based random numbers (SPEC section 4): every random value is a
 * pure function of (seed, step or epoch, global sample index, site) and a
 * counter inside that stream, so results do not depend on thread count,
 * rank layout, or whether a run was resumed. */
#ifndef TOKDROP_RNG_H
#define TOKDROP_RNG_H

#include <stdint.h>

/* Where in the program a random stream is used; part of the key so that
 * streams never collide. Dropout sites add the layer index (see model.c). */
typedef enum {
    TD_SITE_SHUFFLE = 1,      /* data order within a chunk of an epoch */
    TD_SITE_MASKING = 2,      /* dynamic masking of a sample in an epoch */
    TD_SITE_DROP_RANDOM = 3,  /* importance: random selection */
    TD_SITE_INIT = 4,         /* parameter initialization */
    TD_SITE_FILE_ORDER = 5,   /* order of a rank's shard files in an epoch */
    TD_SITE_DROPOUT = 16,     /* dropout sites: TD_SITE_DROPOUT + k */
} td_rng_site;

/* A 64-bit stream key from the four coordinates. */
uint64_t td_rng_key(uint64_t seed, uint64_t step, uint64_t sample, uint64_t site);

/* A splitmix64-style hash as a counter-based generator: value(key, counter)
 * = mix(key ^ mix(counter)). splitmix64's finalizer is a bijection with
 * good avalanche, which is all dropout masks and shuffles need. Inline so
 * that the dropout loops, which draw one value per element, vectorize. */
static inline uint64_t td_rng_mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The counter-th 64-bit value of the stream key. */
static inline uint64_t td_rng_u64(uint64_t key, uint64_t counter)
{
    return td_rng_mix64(key ^ td_rng_mix64(counter));
}

/* Uniform in [0, 1) with 24 random bits (exactly representable floats). */
static inline float td_rng_uniform(uint64_t key, uint64_t counter)
{
    return (float)(td_rng_u64(key, counter) >> 40) * (1.0f / 16777216.0f);
}

/* Standard normal (Box-Muller over two counters 2*counter, 2*counter+1). */
float td_rng_normal(uint64_t key, uint64_t counter);

/* Uniform integer in [0, n), n > 0 (Lemire's multiply, no modulo bias worth
 * measuring for n < 2^32). */
uint32_t td_rng_below(uint64_t key, uint64_t counter, uint32_t n);

#endif
