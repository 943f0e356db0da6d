/* Input expansion, the chunk reader and the threaded pipeline (input.h).
 * The calling thread reads (and gunzips) chunks and consumes results in
 * order; workers process chunks. At most `window` chunks are in flight, which
 * bounds memory. */
#include "input.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "base/fs.h"
#include "unicode.h"
#include "util.h"

/* ---- expansion ---------------------------------------------------------------- */

typedef struct {
    char **v;
    int64_t n, cap;
} str_list;

static void list_push(str_list *l, char *s)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->v = tdp_xrealloc(l->v, (size_t)l->cap * sizeof(char *));
    }
    l->v[l->n++] = s;
}

static td_status walk_dir(str_list *out, const char *dir, int depth, td_error *err)
{
    if (depth > 64)
        return td_error_set(err, TD_ERR_IO, "%s: directories nested more than 64 deep "
                            "(a symlink loop?); expected a tree of text files", dir);
    char **entries;
    int64_t n_entries;
    td_status st = td_fs_list(dir, &entries, &n_entries, NULL, err);
    if (st != TD_OK) return st;
    str_list names = {0}; /* sorted, as td_fs_list returns them */
    for (int64_t i = 0; i < n_entries; i++)
        if (entries[i][0] != '.') list_push(&names, td_fs_join_alloc(dir, entries[i]));
    td_fs_list_free(entries, n_entries);
    for (int64_t i = 0; i < names.n; i++) {
        struct stat sb;
        if (st != TD_OK || stat(names.v[i], &sb) != 0) {
            free(names.v[i]);
            continue;
        }
        if (S_ISDIR(sb.st_mode)) {
            st = walk_dir(out, names.v[i], depth + 1, err);
            free(names.v[i]);
        } else if (S_ISREG(sb.st_mode)) {
            list_push(out, names.v[i]);
        } else {
            free(names.v[i]);
        }
    }
    free(names.v);
    return st;
}

td_status tdp_inputs_expand(tdp_inputs *out, const char *const *args, int64_t n_args,
                            int stdin_if_none, td_error *err)
{
    memset(out, 0, sizeof(*out));
    str_list l = {0};
    if (n_args == 0) {
        if (!stdin_if_none)
            return td_error_set(err, TD_ERR_ARG, "no INPUT given; expected text files, "
                                "directories or - for stdin");
        list_push(&l, tdp_xstrdup("-"));
    }
    td_status st = TD_OK;
    for (int64_t i = 0; i < n_args && st == TD_OK; i++) {
        if (strcmp(args[i], "-") == 0) {
            list_push(&l, tdp_xstrdup("-"));
            continue;
        }
        struct stat sb;
        if (stat(args[i], &sb) != 0) {
            st = td_error_set(err, TD_ERR_IO, "%s: cannot read input: %s; expected a text file, "
                              "a directory or -", args[i], strerror(errno));
        } else if (S_ISDIR(sb.st_mode)) {
            int64_t before = l.n;
            st = walk_dir(&l, args[i], 0, err);
            if (st == TD_OK && l.n == before)
                st = td_error_set(err, TD_ERR_IO, "%s: directory holds no files; expected text "
                                  "files in it", args[i]);
        } else {
            list_push(&l, tdp_xstrdup(args[i]));
        }
    }
    out->paths = l.v;
    out->n = l.n;
    if (st != TD_OK) tdp_inputs_free(out);
    return st;
}

void tdp_inputs_free(tdp_inputs *in)
{
    for (int64_t i = 0; i < in->n; i++) free(in->paths[i]);
    free(in->paths);
    memset(in, 0, sizeof(*in));
}

char *tdp_inputs_join(const tdp_inputs *in)
{
    size_t total = 1;
    for (int64_t i = 0; i < in->n; i++) total += strlen(in->paths[i]) + 1;
    char *s = td_xmalloc(total);
    size_t k = 0;
    for (int64_t i = 0; i < in->n; i++) {
        size_t len = strlen(in->paths[i]);
        memcpy(s + k, in->paths[i], len);
        k += len;
        if (i + 1 < in->n) s[k++] = '\n';
    }
    s[k] = '\0';
    return s;
}

/* ---- lines -------------------------------------------------------------------- */

int tdp_chunk_next_line(const tdp_chunk *c, int64_t *pos, const char **line, int64_t *n_bytes)
{
    if (*pos >= c->n_bytes) return 0;
    const char *s = c->data + *pos;
    const char *nl = memchr(s, '\n', (size_t)(c->n_bytes - *pos));
    int64_t n = nl ? nl - s : c->n_bytes - *pos;
    *line = s;
    *n_bytes = n;
    *pos += n + (nl ? 1 : 0);
    return 1;
}

td_status tdp_check_utf8(const tdp_chunk *c, int64_t line_no, const char *line, int64_t n_bytes,
                         td_error *err)
{
    size_t bad = td_utf8_validate((const unsigned char *)line, (size_t)n_bytes);
    if (bad == (size_t)n_bytes) return TD_OK;
    return td_error_set(err, TD_ERR_FORMAT, "%s:%lld: invalid UTF-8 (byte 0x%02x at byte column "
                        "%lld); expected UTF-8 text", c->path, (long long)line_no,
                        (unsigned char)line[bad], (long long)bad + 1);
}

/* ---- chunk reader --------------------------------------------------------------- */

typedef struct {
    const tdp_inputs *in;
    int64_t file;      /* index of the open file, or of the next one to open */
    gzFile gz;         /* NULL when none is open */
    int file_start;
    int64_t line;      /* number of the next line of the open file */
    char *carry;       /* an incomplete last line read past the previous chunk */
    int64_t n_carry;
    int64_t seq;
} reader;

static td_status reader_open(reader *r, td_error *err)
{
    const char *path = r->in->paths[r->file];
    if (strcmp(path, "-") == 0) {
        int fd = dup(STDIN_FILENO);
        r->gz = fd >= 0 ? gzdopen(fd, "rb") : NULL;
        if (!r->gz && fd >= 0) close(fd);
    } else {
        r->gz = gzopen(path, "rb");
    }
    if (!r->gz)
        return td_error_set(err, TD_ERR_IO, "%s: cannot open input: %s", path,
                            errno ? strerror(errno) : "zlib could not allocate its state");
    gzbuffer(r->gz, 1 << 18);
    r->file_start = 1;
    r->line = 1;
    r->n_carry = 0;
    return TD_OK;
}

/* The next chunk into *c; *got = 0 at the end of all inputs. */
static td_status reader_next(reader *r, int64_t chunk_bytes, tdp_chunk *c, int *got,
                             td_error *err)
{
    *got = 0;
    for (;;) {
        if (!r->gz) {
            if (r->file >= r->in->n) return TD_OK;
            td_status st = reader_open(r, err);
            if (st != TD_OK) return st;
        }
        const char *path = r->in->paths[r->file];
        int64_t cap = r->n_carry + chunk_bytes;
        char *buf = td_xmalloc((size_t)cap);
        if (r->n_carry > 0) memcpy(buf, r->carry, (size_t)r->n_carry);
        int64_t n = r->n_carry;
        r->n_carry = 0;
        int64_t cut = -1; /* bytes up to and including the last '\n' */
        int eof = 0;
        while (cut < 0 && !eof) {
            if (n == cap) {
                cap *= 2; /* a line longer than the chunk: keep reading */
                buf = tdp_xrealloc(buf, (size_t)cap);
            }
            int64_t want = cap - n;
            if (want > (1 << 30)) want = 1 << 30;
            int got_bytes = gzread(r->gz, buf + n, (unsigned)want);
            if (got_bytes < 0) {
                int zerr;
                const char *msg = gzerror(r->gz, &zerr);
                free(buf);
                td_error_set(err, TD_ERR_IO, "%s: read error: %s; expected a readable text or "
                             "gzip file", path, zerr == Z_ERRNO ? strerror(errno) : msg);
                return TD_ERR_IO;
            }
            if (got_bytes == 0) {
                eof = 1;
                break;
            }
            int64_t old = n;
            n += got_bytes;
            if (n == cap) {
                /* only cut once the buffer is full, so chunks are large */
                for (int64_t k = n - 1; k >= old && cut < 0; k--)
                    if (buf[k] == '\n') cut = k + 1;
                if (cut < 0)
                    for (int64_t k = old - 1; k >= 0; k--)
                        if (buf[k] == '\n') {
                            cut = k + 1;
                            break;
                        }
            }
        }
        if (eof) {
            gzclose(r->gz);
            r->gz = NULL;
            r->file++;
            cut = n;
        }
        if (cut == 0) { /* an empty file */
            free(buf);
            continue;
        }
        int64_t rest = n - cut;
        if (rest > 0) {
            r->carry = tdp_xrealloc(r->carry, (size_t)rest);
            memcpy(r->carry, buf + cut, (size_t)rest);
        }
        r->n_carry = rest;
        c->seq = r->seq++;
        c->file_index = eof ? r->file - 1 : r->file;
        c->path = path;
        c->first_line = r->line;
        c->file_start = r->file_start;
        c->data = buf;
        c->n_bytes = cut;
        r->file_start = 0;
        for (const char *p = buf; (p = memchr(p, '\n', (size_t)(buf + cut - p))) != NULL; p++)
            r->line++;
        *got = 1;
        return TD_OK;
    }
}

static void reader_close(reader *r)
{
    if (r->gz) gzclose(r->gz);
    free(r->carry);
}

/* ---- pipeline ----------------------------------------------------------------- */

enum { SLOT_FREE = 0, SLOT_READY, SLOT_TAKEN, SLOT_DONE };

typedef struct {
    tdp_chunk chunk;
    void *result;
    td_status st;
    td_error err;
    int state;
} slot;

typedef struct {
    const tdp_pipeline *p;
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    slot *slots;
    int64_t window;
    int64_t n_read, next_take;
    int stop;
} shared;

typedef struct {
    shared *sh;
    void *worker;
} worker_arg;

static void *worker_main(void *arg)
{
    worker_arg *wa = arg;
    shared *sh = wa->sh;
    pthread_mutex_lock(&sh->mu);
    for (;;) {
        while (!sh->stop && sh->next_take >= sh->n_read) pthread_cond_wait(&sh->work_cv, &sh->mu);
        if (sh->stop) break;
        slot *s = &sh->slots[sh->next_take % sh->window];
        sh->next_take++;
        s->state = SLOT_TAKEN;
        pthread_mutex_unlock(&sh->mu);
        td_status st = sh->p->work(wa->worker, &s->chunk, &s->result, &s->err);
        pthread_mutex_lock(&sh->mu);
        s->st = st;
        s->state = SLOT_DONE;
        pthread_cond_broadcast(&sh->done_cv);
    }
    pthread_mutex_unlock(&sh->mu);
    return NULL;
}

static td_status run_serial(const tdp_pipeline *p, reader *r, td_error *err)
{
    for (;;) {
        tdp_chunk c;
        int got;
        td_status st = reader_next(r, p->chunk_bytes, &c, &got, err);
        if (st != TD_OK || !got) return st;
        void *result = NULL;
        st = p->work(p->workers[0], &c, &result, err);
        if (st == TD_OK) st = p->done(p->ctx, &c, result, err);
        else if (result && p->free_result) p->free_result(result);
        free(c.data);
        if (st != TD_OK) return st;
    }
}

static td_status run_threads(const tdp_pipeline *p, reader *r, td_error *err)
{
    shared sh;
    memset(&sh, 0, sizeof(sh));
    sh.p = p;
    sh.window = 2 * (int64_t)p->n_jobs + 2;
    sh.slots = td_xcalloc((size_t)sh.window, sizeof(slot));
    pthread_mutex_init(&sh.mu, NULL);
    pthread_cond_init(&sh.work_cv, NULL);
    pthread_cond_init(&sh.done_cv, NULL);
    pthread_t *threads = td_xmalloc((size_t)p->n_jobs * sizeof(pthread_t));
    worker_arg *args = td_xmalloc((size_t)p->n_jobs * sizeof(worker_arg));
    for (int i = 0; i < p->n_jobs; i++) {
        args[i].sh = &sh;
        args[i].worker = p->workers[i];
        if (pthread_create(&threads[i], NULL, worker_main, &args[i]) != 0)
            td_assert_fail(__FILE__, __LINE__, "pthread_create failed");
    }

    td_status st = TD_OK;
    td_status read_st = TD_OK;
    td_error read_err;
    int eof = 0;
    int64_t n_consumed = 0;
    for (;;) {
        while (!eof && sh.n_read - n_consumed < sh.window) {
            tdp_chunk c;
            int got;
            read_st = reader_next(r, p->chunk_bytes, &c, &got, &read_err);
            if (read_st != TD_OK || !got) {
                eof = 1;
                break;
            }
            pthread_mutex_lock(&sh.mu);
            slot *s = &sh.slots[sh.n_read % sh.window];
            s->chunk = c;
            s->result = NULL;
            s->state = SLOT_READY;
            sh.n_read++;
            pthread_cond_signal(&sh.work_cv);
            pthread_mutex_unlock(&sh.mu);
        }
        if (n_consumed == sh.n_read) break;
        slot *s = &sh.slots[n_consumed % sh.window];
        pthread_mutex_lock(&sh.mu);
        while (s->state != SLOT_DONE) pthread_cond_wait(&sh.done_cv, &sh.mu);
        pthread_mutex_unlock(&sh.mu);
        if (s->st != TD_OK) {
            st = s->st;
            if (err) *err = s->err;
            if (s->result && p->free_result) p->free_result(s->result);
        } else {
            st = p->done(p->ctx, &s->chunk, s->result, err);
        }
        free(s->chunk.data);
        s->state = SLOT_FREE;
        n_consumed++;
        if (st != TD_OK) break;
    }

    pthread_mutex_lock(&sh.mu);
    sh.stop = 1;
    pthread_cond_broadcast(&sh.work_cv);
    pthread_mutex_unlock(&sh.mu);
    for (int i = 0; i < p->n_jobs; i++) pthread_join(threads[i], NULL);
    /* chunks still in flight after an error */
    for (int64_t k = n_consumed; k < sh.n_read; k++) {
        slot *s = &sh.slots[k % sh.window];
        if (s->state == SLOT_DONE && s->result && p->free_result) p->free_result(s->result);
        free(s->chunk.data);
    }
    if (st == TD_OK && read_st != TD_OK) {
        st = read_st;
        if (err) *err = read_err;
    }
    free(threads);
    free(args);
    free(sh.slots);
    pthread_mutex_destroy(&sh.mu);
    pthread_cond_destroy(&sh.work_cv);
    pthread_cond_destroy(&sh.done_cv);
    return st;
}

td_status tdp_pipeline_run(const tdp_pipeline *p, const tdp_inputs *in, td_error *err)
{
    reader r;
    memset(&r, 0, sizeof(r));
    r.in = in;
    td_status st = p->n_jobs <= 1 ? run_serial(p, &r, err) : run_threads(p, &r, err);
    reader_close(&r);
    return st;
}

int tdp_nproc(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
