/* BERT kernels and their backward passes (see ops.h for the conventions).
 * Elementwise and per-row work is split over rows with OpenMP; reductions
 * that produce parameter gradients are split over columns, each column
 * summed over rows in a fixed order, so results do not depend on the
 * number of threads. */
#include "tokdrop/nn/ops.h"

#include <math.h>
#include <string.h>

#include "tokdrop/base/error.h"
#include "tokdrop/base/rng.h"
#include "nn/vecmath.h"

/* ---- helpers ----------------------------------------------------------- */

/* colsum (C) += sum over the N rows of x (N, C); columns split over threads. */
static void add_column_sums(float *colsum, const float *x, int64_t N, int64_t C)
{
    #pragma omp parallel for schedule(static)
    for (int64_t j0 = 0; j0 < C; j0 += 64) {
        int64_t j1 = j0 + 64 < C ? j0 + 64 : C;
        float acc[64] = {0};
        for (int64_t i = 0; i < N; i++)
            for (int64_t j = j0; j < j1; j++) acc[j - j0] += x[i * C + j];
        for (int64_t j = j0; j < j1; j++) colsum[j] += acc[j - j0];
    }
}

/* ---- linear ------------------------------------------------------------- */

void td_linear_forward(td_gemm_engine *eng, float *out, const float *in, const float *w, const float *b, int64_t N,
                       int64_t IN, int64_t OUT)
{
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N; i++) memcpy(out + i * OUT, b, (size_t)OUT * sizeof(float));
    td_gemm(eng, false, true, N, OUT, IN, 1.0f, in, IN, w, IN, 1.0f, out, OUT);
}

void td_linear_backward(td_gemm_engine *eng, float *din, float *dw, float *db, const float *dout, const float *in,
                        const float *w, int64_t N, int64_t IN, int64_t OUT)
{
    if (N == 0) return;
    td_gemm_engine_hold(eng, dout); /* read by both products */
    if (din) td_gemm(eng, false, false, N, IN, OUT, 1.0f, dout, OUT, w, IN, 1.0f, din, IN);
    td_gemm(eng, true, false, OUT, IN, N, 1.0f, dout, OUT, in, IN, 1.0f, dw, IN);
    td_gemm_engine_release(eng, dout);
    add_column_sums(db, dout, N, OUT);
}

/* ---- layer norm ----------------------------------------------------------- */

void td_layernorm_forward(float *out, float *mean, float *rstd, const float *in, const float *w,
                          const float *b, int64_t N, int64_t C, float eps)
{
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N; i++) {
        const float *x = in + i * C;
        float *y = out + i * C;
        float m = 0;
        for (int64_t j = 0; j < C; j++) m += x[j];
        m /= (float)C;
        float var = 0;
        for (int64_t j = 0; j < C; j++) var += (x[j] - m) * (x[j] - m);
        var /= (float)C;
        float s = 1.0f / sqrtf(var + eps);
        for (int64_t j = 0; j < C; j++) y[j] = (x[j] - m) * s * w[j] + b[j];
        mean[i] = m;
        rstd[i] = s;
    }
}

void td_layernorm_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                           const float *mean, const float *rstd, const float *w, int64_t N,
                           int64_t C)
{
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N; i++) {
        const float *x = in + i * C, *dy = dout + i * C;
        float m = mean[i], s = rstd[i];
        float mean_dxhat = 0, mean_dxhat_xhat = 0;
        for (int64_t j = 0; j < C; j++) {
            float dxhat = dy[j] * w[j];
            mean_dxhat += dxhat;
            mean_dxhat_xhat += dxhat * (x[j] - m) * s;
        }
        mean_dxhat /= (float)C;
        mean_dxhat_xhat /= (float)C;
        float *dx = din + i * C;
        for (int64_t j = 0; j < C; j++) {
            float xhat = (x[j] - m) * s;
            dx[j] += s * (dy[j] * w[j] - mean_dxhat - xhat * mean_dxhat_xhat);
        }
    }
    #pragma omp parallel for schedule(static)
    for (int64_t j0 = 0; j0 < C; j0 += 64) {
        int64_t j1 = j0 + 64 < C ? j0 + 64 : C;
        float gw[64] = {0}, gb[64] = {0};
        for (int64_t i = 0; i < N; i++) {
            const float *x = in + i * C, *dy = dout + i * C;
            for (int64_t j = j0; j < j1; j++) {
                gw[j - j0] += dy[j] * (x[j] - mean[i]) * rstd[i];
                gb[j - j0] += dy[j];
            }
        }
        for (int64_t j = j0; j < j1; j++) {
            dw[j] += gw[j - j0];
            db[j] += gb[j - j0];
        }
    }
}

/* ---- activations ------------------------------------------------------------ */

#define TD_SQRT_2_OVER_PI 0.7978845608028654f
#define TD_INV_SQRT_2 0.7071067811865476f
#define TD_INV_SQRT_2PI 0.3989422804014327f
#define TD_GELU_TANH_C 0.044715f

static inline float exp_by(td_math math, float x) { return math == TD_MATH_VECTOR ? td_vexpf(x) : expf(x); }
static inline float erf_by(td_math math, float x) { return math == TD_MATH_VECTOR ? td_verff(x) : erff(x); }
static inline float tanh_by(td_math math, float x)
{
    if (math == TD_MATH_LIBM) return tanhf(x);
    float e = td_vexpf(-2.0f * fabsf(x)); /* tanh|x| = (1 - e) / (1 + e), no overflow */
    return copysignf((1.0f - e) / (1.0f + e), x);
}

/* GELU of n values, the derivative too when dgelu: inlined with constant
 * act, math and want_d, so that each variant is its own vector loop (omp
 * simd: dgelu may be in itself, read before written). */
static inline void gelu_kernel(float *out, float *dgelu, const float *in, int64_t n, td_act act,
                               td_math math, bool want_d)
{
    if (act == TD_ACT_GELU) {
        #pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            float x = in[i];
            float e = erf_by(math, x * TD_INV_SQRT_2);
            out[i] = 0.5f * x * (1.0f + e);
            if (want_d) {
                float cdf = 0.5f * (1.0f + e);
                float pdf = TD_INV_SQRT_2PI * exp_by(math, -0.5f * x * x);
                dgelu[i] = cdf + x * pdf;
            }
        }
    } else {
        #pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            float x = in[i];
            float t = tanh_by(math, TD_SQRT_2_OVER_PI * (x + TD_GELU_TANH_C * x * x * x));
            out[i] = 0.5f * x * (1.0f + t);
            if (want_d) {
                float dt = TD_SQRT_2_OVER_PI * (1.0f + 3.0f * TD_GELU_TANH_C * x * x);
                dgelu[i] = 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * dt;
            }
        }
    }
}

void td_gelu_forward(float *out, float *dgelu, const float *in, int64_t n_elems, td_act act,
                     td_math math)
{
    const int64_t chunk = 4096;
    #pragma omp parallel for schedule(static)
    for (int64_t i0 = 0; i0 < n_elems; i0 += chunk) {
        int64_t n = n_elems - i0 < chunk ? n_elems - i0 : chunk;
        float *o = out + i0, *d = dgelu ? dgelu + i0 : NULL;
        const float *x = in + i0;
        bool erf_form = act == TD_ACT_GELU, vec = math == TD_MATH_VECTOR;
        if (erf_form && vec) {
            if (d) gelu_kernel(o, d, x, n, TD_ACT_GELU, TD_MATH_VECTOR, true);
            else gelu_kernel(o, d, x, n, TD_ACT_GELU, TD_MATH_VECTOR, false);
        } else if (erf_form) {
            if (d) gelu_kernel(o, d, x, n, TD_ACT_GELU, TD_MATH_LIBM, true);
            else gelu_kernel(o, d, x, n, TD_ACT_GELU, TD_MATH_LIBM, false);
        } else if (vec) {
            if (d) gelu_kernel(o, d, x, n, TD_ACT_GELU_TANH, TD_MATH_VECTOR, true);
            else gelu_kernel(o, d, x, n, TD_ACT_GELU_TANH, TD_MATH_VECTOR, false);
        } else {
            if (d) gelu_kernel(o, d, x, n, TD_ACT_GELU_TANH, TD_MATH_LIBM, true);
            else gelu_kernel(o, d, x, n, TD_ACT_GELU_TANH, TD_MATH_LIBM, false);
        }
    }
}

void td_gelu_backward(float *din, const float *dout, const float *dgelu, int64_t n_elems)
{
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n_elems; i++) din[i] += dout[i] * dgelu[i];
}

void td_tanh_forward(float *out, const float *in, int64_t n_elems)
{
    for (int64_t i = 0; i < n_elems; i++) out[i] = tanhf(in[i]);
}

void td_tanh_backward(float *din, const float *dout, const float *out, int64_t n_elems)
{
    for (int64_t i = 0; i < n_elems; i++) din[i] += dout[i] * (1.0f - out[i] * out[i]);
}

/* ---- dropout ------------------------------------------------------------------ */

/* Scale of element c of row r of sequence b: 0 when dropped, 1/(1-p) kept. */
static inline float dropout_scale(uint64_t key, uint64_t counter, float p, float inv_keep)
{
    return td_rng_uniform(key, counter) < p ? 0.0f : inv_keep;
}

/* Forward (dout_for_bwd NULL): out = in * scale. Backward: out += dout *
 * scale, the same scales regenerated. Loops written so they vectorize. */
static void dropout_apply(float *out, const float *in, const float *dout_for_bwd,
                          const td_dropout_ctx *ctx, int64_t B, int64_t Tq, int64_t C)
{
    const float p = ctx->p, inv_keep = 1.0f / (1.0f - ctx->p);
    #pragma omp parallel for schedule(static)
    for (int64_t br = 0; br < B * Tq; br++) {
        int64_t b = br / Tq, r = br % Tq;
        uint64_t key = td_rng_key(ctx->seed, ctx->step, (uint64_t)ctx->sample_ids[b], ctx->site);
        uint64_t base = (uint64_t)((ctx->rows_pos ? ctx->rows_pos[b * Tq + r] : r) * C);
        float *o = out + br * C;
        if (dout_for_bwd) {
            const float *d = dout_for_bwd + br * C;
            for (int64_t c = 0; c < C; c++) o[c] += d[c] * dropout_scale(key, base + (uint64_t)c, p, inv_keep);
        } else {
            const float *x = in + br * C;
            for (int64_t c = 0; c < C; c++) o[c] = x[c] * dropout_scale(key, base + (uint64_t)c, p, inv_keep);
        }
    }
}

void td_dropout_forward(float *out, const float *in, const td_dropout_ctx *ctx, int64_t B,
                        int64_t Tq, int64_t C)
{
    if (ctx->p <= 0.0f) {
        if (out != in) memcpy(out, in, (size_t)(B * Tq * C) * sizeof(float));
        return;
    }
    dropout_apply(out, in, NULL, ctx, B, Tq, C);
}

void td_dropout_backward(float *din, const float *dout, const td_dropout_ctx *ctx, int64_t B,
                         int64_t Tq, int64_t C)
{
    if (ctx->p <= 0.0f) {
        for (int64_t i = 0; i < B * Tq * C; i++) din[i] += dout[i];
        return;
    }
    dropout_apply(din, NULL, dout, ctx, B, Tq, C);
}

/* ---- attention ----------------------------------------------------------------- */

/* Scales each row of the attention probabilities of (b, h) by its dropout
 * mask / (1 - p): x (Tq, Tk). Counters use original query/key positions. */
static void attention_dropout_rows(float *x, const float *src, const td_dropout_ctx *drop,
                                   int64_t b, int64_t h, int64_t Tq, int64_t Tk)
{
    const float p = drop->p, inv_keep = 1.0f / (1.0f - drop->p);
    uint64_t key = td_rng_key(drop->seed, drop->step, (uint64_t)drop->sample_ids[b], drop->site);
    uint64_t T = (uint64_t)drop->T_full;
    const int32_t *kpos = drop->keys_pos ? drop->keys_pos + b * Tk : NULL;
    for (int64_t i = 0; i < Tq; i++) {
        uint64_t qpos = drop->rows_pos ? (uint64_t)drop->rows_pos[b * Tq + i] : (uint64_t)i;
        uint64_t row = ((uint64_t)h * T + qpos) * T;
        float *xi = x + i * Tk;
        const float *si = src + i * Tk;
        if (kpos)
            for (int64_t j = 0; j < Tk; j++)
                xi[j] = si[j] * dropout_scale(key, row + (uint64_t)kpos[j], p, inv_keep);
        else
            for (int64_t j = 0; j < Tk; j++)
                xi[j] = si[j] * dropout_scale(key, row + (uint64_t)j, p, inv_keep);
    }
}

/* One (sequence, head) pair a thread: the pairs are independent (each
 * writes its own columns of ctx, dq, dk, dv and its own probabilities), so
 * they run in parallel, each product single-threaded inside (td_gemm in a
 * parallel region); the same operations for any thread count. */
void td_attention_forward(td_gemm_engine *eng, float *ctx, float *p, float *pd, const float *q,
                          const float *k, const float *v, const float *key_bias,
                          const td_dropout_ctx *drop, int64_t B, int64_t Tq, int64_t Tk, int64_t A,
                          int64_t D, td_math math)
{
    const int64_t H = A * D;
    const float scale = 1.0f / sqrtf((float)D);
    #pragma omp parallel for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < B * A; bh++) {
        const int64_t b = bh / A, h = bh % A;
        const float *qbh = q + b * Tq * H + h * D;
        const float *kbh = k + b * Tk * H + h * D;
        const float *vbh = v + b * Tk * H + h * D;
        float *pbh = p + bh * Tq * Tk;
        float *pdbh = pd + bh * Tq * Tk;
        td_gemm(eng, false, true, Tq, Tk, D, scale, qbh, H, kbh, H, 0.0f, pbh, Tk);
        const float *bias = key_bias + b * Tk;
        for (int64_t i = 0; i < Tq; i++) {
            float *row = pbh + i * Tk;
            float mx = -INFINITY;
            for (int64_t j = 0; j < Tk; j++) {
                row[j] += bias[j];
                if (row[j] > mx) mx = row[j];
            }
            /* exp first (vectorizes), then the sum in order */
            for (int64_t j = 0; j < Tk; j++) row[j] = exp_by(math, row[j] - mx);
            float sum = 0;
            for (int64_t j = 0; j < Tk; j++) sum += row[j];
            float inv = 1.0f / sum;
            for (int64_t j = 0; j < Tk; j++) row[j] *= inv;
        }
        if (drop->p > 0.0f) attention_dropout_rows(pdbh, pbh, drop, b, h, Tq, Tk);
        else if (pdbh != pbh) memcpy(pdbh, pbh, (size_t)(Tq * Tk) * sizeof(float));
        td_gemm(eng, false, false, Tq, D, Tk, 1.0f, pdbh, Tk, vbh, H, 0.0f, ctx + b * Tq * H + h * D, H);
    }
}

void td_attention_backward(td_gemm_engine *eng, float *dq, float *dk, float *dv, float *scratch,
                           const float *dctx, const float *p, const float *pd, const float *q,
                           const float *k, const float *v, const td_dropout_ctx *drop, int64_t B,
                           int64_t Tq, int64_t Tk, int64_t A, int64_t D)
{
    const int64_t H = A * D;
    const float scale = 1.0f / sqrtf((float)D);
    #pragma omp parallel for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < B * A; bh++) {
        const int64_t b = bh / A, h = bh % A;
        const int64_t qo = b * Tq * H + h * D, ko = b * Tk * H + h * D;
        const float *pbh = p + bh * Tq * Tk;
        const float *pdbh = pd + bh * Tq * Tk;
        float *ds = scratch + bh * Tq * Tk; /* (Tq, Tk): dPd, then dP, then dS */
        /* dV += Pd^T dctx ; dPd = dctx V^T */
        td_gemm(eng, true, false, Tk, D, Tq, 1.0f, pdbh, Tk, dctx + qo, H, 1.0f, dv + ko, H);
        td_gemm(eng, false, true, Tq, Tk, D, 1.0f, dctx + qo, H, v + ko, H, 0.0f, ds, Tk);
        if (drop->p > 0.0f) attention_dropout_rows(ds, ds, drop, b, h, Tq, Tk);
        /* softmax backward: dS = P * (dP - sum_j dP P) */
        for (int64_t i = 0; i < Tq; i++) {
            const float *prow = pbh + i * Tk;
            float *drow = ds + i * Tk;
            float dot = 0;
            for (int64_t j = 0; j < Tk; j++) dot += drow[j] * prow[j];
            for (int64_t j = 0; j < Tk; j++) drow[j] = prow[j] * (drow[j] - dot);
        }
        /* dQ += scale dS K ; dK += scale dS^T Q */
        td_gemm(eng, false, false, Tq, D, Tk, scale, ds, Tk, k + ko, H, 1.0f, dq + qo, H);
        td_gemm(eng, true, false, Tk, D, Tq, scale, ds, Tk, q + qo, H, 1.0f, dk + ko, H);
    }
}

/* ---- embeddings ------------------------------------------------------------------- */

void td_embeddings_forward(float *out, const int32_t *ids, const int32_t *segments,
                           const float *word, const float *pos, const float *type, int64_t B,
                           int64_t T, int64_t C)
{
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < B * T; i++) {
        const float *w = word + (int64_t)ids[i] * C;
        const float *p = pos + (i % T) * C;
        const float *s = type + (int64_t)segments[i] * C;
        for (int64_t c = 0; c < C; c++) out[i * C + c] = w[c] + p[c] + s[c];
    }
}

void td_embeddings_backward(float *dword, float *dpos, float *dtype, const float *dout,
                            const int32_t *ids, const int32_t *segments, int64_t B, int64_t T,
                            int64_t C)
{
    /* Rows may share an id, so the scatter-add runs in row order; columns
     * are independent and split over threads (same sums for any count). */
    #pragma omp parallel for schedule(static)
    for (int64_t c0 = 0; c0 < C; c0 += 64) {
        int64_t c1 = c0 + 64 < C ? c0 + 64 : C;
        for (int64_t i = 0; i < B * T; i++) {
            const float *d = dout + i * C;
            float *w = dword + (int64_t)ids[i] * C;
            float *p = dpos + (i % T) * C;
            float *s = dtype + (int64_t)segments[i] * C;
            for (int64_t c = c0; c < c1; c++) {
                w[c] += d[c];
                p[c] += d[c];
                s[c] += d[c];
            }
        }
    }
}

/* ---- cross-entropy ---------------------------------------------------------------- */

void td_crossentropy_forward(float *loss, uint8_t *correct, float *logits_to_probs,
                             const int32_t *labels, int64_t N, int64_t V, td_math math)
{
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N; i++) {
        float *row = logits_to_probs + i * V;
        int64_t arg = 0;
        float mx = row[0];
        for (int64_t j = 1; j < V; j++)
            if (row[j] > mx) {
                mx = row[j];
                arg = j;
            }
        float label_logit = row[labels[i]];
        for (int64_t j = 0; j < V; j++) row[j] = exp_by(math, row[j] - mx);
        double sum = 0;
        for (int64_t j = 0; j < V; j++) sum += row[j];
        float inv = (float)(1.0 / sum);
        for (int64_t j = 0; j < V; j++) row[j] *= inv;
        loss[i] = (float)(log(sum) - (double)(label_logit - mx));
        correct[i] = arg == labels[i];
    }
}

void td_crossentropy_backward(float *dlogits, const float *probs, const int32_t *labels,
                              const float *scale, int64_t N, int64_t V)
{
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N; i++) {
        float s = scale[i];
        for (int64_t j = 0; j < V; j++) dlogits[i * V + j] += probs[i * V + j] * s;
        dlogits[i * V + labels[i]] -= s;
    }
}
