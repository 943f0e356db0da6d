/* Rank-0 logging and JSON-lines metrics. */
#include "tokdrop/log.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

void td_log(const td_dist *dist, const char *fmt, ...)
{
    if (dist && dist->rank != 0) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("tokdrop: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
}

td_status td_jsonl_open(td_jsonl *j, const td_dist *dist, const char *path, td_error *err)
{
    j->f = NULL;
    j->n_fields = 0;
    if (dist && dist->rank != 0) return TD_OK;
    j->f = fopen(path, "a");
    if (!j->f) return td_error_set(err, TD_ERR_IO, "%s: cannot open for appending: %s", path, strerror(errno));
    return TD_OK;
}

void td_jsonl_begin(td_jsonl *j)
{
    if (!j->f) return;
    fputc('{', j->f);
    j->n_fields = 0;
}

void td_jsonl_int(td_jsonl *j, const char *key, long long value)
{
    if (!j->f) return;
    fprintf(j->f, "%s\"%s\": %lld", j->n_fields++ ? ", " : "", key, value);
}

void td_jsonl_num(td_jsonl *j, const char *key, double value)
{
    if (!j->f) return;
    /* JSON has no NaN or infinity: write null so the line stays parseable. */
    if (isfinite(value))
        fprintf(j->f, "%s\"%s\": %.9g", j->n_fields++ ? ", " : "", key, value);
    else
        fprintf(j->f, "%s\"%s\": null", j->n_fields++ ? ", " : "", key);
}

void td_jsonl_end(td_jsonl *j)
{
    if (!j->f) return;
    fputs("}\n", j->f);
    fflush(j->f);
}

void td_jsonl_close(td_jsonl *j)
{
    if (j->f) fclose(j->f);
    j->f = NULL;
}
