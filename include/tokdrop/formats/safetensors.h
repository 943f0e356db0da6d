/* Hugging Face safetensors: an 8-byte little-endian header length, a JSON
 * header {name: {dtype, shape, data_offsets}, "__metadata__": {...}}, then
 * the raw little-endian data. We write F32; we read F32, F16 and BF16. */
#ifndef TOKDROP_SAFETENSORS_H
#define TOKDROP_SAFETENSORS_H

#include <stdbool.h>

#include "tokdrop/base/error.h"
#include "tokdrop/base/tensor.h"

/* Writes every tensor of the table from block (indexed by the table). */
td_status td_safetensors_write(const char *path, const td_tensor_info *tensors, int n_tensors,
                               const float *block, td_error *err);

/* Reads every tensor of the table into block. Each must be present with the
 * table's shape; tensors in the file that the table lacks are ignored (HF
 * files carry e.g. position_ids and the tied decoder weight), and their
 * names are counted in *n_ignored (may be NULL). A missing tensor or a shape
 * mismatch is TD_ERR_FORMAT naming the file and the tensor.
 * Names are matched as published BERT files spell them too: without the
 * "bert." prefix (saved from BertModel) and with LayerNorm gamma/beta for
 * weight/bias (converted from the TF checkpoints). */
td_status td_safetensors_read(const char *path, const td_tensor_info *tensors, int n_tensors,
                              float *block, int *n_ignored, td_error *err);

/* The same, but a tensor the file lacks is not an error: present[i] (of
 * n_tensors) says whether tensor i was read; the others are left as they
 * are in block. */
td_status td_safetensors_read_some(const char *path, const td_tensor_info *tensors, int n_tensors,
                                   float *block, bool *present, int *n_ignored, td_error *err);

#endif
