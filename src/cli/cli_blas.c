/* Restarting the program with faster OpenBLAS kernels: process-level
 * business (environment, exec), so it lives with the programs, not in the
 * library. Shared by tokdrop and the benchmarks. */
#include <stdlib.h>
#include <unistd.h>

#include "cli.h"
#include "tokdrop/nn/blas.h"

void td_cli_restart_for_fast_kernels(char **argv)
{
    /* a user's own OPENBLAS_CORETYPE always wins; TOKDROP_BLAS_REEXEC marks
     * the restarted process, so it never loops */
    if (getenv("OPENBLAS_CORETYPE") || getenv("TOKDROP_BLAS_REEXEC")) return;
    const char *core = td_blas_better_coretype();
    if (!core) return;
    setenv("OPENBLAS_CORETYPE", core, 1);
    setenv("TOKDROP_BLAS_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);
}
