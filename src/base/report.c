/* The report sink (see report.h). */
#include "tokdrop/base/report.h"

#include <stdio.h>
#include <stdlib.h>

static td_report_sink sink_fn;
static void *sink_user;

void td_report_set_sink(td_report_sink sink, void *user)
{
    sink_fn = sink;
    sink_user = user;
}

void td_reportv(td_report_level level, const char *fmt, va_list ap)
{
    if (!sink_fn) return;
    char line[1024];
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    char *big = n >= (int)sizeof(line) ? malloc((size_t)n + 1) : NULL; /* long paths */
    if (big) vsnprintf(big, (size_t)n + 1, fmt, again);
    va_end(again);
    sink_fn(sink_user, level, big ? big : line);
    free(big);
}

void td_report(td_report_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    td_reportv(level, fmt, ap);
    va_end(ap);
}

void td_report_stderr(void *user, td_report_level level, const char *line)
{
    const char *program = user ? user : "tokdrop";
    fprintf(stderr, "%s: %s%s\n", program, level == TD_REPORT_WARNING ? "warning: " : "", line);
    fflush(stderr);
}
