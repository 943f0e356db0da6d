/* What a run tells its user: human lines from rank 0 (through the report
 * sink the program installs, report.h), and the machine-readable
 * metrics.jsonl / eval.jsonl in the run directory. */
#ifndef TOKDROP_LOG_H
#define TOKDROP_LOG_H

#include <stdint.h>
#include <stdio.h>

#include "tokdrop/train/dist.h"
#include "tokdrop/formats/json.h"

/* An information line (report.h) from rank 0 only. */
void td_log(const td_dist *dist, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A JSON-lines file opened for appending (rank 0 only; NULL elsewhere).
 * Each row is built between begin and end and written as one line through
 * tokdrop/formats/json.h (strings escaped, reals with 9 significant digits, NaN and
 * infinity as null). */
typedef struct {
    FILE *f;
    char *path;
    td_json *row;
} td_jsonl;

td_status td_jsonl_open(td_jsonl *j, const td_dist *dist, const char *path, td_error *err);
void td_jsonl_begin(td_jsonl *j);
void td_jsonl_int(td_jsonl *j, const char *key, long long value);
void td_jsonl_num(td_jsonl *j, const char *key, double value);
void td_jsonl_str(td_jsonl *j, const char *key, const char *value);
void td_jsonl_bool(td_jsonl *j, const char *key, bool value);
/* Writes the row as one line and flushes it; a failed write (a full disk)
 * is TD_ERR_IO naming the file and the reason. */
td_status td_jsonl_end(td_jsonl *j, td_error *err);
void td_jsonl_close(td_jsonl *j);

/* Digits of the reals in metrics.jsonl, eval.jsonl and `tokdrop eval`. */
#define TD_JSONL_REAL_DIGITS 9

/* For a resumed run, whose rows past its checkpoint are computed again:
 * keeps the rows of the JSON-lines file at path whose "step" is <= max_step
 * and greater than the step of the row kept before it (so steps increase),
 * drops the others and a torn last line, and rewrites the file atomically
 * when anything was dropped. A missing file is no error. *n_dropped (may be
 * NULL) receives the number of lines dropped. */
td_status td_jsonl_keep_steps(const char *path, int64_t max_step, int64_t *n_dropped, td_error *err);

#endif
