/* BERT forward and backward with the token-dropping layer schedule
 * (layer_role below: written once, the forward records each layer's role
 * in its plan and the backward replays it). Kept rows are in position
 * order and dropout counters use original positions, so keep == T
 * reproduces the full model bit for bit. */
#include "tokdrop/nn/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokdrop/nn/ops.h"
#include "tokdrop/base/rng.h"

#define TD_ALIGN_FLOATS 16 /* 64 bytes */

/* The token-drop layer schedule (SPEC section 2), f = first_layer, with
 * 0 <= f <= L-2. Without dropping every layer is LAYER_ALL. */
typedef enum {
    LAYER_ALL,    /* layers 0..f-1: all T positions */
    LAYER_DROP,   /* layer f: queries/residual/FFN on the K kept rows, keys and
                     values from all T rows (h_f is kept aside for the skip) */
    LAYER_KEPT,   /* layers f+1..L-2: the K kept rows only */
    LAYER_REJOIN, /* layer L-1: all T rows, the kept ones from layer L-2, the
                     dropped ones rejoining from h_f */
} layer_role;

static layer_role role_of(int64_t l, int64_t L, int64_t f, bool dropping)
{
    if (!dropping || l < f) return LAYER_ALL;
    if (l == f) return LAYER_DROP;
    return l < L - 1 ? LAYER_KEPT : LAYER_REJOIN;
}

/* How one layer was run in the last forward; the backward replays it. */
typedef struct {
    layer_role role;
    const float *xq;        /* (B*Tq, H) query / residual input */
    const float *xkv;       /* (B*Tk, H) key / value input */
    int64_t Tq, Tk;
    const int32_t *rows_pos; /* (B, Tq) original positions, NULL = 0..T-1 */
    const int32_t *keys_pos; /* (B, Tk) */
    const float *key_bias;   /* (B, Tk) */
} layer_plan;

typedef struct {
    float *q, *k, *v;            /* (B*Tq, H), (B*Tk, H), (B*Tk, H) */
    float *p, *pd;               /* (B, A, Tq, Tk) softmax, after dropout */
    float *ctx;                  /* (B*Tq, H) */
    float *r1, *ln1_mean, *ln1_rstd, *y;  /* LN1 input (B*Tq, H), stats (B*Tq), output */
    float *f1, *g;               /* (B*Tq, I) before GELU, then GELU's derivative; after GELU */
    float *r2, *ln2_mean, *ln2_rstd, *z;  /* LN2 input, stats, output = layer output */
    layer_plan plan;
} layer_acts;

struct td_model_acts {
    float *arena;
    /* forward */
    float *emb;                  /* (N, H) embedding sum, LN input */
    float *emb_mean, *emb_rstd;  /* (N) */
    float *h0;                   /* (N, H) after LN and dropout */
    layer_acts *layers;          /* (L) */
    float *gathered;             /* (B*K, H) kept rows of h_f, layer f's queries */
    float *merged;               /* (N, H) input of the last layer when dropping */
    float *key_bias_full;        /* (B, T) */
    float *key_bias_kept;        /* (B, K) */
    /* heads */
    int32_t *pred_rows;          /* (R) row b*T+pos of each real prediction */
    int32_t *pred_slots;         /* (R) slot b*max_pred+j */
    int32_t *pred_labels;        /* (R) */
    float *pred_scale;           /* (R) */
    float *pred_loss_r;          /* (R) */
    uint8_t *pred_correct;       /* (R) */
    float *pred_loss;            /* (B, max_pred) */
    float *xm, *t1, *t2, *tr_mean, *tr_rstd, *hm; /* (R, H), stats (R) */
    float *logits;               /* (R, V) probabilities after the forward */
    float *cls, *pooled;         /* (B, H) */
    float *nsp_logits;           /* (B, 2) probabilities after the forward */
    float *nsp_loss, *nsp_scale; /* (B) */
    int32_t *nsp_labels;         /* (B) */
    uint8_t *nsp_correct;        /* (B) */
    int64_t R;
    /* backward scratch */
    float *dh_a, *dh_b, *dh_skip, *dq_rows;  /* (N, H) */
    float *d_r2, *d_tmp, *d_r1, *d_ctx, *dq, *dk, *dv; /* (N, H) */
    float *d_g, *d_f1;           /* (N, I) */
    float *d_att;                /* (B, A, T, T) */
    float *d_logits;             /* (R_max, V) */
    float *d_hm, *d_t2, *d_t1, *d_xm; /* (R_max, H) */
    float *d_pooled, *d_pool_pre, *d_cls; /* (B, H) */
    float *d_nsp;                /* (B, 2) */
    float *pool_pre;             /* (B, H) */
    /* the last forward */
    td_forward_args args;
    bool dropping;
};

/* ---- the parameter table -------------------------------------------------- */

typedef struct {
    td_tensor_info *t;
    int n, cap;
    int64_t offset;
} table_builder;

static void add_tensor(table_builder *tb, const char *name, int64_t rows, int64_t cols,
                       bool no_decay)
{
    if (tb->n == tb->cap) {
        tb->cap = tb->cap ? 2 * tb->cap : 64;
        tb->t = realloc(tb->t, (size_t)tb->cap * sizeof(*tb->t));
        TD_ASSERT(tb->t != NULL);
    }
    td_tensor_info *ti = &tb->t[tb->n++];
    memset(ti, 0, sizeof(*ti));
    snprintf(ti->name, sizeof(ti->name), "%s", name);
    ti->offset = tb->offset;
    ti->ndim = cols > 0 ? 2 : 1;
    ti->shape[0] = rows;
    ti->shape[1] = cols > 0 ? cols : 0;
    ti->n_elems = rows * (cols > 0 ? cols : 1);
    ti->no_decay = no_decay;
    tb->offset += (ti->n_elems + TD_ALIGN_FLOATS - 1) / TD_ALIGN_FLOATS * TD_ALIGN_FLOATS;
}

static void build_table(table_builder *tb, const td_model *m)
{
    const int64_t H = m->H, I = m->I;
    char name[TD_TENSOR_NAME_LEN];
    add_tensor(tb, "bert.embeddings.word_embeddings.weight", m->V, H, false);
    add_tensor(tb, "bert.embeddings.position_embeddings.weight", m->P, H, false);
    add_tensor(tb, "bert.embeddings.token_type_embeddings.weight", m->cfg.type_vocab, H, false);
    add_tensor(tb, "bert.embeddings.LayerNorm.weight", H, 0, true);
    add_tensor(tb, "bert.embeddings.LayerNorm.bias", H, 0, true);
    static const struct {
        const char *suffix;
        int rows_kind, cols_kind; /* 0 = none, 1 = H, 2 = I */
        bool no_decay;
    } layer_tensors[] = {
        {"attention.self.query.weight", 1, 1, false},
        {"attention.self.query.bias", 1, 0, true},
        {"attention.self.key.weight", 1, 1, false},
        {"attention.self.key.bias", 1, 0, true},
        {"attention.self.value.weight", 1, 1, false},
        {"attention.self.value.bias", 1, 0, true},
        {"attention.output.dense.weight", 1, 1, false},
        {"attention.output.dense.bias", 1, 0, true},
        {"attention.output.LayerNorm.weight", 1, 0, true},
        {"attention.output.LayerNorm.bias", 1, 0, true},
        {"intermediate.dense.weight", 2, 1, false},
        {"intermediate.dense.bias", 2, 0, true},
        {"output.dense.weight", 1, 2, false},
        {"output.dense.bias", 1, 0, true},
        {"output.LayerNorm.weight", 1, 0, true},
        {"output.LayerNorm.bias", 1, 0, true},
    };
    for (int64_t l = 0; l < m->L; l++) {
        for (size_t i = 0; i < sizeof(layer_tensors) / sizeof(layer_tensors[0]); i++) {
            snprintf(name, sizeof(name), "bert.encoder.layer.%lld.%s", (long long)l,
                     layer_tensors[i].suffix);
            int64_t rows = layer_tensors[i].rows_kind == 1 ? H : I;
            int64_t cols = layer_tensors[i].cols_kind == 0 ? 0 : layer_tensors[i].cols_kind == 1 ? H : I;
            add_tensor(tb, name, rows, cols, layer_tensors[i].no_decay);
        }
    }
    add_tensor(tb, "bert.pooler.dense.weight", H, H, false);
    add_tensor(tb, "bert.pooler.dense.bias", H, 0, true);
    add_tensor(tb, "cls.predictions.transform.dense.weight", H, H, false);
    add_tensor(tb, "cls.predictions.transform.dense.bias", H, 0, true);
    add_tensor(tb, "cls.predictions.transform.LayerNorm.weight", H, 0, true);
    add_tensor(tb, "cls.predictions.transform.LayerNorm.bias", H, 0, true);
    add_tensor(tb, "cls.predictions.bias", m->V, 0, true);
    add_tensor(tb, "cls.seq_relationship.weight", 2, H, false);
    add_tensor(tb, "cls.seq_relationship.bias", 2, 0, true);
}

/* Points every field of t into block, in table order. */
static void bind_tensors(td_model_tensors *t, const td_model *m, float *block)
{
    const td_tensor_info *ti = m->tensors;
    int k = 0;
#define NEXT() (block + ti[k++].offset)
    t->word = NEXT();
    t->pos = NEXT();
    t->type = NEXT();
    t->emb_ln_w = NEXT();
    t->emb_ln_b = NEXT();
    for (int64_t l = 0; l < m->L; l++) {
        td_layer_tensors *lt = &t->layers[l];
        lt->q_w = NEXT(); lt->q_b = NEXT();
        lt->k_w = NEXT(); lt->k_b = NEXT();
        lt->v_w = NEXT(); lt->v_b = NEXT();
        lt->ao_w = NEXT(); lt->ao_b = NEXT();
        lt->ln1_w = NEXT(); lt->ln1_b = NEXT();
        lt->ff1_w = NEXT(); lt->ff1_b = NEXT();
        lt->ff2_w = NEXT(); lt->ff2_b = NEXT();
        lt->ln2_w = NEXT(); lt->ln2_b = NEXT();
    }
    t->pool_w = NEXT();
    t->pool_b = NEXT();
    t->tr_w = NEXT();
    t->tr_b = NEXT();
    t->tr_ln_w = NEXT();
    t->tr_ln_b = NEXT();
    t->mlm_bias = NEXT();
    t->nsp_w = NEXT();
    t->nsp_b = NEXT();
#undef NEXT
    TD_ASSERT(k == m->n_tensors);
}

/* ---- the activation arena --------------------------------------------------- */

/* Hands out aligned pieces of one allocation. With base == NULL it only
 * counts (handing out NULL), so the same code sizes the arena and then
 * carves it. */
typedef struct {
    char *base;
    size_t used;
} carver;

static void *carve(carver *c, size_t n_bytes)
{
    size_t at = c->used;
    c->used += (n_bytes + 63) / 64 * 64;
    return c->base ? c->base + at : NULL;
}
#define CARVE_F(c, n) ((float *)carve((c), (size_t)(n) * sizeof(float)))
#define CARVE_I(c, n) ((int32_t *)carve((c), (size_t)(n) * sizeof(int32_t)))
#define CARVE_U8(c, n) ((uint8_t *)carve((c), (size_t)(n)))

static void carve_acts(carver *c, td_model_acts *a, const td_model *m)
{
    const int64_t B = m->cap_B, T = m->cap_T, N = B * T, H = m->H, I = m->I, A = m->A;
    const int64_t R = B * m->cap_pred, V = m->V;
    const bool att_drop = m->cfg.attention_dropout > 0;
    a->emb = CARVE_F(c, N * H);
    a->emb_mean = CARVE_F(c, N);
    a->emb_rstd = CARVE_F(c, N);
    a->h0 = CARVE_F(c, N * H);
    for (int64_t l = 0; l < m->L; l++) {
        layer_acts *la = &a->layers[l];
        la->q = CARVE_F(c, N * H);
        la->k = CARVE_F(c, N * H);
        la->v = CARVE_F(c, N * H);
        la->p = CARVE_F(c, B * A * T * T);
        la->pd = att_drop ? CARVE_F(c, B * A * T * T) : la->p;
        la->ctx = CARVE_F(c, N * H);
        la->r1 = CARVE_F(c, N * H);
        la->ln1_mean = CARVE_F(c, N);
        la->ln1_rstd = CARVE_F(c, N);
        la->y = CARVE_F(c, N * H);
        la->f1 = CARVE_F(c, N * I);
        la->g = CARVE_F(c, N * I);
        la->r2 = CARVE_F(c, N * H);
        la->ln2_mean = CARVE_F(c, N);
        la->ln2_rstd = CARVE_F(c, N);
        la->z = CARVE_F(c, N * H);
    }
    a->gathered = CARVE_F(c, N * H);
    a->merged = CARVE_F(c, N * H);
    a->key_bias_full = CARVE_F(c, N);
    a->key_bias_kept = CARVE_F(c, N);
    a->pred_rows = CARVE_I(c, R);
    a->pred_slots = CARVE_I(c, R);
    a->pred_labels = CARVE_I(c, R);
    a->pred_scale = CARVE_F(c, R);
    a->pred_loss_r = CARVE_F(c, R);
    a->pred_correct = CARVE_U8(c, R);
    a->pred_loss = CARVE_F(c, R);
    a->xm = CARVE_F(c, R * H);
    a->t1 = CARVE_F(c, R * H);
    a->t2 = CARVE_F(c, R * H);
    a->tr_mean = CARVE_F(c, R);
    a->tr_rstd = CARVE_F(c, R);
    a->hm = CARVE_F(c, R * H);
    a->logits = CARVE_F(c, R * V);
    a->cls = CARVE_F(c, B * H);
    a->pool_pre = CARVE_F(c, B * H);
    a->pooled = CARVE_F(c, B * H);
    a->nsp_logits = CARVE_F(c, B * 2);
    a->nsp_loss = CARVE_F(c, B);
    a->nsp_scale = CARVE_F(c, B);
    a->nsp_labels = CARVE_I(c, B);
    a->nsp_correct = CARVE_U8(c, B);
    a->dh_a = CARVE_F(c, N * H);
    a->dh_b = CARVE_F(c, N * H);
    a->dh_skip = CARVE_F(c, N * H);
    a->dq_rows = CARVE_F(c, N * H);
    a->d_r2 = CARVE_F(c, N * H);
    a->d_tmp = CARVE_F(c, N * H);
    a->d_r1 = CARVE_F(c, N * H);
    a->d_ctx = CARVE_F(c, N * H);
    a->dq = CARVE_F(c, N * H);
    a->dk = CARVE_F(c, N * H);
    a->dv = CARVE_F(c, N * H);
    a->d_g = CARVE_F(c, N * I);
    a->d_f1 = CARVE_F(c, N * I);
    a->d_att = CARVE_F(c, B * A * T * T);
    a->d_logits = CARVE_F(c, R * V);
    a->d_hm = CARVE_F(c, R * H);
    a->d_t2 = CARVE_F(c, R * H);
    a->d_t1 = CARVE_F(c, R * H);
    a->d_xm = CARVE_F(c, R * H);
    a->d_pooled = CARVE_F(c, B * H);
    a->d_pool_pre = CARVE_F(c, B * H);
    a->d_cls = CARVE_F(c, B * H);
    a->d_nsp = CARVE_F(c, B * 2);
}

td_status td_model_init(td_model *m, const td_model_config *cfg, int64_t B, int64_t T,
                        int64_t max_pred, td_error *err)
{
    memset(m, 0, sizeof(*m));
    if (cfg->hidden % cfg->heads != 0)
        return td_error_set(err, TD_ERR_CONFIG, "model.hidden = %lld is not a multiple of model.heads = %lld",
                            (long long)cfg->hidden, (long long)cfg->heads);
    if (T > cfg->max_position)
        return td_error_set(err, TD_ERR_CONFIG, "data.seq_len = %lld exceeds model.max_position = %lld",
                            (long long)T, (long long)cfg->max_position);
    m->cfg = *cfg;
    m->V = cfg->vocab_size;
    m->H = cfg->hidden;
    m->L = cfg->layers;
    m->A = cfg->heads;
    m->D = cfg->hidden / cfg->heads;
    m->I = cfg->intermediate;
    m->P = cfg->max_position;
    m->cap_B = B;
    m->cap_T = T;
    m->cap_pred = max_pred;

    table_builder tb = {0};
    build_table(&tb, m);
    m->tensors = tb.t;
    m->n_tensors = tb.n;
    m->n_params = tb.offset;
    size_t n_bytes = (size_t)m->n_params * sizeof(float);
    m->params = aligned_alloc(64, n_bytes);
    m->grads = aligned_alloc(64, n_bytes);
    m->p.layers = calloc((size_t)m->L, sizeof(td_layer_tensors));
    m->g.layers = calloc((size_t)m->L, sizeof(td_layer_tensors));
    m->acts = calloc(1, sizeof(td_model_acts));
    if (!m->params || !m->grads || !m->p.layers || !m->g.layers || !m->acts) {
        td_model_free(m);
        return td_error_set(err, TD_ERR_NOMEM, "cannot allocate %zu MB of parameters and gradients",
                            2 * n_bytes >> 20);
    }
    memset(m->params, 0, n_bytes);
    memset(m->grads, 0, n_bytes);
    bind_tensors(&m->p, m, m->params);
    bind_tensors(&m->g, m, m->grads);

    td_model_acts *a = m->acts;
    a->layers = calloc((size_t)m->L, sizeof(layer_acts));
    carver count = {0};
    carve_acts(&count, a, m);
    a->arena = a->layers ? aligned_alloc(64, count.used) : NULL;
    if (!a->arena) {
        size_t mb = count.used >> 20;
        td_model_free(m);
        return td_error_set(err, TD_ERR_NOMEM,
                            "cannot allocate %zu MB of activations for micro_batch %lld x seq_len %lld;"
                            " lower train.micro_batch", mb, (long long)B, (long long)T);
    }
    carver real = {(char *)a->arena, 0};
    carve_acts(&real, a, m);
    m->acts_bytes = count.used;
    return TD_OK;
}

void td_model_free(td_model *m)
{
    td_gemm_engine_free(m->gemm);
    if (m->acts) {
        free(m->acts->arena);
        free(m->acts->layers);
        free(m->acts);
    }
    free(m->params);
    free(m->grads);
    free(m->p.layers);
    free(m->g.layers);
    free(m->tensors);
    memset(m, 0, sizeof(*m));
}

void td_model_init_weights(td_model *m, uint64_t seed)
{
    td_model_params_changed(m);
    memset(m->params, 0, (size_t)m->n_params * sizeof(float));
    float std = (float)m->cfg.initializer_range;
    for (int i = 0; i < m->n_tensors; i++) {
        const td_tensor_info *ti = &m->tensors[i];
        float *w = m->params + ti->offset;
        bool is_ln_weight = strstr(ti->name, "LayerNorm.weight") != NULL;
        if (is_ln_weight) {
            for (int64_t j = 0; j < ti->n_elems; j++) w[j] = 1.0f;
        } else if (ti->ndim == 2) {
            uint64_t key = td_rng_key(seed, 0, (uint64_t)i, TD_SITE_INIT);
            for (int64_t j = 0; j < ti->n_elems; j++) w[j] = std * td_rng_normal(key, (uint64_t)j);
        } /* biases stay 0 */
    }
}

void td_model_zero_grads(td_model *m)
{
    memset(m->grads, 0, (size_t)m->n_params * sizeof(float));
}

td_status td_model_set_precision(td_model *m, td_precision precision, td_error *err)
{
    td_gemm_engine *eng = NULL;
    td_status st = td_gemm_engine_create(&eng, precision, err);
    if (st != TD_OK) return st;
    td_gemm_engine_free(m->gemm);
    m->gemm = eng;
    m->math = td_gemm_engine_precision(eng) == TD_PRECISION_BF16 ? TD_MATH_VECTOR : TD_MATH_LIBM;
    td_gemm_engine_mirror(eng, m->params, m->n_params);
    return TD_OK;
}

void td_model_params_changed(td_model *m) { td_gemm_engine_stale(m->gemm); }

/* ---- forward ------------------------------------------------------------------ */

/* out (B*K, H) = rows kept[b, i] of in (B*T, H). */
static void gather_rows(float *out, const float *in, const int32_t *kept, int64_t B, int64_t T,
                        int64_t K, int64_t H)
{
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < K; i++)
            memcpy(out + (b * K + i) * H, in + (b * T + kept[b * K + i]) * H,
                   (size_t)H * sizeof(float));
}

static td_dropout_ctx dropout_ctx(const td_model *m, float p, uint64_t site, const layer_plan *plan)
{
    const td_forward_args *a = &m->acts->args;
    td_dropout_ctx c = {
        .p = a->training ? p : 0.0f,
        .seed = a->seed,
        .step = a->step,
        .site = TD_SITE_DROPOUT + site,
        .sample_ids = a->batch->sample_ids,
        .rows_pos = plan ? plan->rows_pos : NULL,
        .keys_pos = plan ? plan->keys_pos : NULL,
        .T_full = a->batch->T,
    };
    return c;
}

/* Dropout sites: 0 embeddings; per layer l: 1+3l attention probabilities,
 * 2+3l attention output, 3+3l FFN output. */
static uint64_t site_of(int64_t l, int which) { return (uint64_t)(1 + 3 * l + which); }

static void layer_forward(td_model *m, int64_t l)
{
    layer_acts *la = &m->acts->layers[l];
    const td_layer_tensors *w = &m->p.layers[l];
    const layer_plan *pl = &la->plan;
    const int64_t B = m->acts->args.batch->B, H = m->H, I = m->I;
    const int64_t nq = B * pl->Tq, nk = B * pl->Tk;

    td_gemm_engine_hold(m->gemm, pl->xkv); /* read by the key and value (and query) projections */
    td_linear_forward(m->gemm, la->q, pl->xq, w->q_w, w->q_b, nq, H, H);
    td_linear_forward(m->gemm, la->k, pl->xkv, w->k_w, w->k_b, nk, H, H);
    td_linear_forward(m->gemm, la->v, pl->xkv, w->v_w, w->v_b, nk, H, H);
    td_gemm_engine_release(m->gemm, pl->xkv);
    td_dropout_ctx att_drop = dropout_ctx(m, (float)m->cfg.attention_dropout, site_of(l, 0), pl);
    td_attention_forward(m->gemm, la->ctx, la->p, la->pd, la->q, la->k, la->v, pl->key_bias, &att_drop, B,
                         pl->Tq, pl->Tk, m->A, m->D, m->math);
    /* r1 = xq + dropout(ctx Wo^T + bo); y = LN(r1) */
    td_linear_forward(m->gemm, la->r1, la->ctx, w->ao_w, w->ao_b, nq, H, H);
    td_dropout_ctx hid_drop = dropout_ctx(m, (float)m->cfg.hidden_dropout, site_of(l, 1), pl);
    td_dropout_forward(la->r1, la->r1, &hid_drop, B, pl->Tq, H);
    for (int64_t i = 0; i < nq * H; i++) la->r1[i] += pl->xq[i];
    td_layernorm_forward(la->y, la->ln1_mean, la->ln1_rstd, la->r1, w->ln1_w, w->ln1_b, nq, H,
                         TD_LAYERNORM_EPS);
    /* r2 = y + dropout(gelu(y W1^T + b1) W2^T + b2); z = LN(r2) */
    td_linear_forward(m->gemm, la->f1, la->y, w->ff1_w, w->ff1_b, nq, H, I);
    td_gelu_forward(la->g, la->f1, la->f1, nq * I, m->cfg.hidden_act, m->math);
    td_linear_forward(m->gemm, la->r2, la->g, w->ff2_w, w->ff2_b, nq, I, H);
    hid_drop.site = TD_SITE_DROPOUT + site_of(l, 2);
    td_dropout_forward(la->r2, la->r2, &hid_drop, B, pl->Tq, H);
    for (int64_t i = 0; i < nq * H; i++) la->r2[i] += la->y[i];
    td_layernorm_forward(la->z, la->ln2_mean, la->ln2_rstd, la->r2, w->ln2_w, w->ln2_b, nq, H,
                         TD_LAYERNORM_EPS);
}

/* The MLM head on the gathered real predictions and the NSP head. */
static void heads_forward(td_model *m, const float *h_last, td_forward_stats *st)
{
    td_model_acts *a = m->acts;
    const td_batch *bt = a->args.batch;
    const int64_t B = bt->B, T = bt->T, MP = bt->max_pred, H = m->H, V = m->V;

    int64_t R = 0;
    for (int64_t b = 0; b < B; b++) {
        for (int64_t j = 0; j < MP; j++) {
            int64_t slot = b * MP + j;
            a->pred_loss[slot] = 0;
            if (bt->mlm_weights[slot] <= 0) continue;
            int32_t pos = bt->mlm_positions[slot];
            TD_ASSERT(pos >= 0 && pos < T);
            a->pred_rows[R] = (int32_t)(b * T + pos);
            a->pred_slots[R] = (int32_t)slot;
            a->pred_labels[R] = bt->mlm_ids[slot];
            a->pred_scale[R] = a->args.mlm_scale * bt->mlm_weights[slot];
            R++;
        }
    }
    a->R = R;
    for (int64_t r = 0; r < R; r++)
        memcpy(a->xm + r * H, h_last + (int64_t)a->pred_rows[r] * H, (size_t)H * sizeof(float));
    const td_model_tensors *p = &m->p;
    td_linear_forward(m->gemm, a->t1, a->xm, p->tr_w, p->tr_b, R, H, H);
    td_gelu_forward(a->t2, a->t1, a->t1, R * H, m->cfg.hidden_act, m->math); /* t1 becomes gelu' */
    td_layernorm_forward(a->hm, a->tr_mean, a->tr_rstd, a->t2, p->tr_ln_w, p->tr_ln_b, R, H,
                         TD_LAYERNORM_EPS);
    /* logits (R, V) = hm word^T + bias: the decoder is the word embedding */
    td_linear_forward(m->gemm, a->logits, a->hm, p->word, p->mlm_bias, R, H, V);
    td_crossentropy_forward(a->pred_loss_r, a->pred_correct, a->logits, a->pred_labels, R, V,
                            m->math);

    st->mlm_loss_sum = 0;
    st->mlm_correct = 0;
    st->n_masked = 0;
    for (int64_t r = 0; r < R; r++) {
        float wgt = bt->mlm_weights[a->pred_slots[r]];
        a->pred_loss[a->pred_slots[r]] = a->pred_loss_r[r];
        st->mlm_loss_sum += (double)wgt * a->pred_loss_r[r];
        st->mlm_correct += a->pred_correct[r];
        st->n_masked += wgt > 0;
    }

    for (int64_t b = 0; b < B; b++) {
        memcpy(a->cls + b * H, h_last + b * T * H, (size_t)H * sizeof(float));
        a->nsp_labels[b] = bt->nsp_labels[b];
        a->nsp_scale[b] = a->args.nsp_scale;
    }
    td_linear_forward(m->gemm, a->pool_pre, a->cls, p->pool_w, p->pool_b, B, H, H);
    td_tanh_forward(a->pooled, a->pool_pre, B * H);
    td_linear_forward(m->gemm, a->nsp_logits, a->pooled, p->nsp_w, p->nsp_b, B, H, 2);
    td_crossentropy_forward(a->nsp_loss, a->nsp_correct, a->nsp_logits, a->nsp_labels, B, 2, m->math);
    st->nsp_loss_sum = 0;
    st->nsp_correct = 0;
    for (int64_t b = 0; b < B; b++) {
        st->nsp_loss_sum += a->nsp_loss[b];
        st->nsp_correct += a->nsp_correct[b];
    }
    st->n_seq = B;
    st->pred_loss = a->pred_loss;
}

void td_model_forward(td_model *m, const td_forward_args *args, td_forward_stats *st)
{
    td_model_acts *a = m->acts;
    const td_batch *bt = args->batch;
    const int64_t B = bt->B, T = bt->T, H = m->H, N = B * T;
    TD_ASSERT(B <= m->cap_B && T <= m->cap_T && bt->max_pred <= m->cap_pred);
    a->args = *args;
    a->dropping = args->kept != NULL;
    td_gemm_engine_sync(m->gemm); /* the bf16 weights, rounded once per update */
    const int64_t K = a->dropping ? args->keep : T;
    const int64_t f = args->first_layer;
    if (a->dropping) TD_ASSERT(K >= 1 && K <= T && f >= 0 && f <= m->L - 2);

    for (int64_t i = 0; i < N; i++) a->key_bias_full[i] = bt->input_mask[i] ? 0.0f : -10000.0f;
    if (a->dropping)
        for (int64_t b = 0; b < B; b++)
            for (int64_t i = 0; i < K; i++)
                a->key_bias_kept[b * K + i] = a->key_bias_full[b * T + args->kept[b * K + i]];

    td_embeddings_forward(a->emb, bt->input_ids, bt->segment_ids, m->p.word, m->p.pos, m->p.type,
                          B, T, H);
    td_layernorm_forward(a->h0, a->emb_mean, a->emb_rstd, a->emb, m->p.emb_ln_w, m->p.emb_ln_b, N,
                         H, TD_LAYERNORM_EPS);
    td_dropout_ctx emb_drop = dropout_ctx(m, (float)m->cfg.hidden_dropout, 0, NULL);
    td_dropout_forward(a->h0, a->h0, &emb_drop, B, T, H);

    const float *h = a->h0;  /* input of the current layer */
    const float *h_f = NULL; /* input of layer f, for the skip to the last layer */
    for (int64_t l = 0; l < m->L; l++) {
        layer_plan *pl = &a->layers[l].plan;
        *pl = (layer_plan){.role = role_of(l, m->L, f, a->dropping), .xq = h, .xkv = h, .Tq = T, .Tk = T,
                           .key_bias = a->key_bias_full};
        switch (pl->role) {
        case LAYER_ALL:
            break;
        case LAYER_DROP:
            h_f = h;
            gather_rows(a->gathered, h, args->kept, B, T, K, H);
            pl->xq = a->gathered;
            pl->Tq = K;
            pl->rows_pos = args->kept;
            break;
        case LAYER_KEPT:
            pl->Tq = pl->Tk = K;
            pl->rows_pos = pl->keys_pos = args->kept;
            pl->key_bias = a->key_bias_kept;
            break;
        case LAYER_REJOIN:
            /* dropped tokens re-enter with h_f, kept ones with layer L-2's output */
            memcpy(a->merged, h_f, (size_t)(N * H) * sizeof(float));
            for (int64_t b = 0; b < B; b++)
                for (int64_t i = 0; i < K; i++)
                    memcpy(a->merged + (b * T + args->kept[b * K + i]) * H, h + (b * K + i) * H,
                           (size_t)H * sizeof(float));
            pl->xq = pl->xkv = a->merged;
            break;
        }
        layer_forward(m, l);
        h = a->layers[l].z;
    }
    heads_forward(m, h, st);
}

/* ---- backward ------------------------------------------------------------------ */

static void zero(float *x, int64_t n) { memset(x, 0, (size_t)n * sizeof(float)); }

/* Backward of layer l, in two halves. The query half takes dz (B*Tq, H),
 * the gradient of the layer's output, adds the residual and query-side
 * input gradient into dxq (B*Tq, H), and leaves dk, dv in the scratch; the
 * key/value half adds their input gradient into dxkv (B*Tk, H). An ordinary
 * layer passes one buffer for both; layer f scatters dxq in between. */
static void layer_backward_query(td_model *m, int64_t l, const float *dz, float *dxq)
{
    td_model_acts *a = m->acts;
    layer_acts *la = &a->layers[l];
    const td_layer_tensors *w = &m->p.layers[l];
    td_layer_tensors *gw = &m->g.layers[l];
    const layer_plan *pl = &la->plan;
    const int64_t B = a->args.batch->B, H = m->H, I = m->I;
    const int64_t nq = B * pl->Tq, nk = B * pl->Tk;

    /* z = LN(r2), r2 = y + dropout(ff2(gelu(ff1(y)))) */
    zero(a->d_r2, nq * H);
    td_layernorm_backward(a->d_r2, gw->ln2_w, gw->ln2_b, dz, la->r2, la->ln2_mean, la->ln2_rstd,
                          w->ln2_w, nq, H);
    float *dy = a->d_r2; /* the residual passes d_r2 to y; the FFN adds to it below */
    zero(a->d_tmp, nq * H);
    td_dropout_ctx hid_drop = dropout_ctx(m, (float)m->cfg.hidden_dropout, site_of(l, 2), pl);
    td_dropout_backward(a->d_tmp, a->d_r2, &hid_drop, B, pl->Tq, H);
    zero(a->d_g, nq * I);
    td_linear_backward(m->gemm, a->d_g, gw->ff2_w, gw->ff2_b, a->d_tmp, la->g, w->ff2_w, nq, I, H);
    zero(a->d_f1, nq * I);
    td_gelu_backward(a->d_f1, a->d_g, la->f1, nq * I);
    td_linear_backward(m->gemm, dy, gw->ff1_w, gw->ff1_b, a->d_f1, la->y, w->ff1_w, nq, H, I);

    /* y = LN(r1), r1 = xq + dropout(ao(ctx)) */
    zero(a->d_r1, nq * H);
    td_layernorm_backward(a->d_r1, gw->ln1_w, gw->ln1_b, dy, la->r1, la->ln1_mean, la->ln1_rstd,
                          w->ln1_w, nq, H);
    for (int64_t i = 0; i < nq * H; i++) dxq[i] += a->d_r1[i];
    zero(a->d_tmp, nq * H);
    hid_drop.site = TD_SITE_DROPOUT + site_of(l, 1);
    td_dropout_backward(a->d_tmp, a->d_r1, &hid_drop, B, pl->Tq, H);
    zero(a->d_ctx, nq * H);
    td_linear_backward(m->gemm, a->d_ctx, gw->ao_w, gw->ao_b, a->d_tmp, la->ctx, w->ao_w, nq, H, H);

    zero(a->dq, nq * H);
    zero(a->dk, nk * H);
    zero(a->dv, nk * H);
    td_dropout_ctx att_drop = dropout_ctx(m, (float)m->cfg.attention_dropout, site_of(l, 0), pl);
    td_attention_backward(m->gemm, a->dq, a->dk, a->dv, a->d_att, a->d_ctx, la->p, la->pd, la->q, la->k,
                          la->v, &att_drop, B, pl->Tq, pl->Tk, m->A, m->D);
    td_linear_backward(m->gemm, dxq, gw->q_w, gw->q_b, a->dq, pl->xq, w->q_w, nq, H, H);
}

static void layer_backward_kv(td_model *m, int64_t l, float *dxkv)
{
    td_model_acts *a = m->acts;
    const layer_plan *pl = &a->layers[l].plan;
    const td_layer_tensors *w = &m->p.layers[l];
    td_layer_tensors *gw = &m->g.layers[l];
    const int64_t nk = a->args.batch->B * pl->Tk, H = m->H;
    td_gemm_engine_hold(m->gemm, pl->xkv); /* read by both weight gradients */
    td_linear_backward(m->gemm, dxkv, gw->k_w, gw->k_b, a->dk, pl->xkv, w->k_w, nk, H, H);
    td_linear_backward(m->gemm, dxkv, gw->v_w, gw->v_b, a->dv, pl->xkv, w->v_w, nk, H, H);
    td_gemm_engine_release(m->gemm, pl->xkv);
}

/* Backward of both heads into dh (B*T, H), the gradient of the last layer's output. */
static void heads_backward(td_model *m, float *dh)
{
    td_model_acts *a = m->acts;
    const td_batch *bt = a->args.batch;
    const int64_t B = bt->B, T = bt->T, H = m->H, V = m->V, R = a->R;
    const td_model_tensors *p = &m->p;
    td_model_tensors *g = &m->g;

    zero(a->d_logits, R * V);
    td_crossentropy_backward(a->d_logits, a->logits, a->pred_labels, a->pred_scale, R, V);
    zero(a->d_hm, R * H);
    td_linear_backward(m->gemm, a->d_hm, g->word, g->mlm_bias, a->d_logits, a->hm, p->word, R, H, V);
    zero(a->d_t2, R * H);
    td_layernorm_backward(a->d_t2, g->tr_ln_w, g->tr_ln_b, a->d_hm, a->t2, a->tr_mean, a->tr_rstd,
                          p->tr_ln_w, R, H);
    zero(a->d_t1, R * H);
    td_gelu_backward(a->d_t1, a->d_t2, a->t1, R * H);
    zero(a->d_xm, R * H);
    td_linear_backward(m->gemm, a->d_xm, g->tr_w, g->tr_b, a->d_t1, a->xm, p->tr_w, R, H, H);
    for (int64_t r = 0; r < R; r++) {
        float *dst = dh + (int64_t)a->pred_rows[r] * H;
        for (int64_t c = 0; c < H; c++) dst[c] += a->d_xm[r * H + c];
    }

    zero(a->d_nsp, B * 2);
    td_crossentropy_backward(a->d_nsp, a->nsp_logits, a->nsp_labels, a->nsp_scale, B, 2);
    zero(a->d_pooled, B * H);
    td_linear_backward(m->gemm, a->d_pooled, g->nsp_w, g->nsp_b, a->d_nsp, a->pooled, p->nsp_w, B, H, 2);
    zero(a->d_pool_pre, B * H);
    td_tanh_backward(a->d_pool_pre, a->d_pooled, a->pooled, B * H);
    zero(a->d_cls, B * H);
    td_linear_backward(m->gemm, a->d_cls, g->pool_w, g->pool_b, a->d_pool_pre, a->cls, p->pool_w, B, H, H);
    for (int64_t b = 0; b < B; b++)
        for (int64_t c = 0; c < H; c++) dh[b * T * H + c] += a->d_cls[b * H + c];
}

/* Tensor table layout: 5 embedding tensors, 16 per layer, then 9 heads. */
enum { EMB_TENSORS = 5, LAYER_TENSORS = 16 };

static void tensor_span(const td_model *m, int first, int count, int64_t *offset, int64_t *n_elems)
{
    const td_tensor_info *a = &m->tensors[first], *b = &m->tensors[first + count - 1];
    *offset = a->offset;
    *n_elems = b->offset + b->n_elems - a->offset;
}

void td_model_layer_range(const td_model *m, int64_t l, int64_t *offset, int64_t *n_elems)
{
    tensor_span(m, EMB_TENSORS + (int)l * LAYER_TENSORS, LAYER_TENSORS, offset, n_elems);
}

void td_model_heads_range(const td_model *m, int64_t *offset, int64_t *n_elems)
{
    int first = EMB_TENSORS + (int)m->L * LAYER_TENSORS;
    tensor_span(m, first, m->n_tensors - first, offset, n_elems);
}

void td_model_embeddings_range(const td_model *m, int64_t *offset, int64_t *n_elems)
{
    tensor_span(m, 0, EMB_TENSORS, offset, n_elems);
}

static void report_ready(td_grads_ready_fn ready, void *ctx, int64_t offset, int64_t n_elems)
{
    if (ready) ready(ctx, offset, n_elems);
}

void td_model_backward(td_model *m, td_grads_ready_fn ready, void *ready_ctx)
{
    int64_t off, n;
    td_model_acts *a = m->acts;
    const td_forward_args *args = &a->args;
    const td_batch *bt = args->batch;
    const int64_t B = bt->B, T = bt->T, H = m->H, N = B * T, L = m->L;
    const int64_t K = a->dropping ? args->keep : T;
    const int32_t *kept = args->kept;

    float *dout = a->dh_a; /* gradient of the output of layer l */
    float *din = a->dh_b;  /* gradient of its input */
    zero(dout, N * H);
    heads_backward(m, dout);
    td_model_heads_range(m, &off, &n);
    report_ready(ready, ready_ctx, off, n);

    for (int64_t l = L - 1; l >= 0; l--) {
        float *t;
        switch (a->layers[l].plan.role) {
        case LAYER_REJOIN:
            /* The last layer's input was merged: dropped rows came from h_f
             * (their gradient waits in dh_skip), kept rows from layer L-2. */
            zero(din, N * H);
            layer_backward_query(m, l, dout, din);
            layer_backward_kv(m, l, din);
            memcpy(a->dh_skip, din, (size_t)(N * H) * sizeof(float));
            for (int64_t b = 0; b < B; b++)
                for (int64_t i = 0; i < K; i++) {
                    int64_t row = b * T + kept[b * K + i];
                    memcpy(dout + (b * K + i) * H, din + row * H, (size_t)H * sizeof(float));
                    zero(a->dh_skip + row * H, H);
                }
            td_model_layer_range(m, l, &off, &n);
            report_ready(ready, ready_ctx, off, n);
            continue; /* dout now holds the gradient of layer L-2's output */
        case LAYER_KEPT:
            zero(din, B * K * H);
            layer_backward_query(m, l, dout, din);
            layer_backward_kv(m, l, din);
            break;
        case LAYER_DROP:
            /* The query-side gradient is completed first and scattered into
             * the full gradient before the key/value terms are added, so
             * keep == T sums in the same order as the full model. */
            zero(a->dq_rows, B * K * H);
            layer_backward_query(m, l, dout, a->dq_rows);
            memcpy(din, a->dh_skip, (size_t)(N * H) * sizeof(float));
            for (int64_t b = 0; b < B; b++)
                for (int64_t i = 0; i < K; i++) {
                    float *dst = din + (b * T + kept[b * K + i]) * H;
                    const float *src = a->dq_rows + (b * K + i) * H;
                    for (int64_t c = 0; c < H; c++) dst[c] += src[c];
                }
            layer_backward_kv(m, l, din);
            break;
        case LAYER_ALL:
            zero(din, N * H);
            layer_backward_query(m, l, dout, din);
            layer_backward_kv(m, l, din);
            break;
        }
        t = dout;
        dout = din;
        din = t;
        td_model_layer_range(m, l, &off, &n);
        report_ready(ready, ready_ctx, off, n);
    }

    /* dout is now the gradient of h0 = dropout(LN(embeddings)) */
    td_model_tensors *g = &m->g;
    zero(din, N * H);
    td_dropout_ctx emb_drop = dropout_ctx(m, (float)m->cfg.hidden_dropout, 0, NULL);
    td_dropout_backward(din, dout, &emb_drop, B, T, H);
    zero(dout, N * H);
    td_layernorm_backward(dout, g->emb_ln_w, g->emb_ln_b, din, a->emb, a->emb_mean, a->emb_rstd,
                          m->p.emb_ln_w, N, H);
    td_embeddings_backward(g->word, g->pos, g->type, dout, bt->input_ids, bt->segment_ids, B, T,
                           H);
    td_model_embeddings_range(m, &off, &n);
    report_ready(ready, ready_ctx, off, n);
}
