/* Reading the text inputs: INPUT arguments expanded to files (a directory
 * recursively, in sorted order; "-" is stdin; gzip files are decompressed),
 * cut into chunks of whole lines, and a pipeline that processes the chunks
 * on worker threads and hands the results back in input order, so that the
 * output does not depend on the number of threads. */
#ifndef TDP_INPUT_H
#define TDP_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include "tokdrop/base/error.h"

typedef struct {
    char **paths; /* (n) "-" means stdin */
    int64_t n;
} tdp_inputs;

/* Expands the arguments: a file stays, a directory becomes its regular
 * files (recursively, names starting with '.' skipped, sorted by path), "-"
 * stays. A missing path is an error naming it. n_args == 0 gives {"-"} when
 * stdin_if_none, else an error. */
td_status tdp_inputs_expand(tdp_inputs *out, const char *const *args, int64_t n_args,
                            int stdin_if_none, td_error *err);
void tdp_inputs_free(tdp_inputs *in);

/* The input paths joined by '\n' (the source_files attribute); malloc'd. */
char *tdp_inputs_join(const tdp_inputs *in);

/* Whole lines of one input file. */
typedef struct {
    int64_t seq;        /* chunk number in input order */
    int64_t file_index; /* into tdp_inputs */
    const char *path;
    int64_t first_line; /* 1-based number of the first line */
    int file_start;     /* the first chunk of its file */
    char *data;         /* n_bytes of whole lines; the last one may lack its '\n' */
    int64_t n_bytes;
} tdp_chunk;

/* Steps through the lines of a chunk: *pos starts at 0; returns 0 when done.
 * The line excludes its '\n'. */
int tdp_chunk_next_line(const tdp_chunk *c, int64_t *pos, const char **line, int64_t *n_bytes);

/* Checks that a line is UTF-8; the error names file and line number. */
td_status tdp_check_utf8(const tdp_chunk *c, int64_t line_no, const char *line, int64_t n_bytes,
                         td_error *err);

/* Runs on a worker thread: processes a chunk into *result. */
typedef td_status (*tdp_chunk_work_fn)(void *worker, const tdp_chunk *chunk, void **result,
                                       td_error *err);
/* Runs on the calling thread, once per chunk in input order; owns result. */
typedef td_status (*tdp_chunk_done_fn)(void *ctx, const tdp_chunk *chunk, void *result,
                                       td_error *err);
/* Frees a result that done will not see (after an error). */
typedef void (*tdp_result_free_fn)(void *result);

typedef struct {
    int n_jobs;            /* worker threads; 1 runs everything on the calling thread */
    int64_t chunk_bytes;   /* target chunk size (a chunk ends at a line end) */
    tdp_chunk_work_fn work;
    void **workers;        /* (n_jobs) per-thread state passed to work */
    tdp_chunk_done_fn done;
    tdp_result_free_fn free_result;
    void *ctx;
} tdp_pipeline;

/* Reads all inputs through the pipeline. The first error in input order is
 * returned (a reading error, or one from work or done). */
td_status tdp_pipeline_run(const tdp_pipeline *p, const tdp_inputs *in, td_error *err);

/* Number of online processors (the default of --jobs). */
int tdp_nproc(void);

#endif
