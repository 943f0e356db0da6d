/* Checkpoints (SPEC section 6): one HDF5 file per checkpoint holding the
 * parameters under their names, LAMB m and v, the step, the importance
 * table, every rank's data cursor, the seed, the resolved config as text
 * and a checksum. Written to a temporary name, fsynced and renamed, so a
 * crash mid-write never destroys the previous one; the last `keep` are
 * kept. Only rank 0 writes; every rank may read. */
#ifndef TOKDROP_CKPT_H
#define TOKDROP_CKPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokdrop/train/data.h"
#include "tokdrop/base/error.h"
#include "tokdrop/base/tensor.h"

/* What a checkpoint holds. For writing every pointer is an input; for
 * reading the arrays are caller-allocated outputs of the sizes given
 * (params, m, v: the table's block of n_params; importance: V, or NULL when
 * V is 0; cursors: n_ranks). */
typedef struct {
    int64_t step;                 /* optimizer updates applied */
    uint64_t seed;
    const td_tensor_info *tensors;
    int n_tensors;
    int64_t n_params;
    float *params, *m, *v;        /* (n_params) flat blocks laid out by the table */
    int64_t V;                    /* importance entries, 0 = no table */
    float *importance;            /* (V) */
    int n_ranks;
    td_data_cursor *cursors;      /* (n_ranks) */
    char *config_yaml;            /* writing: the resolved config; reading: malloc'd copy, caller frees */
} td_ckpt;

/* Writes DIR/ckpt-<step 8 digits>.h5 (creating DIR), via DIR/.ckpt-<step>.h5.tmp,
 * fsync and rename, then removes all but the newest `keep` checkpoints. The
 * file is built in memory first (its size, on rank 0). A failed write (a
 * full disk: TD_ERR_IO, strerror's reason) leaves no temporary file and the
 * checkpoints already in DIR as they were; its message names the newest. */
td_status td_ckpt_write(const char *dir, const td_ckpt *ckpt, int keep, td_error *err);

/* Removes all but the newest `keep` checkpoints up to ckpt-<step>, and any
 * newer than it (an abandoned timeline); for a caller that writes with a
 * larger keep until it knows the newest is good. */
td_status td_ckpt_prune(const char *dir, int64_t step, int keep, td_error *err);

/* Renames DIR/ckpt-<step>.h5 to ckpt-<step>.h5<suffix>, which no reader
 * takes for a checkpoint, so a resume uses the one before; the new path in
 * out (out_len bytes). TD_OK and out[0] == '\0' when there is no such file. */
td_status td_ckpt_set_aside(const char *dir, int64_t step, const char *suffix, char *out, size_t out_len,
                            td_error *err);

/* Writes one checkpoint to exactly path (via DIR/.NAME.tmp, fsync, rename); for
 * `tokdrop import`, whose output is named by the user. */
td_status td_ckpt_write_file(const char *path, const td_ckpt *ckpt, td_error *err);

/* The newest checkpoint in dir whose checksum and format are valid, in
 * path (size path_len); TD_OK with path[0] == '\0' when dir has none. When
 * dir holds checkpoints but none is valid, TD_ERR_FORMAT: starting over
 * silently would throw the run away.
 * Each newer file that is corrupt is reported through warn (may be NULL)
 * with a one-line message naming it and why, and skipped. */
td_status td_ckpt_find_latest(const char *dir, char *path, size_t path_len,
                              void (*warn)(void *ctx, const char *msg), void *warn_ctx,
                              td_error *err);

/* Verifies the checksum and reads a checkpoint into ckpt, whose sizes
 * (tensors, n_params, V, n_ranks) say what the caller expects. A tensor
 * missing or of another shape, another V, or a bad checksum is an error
 * naming the file and the dataset. When the file holds a different number
 * of ranks than ckpt->n_ranks, cursors are left untouched and *ranks_match
 * (may be NULL) is set false. m and v may be NULL (evaluation only needs
 * params). */
td_status td_ckpt_read(const char *path, td_ckpt *ckpt, bool *ranks_match, td_error *err);

/* Verifies the checkpoint and returns its resolved config (malloc'd, the
 * caller frees), from which the model's shape is known before reading it. */
td_status td_ckpt_read_config(const char *path, char **config_yaml, td_error *err);

#endif
