/* Shared by the fuzz harnesses: scratch files and the input byte reader. */
#include "fuzz_util.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FZ_SLOTS 4

static char fz_paths[FZ_SLOTS][256];

static void fz_remove_all(void)
{
    for (int i = 0; i < FZ_SLOTS; i++)
        if (fz_paths[i][0]) unlink(fz_paths[i]);
}

const char *fz_path(int slot)
{
    if (slot < 0 || slot >= FZ_SLOTS) abort();
    if (!fz_paths[slot][0]) {
        const char *dir = getenv("TMPDIR");
        snprintf(fz_paths[slot], sizeof(fz_paths[slot]), "%s/tokdrop-fuzz-%d-XXXXXX",
                 dir && dir[0] ? dir : "/tmp", slot);
        int fd = mkstemp(fz_paths[slot]);
        if (fd < 0) {
            perror(fz_paths[slot]);
            abort();
        }
        close(fd);
        static int registered;
        if (!registered) atexit(fz_remove_all);
        registered = 1;
    }
    return fz_paths[slot];
}

const char *fz_write(int slot, const uint8_t *data, size_t size)
{
    const char *path = fz_path(slot);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        abort();
    }
    return path;
}

uint8_t fz_u8(fz_bytes *b)
{
    if (b->n == 0) return 0;
    b->n--;
    return *b->p++;
}

uint32_t fz_u32(fz_bytes *b)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)fz_u8(b) << (8 * i);
    return v;
}

void fz_check_error(td_status st, const td_error *err, const char *call)
{
    static int verbose = -1;
    if (verbose < 0) verbose = getenv("FUZZ_VERBOSE") != NULL;
    if (verbose) fprintf(stderr, "%s: %s\n", call, st == TD_OK ? "ok" : err->msg);
    if (st == TD_OK) return;
    bool control = false;
    for (const char *p = err->msg; *p; p++) control = control || (unsigned char)*p < 0x20;
    if (err->msg[0] == '\0' || control) {
        fprintf(stderr, "fuzz: %s failed (status %d) with %s message: '%s'\n", call, (int)st,
                err->msg[0] ? "a control character in its" : "no", err->msg);
        abort();
    }
}
