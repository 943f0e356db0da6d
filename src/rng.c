/* A splitmix64-style hash as a counter-based generator: value(key, counter)
 * = mix(key ^ mix(counter)). splitmix64's finalizer is a bijection with
 * good avalanche, which is all dropout masks and shuffles need. */
#include "tokdrop/rng.h"

#include <math.h>

static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t td_rng_key(uint64_t seed, uint64_t step, uint64_t sample, uint64_t site)
{
    uint64_t k = mix64(seed);
    k = mix64(k ^ step);
    k = mix64(k ^ sample);
    return mix64(k ^ site);
}

uint64_t td_rng_u64(uint64_t key, uint64_t counter)
{
    return mix64(key ^ mix64(counter));
}

float td_rng_uniform(uint64_t key, uint64_t counter)
{
    return (float)(td_rng_u64(key, counter) >> 40) * (1.0f / 16777216.0f);
}

float td_rng_normal(uint64_t key, uint64_t counter)
{
    /* u1 in (0, 1] so the log is finite. */
    double u1 = ((double)(td_rng_u64(key, 2 * counter) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (double)(td_rng_u64(key, 2 * counter + 1) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint32_t td_rng_below(uint64_t key, uint64_t counter, uint32_t n)
{
    uint64_t r = td_rng_u64(key, counter) >> 32;
    return (uint32_t)((r * (uint64_t)n) >> 32);
}
