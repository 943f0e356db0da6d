/* The tokdrop subcommands; each returns the process exit status. */
#ifndef TOKDROP_CLI_H
#define TOKDROP_CLI_H

enum {
    TD_EXIT_OK = 0,
    TD_EXIT_FAILURE = 1, /* the run failed (data, I/O, numerics) */
    TD_EXIT_USAGE = 2,   /* bad command line or configuration */
    TD_EXIT_STOPPED = 75, /* SIGTERM/SIGUSR1: checkpoint written, run again to
                             continue (EX_TEMPFAIL; a requeued Slurm job resumes) */
};

int td_cmd_train(int argc, char **argv);
int td_cmd_eval(int argc, char **argv);

#endif
