/* Internal HDF5 plumbing shared by the readers and writers of HDF5 files
 * (data.c, ckpt.c); not part of the public API. We report HDF5 failures as
 * one td_error line (file, object, the failing call, HDF5's innermost reason
 * and our call site) instead of HDF5's own stack dump, which is switched off
 * around every public function that touches HDF5. */
#ifndef TOKDROP_H5UTIL_H
#define TOKDROP_H5UTIL_H

#include <hdf5.h>
#include <stdbool.h>

#include "tokdrop/error.h"

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

#endif
