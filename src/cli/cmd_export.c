/* `tokdrop export CHECKPOINT OUTDIR [--vocab FILE]`: the checkpoint's
 * weights in Hugging Face layout (SPEC section 7): OUTDIR/model.safetensors
 * under BertForPreTraining names, config.json and vocab.txt, which
 * transformers' BertForPreTraining.from_pretrained(OUTDIR) loads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_args.h"
#include "base/fs.h"
#include "tokdrop/train/ckpt.h"
#include "tokdrop/train/config.h"
#include "tokdrop/formats/hf.h"
#include "tokdrop/nn/model.h"
#include "tokdrop/formats/safetensors.h"
#include "tokdrop/base/vocab.h"

static const char EXPORT_HELP[] =
    "usage: tokdrop export CHECKPOINT OUTDIR [--vocab FILE]\n"
    "\n"
    "Writes the weights of CHECKPOINT in Hugging Face layout: OUTDIR/model.safetensors\n"
    "(BertForPreTraining names), config.json and vocab.txt, which\n"
    "transformers' BertForPreTraining.from_pretrained(OUTDIR) loads.\n"
    "\n"
    "  CHECKPOINT    a tokdrop checkpoint (run.dir/ckpt_*.h5)\n"
    "  OUTDIR        the output directory (created if missing)\n"
    "  --vocab FILE  the vocab.txt to ship (default: the run's model.vocab)\n"
    "  -h, --help    this help\n"
    "\n"
    "Exit status: 0 done, 1 the export failed, 2 bad command line.\n";

/* The vocabulary to ship: --vocab, else the run's model.vocab; it must
 * have the model's size. */
static td_status check_vocab(const char *path, int64_t vocab_size, const char *ckpt_path, td_error *err)
{
    if (!path[0])
        return td_error_set(err, TD_ERR_ARG,
                            "%s: the run had no model.vocab, and an export needs a vocab.txt: give --vocab FILE",
                            ckpt_path);
    td_vocab v = {0};
    td_status st = td_vocab_load(&v, path, err);
    if (st == TD_OK && v.size != vocab_size)
        st = td_error_set(err, TD_ERR_FORMAT, "%s has %lld tokens, the checkpoint's model.vocab_size is %lld", path,
                          (long long)v.size, (long long)vocab_size);
    td_vocab_free(&v);
    return st;
}

static td_status export(const char *ckpt_path, const char *out_dir, const char *vocab_arg, td_error *err)
{
    char *yaml = NULL;
    td_status st = td_ckpt_read_config(ckpt_path, &yaml, err);
    if (st != TD_OK) return st;
    static td_config cfg;
    td_config_defaults(&cfg);
    st = td_config_load_text(&cfg, yaml, ckpt_path, err);
    free(yaml);
    if (st != TD_OK) return st;
    const char *vocab = vocab_arg ? vocab_arg : cfg.model.vocab;
    if ((st = check_vocab(vocab, cfg.model.vocab_size, ckpt_path, err)) != TD_OK) return st;

    td_model model = {0};
    if ((st = td_model_init(&model, &cfg.model, 1, 1, 1, err)) != TD_OK) return st;
    td_ckpt ck = {
        .tensors = model.tensors, .n_tensors = model.n_tensors, .n_params = model.n_params, .params = model.params,
    };
    st = td_ckpt_read(ckpt_path, &ck, NULL, err);
    free(ck.config_yaml);
    if (st == TD_OK) st = td_fs_mkdir_p(out_dir, NULL, NULL, err);
    char *weights = td_fs_join_alloc(out_dir, "model.safetensors"),
         *config = td_fs_join_alloc(out_dir, "config.json"),
         *vocab_out = td_fs_join_alloc(out_dir, "vocab.txt");
    if (st == TD_OK) st = td_safetensors_write(weights, model.tensors, model.n_tensors, model.params, err);
    if (st == TD_OK) st = td_hf_write_config(config, &cfg.model, err);
    if (st == TD_OK) st = td_hf_copy_file(vocab, vocab_out, err);
    if (st == TD_OK)
        printf("tokdrop export: %s (step %lld, %lld parameters) -> %s: model.safetensors, config.json, vocab.txt\n",
               ckpt_path, (long long)ck.step, (long long)model.n_params, out_dir);
    free(weights);
    free(config);
    free(vocab_out);
    td_model_free(&model);
    return st;
}

int td_cmd_export(int argc, char **argv)
{
    td_cli_opt opts[] = {TD_CLI_VALUE("vocab")};
    static const char *const positional[] = {"a checkpoint file", "an output directory", NULL};
    td_cli_cmd cmd = {.prog = "tokdrop export", .help = EXPORT_HELP, .opts = opts,
                      .n_opts = TD_CLI_N_OPTS(opts), .positional = positional};
    td_cli_result parsed = td_cli_parse(&cmd, argc, argv);
    if (parsed != TD_CLI_OK) return td_cli_exit_status(parsed);
    int rc = TD_EXIT_OK;
    td_error err = {0};
    if (rc == TD_EXIT_OK && export(cmd.pos[0], cmd.pos[1], opts[0].value, &err) != TD_OK) {
        fprintf(stderr, "tokdrop export: %s\n", err.msg);
        rc = TD_EXIT_FAILURE;
    }
    td_cli_free(&cmd);
    return rc;
}
