/* exp and erf in fp32 for loops the compiler vectorizes: branch-free
 * polynomials, within a few ulps of libm's expf and erff (test_ops checks
 * the bound). The bf16 path uses them in softmax, GELU and cross-entropy,
 * where libm's scalar calls were a tenth of a step; the fp32 path keeps
 * libm, so its results stay what they were. Private to src/. */
#ifndef TOKDROP_VECMATH_H
#define TOKDROP_VECMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* e^x = 2^n e^r with n = round(x / ln 2) and |r| <= ln(2)/2, where the
 * Taylor polynomial of degree 7 is good to 5e-9 relative; ln 2 in two
 * parts so that r is exact. Below -87.3 the result is 0 (as libm's
 * flushes to a denormal or 0), above 88.7 +inf. */
static inline float td_vexpf(float x)
{
    const float log2e = 1.44269504088896341f, ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    float xc = x < -87.3f ? -87.3f : x > 88.7f ? 88.7f : x; /* not fminf: it is a call */
    float n = rintf(xc * log2e);
    float r = (xc - n * ln2_hi) - n * ln2_lo;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof(scale));
    float y = p * scale;
    y = x < -87.3f ? 0.0f : y;
    return x > 88.7f ? INFINITY : y;
}

/* erf by two least-squares fits on Chebyshev points (made for tokdrop):
 * |x| < 1: x p(x^2), p of degree 7; 1 <= |x| < 4: 1 - e^(-x^2) q(t),
 * t = (|x| - 2.5) / 1.5, q of degree 12; beyond, +-1 (erf(4) is 1 in
 * fp32). Absolute error <= 1.5e-7 in fp32 arithmetic. */
static inline float td_verff(float x)
{
    float a = fabsf(x), u = a * a;
    float p = -9.673590746411831e-06f;
    p = p * u + 0.00011268253869521627f;
    p = p * u - 0.0008484396546885459f;
    p = p * u + 0.005221053412252499f;
    p = p * u - 0.026865438310397033f;
    p = p * u + 0.11283782622059615f;
    p = p * u - 0.3761263847599098f;
    p = p * u + 1.12837916706236f;
    float small = a * p;
    float t = (a - 2.5f) * (1.0f / 1.5f);
    float q = 1.381485013733641e-05f;
    q = q * t - 3.693063100541437e-05f;
    q = q * t + 5.4959116210361036e-05f;
    q = q * t - 0.0001439437153841518f;
    q = q * t + 0.0004144957711156791f;
    q = q * t - 0.0010171222493707218f;
    q = q * t + 0.0024017075323486334f;
    q = q * t - 0.005567331143659279f;
    q = q * t + 0.012489702435840418f;
    q = q * t - 0.02700572557001706f;
    q = q * t + 0.05611047267849232f;
    q = q * t - 0.11152100468317348f;
    q = q * t + 0.21080636427480068f;
    float large = 1.0f - td_vexpf(-u) * q;
    float y = a < 1.0f ? small : a < 4.0f ? large : 1.0f;
    return copysignf(y, x);
}

#endif
