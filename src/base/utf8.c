/* UTF-8 decoding, validation and encoding, and str.isspace() (utf8.h). */
#include "tokdrop/base/utf8.h"

#include <string.h>

int td_utf8_is_space(uint32_t cp)
{
    /* The code points for which Python 3's str.isspace() is true (bidi
     * class WS, B or S, or category Zs): the same set since Unicode 6.3,
     * when U+180E left it. */
    static const uint32_t spaces[] = {
        0x0009, 0x000a, 0x000b, 0x000c, 0x000d, 0x001c, 0x001d, 0x001e, 0x001f, 0x0020,
        0x0085, 0x00a0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006,
        0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
    };
    if (cp > 0x20 && cp < 0x85) return 0;
    for (size_t i = 0; i < sizeof(spaces) / sizeof(spaces[0]); i++)
        if (spaces[i] == cp) return 1;
    return 0;
}

int td_utf8_decode(uint32_t *cp, const unsigned char *s, size_t n_bytes)
{
    if (n_bytes == 0) return 0;
    unsigned c0 = s[0];
    if (c0 < 0x80) {
        *cp = c0;
        return 1;
    }
    /* Table 3-7 of the Unicode standard: the well-formed byte sequences. */
    if (c0 >= 0xC2 && c0 <= 0xDF) {
        if (n_bytes < 2 || (s[1] & 0xC0) != 0x80) return 0;
        *cp = ((c0 & 0x1Fu) << 6) | (s[1] & 0x3Fu);
        return 2;
    }
    if (c0 >= 0xE0 && c0 <= 0xEF) {
        if (n_bytes < 3) return 0;
        unsigned lo = 0x80, hi = 0xBF;
        if (c0 == 0xE0) lo = 0xA0;
        if (c0 == 0xED) hi = 0x9F; /* no surrogates */
        if (s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80) return 0;
        *cp = ((c0 & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
        return 3;
    }
    if (c0 >= 0xF0 && c0 <= 0xF4) {
        if (n_bytes < 4) return 0;
        unsigned lo = 0x80, hi = 0xBF;
        if (c0 == 0xF0) lo = 0x90;
        if (c0 == 0xF4) hi = 0x8F; /* nothing past U+10FFFF */
        if (s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return 0;
        *cp = ((c0 & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) |
              (s[3] & 0x3Fu);
        return 4;
    }
    return 0;
}

size_t td_utf8_validate(const unsigned char *s, size_t n_bytes)
{
    size_t i = 0;
    while (i < n_bytes) {
        /* ASCII runs dominate real text: check 8 bytes at a time. */
        while (i + 8 <= n_bytes) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ULL) break;
            i += 8;
        }
        if (i >= n_bytes) break;
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        int len = td_utf8_decode(&cp, s + i, n_bytes - i);
        if (len == 0) return i;
        i += (size_t)len;
    }
    return n_bytes;
}

int td_utf8_encode(char out[4], uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}
