/* The Hugging Face side of `tokdrop export` and `tokdrop import` (SPEC
 * section 7): a BertConfig config.json, written from and read into the
 * model section of our config. Weights travel as safetensors
 * (tokdrop/formats/safetensors.h), the vocabulary as vocab.txt unchanged. */
#ifndef TOKDROP_HF_H
#define TOKDROP_HF_H

#include "tokdrop/nn/model.h"
#include "tokdrop/base/error.h"

/* Writes a BertForPreTraining config.json for mc (atomically: DIR/.NAME.tmp, fsync, rename). */
td_status td_hf_write_config(const char *path, const td_model_config *mc, td_error *err);

/* Applies the BertConfig keys of config.json onto mc (keys it lacks keep
 * mc's values, which by default are BertConfig's defaults too). A model
 * that tokdrop does not compute (model_type other than bert, another
 * activation, layer_norm_eps other than 1e-12, relative position
 * embeddings) or a key of the wrong type is an error naming the file and
 * the key (a syntax error: the line, column and byte); other keys (tokenizer, generation, architectures) are ignored. */
td_status td_hf_read_config(const char *path, td_model_config *mc, td_error *err);

/* Copies the file src to dst (atomically: DIR/.NAME.tmp, fsync, rename). */
td_status td_hf_copy_file(const char *src, const char *dst, td_error *err);

#endif
