/* The project's hash (hash.h) over xxHash's XXH3-64. */
#include "tokdrop/base/hash.h"

#include <stdio.h>
#include <stdlib.h>
#include <xxhash.h>

#include "tokdrop/base/error.h"

struct td_hash_state {
    XXH3_state_t *x;
};

uint64_t td_hash64(const void *data, size_t n_bytes)
{
    return XXH3_64bits(data, n_bytes);
}

td_hash_state *td_hash_state_new(void)
{
    td_hash_state *s = td_xmalloc(sizeof(*s));
    s->x = XXH3_createState();
    TD_ASSERT(s->x != NULL); /* out of memory */
    XXH_errorcode rc = XXH3_64bits_reset(s->x);
    TD_ASSERT(rc == XXH_OK);
    return s;
}

void td_hash_update(td_hash_state *s, const void *data, size_t n_bytes)
{
    XXH_errorcode rc = XXH3_64bits_update(s->x, data, n_bytes);
    TD_ASSERT(rc == XXH_OK); /* fails only for data == NULL with n_bytes > 0 */
}

uint64_t td_hash_digest(const td_hash_state *s)
{
    return XXH3_64bits_digest(s->x);
}

void td_hash_state_free(td_hash_state *s)
{
    if (!s) return;
    XXH3_freeState(s->x);
    free(s);
}

void td_hash_hex(char out[TD_HASH_HEX_LEN], uint64_t h)
{
    snprintf(out, TD_HASH_HEX_LEN, "%016llx", (unsigned long long)h);
}
