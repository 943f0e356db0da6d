/* GEMM throughput of td_gemm at the shapes of a BERT-base layer (tokens x
 * in x out for micro-batch 8 x seq 128), one thread by default. Prints one
 * JSON object. Usage: td-bench-gemm [threads] [fp32|bf16]
 * bf16 times the engine as training uses it, weights (B) read from the
 * bf16 parameter copy and activations (A) rounded per product
 * ("gflops"), and with both operands already bf16 ("gflops_kernel": the
 * oneDNN matmul peak the whole-step figures are compared with). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "tokdrop/nn/blas.h"
#include "tokdrop/nn/gemm.h"
#include "tokdrop/base/report.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    td_cli_restart_for_fast_kernels(argv);
    td_report_set_sink(td_report_stderr, "td-bench-gemm");
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    bool bf16 = argc > 2 && strcmp(argv[2], "bf16") == 0;
    td_blas_set_threads(threads);
    td_gemm_engine *eng = NULL;
    td_error err;
    if (td_gemm_engine_create(&eng, bf16 ? TD_PRECISION_BF16 : TD_PRECISION_FP32, &err) != TD_OK) {
        fprintf(stderr, "td-bench-gemm: %s\n", err.msg);
        return 1;
    }
    /* (M, N, K, transB): QKV/output projections, FFN up, FFN down, and the
     * weight-gradient product of the FFN (transposed A) */
    static const struct { int M, N, K; int ta, tb; const char *what; } shapes[] = {
        {1024, 768, 768, 0, 1, "proj 1024x768x768"},
        {1024, 3072, 768, 0, 1, "ffn_up 1024x3072x768"},
        {1024, 768, 3072, 0, 1, "ffn_down 1024x768x3072"},
        {3072, 768, 1024, 1, 0, "ffn_wgrad 3072x768x1024"},
    };
    printf("{\"precision\": \"%s\", \"kernels\": \"%s\", \"blas_core\": \"%s\", \"threads\": %d, \"shapes\": [",
           bf16 ? "bf16" : "fp32", td_gemm_engine_kernels(eng), td_blas_corename(), threads);
    double total_flop = 0, total_s = 0, kernel_flop = 0, kernel_s = 0;
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        int M = shapes[s].M, N = shapes[s].N, K = shapes[s].K;
        /* one block holds A then B, so the bf16 copy can stand for either */
        float *block = malloc(sizeof(float) * ((size_t)M * K + (size_t)K * N));
        float *A = block, *B = block + (size_t)M * K;
        float *A_own = malloc(sizeof(float) * (size_t)M * K);
        float *C = malloc(sizeof(float) * (size_t)M * N);
        for (long i = 0; i < (long)M * K; i++) A_own[i] = A[i] = 1e-3f * (float)(i % 97);
        for (long i = 0; i < (long)K * N; i++) B[i] = 1e-3f * (float)(i % 89);
        int lda = shapes[s].ta ? M : K, ldb = shapes[s].tb ? K : N;
        td_gemm_engine_mirror(eng, block, (int64_t)M * K + (int64_t)K * N);
        td_gemm_engine_sync(eng);
        for (int pass = 0; pass < (bf16 ? 2 : 1); pass++) {
            const float *a = pass == 0 ? A_own : A; /* pass 1: A from the bf16 copy too */
            td_gemm(eng, shapes[s].ta, shapes[s].tb, M, N, K, 1, a, lda, B, ldb, 0, C, N); /* warm-up */
            int reps = 0;
            double t0 = now_s(), dt;
            do {
                td_gemm(eng, shapes[s].ta, shapes[s].tb, M, N, K, 1, a, lda, B, ldb, 0, C, N);
                reps++;
                dt = now_s() - t0;
            } while (dt < 1.0);
            double flop = 2.0 * M * N * K * reps;
            if (pass == 0) {
                total_flop += flop;
                total_s += dt;
                printf("%s{\"shape\": \"%s\", \"gflops\": %.1f", s ? ", " : "", shapes[s].what, flop / dt / 1e9);
            } else {
                kernel_flop += flop;
                kernel_s += dt;
                printf(", \"gflops_kernel\": %.1f", flop / dt / 1e9);
            }
        }
        printf("}");
        free(block);
        free(A_own);
        free(C);
    }
    printf("], \"gflops_overall\": %.1f", total_flop / total_s / 1e9);
    if (bf16) printf(", \"gflops_kernel_overall\": %.1f", kernel_flop / kernel_s / 1e9);
    printf("}\n");
    td_gemm_engine_free(eng);
    return 0;
}
