/* Fuzzes the Hugging Face config.json reader as `tokdrop import` uses it:
 * read onto the default model, then resolved and validated with the rest
 * of a default config. A model that validates must survive `tokdrop
 * export`: written as config.json and read back, it is the same model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "tokdrop/formats/hf.h"
#include "tokdrop/train/config.h"

static int same_model(const td_model_config *a, const td_model_config *b)
{
    return a->vocab_size == b->vocab_size && a->hidden == b->hidden && a->layers == b->layers &&
           a->heads == b->heads && a->intermediate == b->intermediate &&
           a->max_position == b->max_position && a->type_vocab == b->type_vocab &&
           a->hidden_act == b->hidden_act && a->hidden_dropout == b->hidden_dropout &&
           a->attention_dropout == b->attention_dropout &&
           a->initializer_range == b->initializer_range;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fz_write(0, data, size);
    static td_config cfg;
    td_config_defaults(&cfg);
    td_error err = {0};
    td_status st = td_hf_read_config(path, &cfg.model, &err);
    fz_check_error(st, &err, "td_hf_read_config");
    if (st != TD_OK) return 0;
    /* as tokdrop import: the data section fitted to the model */
    if (cfg.data.seq_len > cfg.model.max_position) cfg.data.seq_len = cfg.model.max_position;
    if (cfg.data.max_pred > cfg.data.seq_len) cfg.data.max_pred = cfg.data.seq_len;
    td_config_resolve(&cfg);
    st = td_config_validate(&cfg, &err);
    fz_check_error(st, &err, "td_config_validate");
    if (st != TD_OK) return 0;

    const char *out = fz_path(1);
    st = td_hf_write_config(out, &cfg.model, &err);
    fz_check_error(st, &err, "td_hf_write_config");
    static td_config back;
    td_config_defaults(&back);
    if (st == TD_OK) st = td_hf_read_config(out, &back.model, &err);
    if (st != TD_OK || !same_model(&cfg.model, &back.model)) {
        fprintf(stderr, "fuzz_hf_config: the model does not survive export (%s)\n",
                st != TD_OK ? err.msg : "it differs");
        abort();
    }
    return 0;
}
