/* BERT for pretraining (SPEC section 1) with the token-dropping layer
 * schedule (SPEC section 2): the parameter table under Hugging Face names,
 * one flat block of parameters and one of gradients, the activation arena,
 * and the forward and backward of the whole network.
 *
 * Size letters: V vocab, H hidden, L layers, A heads, D = H/A, I
 * intermediate, B sequences, T positions, K kept positions, R real masked
 * predictions in the micro-batch, N = B*T rows. */
#ifndef TOKDROP_MODEL_H
#define TOKDROP_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "tokdrop/base/error.h"
#include "tokdrop/nn/gemm.h"
#include "tokdrop/nn/ops.h"
#include "tokdrop/base/tensor.h"
#include "tokdrop/nn/batch.h"

typedef struct {
    char vocab[TD_PATH_LEN];
    int64_t vocab_size;
    int64_t hidden;
    int64_t layers;
    int64_t heads;
    int64_t intermediate;
    int64_t max_position;
    int64_t type_vocab;
    td_act hidden_act;
    double hidden_dropout;
    double attention_dropout;
    double initializer_range;
    char init[TD_PATH_LEN];
} td_model_config;


#define TD_LAYERNORM_EPS 1e-12f

/* Pointers to one encoder layer's tensors inside a flat block. */
typedef struct {
    float *q_w, *q_b, *k_w, *k_b, *v_w, *v_b;  /* (H, H), (H) */
    float *ao_w, *ao_b;                        /* attention.output.dense (H, H), (H) */
    float *ln1_w, *ln1_b;                      /* attention.output.LayerNorm (H) */
    float *ff1_w, *ff1_b;                      /* intermediate.dense (I, H), (I) */
    float *ff2_w, *ff2_b;                      /* output.dense (H, I), (H) */
    float *ln2_w, *ln2_b;                      /* output.LayerNorm (H) */
} td_layer_tensors;

/* Pointers to every tensor inside a flat block (params or grads). */
typedef struct {
    float *word, *pos, *type;       /* (V, H), (P, H), (type_vocab, H) */
    float *emb_ln_w, *emb_ln_b;     /* (H) */
    td_layer_tensors *layers;       /* (L) */
    float *pool_w, *pool_b;         /* (H, H), (H) */
    float *tr_w, *tr_b;             /* cls.predictions.transform.dense (H, H), (H) */
    float *tr_ln_w, *tr_ln_b;       /* (H) */
    float *mlm_bias;                /* cls.predictions.bias (V); decoder tied to word */
    float *nsp_w, *nsp_b;           /* cls.seq_relationship (2, H), (2) */
} td_model_tensors;

typedef struct td_model_acts td_model_acts; /* activation arena, private to model.c */

typedef struct {
    td_model_config cfg;
    int64_t V, H, L, A, D, I, P;
    int64_t cap_B, cap_T, cap_pred;  /* arena capacity: sequences, positions, max_pred */

    td_tensor_info *tensors;
    int n_tensors;
    int64_t n_params;  /* elements of the flat blocks, padding included */
    float *params;     /* (n_params) 64-byte aligned */
    float *grads;      /* (n_params) same layout */
    td_model_tensors p, g;

    td_model_acts *acts;
    size_t acts_bytes;    /* the activation arena: what a forward keeps for the backward, and scratch */
    td_gemm_engine *gemm; /* runs every matrix product; NULL = fp32 */
    td_math math;         /* exp/erf/tanh: libm in fp32, vectorized in bf16 (ops.h) */
} td_model;

/* Builds the tensor table and allocates parameters, gradients and the
 * activation arena for micro-batches of up to B sequences of T positions
 * with max_pred predictions each. Parameters start at zero. */
td_status td_model_init(td_model *model, const td_model_config *cfg, int64_t B, int64_t T,
                        int64_t max_pred, td_error *err);
void td_model_free(td_model *model);

/* Hugging Face initialization: weights and embeddings N(0, initializer_range),
 * biases 0, LayerNorm weights 1; a pure function of the seed. */
void td_model_init_weights(td_model *model, uint64_t seed);

void td_model_zero_grads(td_model *model);

/* Runs the model's matrix products in precision (SPEC section 9; the model
 * starts in fp32): bf16 keeps a bf16 copy of the parameters, rounded at the
 * next forward. Call td_model_params_changed after every change of the
 * parameters (an update, a load) so that the copy follows. */
td_status td_model_set_precision(td_model *model, td_precision precision, td_error *err);
void td_model_params_changed(td_model *model);

/* What one forward needs besides the parameters. */
typedef struct {
    const td_batch *batch;
    const int32_t *kept;  /* (B, keep) kept positions, ascending; NULL = no dropping */
    int64_t keep;
    int64_t first_layer;
    bool training;        /* dropout on */
    uint64_t seed, step;  /* dropout streams (SPEC section 4) */
    float mlm_scale;      /* 1 / masked predictions of the global batch */
    float nsp_scale;      /* 1 / sequences of the global batch */
} td_forward_args;

typedef struct {
    double mlm_loss_sum;  /* sum of CE over weighted predictions */
    double nsp_loss_sum;  /* sum of NSP CE over sequences */
    int64_t n_masked;     /* weighted predictions */
    int64_t mlm_correct;
    int64_t nsp_correct;
    int64_t n_seq;
    const float *pred_loss; /* (B, max_pred) CE of each prediction slot, 0 where weight 0;
                               valid until the next forward */
} td_forward_stats;

/* Forward of the micro-batch; keeps what the backward needs. */
void td_model_forward(td_model *model, const td_forward_args *args, td_forward_stats *stats);

/* Called during the backward each time a contiguous range of the gradient
 * block [offset, offset + n_elems) is final: first the heads (pooler and
 * cls.*, except the tied word embeddings), then each encoder layer from the
 * last to the first, then the embeddings. Lets the caller start reducing a
 * layer's gradients while the layers below are still in backward. */
typedef void (*td_grads_ready_fn)(void *ctx, int64_t offset, int64_t n_elems);

/* Backward of the last forward: grads += d(mlm_scale * sum CE_mlm +
 * nsp_scale * sum CE_nsp) / d(params). ready (may be NULL) is called as
 * ranges become final. */
void td_model_backward(td_model *model, td_grads_ready_fn ready, void *ready_ctx);

/* The range of the gradient block holding encoder layer l's tensors, the
 * heads' tensors (pooler and cls.*), and the embeddings' tensors. */
void td_model_layer_range(const td_model *model, int64_t l, int64_t *offset, int64_t *n_elems);
void td_model_heads_range(const td_model *model, int64_t *offset, int64_t *n_elems);
void td_model_embeddings_range(const td_model *model, int64_t *offset, int64_t *n_elems);

#endif
