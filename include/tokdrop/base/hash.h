/* Hashing: the one 64-bit hash of the project, for every checksum and
 * identity hash (checkpoint checksums, the replica check across ranks, the
 * vocabulary hash that shards carry). It is xxHash's XXH3-64 with seed 0
 * (Debian libxxhash-dev), wrapped here so it can be swapped in one place;
 * the values it gives are part of the file formats (checkpoints from format
 * version 2, shards from format version 2), so a swap is a format change.
 * Hash maps keep their own small inline mixers: those are lookup speed, not
 * identity. */
#ifndef TOKDROP_HASH_H
#define TOKDROP_HASH_H

#include <stddef.h>
#include <stdint.h>

/* XXH3-64 of n_bytes bytes. */
uint64_t td_hash64(const void *data, size_t n_bytes);

/* The same hash over data given in pieces: the digest of the pieces equals
 * td_hash64 of their concatenation. */
typedef struct td_hash_state td_hash_state;
td_hash_state *td_hash_state_new(void);
void td_hash_update(td_hash_state *s, const void *data, size_t n_bytes);
uint64_t td_hash_digest(const td_hash_state *s);
void td_hash_state_free(td_hash_state *s);

/* The 16 lower-case hex digits of a hash, as files store it. */
#define TD_HASH_HEX_LEN 17
void td_hash_hex(char out[TD_HASH_HEX_LEN], uint64_t h);

#endif
