/* The config as every command reads it: file, then --set overrides, then
 * resolution of the automatic values and validation; and the start the
 * MPI commands share. */
#define _GNU_SOURCE /* sched_getaffinity */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli.h"
#include "tokdrop/nn/blas.h"
#include "tokdrop/train/data.h"
#include "tokdrop/nn/gemm.h"
#include "tokdrop/train/log.h"

bool td_cli_load_config(td_config *cfg, const char *path, const char *const *sets, int n_sets, int ranks_on_node,
                        td_error *err)
{
    td_config_defaults(cfg);
    td_status st = td_config_load(cfg, path, err);
    for (int i = 0; st == TD_OK && i < n_sets; i++) st = td_config_set(cfg, sets[i], err);
    if (st == TD_OK) {
        td_config_resolve(cfg);
        cfg->train.precision = td_gemm_resolve_precision(cfg->train.precision);
        int ranks = ranks_on_node < 1 ? 1 : ranks_on_node;
        if (cfg->data.memory_mb == 0) cfg->data.memory_mb = td_data_default_memory_mb(ranks);
        st = td_config_validate(cfg, err);
        long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
        if (st == TD_OK && pages > 0 && page > 0) { /* the model must fit in the node's memory, shared by its ranks */
            char where[96];
            snprintf(where, sizeof(where), ranks > 1 ? "this node has for each of its %d ranks" : "this node has",
                     ranks);
            st = td_config_check_memory(cfg, (double)pages * (double)page / ranks, where, err);
        }
    }
    if (st == TD_OK) { /* can this CPU run the precision? */
        td_gemm_engine *probe = NULL;
        st = td_gemm_engine_create(&probe, cfg->train.precision, err);
        td_gemm_engine_free(probe);
    }
    return st == TD_OK;
}

int td_cli_start(td_dist *dist, td_config *cfg, const char *config_path, const char *const *sets, int n_sets,
                 int *argc, char ***argv)
{
    td_error err = {0};
    if (td_dist_init(dist, argc, argv, &err) != TD_OK) {
        fprintf(stderr, "tokdrop: %s\n", err.msg);
        return TD_EXIT_FAILURE;
    }
    /* collectives first: a rank whose config fails must still take part */
    int ranks_on_node = td_dist_ranks_on_node(dist);
    bool ok = td_cli_load_config(cfg, config_path, sets, n_sets, ranks_on_node, &err);
    /* A config that fails on some ranks only (the file missing on one node,
     * a CPU without bf16) must stop them all, or the others would wait
     * for the failed ones in their first collective. Every rank usually
     * fails the same way, so only the lowest failing rank says why. */
    int lowest_failed = dist->size - td_dist_max_int(dist, ok ? 0 : dist->size - dist->rank);
    if (lowest_failed == dist->size) return TD_EXIT_OK;
    if (lowest_failed == dist->rank) {
        if (dist->rank == 0) fprintf(stderr, "tokdrop: %s\n", err.msg);
        else fprintf(stderr, "tokdrop: rank %d: %s\n", dist->rank, err.msg);
    }
    td_dist_finalize(dist);
    return TD_EXIT_USAGE;
}

/* The CPUs in set as a compact list, "0-3,8,10-11" (the form of taskset
 * and /proc/self/status); "?" when the list does not fit. */
static void format_cpu_list(char *out, size_t n_bytes, const cpu_set_t *set)
{
    size_t len = 0;
    out[0] = '\0';
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, set)) continue;
        int last = c;
        while (last + 1 < CPU_SETSIZE && CPU_ISSET(last + 1, set)) last++;
        int w = last > c ? snprintf(out + len, n_bytes - len, "%s%d-%d", len ? "," : "", c, last)
                         : snprintf(out + len, n_bytes - len, "%s%d", len ? "," : "", c);
        if (w < 0 || (size_t)w >= n_bytes - len) {
            snprintf(out, n_bytes, "?");
            return;
        }
        len += (size_t)w;
        c = last;
    }
}

void td_cli_log_placement(const td_dist *dist, int threads)
{
    char host[256] = "?", cpus[256] = "?";
    gethostname(host, sizeof(host));
    host[sizeof(host) - 1] = '\0';
    cpu_set_t set;
    bool bound = false;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        format_cpu_list(cpus, sizeof(cpus), &set);
        bound = CPU_COUNT(&set) < sysconf(_SC_NPROCESSORS_ONLN);
    }
    /* one write per line, so that the lines of the ranks do not interleave */
    fprintf(stderr, "tokdrop: rank %d of %d on %s, cores %s%s (%d thread%s)\n", dist->rank, dist->size, host,
            cpus, bound ? "" : ", not bound", threads, threads > 1 ? "s" : "");
    fflush(stderr);
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
