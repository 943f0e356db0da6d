/* OpenBLAS threads and kernel choice. */
#include "tokdrop/nn/blas.h"

#include <omp.h>
#include <stddef.h>
#include <string.h>

/* Exported by OpenBLAS, not declared in Debian's cblas.h. */
void openblas_set_num_threads(int num_threads);
char *openblas_get_corename(void);

void td_blas_set_threads(int n_threads)
{
    /* OpenBLAS stays on one thread: td_gemm parallelizes over blocks of the
     * output with OpenMP, which keeps results independent of the thread
     * count (OpenBLAS's own threading does not, with its AVX2 kernels). */
    if (n_threads < 1) n_threads = 1;
    openblas_set_num_threads(1);
    omp_set_num_threads(n_threads);
}

const char *td_blas_corename(void)
{
    return openblas_get_corename();
}

static bool cpu_has_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}

const char *td_blas_better_coretype(void)
{
    const char *core = td_blas_corename();
    static const char *const avx512_cores[] = {"SkylakeX", "Cooperlake", "SapphireRapids"};
    for (size_t i = 0; i < sizeof(avx512_cores) / sizeof(avx512_cores[0]); i++)
        if (core && strcmp(core, avx512_cores[i]) == 0) return NULL;
    return cpu_has_avx512() ? "SkylakeX" : NULL;
}
