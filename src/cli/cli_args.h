/* Command-line parsing for both programs (tokdrop and tokdrop-prep): each
 * subcommand declares its options in a table, td_cli_parse runs getopt_long
 * over them, answers --help / -h with the subcommand's help text on stdout,
 * and turns every bad argument into one line on stderr that names it.
 * Needs only the C library, so that tokdrop-prep links it alone. */
#ifndef TOKDROP_CLI_ARGS_H
#define TOKDROP_CLI_ARGS_H

#include <stdbool.h>

/* Exit statuses shared by the programs' usage paths. */
enum { TD_CLI_EXIT_HELP = 0, TD_CLI_EXIT_USAGE = 2 };

typedef struct {
    const char *name; /* long name without the leading "--" */
    bool takes_value;
    bool repeats; /* every value is kept (e.g. --set); else the last one wins */
    /* set by td_cli_parse: */
    const char *value;   /* the (last) value; "1" for a flag given; NULL when absent */
    const char **values; /* repeats: all values in order (n_values of them) */
    int n_values;
} td_cli_opt;

/* Table entries: an option with a value, a repeatable one, a flag. */
#define TD_CLI_N_OPTS(opts) ((int)(sizeof(opts) / sizeof((opts)[0])))
#define TD_CLI_VALUE(name_) {.name = (name_), .takes_value = true}
#define TD_CLI_LIST(name_) {.name = (name_), .takes_value = true, .repeats = true}
#define TD_CLI_FLAG(name_) {.name = (name_)}

typedef struct {
    const char *prog; /* "tokdrop train": the prefix of every message */
    const char *help; /* the --help text; its first line is the usage line */
    td_cli_opt *opts;
    int n_opts;
    /* When set: the positional arguments the command takes, exactly, as
     * NULL-terminated descriptions ("a config file"); td_cli_parse refuses
     * a missing or extra one, naming it. NULL: any number (the command
     * checks them). */
    const char *const *positional;
    /* set by td_cli_parse: the positional arguments in order ("-" and
     * everything after "--" included) */
    const char **pos;
    int n_pos;
} td_cli_cmd;

typedef enum {
    TD_CLI_OK = 0, /* parsed: go on */
    TD_CLI_HELP,   /* --help or -h: the help text is printed, exit 0 */
    TD_CLI_ERROR,  /* a bad argument: the message is printed, exit 2 */
} td_cli_result;

/* Parses argv[1..argc-1] (argv[0] is the subcommand's name). Unknown
 * options, a missing value, a value given to a flag: one line on stderr.
 * On any result but TD_CLI_OK, cmd is already freed: the caller returns
 * td_cli_exit_status(result). */
td_cli_result td_cli_parse(td_cli_cmd *cmd, int argc, char **argv);

/* The value of option name (NULL when not given); the option must exist. */
const char *td_cli_value(const td_cli_cmd *cmd, const char *name);

/* "PROG: MESSAGE (see PROG --help)" on stderr; returns TD_CLI_EXIT_USAGE. */
int td_cli_usage_error(const td_cli_cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The exit status for a result of td_cli_parse other than TD_CLI_OK. */
int td_cli_exit_status(td_cli_result r);

/* Frees what td_cli_parse allocated. */
void td_cli_free(td_cli_cmd *cmd);

#endif
