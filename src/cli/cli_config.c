/* The config as every command reads it: file, then --set overrides, then
 * resolution of the automatic values and validation; and the start the
 * MPI commands share. */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "tokdrop/blas.h"
#include "tokdrop/data.h"
#include "tokdrop/gemm.h"
#include "tokdrop/log.h"

bool td_cli_load_config(td_config *cfg, const char *path, const char *const *sets, int n_sets,
                        const td_dist *dist)
{
    td_error err = {0};
    td_config_defaults(cfg);
    td_status st = td_config_load(cfg, path, &err);
    for (int i = 0; st == TD_OK && i < n_sets; i++) st = td_config_set(cfg, sets[i], &err);
    if (st == TD_OK) {
        td_config_resolve(cfg);
        cfg->train.precision = td_gemm_resolve_precision(cfg->train.precision);
        if (cfg->data.memory_mb == 0)
            cfg->data.memory_mb = td_data_default_memory_mb(td_dist_ranks_on_node(dist));
        st = td_config_validate(cfg, &err);
    }
    if (st == TD_OK) { /* can this CPU run the precision? */
        td_gemm_engine *probe = NULL;
        st = td_gemm_engine_create(&probe, cfg->train.precision, &err);
        td_gemm_engine_free(probe);
    }
    /* every rank reads the same file and fails the same way: one message */
    if (st != TD_OK && dist->rank == 0) fprintf(stderr, "tokdrop: %s\n", err.msg);
    return st == TD_OK;
}

int td_cli_start(td_dist *dist, td_config *cfg, const char *config_path, const char **sets, int n_sets,
                 int *argc, char ***argv)
{
    td_error err = {0};
    if (td_dist_init(dist, argc, argv, &err) != TD_OK) {
        fprintf(stderr, "tokdrop: %s\n", err.msg);
        free(sets);
        return TD_EXIT_FAILURE;
    }
    bool ok = td_cli_load_config(cfg, config_path, sets, n_sets, dist);
    free(sets);
    if (!ok) {
        td_dist_finalize(dist);
        return TD_EXIT_USAGE;
    }
    return TD_EXIT_OK;
}

void td_cli_log_precision(const td_dist *dist, const td_config *cfg, int threads)
{
    td_gemm_engine *eng = NULL;
    td_error err = {0};
    const char *products = "?";
    if (td_gemm_engine_create(&eng, cfg->train.precision, &err) == TD_OK)
        products = td_gemm_engine_kernels(eng);
    td_log(dist, "%d rank%s x %d thread%s, precision %s: matrix products by %s, BLAS kernels %s",
           dist->size, dist->size > 1 ? "s" : "", threads, threads > 1 ? "s" : "",
           td_precision_str(cfg->train.precision), products, td_blas_corename());
    td_gemm_engine_free(eng);
    if (cfg->train.precision == TD_PRECISION_BF16 && !td_gemm_native_bf16() && dist->rank == 0)
        fprintf(stderr, "tokdrop: warning: this CPU has neither AVX512-BF16 nor AMX: bf16 runs "
                        "correctly through oneDNN's emulation, but slower than precision fp32\n");
}
