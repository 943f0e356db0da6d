/* Internal: files written so that a crash never leaves a half-written one
 * under the final name (safetensors, config.json, vocab.txt): written to
 * PATH.tmp, flushed and fsynced, renamed, and the directory fsynced. Not
 * part of the public API. HDF5 checkpoints do the same in ckpt.c. */
#ifndef TOKDROP_FILE_ATOMIC_H
#define TOKDROP_FILE_ATOMIC_H

#include <stdio.h>

#include "tokdrop/error.h"

/* Writes the content that fill writes to f. fill returns TD_OK, or an
 * error it has set in err; a failed write of f itself is reported here,
 * naming the file. On any error PATH.tmp is removed and PATH is untouched. */
td_status td_file_write_atomic(const char *path, td_status (*fill)(FILE *f, const void *ctx, td_error *err),
                               const void *ctx, td_error *err);

#endif
