/* Internal: the file system, one way (not part of the public API).
 *
 * Every file tokdrop and tokdrop-prep write (checkpoints, safetensors,
 * config.json, vocab.txt, shards, the run directory's config.yaml, dumps)
 * is written atomically: to a temporary name in the same directory
 * (DIR/.NAME.tmp), flushed and fsynced, renamed over DIR/NAME, and the
 * directory fsynced, so that a crash or a failed write leaves either the
 * old file or the new one under the final name, never a partial one, and
 * no temporary file after a failure we saw. Appended logs (metrics.jsonl)
 * are not atomic files and do not come here.
 *
 * HDF5 files too: HDF5 builds them in memory (formats/h5util.h) and
 * td_fs_write_atomic writes them.
 *
 * Free of MPI, BLAS and HDF5, so that every program can use it. */
#ifndef TOKDROP_FS_H
#define TOKDROP_FS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tokdrop/base/error.h"

/* Writes what fill writes to f. fill returns TD_OK, or an error it has set
 * in err; a failed write of f itself is reported here, naming the file. On
 * any error the temporary file is removed and path is untouched. */
typedef td_status (*td_fs_fill_fn)(FILE *f, const void *ctx, td_error *err);
td_status td_fs_write_atomic(const char *path, td_fs_fill_fn fill, const void *ctx, td_error *err);

/* td_fs_write_atomic of a C string. */
td_status td_fs_write_text(const char *path, const char *text, td_error *err);

/* The temporary name for path (DIR/.NAME.tmp), malloc'd. */
char *td_fs_tmp_path(const char *path);

/* Removes a temporary file after a failed write (quietly: it may not exist). */
void td_fs_discard(const char *tmp);

/* mkdir -p: creates dir and its missing parents; an existing directory is
 * fine, an existing non-directory is an error. made (may be NULL) is called
 * with each directory this call created, outermost first. */
td_status td_fs_mkdir_p(const char *dir, void (*made)(void *ctx, const char *dir), void *made_ctx,
                        td_error *err);

/* dir + "/" + name into out (no slash added after an empty dir or one that
 * ends in '/'); a result longer than out_len - 1 bytes is TD_ERR_ARG, never
 * a truncated path. */
td_status td_fs_join(char *out, size_t out_len, const char *dir, const char *name, td_error *err);

/* The same, malloc'd (cannot overflow). */
char *td_fs_join_alloc(const char *dir, const char *name);

/* The names in dir except "." and "..", sorted by strcmp, malloc'd (free
 * with td_fs_list_free). A missing dir is an error unless missing is
 * non-NULL: then *missing is set and the list is empty. */
td_status td_fs_list(const char *dir, char ***names_out, int64_t *n_out, bool *missing,
                     td_error *err);
void td_fs_list_free(char **names, int64_t n);

/* Opens a file the user named, for reading: path must be a regular file. A
 * directory, a FIFO, a device or an unreadable file is the error code
 * whose message names path and says what it is and what was expected
 * (what: "a YAML config file"). Never blocks on a FIFO. */
td_status td_fs_open_regular(FILE **out, const char *path, const char *what, td_status code,
                             td_error *err);
/* The same as a file descriptor (for pread). */
td_status td_fs_open_regular_fd(int *out, const char *path, const char *what, td_status code,
                                td_error *err);

#endif
