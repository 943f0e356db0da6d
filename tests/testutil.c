#include "testutil.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "tokdrop/base/report.h"
#include "tokdrop/base/rng.h"

/* Every test program shows the library's lines (a failed TD_ASSERT's
 * file:line included) on stderr, as the programs do. */
__attribute__((constructor)) static void tu_install_report_sink(void)
{
    td_report_set_sink(td_report_stderr, "tokdrop");
}

void tu_fill_uniform(float *x, int64_t n, float lo, float hi, uint64_t seed)
{
    uint64_t key = td_rng_key(seed, 0, 0, 999);
    for (int64_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * td_rng_uniform(key, (uint64_t)i);
}

double tu_max_rel_err(const float *a, const float *b, int64_t n, double floor)
{
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        double s = fabs((double)b[i]);
        double r = d / (s > floor ? s : floor);
        if (!(r <= worst)) worst = r; /* NaN propagates as the worst */
    }
    return worst;
}

const char *tu_tmpdir(const char *name)
{
    static char path[4096];
    snprintf(path, sizeof(path), "%s/%s", TD_TEST_TMPDIR, name);
    char cmd[8400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -p '%s'", path, path);
    if (system(cmd) != 0) fail_msg("cannot create %s", path);
    return path;
}

const char *tu_read_text(const char *path)
{
    static char buf[4096];
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static struct rlimit file_limit_saved;
static void (*xfsz_saved)(int);

void tu_file_limit_begin(long n_bytes)
{
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &file_limit_saved), 0);
    xfsz_saved = signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = file_limit_saved;
    lim.rlim_cur = (rlim_t)n_bytes;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
}

void tu_file_limit_end(void)
{
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &file_limit_saved), 0);
    signal(SIGXFSZ, xfsz_saved);
}
