/* Open addressing with linear probing at load <= 1/2; the full 64-bit hash
 * is kept in the slot so that probes compare bytes only on a hash match. */
#include "strmap.h"

#include <stdlib.h>
#include <string.h>

#include "tokdrop/base/error.h"
#include "util.h"

static inline uint64_t mix(uint64_t x)
{
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ULL;
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ULL;
    x ^= x >> 32;
    return x;
}

uint64_t tdp_hash_bytes(const void *p, int64_t n_bytes)
{
    /* Eight bytes per multiply: vocabulary pieces are short, and this is
     * called for every candidate piece of every word. */
    const unsigned char *s = p;
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ (uint64_t)n_bytes;
    while (n_bytes >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ULL;
        h ^= h >> 29;
        s += 8;
        n_bytes -= 8;
    }
    if (n_bytes > 0) {
        uint64_t w = 0;
        memcpy(&w, s, (size_t)n_bytes);
        h = (h ^ w) * 0x94d049bb133111ebULL;
    }
    h = mix(h);
    return h ? h : 1;
}

void tdp_strmap_init(tdp_strmap *m, int64_t expected_keys)
{
    int64_t cap = 64;
    while (cap < 2 * expected_keys) cap *= 2;
    m->slots = td_xcalloc((size_t)cap, sizeof(*m->slots));
    m->cap = cap;
    m->n_keys = 0;
    m->cap_key_bytes = 1024;
    m->keys = td_xmalloc((size_t)m->cap_key_bytes);
    m->n_key_bytes = 0;
}

void tdp_strmap_free(tdp_strmap *m)
{
    free(m->slots);
    free(m->keys);
    memset(m, 0, sizeof(*m));
}

const int64_t *tdp_strmap_find_h(const tdp_strmap *m, const char *key, int32_t key_len,
                                 uint64_t hash)
{
    uint64_t mask = (uint64_t)m->cap - 1;
    for (uint64_t i = hash & mask;; i = (i + 1) & mask) {
        const tdp_strmap_slot *s = &m->slots[i];
        if (s->hash == 0) return NULL;
        if (s->hash == hash && s->key_len == key_len &&
            memcmp(m->keys + s->key_off, key, (size_t)key_len) == 0)
            return &s->value;
    }
}

const int64_t *tdp_strmap_find(const tdp_strmap *m, const char *key, int32_t key_len)
{
    return tdp_strmap_find_h(m, key, key_len, tdp_hash_bytes(key, key_len));
}

const char *tdp_strmap_key(const tdp_strmap *m, const tdp_strmap_slot *s)
{
    return m->keys + s->key_off;
}

static void grow(tdp_strmap *m)
{
    int64_t new_cap = m->cap * 2;
    tdp_strmap_slot *slots = td_xcalloc((size_t)new_cap, sizeof(*slots));
    uint64_t mask = (uint64_t)new_cap - 1;
    for (int64_t j = 0; j < m->cap; j++) {
        if (m->slots[j].hash == 0) continue;
        uint64_t i = m->slots[j].hash & mask;
        while (slots[i].hash != 0) i = (i + 1) & mask;
        slots[i] = m->slots[j];
    }
    free(m->slots);
    m->slots = slots;
    m->cap = new_cap;
}

int64_t *tdp_strmap_upsert(tdp_strmap *m, const char *key, int32_t key_len, int64_t init,
                           int *inserted)
{
    if (2 * (m->n_keys + 1) > m->cap) grow(m);
    uint64_t hash = tdp_hash_bytes(key, key_len);
    uint64_t mask = (uint64_t)m->cap - 1;
    uint64_t i = hash & mask;
    for (;; i = (i + 1) & mask) {
        tdp_strmap_slot *s = &m->slots[i];
        if (s->hash == 0) break;
        if (s->hash == hash && s->key_len == key_len &&
            memcmp(m->keys + s->key_off, key, (size_t)key_len) == 0) {
            if (inserted) *inserted = 0;
            return &s->value;
        }
    }
    if (m->n_key_bytes + key_len > m->cap_key_bytes) {
        while (m->n_key_bytes + key_len > m->cap_key_bytes) m->cap_key_bytes *= 2;
        m->keys = tdp_xrealloc(m->keys, (size_t)m->cap_key_bytes);
    }
    memcpy(m->keys + m->n_key_bytes, key, (size_t)key_len);
    tdp_strmap_slot *s = &m->slots[i];
    s->hash = hash;
    s->key_off = m->n_key_bytes;
    s->key_len = key_len;
    s->value = init;
    m->n_key_bytes += key_len;
    m->n_keys++;
    if (inserted) *inserted = 1;
    return &s->value;
}
