/* getopt_long behind the option tables of the subcommands (cli_args.h). */
#include "cli_args.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* getopt_long's val for option i of the table: above every char, so that
 * no option collides with 'h', '?', ':' or 1. */
#define OPT_VAL(i) (256 + (i))

int td_cli_usage_error(const td_cli_cmd *cmd, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s (see %s --help)\n", cmd->prog, msg, cmd->prog);
    return TD_CLI_EXIT_USAGE;
}

int td_cli_exit_status(td_cli_result r) { return r == TD_CLI_HELP ? TD_CLI_EXIT_HELP : TD_CLI_EXIT_USAGE; }

const char *td_cli_value(const td_cli_cmd *cmd, const char *name)
{
    for (int i = 0; i < cmd->n_opts; i++)
        if (strcmp(cmd->opts[i].name, name) == 0) return cmd->opts[i].value;
    fprintf(stderr, "%s: internal error: no option --%s in the table\n", cmd->prog, name);
    abort();
}

void td_cli_free(td_cli_cmd *cmd)
{
    for (int i = 0; i < cmd->n_opts; i++) {
        free(cmd->opts[i].values);
        cmd->opts[i].values = NULL;
        cmd->opts[i].n_values = 0;
    }
    free(cmd->pos);
    cmd->pos = NULL;
    cmd->n_pos = 0;
}

/* The positional arguments against cmd->positional: "missing a checkpoint
 * file and an output directory", "unexpected argument 'x'". */
static td_cli_result check_positional(const td_cli_cmd *cmd)
{
    int want = 0;
    while (cmd->positional[want]) want++;
    if (cmd->n_pos > want) {
        td_cli_usage_error(cmd, "unexpected argument '%s'", cmd->pos[want]);
        return TD_CLI_ERROR;
    }
    if (cmd->n_pos == want) return TD_CLI_OK;
    char missing[512] = "";
    for (int i = cmd->n_pos; i < want; i++) {
        size_t n = strlen(missing);
        snprintf(missing + n, sizeof(missing) - n, "%s%s", i == cmd->n_pos ? "" : i + 1 == want ? " and " : ", ",
                 cmd->positional[i]);
    }
    td_cli_usage_error(cmd, "missing %s", missing);
    return TD_CLI_ERROR;
}

td_cli_result td_cli_parse(td_cli_cmd *cmd, int argc, char **argv)
{
    struct option *longopts = calloc((size_t)cmd->n_opts + 2, sizeof(*longopts));
    cmd->pos = calloc((size_t)argc + 1, sizeof(char *));
    cmd->n_pos = 0;
    if (!longopts || !cmd->pos) {
        free(longopts);
        fprintf(stderr, "%s: out of memory\n", cmd->prog);
        return TD_CLI_ERROR;
    }
    for (int i = 0; i < cmd->n_opts; i++) {
        td_cli_opt *o = &cmd->opts[i];
        o->value = NULL;
        o->n_values = 0;
        o->values = o->repeats ? calloc((size_t)argc + 1, sizeof(char *)) : NULL;
        longopts[i] = (struct option){o->name, o->takes_value ? required_argument : no_argument, NULL, OPT_VAL(i)};
    }
    longopts[cmd->n_opts] = (struct option){"help", no_argument, NULL, 'h'};

    /* "-": positional arguments come back in order as option 1, whatever
     * POSIXLY_CORRECT says; ":": a missing value returns ':' */
    td_cli_result res = TD_CLI_OK;
    opterr = 0;
    optind = 0; /* glibc: a full reset, since each subcommand parses anew */
    int c;
    while (res == TD_CLI_OK && (c = getopt_long(argc, argv, "-:h", longopts, NULL)) != -1) {
        if (c == 1) {
            cmd->pos[cmd->n_pos++] = optarg;
        } else if (c == 'h') {
            fputs(cmd->help, stdout);
            res = TD_CLI_HELP;
        } else if (c == ':') {
            if (optopt >= OPT_VAL(0))
                td_cli_usage_error(cmd, "option '--%s' needs a value", cmd->opts[optopt - OPT_VAL(0)].name);
            else
                td_cli_usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
            res = TD_CLI_ERROR;
        } else if (c == '?') {
            /* optopt: a short option's letter, our val for a flag given a
             * value, 0 for an unknown or ambiguous long option */
            if (optopt >= OPT_VAL(0))
                td_cli_usage_error(cmd, "option '--%s' takes no value", cmd->opts[optopt - OPT_VAL(0)].name);
            else if (optopt > 0)
                td_cli_usage_error(cmd, "unknown option '-%c'", optopt);
            else /* the name, without any "=value" */
                td_cli_usage_error(cmd, "unknown option '%.*s'", (int)strcspn(argv[optind - 1], "="),
                                   argv[optind - 1]);
            res = TD_CLI_ERROR;
        } else {
            td_cli_opt *o = &cmd->opts[c - OPT_VAL(0)];
            o->value = o->takes_value ? optarg : "1";
            if (o->repeats) o->values[o->n_values++] = o->value;
        }
    }
    /* after "--": all positional */
    for (int i = optind; res == TD_CLI_OK && i < argc; i++) cmd->pos[cmd->n_pos++] = argv[i];
    free(longopts);
    if (res == TD_CLI_OK && cmd->positional) res = check_positional(cmd);
    if (res != TD_CLI_OK) td_cli_free(cmd); /* the caller only returns */
    return res;
}
