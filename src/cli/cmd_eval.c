/* `tokdrop eval CONFIG.yaml --checkpoint FILE [--set k=v ...]`: full-sequence
 * masked-LM loss and accuracy and NSP loss and accuracy on data.eval, printed
 * as one JSON object by rank 0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_args.h"
#include "tokdrop/nn/blas.h"
#include "tokdrop/train/ckpt.h"
#include "tokdrop/train/config.h"
#include "tokdrop/train/dist.h"
#include "tokdrop/train/eval.h"
#include "tokdrop/formats/json.h"
#include "tokdrop/train/log.h"
#include "tokdrop/nn/model.h"
#include "tokdrop/train/train.h"
#include "tokdrop/base/vocab.h"

static const char EVAL_HELP[] =
    "usage: tokdrop eval CONFIG.yaml --checkpoint FILE [--set key.path=value ...]\n"
    "\n"
    "Full-sequence masked-LM and NSP loss and accuracy of a checkpoint on the\n"
    "held-out shards of data.eval, printed as one JSON object on stdout.\n"
    "Run under mpirun or srun for several ranks.\n"
    "\n"
    "  CONFIG.yaml           the run's config (model, data.eval, micro-batch)\n"
    "  --checkpoint FILE     the checkpoint to evaluate (required)\n"
    "  --set key.path=value  override a config key, e.g. --set data.eval='eval/*.h5';\n"
    "                        may be given several times\n"
    "  -h, --help            this help\n"
    "\n"
    "Exit status: 0 done, 1 the evaluation failed, 2 bad command line or config.\n";

/* Everything after the config is read and the ranks agree it is valid.
 * Every rank returns the same verdict; each failing rank prints its error. */
static td_status evaluate(const td_config *cfg, const char *ckpt_path, const td_dist *dist,
                          td_eval_result *r, td_error *err)
{
    td_vocab vocab = {0};
    td_model model = {0};
    td_data *data = NULL;
    td_batch batch = {0};
    td_status st = TD_OK;
    if (cfg->model.vocab[0] && (st = td_vocab_load(&vocab, cfg->model.vocab, err)) != TD_OK) goto done;
    st = td_model_init(&model, &cfg->model, cfg->train.micro_batch, cfg->data.seq_len,
                       cfg->data.max_pred, err);
    if (st != TD_OK) goto done;
    td_ckpt ck = {
        .tensors = model.tensors,
        .n_tensors = model.n_tensors,
        .n_params = model.n_params,
        .params = model.params,
    };
    if ((st = td_ckpt_read(ckpt_path, &ck, NULL, err)) != TD_OK) goto done;
    free(ck.config_yaml);
    if ((st = td_model_set_precision(&model, cfg->train.precision, err)) != TD_OK) goto done;
    td_data_options opt;
    if ((st = td_trainer_data_options(&opt, cfg, dist, &vocab, true, err)) != TD_OK) goto done;
    if ((st = td_data_open(&data, cfg->data.eval, &opt, err)) != TD_OK) goto done;
    td_batch_init(&batch, cfg->train.micro_batch, cfg->data.seq_len, cfg->data.max_pred);
done:
    /* Agree before the collectives of the evaluation, so that no rank waits
     * in them for a rank that failed to start. */
    if (st != TD_OK) fprintf(stderr, "tokdrop: rank %d: %s\n", dist->rank, err->msg);
    if (td_dist_any_failed(dist, st != TD_OK)) {
        if (st == TD_OK) st = td_error_set(err, TD_ERR_MPI, "another rank failed");
    } else {
        st = td_eval_run(&model, data, &batch, dist, r, err);
        if (st != TD_OK) fprintf(stderr, "tokdrop: rank %d: %s\n", dist->rank, err->msg);
    }
    td_batch_free(&batch);
    if (data) td_data_free(data);
    td_model_free(&model);
    td_vocab_free(&vocab);
    return st;
}

int td_cmd_eval(int argc, char **argv)
{
    td_cli_opt opts[] = {TD_CLI_VALUE("checkpoint"), TD_CLI_LIST("set")};
    static const char *const positional[] = {"a config file", NULL};
    td_cli_cmd cmd = {.prog = "tokdrop eval", .help = EVAL_HELP, .opts = opts,
                      .n_opts = TD_CLI_N_OPTS(opts), .positional = positional};
    td_cli_result parsed = td_cli_parse(&cmd, argc, argv);
    if (parsed != TD_CLI_OK) return td_cli_exit_status(parsed);
    int rc = TD_EXIT_OK;
    if (!opts[0].value)
        rc = td_cli_usage_error(&cmd, "--checkpoint FILE is required");
    const char *config_path = cmd.pos[0], *ckpt_path = opts[0].value;
    td_dist dist;
    static td_config cfg;
    if (rc == TD_EXIT_OK) rc = td_cli_start(&dist, &cfg, config_path, opts[1].values, opts[1].n_values, &argc, &argv);
    td_cli_free(&cmd);
    if (rc != TD_EXIT_OK) return rc;
    if (!cfg.data.eval[0]) { /* the same config on every rank */
        if (dist.rank == 0)
            fprintf(stderr, "tokdrop eval: %s: data.eval is empty: name the held-out shards to evaluate on, "
                            "in the config or with --set data.eval=PATTERN\n", config_path);
        td_dist_finalize(&dist);
        return TD_EXIT_USAGE;
    }
    td_error err = {0};
    td_blas_set_threads(cfg.train.threads > 0 ? (int)cfg.train.threads : 1);

    td_eval_result r;
    bool failed = evaluate(&cfg, ckpt_path, &dist, &r, &err) != TD_OK; /* the same on every rank */
    if (!failed && dist.rank == 0) {
        td_json *out = td_json_object_new();
        td_json_set_str(out, "checkpoint", ckpt_path);
        td_json_set_int(out, "sequences", r.sequences);
        td_json_set_int(out, "masked", r.n_masked);
        td_json_set_num(out, "mlm_loss", r.mlm_loss);
        td_json_set_num(out, "mlm_acc", r.mlm_acc);
        td_json_set_num(out, "nsp_loss", r.nsp_loss);
        td_json_set_num(out, "nsp_acc", r.nsp_acc);
        char *line = td_json_dumps(out, TD_JSON_LINE, TD_JSONL_REAL_DIGITS);
        printf("%s\n", line);
        free(line);
        td_json_free(out);
    }
    td_dist_finalize(&dist);
    return failed ? TD_EXIT_FAILURE : TD_EXIT_OK;
}
