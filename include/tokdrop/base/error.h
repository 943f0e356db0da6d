/* Error reporting for tokdrop: a status plus one human line for recoverable
 * failures (bad input, files, config, MPI), and TD_ASSERT for broken
 * invariants, which is never compiled out and brings the whole MPI job down
 * (through the abort hook dist.c installs). */
#ifndef TOKDROP_ERROR_H
#define TOKDROP_ERROR_H

#include <stddef.h>

/* The longest file path the configuration and the messages hold. */
#define TD_PATH_LEN 4096

typedef enum {
    TD_OK = 0,
    TD_ERR_IO,      /* a file could not be opened, read or written */
    TD_ERR_FORMAT,  /* a file was read but its content is not what we expect */
    TD_ERR_CONFIG,  /* a config key, type or value is wrong */
    TD_ERR_ARG,     /* bad command-line argument or API argument */
    TD_ERR_NOMEM,   /* allocation failed */
    TD_ERR_MPI,     /* an MPI call failed or another rank reported an error */
} td_status;

#define TD_ERROR_MSG_LEN 1024

/* The message names what went wrong, where (file, line, dataset, key) and
 * what was expected; callers print it as one line. */
typedef struct {
    td_status status;
    char msg[TD_ERROR_MSG_LEN];
} td_error;

const char *td_status_str(td_status status);

/* Records status and a printf-style message in err (which may be NULL) and
 * returns status, so callers can write `return td_error_set(err, ...)`.
 * The message is always one line: control characters in it (from quoted
 * input) are written as \n, \r, \t or \xNN. */
td_status td_error_set(td_error *err, td_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Reports "file:line: assertion failed: expr" (report.h, TD_REPORT_FATAL),
 * calls the abort hook, then abort(). */
_Noreturn void td_assert_fail(const char *file, int line, const char *expr);

/* What a failed assertion does before abort(): td_dist_init installs one
 * that aborts every rank of the MPI job with the code it is given (this
 * layer knows nothing of MPI); NULL: none. A hook should not return. */
#define TD_ASSERT_EXIT_CODE 70
typedef void (*td_abort_hook)(int exit_code);
void td_error_set_abort_hook(td_abort_hook hook);

#define TD_ASSERT(cond) \
    do { \
        if (!(cond)) td_assert_fail(__FILE__, __LINE__, #cond); \
    } while (0)

/* malloc/calloc that abort with the call site on failure: for the few large
 * allocations made once at init, where there is nothing sensible to recover. */
void *td_xmalloc_at(size_t n_bytes, const char *file, int line);
void *td_xcalloc_at(size_t n_elems, size_t elem_bytes, const char *file, int line);
#define td_xmalloc(n_bytes) td_xmalloc_at((n_bytes), __FILE__, __LINE__)
#define td_xcalloc(n, sz) td_xcalloc_at((n), (sz), __FILE__, __LINE__)

#endif
