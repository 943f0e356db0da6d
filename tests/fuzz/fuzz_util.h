/* What the fuzz harnesses (tests/fuzz/fuzz_*.c) share: a scratch file per
 * process for the readers that take a path, a byte reader for harnesses
 * that decode structured edits from their input, and the check every
 * harness makes on a failed call. */
#ifndef TOKDROP_FUZZ_UTIL_H
#define TOKDROP_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "tokdrop/base/error.h"

/* The libFuzzer entry points; replay.c calls them outside libFuzzer. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* This process's scratch file number `slot` (0..3), created once under
 * $TMPDIR (default /tmp) and removed at exit; the same path every call. */
const char *fz_path(int slot);

/* Writes data to fz_path(slot), replacing what it held, and returns the path. */
const char *fz_write(int slot, const uint8_t *data, size_t size);

/* Reads the input front to back; past the end every read gives 0. */
typedef struct {
    const uint8_t *p;
    size_t n;
} fz_bytes;

uint8_t fz_u8(fz_bytes *b);
uint32_t fz_u32(fz_bytes *b); /* little-endian */

/* A failed call must say why in one line: aborts when st is not TD_OK and
 * err holds no message, or one with a control character (a newline). With FUZZ_VERBOSE set in
 * the environment, prints each call's outcome (to see what a seed reaches). */
void fz_check_error(td_status st, const td_error *err, const char *call);

#endif
