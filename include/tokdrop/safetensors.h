/* Hugging Face safetensors: an 8-byte little-endian header length, a JSON
 * header {name: {dtype, shape, data_offsets}, "__metadata__": {...}}, then
 * the raw little-endian data. We write F32; we read F32, F16 and BF16. */
#ifndef TOKDROP_SAFETENSORS_H
#define TOKDROP_SAFETENSORS_H

#include "tokdrop/error.h"
#include "tokdrop/tensor.h"

/* Writes every tensor of the table from block (indexed by the table). */
td_status td_safetensors_write(const char *path, const td_tensor_info *tensors, int n_tensors,
                               const float *block, td_error *err);

/* Reads every tensor of the table into block. Each must be present with the
 * table's shape; tensors in the file that the table lacks are ignored (HF
 * files carry e.g. position_ids and the tied decoder weight), and their
 * names are counted in *n_ignored (may be NULL). A missing tensor or a shape
 * mismatch is TD_ERR_FORMAT naming the file and the tensor. */
td_status td_safetensors_read(const char *path, const td_tensor_info *tensors, int n_tensors,
                              float *block, int *n_ignored, td_error *err);

#endif
