/* GEMM throughput of td_gemm at the shapes of a BERT-base layer (tokens x
 * in x out for micro-batch 8 x seq 128), one thread by default. Prints one
 * JSON object. Usage: td-bench-gemm [threads] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tokdrop/blas.h"
#include "tokdrop/ops.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    td_blas_restart_for_fast_kernels(argv);
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    td_blas_set_threads(threads);
    /* (M, N, K, transB): QKV/output projections, FFN up, FFN down, and the
     * weight-gradient product of the FFN (transposed A) */
    static const struct { int M, N, K; int ta, tb; const char *what; } shapes[] = {
        {1024, 768, 768, 0, 1, "proj 1024x768x768"},
        {1024, 3072, 768, 0, 1, "ffn_up 1024x3072x768"},
        {1024, 768, 3072, 0, 1, "ffn_down 1024x768x3072"},
        {3072, 768, 1024, 1, 0, "ffn_wgrad 3072x768x1024"},
    };
    printf("{\"blas_core\": \"%s\", \"threads\": %d, \"shapes\": [", td_blas_corename(), threads);
    double total_flop = 0, total_s = 0;
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        int M = shapes[s].M, N = shapes[s].N, K = shapes[s].K;
        float *A = malloc(sizeof(float) * (size_t)M * K), *B = malloc(sizeof(float) * (size_t)K * N);
        float *C = malloc(sizeof(float) * (size_t)M * N);
        for (long i = 0; i < (long)M * K; i++) A[i] = 1e-3f * (float)(i % 97);
        for (long i = 0; i < (long)K * N; i++) B[i] = 1e-3f * (float)(i % 89);
        int lda = shapes[s].ta ? M : K, ldb = shapes[s].tb ? K : N;
        td_gemm(NULL, shapes[s].ta, shapes[s].tb, M, N, K, 1, A, lda, B, ldb, 0, C, N); /* warm-up */
        int reps = 0;
        double t0 = now_s(), dt;
        do {
            td_gemm(NULL, shapes[s].ta, shapes[s].tb, M, N, K, 1, A, lda, B, ldb, 0, C, N);
            reps++;
            dt = now_s() - t0;
        } while (dt < 1.0);
        double flop = 2.0 * M * N * K * reps;
        total_flop += flop;
        total_s += dt;
        printf("%s{\"shape\": \"%s\", \"gflops\": %.1f}", s ? ", " : "", shapes[s].what, flop / dt / 1e9);
        free(A);
        free(B);
        free(C);
    }
    printf("], \"gflops_overall\": %.1f}\n", total_flop / total_s / 1e9);
    return 0;
}
