/* Lookups in the generated Unicode tables, and strict UTF-8 decoding. */
#include "unicode.h"

#include <string.h>

#include "unicode_tables.h"

const char *tdp_unicode_version(void) { return tdp_uc_version; }

uint8_t tdp_unicode_flags(uint32_t cp)
{
    uint32_t block = tdp_uc_flags_stage1[cp >> tdp_uc_shift];
    return tdp_uc_flags_stage2[(block << tdp_uc_shift) + (cp & ((1u << tdp_uc_shift) - 1))];
}

uint8_t tdp_unicode_ccc(uint32_t cp)
{
    uint32_t block = tdp_uc_ccc_stage1[cp >> tdp_uc_shift];
    return tdp_uc_ccc_stage2[(block << tdp_uc_shift) + (cp & ((1u << tdp_uc_shift) - 1))];
}

int tdp_unicode_is_cjk(uint32_t cp)
{
    /* The ranges of google-research/bert tokenization.py _is_chinese_char. */
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
           (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

/* Index of cp in the sorted keys, or -1. */
static int32_t find_key(const uint32_t *keys, int32_t n, uint32_t cp)
{
    int32_t lo = 0, hi = n - 1;
    while (lo <= hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (keys[mid] == cp) return mid;
        if (keys[mid] < cp) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

int tdp_unicode_lower(uint32_t out[3], uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
        return 1;
    }
    int32_t i = find_key(tdp_uc_lower_keys, tdp_uc_n_lower, cp);
    if (i < 0) {
        out[0] = cp;
        return 1;
    }
    uint32_t v = tdp_uc_lower_vals[i];
    int n = (int)(v & 3u);
    memcpy(out, tdp_uc_lower_pool + (v >> 2), (size_t)n * sizeof(uint32_t));
    return n;
}

int tdp_unicode_decompose(uint32_t out[4], uint32_t cp)
{
    /* Hangul syllables: Unicode 3.12, conjoining jamo algorithm. */
    enum { SBASE = 0xAC00, LBASE = 0x1100, VBASE = 0x1161, TBASE = 0x11A7,
           VCOUNT = 21, TCOUNT = 28, NCOUNT = VCOUNT * TCOUNT, SCOUNT = 19 * NCOUNT };
    if (cp >= SBASE && cp < SBASE + SCOUNT) {
        uint32_t s = cp - SBASE;
        out[0] = LBASE + s / NCOUNT;
        out[1] = VBASE + (s % NCOUNT) / TCOUNT;
        if (s % TCOUNT == 0) return 2;
        out[2] = TBASE + s % TCOUNT;
        return 3;
    }
    int32_t i = find_key(tdp_uc_decomp_keys, tdp_uc_n_decomp, cp);
    if (i < 0) {
        out[0] = cp;
        return 1;
    }
    uint32_t v = tdp_uc_decomp_vals[i];
    int n = (int)(v & 7u);
    memcpy(out, tdp_uc_decomp_pool + (v >> 3), (size_t)n * sizeof(uint32_t));
    return n;
}
