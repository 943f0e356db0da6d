/* Write-to-temporary, fsync, rename, fsync the directory. */
#include "file_atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* fsync the directory holding path, so the rename itself is durable. */
static void fsync_parent_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy) return;
    int fd = open(dirname(copy), O_RDONLY);
    if (fd >= 0) {
        (void)fsync(fd); /* best effort: some file systems refuse it on directories */
        close(fd);
    }
    free(copy);
}

td_status td_file_write_atomic(const char *path, td_status (*fill)(FILE *f, const void *ctx, td_error *err),
                               const void *ctx, td_error *err)
{
    size_t n = strlen(path) + 5;
    char *tmp = td_xmalloc(n);
    snprintf(tmp, n, "%s.tmp", path);
    td_status st = TD_OK;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        st = td_error_set(err, TD_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return st;
    }
    errno = 0;
    st = fill(f, ctx, err);
    bool ok = !ferror(f);
    int saved = errno;
    if (ok && fflush(f) != 0) ok = false, saved = errno;
    if (ok && fsync(fileno(f)) != 0) ok = false, saved = errno;
    if (fclose(f) != 0 && ok) ok = false, saved = errno;
    if (st == TD_OK && !ok)
        st = td_error_set(err, TD_ERR_IO, "%s: write failed: %s", tmp, saved ? strerror(saved) : "I/O error");
    if (st == TD_OK && rename(tmp, path) != 0)
        st = td_error_set(err, TD_ERR_IO, "%s: cannot rename %s to it: %s", path, tmp, strerror(errno));
    if (st == TD_OK)
        fsync_parent_dir(path);
    else
        remove(tmp);
    free(tmp);
    return st;
}
