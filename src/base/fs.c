/* The file system, one way (fs.h): atomic writes through a temporary name,
 * mkdir -p, path joining and sorted directory listing. */
#include "base/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *td_fs_tmp_path(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t n_dir = slash ? (size_t)(slash - path) + 1 : 0; /* with the slash */
    const char *base = path + n_dir;
    size_t n_base = strlen(base);
    char *tmp = td_xmalloc(n_dir + 1 + n_base + 5);
    memcpy(tmp, path, n_dir);
    tmp[n_dir] = '.';
    memcpy(tmp + n_dir + 1, base, n_base);
    memcpy(tmp + n_dir + 1 + n_base, ".tmp", 5);
    return tmp;
}

void td_fs_discard(const char *tmp)
{
    int saved = errno;
    (void)unlink(tmp);
    errno = saved;
}

/* open + fsync + close of a directory; one that cannot be synced (EINVAL
 * or ENOTSUP on some file systems) counts as synced. */
static int fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0 && (e == EINVAL || e == ENOTSUP)) rc = 0;
    errno = e;
    return rc;
}

/* The directory part of path ("." for a bare name, "/" for "/x"), malloc'd. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return strcpy(td_xmalloc(2), ".");
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *d = td_xmalloc(n + 1);
    memcpy(d, path, n);
    d[n] = '\0';
    return d;
}

/* Renames the written and fsynced tmp to path and fsyncs the directory. */
static td_status commit(const char *tmp, const char *path, td_error *err)
{
    td_status st = TD_OK;
    if (rename(tmp, path) != 0) {
        st = td_error_set(err, TD_ERR_IO, "%s: cannot rename %s to it: %s", path, tmp,
                          strerror(errno));
        td_fs_discard(tmp);
        return st;
    }
    char *dir = dir_of(path);
    if (fsync_dir(dir) != 0)
        st = td_error_set(err, TD_ERR_IO, "%s: cannot sync the directory (after writing %s): %s",
                          dir, path, strerror(errno));
    free(dir);
    return st;
}

td_status td_fs_write_atomic(const char *path, td_fs_fill_fn fill, const void *ctx, td_error *err)
{
    char *tmp = td_fs_tmp_path(path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        td_status st = td_error_set(err, TD_ERR_IO, "%s: cannot create it (as %s): %s", path,
                                      tmp, strerror(errno));
        free(tmp);
        return st;
    }
    errno = 0;
    td_status st = fill(f, ctx, err);
    bool ok = !ferror(f);
    int saved = errno;
    if (ok && fflush(f) != 0) ok = false, saved = errno;
    if (ok && fsync(fileno(f)) != 0) ok = false, saved = errno;
    if (fclose(f) != 0 && ok) ok = false, saved = errno;
    if (st == TD_OK && !ok)
        st = td_error_set(err, TD_ERR_IO, "%s: write failed (to %s): %s", path, tmp,
                          saved ? strerror(saved) : "I/O error");
    if (st == TD_OK)
        st = commit(tmp, path, err);
    else
        td_fs_discard(tmp);
    free(tmp);
    return st;
}

static td_status fill_text(FILE *f, const void *ctx, td_error *err)
{
    (void)err; /* a failed fputs is seen through ferror */
    fputs(ctx, f);
    return TD_OK;
}

td_status td_fs_write_text(const char *path, const char *text, td_error *err)
{
    return td_fs_write_atomic(path, fill_text, text, err);
}

td_status td_fs_mkdir_p(const char *dir, void (*made)(void *ctx, const char *dir), void *made_ctx,
                        td_error *err)
{
    if (!dir || !dir[0])
        return td_error_set(err, TD_ERR_ARG, "cannot create a directory with an empty name");
    size_t n = strlen(dir);
    char *p = td_xmalloc(n + 1);
    memcpy(p, dir, n + 1);
    td_status st = TD_OK;
    for (size_t i = 1; i <= n && st == TD_OK; i++) {
        if ((p[i] != '/' && p[i] != '\0') || p[i - 1] == '/') continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0777) == 0) {
            if (made) made(made_ctx, p);
        } else if (errno != EEXIST) {
            st = td_error_set(err, TD_ERR_IO, "%s: cannot create the directory (at %s): %s", dir,
                              p, strerror(errno));
        }
        p[i] = c;
    }
    free(p);
    if (st != TD_OK) return st;
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return td_error_set(err, TD_ERR_IO, "%s: cannot create the directory: %s", dir,
                            strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return td_error_set(err, TD_ERR_IO, "%s: exists and is not a directory", dir);
    return TD_OK;
}

/* Bytes of dir + separator (0 or 1). */
static size_t join_prefix(const char *dir, size_t *n_dir)
{
    *n_dir = strlen(dir);
    return *n_dir + (*n_dir > 0 && dir[*n_dir - 1] != '/');
}

static void join_into(char *out, const char *dir, size_t n_dir, size_t n_prefix, const char *name,
                      size_t n_name)
{
    memmove(out, dir, n_dir);
    if (n_prefix > n_dir) out[n_dir] = '/';
    memmove(out + n_prefix, name, n_name);
    out[n_prefix + n_name] = '\0';
}

td_status td_fs_join(char *out, size_t out_len, const char *dir, const char *name, td_error *err)
{
    size_t n_dir, n_prefix = join_prefix(dir, &n_dir), n_name = strlen(name);
    if (n_prefix + n_name >= out_len) {
        if (out_len > 0) out[0] = '\0';
        return td_error_set(err, TD_ERR_ARG, "%s/%s: path longer than %zu bytes", dir, name,
                            out_len > 0 ? out_len - 1 : 0);
    }
    join_into(out, dir, n_dir, n_prefix, name, n_name);
    return TD_OK;
}

char *td_fs_join_alloc(const char *dir, const char *name)
{
    size_t n_dir, n_prefix = join_prefix(dir, &n_dir), n_name = strlen(name);
    char *out = td_xmalloc(n_prefix + n_name + 1);
    join_into(out, dir, n_dir, n_prefix, name, n_name);
    return out;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void td_fs_list_free(char **names, int64_t n)
{
    for (int64_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

td_status td_fs_list(const char *dir, char ***names_out, int64_t *n_out, bool *missing,
                     td_error *err)
{
    *names_out = NULL;
    *n_out = 0;
    if (missing) *missing = false;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT && missing) {
            *missing = true;
            return TD_OK;
        }
        return td_error_set(err, TD_ERR_IO, "%s: cannot list the directory: %s", dir,
                            strerror(errno));
    }
    char **names = NULL;
    int64_t n = 0, cap = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **grown = realloc(names, (size_t)cap * sizeof(*names));
            TD_ASSERT(grown != NULL);
            names = grown;
        }
        size_t len = strlen(de->d_name);
        names[n] = memcpy(td_xmalloc(len + 1), de->d_name, len + 1);
        n++;
        errno = 0;
    }
    int read_errno = errno;
    closedir(d);
    if (read_errno != 0) {
        td_fs_list_free(names, n);
        return td_error_set(err, TD_ERR_IO, "%s: cannot list the directory: %s", dir,
                            strerror(read_errno));
    }
    if (n > 1) qsort(names, (size_t)n, sizeof(*names), cmp_name);
    *names_out = names;
    *n_out = n;
    return TD_OK;
}

/* What a file that is not a regular one is, for a message. */
static const char *kind_of(mode_t mode)
{
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
    return "not a regular file";
}

td_status td_fs_open_regular_fd(int *out, const char *path, const char *what, td_status code,
                                td_error *err)
{
    *out = -1;
    /* O_NONBLOCK: opening a FIFO would otherwise wait for a writer */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return td_error_set(err, code, "%s: cannot open: %s; expected %s", path, strerror(errno),
                            what);
    struct stat info;
    if (fstat(fd, &info) != 0) {
        int saved = errno;
        close(fd);
        return td_error_set(err, code, "%s: cannot stat: %s", path, strerror(saved));
    }
    if (!S_ISREG(info.st_mode)) {
        close(fd);
        return td_error_set(err, code, "%s: is %s, expected %s", path, kind_of(info.st_mode), what);
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        int saved = errno;
        close(fd);
        return td_error_set(err, code, "%s: cannot open: %s", path, strerror(saved));
    }
    *out = fd;
    return TD_OK;
}

td_status td_fs_open_regular(FILE **out, const char *path, const char *what, td_status code,
                             td_error *err)
{
    *out = NULL;
    int fd;
    td_status st = td_fs_open_regular_fd(&fd, path, what, code, err);
    if (st != TD_OK) return st;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        int saved = errno;
        close(fd);
        return td_error_set(err, code, "%s: cannot open: %s", path, strerror(saved));
    }
    *out = f;
    return TD_OK;
}
