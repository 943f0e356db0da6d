/* Runs a fuzz harness outside libFuzzer (any C compiler, no sanitizers
 * needed): LLVMFuzzerTestOneInput on every file named on the command line
 * and on every file in the directories named (sorted, names starting with
 * '.' skipped). make test runs each harness this way over its seeds and
 * over tests/fuzz/regressions/<target>/, the inputs that once crashed it.
 * A directory that does not exist counts as empty (a target without
 * regressions has none); no input at all is an error. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_util.h"

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(1);
    }
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) buf = realloc(buf, cap *= 2);
    }
    if (!buf || ferror(f)) {
        fprintf(stderr, "%s: cannot read\n", path);
        exit(1);
    }
    fclose(f);
    /* an exact-size copy, so that a read past the input is past the block */
    uint8_t *input = malloc(n ? n : 1);
    memcpy(input, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(input, n);
    free(input);
}

/* Runs the files of dir (not recursively); returns how many. */
static int run_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        names = realloc(names, (n + 1) * sizeof(*names));
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp_name);
    int ran = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(dir) + strlen(names[i]) + 2;
        char *path = malloc(len);
        snprintf(path, len, "%s/%s", dir, names[i]);
        struct stat sb;
        if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
            run_file(path);
            ran++;
        }
        free(path);
        free(names[i]);
    }
    free(names);
    return ran;
}

int main(int argc, char **argv)
{
    int total = 0;
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        int ran = 0;
        if (stat(argv[i], &sb) == 0 && S_ISDIR(sb.st_mode)) {
            ran = run_dir(argv[i]);
        } else if (stat(argv[i], &sb) == 0) {
            run_file(argv[i]);
            ran = 1;
        }
        printf("%s: %d input%s\n", argv[i], ran, ran == 1 ? "" : "s");
        total += ran;
    }
    if (total == 0) {
        fprintf(stderr, "replay: no input in the paths given\n");
        return 1;
    }
    printf("replay: %d inputs, no crash\n", total);
    return 0;
}
