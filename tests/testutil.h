/* Small helpers shared by the test programs (cmocka needs these includes in
 * this order). */
#ifndef TOKDROP_TESTUTIL_H
#define TOKDROP_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* Deterministic pseudo-random fill in [lo, hi). */
void tu_fill_uniform(float *x, int64_t n, float lo, float hi, uint64_t seed);

/* Max |a-b| / max(|b|, floor) over n elements. */
double tu_max_rel_err(const float *a, const float *b, int64_t n, double floor);

/* A fresh directory under the build tree's tests/tmp for this test; the
 * returned string is static. */
const char *tu_tmpdir(const char *name);

/* The whole of a small text file (at most 4095 bytes), in a static buffer
 * that the next call overwrites; fails the test when it cannot be read. */
const char *tu_read_text(const char *path);

/* A full disk, as far as a writer can tell, without one: files of this
 * process cannot grow past n_bytes (RLIMIT_FSIZE; a write past it fails
 * with EFBIG, SIGXFSZ ignored) until tu_file_limit_end. */
void tu_file_limit_begin(long n_bytes);
void tu_file_limit_end(void);

#endif
