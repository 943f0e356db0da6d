/* Kernels (ops.h): the GEMM wrapper against the double reference and a
 * BLIS-style C t == A (B t) check; for every backward a central-difference
 * check of each input and parameter gradient with a per-op tolerance and a
 * check that it accumulates; known GELU values; dropout masks; attention
 * with masked keys, Tq != Tk and attention dropout; and bitwise
 * independence of the thread count. */
#include "testutil.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokdrop/nn/blas.h"
#include "tokdrop/base/error.h"
#include "tokdrop/nn/ops.h"
#include "nn/vecmath.h"

/* Unit roundoff of float. */
#define U_F 5.9604644775390625e-08

/* ---- helpers ------------------------------------------------------------------ */

static float *falloc(int64_t n)
{
    return td_xcalloc((size_t)(n > 0 ? n : 1), sizeof(float));
}

static double *dalloc(int64_t n)
{
    return td_xcalloc((size_t)(n > 0 ? n : 1), sizeof(double));
}

static float *frand(int64_t n, float lo, float hi, uint64_t seed)
{
    float *x = falloc(n);
    tu_fill_uniform(x, n, lo, hi, seed);
    return x;
}

static float *fdup(const float *x, int64_t n)
{
    float *y = falloc(n);
    memcpy(y, x, (size_t)n * sizeof(float));
    return y;
}

static double dot_fd(const float *g, const float *y, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)g[i] * (double)y[i];
    return s;
}

static double dot_dd(const float *g, const double *y, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)g[i] * y[i];
    return s;
}

/* The scalar loss sum(G * forward(...)) of one op, from the state in ctx. */
typedef double (*loss_fn)(void *ctx);

/* num[i] = dL/dx[i] by central differences. x is perturbed in place and
 * restored; the quotient divides by the step actually taken in float
 * ((x+h) - (x-h) after rounding), so rounding x +- h does not bias it. */
static void fd_grad(double *num, float *x, int64_t n, float h, loss_fn f, void *ctx)
{
    for (int64_t i = 0; i < n; i++) {
        float x0 = x[i];
        x[i] = x0 + h;
        float xp = x[i];
        double lp = f(ctx);
        x[i] = x0 - h;
        float xm = x[i];
        double lm = f(ctx);
        x[i] = x0;
        num[i] = (lp - lm) / ((double)xp - (double)xm);
    }
}

/* Fails unless |got - want| <= tol * max(|want|, floor_frac * max|want|, 1e-6)
 * everywhere: relative where the gradient is large, absolute (relative to
 * the tensor's scale) where it crosses zero. */
static void check_close(const char *what, const float *got, const double *want, int64_t n,
                        double tol, double floor_frac)
{
    double mx = 0;
    for (int64_t i = 0; i < n; i++) mx = fmax(mx, fabs(want[i]));
    double fl = fmax(floor_frac * mx, 1e-6);
    double worst = 0;
    int64_t at = -1;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]) / fmax(fabs(want[i]), fl);
        if (!(e <= worst)) {
            worst = e;
            at = i;
        }
    }
    if (getenv("TD_TEST_VERBOSE"))
        print_message("%-40s worst rel err %.3g (tol %.3g)\n", what, worst, tol);
    if (!(worst <= tol))
        fail_msg("%s: element %lld: got %.9g, want %.9g (rel err %.3g > tol %.3g)", what,
                 (long long)at, (double)got[at], want[at], worst, tol);
}

/* A second and third call of a backward on top of g0 must leave
 * g0 + 2 d, where d is what one call adds to zeros; allows the float
 * rounding of two additions. */
static void check_accumulates(const char *what, const float *g0, const float *g2, const float *d,
                              int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        double want = (double)g0[i] + 2.0 * (double)d[i];
        double tol = 1e-5 * (fabs(g0[i]) + 2.0 * fabs(d[i])) + 1e-7;
        if (!(fabs((double)g2[i] - want) <= tol))
            fail_msg("%s does not accumulate: element %lld: initial %.9g, one call adds %.9g, "
                     "after two calls %.9g (want %.9g)",
                     what, (long long)i, (double)g0[i], (double)d[i], (double)g2[i], want);
    }
}

/* ---- GEMM ---------------------------------------------------------------------- */

static void gemm_ref_hand(void **state)
{
    (void)state;
    /* [1 2; 3 4] [5 6; 7 8] = [19 22; 43 50]; 2 * that + 1 * [1 1; 1 1]. */
    const float A[4] = {1, 2, 3, 4}, B[4] = {5, 6, 7, 8};
    float C[4] = {1, 1, 1, 1};
    td_gemm_ref(false, false, 2, 2, 2, 2.0f, A, 2, B, 2, 1.0f, C, 2);
    assert_true(C[0] == 39 && C[1] == 45 && C[2] == 87 && C[3] == 101);
    /* A^T B^T = (B A)^T: B A = [23 34; 31 46]. */
    float D[4] = {0};
    td_gemm_ref(true, true, 2, 2, 2, 1.0f, A, 2, B, 2, 0.0f, D, 2);
    assert_true(D[0] == 23 && D[1] == 31 && D[2] == 34 && D[3] == 46);
}

/* op(X)[i][j] of a row-major X with leading dimension ld. */
static double opget(const float *X, int64_t ld, bool trans, int64_t i, int64_t j)
{
    return trans ? (double)X[j * ld + i] : (double)X[i * ld + j];
}

/* Residual of BLIS's check: || C t - (alpha op(A) (op(B) t) + beta C0 t) ||
 * over (|alpha| ||A|| ||B|| + |beta| ||C0||) ||t||, Frobenius norms. */
static double gemm_blis_resid(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                              const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                              const float *C0, const float *C, int64_t ldc, const double *t)
{
    double *bt = dalloc(K);
    for (int64_t p = 0; p < K; p++)
        for (int64_t j = 0; j < N; j++) bt[p] += opget(B, ldb, tb, p, j) * t[j];
    double na = 0, nb = 0, nc0 = 0, nt = 0, nr = 0;
    for (int64_t i = 0; i < M; i++)
        for (int64_t p = 0; p < K; p++) na += opget(A, lda, ta, i, p) * opget(A, lda, ta, i, p);
    for (int64_t p = 0; p < K; p++)
        for (int64_t j = 0; j < N; j++) nb += opget(B, ldb, tb, p, j) * opget(B, ldb, tb, p, j);
    for (int64_t j = 0; j < N; j++) nt += t[j] * t[j];
    for (int64_t i = 0; i < M; i++) {
        double ct = 0, c0t = 0, abt = 0;
        for (int64_t j = 0; j < N; j++) {
            ct += (double)C[i * ldc + j] * t[j];
            c0t += (double)C0[i * ldc + j] * t[j];
            nc0 += (double)C0[i * ldc + j] * C0[i * ldc + j];
        }
        for (int64_t p = 0; p < K; p++) abt += opget(A, lda, ta, i, p) * bt[p];
        double r = ct - (alpha * abt + (beta == 0.0f ? 0.0 : beta * c0t));
        nr += r * r;
    }
    free(bt);
    double denom =
        (fabs(alpha) * sqrt(na) * sqrt(nb) + (beta == 0.0f ? 0.0 : fabs(beta) * sqrt(nc0))) *
        sqrt(nt);
    return sqrt(nr) / (denom > 0 ? denom : 1.0);
}

/* Single precision thresholds of the BLIS-style check: a correct sgemm
 * lands at a fraction of u = 6e-8 (measured <= 2.4e-8 here); PASS below
 * 5e-7, MARGINAL (reported, not failed) below 5e-6, FAILURE above. */
#define GEMM_RESID_PASS 5e-7
#define GEMM_RESID_FAIL 5e-6

static void gemm_blis_verdict(const char *who, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                              float alpha, float beta, double resid)
{
    if (getenv("TD_TEST_VERBOSE"))
        print_message("%s ta=%d tb=%d M=%lld N=%lld K=%lld: resid %.3g\n", who, ta, tb,
                      (long long)M, (long long)N, (long long)K, resid);
    if (resid < GEMM_RESID_PASS) return;
    const char *verdict = resid < GEMM_RESID_FAIL ? "MARGINAL" : "FAILURE";
    print_message("%s %s: ta=%d tb=%d M=%lld N=%lld K=%lld alpha=%g beta=%g resid=%.3g\n", who,
                  verdict, ta, tb, (long long)M, (long long)N, (long long)K, alpha, beta, resid);
    if (resid >= GEMM_RESID_FAIL) fail_msg("%s: C t != A (B t): resid %.3g", who, resid);
}

static void gemm_case(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, float beta,
                      int64_t pad, uint64_t seed)
{
    const int64_t a_rows = ta ? K : M, a_cols = ta ? M : K;
    const int64_t b_rows = tb ? N : K, b_cols = tb ? K : N;
    const int64_t lda = a_cols + pad, ldb = b_cols + pad + 1, ldc = N + pad + 2;
    /* The part of each row past the width holds NaN (A, B): reading it
     * would poison the result. C's holds a sentinel that must survive. */
    float *A = falloc(a_rows * lda), *B = falloc(b_rows * ldb), *C0 = falloc(M * ldc);
    for (int64_t i = 0; i < a_rows * lda; i++) A[i] = NAN;
    for (int64_t i = 0; i < b_rows * ldb; i++) B[i] = NAN;
    for (int64_t i = 0; i < M * ldc; i++) C0[i] = 12345.0f;
    for (int64_t i = 0; i < a_rows; i++)
        tu_fill_uniform(A + i * lda, a_cols, -1, 1, seed + 7 * (uint64_t)i);
    for (int64_t i = 0; i < b_rows; i++)
        tu_fill_uniform(B + i * ldb, b_cols, -1, 1, seed + 100003 + 7 * (uint64_t)i);
    for (int64_t i = 0; i < M; i++) {
        if (beta == 0.0f) /* BLAS: C is not read when beta is 0 */
            for (int64_t j = 0; j < N; j++) C0[i * ldc + j] = NAN;
        else
            tu_fill_uniform(C0 + i * ldc, N, -1, 1, seed + 200003 + 7 * (uint64_t)i);
    }
    float *C = fdup(C0, M * ldc), *Cr = fdup(C0, M * ldc);
    td_gemm(NULL, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    td_gemm_ref(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, Cr, ldc);

    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = N; j < ldc; j++)
            if (C[i * ldc + j] != 12345.0f || Cr[i * ldc + j] != 12345.0f)
                fail_msg("gemm ta=%d tb=%d: C[%lld][%lld] past the width N=%lld was written", ta,
                         tb, (long long)i, (long long)j, (long long)N);
        for (int64_t j = 0; j < N; j++) {
            /* Elementwise bound of a float dot product of length K plus the
             * alpha/beta update, with a factor 2 of slack: any order of
             * summation (blocked, FMA) stays inside it. */
            double mag = 0;
            for (int64_t p = 0; p < K; p++)
                mag += fabs(opget(A, lda, ta, i, p) * opget(B, ldb, tb, p, j));
            double c0 = beta == 0.0f ? 0.0 : fabs((double)beta * C0[i * ldc + j]);
            double bound = 2.0 * (double)(K + 4) * U_F * (fabs(alpha) * mag + c0) +
                2.0 * U_F * fabs((double)Cr[i * ldc + j]) + 1e-30;
            double e = fabs((double)C[i * ldc + j] - (double)Cr[i * ldc + j]);
            if (!(e <= bound))
                fail_msg("gemm ta=%d tb=%d M=%lld N=%lld K=%lld alpha=%g beta=%g: C[%lld][%lld] = "
                         "%.9g, reference %.9g (|diff| %.3g > bound %.3g)",
                         ta, tb, (long long)M, (long long)N, (long long)K, alpha, beta,
                         (long long)i, (long long)j, (double)C[i * ldc + j],
                         (double)Cr[i * ldc + j], e, bound);
        }
    }

    double *t = dalloc(N);
    float *tf = frand(N, -1, 1, seed + 300007);
    for (int64_t j = 0; j < N; j++) t[j] = tf[j];
    gemm_blis_verdict("td_gemm", ta, tb, M, N, K, alpha, beta,
                      gemm_blis_resid(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C0, C, ldc, t));
    gemm_blis_verdict(
        "td_gemm_ref", ta, tb, M, N, K, alpha, beta,
        gemm_blis_resid(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C0, Cr, ldc, t));
    free(t);
    free(tf);
    free(A);
    free(B);
    free(C0);
    free(C);
    free(Cr);
}

static void gemm_vs_ref(void **state)
{
    (void)state;
    /* Odd, non-square sizes, small (edge kernels) and larger (blocked
     * kernels), and vectors on either side. */
    static const int64_t sizes[][3] = {
        {7, 5, 9}, {67, 45, 131}, {1, 33, 17}, {33, 1, 17}, {3, 8, 1}};
    static const float ab[][2] = {{0.7f, -1.3f}, {1.0f, 1.0f}, {-2.0f, 0.0f}, {0.125f, 0.5f}};
    uint64_t seed = 1;
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++)
        for (int tr = 0; tr < 4; tr++)
            for (size_t k = 0; k < sizeof(ab) / sizeof(ab[0]); k++)
                gemm_case(tr & 1, tr & 2, sizes[s][0], sizes[s][1], sizes[s][2], ab[k][0], ab[k][1],
                          (int64_t)(1 + s + k), seed++ * 1000003);
}

/* ---- linear ---------------------------------------------------------------------- */

typedef struct {
    float *in, *w, *b, *out, *G;
    int64_t N, IN, OUT;
} linear_case;

static double linear_loss(void *p)
{
    linear_case *c = p;
    td_linear_forward(NULL, c->out, c->in, c->w, c->b, c->N, c->IN, c->OUT);
    return dot_fd(c->G, c->out, c->N * c->OUT);
}

static void linear_grad(void **state)
{
    (void)state;
    const int64_t N = 5, IN = 7, OUT = 6;
    linear_case c = {frand(N * IN, -1, 1, 11),
                     frand(OUT * IN, -1, 1, 12),
                     frand(OUT, -1, 1, 13),
                     falloc(N * OUT),
                     frand(N * OUT, -1, 1, 14),
                     N,
                     IN,
                     OUT};
    /* forward against a double loop */
    td_linear_forward(NULL, c.out, c.in, c.w, c.b, N, IN, OUT);
    for (int64_t i = 0; i < N; i++)
        for (int64_t o = 0; o < OUT; o++) {
            double want = c.b[o];
            for (int64_t j = 0; j < IN; j++) want += (double)c.in[i * IN + j] * c.w[o * IN + j];
            assert_true(fabs(c.out[i * OUT + o] - want) <= 1e-5 * (1 + fabs(want)));
        }

    float *din = falloc(N * IN), *dw = falloc(OUT * IN), *db = falloc(OUT);
    td_linear_backward(NULL, din, dw, db, c.G, c.in, c.w, N, IN, OUT);
    /* The loss is linear in each of in, w, b, so a large step has no
     * truncation error and shrinks float rounding of the forward (about
     * 1e-7 of each output) relative to the change: tol 1e-4. */
    double *num = dalloc(OUT * IN);
    fd_grad(num, c.in, N * IN, 0.5f, linear_loss, &c);
    check_close("linear din", din, num, N * IN, 1e-4, 1e-2);
    fd_grad(num, c.w, OUT * IN, 0.5f, linear_loss, &c);
    check_close("linear dw", dw, num, OUT * IN, 1e-4, 1e-2);
    fd_grad(num, c.b, OUT, 0.5f, linear_loss, &c);
    check_close("linear db", db, num, OUT, 1e-4, 1e-2);

    /* accumulation, and din == NULL leaves dw, db the same */
    float *g0[3] = {frand(N * IN, -1, 1, 15), frand(OUT * IN, -1, 1, 16), frand(OUT, -1, 1, 17)};
    float *g[3] = {fdup(g0[0], N * IN), fdup(g0[1], OUT * IN), fdup(g0[2], OUT)};
    td_linear_backward(NULL, g[0], g[1], g[2], c.G, c.in, c.w, N, IN, OUT);
    td_linear_backward(NULL, g[0], g[1], g[2], c.G, c.in, c.w, N, IN, OUT);
    check_accumulates("linear din", g0[0], g[0], din, N * IN);
    check_accumulates("linear dw", g0[1], g[1], dw, OUT * IN);
    check_accumulates("linear db", g0[2], g[2], db, OUT);
    float *dw2 = falloc(OUT * IN), *db2 = falloc(OUT);
    td_linear_backward(NULL, NULL, dw2, db2, c.G, c.in, c.w, N, IN, OUT);
    assert_memory_equal(dw2, dw, (size_t)(OUT * IN) * sizeof(float));
    assert_memory_equal(db2, db, (size_t)OUT * sizeof(float));

    for (int i = 0; i < 3; i++) {
        free(g0[i]);
        free(g[i]);
    }
    free(dw2), free(db2), free(num), free(din), free(dw), free(db);
    free(c.in), free(c.w), free(c.b), free(c.out), free(c.G);
}

/* ---- layer norm ------------------------------------------------------------------- */

typedef struct {
    float *in, *w, *b, *G;
    double *out; /* (N, C) double reference */
    int64_t N, C;
    double eps;
} ln_case;

/* LN in double from the float inputs: the reference for the float forward
 * and the function whose finite differences the backward must match (a
 * float forward would be too noisy on the rows with a large mean). */
static void layernorm_ref(double *out, double *mean, double *rstd, const float *in, const float *w,
                          const float *b, int64_t N, int64_t C, double eps)
{
    for (int64_t i = 0; i < N; i++) {
        double m = 0, v = 0;
        for (int64_t j = 0; j < C; j++) m += in[i * C + j];
        m /= (double)C;
        for (int64_t j = 0; j < C; j++) v += (in[i * C + j] - m) * (in[i * C + j] - m);
        v /= (double)C;
        double s = 1.0 / sqrt(v + eps);
        for (int64_t j = 0; j < C; j++) out[i * C + j] = (in[i * C + j] - m) * s * w[j] + b[j];
        if (mean) mean[i] = m;
        if (rstd) rstd[i] = s;
    }
}

static double ln_loss(void *p)
{
    ln_case *c = p;
    layernorm_ref(c->out, NULL, NULL, c->in, c->w, c->b, c->N, c->C, c->eps);
    return dot_dd(c->G, c->out, c->N * c->C);
}

static void layernorm_grad(void **state)
{
    (void)state;
    const int64_t N = 6, C = 70; /* C crosses the 64-column block of the dw/db sums */
    ln_case c = {frand(N * C, -1, 1, 21),
                 frand(C, 0.5f, 1.5f, 22),
                 frand(C, -0.5f, 0.5f, 23),
                 frand(N * C, -1, 1, 24),
                 dalloc(N * C),
                 N,
                 C,
                 1e-12};
    /* Rows with a large mean offset (a one-pass E[x^2] - m^2 variance
     * would lose everything there) and one with a larger spread. */
    for (int64_t j = 0; j < C; j++) {
        c.in[2 * C + j] += 500.0f;
        c.in[4 * C + j] -= 300.0f;
        c.in[5 * C + j] *= 4.0f;
    }
    float *out = falloc(N * C), *mean = falloc(N), *rstd = falloc(N);
    double *mr = dalloc(N), *sr = dalloc(N);
    td_layernorm_forward(out, mean, rstd, c.in, c.w, c.b, N, C, (float)c.eps);
    layernorm_ref(c.out, mr, sr, c.in, c.w, c.b, N, C, c.eps);
    /* The float forward: |x - m| ~ 1 next to m ~ 500 (ulp 3e-5) gives
     * about 1e-4 absolute error in xhat on the offset rows. */
    check_close("layernorm forward", out, c.out, N * C, 5e-4, 0.5);
    check_close("layernorm mean", mean, mr, N, 1e-5, 1e-3);
    check_close("layernorm rstd", rstd, sr, N, 1e-3, 0);

    float *din = falloc(N * C), *dw = falloc(C), *db = falloc(C);
    td_layernorm_backward(din, dw, db, c.G, c.in, mean, rstd, c.w, N, C);
    /* Double-precision FD with h = 1e-3: truncation (h / std)^2 ~ 3e-6.
     * The float backward itself carries the ~1e-4 error of xhat on the
     * offset rows, and din is a difference of terms of size |dy w| whose
     * result can be 10x smaller: tol 2e-3 against the tensor's scale. */
    double *num = dalloc(N * C);
    fd_grad(num, c.in, N * C, 1e-3f, ln_loss, &c);
    check_close("layernorm din", din, num, N * C, 2e-3, 0.1);
    fd_grad(num, c.w, C, 1e-3f, ln_loss, &c);
    check_close("layernorm dw", dw, num, C, 2e-3, 0.1);
    fd_grad(num, c.b, C, 1e-3f, ln_loss, &c);
    check_close("layernorm db", db, num, C, 1e-5, 0.1);
    /* The ordinary rows alone, with a tighter bound: plain float
     * rounding of sums over C = 70 terms. */
    fd_grad(num, c.in, 2 * C, 1e-3f, ln_loss, &c);
    check_close("layernorm din (rows 0-1)", din, num, 2 * C, 2e-4, 0.05);

    float *g0[3] = {frand(N * C, -1, 1, 25), frand(C, -1, 1, 26), frand(C, -1, 1, 27)};
    float *g[3] = {fdup(g0[0], N * C), fdup(g0[1], C), fdup(g0[2], C)};
    for (int k = 0; k < 2; k++)
        td_layernorm_backward(g[0], g[1], g[2], c.G, c.in, mean, rstd, c.w, N, C);
    check_accumulates("layernorm din", g0[0], g[0], din, N * C);
    check_accumulates("layernorm dw", g0[1], g[1], dw, C);
    check_accumulates("layernorm db", g0[2], g[2], db, C);

    for (int i = 0; i < 3; i++) {
        free(g0[i]);
        free(g[i]);
    }
    free(num), free(din), free(dw), free(db), free(out), free(mean), free(rstd), free(mr), free(sr);
    free(c.in), free(c.w), free(c.b), free(c.G), free(c.out);
}

/* ---- GELU and tanh ---------------------------------------------------------------- */

static double gelu_ref(double x, td_act act)
{
    if (act == TD_ACT_GELU) return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    return 0.5 * x * (1.0 + tanh(sqrt(2.0 / 3.14159265358979323846) * (x + 0.044715 * x * x * x)));
}

typedef struct {
    float *x, *G;
    int64_t n;
    int kind; /* 0 gelu, 1 gelu_tanh, 2 tanh */
} elt_case;

static double elt_loss(void *p)
{
    elt_case *c = p;
    double s = 0;
    for (int64_t i = 0; i < c->n; i++) {
        double x = c->x[i];
        double y =
            c->kind == 2 ? tanh(x) : gelu_ref(x, c->kind == 0 ? TD_ACT_GELU : TD_ACT_GELU_TANH);
        s += (double)c->G[i] * y;
    }
    return s;
}

static void gelu_values(void **state)
{
    (void)state;
    const float x[5] = {1.0f, -1.0f, 0.0f, 2.0f, -3.0f};
    float y[5], yt[5];
    td_gelu_forward(y, NULL, x, 5, TD_ACT_GELU, TD_MATH_LIBM);
    td_gelu_forward(yt, NULL, x, 5, TD_ACT_GELU_TANH, TD_MATH_LIBM);
    /* x Phi(x): Phi(1) = 0.8413447461, Phi(2) = 0.9772498681, Phi(-3) = 0.0013498980 */
    const double want[5] = {0.8413447461, -0.1586552539, 0.0, 1.9544997361, -0.0040496941};
    /* tanh form: 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3))) */
    const double want_t[5] = {0.8411919906, -0.1588080094, 0.0, 1.9545976941, -0.0036373921};
    for (int i = 0; i < 5; i++) {
        /* 3e-7: float rounding plus the tail cancellation at -3; the two
         * forms differ by 1.5e-4 at 1, so each is told from the other. */
        if (!(fabs(y[i] - want[i]) <= 3e-7 * fmax(1.0, fabs(want[i]))))
            fail_msg("gelu(%g) = %.9g, want %.9g", (double)x[i], (double)y[i], want[i]);
        if (!(fabs(yt[i] - want_t[i]) <= 3e-7 * fmax(1.0, fabs(want_t[i]))))
            fail_msg("gelu_tanh(%g) = %.9g, want %.9g", (double)x[i], (double)yt[i], want_t[i]);
    }
    /* and over a range, against the double formulas */
    const int64_t n = 801;
    float *xs = falloc(n), *ys = falloc(n);
    double *ref = dalloc(n);
    for (int64_t i = 0; i < n; i++) xs[i] = -8.0f + 0.02f * (float)i;
    for (int kind = 0; kind < 3; kind++) {
        td_act act = kind == 0 ? TD_ACT_GELU : TD_ACT_GELU_TANH;
        if (kind == 2)
            td_tanh_forward(ys, xs, n);
        else
            td_gelu_forward(ys, NULL, xs, n, act, TD_MATH_LIBM);
        for (int64_t i = 0; i < n; i++)
            ref[i] = kind == 2 ? tanh((double)xs[i]) : gelu_ref(xs[i], act);
        /* A few float ulps of |y| where |y| >= 1; below, absolute 1e-6:
         * in the negative tail 1 + erf (or 1 + tanh) cancels, leaving the
         * float ulp of 1 (6e-8) times |x|/2, as in every float GELU. */
        check_close(kind == 0       ? "gelu forward"
                        : kind == 1 ? "gelu_tanh forward"
                                    : "tanh forward",
                    ys, ref, n, 1e-6, 1.0 / 8.0);
    }
    free(xs), free(ys), free(ref);
}

static void elementwise_grad(void **state)
{
    (void)state;
    const int64_t n = 300;
    for (int kind = 0; kind < 3; kind++) {
        const char *name = kind == 0 ? "gelu din" : kind == 1 ? "gelu_tanh din" : "tanh din";
        td_act act = kind == 0 ? TD_ACT_GELU : TD_ACT_GELU_TANH;
        elt_case c = {frand(n, -5, 5, 31 + (uint64_t)kind), frand(n, -1, 1, 34), n, kind};
        float *out = falloc(n), *din = falloc(n), *dgelu = falloc(n);
        if (kind == 2) {
            td_tanh_forward(out, c.x, n);
            td_tanh_backward(din, c.G, out, n);
        } else {
            td_gelu_forward(out, dgelu, c.x, n, act, TD_MATH_LIBM);
            td_gelu_backward(din, c.G, dgelu, n);
        }
        /* FD of the double formula, h = 1e-3: truncation h^2 f'''/6 < 1e-6.
         * The float derivative is good to a few ulps where it is large;
         * near the zero crossing of gelu' (x ~ -0.75) and in the tails,
         * 1 + erf, 1 + tanh and 1 - tanh^2 cancel to ~1e-6 absolute
         * (measured 2.6e-5 of the 1e-2 floor for gelu_tanh): tol 2e-4. */
        double *num = dalloc(n);
        fd_grad(num, c.x, n, 1e-3f, elt_loss, &c);
        check_close(name, din, num, n, 2e-4, 1e-2);

        float *g0 = frand(n, -1, 1, 35), *g = fdup(g0, n);
        for (int k = 0; k < 2; k++) {
            if (kind == 2)
                td_tanh_backward(g, c.G, out, n);
            else
                td_gelu_backward(g, c.G, dgelu, n);
        }
        check_accumulates(name, g0, g, din, n);
        free(g0), free(g), free(num), free(out), free(din), free(dgelu), free(c.x), free(c.G);
    }
}

/* ---- dropout ------------------------------------------------------------------------- */

typedef struct {
    float *x, *G, *out;
    const td_dropout_ctx *ctx;
    int64_t B, Tq, C;
} dropout_case;

static double dropout_loss(void *p)
{
    dropout_case *c = p;
    td_dropout_forward(c->out, c->x, c->ctx, c->B, c->Tq, c->C);
    return dot_fd(c->G, c->out, c->B * c->Tq * c->C);
}

static void dropout_test(void **state)
{
    (void)state;
    const int64_t B = 4, T = 32, C = 64, n = B * T * C;
    const int64_t sample_ids[4] = {7, 1000, 3, 99};
    float *x = frand(n, -2, 2, 41), *G = frand(n, -1, 1, 42), *out = falloc(n), *din = falloc(n);

    /* p = 0: identity, and the backward adds dout unchanged */
    td_dropout_ctx c0 = {
        .p = 0.0f, .seed = 5, .step = 3, .site = 16, .sample_ids = sample_ids, .T_full = T};
    td_dropout_forward(out, x, &c0, B, T, C);
    assert_memory_equal(out, x, (size_t)n * sizeof(float));
    float *acc = frand(n, -1, 1, 44), *acc0 = fdup(acc, n);
    td_dropout_backward(acc, G, &c0, B, T, C);
    for (int64_t i = 0; i < n; i++) assert_true(acc[i] == acc0[i] + G[i]); /* adds, unscaled */
    free(acc), free(acc0);

    /* p = 0.3 */
    const float p = 0.3f;
    td_dropout_ctx c3 = c0;
    c3.p = p;
    float *ones = falloc(n), *mask = falloc(n);
    for (int64_t i = 0; i < n; i++) ones[i] = 1.0f;
    td_dropout_forward(mask, ones, &c3, B, T, C); /* 0 or 1/(1-p) */
    int64_t dropped = 0;
    for (int64_t i = 0; i < n; i++) {
        if (mask[i] == 0.0f)
            dropped++;
        else if (!(fabs(mask[i] - 1.0 / (1.0 - p)) <= 1e-6))
            fail_msg("dropout keeps with scale %.9g, want 1/(1-p) = %.9g", (double)mask[i],
                     1.0 / (1.0 - p));
    }
    /* 8192 draws: the dropped fraction has standard deviation 0.005 */
    double frac = (double)dropped / (double)n;
    if (!(fabs(frac - p) <= 0.02))
        fail_msg("dropped fraction %.4f, want about %.2f", frac, (double)p);

    td_dropout_forward(out, x, &c3, B, T, C);
    for (int64_t i = 0; i < n; i++)
        assert_true(out[i] == x[i] * mask[i] ||
                    fabs(out[i] - (double)x[i] * mask[i]) <= 1e-6 * fabs(x[i] * mask[i]));
    /* in place */
    float *xi = fdup(x, n);
    td_dropout_forward(xi, xi, &c3, B, T, C);
    assert_memory_equal(xi, out, (size_t)n * sizeof(float));
    /* backward: the same mask */
    memset(din, 0, (size_t)n * sizeof(float));
    td_dropout_backward(din, G, &c3, B, T, C);
    for (int64_t i = 0; i < n; i++)
        if (din[i] != G[i] * mask[i] &&
            !(fabs(din[i] - (double)G[i] * mask[i]) <= 1e-6 * fabs(G[i] * mask[i])))
            fail_msg("dropout backward [%lld] = %.9g, forward mask gives %.9g", (long long)i,
                     (double)din[i], (double)(G[i] * mask[i]));
    /* FD: the op is linear in x (tol as for linear) */
    {
        const int64_t b2 = 1, t2 = 8, c2 = 16, n2 = b2 * t2 * c2;
        td_dropout_ctx cs = c3;
        dropout_case dc = {fdup(x, n2), fdup(G, n2), falloc(n2), &cs, b2, t2, c2};
        float *d2 = falloc(n2);
        td_dropout_backward(d2, dc.G, &cs, b2, t2, c2);
        double *num = dalloc(n2);
        fd_grad(num, dc.x, n2, 0.5f, dropout_loss, &dc);
        check_close("dropout din", d2, num, n2, 1e-4, 1e-2);
        float *g0 = frand(n2, -1, 1, 43), *g = fdup(g0, n2);
        td_dropout_backward(g, dc.G, &cs, b2, t2, c2);
        td_dropout_backward(g, dc.G, &cs, b2, t2, c2);
        check_accumulates("dropout din", g0, g, d2, n2);
        free(g0), free(g), free(num), free(d2), free(dc.x), free(dc.G), free(dc.out);
    }

    /* A subset of rows with rows_pos = their original positions draws the
     * same mask as the full sequences (token dropping relies on it). */
    {
        const int64_t Ts = 5;
        const int32_t rows_pos[4 * 5] = {1, 3, 4, 8, 31, 0, 2, 7,  9,  10,
                                         5, 6, 7, 8, 9,  0, 1, 29, 30, 31};
        float *xs = falloc(B * Ts * C), *outs = falloc(B * Ts * C);
        for (int64_t b = 0; b < B; b++)
            for (int64_t r = 0; r < Ts; r++)
                memcpy(xs + (b * Ts + r) * C, x + (b * T + rows_pos[b * Ts + r]) * C,
                       (size_t)C * sizeof(float));
        td_dropout_ctx cs = c3;
        cs.rows_pos = rows_pos;
        td_dropout_forward(outs, xs, &cs, B, Ts, C);
        for (int64_t b = 0; b < B; b++)
            for (int64_t r = 0; r < Ts; r++)
                if (memcmp(outs + (b * Ts + r) * C, out + (b * T + rows_pos[b * Ts + r]) * C,
                           (size_t)C * sizeof(float)) != 0)
                    fail_msg("dropout of sequence %lld row %lld (position %d) differs from the "
                             "full sequence",
                             (long long)b, (long long)r, rows_pos[b * Ts + r]);
        free(xs), free(outs);
    }

    /* The mask depends on the step, the sample and the site. */
    {
        float *m2 = falloc(n);
        td_dropout_ctx cv = c3;
        cv.step = 4;
        td_dropout_forward(m2, ones, &cv, B, T, C);
        assert_true(memcmp(m2, mask, (size_t)n * sizeof(float)) != 0);
        cv = c3;
        cv.site = 17;
        td_dropout_forward(m2, ones, &cv, B, T, C);
        assert_true(memcmp(m2, mask, (size_t)n * sizeof(float)) != 0);
        /* sequence 0 of a batch whose first sample id is another one */
        const int64_t other_ids[4] = {8, 1000, 3, 99};
        cv = c3;
        cv.sample_ids = other_ids;
        td_dropout_forward(m2, ones, &cv, B, T, C);
        assert_true(memcmp(m2, mask, (size_t)(T * C) * sizeof(float)) != 0);
        assert_memory_equal(m2 + T * C, mask + T * C, (size_t)((B - 1) * T * C) * sizeof(float));
        free(m2);
    }
    free(x), free(G), free(out), free(din), free(ones), free(mask), free(xi);
}

/* ---- attention ------------------------------------------------------------------------ */

typedef struct {
    float *q, *k, *v, *G, *key_bias;
    double *keep; /* (B, A, Tq, Tk) dropout scale 0 or 1/(1-p), fixed */
    double *ctx; /* (B, Tq, A*D) */
    int64_t B, Tq, Tk, A, D;
} attn_case;

/* Attention in double with a fixed dropout scale per probability. */
static void attention_ref(double *ctx, const float *q, const float *k, const float *v,
                          const float *key_bias, const double *keep, int64_t B, int64_t Tq,
                          int64_t Tk, int64_t A, int64_t D)
{
    const int64_t H = A * D;
    double *s = dalloc(Tk);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < A; h++)
            for (int64_t i = 0; i < Tq; i++) {
                double mx = -INFINITY, sum = 0;
                for (int64_t j = 0; j < Tk; j++) {
                    double acc = 0;
                    for (int64_t e = 0; e < D; e++)
                        acc += (double)q[(b * Tq + i) * H + h * D + e] *
                            k[(b * Tk + j) * H + h * D + e];
                    s[j] = acc / sqrt((double)D) + key_bias[b * Tk + j];
                    mx = fmax(mx, s[j]);
                }
                for (int64_t j = 0; j < Tk; j++) {
                    s[j] = exp(s[j] - mx);
                    sum += s[j];
                }
                for (int64_t e = 0; e < D; e++) {
                    double acc = 0;
                    for (int64_t j = 0; j < Tk; j++)
                        acc += s[j] / sum * keep[((b * A + h) * Tq + i) * Tk + j] *
                            v[(b * Tk + j) * H + h * D + e];
                    ctx[(b * Tq + i) * H + h * D + e] = acc;
                }
            }
    free(s);
}

static double attn_loss(void *p)
{
    attn_case *c = p;
    attention_ref(c->ctx, c->q, c->k, c->v, c->key_bias, c->keep, c->B, c->Tq, c->Tk, c->A, c->D);
    return dot_dd(c->G, c->ctx, c->B * c->Tq * c->A * c->D);
}

static void attention_grad_case(float p_drop, bool pd_is_p)
{
    const int64_t B = 2, Tq = 3, Tk = 5, A = 2, D = 4, H = A * D;
    const int64_t sample_ids[2] = {11, 12};
    td_dropout_ctx drop = {
        .p = p_drop, .seed = 9, .step = 2, .site = 20, .sample_ids = sample_ids, .T_full = Tk};
    attn_case c = {frand(B * Tq * H, -1.5f, 1.5f, 51),
                   frand(B * Tk * H, -1.5f, 1.5f, 52),
                   frand(B * Tk * H, -1, 1, 53),
                   frand(B * Tq * H, -1, 1, 54),
                   falloc(B * Tk),
                   dalloc(B * A * Tq * Tk),
                   dalloc(B * Tq * H),
                   B,
                   Tq,
                   Tk,
                   A,
                   D};
    /* sequence 1: keys 1 and 4 are padding */
    c.key_bias[1 * Tk + 1] = -10000.0f;
    c.key_bias[1 * Tk + 4] = -10000.0f;
    float *ctx = falloc(B * Tq * H), *P = falloc(B * A * Tq * Tk);
    float *Pd = pd_is_p ? P : falloc(B * A * Tq * Tk);
    td_attention_forward(NULL, ctx, P, Pd, c.q, c.k, c.v, c.key_bias, &drop, B, Tq, Tk, A, D, TD_MATH_LIBM);

    /* The mask, read off the forward (fixed: the backward regenerates it). */
    int64_t n_kept = 0, n_dropped = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < A; h++)
            for (int64_t i = 0; i < Tq; i++) {
                double rowsum = 0;
                for (int64_t j = 0; j < Tk; j++) {
                    int64_t at = ((b * A + h) * Tq + i) * Tk + j;
                    rowsum += P[at];
                    bool masked = c.key_bias[b * Tk + j] != 0.0f;
                    if (masked) {
                        if (!(P[at] <= 1e-6f))
                            fail_msg("masked key %lld of sequence %lld has probability %g",
                                     (long long)j, (long long)b, (double)P[at]);
                        c.keep[at] = 0;
                        continue;
                    }
                    c.keep[at] = Pd[at] == 0.0f ? 0.0 : 1.0 / (1.0 - p_drop);
                    if (Pd[at] == 0.0f)
                        n_dropped++;
                    else
                        n_kept++;
                    if (Pd[at] != 0.0f && !(fabs(Pd[at] - P[at] / (1.0 - p_drop)) <= 1e-6 * P[at]))
                        fail_msg("attention dropout scale: pd %.9g, p %.9g", (double)Pd[at],
                                 (double)P[at]);
                }
                if (!(fabs(rowsum - 1.0) <= 1e-6)) fail_msg("attention row sums to %.9g", rowsum);
            }
    if (p_drop > 0)
        assert_true(n_dropped > 0 && n_kept > 0);
    else
        assert_true(n_dropped == 0);

    attention_ref(c.ctx, c.q, c.k, c.v, c.key_bias, c.keep, B, Tq, Tk, A, D);
    check_close("attention forward", ctx, c.ctx, B * Tq * H, 1e-5, 1e-2);

    float *dq = falloc(B * Tq * H), *dk = falloc(B * Tk * H), *dv = falloc(B * Tk * H),
          *scratch = falloc(B * A * Tq * Tk);
    td_attention_backward(NULL, dq, dk, dv, scratch, c.G, P, Pd, c.q, c.k, c.v, &drop, B, Tq, Tk, A, D);
    /* FD of the double reference, h = 1e-3: truncation ~1e-6 of the
     * gradient's scale; the float backward (softmax in float, GEMMs over
     * <= 5 terms) is good to ~1e-6, tol 1e-4 with a floor for entries
     * that are sums of cancelling terms. */
    double *num = dalloc(B * Tk * H);
    const char *sfx = p_drop > 0 ? " (attention dropout)" : "";
    char name[64];
    fd_grad(num, c.q, B * Tq * H, 1e-3f, attn_loss, &c);
    snprintf(name, sizeof(name), "attention dq%s", sfx);
    check_close(name, dq, num, B * Tq * H, 1e-4, 1e-2);
    fd_grad(num, c.k, B * Tk * H, 1e-3f, attn_loss, &c);
    snprintf(name, sizeof(name), "attention dk%s", sfx);
    check_close(name, dk, num, B * Tk * H, 1e-4, 1e-2);
    fd_grad(num, c.v, B * Tk * H, 1e-3f, attn_loss, &c);
    snprintf(name, sizeof(name), "attention dv%s", sfx);
    check_close(name, dv, num, B * Tk * H, 1e-4, 1e-2);
    /* masked keys receive nothing */
    for (int64_t e = 0; e < H; e++)
        for (int64_t j = 1; j < Tk; j += 3) {
            assert_true(fabsf(dk[(1 * Tk + j) * H + e]) <= 1e-7f);
            assert_true(fabsf(dv[(1 * Tk + j) * H + e]) <= 1e-7f);
        }

    float *g0[3] = {frand(B * Tq * H, -1, 1, 55), frand(B * Tk * H, -1, 1, 56),
                    frand(B * Tk * H, -1, 1, 57)};
    float *g[3] = {fdup(g0[0], B * Tq * H), fdup(g0[1], B * Tk * H), fdup(g0[2], B * Tk * H)};
    for (int r = 0; r < 2; r++)
        td_attention_backward(NULL, g[0], g[1], g[2], scratch, c.G, P, Pd, c.q, c.k, c.v, &drop, B, Tq,
                              Tk, A, D);
    check_accumulates("attention dq", g0[0], g[0], dq, B * Tq * H);
    check_accumulates("attention dk", g0[1], g[1], dk, B * Tk * H);
    check_accumulates("attention dv", g0[2], g[2], dv, B * Tk * H);

    for (int i = 0; i < 3; i++) {
        free(g0[i]);
        free(g[i]);
    }
    if (!pd_is_p) free(Pd);
    free(num), free(dq), free(dk), free(dv), free(scratch), free(ctx), free(P);
    free(c.q), free(c.k), free(c.v), free(c.G), free(c.key_bias), free(c.keep), free(c.ctx);
}

static void attention_grad(void **state)
{
    (void)state;
    attention_grad_case(0.0f, true);
    attention_grad_case(0.0f, false);
    attention_grad_case(0.25f, false);
}

/* Queries that are a subset of the positions (rows_pos), against all keys,
 * give the same rows and the same attention-dropout mask as the full
 * sequence; with a subset of keys too (keys_pos) the mask of every kept
 * (query, key) pair is the full one's. */
static void attention_subset(void **state)
{
    (void)state;
    const int64_t B = 2, T = 6, A = 2, D = 4, H = A * D, Ts = 3;
    const int64_t sample_ids[2] = {40, 41};
    const int32_t rows_pos[2 * 3] = {1, 2, 5, 0, 3, 4};
    const int32_t keys_pos[2 * 3] = {0, 2, 5, 0, 3, 4};
    td_dropout_ctx drop = {
        .p = 0.3f, .seed = 77, .step = 5, .site = 21, .sample_ids = sample_ids, .T_full = T};
    float *q = frand(B * T * H, -1, 1, 61), *k = frand(B * T * H, -1, 1, 62),
          *v = frand(B * T * H, -1, 1, 63);
    float *kb = falloc(B * T);
    kb[1 * T + 5] = -10000.0f;
    float *ctx = falloc(B * T * H), *P = falloc(B * A * T * T), *Pd = falloc(B * A * T * T);
    td_attention_forward(NULL, ctx, P, Pd, q, k, v, kb, &drop, B, T, T, A, D, TD_MATH_LIBM);

    float *qs = falloc(B * Ts * H), *ks = falloc(B * Ts * H), *vs = falloc(B * Ts * H),
          *kbs = falloc(B * Ts);
    for (int64_t b = 0; b < B; b++)
        for (int64_t r = 0; r < Ts; r++) {
            memcpy(qs + (b * Ts + r) * H, q + (b * T + rows_pos[b * Ts + r]) * H,
                   (size_t)H * sizeof(float));
            memcpy(ks + (b * Ts + r) * H, k + (b * T + keys_pos[b * Ts + r]) * H,
                   (size_t)H * sizeof(float));
            memcpy(vs + (b * Ts + r) * H, v + (b * T + keys_pos[b * Ts + r]) * H,
                   (size_t)H * sizeof(float));
            kbs[b * Ts + r] = kb[b * T + keys_pos[b * Ts + r]];
        }
    /* queries subset, all keys */
    float *ctx1 = falloc(B * Ts * H), *P1 = falloc(B * A * Ts * T), *Pd1 = falloc(B * A * Ts * T);
    td_dropout_ctx d1 = drop;
    d1.rows_pos = rows_pos;
    td_attention_forward(NULL, ctx1, P1, Pd1, qs, k, v, kb, &d1, B, Ts, T, A, D, TD_MATH_LIBM);
    for (int64_t b = 0; b < B; b++)
        for (int64_t r = 0; r < Ts; r++) {
            int64_t t = rows_pos[b * Ts + r];
            double *want = dalloc(H);
            for (int64_t e = 0; e < H; e++) want[e] = ctx[(b * T + t) * H + e];
            check_close("attention subset of queries: ctx", ctx1 + (b * Ts + r) * H, want, H, 1e-5,
                        1e-2);
            free(want);
            for (int64_t h = 0; h < A; h++)
                for (int64_t j = 0; j < T; j++) {
                    float full = Pd[((b * A + h) * T + t) * T + j];
                    float sub = Pd1[((b * A + h) * Ts + r) * T + j];
                    if ((full == 0.0f) != (sub == 0.0f) || fabsf(full - sub) > 1e-6f * fabsf(full))
                        fail_msg("attention subset of queries: pd[b=%lld h=%lld q=%lld k=%lld] "
                                 "%.9g, full %.9g",
                                 (long long)b, (long long)h, (long long)t, (long long)j,
                                 (double)sub, (double)full);
                }
        }
    /* queries and keys subsets: same keep/drop decision per pair */
    float *ctx2 = falloc(B * Ts * H), *P2 = falloc(B * A * Ts * Ts), *Pd2 = falloc(B * A * Ts * Ts);
    td_dropout_ctx d2 = d1;
    d2.keys_pos = keys_pos;
    td_attention_forward(NULL, ctx2, P2, Pd2, qs, ks, vs, kbs, &d2, B, Ts, Ts, A, D, TD_MATH_LIBM);
    int64_t compared = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < A; h++)
            for (int64_t r = 0; r < Ts; r++)
                for (int64_t s = 0; s < Ts; s++) {
                    int64_t t = rows_pos[b * Ts + r], u = keys_pos[b * Ts + s];
                    float pf = P[((b * A + h) * T + t) * T + u],
                          pdf = Pd[((b * A + h) * T + t) * T + u];
                    float ps = P2[((b * A + h) * Ts + r) * Ts + s],
                          pds = Pd2[((b * A + h) * Ts + r) * Ts + s];
                    if (pf == 0.0f || ps == 0.0f) continue; /* masked key */
                    compared++;
                    if ((pdf == 0.0f) != (pds == 0.0f))
                        fail_msg("attention subset of keys: pair (q=%lld, k=%lld) of b=%lld h=%lld "
                                 "is %s "
                                 "in the full sequence but %s in the subset",
                                 (long long)t, (long long)u, (long long)b, (long long)h,
                                 pdf == 0.0f ? "dropped" : "kept",
                                 pds == 0.0f ? "dropped" : "kept");
                }
    assert_true(compared >= 30);
    free(q), free(k), free(v), free(kb), free(ctx), free(P), free(Pd);
    free(qs), free(ks), free(vs), free(kbs), free(ctx1), free(P1), free(Pd1), free(ctx2), free(P2),
        free(Pd2);
}

/* ---- embeddings ------------------------------------------------------------------------- */

typedef struct {
    float *word, *pos, *type, *G, *out;
    const int32_t *ids, *seg;
    int64_t B, T, C;
} emb_case;

static double emb_loss(void *p)
{
    emb_case *c = p;
    td_embeddings_forward(c->out, c->ids, c->seg, c->word, c->pos, c->type, c->B, c->T, c->C);
    return dot_fd(c->G, c->out, c->B * c->T * c->C);
}

static void embeddings_grad(void **state)
{
    (void)state;
    const int64_t B = 2, T = 5, C = 70, Vw = 6, P = 8, Ty = 2;
    /* id 3 four times (in both sequences), id 4 never; positions 5..7 unused */
    const int32_t ids[10] = {3, 1, 3, 3, 0, 1, 5, 3, 2, 1};
    const int32_t seg[10] = {0, 0, 0, 1, 1, 0, 0, 1, 1, 1};
    emb_case c = {frand(Vw * C, -1, 1, 71),
                  frand(P * C, -1, 1, 72),
                  frand(Ty * C, -1, 1, 73),
                  frand(B * T * C, -1, 1, 74),
                  falloc(B * T * C),
                  ids,
                  seg,
                  B,
                  T,
                  C};
    td_embeddings_forward(c.out, ids, seg, c.word, c.pos, c.type, B, T, C);
    for (int64_t i = 0; i < B * T; i++)
        for (int64_t e = 0; e < C; e++) {
            double want =
                (double)c.word[ids[i] * C + e] + c.pos[(i % T) * C + e] + c.type[seg[i] * C + e];
            assert_true(fabs(c.out[i * C + e] - want) <= 4 * U_F * 3);
        }
    float *dw = falloc(Vw * C), *dp = falloc(P * C), *dt = falloc(Ty * C);
    td_embeddings_backward(dw, dp, dt, c.G, ids, seg, B, T, C);
    /* linear in the tables: a large step, tol 1e-4 (see linear) */
    double *num = dalloc(P * C);
    fd_grad(num, c.word, Vw * C, 0.5f, emb_loss, &c);
    check_close("embeddings dword", dw, num, Vw * C, 1e-4, 1e-2);
    fd_grad(num, c.pos, P * C, 0.5f, emb_loss, &c);
    check_close("embeddings dpos", dp, num, P * C, 1e-4, 1e-2);
    fd_grad(num, c.type, Ty * C, 0.5f, emb_loss, &c);
    check_close("embeddings dtype", dt, num, Ty * C, 1e-4, 1e-2);
    for (int64_t e = 0; e < C; e++) {
        assert_true(dw[4 * C + e] == 0.0f);
        for (int64_t t = T; t < P; t++) assert_true(dp[t * C + e] == 0.0f);
    }

    float *g0[3] = {frand(Vw * C, -1, 1, 75), frand(P * C, -1, 1, 76), frand(Ty * C, -1, 1, 77)};
    float *g[3] = {fdup(g0[0], Vw * C), fdup(g0[1], P * C), fdup(g0[2], Ty * C)};
    for (int r = 0; r < 2; r++) td_embeddings_backward(g[0], g[1], g[2], c.G, ids, seg, B, T, C);
    check_accumulates("embeddings dword", g0[0], g[0], dw, Vw * C);
    check_accumulates("embeddings dpos", g0[1], g[1], dp, P * C);
    check_accumulates("embeddings dtype", g0[2], g[2], dt, Ty * C);
    for (int i = 0; i < 3; i++) {
        free(g0[i]);
        free(g[i]);
    }
    free(num), free(dw), free(dp), free(dt);
    free(c.word), free(c.pos), free(c.type), free(c.G), free(c.out);
}

/* ---- cross-entropy ----------------------------------------------------------------------- */

typedef struct {
    float *logits;
    const int32_t *labels;
    const float *scale;
    int64_t N, V;
} ce_case;

/* -log softmax(logits)[label] in double. */
static double ce_ref(const float *row, int32_t label, int64_t V)
{
    double mx = -INFINITY, sum = 0;
    for (int64_t j = 0; j < V; j++) mx = fmax(mx, row[j]);
    for (int64_t j = 0; j < V; j++) sum += exp((double)row[j] - mx);
    return log(sum) - ((double)row[label] - mx);
}

static double ce_loss(void *p)
{
    ce_case *c = p;
    double s = 0;
    for (int64_t i = 0; i < c->N; i++)
        s += (double)c->scale[i] * ce_ref(c->logits + i * c->V, c->labels[i], c->V);
    return s;
}

static void crossentropy_grad(void **state)
{
    (void)state;
    const int64_t N = 6, V = 9;
    const int32_t labels[6] = {2, 0, 8, 5, 3, 1};
    const float scale[6] = {1.0f, 0.5f, 0.0f, 2.0f, 0.25f, 1.0f}; /* row 2: a weight-0 prediction */
    ce_case c = {frand(N * V, -3, 3, 81), labels, scale, N, V};
    for (int64_t j = 0; j < V; j++)
        c.logits[3 * V + j] += 80.0f; /* exp would overflow without the max shift */
    c.logits[4 * V + 3] = 6.0f; /* row 4: the label is the arg-max */
    /* row 5: a tie for the maximum between classes 1 and 4: the first wins */
    c.logits[5 * V + 1] = 5.0f;
    c.logits[5 * V + 4] = 5.0f;
    float *probs = fdup(c.logits, N * V), *loss = falloc(N);
    uint8_t correct[6];
    td_crossentropy_forward(loss, correct, probs, labels, N, V, TD_MATH_LIBM);
    for (int64_t i = 0; i < N; i++) {
        const float *row = c.logits + i * V;
        double want = ce_ref(row, labels[i], V);
        if (!(fabs(loss[i] - want) <= 1e-5 * fmax(fabs(want), 1e-2)))
            fail_msg("crossentropy loss[%lld] = %.9g, -log softmax = %.9g", (long long)i,
                     (double)loss[i], want);
        int64_t arg = 0;
        for (int64_t j = 1; j < V; j++)
            if (row[j] > row[arg]) arg = j;
        if (correct[i] != (arg == labels[i]))
            fail_msg("crossentropy correct[%lld] = %d, arg-max %lld, label %d", (long long)i,
                     correct[i], (long long)arg, labels[i]);
        double psum = 0, mx = -INFINITY, z = 0;
        for (int64_t j = 0; j < V; j++) mx = fmax(mx, row[j]);
        for (int64_t j = 0; j < V; j++) z += exp((double)row[j] - mx);
        for (int64_t j = 0; j < V; j++) {
            double pw = exp((double)row[j] - mx) / z;
            psum += probs[i * V + j];
            assert_true(fabs(probs[i * V + j] - pw) <= 1e-6 * fmax(pw, 1e-3));
        }
        assert_true(fabs(psum - 1.0) <= 1e-5);
    }
    assert_true(correct[4] == 1);
    assert_true(correct[5] == 1); /* the label 1 is the first of the tied maxima */
    /* the same tie with the label on the second maximum is not correct */
    {
        float row[9];
        memcpy(row, c.logits + 5 * V, sizeof(row));
        const int32_t lab = 4;
        float l;
        uint8_t ok;
        td_crossentropy_forward(&l, &ok, row, &lab, 1, V, TD_MATH_LIBM);
        assert_true(ok == 0);
    }

    float *dl = falloc(N * V);
    td_crossentropy_backward(dl, probs, labels, scale, N, V);
    /* FD of the double loss, h = 1e-3 (truncation ~1e-7); the float
     * gradient is (p - onehot) scale with p good to ~1e-7: tol 1e-4. */
    double *num = dalloc(N * V);
    fd_grad(num, c.logits, N * V, 1e-3f, ce_loss, &c);
    check_close("crossentropy dlogits", dl, num, N * V, 1e-4, 1e-3);
    for (int64_t j = 0; j < V; j++) assert_true(dl[2 * V + j] == 0.0f); /* weight 0 */

    float *g0 = frand(N * V, -1, 1, 82), *g = fdup(g0, N * V);
    td_crossentropy_backward(g, probs, labels, scale, N, V);
    td_crossentropy_backward(g, probs, labels, scale, N, V);
    check_accumulates("crossentropy dlogits", g0, g, dl, N * V);
    free(g0), free(g), free(num), free(dl), free(probs), free(loss), free(c.logits);
}

/* ---- thread-count invariance ---------------------------------------------------------------- */

/* Runs the kernels with the given number of threads; out receives every
 * result, concatenated. */
static int64_t run_threaded(float *out, int threads)
{
    td_blas_set_threads(threads);
    int64_t o = 0;
    { /* layernorm backward: rows split, and 3 column blocks of dw/db */
        const int64_t N = 37, C = 150;
        float *in = frand(N * C, -1, 1, 91), *w = frand(C, 0.5f, 1.5f, 92),
              *b = frand(C, -1, 1, 93);
        float *dout = frand(N * C, -1, 1, 94), *y = falloc(N * C), *m = falloc(N), *s = falloc(N);
        td_layernorm_forward(y, m, s, in, w, b, N, C, 1e-12f);
        float *din = out + o, *dw = din + N * C, *db = dw + C;
        td_layernorm_backward(din, dw, db, dout, in, m, s, w, N, C);
        o += N * C + 2 * C;
        memcpy(out + o, y, (size_t)(N * C) * sizeof(float));
        o += N * C;
        free(in), free(w), free(b), free(dout), free(y), free(m), free(s);
    }
    { /* embeddings backward with many repeated ids */
        const int64_t B = 3, T = 17, C = 150, Vw = 5;
        int32_t ids[3 * 17], seg[3 * 17];
        for (int i = 0; i < B * T; i++) {
            ids[i] = (i * 7) % (int)Vw;
            seg[i] = (i / 5) % 2;
        }
        float *dout = frand(B * T * C, -1, 1, 95);
        float *dw = out + o, *dp = dw + Vw * C, *dt = dp + T * C;
        td_embeddings_backward(dw, dp, dt, dout, ids, seg, B, T, C);
        o += Vw * C + T * C + 2 * C;
        free(dout);
    }
    { /* linear forward and backward */
        const int64_t N = 33, IN = 70, OUT = 150;
        float *in = frand(N * IN, -1, 1, 96), *w = frand(OUT * IN, -1, 1, 97),
              *b = frand(OUT, -1, 1, 98);
        float *dout = frand(N * OUT, -1, 1, 99);
        td_linear_forward(NULL, out + o, in, w, b, N, IN, OUT);
        o += N * OUT;
        float *din = out + o, *dw = din + N * IN, *db = dw + OUT * IN;
        td_linear_backward(NULL, din, dw, db, dout, in, w, N, IN, OUT);
        o += N * IN + OUT * IN + OUT;
        free(in), free(w), free(b), free(dout);
    }
    { /* attention forward (and backward) with masking and dropout */
        const int64_t B = 2, T = 19, A = 3, D = 8, H = A * D;
        const int64_t sid[2] = {5, 6};
        td_dropout_ctx drop = {
            .p = 0.1f, .seed = 3, .step = 1, .site = 22, .sample_ids = sid, .T_full = T};
        float *q = frand(B * T * H, -1, 1, 100), *k = frand(B * T * H, -1, 1, 101),
              *v = frand(B * T * H, -1, 1, 102);
        float *kb = falloc(B * T), *dctx = frand(B * T * H, -1, 1, 103), *scratch = falloc(B * A * T * T);
        for (int64_t t = 15; t < T; t++) kb[T + t] = -10000.0f;
        float *ctx = out + o, *P = ctx + B * T * H, *Pd = P + B * A * T * T;
        td_attention_forward(NULL, ctx, P, Pd, q, k, v, kb, &drop, B, T, T, A, D, TD_MATH_LIBM);
        o += B * T * H + 2 * B * A * T * T;
        float *dq = out + o, *dk = dq + B * T * H, *dv = dk + B * T * H;
        td_attention_backward(NULL, dq, dk, dv, scratch, dctx, P, Pd, q, k, v, &drop, B, T, T, A, D);
        o += 3 * B * T * H;
        free(q), free(k), free(v), free(kb), free(dctx), free(scratch);
    }
    { /* dropout forward */
        const int64_t B = 3, T = 17, C = 40;
        const int64_t sid[3] = {1, 2, 3};
        td_dropout_ctx drop = {
            .p = 0.1f, .seed = 3, .step = 1, .site = 16, .sample_ids = sid, .T_full = T};
        float *x = frand(B * T * C, -1, 1, 104);
        td_dropout_forward(out + o, x, &drop, B, T, C);
        o += B * T * C;
        free(x);
    }
    td_blas_set_threads(1);
    return o;
}

static void thread_invariance(void **state)
{
    (void)state;
    const int64_t cap = 200000;
    float *one = falloc(cap), *two = falloc(cap);
    int64_t n1 = run_threaded(one, 1);
    assert_true(n1 <= cap);
    int64_t n2 = run_threaded(two, 2);
    assert_int_equal(n1, n2);
    for (int64_t i = 0; i < n1; i++)
        if (memcmp(&one[i], &two[i], sizeof(float)) != 0)
            fail_msg("result %lld differs between 1 and 2 threads: %.9g vs %.9g", (long long)i,
                     (double)one[i], (double)two[i]);
    free(one), free(two);
}

/* The vectorized exp, erf and tanh of the bf16 path against double libm:
 * exp within 4 ulps (relative 2.5e-7) over the range softmax and
 * cross-entropy use; erf and tanh within 2e-7 absolute (their values are
 * at most 1, so a few ulps of 1). */
static void vector_math(void **state)
{
    (void)state;
    double worst_exp = 0, worst_erf = 0, worst_gelu = 0;
    for (int i = 0; i <= 200000; i++) {
        float x = -87.0f + (87.0f + 88.0f) * (float)i / 200000.0f;
        double e = exp((double)x);
        double rel = fabs((double)td_vexpf(x) - e) / e;
        if (rel > worst_exp) worst_exp = rel;
        float z = -6.0f + 12.0f * (float)i / 200000.0f;
        double de = fabs((double)td_verff(z) - erf((double)z));
        if (de > worst_erf) worst_erf = de;
    }
    assert_true(td_vexpf(-200.0f) == 0.0f && td_vexpf(-10000.0f) == 0.0f);
    assert_true(isinf(td_vexpf(100.0f)));
    assert_true(td_verff(0.0f) == 0.0f && td_verff(10.0f) == 1.0f && td_verff(-10.0f) == -1.0f);
    /* GELU (erf and tanh forms) and its derivative as the ops compute them */
    const int64_t n = 4001;
    float *x = falloc(n), *y = falloc(n), *yv = falloc(n), *d = falloc(n), *dv = falloc(n);
    for (int64_t i = 0; i < n; i++) x[i] = -10.0f + 20.0f * (float)i / (float)(n - 1);
    for (int act = 0; act < 2; act++) {
        td_gelu_forward(y, d, x, n, (td_act)act, TD_MATH_LIBM);
        td_gelu_forward(yv, dv, x, n, (td_act)act, TD_MATH_VECTOR);
        for (int64_t i = 0; i < n; i++) {
            double scale = fabs((double)x[i]) > 1 ? fabs((double)x[i]) : 1;
            double e1 = fabs((double)yv[i] - y[i]) / scale, e2 = fabs((double)dv[i] - d[i]) / scale;
            if (e1 > worst_gelu) worst_gelu = e1;
            if (e2 > worst_gelu) worst_gelu = e2;
        }
    }
    print_message("vector math: exp %.2e relative, erf %.2e, GELU and derivative %.2e (of max(|x|, 1))\n",
                  worst_exp, worst_erf, worst_gelu);
    assert_true(worst_exp < 2.5e-7);
    assert_true(worst_erf < 2e-7);
    assert_true(worst_gelu < 5e-7);
    free(x), free(y), free(yv), free(d), free(dv);
}

int main(void)
{
    td_blas_set_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(gemm_ref_hand),     cmocka_unit_test(gemm_vs_ref),
        cmocka_unit_test(linear_grad),       cmocka_unit_test(layernorm_grad),
        cmocka_unit_test(gelu_values),       cmocka_unit_test(vector_math),       cmocka_unit_test(elementwise_grad),
        cmocka_unit_test(dropout_test),      cmocka_unit_test(attention_grad),
        cmocka_unit_test(attention_subset),  cmocka_unit_test(embeddings_grad),
        cmocka_unit_test(crossentropy_grad), cmocka_unit_test(thread_invariance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
