/* The tokdrop subcommands; each returns the process exit status. */
#ifndef TOKDROP_CLI_H
#define TOKDROP_CLI_H

#include <stdbool.h>

#include "tokdrop/train/config.h"
#include "tokdrop/train/dist.h"

enum {
    TD_EXIT_OK = 0,
    TD_EXIT_FAILURE = 1, /* the run failed (data, I/O, numerics) */
    TD_EXIT_USAGE = 2,   /* bad command line or configuration */
    TD_EXIT_IOERR = 74,  /* train: writing to run.dir failed (a checkpoint,
                            metrics.jsonl, eval.jsonl, config.yaml: a full disk,
                            a quota, an I/O error); the checkpoints written
                            before are intact: free space and run again
                            (EX_IOERR) */
    TD_EXIT_STOPPED = 75, /* SIGTERM/SIGUSR1: checkpoint written, run again to
                             continue (EX_TEMPFAIL; a requeued Slurm job resumes) */
};

int td_cmd_train(int argc, char **argv);

/* Defaults, the file, the --set overrides, resolve, validate, and a check
 * that this CPU runs train.precision; false with err set on a bad config.
 * No MPI calls: ranks that fail here still meet the others in the
 * collective that follows (ranks_on_node: for data.memory_mb's default). */
bool td_cli_load_config(td_config *cfg, const char *path, const char *const *sets, int n_sets, int ranks_on_node,
                        td_error *err);

/* The start the MPI commands share: MPI up, then td_cli_load_config on
 * every rank. TD_EXIT_OK with dist initialised; else the exit status, on
 * every rank, once one line says why (from the lowest failing rank) and
 * MPI is down again. */
int td_cli_start(td_dist *dist, td_config *cfg, const char *config_path, const char *const *sets, int n_sets,
                 int *argc, char ***argv);

/* The first log line of every rank (not only rank 0): its host, the cores
 * it may run on (its CPU binding) and its threads, e.g.
 * "rank 1 of 2 on node07, cores 2-3 (2 threads)". */
void td_cli_log_placement(const td_dist *dist, int threads);

/* The first log line of rank 0: ranks, threads, the precision that runs and the
 * kernels the libraries picked; a warning where bf16 has no bf16
 * instructions to run on. */
void td_cli_log_precision(const td_dist *dist, const td_config *cfg, int threads);

/* When td_blas_better_coretype() names kernels (and neither the user's
 * OPENBLAS_CORETYPE nor an earlier restart says otherwise), sets
 * OPENBLAS_CORETYPE and re-executes this program with argv. Returns only
 * when no restart was needed or exec failed. Call first thing in main,
 * before MPI_Init. */
void td_cli_restart_for_fast_kernels(char **argv);

int td_cmd_eval(int argc, char **argv);
int td_cmd_export(int argc, char **argv);
int td_cmd_import(int argc, char **argv);

#endif
