/* Optimizer (SPEC section 3): the learning-rate schedule, one AdamW and one
 * LAMB step against values worked out by hand in double, the trust-ratio
 * corner cases, bias correction over two steps, and thread-count
 * independence. */
#include "testutil.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "tokdrop/nn/optim.h"

/* Relative tolerance for float results against double hand values: the
 * step does its element maths in float (about 6e-8 relative per operation). */
#define TOL 2e-6

static void assert_close(double got, double want, double tol, const char *what, int idx)
{
    double err = fabs(got - want) / (fabs(want) > 1e-3 ? fabs(want) : 1e-3);
    if (!(err <= tol))
        fail_msg("%s[%d]: got %.10g, want %.10g (rel err %.3g > %.3g)", what, idx, got, want, err,
                 tol);
}

static td_optim_config base_config(void)
{
    td_optim_config c = {
        .name = TD_OPTIM_LAMB,
        .lr = 1e-3,
        .end_lr = 1e-5,
        .warmup_steps = 10,
        .power = 1.0,
        .beta1 = 0.9,
        .beta2 = 0.999,
        .eps = 1e-6,
        .weight_decay = 0.01,
        .max_grad_norm = 1.0,
    };
    return c;
}

/* ---- learning rate ---------------------------------------------------------- */

static void test_lr_schedule(void **state)
{
    (void)state;
    td_optim_config c = base_config(); /* lr 1e-3, end 1e-5, warmup 10, total 110 */
    /* warmup: lr * t / 10 */
    assert_close(td_optim_lr(&c, 110, 1), 1e-4, 1e-12, "warmup t=1", 0);
    assert_close(td_optim_lr(&c, 110, 5), 5e-4, 1e-12, "warmup t=5", 0);
    assert_close(td_optim_lr(&c, 110, 10), 1e-3, 1e-12, "warmup t=10 (peak)", 0);
    /* decay: 1e-5 + 0.99e-3 * (1 - (t-10)/100)
     * t=11: 1e-5 + 0.99e-3 * 0.99 = 0.0009901
     * t=60: 1e-5 + 0.99e-3 * 0.5  = 0.000505 */
    assert_close(td_optim_lr(&c, 110, 11), 0.0009901, 1e-12, "decay t=11", 0);
    assert_close(td_optim_lr(&c, 110, 60), 0.000505, 1e-12, "decay t=60", 0);
    /* end and past the end: end_lr */
    assert_close(td_optim_lr(&c, 110, 110), 1e-5, 1e-12, "end t=110", 0);
    assert_close(td_optim_lr(&c, 110, 111), 1e-5, 1e-12, "past end t=111", 0);
    assert_close(td_optim_lr(&c, 110, 1000), 1e-5, 1e-12, "past end t=1000", 0);
    /* power 2, t=60: 1e-5 + 0.99e-3 * 0.5^2 = 0.0002575
     *          t=85: 1e-5 + 0.99e-3 * 0.25^2 = 0.000071875 */
    c.power = 2.0;
    assert_close(td_optim_lr(&c, 110, 60), 0.0002575, 1e-12, "power 2 t=60", 0);
    assert_close(td_optim_lr(&c, 110, 85), 0.000071875, 1e-12, "power 2 t=85", 0);
    assert_close(td_optim_lr(&c, 110, 10), 1e-3, 1e-12, "power 2 peak", 0);
    /* no warmup, end 0, total 100: t=1: 1e-3 * 0.99; t=100: 0 */
    c = base_config();
    c.warmup_steps = 0;
    c.end_lr = 0.0;
    assert_close(td_optim_lr(&c, 100, 1), 0.99e-3, 1e-12, "no warmup t=1", 0);
    assert_close(td_optim_lr(&c, 100, 50), 0.5e-3, 1e-12, "no warmup t=50", 0);
    assert_true(td_optim_lr(&c, 100, 100) == 0.0);
    /* total == warmup: warmup, then end_lr */
    c = base_config();
    assert_close(td_optim_lr(&c, 10, 10), 1e-3, 1e-12, "total==warmup t=10", 0);
    assert_close(td_optim_lr(&c, 10, 11), 1e-5, 1e-12, "total==warmup t=11", 0);
}

/* ---- a tiny two-tensor model ------------------------------------------------ */

/* W (2, 2) decayed at offset 0, b (2) no_decay at offset 4. */
static void tiny_table(td_tensor_info t[2])
{
    memset(t, 0, 2 * sizeof(*t));
    strcpy(t[0].name, "layer.dense.weight");
    t[0].offset = 0;
    t[0].n_elems = 4;
    t[0].ndim = 2;
    t[0].shape[0] = 2;
    t[0].shape[1] = 2;
    strcpy(t[1].name, "layer.dense.bias");
    t[1].offset = 4;
    t[1].n_elems = 2;
    t[1].ndim = 1;
    t[1].shape[0] = 2;
    t[1].no_decay = true;
}

static const float W0[6] = {0.5f, -1.0f, 2.0f, 0.25f, 0.1f, -0.2f};
static const float G0[6] = {0.3f, -0.4f, 1.2f, 0.0f, 0.5f, -0.6f};

/* ||g||^2 = 0.09 + 0.16 + 1.44 + 0 + 0.25 + 0.36 = 2.3, ||g|| = 1.51657508881031
 * (in double from the float inputs, whose rounding moves it by ~1e-8). */
static double g0_norm(void)
{
    double s = 0;
    for (int i = 0; i < 6; i++) s += (double)G0[i] * (double)G0[i];
    return sqrt(s);
}

/* Expected first step, for either optimizer, in double.
 * With m0 = v0 = 0 and t = 1: m = 0.1 g, v = 0.001 g^2, mh = m / 0.1 = g,
 * vh = v / 0.001 = g^2, so u = g / (|g| + eps) + wd * w, i.e. about
 * sign(g) + wd w; for the zero gradient u = 0 + wd * w.
 * With clipping (max_norm 1): g = g0 / ||g0||. */
static void expected_first_step(double w_out[6], double u_out[6], bool lamb, double clip,
                                double lr)
{
    const double eps = 1e-6, wd = 0.01;
    for (int i = 0; i < 6; i++) {
        double g = (double)G0[i] * clip;
        double m = 0.1 * g, v = 0.001 * g * g;
        double mh = m / (1.0 - 0.9), vh = v / (1.0 - 0.999);
        double decay = i < 4 ? wd : 0.0; /* the bias is no_decay */
        u_out[i] = mh / (sqrt(vh) + eps) + decay * (double)W0[i];
    }
    /* LAMB on W: r = ||w|| / ||u||, ||w|| = sqrt(0.25 + 1 + 4 + 0.0625)
     * = sqrt(5.3125) = 2.3048861143232218; ||u|| ~ sqrt(1.005^2 + 1.01^2 +
     * 1.02^2 + 0.0025^2) ~ 1.7524, r ~ 1.3153. The bias keeps r = 1 (its own
     * ratio would be sqrt(0.05)/sqrt(2) ~ 0.158). */
    double r = 1.0;
    if (lamb) {
        double ww = 0, uu = 0;
        for (int i = 0; i < 4; i++) {
            ww += (double)W0[i] * (double)W0[i];
            uu += u_out[i] * u_out[i];
        }
        r = sqrt(ww) / sqrt(uu);
        assert_close(sqrt(ww), 2.3048861143232218, 1e-12, "||w||", 0);
        assert_true(r > 1.30 && r < 1.33);
    }
    for (int i = 0; i < 6; i++) w_out[i] = (double)W0[i] - lr * (i < 4 ? r : 1.0) * u_out[i];
}

static void run_first_step(td_optim_kind kind, double max_norm, bool expect_clip)
{
    td_tensor_info t[2];
    tiny_table(t);
    td_optim_config c = base_config();
    c.name = kind;
    c.warmup_steps = 0;
    c.end_lr = 0.0;
    c.lr = 0.01;
    c.max_grad_norm = max_norm;
    /* lr at t=1 with total 10, no warmup: 0.01 * (1 - 1/10) = 0.009 */
    td_optim opt;
    td_optim_init(&opt, &c, 10, 6);
    float w[6], g[6];
    memcpy(w, W0, sizeof(w));
    memcpy(g, G0, sizeof(g));
    double lr = -1;
    double norm = td_optim_step(&opt, w, g, t, 2, &lr);

    /* the returned norm is the pre-clip one, sqrt(2.3) */
    assert_close(norm, 1.5165750888103102, 1e-7, "norm", 0);
    assert_close(norm, g0_norm(), 1e-12, "norm (from floats)", 0);
    assert_close(lr, 0.009, 1e-12, "lr", 0);
    assert_int_equal(opt.t, 1);

    double clip = expect_clip ? max_norm / g0_norm() : 1.0;
    /* grads come back clipped: g0 * 1/1.5166 = {0.1978, -0.2638, 0.7912, 0, 0.3297, -0.3956} */
    for (int i = 0; i < 6; i++) assert_close(g[i], (double)G0[i] * clip, TOL, "clipped grad", i);
    if (!expect_clip) assert_memory_equal(g, G0, sizeof(g));
    /* moments after one step: m = 0.1 g, v = 0.001 g^2 */
    for (int i = 0; i < 6; i++) {
        double gc = (double)G0[i] * clip;
        assert_close(opt.m[i], 0.1 * gc, TOL, "m", i);
        assert_close(opt.v[i], 0.001 * gc * gc, TOL, "v", i);
    }
    double ew[6], eu[6];
    expected_first_step(ew, eu, kind == TD_OPTIM_LAMB, clip, 0.009);
    for (int i = 0; i < 6; i++) assert_close(w[i], ew[i], TOL, "w", i);
    /* the update is not a no-op: e.g. W[0] moves by about lr * r * 1.005 */
    assert_true(fabs((double)w[0] - (double)W0[0]) > 0.005);
    td_optim_free(&opt);
}

static void test_adamw_step_clipped(void **state)
{
    (void)state;
    run_first_step(TD_OPTIM_ADAMW, 1.0, true);
}

static void test_lamb_step_clipped(void **state)
{
    (void)state;
    run_first_step(TD_OPTIM_LAMB, 1.0, true);
}

static void test_lamb_step_unclipped(void **state)
{
    (void)state;
    /* ||g|| = 1.5166 <= 10: no clipping, grads unchanged bit for bit */
    run_first_step(TD_OPTIM_LAMB, 10.0, false);
    /* max_grad_norm 0 disables clipping */
    run_first_step(TD_OPTIM_ADAMW, 0.0, false);
}

static void test_lamb_adamw_differ(void **state)
{
    (void)state;
    /* The same step under LAMB and AdamW differs on W (ratio ~1.315) and
     * agrees exactly on the no_decay bias (ratio 1 under both). */
    td_tensor_info t[2];
    tiny_table(t);
    td_optim_config c = base_config();
    float wl[6], wa[6], g[6];
    td_optim opt;
    for (int k = 0; k < 2; k++) {
        c.name = k == 0 ? TD_OPTIM_LAMB : TD_OPTIM_ADAMW;
        float *w = k == 0 ? wl : wa;
        td_optim_init(&opt, &c, 100, 6);
        memcpy(w, W0, sizeof(wl));
        memcpy(g, G0, sizeof(g));
        td_optim_step(&opt, w, g, t, 2, NULL);
        td_optim_free(&opt);
    }
    assert_true(wl[0] != wa[0]);
    assert_true(wl[4] == wa[4] && wl[5] == wa[5]);
}

/* ---- trust-ratio corner cases ------------------------------------------------ */

static void test_trust_ratio_zero_norms(void **state)
{
    (void)state;
    td_tensor_info t[2];
    tiny_table(t);
    td_optim_config c = base_config();
    c.warmup_steps = 0;
    c.end_lr = 0.0;
    c.lr = 0.01;
    c.max_grad_norm = 0.0;

    /* ||w|| = 0 on W: r = 1 (not 0), so W = -lr * u with u = g/(|g|+eps)
     * (wd * 0 = 0): W[0] = -0.009 * 0.3/(0.3+1e-6) = -0.00899997 */
    td_optim opt;
    td_optim_init(&opt, &c, 10, 6);
    float w[6] = {0, 0, 0, 0, 0.1f, -0.2f};
    float g[6];
    memcpy(g, G0, sizeof(g));
    td_optim_step(&opt, w, g, t, 2, NULL);
    for (int i = 0; i < 4; i++) {
        double gi = G0[i];
        double u = gi == 0 ? 0.0 : gi / (fabs(gi) + 1e-6);
        assert_close(w[i], -0.009 * u, TOL, "w (||w||=0)", i);
    }
    assert_true(w[0] < -0.0089);
    td_optim_free(&opt);

    /* ||u|| = 0 on W: no gradient and no decay, so u = 0 while ||w|| > 0;
     * r = 1 keeps W unchanged (||w||/||u|| would be inf and inf * 0 NaN). */
    c.weight_decay = 0.0;
    td_optim_init(&opt, &c, 10, 6);
    memcpy(w, W0, sizeof(w));
    float g2[6] = {0, 0, 0, 0, 0.5f, -0.6f};
    td_optim_step(&opt, w, g2, t, 2, NULL);
    for (int i = 0; i < 4; i++) assert_true(w[i] == W0[i]);
    for (int i = 4; i < 6; i++) assert_true(isfinite(w[i]) && w[i] != W0[i]);
    td_optim_free(&opt);
}

/* ---- bias correction over two steps ------------------------------------------ */

static void test_two_steps_bias_correction(void **state)
{
    (void)state;
    td_tensor_info t[2];
    tiny_table(t);
    td_optim_config c = base_config();
    c.warmup_steps = 0;
    c.end_lr = 0.0;
    c.lr = 0.01;
    c.max_grad_norm = 0.0; /* no clipping: the hand values below stay simple */
    td_optim opt;
    td_optim_init(&opt, &c, 10, 6);

    static const float G1[6] = {-0.1f, 0.2f, 0.4f, 0.3f, -0.05f, 0.7f};
    float w[6], g[6];
    memcpy(w, W0, sizeof(w));
    memcpy(g, G0, sizeof(g));
    double lr1, lr2;
    td_optim_step(&opt, w, g, t, 2, &lr1);
    float w1[6];
    memcpy(w1, w, sizeof(w1));
    memcpy(g, G1, sizeof(g));
    td_optim_step(&opt, w, g, t, 2, &lr2);
    assert_int_equal(opt.t, 2);
    /* lr: t=1 0.01 * 0.9 = 0.009, t=2 0.01 * 0.8 = 0.008 */
    assert_close(lr1, 0.009, 1e-12, "lr1", 0);
    assert_close(lr2, 0.008, 1e-12, "lr2", 0);

    /* Step 2 from step 1's state, in double:
     * m2 = 0.9 * (0.1 g0) + 0.1 g1, v2 = 0.999 * (0.001 g0^2) + 0.001 g1^2,
     * mh = m2 / (1 - 0.9^2) = m2 / 0.19, vh = v2 / (1 - 0.999^2) = v2 / 0.001999,
     * u = mh / (sqrt(vh) + 1e-6) + wd * w1 (wd = 0.01 on W, 0 on b).
     * E.g. W[0]: m2 = 0.027 - 0.01 = 0.017, mh = 0.0894737;
     * v2 = 0.999 * 9e-5 + 1e-5 = 9.991e-5, vh = 0.0499800, sqrt = 0.223562;
     * u = 0.400216 + 0.01 * w1[0]. */
    double u[6], m2[6], v2[6];
    for (int i = 0; i < 6; i++) {
        double g0 = G0[i], g1 = G1[i];
        m2[i] = 0.9 * (0.1 * g0) + 0.1 * g1;
        v2[i] = 0.999 * (0.001 * g0 * g0) + 0.001 * g1 * g1;
        double mh = m2[i] / (1.0 - 0.9 * 0.9), vh = v2[i] / (1.0 - 0.999 * 0.999);
        u[i] = mh / (sqrt(vh) + 1e-6) + (i < 4 ? 0.01 * (double)w1[i] : 0.0);
        assert_close(opt.m[i], m2[i], TOL, "m2", i);
        assert_close(opt.v[i], v2[i], TOL, "v2", i);
    }
    assert_close(m2[0], 0.017, 1e-6, "m2[0] by hand", 0); /* float inputs: ~1e-8 */
    assert_close(v2[0], 9.991e-5, 1e-6, "v2[0] by hand", 0);
    assert_close(u[0] - 0.01 * (double)w1[0], 0.0894737 / (0.223562 + 1e-6), 2e-5, "u[0] by hand",
                 0);
    double ww = 0, uu = 0;
    for (int i = 0; i < 4; i++) {
        ww += (double)w1[i] * (double)w1[i];
        uu += u[i] * u[i];
    }
    double r = sqrt(ww) / sqrt(uu);
    for (int i = 0; i < 6; i++) {
        double want = (double)w1[i] - 0.008 * (i < 4 ? r : 1.0) * u[i];
        assert_close(w[i], want, TOL, "w after step 2", i);
    }
    td_optim_free(&opt);
}

/* ---- non-finite gradients ------------------------------------------------------ */

static void test_nonfinite_grad_leaves_state(void **state)
{
    (void)state;
    td_tensor_info t[2];
    tiny_table(t);
    td_optim_config c = base_config();
    td_optim opt;
    td_optim_init(&opt, &c, 100, 6);
    float w[6], g[6];
    memcpy(w, W0, sizeof(w));
    memcpy(g, G0, sizeof(g));
    g[5] = NAN;
    double lr;
    double norm = td_optim_step(&opt, w, g, t, 2, &lr);
    assert_true(isnan(norm));
    assert_true(lr == td_optim_lr(&c, 100, 1));
    assert_int_equal(opt.t, 1); /* the step counts: the schedule follows the step number */
    assert_memory_equal(w, W0, sizeof(w));
    for (int i = 0; i < 6; i++) assert_true(opt.m[i] == 0.0f && opt.v[i] == 0.0f);
    td_optim_free(&opt);
}

/* ---- thread-count independence ------------------------------------------------ */

/* Three tensors, large enough to be split into many chunks, run for three
 * steps with 1 and with 2 threads: every bit must agree. */
static void run_big(int threads, td_optim_kind kind, float *w, float *m, float *v, double norms[3])
{
    enum { N0 = 300001, N1 = 1000, N2 = 70000, NT = N0 + N1 + N2 };
    td_tensor_info t[3];
    memset(t, 0, sizeof(t));
    int64_t sizes[3] = {N0, N1, N2}, off = 0;
    for (int i = 0; i < 3; i++) {
        t[i].offset = off;
        t[i].n_elems = sizes[i];
        t[i].ndim = 1;
        t[i].shape[0] = sizes[i];
        t[i].no_decay = i == 1;
        off += sizes[i];
    }
    omp_set_num_threads(threads);
    td_optim_config c = base_config();
    c.name = kind;
    td_optim opt;
    td_optim_init(&opt, &c, 100, NT);
    tu_fill_uniform(w, NT, -0.1f, 0.1f, 7);
    float *g = malloc(NT * sizeof(float));
    for (int s = 0; s < 3; s++) {
        tu_fill_uniform(g, NT, -0.01f, 0.01f, 100 + (uint64_t)s);
        norms[s] = td_optim_step(&opt, w, g, t, 3, NULL);
    }
    memcpy(m, opt.m, NT * sizeof(float));
    memcpy(v, opt.v, NT * sizeof(float));
    free(g);
    td_optim_free(&opt);
    /* the norm of a chunked array equals a plain double sum up to rounding */
    double s = 0;
    for (int64_t i = 0; i < NT; i++) s += (double)w[i] * (double)w[i];
    assert_close(td_optim_norm(w, NT), sqrt(s), 1e-12, "td_optim_norm", 0);
}

static void test_threads_bit_identical(void **state)
{
    (void)state;
    enum { NT = 300001 + 1000 + 70000 };
    for (int k = 0; k < 2; k++) {
        td_optim_kind kind = k == 0 ? TD_OPTIM_LAMB : TD_OPTIM_ADAMW;
        float *w1 = malloc(NT * sizeof(float)), *w2 = malloc(NT * sizeof(float));
        float *m1 = malloc(NT * sizeof(float)), *m2 = malloc(NT * sizeof(float));
        float *v1 = malloc(NT * sizeof(float)), *v2 = malloc(NT * sizeof(float));
        double n1[3], n2[3];
        run_big(1, kind, w1, m1, v1, n1);
        run_big(2, kind, w2, m2, v2, n2);
        assert_memory_equal(w1, w2, NT * sizeof(float));
        assert_memory_equal(m1, m2, NT * sizeof(float));
        assert_memory_equal(v1, v2, NT * sizeof(float));
        assert_memory_equal(n1, n2, sizeof(n1));
        free(w1), free(w2), free(m1), free(m2), free(v1), free(v2);
    }
    omp_set_num_threads(1);
}

static void test_init_zeroed_aligned(void **state)
{
    (void)state;
    td_optim_config c = base_config();
    td_optim opt;
    td_optim_init(&opt, &c, 50, 1001);
    assert_int_equal(opt.t, 0);
    assert_int_equal(opt.n_params, 1001);
    assert_int_equal(opt.total_steps, 50);
    assert_true(((uintptr_t)opt.m % 64) == 0 && ((uintptr_t)opt.v % 64) == 0);
    for (int i = 0; i < 1001; i++) assert_true(opt.m[i] == 0.0f && opt.v[i] == 0.0f);
    td_optim_free(&opt);
    assert_null(opt.m);
    assert_null(opt.v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lr_schedule),
        cmocka_unit_test(test_init_zeroed_aligned),
        cmocka_unit_test(test_adamw_step_clipped),
        cmocka_unit_test(test_lamb_step_clipped),
        cmocka_unit_test(test_lamb_step_unclipped),
        cmocka_unit_test(test_lamb_adamw_differ),
        cmocka_unit_test(test_trust_ratio_zero_norms),
        cmocka_unit_test(test_two_steps_bias_correction),
        cmocka_unit_test(test_nonfinite_grad_leaves_state),
        cmocka_unit_test(test_threads_bit_identical),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
