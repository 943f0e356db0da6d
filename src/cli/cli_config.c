/* The config as every command reads it: file, then --set overrides, then
 * resolution of the automatic values and validation; and the start the
 * MPI commands share. */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

bool td_cli_load_config(td_config *cfg, const char *path, const char *const *sets, int n_sets,
                        const td_dist *dist)
{
    td_error err = {0};
    td_config_defaults(cfg);
    td_status st = td_config_load(cfg, path, &err);
    for (int i = 0; st == TD_OK && i < n_sets; i++) st = td_config_set(cfg, sets[i], &err);
    if (st == TD_OK) {
        td_config_resolve(cfg);
        st = td_config_validate(cfg, &err);
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
