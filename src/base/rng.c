/* Stream keys and the derived distributions; the generator itself is
 * inline in rng.h (see there). */
#include "tokdrop/base/rng.h"

#include <math.h>

uint64_t td_rng_key(uint64_t seed, uint64_t step, uint64_t sample, uint64_t site)
{
    uint64_t k = td_rng_mix64(seed);
    k = td_rng_mix64(k ^ step);
    k = td_rng_mix64(k ^ sample);
    return td_rng_mix64(k ^ site);
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
