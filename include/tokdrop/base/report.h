/* How the library speaks to its user without printing: every line it has
 * for a person (progress, warnings, the message of a failed assertion or
 * MPI call) goes to one sink that the program installs. The library itself
 * never writes to stderr; with no sink installed its lines are dropped.
 * Base layer: no MPI, BLAS or HDF5. */
#ifndef TOKDROP_REPORT_H
#define TOKDROP_REPORT_H

#include <stdarg.h>

typedef enum {
    TD_REPORT_INFO = 0, /* progress, figures of a run */
    TD_REPORT_WARNING,  /* something the user should know; the run goes on */
    TD_REPORT_FATAL,    /* the last words before the process (or job) aborts */
} td_report_level;

/* Receives one line, without a trailing newline. Called from any thread
 * (the watchdog and the data loader report from their own). */
typedef void (*td_report_sink)(void *user, td_report_level level, const char *line);

/* Installs the sink (NULL: drop every line). Call before starting threads. */
void td_report_set_sink(td_report_sink sink, void *user);

void td_report(td_report_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void td_reportv(td_report_level level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* A ready-made sink for programs: "PROGRAM: line" on stderr ("PROGRAM:
 * warning: line" for warnings), flushed; user is the program name (a
 * string that outlives the sink). */
void td_report_stderr(void *user, td_report_level level, const char *line);

#endif
