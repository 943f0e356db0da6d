/* Kernels of BERT, each a _forward/_backward pair: the matrix product
 * engine first where there are products (gemm.h), outputs, const inputs
 * after, sizes last. Every backward ACCUMULATES (+=) into every
 * gradient it writes, parameter or activation; the caller zeroes gradient
 * buffers once. Matrices are row-major. Size letters:
 *   N rows (tokens), C channels, B sequences, Tq query rows and Tk key rows
 *   per sequence, A heads, D head size, V vocabulary. */
#ifndef TOKDROP_OPS_H
#define TOKDROP_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "tokdrop/nn/gemm.h"

typedef enum { TD_ACT_GELU = 0, TD_ACT_GELU_TANH } td_act;

/* How exp, erf and tanh are computed: by libm (the fp32 path, exact to
 * libm's half ulp) or by branch-free polynomials within a few ulps that the
 * compiler vectorizes (the bf16 path; see src/nn/vecmath.h). */
typedef enum { TD_MATH_LIBM = 0, TD_MATH_VECTOR } td_math;

/* out (N, OUT) = in (N, IN) w^T + b, with w (OUT, IN) as Hugging Face stores it. */
void td_linear_forward(td_gemm_engine *eng, float *out, const float *in, const float *w, const float *b, int64_t N,
                       int64_t IN, int64_t OUT);
/* din (N, IN) += dout w; dw (OUT, IN) += dout^T in; db (OUT) += sum of dout rows.
 * din may be NULL (no input gradient wanted). */
void td_linear_backward(td_gemm_engine *eng, float *din, float *dw, float *db, const float *dout, const float *in,
                        const float *w, int64_t N, int64_t IN, int64_t OUT);

/* out = LN(in) w + b over the last dimension (eps as given); mean and rstd
 * (N) are kept for the backward. */
void td_layernorm_forward(float *out, float *mean, float *rstd, const float *in, const float *w,
                          const float *b, int64_t N, int64_t C, float eps);
void td_layernorm_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                           const float *mean, const float *rstd, const float *w, int64_t N,
                           int64_t C);

/* GELU, exact (erf) or the tanh approximation, elementwise over n values;
 * dgelu (may be NULL, may equal in) receives gelu'(in) for the backward,
 * so that the backward needs no erf or exp of its own. */
void td_gelu_forward(float *out, float *dgelu, const float *in, int64_t n_elems, td_act act,
                     td_math math);
/* din += dout * dgelu */
void td_gelu_backward(float *din, const float *dout, const float *dgelu, int64_t n_elems);

/* tanh, elementwise; the backward uses the output. */
void td_tanh_forward(float *out, const float *in, int64_t n_elems);
void td_tanh_backward(float *din, const float *dout, const float *out, int64_t n_elems);

/* Where the random numbers of a dropout come from (SPEC section 4): stream
 * td_rng_key(seed, step, sample_ids[b], site), and inside it a counter from
 * the ORIGINAL positions of the rows, so that processing a subset of a
 * sequence's tokens draws the same mask for them as the full sequence. */
typedef struct {
    float p;                   /* drop probability; 0 = identity */
    uint64_t seed, step, site;
    const int64_t *sample_ids; /* (B) */
    const int32_t *rows_pos;   /* (B, Tq) original position of each row; NULL = row index */
    const int32_t *keys_pos;   /* (B, Tk) for attention dropout; NULL = key index */
    int64_t T_full;            /* positions per sequence, for counter strides */
} td_dropout_ctx;

/* out (B, Tq, C) = in * keep / (1 - p); out may equal in. */
void td_dropout_forward(float *out, const float *in, const td_dropout_ctx *ctx, int64_t B,
                        int64_t Tq, int64_t C);
/* din += dout * keep / (1 - p), the same mask regenerated. */
void td_dropout_backward(float *din, const float *dout, const td_dropout_ctx *ctx, int64_t B,
                         int64_t Tq, int64_t C);

/* Multi-head scaled dot-product attention, one sequence b at a time:
 *   S = Q K^T / sqrt(D) + key_bias[b], P = softmax(S), Pd = dropout(P), ctx = Pd V
 * q (B, Tq, A*D), k and v (B, Tk, A*D), key_bias (B, Tk) additive (0 or -10000),
 * p and pd (B, A, Tq, Tk); pd may equal p when attention dropout is 0. */
void td_attention_forward(td_gemm_engine *eng, float *ctx, float *p, float *pd, const float *q, const float *k,
                          const float *v, const float *key_bias, const td_dropout_ctx *drop,
                          int64_t B, int64_t Tq, int64_t Tk, int64_t A, int64_t D, td_math math);
/* dq, dk, dv += gradients from dctx; scratch holds B * A * Tq * Tk floats. */
void td_attention_backward(td_gemm_engine *eng, float *dq, float *dk, float *dv, float *scratch, const float *dctx,
                           const float *p, const float *pd, const float *q, const float *k,
                           const float *v, const td_dropout_ctx *drop, int64_t B, int64_t Tq,
                           int64_t Tk, int64_t A, int64_t D);

/* out (B*T, C) = word[ids] + pos[t] + type[segments]. */
void td_embeddings_forward(float *out, const int32_t *ids, const int32_t *segments,
                           const float *word, const float *pos, const float *type, int64_t B,
                           int64_t T, int64_t C);
void td_embeddings_backward(float *dword, float *dpos, float *dtype, const float *dout,
                            const int32_t *ids, const int32_t *segments, int64_t B, int64_t T,
                            int64_t C);

/* Softmax cross-entropy over V classes for N rows: logits are replaced by
 * probabilities; loss (N) gets -log p[label]; correct (N) whether the
 * arg-max (first maximum) equals the label. */
void td_crossentropy_forward(float *loss, uint8_t *correct, float *logits_to_probs,
                             const int32_t *labels, int64_t N, int64_t V, td_math math);
/* dlogits += (probs - onehot(label)) * scale[row]. */
void td_crossentropy_backward(float *dlogits, const float *probs, const int32_t *labels,
                              const float *scale, int64_t N, int64_t V);

#endif
