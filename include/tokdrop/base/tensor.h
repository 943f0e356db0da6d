/* The table of named tensors that indexes one flat float block. Parameters,
 * gradients and optimizer moments share this layout, so the optimizer, the
 * allreduce, checkpoints and safetensors all walk the same table. */
#ifndef TOKDROP_TENSOR_H
#define TOKDROP_TENSOR_H

#include <stdbool.h>
#include <stdint.h>

#define TD_TENSOR_NAME_LEN 96

typedef struct {
    char name[TD_TENSOR_NAME_LEN]; /* Hugging Face BertForPreTraining name */
    int64_t offset;                /* first element in the flat block */
    int64_t n_elems;
    int ndim;                      /* 1 or 2 */
    int64_t shape[2];              /* row-major; Linear weights are [out, in] */
    bool no_decay;                 /* biases and LayerNorm: no weight decay, LAMB ratio 1 */
} td_tensor_info;

/* Index of the tensor called name, or -1. */
int td_tensor_find(const td_tensor_info *tensors, int n_tensors, const char *name);

#endif
