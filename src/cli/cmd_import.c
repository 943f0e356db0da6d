/* `tokdrop import HF_DIR CHECKPOINT`: published Hugging Face BERT weights
 * (config.json, model.safetensors, vocab.txt) as a tokdrop checkpoint at
 * step 0, to start a run from with `model.init: CHECKPOINT`. Pretraining
 * heads that the files lack (a BertModel) start from a random init. */
#define _XOPEN_SOURCE 700 /* realpath */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_args.h"
#include "base/fs.h"
#include "tokdrop/train/ckpt.h"
#include "tokdrop/train/config.h"
#include "tokdrop/formats/hf.h"
#include "tokdrop/nn/model.h"
#include "tokdrop/base/vocab.h"
#include "tokdrop/train/weights.h"

static const char IMPORT_HELP[] =
    "usage: tokdrop import HF_DIR CHECKPOINT\n"
    "\n"
    "Turns a Hugging Face BERT into a tokdrop checkpoint at step 0; start a run\n"
    "from it with model.init: CHECKPOINT. Pretraining heads that the files lack\n"
    "(a BertModel) start from a random init.\n"
    "\n"
    "  HF_DIR      a directory with config.json, model.safetensors and (optional)\n"
    "              vocab.txt\n"
    "  CHECKPOINT  the checkpoint file to write\n"
    "  -h, --help  this help\n"
    "\n"
    "Exit status: 0 done, 1 the import failed, 2 bad command line.\n";

static bool readable(const char *path) { return access(path, R_OK) == 0; }

/* The model section from config.json, and the vocabulary beside it (kept
 * by absolute path, so that allow/deny tokens resolve wherever the run is
 * started from). */
static td_status read_config(td_config *cfg, const char *dir, td_error *err)
{
    char path[TD_PATH_LEN];
    td_config_defaults(cfg);
    td_status st = td_fs_join(path, sizeof(path), dir, "config.json", err);
    if (st == TD_OK) st = td_hf_read_config(path, &cfg->model, err);
    if (st == TD_OK) st = td_fs_join(path, sizeof(path), dir, "vocab.txt", err);
    if (st != TD_OK) return st;
    if (readable(path)) {
        if (!realpath(path, cfg->model.vocab)) snprintf(cfg->model.vocab, sizeof(cfg->model.vocab), "%s", path);
        td_vocab v = {0};
        st = td_vocab_load(&v, cfg->model.vocab, err);
        if (st == TD_OK && v.size != cfg->model.vocab_size)
            st = td_error_set(err, TD_ERR_FORMAT, "%s has %lld tokens, but config.json says vocab_size %lld", path,
                              (long long)v.size, (long long)cfg->model.vocab_size);
        td_vocab_free(&v);
        if (st != TD_OK) return st;
    }
    /* Only the model section matters here; the data section is a
     * placeholder that the run's own config replaces, so fit it to the
     * model for the validation. */
    if (cfg->data.seq_len > cfg->model.max_position) cfg->data.seq_len = cfg->model.max_position;
    if (cfg->data.max_pred > cfg->data.seq_len) cfg->data.max_pred = cfg->data.seq_len;
    td_config_resolve(cfg);
    return td_config_validate(cfg, err);
}

static td_status import(const char *dir, const char *ckpt_path, td_error *err)
{
    static td_config cfg;
    td_status st = read_config(&cfg, dir, err);
    if (st != TD_OK) return st;
    char weights[TD_PATH_LEN], bin[TD_PATH_LEN];
    if ((st = td_fs_join(weights, sizeof(weights), dir, "model.safetensors", err)) != TD_OK) return st;
    if ((st = td_fs_join(bin, sizeof(bin), dir, "pytorch_model.bin", err)) != TD_OK) return st;
    if (!readable(weights)) {
        if (readable(bin))
            return td_error_set(err, TD_ERR_IO,
                                "%s: no model.safetensors, only pytorch_model.bin (a Python pickle, which tokdrop "
                                "does not read): convert it with safetensors.torch.save_file(torch.load(bin), "
                                "'model.safetensors')",
                                dir);
        return td_error_set(err, TD_ERR_IO, "%s: no model.safetensors", dir);
    }

    td_model model = {0};
    if ((st = td_model_init(&model, &cfg.model, 1, 1, 1, err)) != TD_OK) return st;
    td_model_init_weights(&model, cfg.train.seed);
    int n_new_heads = 0;
    st = td_weights_load(&model, weights, &n_new_heads, err);
    float *zeros = td_xcalloc((size_t)model.n_params, sizeof(float)); /* LAMB m and v */
    td_data_cursor cursor = {0, 0, 0};
    char *yaml = td_config_to_yaml(&cfg);
    td_ckpt ck = {
        .step = 0,
        .seed = cfg.train.seed,
        .tensors = model.tensors,
        .n_tensors = model.n_tensors,
        .n_params = model.n_params,
        .params = model.params,
        .m = zeros,
        .v = zeros,
        .n_ranks = 1,
        .cursors = &cursor,
        .config_yaml = yaml,
    };
    if (st == TD_OK) st = td_ckpt_write_file(ckpt_path, &ck, err);
    if (st == TD_OK)
        printf("tokdrop import: %s -> %s: %lld parameters, %lld layers x %lld hidden%s; start a run from it with "
               "model.init: %s\n",
               dir, ckpt_path, (long long)model.n_params, (long long)cfg.model.layers, (long long)cfg.model.hidden,
               n_new_heads ? " (no pretraining heads in the files: they start from a random init)" : "", ckpt_path);
    free(yaml);
    free(zeros);
    td_model_free(&model);
    return st;
}

int td_cmd_import(int argc, char **argv)
{
    static const char *const positional[] = {"a Hugging Face model directory", "a checkpoint file to write", NULL};
    td_cli_cmd cmd = {.prog = "tokdrop import", .help = IMPORT_HELP, .positional = positional};
    td_cli_result parsed = td_cli_parse(&cmd, argc, argv);
    if (parsed != TD_CLI_OK) return td_cli_exit_status(parsed);
    int rc = TD_EXIT_OK;
    td_error err = {0};
    if (rc == TD_EXIT_OK && import(cmd.pos[0], cmd.pos[1], &err) != TD_OK) {
        fprintf(stderr, "tokdrop import: %s\n", err.msg);
        rc = TD_EXIT_FAILURE;
    }
    td_cli_free(&cmd);
    return rc;
}
