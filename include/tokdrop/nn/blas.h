/* The BLAS as a run-time resource: how many threads it uses, and which
 * OpenBLAS kernels it picked for this CPU. */
#ifndef TOKDROP_BLAS_H
#define TOKDROP_BLAS_H

#include <stdbool.h>

/* Threads for tokdrop's OpenMP loops, td_gemm included (OpenBLAS itself
 * is kept on one thread; see td_gemm). */
void td_blas_set_threads(int n_threads);

/* OpenBLAS's name for the kernels it uses ("SkylakeX", "Haswell", ...). */
const char *td_blas_corename(void);

/* The OPENBLAS_CORETYPE that would give faster kernels on this CPU than the
 * ones OpenBLAS picked by itself (older OpenBLAS releases do not recognize
 * recent Xeons and fall back to AVX2 kernels), or NULL when OpenBLAS chose
 * well. OpenBLAS reads the variable only when it is loaded, so acting on
 * it means restarting the process: the programs' business
 * (td_cli_restart_for_fast_kernels in src/cli). */
const char *td_blas_better_coretype(void);

#endif
