/* Starting weights from a file, for `model.init` and `tokdrop import`:
 * a safetensors file in Hugging Face names (a BertForPreTraining, or a
 * BertModel without the pretraining heads), or a tokdrop checkpoint (from
 * `tokdrop import` or another run; only its parameters are taken). */
#ifndef TOKDROP_WEIGHTS_H
#define TOKDROP_WEIGHTS_H

#include "tokdrop/base/error.h"
#include "tokdrop/nn/model.h"

/* Overwrites the model's parameters with those in path. The parameters must
 * already hold a random init: the pretraining heads (bert.pooler.*, cls.*)
 * that a safetensors file lacks keep it, and *n_new_heads (may be NULL)
 * counts those tensors so the caller can say so. A missing embedding or
 * encoder tensor, or a shape that differs from the config, is an error
 * naming the file and the tensor. */
td_status td_weights_load(td_model *model, const char *path, int *n_new_heads, td_error *err);

/* Whether path starts with the HDF5 signature (a tokdrop checkpoint) rather
 * than being a safetensors file; false when it cannot be read. */
bool td_weights_is_hdf5(const char *path);

#endif
