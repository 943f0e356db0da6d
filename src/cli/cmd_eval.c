/* `tokdrop eval CONFIG.yaml --checkpoint FILE [--set k=v ...]`: full-sequence
 * masked-LM loss and accuracy and NSP loss and accuracy on data.eval, printed
 * as one JSON object by rank 0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tokdrop/blas.h"
#include "tokdrop/ckpt.h"
#include "tokdrop/config.h"
#include "tokdrop/dist.h"
#include "tokdrop/eval.h"
#include "tokdrop/json.h"
#include "tokdrop/log.h"
#include "tokdrop/model.h"
#include "tokdrop/train.h"
#include "tokdrop/vocab.h"

static int usage_error(const char *msg)
{
    fprintf(stderr, "tokdrop eval: %s\nusage: tokdrop eval CONFIG.yaml --checkpoint FILE [--set key.path=value ...]\n", msg);
    return TD_EXIT_USAGE;
}

/* Everything after the config is read and the ranks agree it is valid.
 * Every rank returns the same verdict; each failing rank prints its error. */
static td_status evaluate(const td_config *cfg, const char *ckpt_path, const td_dist *dist,
                          td_eval_result *r, td_error *err)
{
    if (!cfg->data.eval[0])
        return td_error_set(err, TD_ERR_CONFIG, "data.eval is empty: name the held-out shards to evaluate on");
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
    const char *config_path = NULL, *ckpt_path = NULL;
    const char **sets = calloc((size_t)argc, sizeof(char *));
    int n_sets = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--set") == 0 && i + 1 < argc) sets[n_sets++] = argv[++i];
        else if (strcmp(argv[i], "--checkpoint") == 0 && i + 1 < argc) ckpt_path = argv[++i];
        else if (argv[i][0] == '-' || config_path) {
            free(sets);
            return usage_error("unexpected argument");
        } else config_path = argv[i];
    }
    if (!config_path || !ckpt_path) {
        free(sets);
        return usage_error("a config file and --checkpoint FILE are needed");
    }

    td_dist dist;
    static td_config cfg;
    int rc = td_cli_start(&dist, &cfg, config_path, sets, n_sets, &argc, &argv);
    if (rc != TD_EXIT_OK) return rc;
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
