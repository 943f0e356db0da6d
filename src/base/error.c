/* Status strings, error messages and the always-on assertion. Base layer:
 * taking a whole MPI job down is the abort hook's business (dist.c). */
#include "tokdrop/base/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokdrop/base/report.h"

static td_abort_hook abort_hook;

const char *td_status_str(td_status status)
{
    switch (status) {
    case TD_OK: return "ok";
    case TD_ERR_IO: return "I/O error";
    case TD_ERR_FORMAT: return "bad file format";
    case TD_ERR_CONFIG: return "bad configuration";
    case TD_ERR_ARG: return "bad argument";
    case TD_ERR_NOMEM: return "out of memory";
    case TD_ERR_MPI: return "MPI error";
    }
    return "unknown status";
}

/* in as one line into out: the control characters of what a message
 * quotes (a --set argument, a YAML key, a name read from a file) become
 * \n, \r, \t or \xNN. Backslashes stay, so a message made from another
 * one stays as it is. */
static void one_line(char *out, size_t n_out, const char *in)
{
    size_t k = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        char esc[8] = {(char)*p, '\0'};
        if (*p == '\n') strcpy(esc, "\\n");
        else if (*p == '\r') strcpy(esc, "\\r");
        else if (*p == '\t') strcpy(esc, "\\t");
        else if (*p < 0x20 || *p == 0x7f) snprintf(esc, sizeof(esc), "\\x%02x", *p);
        size_t n = strlen(esc);
        if (k + n >= n_out) break;
        memcpy(out + k, esc, n);
        k += n;
    }
    out[k] = '\0';
}

td_status td_error_set(td_error *err, td_status status, const char *fmt, ...)
{
    if (err) {
        char msg[TD_ERROR_MSG_LEN];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        one_line(err->msg, sizeof(err->msg), msg);
        err->status = status;
    }
    return status;
}

void td_error_set_abort_hook(td_abort_hook hook)
{
    abort_hook = hook;
}

_Noreturn void td_assert_fail(const char *file, int line, const char *expr)
{
    td_report(TD_REPORT_FATAL, "%s:%d: assertion failed: %s", file, line, expr);
    if (abort_hook) abort_hook(TD_ASSERT_EXIT_CODE);
    abort();
}

void *td_xmalloc_at(size_t n_bytes, const char *file, int line)
{
    void *p = malloc(n_bytes ? n_bytes : 1);
    if (!p) td_assert_fail(file, line, "malloc returned NULL");
    return p;
}

void *td_xcalloc_at(size_t n_elems, size_t elem_bytes, const char *file, int line)
{
    void *p = calloc(n_elems ? n_elems : 1, elem_bytes ? elem_bytes : 1);
    if (!p) td_assert_fail(file, line, "calloc returned NULL");
    return p;
}
