/* Whole-model tests: finite-difference gradient checks of the full loss
 * (with and without token dropping, dropout active), keep == T equals the
 * full model bit for bit, padding does not change the outputs, and a
 * one-layer case whose loss is worked out by hand. */
#include "tokdrop/train/config.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tokdrop/train/data.h"
#include "tokdrop/nn/model.h"
#include "tokdrop/base/rng.h"

enum { V = 23, H = 8, L = 4, A = 2, I = 12, T = 8, B = 3, MP = 3 };

static td_model_config tiny_config(double dropout)
{
    td_model_config c;
    memset(&c, 0, sizeof(c));
    c.vocab_size = V;
    c.hidden = H;
    c.layers = L;
    c.heads = A;
    c.intermediate = I;
    c.max_position = 16;
    c.type_vocab = 2;
    c.hidden_act = TD_ACT_GELU;
    c.hidden_dropout = dropout;
    c.attention_dropout = dropout;
    c.initializer_range = 0.3; /* large weights: gradients well above float noise */
    return c;
}

/* B sequences with [CLS]-like id 2 at 0, lengths 8, 6, 5 (then padding id 0),
 * masked predictions sorted by position, NSP labels 0/1. */
static void tiny_batch(td_batch *bt)
{
    td_batch_init(bt, B, T, MP);
    static const int lengths[B] = {8, 6, 5};
    uint64_t key = td_rng_key(7, 0, 0, 0);
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            bool real = t < lengths[b];
            bt->input_ids[b * T + t] = !real ? 0 : t == 0 ? 2 : 5 + (int32_t)td_rng_below(key, (uint64_t)(b * T + t), V - 5);
            bt->input_mask[b * T + t] = real;
            bt->segment_ids[b * T + t] = real && t >= lengths[b] / 2;
        }
        /* predictions at positions 1, 3 (and 4 for b = 0); weight 0 after */
        int pos[MP] = {1, 3, b == 0 ? 4 : 0};
        for (int j = 0; j < MP; j++) {
            bt->mlm_positions[b * MP + j] = pos[j];
            bt->mlm_ids[b * MP + j] = pos[j] ? 5 + (b * 7 + j * 3) % (V - 5) : 0;
            bt->mlm_weights[b * MP + j] = pos[j] ? 1.0f : 0.0f;
        }
        bt->nsp_labels[b] = b % 2;
        bt->sample_ids[b] = 100 + b;
    }
}

static td_forward_args args_for(const td_batch *bt, const int32_t *kept, int64_t keep, int64_t f,
                                bool training)
{
    td_forward_args a = {
        .batch = bt, .kept = kept, .keep = keep, .first_layer = f, .training = training,
        .seed = 11, .step = 3,
        .mlm_scale = 1.0f / (float)td_batch_count_masked(bt), .nsp_scale = 1.0f / B,
    };
    return a;
}

static double loss_of(td_model *m, const td_forward_args *a)
{
    td_forward_stats st;
    td_model_forward(m, a, &st);
    return a->mlm_scale * st.mlm_loss_sum + a->nsp_scale * st.nsp_loss_sum;
}

/* Central differences on a few entries of every tensor. The loss is a
 * float32 computation, so the step is large (1e-2, the loss is smooth at
 * that scale: second-order error ~1e-5) and the tolerance allows for float
 * rounding in the difference: |fd - an| <= 2e-3 + 2e-2 |an|, and over all
 * checked entries the relative error of the whole vector <= 1e-2. */
static void gradient_check(td_model *m, const td_forward_args *a)
{
    td_model_zero_grads(m);
    loss_of(m, a);
    td_model_backward(m, NULL, NULL);
    double err2 = 0, ref2 = 0;
    int n_checked = 0, n_nonzero_tensors = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const td_tensor_info *ti = &m->tensors[i];
        bool tensor_nonzero = false;
        for (int k = 0; k < 4; k++) {
            int64_t j = (int64_t)(td_rng_below(td_rng_key(5, (uint64_t)i, (uint64_t)k, 0), 0,
                                               (uint32_t)ti->n_elems));
            float *w = m->params + ti->offset + j;
            float saved = *w, eps = 1e-2f;
            *w = saved + eps;
            double lp = loss_of(m, a);
            *w = saved - eps;
            double lm = loss_of(m, a);
            *w = saved;
            double fd = (lp - lm) / (2.0 * eps);
            double an = m->grads[ti->offset + j];
            if (fabs(fd - an) > 2e-3 + 2e-2 * fabs(an))
                fail_msg("%s[%lld]: analytic %.6g, finite difference %.6g", ti->name, (long long)j, an, fd);
            err2 += (fd - an) * (fd - an);
            ref2 += an * an;
            tensor_nonzero |= an != 0;
            n_checked++;
        }
        n_nonzero_tensors += tensor_nonzero;
    }
    assert_true(sqrt(err2 / ref2) < 1e-2);
    /* every tensor but the key biases (softmax is shift invariant) and the
     * unused rows sampled by chance should have moved */
    assert_true(n_nonzero_tensors > m->n_tensors / 2);
    assert_true(n_checked == 4 * m->n_tensors);
}

static void init_model(td_model *m, double dropout)
{
    td_error err;
    td_model_config c = tiny_config(dropout);
    assert_int_equal(td_model_init(m, &c, B, T, MP, &err), TD_OK);
    td_model_init_weights(m, 42);
    /* non-trivial LayerNorm parameters and biases so every path matters */
    for (int i = 0; i < m->n_tensors; i++) {
        const td_tensor_info *ti = &m->tensors[i];
        if (ti->ndim == 1) {
            float base = strstr(ti->name, "LayerNorm.weight") ? 1.0f : 0.0f;
            tu_fill_uniform(m->params + ti->offset, ti->n_elems, base - 0.2f, base + 0.2f, 100 + (uint64_t)i);
        }
    }
}

static void test_gradcheck_full(void **state)
{
    (void)state;
    td_model m;
    td_batch bt;
    init_model(&m, 0.1);
    tiny_batch(&bt);
    td_forward_args a = args_for(&bt, NULL, 0, 0, true);
    gradient_check(&m, &a);
    td_batch_free(&bt);
    td_model_free(&m);
}

/* kept positions by hand: the first real tokens of each sequence */
static void some_kept(int32_t *kept, int64_t K)
{
    static const int32_t rows[B][T] = {{0, 1, 3, 4, 6, 7, 2, 5}, {0, 1, 2, 3, 5, 4, 6, 7}, {0, 1, 3, 4, 2, 5, 6, 7}};
    for (int b = 0; b < B; b++) {
        int32_t tmp[T];
        memcpy(tmp, rows[b], sizeof(tmp));
        for (int64_t i = 0; i < K; i++) /* ascending insertion */
            for (int64_t j = i + 1; j < K; j++)
                if (tmp[j] < tmp[i]) {
                    int32_t s = tmp[i];
                    tmp[i] = tmp[j];
                    tmp[j] = s;
                }
        memcpy(kept + b * K, tmp, (size_t)K * sizeof(int32_t));
    }
}

static void test_gradcheck_dropping(void **state)
{
    (void)state;
    td_model m;
    td_batch bt;
    init_model(&m, 0.1);
    tiny_batch(&bt);
    int32_t kept[B * 4];
    some_kept(kept, 4);
    for (int64_t f = 0; f <= L - 2; f++) { /* f = 0, a middle layer, and L-2 */
        td_forward_args a = args_for(&bt, kept, 4, f, true);
        gradient_check(&m, &a);
    }
    td_batch_free(&bt);
    td_model_free(&m);
}

static void keep_all_equals_full(td_precision precision)
{
    td_model m;
    td_batch bt;
    td_error err;
    init_model(&m, 0.1);
    if (td_model_set_precision(&m, precision, &err) != TD_OK) {
        td_model_free(&m);
        print_message("precision not available on this CPU, test not run: %s\n", err.msg);
        skip();
    }
    tiny_batch(&bt);
    int32_t kept[B * T];
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) kept[b * T + t] = t;
    float *g_full = malloc((size_t)m.n_params * sizeof(float));
    td_forward_stats st;

    td_forward_args full = args_for(&bt, NULL, 0, 0, true);
    td_model_zero_grads(&m);
    td_model_forward(&m, &full, &st);
    double mlm_full = st.mlm_loss_sum, nsp_full = st.nsp_loss_sum;
    td_model_backward(&m, NULL, NULL);
    memcpy(g_full, m.grads, (size_t)m.n_params * sizeof(float));

    for (int64_t f = 0; f <= L - 2; f++) {
        td_forward_args drop = args_for(&bt, kept, T, f, true);
        td_model_zero_grads(&m);
        td_model_forward(&m, &drop, &st);
        assert_true(st.mlm_loss_sum == mlm_full);
        assert_true(st.nsp_loss_sum == nsp_full);
        td_model_backward(&m, NULL, NULL);
        assert_memory_equal(m.grads, g_full, (size_t)m.n_params * sizeof(float));
    }
    free(g_full);
    td_batch_free(&bt);
    td_model_free(&m);
}

static void test_keep_all_equals_full(void **state)
{
    (void)state;
    keep_all_equals_full(TD_PRECISION_FP32);
}

static void test_keep_all_equals_full_bf16(void **state)
{
    (void)state;
    keep_all_equals_full(TD_PRECISION_BF16);
}

/* bf16 (SPEC section 9) against fp32, whose gradients the finite
 * differences above check. Each product rounds both inputs to 8
 * significant bits (relative error u = 2^-8 each); through the ~8 products
 * and LayerNorms of a layer and 4 layers these errors add up roughly as a
 * random walk, so the loss should agree to a few u (bound 2e-2 relative)
 * and the gradient vector, a longer chain, to about 10 u in norm (bound
 * 5e-2). The bounds are loose by design; a missing or doubled term, a
 * product in the wrong layout, or a stale weight copy is off by O(1). */
static void test_bf16_close_to_fp32(void **state)
{
    (void)state;
    td_model m32, m16;
    td_batch bt;
    td_error err;
    init_model(&m32, 0.1);
    init_model(&m16, 0.1);
    if (td_model_set_precision(&m16, TD_PRECISION_BF16, &err) != TD_OK) {
        td_model_free(&m32);
        td_model_free(&m16);
        print_message("bf16 not available on this CPU, test not run: %s\n", err.msg);
        skip();
    }
    assert_int_equal(td_gemm_engine_precision(m16.gemm), TD_PRECISION_BF16);
    tiny_batch(&bt);
    int32_t kept[B * 4];
    some_kept(kept, 4);
    for (int with_drop = 0; with_drop < 2; with_drop++) {
        td_forward_args a = with_drop ? args_for(&bt, kept, 4, 1, true) : args_for(&bt, NULL, 0, 0, true);
        td_model_zero_grads(&m32);
        td_model_zero_grads(&m16);
        double l32 = loss_of(&m32, &a), l16 = loss_of(&m16, &a);
        td_model_backward(&m32, NULL, NULL);
        td_model_backward(&m16, NULL, NULL);
        double d2 = 0, r2 = 0;
        for (int64_t i = 0; i < m32.n_params; i++) {
            double d = (double)m16.grads[i] - (double)m32.grads[i];
            d2 += d * d;
            r2 += (double)m32.grads[i] * m32.grads[i];
        }
        double loss_rel = fabs(l16 - l32) / l32, grad_rel = sqrt(d2 / r2);
        print_message("bf16 vs fp32%s: loss %.6f vs %.6f (rel %.2e), gradient rel %.2e\n",
                      with_drop ? " (dropping)" : "", l16, l32, loss_rel, grad_rel);
        assert_true(loss_rel < 2e-2);
        assert_true(grad_rel < 5e-2);
        assert_true(l16 != l32); /* the products really ran in bf16 */
    }
    /* the weight copy follows an update */
    for (int64_t i = 0; i < m16.n_params; i++) {
        m16.params[i] *= 0.5f;
        m32.params[i] *= 0.5f;
    }
    td_model_params_changed(&m16);
    td_forward_args a = args_for(&bt, NULL, 0, 0, true);
    double l32 = loss_of(&m32, &a), l16 = loss_of(&m16, &a);
    assert_true(fabs(l16 - l32) / l32 < 2e-2);
    td_batch_free(&bt);
    td_model_free(&m32);
    td_model_free(&m16);
}

/* Changing what sits at padded positions changes nothing; appending more
 * padding changes nothing beyond float summation order. */
static void test_padding_invariance(void **state)
{
    (void)state;
    td_model m;
    td_batch bt;
    init_model(&m, 0.0);
    tiny_batch(&bt);
    td_forward_args a = args_for(&bt, NULL, 0, 0, false);
    double base = loss_of(&m, &a);
    for (int64_t i = 0; i < B * T; i++)
        if (!bt.input_mask[i]) {
            bt.input_ids[i] = 7 + (int32_t)(i % 5);
            bt.segment_ids[i] = 1;
        }
    assert_true(loss_of(&m, &a) == base);

    /* the same sequences in a longer padded batch (T + 4) */
    td_model m2;
    td_error err;
    td_model_config c = tiny_config(0.0);
    assert_int_equal(td_model_init(&m2, &c, B, T + 4, MP, &err), TD_OK);
    memcpy(m2.params, m.params, (size_t)m.n_params * sizeof(float));
    td_batch wide;
    td_batch_init(&wide, B, T + 4, MP);
    for (int b = 0; b < B; b++) {
        memcpy(wide.input_ids + b * (T + 4), bt.input_ids + b * T, T * sizeof(int32_t));
        memcpy(wide.input_mask + b * (T + 4), bt.input_mask + b * T, T * sizeof(int32_t));
        memcpy(wide.segment_ids + b * (T + 4), bt.segment_ids + b * T, T * sizeof(int32_t));
    }
    memcpy(wide.mlm_positions, bt.mlm_positions, B * MP * sizeof(int32_t));
    memcpy(wide.mlm_ids, bt.mlm_ids, B * MP * sizeof(int32_t));
    memcpy(wide.mlm_weights, bt.mlm_weights, B * MP * sizeof(float));
    memcpy(wide.nsp_labels, bt.nsp_labels, B * sizeof(int32_t));
    memcpy(wide.sample_ids, bt.sample_ids, B * sizeof(int64_t));
    td_forward_args aw = args_for(&wide, NULL, 0, 0, false);
    double wider = loss_of(&m2, &aw);
    assert_true(fabs(wider - base) <= 1e-6 * fabs(base));
    td_batch_free(&wide);
    td_model_free(&m2);
    td_batch_free(&bt);
    td_model_free(&m);
}

/* One layer, H = 2, weights that are identities or zero, worked by hand:
 * with two channels LayerNorm maps every non-constant row (a, b) to
 * sign(a - b) * (1, -1) (eps 1e-12 is negligible), which keeps the chain
 * computable on paper.
 *   ids (1, 2), word[1] = (1, 0), word[2] = (0, 1): h0 = (1,-1), (-1,1)
 *   Wq = Wk = 0: uniform attention; Wv = Wo = I: ctx = mean = (0, 0), so r1 = h0
 *   y = LN(h0) = h0; W1 = W2 = I: r2 = y + gelu(y), z = LN(r2) = y
 *   MLM at position 1, label 2: Wt = I, hm = LN(gelu((-1, 1))) = (-1, 1),
 *     logits = hm word^T = (0, -1, 1, 0), CE = log(1 + e^-1 + e + 1) - 1
 *   NSP label 1: pooled = tanh(z0) = (t, -t), t = tanh(1); Ws = I:
 *     logits (t, -t), CE = log(e^t + e^-t) + t
 *   d loss / d cls.predictions.bias = softmax(logits) - onehot(2). */
static void test_one_layer_by_hand(void **state)
{
    (void)state;
    td_model_config c;
    memset(&c, 0, sizeof(c));
    c.vocab_size = 4;
    c.hidden = 2;
    c.layers = 1;
    c.heads = 1;
    c.intermediate = 2;
    c.max_position = 2;
    c.type_vocab = 2;
    c.hidden_act = TD_ACT_GELU;
    c.initializer_range = 0.02;
    td_model m;
    td_error err;
    assert_int_equal(td_model_init(&m, &c, 1, 2, 1, &err), TD_OK); /* params all 0 */
    const float eye[4] = {1, 0, 0, 1};
    m.p.word[2] = 1;  /* word[1] = (1, 0) */
    m.p.word[5] = 1;  /* word[2] = (0, 1) */
    float *ln_w[] = {m.p.emb_ln_w, m.p.layers[0].ln1_w, m.p.layers[0].ln2_w, m.p.tr_ln_w};
    for (int i = 0; i < 4; i++) ln_w[i][0] = ln_w[i][1] = 1;
    float *identities[] = {m.p.layers[0].v_w, m.p.layers[0].ao_w, m.p.layers[0].ff1_w,
                           m.p.layers[0].ff2_w, m.p.tr_w, m.p.pool_w, m.p.nsp_w};
    for (int i = 0; i < 7; i++) memcpy(identities[i], eye, sizeof(eye));

    td_batch bt;
    td_batch_init(&bt, 1, 2, 1);
    bt.input_ids[0] = 1;
    bt.input_ids[1] = 2;
    bt.input_mask[0] = bt.input_mask[1] = 1;
    bt.mlm_positions[0] = 1;
    bt.mlm_ids[0] = 2;
    bt.mlm_weights[0] = 1;
    bt.nsp_labels[0] = 1;
    td_forward_args a = {.batch = &bt, .training = false, .mlm_scale = 1, .nsp_scale = 1};
    td_forward_stats st;
    td_model_zero_grads(&m);
    td_model_forward(&m, &a, &st);
    double e = exp(1.0), t = tanh(1.0);
    double mlm = log(2.0 + 1.0 / e + e) - 1.0;
    double nsp = log(exp(t) + exp(-t)) + t;
    assert_true(fabs(st.mlm_loss_sum - mlm) < 1e-6);
    assert_true(fabs(st.nsp_loss_sum - nsp) < 1e-6);
    assert_int_equal(st.mlm_correct, 1);
    assert_int_equal(st.nsp_correct, 0);
    td_model_backward(&m, NULL, NULL);
    double z = 2.0 + 1.0 / e + e;
    double expect[4] = {1 / z, (1 / e) / z, e / z - 1.0, 1 / z};
    for (int v = 0; v < 4; v++) assert_true(fabs(m.g.mlm_bias[v] - expect[v]) < 1e-6);
    td_batch_free(&bt);
    td_model_free(&m);
}

/* The backward reports gradient ranges heads, layers L-1..0, embeddings;
 * each range is final when reported (a snapshot then equals the end
 * result), and together they cover every tensor exactly once. */
typedef struct {
    const td_model *m;
    float *snapshot;
    int64_t offsets[L + 2];
    int n;
} ready_log;

static void record_ready(void *ctx, int64_t offset, int64_t n_elems)
{
    ready_log *log = ctx;
    assert_true(log->n < L + 2);
    log->offsets[log->n++] = offset;
    memcpy(log->snapshot + offset, log->m->grads + offset, (size_t)n_elems * sizeof(float));
}

static void test_grads_ready_ranges(void **state)
{
    (void)state;
    td_model m;
    td_batch bt;
    init_model(&m, 0.1);
    tiny_batch(&bt);
    int32_t kept[B * 4];
    some_kept(kept, 4);
    td_forward_args a = args_for(&bt, kept, 4, 1, true);
    ready_log log = {.m = &m, .snapshot = calloc((size_t)m.n_params, sizeof(float))};
    td_model_zero_grads(&m);
    loss_of(&m, &a);
    td_model_backward(&m, record_ready, &log);
    assert_int_equal(log.n, L + 2);
    int64_t off, n;
    td_model_heads_range(&m, &off, &n);
    assert_int_equal(log.offsets[0], off);
    for (int64_t l = L - 1; l >= 0; l--) {
        td_model_layer_range(&m, l, &off, &n);
        assert_int_equal(log.offsets[L - l], off);
    }
    td_model_embeddings_range(&m, &off, &n);
    assert_int_equal(log.offsets[L + 1], off);
    for (int i = 0; i < m.n_tensors; i++) {
        const td_tensor_info *ti = &m.tensors[i];
        assert_memory_equal(log.snapshot + ti->offset, m.grads + ti->offset,
                            (size_t)ti->n_elems * sizeof(float));
    }
    free(log.snapshot);
    td_batch_free(&bt);
    td_model_free(&m);
}

/* td_config_estimate_memory, which refuses configs too large for a node,
 * counts what td_model_init allocates: the parameters exactly, the
 * activation arena from below within its alignment padding. */
static void test_config_memory_estimate(void **state)
{
    (void)state;
    for (int attention_dropout = 0; attention_dropout <= 1; attention_dropout++) {
        td_config cfg;
        td_config_defaults(&cfg);
        cfg.model.vocab_size = 1000;
        cfg.model.hidden = 64;
        cfg.model.layers = 3;
        cfg.model.heads = 4;
        cfg.model.intermediate = 256;
        cfg.model.max_position = 64;
        cfg.model.type_vocab = 3;
        cfg.model.attention_dropout = attention_dropout ? 0.1 : 0.0;
        cfg.train.micro_batch = 4;
        cfg.data.seq_len = 32;
        cfg.data.max_pred = 5;
        td_model m;
        td_error err;
        assert_int_equal(td_model_init(&m, &cfg.model, 4, 32, 5, &err), TD_OK);
        int64_t n_params = 0;
        for (int i = 0; i < m.n_tensors; i++) n_params += m.tensors[i].n_elems;
        td_memory_estimate e = td_config_estimate_memory(&cfg);
        assert_true(e.n_params == (double)n_params);
        assert_true(e.act_bytes <= (double)m.acts_bytes);
        assert_true(e.act_bytes >= 0.95 * (double)m.acts_bytes);
        td_model_free(&m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_layer_by_hand),
        cmocka_unit_test(test_gradcheck_full),
        cmocka_unit_test(test_gradcheck_dropping),
        cmocka_unit_test(test_keep_all_equals_full),
        cmocka_unit_test(test_keep_all_equals_full_bf16),
        cmocka_unit_test(test_bf16_close_to_fp32),
        cmocka_unit_test(test_padding_invariance),
        cmocka_unit_test(test_grads_ready_ranges),
        cmocka_unit_test(test_config_memory_estimate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
