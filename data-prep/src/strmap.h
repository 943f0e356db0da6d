/* An open-addressing hash map from byte strings to int64 values: the vocab
 * lookups of WordPiece (the hot loop of tokenization) and the word counts of
 * vocabulary learning. Keys are copied into an arena owned by the map. */
#ifndef TDP_STRMAP_H
#define TDP_STRMAP_H

#include <stdint.h>

typedef struct {
    uint64_t hash;   /* 0 marks an empty slot (real hashes are forced non-zero) */
    int64_t key_off; /* into keys */
    int32_t key_len;
    int64_t value;
} tdp_strmap_slot;

typedef struct {
    tdp_strmap_slot *slots; /* (cap), cap a power of two */
    int64_t cap, n_keys;
    char *keys;             /* arena of key bytes */
    int64_t n_key_bytes, cap_key_bytes;
} tdp_strmap;

uint64_t tdp_hash_bytes(const void *p, int64_t n_bytes);

void tdp_strmap_init(tdp_strmap *m, int64_t expected_keys);
void tdp_strmap_free(tdp_strmap *m);

/* The value of key, or NULL. hash must be tdp_hash_bytes(key, key_len). */
const int64_t *tdp_strmap_find_h(const tdp_strmap *m, const char *key, int32_t key_len,
                                 uint64_t hash);
const int64_t *tdp_strmap_find(const tdp_strmap *m, const char *key, int32_t key_len);

/* Pointer to the value of key, inserted with value `init` when absent
 * (*inserted tells which, if not NULL). The pointer is valid until the next
 * insertion. */
int64_t *tdp_strmap_upsert(tdp_strmap *m, const char *key, int32_t key_len, int64_t init,
                           int *inserted);

/* The key bytes of an occupied slot. */
const char *tdp_strmap_key(const tdp_strmap *m, const tdp_strmap_slot *s);

#endif
