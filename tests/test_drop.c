/* Token dropping (drop.h, SPEC section 2): the importance table from the
 * config (allow/deny through a vocabulary file or as ids, errors), the
 * per-sequence choice of kept positions for loss, random and frequency
 * importance against a plain reference, and the EMA update, including the
 * sum of two ranks' statistics as the allreduce forms it. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokdrop/train/data.h"
#include "tokdrop/nn/drop.h"
#include "tokdrop/base/rng.h"
#include "tokdrop/base/vocab.h"

/* The test vocabulary: special tokens at ids no other vocabulary uses, so
 * a table that assumed BERT's fixed ids would fail. */
static const char *const VOCAB[] = {"the",   "[PAD]", "cat",    "[CLS]", "sat", "[SEP]",
                                    "[UNK]", "on",    "[MASK]", "mat",   "##s", "."};
enum {
    V_THE = 0,
    V_PAD = 1,
    V_CAT = 2,
    V_CLS = 3,
    V_SAT = 4,
    V_SEP = 5,
    V_UNK = 6,
    V_ON = 7,
    V_MASK = 8,
    V_MAT = 9,
    V_S = 10,
    V_DOT = 11,
    NV = 12
};

static td_token_ref tok(const char *text)
{
    td_token_ref r;
    memset(&r, 0, sizeof(r));
    snprintf(r.text, sizeof(r.text), "%s", text);
    r.id = -1;
    return r;
}

static td_token_ref tok_id(int64_t id)
{
    td_token_ref r;
    memset(&r, 0, sizeof(r));
    r.id = id;
    return r;
}

/* SPEC defaults: allow [UNK] [CLS] [SEP] [MASK], deny [PAD]. */
static td_drop_config default_cfg(td_importance kind)
{
    td_drop_config c;
    memset(&c, 0, sizeof(c));
    c.enabled = true;
    c.importance = kind;
    c.loss_init = 10.0;
    c.loss_beta = 0.995;
    c.allow[0] = tok("[UNK]");
    c.allow[1] = tok("[CLS]");
    c.allow[2] = tok("[SEP]");
    c.allow[3] = tok("[MASK]");
    c.n_allow = 4;
    c.deny[0] = tok("[PAD]");
    c.n_deny = 1;
    return c;
}

static void load_vocab(td_vocab *v)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/vocab.txt", tu_tmpdir("drop"));
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < NV; i++) fprintf(f, "%s\n", VOCAB[i]);
    fclose(f);
    td_error err = {0};
    if (td_vocab_load(v, path, &err) != TD_OK) fail_msg("%s", err.msg);
    assert_int_equal(v->size, NV);
}

static void init_ok(td_drop *d, const td_drop_config *c, const td_vocab *v, uint64_t seed)
{
    td_error err = {0};
    if (td_drop_init(d, c, NV, v, seed, &err) != TD_OK) fail_msg("td_drop_init: %s", err.msg);
}

/* ---- init ----------------------------------------------------------------------- */

static void init_defaults(void **state)
{
    (void)state;
    td_vocab v;
    load_vocab(&v);
    td_drop_config c = default_cfg(TD_IMPORTANCE_LOSS);
    c.loss_init = 7.25;
    td_drop d;
    init_ok(&d, &c, &v, 1);
    assert_int_equal(d.V, NV);
    assert_int_equal(d.kind, TD_IMPORTANCE_LOSS);
    for (int y = 0; y < NV; y++) {
        bool allow = y == V_UNK || y == V_CLS || y == V_SEP || y == V_MASK;
        bool deny = y == V_PAD;
        float want = allow ? 1e4f : deny ? -1e4f : 7.25f;
        if (d.imp[y] != want)
            fail_msg("imp[%d] (%s) = %.9g, want %.9g", y, VOCAB[y], (double)d.imp[y], (double)want);
        assert_int_equal(d.pinned[y], allow ? TD_PIN_ALLOW : deny ? TD_PIN_DENY : TD_PIN_NONE);
    }
    for (int64_t i = 0; i < 2 * NV; i++) assert_true(d.stats[i] == 0.0);
    td_drop_free(&d);
    td_vocab_free(&v);
}

static void init_deny_wins_and_ids(void **state)
{
    (void)state;
    td_vocab v;
    load_vocab(&v);
    /* "the" as a string in both lists; [CLS] as a string in allow and as
     * an id in deny; "cat" as an id in allow only. */
    td_drop_config c = default_cfg(TD_IMPORTANCE_LOSS);
    c.allow[c.n_allow++] = tok("the");
    c.allow[c.n_allow++] = tok_id(V_CAT);
    c.deny[c.n_deny++] = tok("the");
    c.deny[c.n_deny++] = tok_id(V_CLS);
    td_drop d;
    init_ok(&d, &c, &v, 1);
    assert_true(d.imp[V_THE] == -1e4f && d.pinned[V_THE] == TD_PIN_DENY);
    assert_true(d.imp[V_CLS] == -1e4f && d.pinned[V_CLS] == TD_PIN_DENY);
    assert_true(d.imp[V_CAT] == 1e4f && d.pinned[V_CAT] == TD_PIN_ALLOW);
    assert_true(d.imp[V_SEP] == 1e4f && d.pinned[V_SEP] == TD_PIN_ALLOW);
    assert_true(d.imp[V_PAD] == -1e4f && d.pinned[V_PAD] == TD_PIN_DENY);
    td_drop_free(&d);

    /* Only ids: no vocabulary needed; the last id V-1 is valid. */
    td_drop_config ci = default_cfg(TD_IMPORTANCE_LOSS);
    ci.allow[0] = tok_id(0);
    ci.allow[1] = tok_id(NV - 1);
    ci.n_allow = 2;
    ci.deny[0] = tok_id(5);
    ci.n_deny = 1;
    init_ok(&d, &ci, NULL, 1);
    for (int y = 0; y < NV; y++) {
        float want = (y == 0 || y == NV - 1) ? 1e4f : y == 5 ? -1e4f : 10.0f;
        assert_true(d.imp[y] == want);
    }
    td_drop_free(&d);
    td_vocab_free(&v);
}

/* init must fail with a message naming the culprit. */
static void expect_init_error(const td_drop_config *c, const td_vocab *v, const char *needle)
{
    td_drop d;
    td_error err = {0};
    td_status st = td_drop_init(&d, c, NV, v, 1, &err);
    if (st == TD_OK) {
        td_drop_free(&d);
        fail_msg("td_drop_init accepted a config that should fail (expected a message naming '%s')",
                 needle);
    }
    if (!strstr(err.msg, needle))
        fail_msg("error message '%s' does not name '%s'", err.msg, needle);
}

static void init_errors(void **state)
{
    (void)state;
    td_vocab v;
    load_vocab(&v);
    td_drop_config c = default_cfg(TD_IMPORTANCE_LOSS);
    c.allow[c.n_allow++] = tok("[FOO]");
    expect_init_error(&c, &v, "[FOO]");

    c = default_cfg(TD_IMPORTANCE_LOSS);
    c.deny[c.n_deny++] = tok("dog");
    expect_init_error(&c, &v, "dog");

    c = default_cfg(TD_IMPORTANCE_LOSS);
    c.allow[c.n_allow++] = tok_id(NV); /* == V */
    expect_init_error(&c, &v, "12");

    c = default_cfg(TD_IMPORTANCE_LOSS);
    c.deny[c.n_deny++] = tok_id(1000);
    expect_init_error(&c, &v, "1000");

    /* strings without a vocabulary cannot be resolved */
    c = default_cfg(TD_IMPORTANCE_LOSS);
    expect_init_error(&c, NULL, "[UNK]");
    td_vocab_free(&v);
}

/* ---- selection -------------------------------------------------------------------- */

/* The definition: rank of t = number of positions with a higher score or
 * the same score at a lower position; t is kept iff rank < K. Pads score
 * -inf. Writes the kept positions ascending. */
static void ref_select(int32_t *kept, const float *score, int64_t T, int64_t K)
{
    int64_t n = 0;
    for (int64_t t = 0; t < T; t++) {
        int64_t rank = 0;
        for (int64_t u = 0; u < T; u++)
            if (score[u] > score[t] || (score[u] == score[t] && u < t)) rank++;
        if (rank < K) kept[n++] = (int32_t)t;
    }
    assert_int_equal(n, K);
}

static void set_seq(td_batch *bt, int64_t b, const int32_t *ids, const int32_t *mask)
{
    for (int64_t t = 0; t < bt->T; t++) {
        bt->input_ids[b * bt->T + t] = ids[t];
        bt->input_mask[b * bt->T + t] = mask ? mask[t] : 1;
    }
}

static void expect_kept(const td_drop *d, const td_batch *bt, int64_t K, uint64_t step, int64_t b,
                        const int32_t *want)
{
    int32_t *kept = td_xcalloc((size_t)(bt->B * K), sizeof(int32_t));
    td_drop_select(d, kept, bt, K, step);
    for (int64_t i = 0; i < K; i++)
        if (kept[b * K + i] != want[i]) {
            char got_s[512] = "", want_s[512] = "";
            for (int64_t j = 0; j < K; j++) {
                snprintf(got_s + strlen(got_s), sizeof(got_s) - strlen(got_s), " %d",
                         kept[b * K + j]);
                snprintf(want_s + strlen(want_s), sizeof(want_s) - strlen(want_s), " %d", want[j]);
            }
            fail_msg("sequence %lld, K=%lld: kept {%s }, want {%s }", (long long)b, (long long)K,
                     got_s, want_s);
        }
    free(kept);
}

static void select_loss(void **state)
{
    (void)state;
    td_vocab v;
    load_vocab(&v);
    td_drop_config c = default_cfg(TD_IMPORTANCE_LOSS);
    td_drop d;
    init_ok(&d, &c, &v, 1);
    d.imp[V_THE] = 5, d.imp[V_CAT] = 7, d.imp[V_SAT] = 9, d.imp[V_ON] = 3;
    d.imp[V_MAT] = 8, d.imp[V_S] = 6, d.imp[V_DOT] = 1;

    const int64_t T = 10;
    td_batch bt;
    td_batch_init(&bt, 4, T, 2);
    for (int64_t b = 0; b < 4; b++) bt.sample_ids[b] = 100 + b;

    /* 0: [CLS] the cat sat on the mat . [SEP] [PAD]
     *    scores 1e4 5 7 9 3 5 8 1 1e4 pad */
    const int32_t s0[10] = {V_CLS, V_THE, V_CAT, V_SAT, V_ON, V_THE, V_MAT, V_DOT, V_SEP, V_PAD};
    const int32_t m0[10] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 0};
    set_seq(&bt, 0, s0, m0);
    /* 1: allow tokens outnumber K; the others score just below +1e4 */
    const int32_t s1[10] = {V_CLS, V_CAT, V_CAT, V_SEP, V_CAT, V_MASK, V_CAT, V_UNK, V_SEP, V_CAT};
    set_seq(&bt, 1, s1, NULL);
    /* 2: padding inside the sequence, a pad position holding an allow id,
     *    and a real token with the deny id */
    const int32_t s2[10] = {V_CLS, V_THE, V_PAD, V_CAT, V_CLS, V_MAT, V_SEP, V_PAD, V_SEP, V_PAD};
    const int32_t m2[10] = {1, 1, 1, 1, 0, 1, 0, 0, 0, 0};
    set_seq(&bt, 2, s2, m2);
    /* 3: ties: the=5 cat=7 cat=7 the=5 cat=7 the=5 ... */
    const int32_t s3[10] = {V_THE, V_CAT, V_CAT, V_THE, V_CAT, V_THE, V_THE, V_THE, V_THE, V_THE};
    set_seq(&bt, 3, s3, NULL);

    expect_kept(&d, &bt, 4, 1, 0, (const int32_t[]){0, 3, 6, 8});
    expect_kept(&d, &bt, 6, 1, 0, (const int32_t[]){0, 1, 2, 3, 6, 8}); /* 1 before 5 (tie) */
    expect_kept(&d, &bt, 9, 1, 0, (const int32_t[]){0, 1, 2, 3, 4, 5, 6, 7, 8});
    expect_kept(&d, &bt, 10, 1, 0, (const int32_t[]){0, 1, 2, 3, 4, 5, 6, 7, 8, 9});

    d.imp[V_CAT] = 9999.0f;
    expect_kept(&d, &bt, 5, 1, 1, (const int32_t[]){0, 3, 5, 7, 8});
    expect_kept(&d, &bt, 3, 1, 1, (const int32_t[]){0, 3, 5}); /* more allow than K: lowest */
    expect_kept(&d, &bt, 6, 1, 1, (const int32_t[]){0, 1, 3, 5, 7, 8});
    d.imp[V_CAT] = 7;

    /* real: 0 [CLS] 1e4, 1 the 5, 2 deny -1e4, 3 cat 7, 5 mat 8; pads 4 6 7 8 9 */
    expect_kept(&d, &bt, 3, 1, 2, (const int32_t[]){0, 3, 5});
    expect_kept(&d, &bt, 4, 1, 2, (const int32_t[]){0, 1, 3, 5});
    expect_kept(&d, &bt, 5, 1, 2, (const int32_t[]){0, 1, 2, 3, 5});
    expect_kept(&d, &bt, 6, 1, 2, (const int32_t[]){0, 1, 2, 3, 4, 5});
    expect_kept(&d, &bt, 8, 1, 2, (const int32_t[]){0, 1, 2, 3, 4, 5, 6, 7});

    expect_kept(&d, &bt, 2, 1, 3, (const int32_t[]){1, 2});
    expect_kept(&d, &bt, 4, 1, 3, (const int32_t[]){0, 1, 2, 4});
    expect_kept(&d, &bt, 5, 1, 3, (const int32_t[]){0, 1, 2, 3, 4});
    /* loss importance does not depend on the step */
    expect_kept(&d, &bt, 4, 99, 3, (const int32_t[]){0, 1, 2, 4});

    td_batch_free(&bt);
    td_drop_free(&d);
    td_vocab_free(&v);
}

/* Scores of a sequence as the loss/frequency definition gives them. */
static void table_scores(float *score, const td_drop *d, const td_batch *bt, int64_t b)
{
    for (int64_t t = 0; t < bt->T; t++)
        score[t] = bt->input_mask[b * bt->T + t] ? d->imp[bt->input_ids[b * bt->T + t]] : -INFINITY;
}

/* Random tokens and masks; the table quantized to steps of 0.5 so that
 * ties are common. */
static void random_batch(td_batch *bt, uint64_t seed)
{
    uint64_t key = td_rng_key(seed, 0, 0, 1);
    const int64_t T = bt->T;
    for (int64_t b = 0; b < bt->B; b++) {
        bt->sample_ids[b] = 1000 + 17 * b;
        int64_t n_real = T / 2 + (int64_t)td_rng_below(key, (uint64_t)b, (uint32_t)(T / 2 + 1));
        for (int64_t t = 0; t < T; t++) {
            uint64_t ctr = 1000 + (uint64_t)(b * T + t);
            bt->input_ids[b * T + t] = t < n_real ? (int32_t)td_rng_below(key, ctr, NV) : V_PAD;
            bt->input_mask[b * T + t] = t < n_real;
        }
        /* a pad inside some sequences (mask 0 with a real-looking id) */
        if (b % 3 == 0) bt->input_mask[b * T + 2] = 0;
        bt->input_ids[b * T] = V_CLS;
    }
}

/* Sequences of plain tokens between [CLS] and [SEP], one [MASK] and one
 * "on", then padding: at most 3 allow tokens per sequence. */
static void plain_batch(td_batch *bt, uint64_t seed)
{
    static const int32_t plain[6] = {V_THE, V_CAT, V_SAT, V_MAT, V_S, V_DOT};
    uint64_t key = td_rng_key(seed, 0, 0, 1);
    const int64_t T = bt->T;
    for (int64_t b = 0; b < bt->B; b++) {
        bt->sample_ids[b] = 500 + 3 * b;
        int64_t n_real = T / 2 + (int64_t)td_rng_below(key, (uint64_t)b, (uint32_t)(T / 2 + 1));
        for (int64_t t = 0; t < T; t++) {
            int32_t id = plain[td_rng_below(key, 1000 + (uint64_t)(b * T + t), 6)];
            if (t == 0) id = V_CLS;
            if (t == 3) id = V_MASK;
            if (t == 5) id = V_ON;
            if (t == n_real - 1) id = V_SEP;
            bt->input_ids[b * T + t] = t < n_real ? id : V_PAD;
            bt->input_mask[b * T + t] = t < n_real;
        }
    }
}

static void select_matches_reference(void **state)
{
    (void)state;
    td_vocab v;
    load_vocab(&v);
    td_drop_config c = default_cfg(TD_IMPORTANCE_LOSS);
    td_drop d;
    init_ok(&d, &c, &v, 1);
    const int64_t B = 16, T = 24;
    td_batch bt;
    td_batch_init(&bt, B, T, 1);
    random_batch(&bt, 5);
    uint64_t key = td_rng_key(6, 0, 0, 2);
    for (int y = 0; y < NV; y++)
        if (d.pinned[y] == TD_PIN_NONE) d.imp[y] = 0.5f * (float)td_rng_below(key, (uint64_t)y, 8);
    float score[24];
    int32_t want[24];
    const int64_t Ks[] = {1, 5, 12, 17, 23, 24};
    for (size_t k = 0; k < sizeof(Ks) / sizeof(Ks[0]); k++) {
        int64_t K = Ks[k];
        int32_t *kept = td_xcalloc((size_t)(B * K), sizeof(int32_t));
        td_drop_select(&d, kept, &bt, K, 3);
        for (int64_t b = 0; b < B; b++) {
            table_scores(score, &d, &bt, b);
            ref_select(want, score, T, K);
            for (int64_t i = 0; i < K; i++) {
                if (kept[b * K + i] != want[i])
                    fail_msg("K=%lld sequence %lld: kept[%lld] = %d, want %d", (long long)K,
                             (long long)b, (long long)i, kept[b * K + i], want[i]);
                if (i > 0) assert_true(kept[b * K + i] > kept[b * K + i - 1]);
            }
            if (K == T)
                for (int64_t i = 0; i < K; i++) assert_int_equal(kept[b * K + i], i);
        }
        free(kept);
    }
    td_batch_free(&bt);
    td_drop_free(&d);
    td_vocab_free(&v);
}

/* ---- random importance -------------------------------------------------------------- */

static bool rows_equal(const int32_t *a, const int32_t *b, int64_t K)
{
    return memcmp(a, b, (size_t)K * sizeof(int32_t)) == 0;
}

static void select_random(void **state)
{
    (void)state;
    td_vocab v;
    load_vocab(&v);
    td_drop_config c = default_cfg(TD_IMPORTANCE_RANDOM);
    c.deny[c.n_deny++] = tok("on"); /* a real token that is always dropped first */
    td_drop d, d2;
    init_ok(&d, &c, &v, 1234);
    init_ok(&d2, &c, &v, 4321);
    const int64_t B = 8, T = 32, K = 12;
    td_batch bt;
    td_batch_init(&bt, B, T, 1);
    plain_batch(&bt, 9);
    /* rows 0 and 1 hold the same tokens under different sample ids */
    memcpy(bt.input_ids + T, bt.input_ids, (size_t)T * sizeof(int32_t));
    memcpy(bt.input_mask + T, bt.input_mask, (size_t)T * sizeof(int32_t));
    /* row 7: fewer real tokens than K (pads must fill from the lowest) */
    for (int64_t t = 0; t < T; t++) {
        bt.input_ids[7 * T + t] = t < 8 ? V_CAT : V_PAD;
        bt.input_mask[7 * T + t] = t < 8;
    }

    int32_t *k1 = td_xcalloc((size_t)(B * K), sizeof(int32_t)),
            *k2 = td_xcalloc((size_t)(B * K), sizeof(int32_t));
    td_drop_select(&d, k1, &bt, K, 5);
    td_drop_select(&d, k2, &bt, K, 5);
    assert_memory_equal(k1, k2, (size_t)(B * K) * sizeof(int32_t));

    for (int64_t b = 0; b < B; b++) {
        const int32_t *kb = k1 + b * K;
        int64_t n_real = 0, n_allow = 0, n_deny = 0;
        for (int64_t t = 0; t < T; t++) {
            int32_t id = bt.input_ids[b * T + t];
            bool real = bt.input_mask[b * T + t] != 0;
            n_real += real;
            n_allow += real && d.pinned[id] == TD_PIN_ALLOW;
            n_deny += real && d.pinned[id] == TD_PIN_DENY;
        }
        assert_true(n_allow <= K); /* the batch is built so */
        bool kept_at[32] = {false};
        for (int64_t i = 0; i < K; i++) {
            if (i > 0) assert_true(kb[i] > kb[i - 1]);
            kept_at[kb[i]] = true;
        }
        for (int64_t t = 0; t < T; t++) {
            int32_t id = bt.input_ids[b * T + t];
            bool real = bt.input_mask[b * T + t] != 0;
            if (real && d.pinned[id] == TD_PIN_ALLOW && !kept_at[t])
                fail_msg("random: sequence %lld dropped the allow token at %lld", (long long)b,
                         (long long)t);
            if (real && d.pinned[id] == TD_PIN_DENY && kept_at[t] && n_real - n_deny >= K)
                fail_msg("random: sequence %lld kept the deny token at %lld", (long long)b,
                         (long long)t);
            if (!real && kept_at[t]) {
                if (n_real >= K)
                    fail_msg("random: sequence %lld kept pad %lld", (long long)b, (long long)t);
                /* with too few real tokens: every pad below t is kept too */
                for (int64_t u = 0; u < t; u++)
                    if (!bt.input_mask[b * T + u] && !kept_at[u])
                        fail_msg("random: sequence %lld kept pad %lld but not pad %lld",
                                 (long long)b, (long long)t, (long long)u);
            }
            if (real && !kept_at[t] && n_real <= K)
                fail_msg("random: sequence %lld dropped a real token with K >= real", (long long)b);
        }
    }
    assert_true(!rows_equal(k1, k1 + K, K)); /* same tokens, other sample id */

    /* another step: a fresh choice */
    td_drop_select(&d, k2, &bt, K, 6);
    int differ = 0;
    for (int64_t b = 0; b < B - 1; b++) differ += !rows_equal(k1 + b * K, k2 + b * K, K);
    if (differ < B / 2)
        fail_msg("random: only %d of %lld sequences changed between steps", differ,
                 (long long)B - 1);
    /* another seed */
    td_drop_select(&d2, k2, &bt, K, 5);
    differ = 0;
    for (int64_t b = 0; b < B - 1; b++) differ += !rows_equal(k1 + b * K, k2 + b * K, K);
    if (differ < B / 2)
        fail_msg("random: only %d of %lld sequences changed with the seed", differ,
                 (long long)B - 1);

    /* a function of the sample id, not of the row: reverse the rows */
    td_batch rev;
    td_batch_init(&rev, B, T, 1);
    for (int64_t b = 0; b < B; b++) {
        memcpy(rev.input_ids + (B - 1 - b) * T, bt.input_ids + b * T, (size_t)T * sizeof(int32_t));
        memcpy(rev.input_mask + (B - 1 - b) * T, bt.input_mask + b * T,
               (size_t)T * sizeof(int32_t));
        rev.sample_ids[B - 1 - b] = bt.sample_ids[b];
    }
    td_drop_select(&d, k2, &rev, K, 5);
    for (int64_t b = 0; b < B; b++) assert_true(rows_equal(k1 + b * K, k2 + (B - 1 - b) * K, K));

    /* roughly uniform: one sequence of 2 allow + 30 plain tokens, K = 16,
     * over 600 steps each plain position is kept with p = 14/30
     * (expected 280, standard deviation 12) */
    td_batch one;
    td_batch_init(&one, 1, T, 1);
    one.sample_ids[0] = 77;
    for (int64_t t = 0; t < T; t++) {
        one.input_ids[t] = t == 0 ? V_CLS : t == T - 1 ? V_SEP : (int32_t)(t % 2 ? V_CAT : V_MAT);
        one.input_mask[t] = 1;
    }
    int counts[32] = {0};
    int32_t ko[16];
    for (uint64_t step = 0; step < 600; step++) {
        td_drop_select(&d, ko, &one, 16, step);
        for (int i = 0; i < 16; i++) counts[ko[i]]++;
    }
    assert_int_equal(counts[0], 600);
    assert_int_equal(counts[T - 1], 600);
    for (int64_t t = 1; t < T - 1; t++)
        if (counts[t] < 220 || counts[t] > 340)
            fail_msg("random: position %lld kept %d times of 600, expected about 280", (long long)t,
                     counts[t]);

    td_batch_free(&one);
    td_batch_free(&rev);
    td_batch_free(&bt);
    free(k1), free(k2);
    td_drop_free(&d);
    td_drop_free(&d2);
    td_vocab_free(&v);
}

/* ---- frequency importance -------------------------------------------------------------- */

static void select_frequency(void **state)
{
    (void)state;
    td_vocab v;
    load_vocab(&v);
    td_drop_config c = default_cfg(TD_IMPORTANCE_FREQUENCY);
    td_drop d;
    init_ok(&d, &c, &v, 1);
    const int64_t counts[NV] = {1000000, 5, 0, 7, 1, 3, 0, 2, 9, 40, 123456, 1};
    td_drop_set_frequency(&d, counts);
    for (int y = 0; y < NV; y++) {
        if (d.pinned[y] == TD_PIN_ALLOW) {
            assert_true(d.imp[y] == 1e4f);
        } else if (d.pinned[y] == TD_PIN_DENY) {
            assert_true(d.imp[y] == -1e4f);
        } else {
            double want = -log((double)(counts[y] > 1 ? counts[y] : 1));
            if (!(fabs(d.imp[y] - want) <= 1e-6 * fmax(1.0, fabs(want))))
                fail_msg("frequency imp[%d] = %.9g, want -log(max(%lld, 1)) = %.9g", y,
                         (double)d.imp[y], (long long)counts[y], want);
        }
    }
    assert_true(d.imp[V_CAT] == 0.0f && d.imp[V_DOT] == 0.0f); /* counts 0 and 1 */

    /* rare tokens are kept: cat (0) > . (1) > on (2) > mat (40) > the (1e6) */
    td_batch bt;
    td_batch_init(&bt, 1, 8, 1);
    const int32_t s[8] = {V_CLS, V_THE, V_MAT, V_ON, V_CAT, V_THE, V_DOT, V_SEP};
    set_seq(&bt, 0, s, NULL);
    expect_kept(&d, &bt, 4, 1, 0, (const int32_t[]){0, 4, 6, 7});
    expect_kept(&d, &bt, 6, 1, 0, (const int32_t[]){0, 2, 3, 4, 6, 7});
    td_batch_free(&bt);
    td_drop_free(&d);
    td_vocab_free(&v);
}

/* ---- EMA update -------------------------------------------------------------------------- */

static void set_preds(td_batch *bt, int64_t b, int64_t n, const int32_t *ids, const float *w)
{
    assert_int_equal(n, bt->max_pred);
    for (int64_t i = 0; i < n; i++) {
        bt->mlm_ids[b * bt->max_pred + i] = ids[i];
        bt->mlm_weights[b * bt->max_pred + i] = w[i];
        bt->mlm_positions[b * bt->max_pred + i] = w[i] > 0 ? (int32_t)(i + 1) : 0;
    }
}

/* The expected new value, in double, rounded once to float; got may be
 * the float next to it (the order of the double sums is free). */
static void expect_ema(const char *what, float got, float before, double beta, double mean)
{
    double want = beta * (double)before + (1.0 - beta) * mean;
    if (!(fabs((double)got - want) <= 1.2e-7 * fabs(want)))
        fail_msg("%s: imp = %.9g, want %.9g * %.9g + %.9g * %.9g = %.9g", what, (double)got, beta,
                 (double)before, 1.0 - beta, mean, want);
}

static void update_ema(void **state)
{
    (void)state;
    td_vocab v;
    load_vocab(&v);
    td_drop_config c = default_cfg(TD_IMPORTANCE_LOSS);
    c.loss_beta = 0.9;
    td_drop d;
    init_ok(&d, &c, &v, 1);
    for (int y = 0; y < NV; y++)
        if (d.pinned[y] == TD_PIN_NONE) d.imp[y] = 10.0f + 0.3f * (float)y;
    float before[NV];
    memcpy(before, d.imp, sizeof(before));

    td_batch bt;
    td_batch_init(&bt, 2, 8, 5);
    /* sat: twice in sequence 0 and once in 1 (a fourth, weight 0, carries
     * a huge loss that must not count); mat and cat once; on only with
     * weight 0; [CLS] (allow) and [PAD] (deny) as labels. */
    set_preds(&bt, 0, 5, (const int32_t[]){V_SAT, V_SAT, V_MAT, V_ON, V_THE},
              (const float[]){1, 1, 1, 0, 0});
    set_preds(&bt, 1, 5, (const int32_t[]){V_SAT, V_CLS, V_PAD, V_SAT, V_CAT},
              (const float[]){1, 1, 1, 0, 1});
    const float loss[10] = {2.5f, 3.75f, 1.125f, 99.0f, 77.0f, 0.5f, 4.0f, 6.0f, 1000.0f, 7.25f};

    td_drop_stats_clear(&d);
    td_drop_stats_add(&d, &bt, loss);
    /* the layout the allreduce sums: sums (V), then counts (V) */
    assert_true(d.stats[V_SAT] == 6.75 && d.stats[NV + V_SAT] == 3.0);
    assert_true(d.stats[V_ON] == 0.0 && d.stats[NV + V_ON] == 0.0);
    td_drop_update(&d);

    expect_ema("sat", d.imp[V_SAT], before[V_SAT], 0.9, (2.5 + 3.75 + 0.5) / 3.0);
    expect_ema("mat", d.imp[V_MAT], before[V_MAT], 0.9, 1.125);
    expect_ema("cat", d.imp[V_CAT], before[V_CAT], 0.9, 7.25);
    for (int y = 0; y < NV; y++) {
        if (y == V_SAT || y == V_MAT || y == V_CAT) continue;
        if (memcmp(&d.imp[y], &before[y], sizeof(float)) != 0)
            fail_msg("imp[%d] (%s) changed from %.9g to %.9g without a weighted prediction or "
                     "while pinned",
                     y, VOCAB[y], (double)before[y], (double)d.imp[y]);
    }

    /* a second step: the statistics start again from zero */
    memcpy(before, d.imp, sizeof(before));
    td_drop_stats_clear(&d);
    for (int64_t i = 0; i < 2 * NV; i++) assert_true(d.stats[i] == 0.0);
    td_drop_update(&d);
    assert_memory_equal(d.imp, before, sizeof(before));
    set_preds(&bt, 0, 5, (const int32_t[]){V_MAT, V_CLS, V_CLS, V_PAD, V_THE},
              (const float[]){1, 1, 1, 1, 0});
    set_preds(&bt, 1, 5, (const int32_t[]){V_MAT, V_MAT, V_THE, V_THE, V_THE},
              (const float[]){1, 0, 0, 0, 0});
    const float loss2[10] = {1.0f, 50.0f, 60.0f, 70.0f, 80.0f, 2.0f, 90.0f, 0, 0, 0};
    td_drop_stats_add(&d, &bt, loss2);
    td_drop_update(&d);
    expect_ema("mat, second step", d.imp[V_MAT], before[V_MAT], 0.9, 1.5);
    assert_true(d.imp[V_CLS] == 1e4f && d.imp[V_PAD] == -1e4f);
    assert_true(memcmp(&d.imp[V_THE], &before[V_THE], sizeof(float)) == 0);
    td_batch_free(&bt);
    td_drop_free(&d);

    /* SPEC defaults: 0.995 * 10 + 0.005 * 3 */
    c = default_cfg(TD_IMPORTANCE_LOSS);
    init_ok(&d, &c, &v, 1);
    td_batch_init(&bt, 1, 4, 2);
    set_preds(&bt, 0, 2, (const int32_t[]){V_DOT, 0}, (const float[]){1, 0});
    td_drop_stats_clear(&d);
    td_drop_stats_add(&d, &bt, (const float[]){3.0f, 0.0f});
    td_drop_update(&d);
    expect_ema("default beta", d.imp[V_DOT], 10.0f, 0.995, 3.0);
    assert_true(fabs(d.imp[V_DOT] - 9.965) <= 1e-6);
    td_batch_free(&bt);
    td_drop_free(&d);
    td_vocab_free(&v);
}

/* Two ranks' statistics summed element by element (what the allreduce
 * does) give the same table as one rank holding both batches, and as two
 * micro-batches added on one rank. Losses are multiples of 1/64 so every
 * double sum is exact and the tables must agree bitwise. */
static void update_two_ranks(void **state)
{
    (void)state;
    td_drop_config c = default_cfg(TD_IMPORTANCE_LOSS);
    c.allow[0] = tok_id(V_CLS);
    c.n_allow = 1;
    c.deny[0] = tok_id(V_PAD);
    c.n_deny = 1;
    c.loss_beta = 0.95;
    const int64_t P = 4, B0 = 2, B1 = 3;
    td_batch a, b, both;
    td_batch_init(&a, B0, 6, P);
    td_batch_init(&b, B1, 6, P);
    td_batch_init(&both, B0 + B1, 6, P);
    float la[2 * 4], lb[3 * 4], lboth[5 * 4];
    uint64_t key = td_rng_key(3, 0, 0, 7);
    for (int64_t i = 0; i < (B0 + B1) * P; i++) {
        int32_t id = (int32_t)td_rng_below(key, (uint64_t)i, NV);
        float w = td_rng_below(key, 1000 + (uint64_t)i, 5) == 0 ? 0.0f : 1.0f;
        float l = (float)td_rng_below(key, 2000 + (uint64_t)i, 640) / 64.0f;
        both.mlm_ids[i] = id, both.mlm_weights[i] = w, lboth[i] = l;
        if (i < B0 * P)
            a.mlm_ids[i] = id, a.mlm_weights[i] = w, la[i] = l;
        else
            b.mlm_ids[i - B0 * P] = id, b.mlm_weights[i - B0 * P] = w, lb[i - B0 * P] = l;
    }

    td_drop r0, r1, sum, one, micro;
    init_ok(&r0, &c, NULL, 1);
    init_ok(&r1, &c, NULL, 1);
    init_ok(&sum, &c, NULL, 1);
    init_ok(&one, &c, NULL, 1);
    init_ok(&micro, &c, NULL, 1);
    td_drop *all[5] = {&r0, &r1, &sum, &one, &micro};
    for (int k = 0; k < 5; k++) {
        for (int y = 0; y < NV; y++)
            if (all[k]->pinned[y] == TD_PIN_NONE) all[k]->imp[y] = 8.0f + 0.25f * (float)y;
        td_drop_stats_clear(all[k]);
    }
    td_drop_stats_add(&r0, &a, la);
    td_drop_stats_add(&r1, &b, lb);
    for (int64_t i = 0; i < 2 * NV; i++) sum.stats[i] = r0.stats[i] + r1.stats[i];
    td_drop_stats_add(&one, &both, lboth);
    td_drop_stats_add(&micro, &a, la);
    td_drop_stats_add(&micro, &b, lb);
    assert_memory_equal(sum.stats, one.stats, (size_t)(2 * NV) * sizeof(double));
    td_drop_update(&sum);
    td_drop_update(&one);
    td_drop_update(&micro);
    assert_memory_equal(sum.imp, one.imp, (size_t)NV * sizeof(float));
    assert_memory_equal(micro.imp, one.imp, (size_t)NV * sizeof(float));

    /* and the table is what the definition says, id by id */
    int changed = 0;
    for (int y = 0; y < NV; y++) {
        double s = 0, n = 0;
        for (int64_t i = 0; i < (B0 + B1) * P; i++)
            if (both.mlm_weights[i] > 0 && both.mlm_ids[i] == y) s += lboth[i], n += 1;
        float before = one.pinned[y] == TD_PIN_NONE ? 8.0f + 0.25f * (float)y
            : one.pinned[y] == TD_PIN_ALLOW         ? 1e4f
                                                    : -1e4f;
        if (n == 0 || one.pinned[y] != TD_PIN_NONE) {
            assert_true(one.imp[y] == before);
        } else {
            expect_ema("two ranks", one.imp[y], before, 0.95, s / n);
            changed++;
        }
    }
    assert_true(changed >= 5);
    for (int k = 0; k < 5; k++) td_drop_free(all[k]);
    td_batch_free(&a);
    td_batch_free(&b);
    td_batch_free(&both);
}

/* The kept count per step (td_drop_keep_at) for each schedule. */
static void schedules(void **state)
{
    (void)state;
    td_drop_config c = {.keep = 64};
    const int64_t T = 128, steps = 1000;

    /* constant: keep every step; the last full_last_steps are full */
    for (int64_t t = 1; t <= steps; t++) assert_int_equal(td_drop_keep_at(&c, T, steps, t), 64);
    c.full_last_steps = 100;
    assert_int_equal(td_drop_keep_at(&c, T, steps, 900), 64);
    assert_int_equal(td_drop_keep_at(&c, T, steps, 901), T);
    assert_int_equal(td_drop_keep_at(&c, T, steps, 1000), T);
    c.full_last_steps = 0;

    /* ramp: keep at step 1, T from step ramp_steps + 1, linear between,
     * rounded down to multiples of 8, never decreasing */
    c.schedule = TD_SCHEDULE_RAMP;
    c.ramp_steps = 400;
    assert_int_equal(td_drop_keep_at(&c, T, steps, 1), 64);
    assert_int_equal(td_drop_keep_at(&c, T, steps, 201), 96); /* half way */
    assert_int_equal(td_drop_keep_at(&c, T, steps, 400), 120);
    assert_int_equal(td_drop_keep_at(&c, T, steps, 401), T);
    int64_t prev = 0;
    for (int64_t t = 1; t <= steps; t++) {
        int64_t k = td_drop_keep_at(&c, T, steps, t);
        assert_true(k >= prev && k >= 64 && k <= T);
        assert_true(k % TD_DROP_RAMP_ROUND == 0);
        int64_t exact = 64 + (T - 64) * (t - 1) / 400; /* within one rounding step of the line */
        if (t <= 400) assert_true(exact - k >= 0 && exact - k < TD_DROP_RAMP_ROUND);
        prev = k;
    }
    /* a kept count below the rounding never rounds to 0 (random-LTD's bug) */
    c.keep = 1;
    c.ramp_steps = 100;
    for (int64_t t = 1; t <= 200; t++) {
        int64_t k = td_drop_keep_at(&c, 30, 200, t);
        assert_true(k >= 1 && k <= 30);
        if (t == 1) assert_int_equal(k, 1);
        if (t > 100) assert_int_equal(k, 30); /* 30 is no multiple of 8: still reached */
    }
    c.keep = 64;

    /* interleave: every full_every-th step full; full_last_steps on top */
    c.schedule = TD_SCHEDULE_INTERLEAVE;
    c.ramp_steps = 0;
    c.full_every = 4;
    for (int64_t t = 1; t <= 12; t++) assert_int_equal(td_drop_keep_at(&c, T, steps, t), t % 4 == 0 ? T : 64);
    c.full_last_steps = 10;
    assert_int_equal(td_drop_keep_at(&c, T, steps, 989), 64);
    assert_int_equal(td_drop_keep_at(&c, T, steps, 991), T);
    assert_int_equal(td_drop_keep_at(&c, T, steps, 993), T);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(init_defaults),
        cmocka_unit_test(init_deny_wins_and_ids),
        cmocka_unit_test(init_errors),
        cmocka_unit_test(select_loss),
        cmocka_unit_test(select_matches_reference),
        cmocka_unit_test(select_random),
        cmocka_unit_test(select_frequency),
        cmocka_unit_test(update_ema),
        cmocka_unit_test(update_two_ranks),
        cmocka_unit_test(schedules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
