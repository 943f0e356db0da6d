/* Internal HDF5 plumbing shared by the readers and writers of HDF5 files
 * (checkpoints, training shards, --dump files, tokdrop-prep's shards); not
 * part of the public API. We report HDF5 failures as
 * one td_error line (file, object, the failing call, HDF5's innermost reason
 * and our call site) instead of HDF5's own stack dump, which is switched off
 * around every public function that touches HDF5. */
#ifndef TOKDROP_H5UTIL_H
#define TOKDROP_H5UTIL_H

#include <hdf5.h>
#include <stdbool.h>

#include "tokdrop/base/error.h"

/* HDF5's reason for the last failed call, read from its error stack. */
typedef struct {
    char desc[256];  /* the innermost (first) description, or "no detail" */
    bool truncated;  /* some description says "truncated": a cut-off file */
} td_h5_why;

/* Reads the current error stack; call it right after the failed call, since
 * the next HDF5 call clears the stack. */
td_h5_why td_h5_get_why(void);

/* Records a failed HDF5 call in err as TD_ERR_IO and returns that status:
 * "<path>: <what>: HDF5 call <call> failed: <reason> (<file>:<line>)".
 * `what` names the object ("dataset input_ids", "group param"), or is NULL
 * for the file itself; `file` may be a full path (only its base name is
 * printed). */
td_status td_h5_fail(td_error *err, const char *path, const char *what, const char *call,
                     const char *file, int line);

/* Runs an HDF5 call (negative return = failure); on failure records path,
 * what, the call's text and the call site in `err` and jumps to the
 * function's `done:` cleanup with the status in `st`. */
#define TD_H5(path, what, expr) \
    do { \
        if ((expr) < 0) { \
            st = td_h5_fail(err, (path), (what), #expr, __FILE__, __LINE__); \
            goto done; \
        } \
    } while (0)

/* HDF5's automatic error printing, saved by td_h5_quiet_begin (which turns
 * it off) and put back by td_h5_quiet_end. */
typedef struct {
    H5E_auto2_t fn;
    void *data;
} td_h5_quiet;

td_h5_quiet td_h5_quiet_begin(void);
void td_h5_quiet_end(td_h5_quiet q);

/* Closes id with close_fn unless it is negative (never opened), so cleanup
 * after `done:` can run whatever succeeded. */
void td_h5_close_id(hid_t id, herr_t (*close_fn)(hid_t));

/* ---- writing ---------------------------------------------------------------
 * A file written atomically (fs.h). HDF5 builds it in memory (the core
 * driver, h5util.c says why); td_h5_writer_close writes it to a temporary
 * name, fsyncs and renames it, or removes the temporary file and leaves
 * path untouched. A file needs its size in memory while it is written. The
 * first failure sticks and later writes are skipped, so a writer makes its
 * calls in a row and looks at the status once, at td_h5_writer_close.
 * HDF5's messages name path (the file being written). */
struct td_h5_image;
typedef struct {
    hid_t file;
    char *path;        /* the final name */
    struct td_h5_image *image; /* the file in memory (h5util.c) */
    hid_t lcpl;        /* link creation of datasets: H5P_DEFAULT unless set */
    H5T_cset_t cset;   /* of string attributes: H5T_CSET_ASCII unless set */
    td_status st;
    td_error *err;
} td_h5_writer;

/* Starts the file with fapl's properties (H5P_DEFAULT or the caller's;
 * its driver is replaced). */
td_status td_h5_writer_create(td_h5_writer *w, const char *path, hid_t fapl, td_error *err);

/* Closes the file and, when everything succeeded, writes it to path
 * atomically; returns the first failure (a write error names the file,
 * its temporary name and strerror's reason). */
td_status td_h5_writer_close(td_h5_writer *w);

/* Scalar attributes of the root: a fixed-length string, or a number stored
 * as file_type and given as mem_type. */
void td_h5_write_attr_str(td_h5_writer *w, const char *name, const char *value);
void td_h5_write_attr_num(td_h5_writer *w, const char *name, hid_t file_type, hid_t mem_type,
                          const void *value);

/* A dataset of ndim dims (ndim 0: a scalar) stored as file_type from data
 * in mem_type; nothing is written for zero elements. */
void td_h5_write_dataset(td_h5_writer *w, const char *name, hid_t file_type, hid_t mem_type,
                         int ndim, const hsize_t *dims, const void *data);

/* A scalar fixed-length string dataset holding text. */
void td_h5_write_str_dataset(td_h5_writer *w, const char *name, const char *text);

/* A group created with gcpl (H5P_DEFAULT or the caller's). */
void td_h5_write_group(td_h5_writer *w, const char *name, hid_t gcpl);

/* ---- reading --------------------------------------------------------------- */

/* *found: whether loc has the attribute name. */
td_status td_h5_attr_exists(bool *found, hid_t loc, const char *path, const char *name, td_error *err);

/* Reads the scalar attribute name of loc into out: a string, fixed- or
 * variable-length (h5py's), ASCII or UTF-8 (mem_type < 0, out of out_len
 * bytes, NUL-terminated) or an integer
 * converted to mem_type. A missing attribute, another class or shape is
 * TD_ERR_FORMAT. */
td_status td_h5_read_attr(void *out, size_t out_len, hid_t mem_type, hid_t loc, const char *path,
                          const char *name, td_error *err);

/* Reads the scalar fixed-length string dataset name of loc, at most
 * max_bytes long, into *out (malloc'd, NUL-terminated). A missing dataset,
 * or one of another type or shape, is TD_ERR_FORMAT. */
td_status td_h5_read_str_dataset(char **out, hid_t loc, const char *path, const char *name,
                                 uint64_t max_bytes, td_error *err);

#endif
