/* The bf16 matrix product engine (gemm.h): rounding, products against a
 * double reference on the rounded inputs, thread-count independence, and
 * the parameter copy. (The fp32 engine is checked in test_ops.) */
#include "testutil.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "tokdrop/nn/gemm.h"

static td_gemm_engine *bf16_engine(void)
{
    td_gemm_engine *e = NULL;
    td_error err;
    if (td_gemm_engine_create(&e, TD_PRECISION_BF16, &err) != TD_OK) {
        print_message("bf16 not available on this CPU, test not run: %s\n", err.msg);
        skip();
    }
    assert_int_equal(td_gemm_engine_precision(e), TD_PRECISION_BF16);
    return e;
}

static void test_round(void **state)
{
    (void)state;
    assert_true(td_bf16_round(1.0f) == 1.0f);
    assert_true(td_bf16_round(-2.5f) == -2.5f);
    /* 8 bits of significand: 1 + 2^-8 is a tie between 1 and 1 + 2^-7, and
     * goes to the even one (1); just above the tie rounds up */
    assert_true(td_bf16_round(1.0f + 0x1p-8f) == 1.0f);
    assert_true(td_bf16_round(1.0f + 0x1p-8f + 0x1p-20f) == 1.0f + 0x1p-7f);
    assert_true(td_bf16_round(1.0f + 3 * 0x1p-8f) == 1.0f + 0x1p-6f); /* tie to even upward */
    assert_true(td_bf16_round(3.0e38f) > 2.9e38f);                    /* fp32's exponent range */
    assert_true(isinf(td_bf16_round(INFINITY)));
    assert_true(isnan(td_bf16_round(NAN)));
    /* relative error at most 2^-8 (8 significant bits) */
    float x[1000];
    tu_fill_uniform(x, 1000, -50.0f, 50.0f, 3);
    for (int i = 0; i < 1000; i++) assert_true(fabsf(td_bf16_round(x[i]) - x[i]) <= 0x1p-8f * fabsf(x[i]));
}

/* Stored size of op(X) (rows x cols of the stored matrix) with padding in
 * the leading dimension, filled at random. */
static float *random_matrix(int64_t rows, int64_t cols, int64_t ld, uint64_t seed)
{
    float *x = malloc((size_t)(rows * ld) * sizeof(float));
    tu_fill_uniform(x, rows * ld, -1.0f, 1.0f, seed);
    return x;
}

static void round_all(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) x[i] = td_bf16_round(x[i]);
}

/* td_gemm in bf16 against the double reference on the bf16-rounded inputs:
 * products of two bf16 numbers are exact in fp32, so what remains is fp32
 * accumulation, bounded by K u32 sum |a||b| (u32 = 2^-24), plus the
 * rounding of alpha and beta C. */
static void check_product(td_gemm_engine *e, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                          float alpha, float beta, int64_t pad)
{
    int64_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    float *A = random_matrix(ta ? K : M, ta ? M : K, lda, 1 + (uint64_t)M);
    float *B = random_matrix(tb ? N : K, tb ? K : N, ldb, 2 + (uint64_t)N);
    float *C = random_matrix(M, N, ldc, 3);
    float *Cr = malloc((size_t)(M * ldc) * sizeof(float));
    memcpy(Cr, C, (size_t)(M * ldc) * sizeof(float));
    float *Ar = malloc((size_t)((ta ? K : M) * lda) * sizeof(float));
    float *Br = malloc((size_t)((tb ? N : K) * ldb) * sizeof(float));
    memcpy(Ar, A, (size_t)((ta ? K : M) * lda) * sizeof(float));
    memcpy(Br, B, (size_t)((tb ? N : K) * ldb) * sizeof(float));
    round_all(Ar, (ta ? K : M) * lda);
    round_all(Br, (tb ? N : K) * ldb);
    td_gemm(e, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    td_gemm_ref(ta, tb, M, N, K, alpha, Ar, lda, Br, ldb, beta, Cr, ldc);
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            /* |a|, |b| <= 1: sum |a||b| <= K */
            double bound = 2.0 * (double)K * (double)K * 0x1p-24 * fabs(alpha) + 4 * 0x1p-24 * (1 + fabs(beta));
            double d = fabs((double)C[i * ldc + j] - (double)Cr[i * ldc + j]);
            if (d > bound)
                fail_msg("ta %d tb %d M %lld N %lld K %lld: C[%lld,%lld] = %.9g, reference %.9g", ta, tb,
                         (long long)M, (long long)N, (long long)K, (long long)i, (long long)j,
                         C[i * ldc + j], Cr[i * ldc + j]);
        }
    free(A);
    free(B);
    free(C);
    free(Cr);
    free(Ar);
    free(Br);
}

static void test_products(void **state)
{
    (void)state;
    td_gemm_engine *e = bf16_engine();
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            check_product(e, ta, tb, 7, 5, 3, 1.0f, 0.0f, 0);
            check_product(e, ta, tb, 300, 40, 70, 1.0f, 1.0f, 3);   /* row blocks, tail 44 */
            check_product(e, ta, tb, 20, 600, 33, 0.125f, 1.0f, 0); /* column blocks */
            check_product(e, ta, tb, 64, 64, 512, 1.0f, 0.5f, 1);
        }
    /* K = 0: C = beta C */
    float C[4] = {1, 2, 3, 4};
    td_gemm(e, false, false, 2, 2, 0, 1.0f, NULL, 1, NULL, 2, 0.5f, C, 2);
    assert_true(C[0] == 0.5f && C[3] == 2.0f);
    td_gemm_engine_free(e);
}

/* The bf16 product is not the fp32 one: inputs with bits below bf16's
 * precision give a different result, as they should. */
static void test_rounds_inputs(void **state)
{
    (void)state;
    td_gemm_engine *e = bf16_engine();
    float a[1] = {1.0f + 0x1p-12f}, b[1] = {1.0f}, c[1] = {0};
    td_gemm(e, false, false, 1, 1, 1, 1.0f, a, 1, b, 1, 0.0f, c, 1);
    assert_true(c[0] == 1.0f);
    td_gemm(NULL, false, false, 1, 1, 1, 1.0f, a, 1, b, 1, 0.0f, c, 1);
    assert_true(c[0] == a[0]);
    td_gemm_engine_free(e);
}

/* Same bits on 1 and 2 threads (SPEC section 4). */
static void test_thread_count(void **state)
{
    (void)state;
    td_gemm_engine *e = bf16_engine();
    const int64_t M = 700, N = 300, K = 200;
    float *A = random_matrix(M, K, K, 5), *B = random_matrix(N, K, K, 6);
    float *C1 = calloc((size_t)(M * N), sizeof(float)), *C2 = calloc((size_t)(M * N), sizeof(float));
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    td_gemm(e, false, true, M, N, K, 1.0f, A, K, B, K, 0.0f, C1, N);
    omp_set_num_threads(2);
    td_gemm(e, false, true, M, N, K, 1.0f, A, K, B, K, 0.0f, C2, N);
    omp_set_num_threads(saved);
    assert_memory_equal(C1, C2, (size_t)(M * N) * sizeof(float));
    free(A);
    free(B);
    free(C1);
    free(C2);
    td_gemm_engine_free(e);
}

/* An operand inside the mirrored block is read from the bf16 copy, which
 * follows the block only when marked stale and synced. */
static void test_mirror(void **state)
{
    (void)state;
    td_gemm_engine *e = bf16_engine();
    const int64_t M = 40, N = 30, K = 20;
    float *block = random_matrix(1, 1000 + N * K, 1000 + N * K, 7);
    float *W = block + 1000; /* (N, K) inside the block */
    float *X = random_matrix(M, K, K, 8);
    float *C_plain = calloc((size_t)(M * N), sizeof(float)), *C = calloc((size_t)(M * N), sizeof(float));
    td_gemm(e, false, true, M, N, K, 1.0f, X, K, W, K, 0.0f, C_plain, N);
    td_gemm_engine_mirror(e, block, 1000 + N * K);
    td_gemm_engine_sync(e);
    td_gemm(e, false, true, M, N, K, 1.0f, X, K, W, K, 0.0f, C, N);
    assert_memory_equal(C, C_plain, (size_t)(M * N) * sizeof(float));
    /* the block changes: the copy keeps the old values until synced */
    for (int64_t i = 0; i < N * K; i++) W[i] *= 2.0f;
    td_gemm(e, false, true, M, N, K, 1.0f, X, K, W, K, 0.0f, C, N);
    assert_memory_equal(C, C_plain, (size_t)(M * N) * sizeof(float));
    td_gemm_engine_stale(e);
    td_gemm_engine_sync(e);
    td_gemm(e, false, true, M, N, K, 1.0f, X, K, W, K, 0.0f, C, N);
    for (int64_t i = 0; i < M * N; i++) assert_true(C[i] == 2.0f * C_plain[i]);
    free(block);
    free(X);
    free(C_plain);
    free(C);
    td_gemm_engine_free(e);
}

/* A held operand is rounded once: the products give the same bits as
 * without holding it, and after the release a changed matrix is seen. */
static void test_hold(void **state)
{
    (void)state;
    td_gemm_engine *e = bf16_engine();
    const int64_t M = 50, N = 20, K = 30;
    float *X = random_matrix(M, K, K, 9), *W1 = random_matrix(N, K, K, 10);
    float *C1 = calloc((size_t)(M * N), sizeof(float)), *C2 = calloc((size_t)(M * N), sizeof(float));
    float *D1 = calloc((size_t)(K * N), sizeof(float)), *D2 = calloc((size_t)(K * N), sizeof(float));
    td_gemm(e, false, true, M, N, K, 1.0f, X, K, W1, K, 0.0f, C1, N);
    td_gemm(e, true, false, K, N, M, 1.0f, X, K, C1, N, 0.0f, D1, N); /* X as op(A) = X^T */
    td_gemm_engine_hold(e, X);
    td_gemm(e, false, true, M, N, K, 1.0f, X, K, W1, K, 0.0f, C2, N);
    td_gemm(e, false, true, M, N, K, 1.0f, X, K, W1, K, 0.0f, C2, N); /* the held rounding */
    td_gemm(e, true, false, K, N, M, 1.0f, X, K, C2, N, 0.0f, D2, N);
    td_gemm_engine_release(e, X);
    assert_memory_equal(C1, C2, (size_t)(M * N) * sizeof(float));
    assert_memory_equal(D1, D2, (size_t)(K * N) * sizeof(float));
    for (int64_t i = 0; i < M * K; i++) X[i] *= 2.0f;
    td_gemm(e, false, true, M, N, K, 1.0f, X, K, W1, K, 0.0f, C2, N);
    for (int64_t i = 0; i < M * N; i++) assert_true(C2[i] == 2.0f * C1[i]);
    free(X), free(W1), free(C1), free(C2), free(D1), free(D2);
    td_gemm_engine_free(e);
}

static void test_engines(void **state)
{
    (void)state;
    td_gemm_engine *e = NULL;
    td_error err;
    assert_int_equal(td_gemm_engine_precision(NULL), TD_PRECISION_FP32);
    assert_int_equal(td_gemm_engine_create(&e, TD_PRECISION_FP32, &err), TD_OK);
    assert_non_null(strstr(td_gemm_engine_kernels(e), "OpenBLAS"));
    td_gemm_engine_free(e);
    assert_int_equal(td_gemm_engine_create(&e, TD_PRECISION_AUTO, &err), TD_OK);
    assert_int_equal(td_gemm_engine_precision(e),
                     td_gemm_native_bf16() ? TD_PRECISION_BF16 : TD_PRECISION_FP32);
    td_gemm_engine_free(e);
    /* native bf16 implies an engine; the engine's kernels name oneDNN */
    e = NULL;
    bool made = td_gemm_engine_create(&e, TD_PRECISION_BF16, &err) == TD_OK;
    assert_true(made || !td_gemm_native_bf16());
    td_gemm_engine_free(e);
    e = bf16_engine();
    assert_non_null(strstr(td_gemm_engine_kernels(e), "oneDNN"));
    td_gemm_engine_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round),
        cmocka_unit_test(test_products),
        cmocka_unit_test(test_rounds_inputs),
        cmocka_unit_test(test_thread_count),
        cmocka_unit_test(test_mirror),
        cmocka_unit_test(test_hold),
        cmocka_unit_test(test_engines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
