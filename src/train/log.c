/* Rank-0 logging and JSON-lines metrics. */
#include "tokdrop/train/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/fs.h"
#include "tokdrop/base/report.h"

void td_log(const td_dist *dist, const char *fmt, ...)
{
    if (dist && dist->rank != 0) return;
    va_list ap;
    va_start(ap, fmt);
    td_reportv(TD_REPORT_INFO, fmt, ap);
    va_end(ap);
}

td_status td_jsonl_open(td_jsonl *j, const td_dist *dist, const char *path, td_error *err)
{
    *j = (td_jsonl){0};
    if (dist && dist->rank != 0) return TD_OK;
    j->f = fopen(path, "a");
    if (!j->f) return td_error_set(err, TD_ERR_IO, "%s: cannot open for appending: %s", path, strerror(errno));
    size_t n = strlen(path);
    j->path = memcpy(td_xmalloc(n + 1), path, n + 1);
    return TD_OK;
}

void td_jsonl_begin(td_jsonl *j)
{
    if (!j->f) return;
    td_json_free(j->row);
    j->row = td_json_object_new();
}

void td_jsonl_int(td_jsonl *j, const char *key, long long value)
{
    if (j->row) td_json_set_int(j->row, key, value);
}

void td_jsonl_num(td_jsonl *j, const char *key, double value)
{
    if (j->row) td_json_set_num(j->row, key, value);
}

void td_jsonl_str(td_jsonl *j, const char *key, const char *value)
{
    if (j->row) td_json_set_str(j->row, key, value);
}

void td_jsonl_bool(td_jsonl *j, const char *key, bool value)
{
    if (j->row) td_json_set_bool(j->row, key, value);
}

td_status td_jsonl_end(td_jsonl *j, td_error *err)
{
    if (!j->row) return TD_OK;
    char *line = td_json_dumps(j->row, TD_JSON_LINE, TD_JSONL_REAL_DIGITS);
    errno = 0;
    bool ok = fputs(line, j->f) >= 0 && fputc('\n', j->f) != EOF;
    int e = errno;
    if (fflush(j->f) != 0 && ok) ok = false, e = errno;
    free(line);
    td_json_free(j->row);
    j->row = NULL;
    if (ok) return TD_OK;
    /* the part of the line that got out is a torn last line, which
     * td_jsonl_keep_steps drops when the run resumes */
    return td_error_set(err, TD_ERR_IO, "%s: cannot append a row: %s", j->path,
                        e ? strerror(e) : "write error");
}

void td_jsonl_close(td_jsonl *j)
{
    if (j->f) fclose(j->f);
    j->f = NULL;
    td_json_free(j->row);
    j->row = NULL;
    free(j->path);
    j->path = NULL;
}

/* The lines td_jsonl_keep_steps keeps: [start, end) ranges of a buffer. */
typedef struct {
    const char *buf;
    const int64_t *start, *end;
    int64_t n;
} kept_lines;

static td_status write_kept_lines(FILE *f, const void *ctx, td_error *err)
{
    (void)err;
    const kept_lines *k = ctx;
    for (int64_t i = 0; i < k->n; i++) fwrite(k->buf + k->start[i], 1, (size_t)(k->end[i] - k->start[i]), f);
    return TD_OK; /* a failed write shows in ferror, reported by the caller */
}

/* The integer "step" of one JSON line (a row), or false when the line is
 * no object with one (a torn or foreign line). */
static bool line_step(const char *line, size_t n_bytes, long long *step)
{
    td_json *row = td_json_parse(line, n_bytes, NULL);
    int64_t v = 0;
    bool ok = row && td_json_int(td_json_get(row, "step"), "", "step", &v, NULL) == TD_OK;
    td_json_free(row);
    *step = v;
    return ok;
}

td_status td_jsonl_keep_steps(const char *path, int64_t max_step, int64_t *n_dropped, td_error *err)
{
    if (n_dropped) *n_dropped = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return TD_OK;
        return td_error_set(err, TD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return td_error_set(err, TD_ERR_IO, "%s: not a regular file", path);
    }
    size_t n = (size_t)sb.st_size;
    char *buf = td_xmalloc(n + 1);
    bool read_ok = fread(buf, 1, n, f) == n;
    fclose(f);
    if (!read_ok) {
        free(buf);
        return td_error_set(err, TD_ERR_IO, "%s: read failed", path);
    }
    buf[n] = '\0';

    int64_t n_lines = 0;
    for (size_t i = 0; i < n; i++) n_lines += buf[i] == '\n';
    int64_t *start = td_xmalloc((size_t)(n_lines + 1) * sizeof(int64_t));
    int64_t *end = td_xmalloc((size_t)(n_lines + 1) * sizeof(int64_t));
    int64_t kept = 0, dropped = 0;
    long long last_step = -1;
    for (size_t i = 0; i < n;) {
        char *nl = memchr(buf + i, '\n', n - i);
        if (!nl) { /* torn last line: the writer died in the middle of it */
            dropped++;
            break;
        }
        long long step;
        bool keep = line_step(buf + i, (size_t)(nl - (buf + i)), &step) && step <= max_step && step > last_step;
        if (keep) {
            start[kept] = (int64_t)i;
            end[kept++] = nl + 1 - buf;
            last_step = step;
        } else {
            dropped++;
        }
        i = (size_t)(nl + 1 - buf);
    }
    td_status st = TD_OK;
    if (dropped > 0) {
        kept_lines k = {buf, start, end, kept};
        st = td_fs_write_atomic(path, write_kept_lines, &k, err);
    }
    free(start);
    free(end);
    free(buf);
    if (n_dropped && st == TD_OK) *n_dropped = dropped;
    return st;
}
