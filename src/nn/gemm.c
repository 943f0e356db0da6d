/* The matrix product engines: fp32 through OpenBLAS, bf16 through oneDNN
 * (see gemm.h). */
#include "tokdrop/nn/gemm.h"

#include <cblas.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokdrop/nn/blas.h"
#include "tokdrop/base/report.h"

/* Threads never change results (SPEC section 4), but the libraries' own
 * threading does (OpenBLAS's AVX2 sgemm differs by an ulp between 1 and 2
 * threads; oneDNN plans its loops, and may split K, by the thread count).
 * So each library call is single-threaded and C is split into blocks whose
 * sizes depend only on the shape, run in parallel by OpenMP: each element
 * sees the same sequence of operations whatever the thread count. */
#define TD_GEMM_BLOCK 256

/* ---- bf16 rounding ------------------------------------------------------------ */

typedef uint16_t bf16;

/* Round to nearest even; a NaN stays a (quiet) NaN. Branch-free, so the
 * loops over whole matrices vectorize. */
static inline bf16 bf16_from_float(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof(u));
    uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    uint32_t nan = (u >> 16) | 0x40u;
    return (bf16)((u & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
}

float td_bf16_round(float x)
{
    uint32_t u = (uint32_t)bf16_from_float(x) << 16;
    float y;
    memcpy(&y, &u, sizeof(y));
    return y;
}

/* dst (rows, cols) dense = src (rows, cols) with leading dimension ld, rounded. */
static void round_matrix(bf16 *dst, const float *src, int64_t rows, int64_t cols, int64_t ld)
{
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) dst[i * cols + j] = bf16_from_float(src[i * ld + j]);
}

/* ---- the oneDNN side: primitives cached by shape ------------------------------ */

/* What makes two products the same primitive. */
typedef struct {
    int64_t M, N, K, lda, ldb, ldc;
    bool trans_a, trans_b;
    float alpha, beta;
} prim_key;

typedef struct {
    prim_key key;
    bool used;
    dnnl_primitive_t prim;
    dnnl_memory_desc_t a_md, b_md, c_md;
    size_t scratch_bytes;
} prim_entry;

#define PRIM_CACHE_SLOTS 4096 /* power of two; a full cache is emptied and refilled */
#define TD_MAX_THREADS 256

/* What each thread that calls td_gemm or runs its blocks owns, so that
 * products may be issued from several threads at once (attention runs one
 * product per head, heads in parallel). */
typedef struct {
    dnnl_stream_t stream;
    void *scratch; /* oneDNN scratchpad */
    size_t scratch_bytes;
    bf16 *a16, *b16; /* operands rounded for this thread's current product */
    size_t a16_cap, b16_cap;
} thread_state;

struct td_gemm_engine {
    td_precision precision;
    char kernels[128];
    /* bf16 only */
    dnnl_engine_t dnnl;
    thread_state threads[TD_MAX_THREADS]; /* indexed by thread_slot() */
    prim_entry *cache;                    /* shared; under omp critical(td_gemm_cache) */
    int cache_used;
    prim_entry **overflow; /* made while the cache was full inside a parallel region */
    int n_overflow;
    struct held_operand {   /* td_gemm_engine_hold: a matrix rounded once for several products */
        const float *src;   /* NULL: slot free */
        bool valid;         /* buf holds src rounded as rows x cols, leading dimension ld */
        int64_t rows, cols, ld;
        bf16 *buf;
        size_t cap;
    } held[2];
    const float *mirror_of; /* the mirrored fp32 block, its bf16 copy, size */
    bf16 *mirror;
    int64_t mirror_n;
    bool mirror_stale;
};

/* A small number for the calling OS thread, the same for its whole life:
 * OpenMP's thread number is 0 again inside a nested (serialized) region,
 * so it cannot tell the threads of an outer region apart there. */
static int thread_slot(void)
{
    static int next_slot;
    static _Thread_local int slot = -1;
    if (slot < 0) {
        #pragma omp atomic capture
        slot = next_slot++;
        TD_ASSERT(slot < TD_MAX_THREADS);
    }
    return slot;
}

static bool key_equal(const prim_key *a, const prim_key *b)
{
    return a->M == b->M && a->N == b->N && a->K == b->K && a->lda == b->lda && a->ldb == b->ldb &&
           a->ldc == b->ldc && a->trans_a == b->trans_a && a->trans_b == b->trans_b &&
           a->alpha == b->alpha && a->beta == b->beta;
}

static uint64_t key_hash(const prim_key *k)
{
    uint64_t h = 0x9e3779b97f4a7c15ull;
    const int64_t v[] = {k->M, k->N, k->K, k->lda, k->ldb, k->ldc, k->trans_a, k->trans_b};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) h = (h ^ (uint64_t)v[i]) * 0x100000001b3ull;
    uint32_t a, b;
    memcpy(&a, &k->alpha, sizeof(a));
    memcpy(&b, &k->beta, sizeof(b));
    return ((h ^ a) * 0x100000001b3ull ^ b) * 0x100000001b3ull;
}

#define DNNL_CHECK(call) \
    do { \
        dnnl_status_t s_ = (call); \
        if (s_ != dnnl_success) { \
            td_report(TD_REPORT_FATAL, "oneDNN: %s failed with status %d", #call, (int)s_); \
            TD_ASSERT(!"oneDNN call failed"); \
        } \
    } while (0)

/* Empties the cache. Only where no other thread may be running one of its
 * primitives: outside any active parallel region. */
static void cache_clear(td_gemm_engine *e)
{
    for (int i = 0; i < PRIM_CACHE_SLOTS; i++)
        if (e->cache[i].used) dnnl_primitive_destroy(e->cache[i].prim);
    memset(e->cache, 0, PRIM_CACHE_SLOTS * sizeof(*e->cache));
    e->cache_used = 0;
    for (int i = 0; i < e->n_overflow; i++) {
        dnnl_primitive_destroy(e->overflow[i]->prim);
        free(e->overflow[i]);
    }
    free(e->overflow);
    e->overflow = NULL;
    e->n_overflow = 0;
}

/* A row-major matrix of rows x cols with leading dimension ld, read as its
 * transpose when trans (oneDNN takes the transpose as swapped strides). */
static void matrix_md(dnnl_memory_desc_t *md, int64_t rows, int64_t cols, int64_t ld, bool trans,
                      dnnl_data_type_t type)
{
    dnnl_dims_t dims = {rows, cols};
    dnnl_dims_t strides = {ld, 1};
    if (trans) {
        strides[0] = 1;
        strides[1] = ld;
    }
    DNNL_CHECK(dnnl_memory_desc_init_by_strides(md, 2, dims, type, strides));
}

/* Fills pe with the primitive for key. Creation happens outside any
 * parallel region with OpenMP limited to one thread, so oneDNN plans for
 * the single thread each block runs on. */
static dnnl_status_t create_primitive(td_gemm_engine *e, const prim_key *k, prim_entry *pe)
{
    pe->key = *k;
    matrix_md(&pe->a_md, k->M, k->K, k->lda, k->trans_a, dnnl_bf16);
    matrix_md(&pe->b_md, k->K, k->N, k->ldb, k->trans_b, dnnl_bf16);
    matrix_md(&pe->c_md, k->M, k->N, k->ldc, false, dnnl_f32);
    dnnl_matmul_desc_t desc;
    DNNL_CHECK(dnnl_matmul_desc_init(&desc, &pe->a_md, &pe->b_md, NULL, &pe->c_md));
    dnnl_primitive_attr_t attr;
    DNNL_CHECK(dnnl_primitive_attr_create(&attr));
    DNNL_CHECK(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
    if (k->alpha != 1.0f) DNNL_CHECK(dnnl_primitive_attr_set_output_scales(attr, 1, 0, &k->alpha));
    dnnl_post_ops_t ops = NULL;
    if (k->beta != 0.0f) {
        DNNL_CHECK(dnnl_post_ops_create(&ops));
        DNNL_CHECK(dnnl_post_ops_append_sum(ops, k->beta));
        DNNL_CHECK(dnnl_primitive_attr_set_post_ops(attr, ops));
    }
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, &desc, attr, e->dnnl, NULL);
    if (st == dnnl_success) st = dnnl_primitive_create(&pe->prim, pd);
    omp_set_num_threads(threads);
    if (st == dnnl_success) {
        const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
        pe->scratch_bytes = smd ? dnnl_memory_desc_get_size(smd) : 0;
    }
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (ops) dnnl_post_ops_destroy(ops);
    dnnl_primitive_attr_destroy(attr);
    return st;
}

/* The primitive for key, created on first use. Callers hold the cache
 * (omp critical td_gemm_cache). */
static prim_entry *get_primitive_locked(td_gemm_engine *e, const prim_key *k)
{
    uint64_t h = key_hash(k);
    for (int probe = 0; probe < PRIM_CACHE_SLOTS; probe++) {
        prim_entry *pe = &e->cache[(h + (uint64_t)probe) & (PRIM_CACHE_SLOTS - 1)];
        if (pe->used && key_equal(&pe->key, k)) return pe;
        if (pe->used) continue;
        if (e->cache_used >= PRIM_CACHE_SLOTS / 2) break; /* full: keep probes short */
        DNNL_CHECK(create_primitive(e, k, pe));
        pe->used = true;
        e->cache_used++;
        return pe;
    }
    /* full: kept aside until gemm_bf16 empties the cache */
    for (int i = 0; i < e->n_overflow; i++)
        if (key_equal(&e->overflow[i]->key, k)) return e->overflow[i];
    prim_entry *pe = td_xcalloc(1, sizeof(*pe));
    DNNL_CHECK(create_primitive(e, k, pe));
    e->overflow = realloc(e->overflow, (size_t)(e->n_overflow + 1) * sizeof(*e->overflow));
    TD_ASSERT(e->overflow != NULL);
    e->overflow[e->n_overflow++] = pe;
    return pe;
}

static prim_entry *get_primitive(td_gemm_engine *e, const prim_key *k)
{
    prim_entry *pe;
    #pragma omp critical(td_gemm_cache)
    pe = get_primitive_locked(e, k);
    return pe;
}

/* Runs pe on the calling thread with its own stream and scratchpad. */
static void run_primitive(td_gemm_engine *e, const prim_entry *pe, const bf16 *A, const bf16 *B,
                          float *C)
{
    thread_state *ts = &e->threads[thread_slot()];
    if (!ts->stream) DNNL_CHECK(dnnl_stream_create(&ts->stream, e->dnnl, dnnl_stream_default_flags));
    if (ts->scratch_bytes < pe->scratch_bytes) {
        free(ts->scratch);
        ts->scratch = td_xmalloc((pe->scratch_bytes + 63) / 64 * 64 + 64);
        ts->scratch_bytes = pe->scratch_bytes;
    }
    dnnl_memory_t ma, mb, mc, ms = NULL;
    DNNL_CHECK(dnnl_memory_create(&ma, &pe->a_md, e->dnnl, (void *)(uintptr_t)A));
    DNNL_CHECK(dnnl_memory_create(&mb, &pe->b_md, e->dnnl, (void *)(uintptr_t)B));
    DNNL_CHECK(dnnl_memory_create(&mc, &pe->c_md, e->dnnl, C));
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}};
    int n_args = 3;
    if (pe->scratch_bytes > 0) {
        dnnl_memory_desc_t smd;
        dnnl_dims_t dims = {(int64_t)pe->scratch_bytes};
        DNNL_CHECK(dnnl_memory_desc_init_by_tag(&smd, 1, dims, dnnl_u8, dnnl_a));
        DNNL_CHECK(dnnl_memory_create(&ms, &smd, e->dnnl, ts->scratch));
        args[n_args++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, ms};
    }
    DNNL_CHECK(dnnl_primitive_execute(pe->prim, ts->stream, n_args, args));
    DNNL_CHECK(dnnl_stream_wait(ts->stream));
    dnnl_memory_destroy(ma);
    dnnl_memory_destroy(mb);
    dnnl_memory_destroy(mc);
    if (ms) dnnl_memory_destroy(ms);
}

/* X (rows x cols, leading dimension ld) rounded into *buf (dense). */
static const bf16 *round_into(const float *X, int64_t rows, int64_t cols, int64_t ld, bf16 **buf,
                              size_t *cap)
{
    size_t need = (size_t)(rows * cols);
    if (need > *cap) {
        free(*buf);
        *buf = td_xmalloc(need * sizeof(bf16) + 64);
        *cap = need;
    }
    round_matrix(*buf, X, rows, cols, ld);
    return *buf;
}

/* The bf16 form of operand X (stored rows x cols, leading dimension ld):
 * the mirror's copy when X lies in the mirrored block, the held rounding
 * when X is held, else X rounded into buf (dense, *ld_out = cols). */
static const bf16 *bf16_operand(td_gemm_engine *e, const float *X, int64_t rows, int64_t cols,
                                int64_t ld, bf16 **buf, size_t *cap, int64_t *ld_out)
{
    if (e->mirror && X >= e->mirror_of && X < e->mirror_of + e->mirror_n) {
        TD_ASSERT(!e->mirror_stale);
        TD_ASSERT(X + (rows - 1) * ld + cols <= e->mirror_of + e->mirror_n);
        *ld_out = ld;
        return e->mirror + (X - e->mirror_of);
    }
    *ld_out = cols;
    for (int i = 0; i < 2; i++) {
        struct held_operand *hd = &e->held[i];
        if (hd->src != X) continue;
        if (!hd->valid || hd->rows != rows || hd->cols != cols || hd->ld != ld) {
            round_into(X, rows, cols, ld, &hd->buf, &hd->cap);
            *hd = (struct held_operand){X, true, rows, cols, ld, hd->buf, hd->cap};
        }
        return hd->buf;
    }
    return round_into(X, rows, cols, ld, buf, cap);
}

void td_gemm_engine_hold(td_gemm_engine *e, const float *X)
{
    if (!e || e->precision != TD_PRECISION_BF16 || !X) return;
    for (int i = 0; i < 2; i++)
        if (!e->held[i].src) {
            e->held[i].src = X;
            e->held[i].valid = false;
            return;
        }
    TD_ASSERT(!"td_gemm_engine_hold: more than two operands held");
}

void td_gemm_engine_release(td_gemm_engine *e, const float *X)
{
    if (!e || e->precision != TD_PRECISION_BF16 || !X) return;
    for (int i = 0; i < 2; i++)
        if (e->held[i].src == X) {
            e->held[i].src = NULL;
            e->held[i].valid = false;
            return;
        }
    TD_ASSERT(!"td_gemm_engine_release: operand not held");
}

static void gemm_bf16(td_gemm_engine *e, bool trans_a, bool trans_b, int64_t M, int64_t N,
                      int64_t K, float alpha, const float *A, int64_t lda, const float *B,
                      int64_t ldb, float beta, float *C, int64_t ldc)
{
    /* A full cache is emptied here, before this product takes any entry,
     * and only where no other thread can be running one of them. */
    if (!omp_in_parallel() && e->cache_used + e->n_overflow >= PRIM_CACHE_SLOTS / 2 - 2) cache_clear(e);
    int64_t lda16, ldb16;
    thread_state *ts = &e->threads[thread_slot()];
    const bf16 *A16 = bf16_operand(e, A, trans_a ? K : M, trans_a ? M : K, lda, &ts->a16,
                                   &ts->a16_cap, &lda16);
    const bf16 *B16 = bf16_operand(e, B, trans_b ? N : K, trans_b ? K : N, ldb, &ts->b16,
                                   &ts->b16_cap, &ldb16);
    /* Split the longer of M and N into blocks of TD_GEMM_BLOCK. */
    bool split_rows = M >= N;
    int64_t len = split_rows ? M : N;
    int64_t n_blocks = (len + TD_GEMM_BLOCK - 1) / TD_GEMM_BLOCK;
    int64_t tail = len - (n_blocks - 1) * TD_GEMM_BLOCK;
    prim_key full = {.M = split_rows ? TD_GEMM_BLOCK : M, .N = split_rows ? N : TD_GEMM_BLOCK,
                     .K = K, .lda = lda16, .ldb = ldb16, .ldc = ldc, .trans_a = trans_a,
                     .trans_b = trans_b, .alpha = alpha, .beta = beta};
    prim_key last = full;
    if (split_rows) last.M = tail;
    else last.N = tail;
    const prim_entry *pe_full = n_blocks > 1 ? get_primitive(e, &full) : NULL;
    const prim_entry *pe_last = get_primitive(e, &last);

    /* Always inside a parallel region, even for one block: oneDNN then runs
     * on the calling thread alone. */
    #pragma omp parallel for schedule(dynamic, 1)
    for (int64_t blk = 0; blk < n_blocks; blk++) {
        int64_t i0 = blk * TD_GEMM_BLOCK;
        const prim_entry *pe = blk == n_blocks - 1 ? pe_last : pe_full;
        if (split_rows) /* rows i0.. of op(A) and C */
            run_primitive(e, pe, trans_a ? A16 + i0 : A16 + i0 * lda16, B16, C + i0 * ldc);
        else /* columns i0.. of op(B) and C */
            run_primitive(e, pe, A16, trans_b ? B16 + i0 * ldb16 : B16 + i0, C + i0);
    }
}

/* ---- the fp32 side: OpenBLAS ------------------------------------------------------- */

static void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                  const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                  int64_t ldc)
{
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (blasint)M, (blasint)N, (blasint)K, alpha, A,
                (blasint)lda, B, (blasint)ldb, beta, C, (blasint)ldc);
}

static void gemm_fp32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                      const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                      float *C, int64_t ldc)
{
    bool split_rows = M >= N;
    int64_t len = split_rows ? M : N;
    int64_t n_blocks = (len + TD_GEMM_BLOCK - 1) / TD_GEMM_BLOCK;
    if (n_blocks == 1) {
        sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    #pragma omp parallel for schedule(dynamic, 1)
    for (int64_t blk = 0; blk < n_blocks; blk++) {
        int64_t i0 = blk * TD_GEMM_BLOCK;
        int64_t n = len - i0 < TD_GEMM_BLOCK ? len - i0 : TD_GEMM_BLOCK;
        if (split_rows)
            sgemm(trans_a, trans_b, n, N, K, alpha, trans_a ? A + i0 : A + i0 * lda, lda, B, ldb,
                  beta, C + i0 * ldc, ldc);
        else
            sgemm(trans_a, trans_b, M, n, K, alpha, A, lda, trans_b ? B + i0 * ldb : B + i0, ldb,
                  beta, C + i0, ldc);
    }
}

void td_gemm(td_gemm_engine *eng, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
             float alpha, const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
             float *C, int64_t ldc)
{
    if (M == 0 || N == 0) return;
    if (eng && eng->precision == TD_PRECISION_BF16) {
        if (K == 0) { /* C = beta C: no product to run */
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
            return;
        }
        gemm_bf16(eng, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    } else {
        gemm_fp32(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    }
}

void td_gemm_ref(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                 const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                 int64_t ldc)
{
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++) {
            double acc = 0;
            for (int64_t p = 0; p < K; p++) {
                double a = trans_a ? A[p * lda + i] : A[i * lda + p];
                double b = trans_b ? B[j * ldb + p] : B[p * ldb + j];
                acc += a * b;
            }
            double c = beta == 0.0f ? 0.0 : (double)beta * C[i * ldc + j];
            C[i * ldc + j] = (float)(alpha * acc + c);
        }
    }
}

/* ---- engines ------------------------------------------------------------------------ */

bool td_gemm_native_bf16(void)
{
    unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
    /* the ISA values are nested bit sets: each contains the ones below it */
    unsigned avx512_bf16 = (unsigned)dnnl_cpu_isa_avx512_core_bf16;
    unsigned amx_bf16 = (unsigned)dnnl_cpu_isa_avx512_core_amx;
    return (isa & avx512_bf16) == avx512_bf16 || (isa & amx_bf16) == amx_bf16;
}

td_precision td_gemm_resolve_precision(td_precision precision)
{
    if (precision != TD_PRECISION_AUTO) return precision;
    return td_gemm_native_bf16() ? TD_PRECISION_BF16 : TD_PRECISION_FP32;
}

td_status td_gemm_engine_create(td_gemm_engine **out, td_precision precision, td_error *err)
{
    td_gemm_engine *e = calloc(1, sizeof(*e));
    if (!e) return td_error_set(err, TD_ERR_NOMEM, "out of memory for the matrix product engine");
    e->precision = td_gemm_resolve_precision(precision);
    if (e->precision == TD_PRECISION_BF16) {
        if (dnnl_engine_create(&e->dnnl, dnnl_cpu, 0) != dnnl_success) {
            free(e);
            return td_error_set(err, TD_ERR_ARG, "oneDNN could not create a CPU engine for bf16");
        }
        e->cache = td_xcalloc(PRIM_CACHE_SLOTS, sizeof(*e->cache));
        /* oneDNN 2.x has bf16 products from AVX-512 on (emulated without
         * AVX512-BF16); on older CPUs there is none */
        prim_entry probe = {0};
        prim_key k = {.M = 16, .N = 16, .K = 16, .lda = 16, .ldb = 16, .ldc = 16, .alpha = 1.0f};
        if (create_primitive(e, &k, &probe) != dnnl_success) {
            td_gemm_engine_free(e);
            return td_error_set(err, TD_ERR_CONFIG,
                                "train.precision: bf16 needs a CPU with AVX-512 (avx512f, avx512bw, "
                                "avx512vl, avx512dq; fast with AVX512-BF16 or AMX), and oneDNN "
                                "found none here: use fp32 or auto");
        }
        dnnl_primitive_destroy(probe.prim);
    }
    *out = e;
    return TD_OK;
}

void td_gemm_engine_free(td_gemm_engine *e)
{
    if (!e) return;
    if (e->cache) {
        cache_clear(e);
        free(e->cache);
    }
    for (int t = 0; t < TD_MAX_THREADS; t++) {
        thread_state *ts = &e->threads[t];
        if (ts->stream) dnnl_stream_destroy(ts->stream);
        free(ts->scratch);
        free(ts->a16);
        free(ts->b16);
    }
    for (int i = 0; i < 2; i++) free(e->held[i].buf);
    if (e->dnnl) dnnl_engine_destroy(e->dnnl);
    free(e->mirror);
    free(e);
}

td_precision td_gemm_engine_precision(const td_gemm_engine *e)
{
    return e ? e->precision : TD_PRECISION_FP32;
}

const char *td_gemm_engine_kernels(td_gemm_engine *e)
{
    static char fp32_name[96];
    if (!e || e->precision != TD_PRECISION_BF16) {
        snprintf(fp32_name, sizeof(fp32_name), "OpenBLAS %s", td_blas_corename());
        return fp32_name;
    }
    if (!e->kernels[0]) {
        /* ask oneDNN which implementation it picks for a typical product */
        prim_key k = {.M = TD_GEMM_BLOCK, .N = 768, .K = 768, .lda = 768, .ldb = 768, .ldc = 768,
                      .trans_b = true, .alpha = 1.0f, .beta = 0.0f};
        const prim_entry *pe = get_primitive(e, &k);
        const_dnnl_primitive_desc_t pd;
        const char *impl = "unknown";
        if (dnnl_primitive_get_primitive_desc(pe->prim, &pd) == dnnl_success)
            dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
        snprintf(e->kernels, sizeof(e->kernels), "oneDNN %s", impl);
    }
    return e->kernels;
}

void td_gemm_engine_mirror(td_gemm_engine *e, const float *block, int64_t n_elems)
{
    if (!e || e->precision != TD_PRECISION_BF16) return;
    if (e->mirror_of != block || e->mirror_n != n_elems) {
        free(e->mirror);
        e->mirror = td_xmalloc((size_t)n_elems * sizeof(bf16) + 64);
        e->mirror_of = block;
        e->mirror_n = n_elems;
    }
    e->mirror_stale = true; /* rounded at the next td_gemm_engine_sync */
}

void td_gemm_engine_stale(td_gemm_engine *e)
{
    if (e) e->mirror_stale = true;
}

void td_gemm_engine_sync(td_gemm_engine *e)
{
    if (!e || !e->mirror || !e->mirror_stale) return;
    const int64_t chunk = 1 << 16;
    #pragma omp parallel for schedule(static)
    for (int64_t i0 = 0; i0 < e->mirror_n; i0 += chunk) {
        int64_t n = e->mirror_n - i0 < chunk ? e->mirror_n - i0 : chunk;
        for (int64_t i = 0; i < n; i++) e->mirror[i0 + i] = bf16_from_float(e->mirror_of[i0 + i]);
    }
    e->mirror_stale = false;
}
