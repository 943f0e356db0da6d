/* LAMB and AdamW over the flat parameter block (SPEC section 3): global-norm
 * clipping, the moment updates, the per-tensor trust ratio, and the warmup +
 * polynomial-decay learning rate.
 *
 * Determinism: every reduction (gradient norm, ||w||, ||u||) is split into
 * chunks whose bounds depend only on the tensor's length, each chunk summed
 * in double in a fixed order, and the chunk sums added in chunk order. Threads
 * only decide who computes which chunk, so results are bit-identical for any
 * OMP_NUM_THREADS. Element-wise updates are independent and need no care. */
#include "tokdrop/nn/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tokdrop/base/error.h"

/* Chunking of one reduction: at most TD_OPTIM_MAX_CHUNKS partial sums (kept
 * on the stack, so the step allocates nothing) and no chunk shorter than
 * TD_OPTIM_MIN_CHUNK unless the whole array is, so small tensors (biases)
 * stay on one thread and the word embeddings (23M floats) split 256 ways. */
#define TD_OPTIM_MAX_CHUNKS 256
#define TD_OPTIM_MIN_CHUNK 4096
/* Independent double accumulators inside a chunk: breaks the add latency
 * chain (the compiler may not reorder a float sum by itself) while keeping a
 * fixed, thread-independent summation order. */
#define TD_OPTIM_LANES 8

/* Number of chunks and the chunk length for n elements. */
static int64_t chunk_layout(int64_t n, int64_t *chunk_len)
{
    int64_t n_chunks = (n + TD_OPTIM_MIN_CHUNK - 1) / TD_OPTIM_MIN_CHUNK;
    if (n_chunks > TD_OPTIM_MAX_CHUNKS) n_chunks = TD_OPTIM_MAX_CHUNKS;
    if (n_chunks < 1) n_chunks = 1;
    *chunk_len = (n + n_chunks - 1) / n_chunks;
    if (*chunk_len < 1) *chunk_len = 1;
    return n_chunks;
}

static double lanes_sum(const double *acc)
{
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* Sum of squares of x[0..n), in double, in a fixed order. */
static double sumsq_serial(const float *x, int64_t n)
{
    double acc[TD_OPTIM_LANES] = {0};
    int64_t i = 0;
    for (; i + TD_OPTIM_LANES <= n; i += TD_OPTIM_LANES)
        for (int j = 0; j < TD_OPTIM_LANES; j++) acc[j] += (double)x[i + j] * (double)x[i + j];
    double tail = 0;
    for (; i < n; i++) tail += (double)x[i] * (double)x[i];
    return lanes_sum(acc) + tail;
}

/* Sum of squares of x[0..n), chunked and threaded, thread-count independent. */
static double sumsq(const float *x, int64_t n)
{
    if (n <= 0) return 0.0;
    int64_t len;
    int64_t n_chunks = chunk_layout(n, &len);
    double part[TD_OPTIM_MAX_CHUNKS];
#pragma omp parallel for schedule(static) if (n_chunks > 1)
    for (int64_t c = 0; c < n_chunks; c++) {
        int64_t lo = c * len, hi = lo + len < n ? lo + len : n;
        part[c] = lo < hi ? sumsq_serial(x + lo, hi - lo) : 0.0;
    }
    double s = 0;
    for (int64_t c = 0; c < n_chunks; c++) s += part[c];
    return s;
}

double td_optim_norm(const float *x, int64_t n_elems)
{
    return sqrt(sumsq(x, n_elems));
}

/* Round n_bytes up to the alignment that aligned_alloc requires. */
static float *alloc_zeroed_aligned(int64_t n_elems)
{
    size_t n_bytes = (size_t)(n_elems > 0 ? n_elems : 1) * sizeof(float);
    n_bytes = (n_bytes + 63) / 64 * 64;
    float *p = aligned_alloc(64, n_bytes);
    TD_ASSERT(p != NULL);
    memset(p, 0, n_bytes);
    return p;
}

void td_optim_init(td_optim *opt, const td_optim_config *cfg, int64_t total_steps,
                   int64_t n_params)
{
    TD_ASSERT(opt != NULL && cfg != NULL);
    TD_ASSERT(n_params >= 0);
    memset(opt, 0, sizeof(*opt));
    opt->cfg = *cfg;
    opt->total_steps = total_steps;
    opt->n_params = n_params;
    opt->m = alloc_zeroed_aligned(n_params);
    opt->v = alloc_zeroed_aligned(n_params);
    opt->t = 0;
}

void td_optim_free(td_optim *opt)
{
    if (!opt) return;
    free(opt->m);
    free(opt->v);
    opt->m = NULL;
    opt->v = NULL;
}

double td_optim_lr(const td_optim_config *cfg, int64_t total_steps, int64_t t)
{
    int64_t warmup = cfg->warmup_steps > 0 ? cfg->warmup_steps : 0;
    if (warmup > 0 && t <= warmup) return cfg->lr * (double)t / (double)warmup;
    if (t > total_steps) t = total_steps;
    /* total <= warmup: no decay phase; after warmup the schedule has ended. */
    if (total_steps <= warmup) return cfg->end_lr;
    double frac = (double)(t - warmup) / (double)(total_steps - warmup);
    if (frac < 0) frac = 0; /* t < 1 with no warmup: the peak */
    return cfg->end_lr + (cfg->lr - cfg->end_lr) * pow(1.0 - frac, cfg->power);
}

/* The constants of one update, in float: the element-wise maths runs in
 * float like the reference implementations (NVIDIA's fused LAMB). */
typedef struct {
    float clip;           /* gradient scale, 1 when not clipping */
    float b1, one_m_b1;   /* beta1, 1 - beta1 */
    float b2, one_m_b2;   /* beta2, 1 - beta2 */
    float inv_bc1;        /* 1 / (1 - beta1^t) */
    float inv_bc2;        /* 1 / (1 - beta2^t) */
    float eps;
} step_consts;

/* The Adam direction with decoupled weight decay, from the updated moments.
 * Pass 1 and pass 2 of LAMB both call this on the same stored float m, v, w
 * with the same constants, so the recomputed u is bit-identical to the one
 * whose norm gave the trust ratio (the build is ISO C11, where GCC does not
 * contract a*b+c into an FMA, and inlining keeps one expression anyway).
 * The constants travel by value: a pointer to floats could alias the float
 * arrays being written, forcing reloads and runtime alias checks. */
static inline float adam_dir(float m, float v, float w, float wd, step_consts k)
{
    float mh = m * k.inv_bc1;
    float vh = v * k.inv_bc2;
    return mh / (sqrtf(vh) + k.eps) + wd * w;
}

/* Moments of element i from its clipped gradient, which is stored back since
 * the header promises grads come back clipped. The four arrays are distinct
 * (params, grads and our own m, v), hence restrict. */
static inline void moments(float *restrict g, float *restrict m, float *restrict v, int64_t i,
                           step_consts k)
{
    float gc = g[i] * k.clip;
    g[i] = gc;
    m[i] = k.b1 * m[i] + k.one_m_b1 * gc;
    v[i] = k.b2 * v[i] + k.one_m_b2 * gc * gc;
}

/* One pass for tensors whose ratio is fixed (AdamW, or no_decay under LAMB):
 * moments, direction and parameter update together. */
static void update_fixed_ratio(float *restrict w, float *restrict g, float *restrict m,
                               float *restrict v, int64_t n, float wd, float step, step_consts k)
{
    int64_t len;
    int64_t n_chunks = chunk_layout(n, &len);
#pragma omp parallel for schedule(static) if (n_chunks > 1)
    for (int64_t c = 0; c < n_chunks; c++) {
        int64_t lo = c * len, hi = lo + len < n ? lo + len : n;
        for (int64_t i = lo; i < hi; i++) {
            moments(g, m, v, i, k);
            w[i] -= step * adam_dir(m[i], v[i], w[i], wd, k);
        }
    }
}

/* LAMB pass 1 on a decayed tensor: moments, and the sums of squares of w and
 * of u (w is not yet changed), TD_OPTIM_LANES accumulators per chunk. */
static void lamb_pass1(const float *restrict w, float *restrict g, float *restrict m,
                       float *restrict v, int64_t n, float wd, step_consts k, double *w_sumsq,
                       double *u_sumsq)
{
    int64_t len;
    int64_t n_chunks = chunk_layout(n, &len);
    double part_w[TD_OPTIM_MAX_CHUNKS], part_u[TD_OPTIM_MAX_CHUNKS];
#pragma omp parallel for schedule(static) if (n_chunks > 1)
    for (int64_t c = 0; c < n_chunks; c++) {
        int64_t lo = c * len, hi = lo + len < n ? lo + len : n;
        double aw[TD_OPTIM_LANES] = {0}, au[TD_OPTIM_LANES] = {0};
        int64_t i = lo;
        for (; i + TD_OPTIM_LANES <= hi; i += TD_OPTIM_LANES) {
            for (int j = 0; j < TD_OPTIM_LANES; j++) {
                moments(g, m, v, i + j, k);
                double u = adam_dir(m[i + j], v[i + j], w[i + j], wd, k);
                aw[j] += (double)w[i + j] * (double)w[i + j];
                au[j] += u * u;
            }
        }
        double tw = 0, tu = 0;
        for (; i < hi; i++) {
            moments(g, m, v, i, k);
            double u = adam_dir(m[i], v[i], w[i], wd, k);
            tw += (double)w[i] * (double)w[i];
            tu += u * u;
        }
        part_w[c] = lanes_sum(aw) + tw;
        part_u[c] = lanes_sum(au) + tu;
    }
    double sw = 0, su = 0;
    for (int64_t c = 0; c < n_chunks; c++) {
        sw += part_w[c];
        su += part_u[c];
    }
    *w_sumsq = sw;
    *u_sumsq = su;
}

/* LAMB pass 2: recompute u from the stored moments (see adam_dir) and apply
 * it scaled by lr * trust ratio. */
static void lamb_pass2(float *restrict w, const float *restrict m, const float *restrict v,
                       int64_t n, float wd, float step, step_consts k)
{
    int64_t len;
    int64_t n_chunks = chunk_layout(n, &len);
#pragma omp parallel for schedule(static) if (n_chunks > 1)
    for (int64_t c = 0; c < n_chunks; c++) {
        int64_t lo = c * len, hi = lo + len < n ? lo + len : n;
        for (int64_t i = lo; i < hi; i++) w[i] -= step * adam_dir(m[i], v[i], w[i], wd, k);
    }
}

/* LAMB needs u twice: for ||u|| and, after the ratio is known, for the update.
 * We recompute u in pass 2 rather than keep it in a scratch buffer: the
 * buffer would be 94 MB per rank (BERT-base word embeddings) and would need
 * the table at init, which td_optim_init does not get; pass 2 moves 16 bytes
 * an element (read m, v, w, write w) against 20 for store-and-reload (write
 * u, read u and w, write w); and the recomputation is exact (adam_dir).
 * Measured on BERT-base (108.9M params, 1 thread, -O3 -march=native): with
 * -fno-math-errno, so that sqrtf vectorizes, recompute ~0.4 s a step against
 * ~0.78 s for a scratch variant; without it sqrtf keeps an errno branch, the
 * loops stay scalar and recompute is ~10-20% slower than the scratch.
 * Tensors with a fixed ratio (AdamW, no_decay) take one pass.
 *
 * A non-finite gradient norm (overflow, NaN from a bad batch) leaves
 * parameters and moments untouched (td_optim_skip) and is returned as is,
 * so the caller can report it without the state having been poisoned. */
void td_optim_skip(td_optim *opt, double *lr_out)
{
    opt->t += 1;
    if (lr_out) *lr_out = td_optim_lr(&opt->cfg, opt->total_steps, opt->t);
}

double td_optim_step(td_optim *opt, float *params, float *grads, const td_tensor_info *tensors,
                     int n_tensors, double *lr_out)
{
    TD_ASSERT(opt != NULL && opt->m != NULL && opt->v != NULL);
    TD_ASSERT(n_tensors >= 0);
    const td_optim_config *cfg = &opt->cfg;
    for (int i = 0; i < n_tensors; i++)
        TD_ASSERT(tensors[i].offset >= 0 && tensors[i].n_elems >= 0 &&
                  tensors[i].offset + tensors[i].n_elems <= opt->n_params);

    /* Global norm over the table's tensors (padding between them, if any, is
     * not a parameter), summed tensor by tensor in table order. */
    double total_sq = 0;
    for (int i = 0; i < n_tensors; i++)
        total_sq += sumsq(grads + tensors[i].offset, tensors[i].n_elems);
    double norm = sqrt(total_sq);
    if (!isfinite(norm)) {
        td_optim_skip(opt, lr_out);
        return norm;
    }

    double clip = 1.0;
    if (cfg->max_grad_norm > 0 && norm > cfg->max_grad_norm) clip = cfg->max_grad_norm / norm;

    opt->t += 1;
    double lr = td_optim_lr(cfg, opt->total_steps, opt->t);
    if (lr_out) *lr_out = lr;

    step_consts k = {
        .clip = (float)clip,
        .b1 = (float)cfg->beta1,
        .one_m_b1 = (float)(1.0 - cfg->beta1),
        .b2 = (float)cfg->beta2,
        .one_m_b2 = (float)(1.0 - cfg->beta2),
        .inv_bc1 = (float)(1.0 / (1.0 - pow(cfg->beta1, (double)opt->t))),
        .inv_bc2 = (float)(1.0 / (1.0 - pow(cfg->beta2, (double)opt->t))),
        .eps = (float)cfg->eps,
    };

    for (int i = 0; i < n_tensors; i++) {
        const td_tensor_info *ti = &tensors[i];
        int64_t off = ti->offset, n = ti->n_elems;
        float *w = params + off, *g = grads + off, *m = opt->m + off, *v = opt->v + off;
        float wd = ti->no_decay ? 0.0f : (float)cfg->weight_decay;
        if (cfg->name == TD_OPTIM_ADAMW || ti->no_decay) {
            update_fixed_ratio(w, g, m, v, n, wd, (float)lr, k);
            continue;
        }
        double w_sq, u_sq;
        lamb_pass1(w, g, m, v, n, wd, k, &w_sq, &u_sq);
        double w_norm = sqrt(w_sq), u_norm = sqrt(u_sq);
        double ratio = (w_norm > 0 && u_norm > 0) ? w_norm / u_norm : 1.0;
        lamb_pass2(w, m, v, n, wd, (float)(lr * ratio), k);
    }
    return norm;
}
