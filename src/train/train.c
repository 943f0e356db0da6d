/* The trainer: set-up of one rank's state and one optimizer step.
 *
 * Normalization (SPEC section 1): every rank scales its loss terms by the
 * GLOBAL counts (masked predictions of the whole global batch, G
 * sequences) before the backward, so the allreduce is a plain sum and the
 * result does not depend on how the batch is split over ranks or
 * micro-steps. The counts are known before the forward because a step's
 * micro-batches are read first. */
#include "tokdrop/train/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/fs.h"
#include "formats/data_shard.h"
#include "tokdrop/base/hash.h"
#include "tokdrop/train/log.h"
#include "tokdrop/base/report.h"
#include "tokdrop/train/weights.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

td_status td_trainer_data_options(td_data_options *o, const td_config *cfg, const td_dist *dist,
                                  const td_vocab *vocab, bool eval, td_error *err)
{
    *o = (td_data_options){
        .seq_len = cfg->data.seq_len,
        .max_pred = cfg->data.max_pred,
        .vocab_size = cfg->model.vocab_size,
        .rank = dist->rank,
        .n_ranks = dist->size,
        .seed = cfg->train.seed,
        .dynamic_masking = cfg->data.masking == TD_MASKING_DYNAMIC,
        .memory_bytes = cfg->data.memory_mb << 20,
        .ordered = eval,
        .limit = eval ? cfg->run.eval_batches * cfg->train.micro_batch : 0,
        .key = eval ? "data.eval" : "data.train",
        .vocab_path = vocab->size > 0 ? cfg->model.vocab : NULL,
        .vocab_hash = vocab->hash,
    };
    if (!o->dynamic_masking) return TD_OK;
    if (vocab->size == 0)
        return td_error_set(err, TD_ERR_CONFIG, "data.masking: dynamic needs model.vocab for the [MASK] id");
    static const char *const names[] = {"[MASK]", "[CLS]", "[SEP]", "[PAD]"};
    int32_t *dst[] = {&o->mask_id, &o->cls_id, &o->sep_id, &o->pad_id};
    for (int i = 0; i < 4; i++) {
        int64_t id = td_vocab_find(vocab, names[i]);
        if (id < 0)
            return td_error_set(err, TD_ERR_FORMAT, "%s: vocabulary has no %s token (dynamic masking needs it)",
                                cfg->model.vocab, names[i]);
        *dst[i] = (int32_t)id;
    }
    return TD_OK;
}

/* Puts the config key a failure comes from in front of its message, so a
 * bad path names the key to fix. */
static void blame_key(td_error *err, td_status st, const char *key)
{
    if (!err) return;
    char msg[TD_ERROR_MSG_LEN];
    snprintf(msg, sizeof(msg), "%s", err->msg);
    td_error_set(err, st, "%s: %s", key, msg);
}

td_status td_trainer_init(td_trainer *tr, const td_config *cfg, const td_dist *dist, td_error *err)
{
    memset(tr, 0, sizeof(*tr));
    tr->cfg = *cfg;
    tr->dist = dist;
    tr->unconfirmed_ckpt = -1;
    const td_model_config *mc = &cfg->model;
    const int64_t B = cfg->train.micro_batch, T = cfg->data.seq_len, MP = cfg->data.max_pred;
    td_status st;

    if (mc->vocab[0]) {
        if ((st = td_vocab_load(&tr->vocab, mc->vocab, err)) != TD_OK) {
            blame_key(err, st, "model.vocab");
            goto fail;
        }
        if (tr->vocab.size != mc->vocab_size) {
            st = td_error_set(err, TD_ERR_CONFIG, "%s has %lld tokens but model.vocab_size = %lld",
                              mc->vocab, (long long)tr->vocab.size, (long long)mc->vocab_size);
            goto fail;
        }
    }

    if ((st = td_model_init(&tr->model, mc, B, T, MP, err)) != TD_OK) goto fail;
    td_model_init_weights(&tr->model, cfg->train.seed);
    if (mc->init[0]) {
        int n_new_heads = 0;
        if ((st = td_weights_load(&tr->model, mc->init, &n_new_heads, err)) != TD_OK) {
            blame_key(err, st, "model.init");
            goto fail;
        }
        td_log(dist, "weights from %s%s", mc->init,
               n_new_heads ? " (it has no pretraining heads: they start from a random init)" : "");
    }
    if ((st = td_model_set_precision(&tr->model, cfg->train.precision, err)) != TD_OK) goto fail;
    td_optim_init(&tr->optim, &cfg->optimizer, cfg->train.steps, tr->model.n_params);

    tr->dropping = cfg->token_drop.enabled;
    tr->tracking = tr->dropping || mc->vocab[0];
    if (tr->tracking) {
        st = td_drop_init(&tr->drop, &cfg->token_drop, mc->vocab_size, mc->vocab[0] ? &tr->vocab : NULL,
                          cfg->train.seed, err);
        if (st != TD_OK) goto fail;
        if (tr->dropping && cfg->token_drop.importance == TD_IMPORTANCE_FREQUENCY) {
            int64_t *counts = td_xcalloc((size_t)mc->vocab_size, sizeof(int64_t));
            st = td_data_token_counts(cfg->data.train, mc->vocab_size, counts, err);
            if (st == TD_OK) td_drop_set_frequency(&tr->drop, counts);
            free(counts);
            if (st != TD_OK) goto fail;
        }
    }

    td_data_options dopt, eopt;
    if ((st = td_trainer_data_options(&dopt, cfg, dist, &tr->vocab, false, err)) != TD_OK) goto fail;
    if ((st = td_data_open(&tr->data, cfg->data.train, &dopt, err)) != TD_OK) goto fail;
    if (cfg->data.eval[0]) {
        if ((st = td_trainer_data_options(&eopt, cfg, dist, &tr->vocab, true, err)) != TD_OK) goto fail;
        if ((st = td_data_open(&tr->eval_data, cfg->data.eval, &eopt, err)) != TD_OK) goto fail;
    }

    td_dist_pending_init(&tr->pending, (int)(2 * tr->model.L + 8));
    tr->n_micro = cfg->train.accumulation;
    tr->micro = td_xcalloc((size_t)tr->n_micro, sizeof(td_batch));
    for (int64_t a = 0; a < tr->n_micro; a++) td_batch_init(&tr->micro[a], B, T, MP);
    if (tr->dropping)
        tr->kept = td_xmalloc((size_t)(tr->n_micro * B * cfg->data.seq_len) * sizeof(int32_t)); /* any schedule */
    return TD_OK;
fail:
    td_trainer_free(tr);
    return st;
}

void td_trainer_free(td_trainer *tr)
{
    if (tr->micro)
        for (int64_t a = 0; a < tr->n_micro; a++) td_batch_free(&tr->micro[a]);
    free(tr->micro);
    free(tr->kept);
    free(tr->grads_before_clip);
    if (tr->data) td_data_free(tr->data);
    if (tr->eval_data) td_data_free(tr->eval_data);
    td_dist_pending_free(&tr->pending);
    if (tr->tracking) td_drop_free(&tr->drop);
    td_optim_free(&tr->optim);
    td_model_free(&tr->model);
    td_vocab_free(&tr->vocab);
    memset(tr, 0, sizeof(*tr));
}

/* Gradient buckets start their allreduce as the backward finishes them. */
typedef struct {
    td_trainer *tr;
    double t_comm; /* seconds spent inside MPI calls during the backward */
} overlap_ctx;

static void on_grads_ready(void *ctx, int64_t offset, int64_t n_elems)
{
    overlap_ctx *oc = ctx;
    double t0 = now_s();
    td_dist_iallreduce_f32(oc->tr->dist, oc->tr->model.grads + offset, n_elems, &oc->tr->pending);
    td_dist_progress(&oc->tr->pending);
    oc->t_comm += now_s() - t0;
}

td_status td_trainer_step(td_trainer *tr, td_step_stats *out, td_error *err)
{
    const td_config *cfg = &tr->cfg;
    const td_dist *dist = tr->dist;
    td_model *model = &tr->model;
    const uint64_t t = (uint64_t)tr->step + 1; /* this update's index: RNG step and LAMB t */
    const int64_t B = cfg->train.micro_batch, T = cfg->data.seq_len;
    /* tokens kept through the middle layers this step; K == T: a full step */
    const int64_t K = tr->dropping ? td_drop_keep_at(&cfg->token_drop, T, cfg->train.steps, (int64_t)t) : T;
    /* keep == T itself still runs the dropping path (bit-identical to the
     * full model; the --dump and its reference check the kept positions) */
    const bool drop_now = tr->dropping && (K < T || K == cfg->token_drop.keep);
    td_step_stats s = {0};
    double t_start = now_s(), t0;
    /* train.allreduce: blocking by default, since with Open MPI's progress
     * only inside MPI calls the overlap hides nothing, and over shared
     * memory it cost 2.5-4x the blocking sum (bench/README.md, "The network
     * path"); alternate lets a benchmark time both under the same noise. */
    const td_allreduce_mode mode = cfg->train.allreduce;
    const bool overlap = dist->size > 1 && (mode == TD_ALLREDUCE_OVERLAP ||
                                            (mode == TD_ALLREDUCE_ALTERNATE && t % 2 == 1));

    /* 1. data: all micro-batches of the step, and the global counts */
    td_watchdog_beat(tr->watchdog, "reading data");
    t0 = now_s();
    int64_t counts[2] = {0, tr->n_micro * B}; /* masked predictions, sequences */
    for (int64_t a = 0; a < tr->n_micro; a++) {
        td_status st = td_data_next(tr->data, &tr->micro[a], err);
        if (td_dist_any_failed(dist, st != TD_OK)) {
            if (st == TD_OK) td_error_set(err, TD_ERR_MPI, "another rank failed to read its data");
            return st == TD_OK ? TD_ERR_MPI : st;
        }
        counts[0] += td_batch_count_masked(&tr->micro[a]);
    }
    s.t_data = now_s() - t0;
    td_watchdog_beat(tr->watchdog, "agreeing on the global batch counts");
    t0 = now_s();
    td_dist_allreduce_i64(dist, counts, 2);
    s.t_allreduce += now_s() - t0;
    const int64_t n_masked = counts[0], G = counts[1];

    /* 2. forward and backward of every micro-batch, gradients accumulated */
    td_watchdog_beat(tr->watchdog, "in forward and backward");
    td_model_zero_grads(model);
    const bool loss_importance = tr->tracking && tr->drop.kind == TD_IMPORTANCE_LOSS;
    if (loss_importance) td_drop_stats_clear(&tr->drop);
    double sums[4] = {0}; /* mlm CE, nsp CE, mlm correct, nsp correct */
    for (int64_t a = 0; a < tr->n_micro; a++) {
        const td_batch *batch = &tr->micro[a];
        int32_t *kept = drop_now ? tr->kept + a * B * K : NULL;
        t0 = now_s();
        if (kept) td_drop_select(&tr->drop, kept, batch, K, t);
        td_forward_args fa = {
            .batch = batch,
            .kept = kept,
            .keep = K,
            .first_layer = cfg->token_drop.first_layer,
            .training = true,
            .seed = cfg->train.seed,
            .step = t,
            .mlm_scale = n_masked > 0 ? (float)(1.0 / (double)n_masked) : 0.0f,
            .nsp_scale = (float)(1.0 / (double)G),
        };
        td_forward_stats fs;
        td_model_forward(model, &fa, &fs);
        sums[0] += fs.mlm_loss_sum;
        sums[1] += fs.nsp_loss_sum;
        sums[2] += (double)fs.mlm_correct;
        sums[3] += (double)fs.nsp_correct;
        if (loss_importance) td_drop_stats_add(&tr->drop, batch, fs.pred_loss);
        s.t_forward += now_s() - t0;
        /* the last micro-batch's backward finishes the gradients: reduce
         * each layer's bucket while the layers below are still running */
        bool last = a == tr->n_micro - 1;
        overlap_ctx oc = {tr, 0.0};
        bool reduce_now = last && overlap;
        t0 = now_s();
        td_model_backward(model, reduce_now ? on_grads_ready : NULL, &oc);
        s.t_backward += now_s() - t0 - oc.t_comm;
        s.t_allreduce += oc.t_comm;
    }

    if ((int64_t)t >= tr->fault_nan_from && (int64_t)t < tr->fault_nan_from + tr->fault_nan_steps)
        sums[0] = NAN;

    /* 3. allreduce: the rest of the gradients, loss terms, importance statistics */
    td_watchdog_beat(tr->watchdog, "reducing gradients");
    t0 = now_s();
    if (overlap)
        td_dist_wait(&tr->pending);
    else
        td_dist_allreduce_f32(dist, model->grads, model->n_params);
    td_dist_allreduce_f64(dist, sums, 4);
    if (loss_importance) td_dist_allreduce_f64(dist, tr->drop.stats, 2 * tr->drop.V);
    s.t_allreduce += now_s() - t0;

    /* 4. importance update and optimizer step, identical on every rank; a
     * non-finite loss or gradient norm skips both, so neither the
     * parameters nor the importance table take in what a bad step computed */
    td_watchdog_beat(tr->watchdog, "updating parameters");
    t0 = now_s();
    s.mlm_loss = n_masked > 0 ? sums[0] / (double)n_masked : 0.0;
    s.nsp_loss = sums[1] / (double)G;
    s.loss = s.mlm_loss + s.nsp_loss;
    if (tr->grads_before_clip)
        memcpy(tr->grads_before_clip, model->grads, (size_t)model->n_params * sizeof(float));
    if (isfinite(s.loss)) {
        s.grad_norm = td_optim_step(&tr->optim, model->params, model->grads, model->tensors,
                                    model->n_tensors, &s.lr);
    } else {
        s.grad_norm = NAN; /* not computed: the step is skipped whatever it is */
        td_optim_skip(&tr->optim, &s.lr);
    }
    s.skipped = !isfinite(s.loss) || !isfinite(s.grad_norm);
    if (!s.skipped) {
        if (loss_importance) td_drop_update(&tr->drop);
        td_model_params_changed(model);
    }
    s.t_optimizer = now_s() - t0;
    tr->step++;

    s.step = tr->step;
    s.mlm_acc = n_masked > 0 ? sums[2] / (double)n_masked : 0.0;
    s.nsp_acc = sums[3] / (double)G;
    s.n_masked = n_masked;
    s.sequences = G;
    s.tokens = G * cfg->data.seq_len;
    s.keep = drop_now ? K : 0;
    s.kept_fraction = (double)K / (double)T;
    s.t_total = now_s() - t_start;
    *out = s;
    return TD_OK;
}

td_status td_trainer_eval(td_trainer *tr, td_eval_result *result, td_error *err)
{
    TD_ASSERT(tr->eval_data != NULL);
    td_watchdog_beat(tr->watchdog, "evaluating");
    return td_eval_run(&tr->model, tr->eval_data, &tr->micro[0], tr->dist, result, err);
}

td_status td_trainer_check_replicas(const td_trainer *tr, td_error *err)
{
    td_watchdog_beat(tr->watchdog, "comparing parameters across ranks");
    /* the bits, not the values: replicas must be bit-identical */
    uint64_t h = td_hash64(tr->model.params, (size_t)tr->model.n_params * sizeof(float));
    if (td_dist_all_equal_u64(tr->dist, h)) return TD_OK;
    return td_error_set(err, TD_ERR_MPI,
                        "after step %lld the parameters differ between ranks (data-parallel replicas "
                        "diverged: mixed library builds or CPU kinds across nodes?)",
                        (long long)tr->step);
}

/* run.dir is shorter than TD_PATH_LEN, so out (TD_PATH_LEN + 16) always fits. */
static void checkpoint_dir(const td_trainer *tr, char *out, size_t n)
{
    td_status st = td_fs_join(out, n, tr->cfg.run.dir, "checkpoints", NULL);
    TD_ASSERT(st == TD_OK);
}

/* The trainer's state as a checkpoint sees it (written from, or read into). */
static td_ckpt checkpoint_view(td_trainer *tr, td_data_cursor *cursors)
{
    return (td_ckpt){
        .step = tr->step,
        .seed = tr->cfg.train.seed,
        .tensors = tr->model.tensors,
        .n_tensors = tr->model.n_tensors,
        .n_params = tr->model.n_params,
        .params = tr->model.params,
        .m = tr->optim.m,
        .v = tr->optim.v,
        .V = tr->tracking ? tr->drop.V : 0,
        .importance = tr->tracking ? tr->drop.imp : NULL,
        .n_ranks = tr->dist->size,
        .cursors = cursors,
    };
}

td_status td_trainer_save(td_trainer *tr, td_error *err)
{
    const td_dist *dist = tr->dist;
    td_watchdog_beat(tr->watchdog, "writing a checkpoint");
    td_data_cursor mine = td_data_get_cursor(tr->data);
    int64_t local[3] = {mine.epoch, mine.index, mine.window};
    int64_t *all = dist->rank == 0 ? td_xmalloc((size_t)(3 * dist->size) * sizeof(int64_t)) : NULL;
    td_dist_gather_i64(dist, local, all, 3);

    td_status st = TD_OK;
    if (dist->rank == 0) {
        td_data_cursor *cursors = td_xmalloc((size_t)dist->size * sizeof(td_data_cursor));
        for (int r = 0; r < dist->size; r++)
            cursors[r] = (td_data_cursor){all[3 * r], all[3 * r + 1], all[3 * r + 2]};
        char *yaml = td_config_to_yaml(&tr->cfg);
        td_ckpt ck = checkpoint_view(tr, cursors);
        ck.config_yaml = yaml;
        char dir[TD_PATH_LEN + 16];
        checkpoint_dir(tr, dir, sizeof(dir));
        /* one more than keep: the previous ones stay until a finite step
         * shows that this one does not hold a diverging state */
        st = td_ckpt_write(dir, &ck, (int)tr->cfg.run.keep_checkpoints + 1, err);
        free(yaml);
        free(cursors);
        free(all);
    }
    int code = td_dist_bcast_int(dist, (int)st);
    if (code != TD_OK && dist->rank != 0)
        td_error_set(err, (td_status)code, "rank 0 failed to write the checkpoint");
    if (code == TD_OK) tr->unconfirmed_ckpt = tr->step;
    return (td_status)code;
}

td_status td_trainer_confirm_checkpoint(td_trainer *tr, td_error *err)
{
    if (tr->unconfirmed_ckpt < 0) return TD_OK;
    const td_dist *dist = tr->dist;
    td_watchdog_beat(tr->watchdog, "removing old checkpoints");
    td_status st = TD_OK;
    if (dist->rank == 0) {
        char dir[TD_PATH_LEN + 16];
        checkpoint_dir(tr, dir, sizeof(dir));
        st = td_ckpt_prune(dir, tr->unconfirmed_ckpt, (int)tr->cfg.run.keep_checkpoints, err);
    }
    int code = td_dist_bcast_int(dist, (int)st);
    if (code != TD_OK && dist->rank != 0)
        td_error_set(err, (td_status)code, "rank 0 failed to remove old checkpoints");
    tr->unconfirmed_ckpt = -1;
    return (td_status)code;
}

td_status td_trainer_set_aside_checkpoint(td_trainer *tr, char *path, size_t path_len, td_error *err)
{
    if (path_len > 0) path[0] = '\0';
    if (tr->unconfirmed_ckpt < 0) return TD_OK;
    const td_dist *dist = tr->dist;
    td_status st = TD_OK;
    if (dist->rank == 0) {
        char dir[TD_PATH_LEN + 16];
        checkpoint_dir(tr, dir, sizeof(dir));
        st = td_ckpt_set_aside(dir, tr->unconfirmed_ckpt, ".diverged", path, path_len, err);
    }
    int code = td_dist_bcast_int(dist, (int)st);
    if (code != TD_OK && dist->rank != 0)
        td_error_set(err, (td_status)code, "rank 0 failed to set the diverged checkpoint aside");
    td_dist_bcast_bytes(dist, path, path_len);
    tr->unconfirmed_ckpt = -1;
    return (td_status)code;
}

static void warn_user(void *ctx, const char *msg)
{
    (void)ctx;
    td_report(TD_REPORT_WARNING, "%s", msg);
}

td_status td_trainer_resume(td_trainer *tr, int64_t *from_step, char *ckpt_path, size_t path_len, td_error *err)
{
    const td_dist *dist = tr->dist;
    *from_step = 0;
    if (path_len > 0) ckpt_path[0] = '\0';
    /* rank 0 chooses the file (and reports corrupt ones once) */
    char path[TD_PATH_LEN + 64] = "";
    td_status st = TD_OK;
    if (dist->rank == 0) {
        char dir[TD_PATH_LEN + 16];
        checkpoint_dir(tr, dir, sizeof(dir));
        st = td_ckpt_find_latest(dir, path, sizeof(path), warn_user, NULL, err);
    }
    int code = td_dist_bcast_int(dist, (int)st);
    if (code != TD_OK) {
        if (dist->rank != 0) td_error_set(err, (td_status)code, "rank 0 could not search for checkpoints");
        return (td_status)code;
    }
    td_dist_bcast_bytes(dist, path, sizeof(path));
    if (!path[0]) return TD_OK;

    td_data_cursor *cursors = td_xcalloc((size_t)dist->size, sizeof(td_data_cursor));
    td_ckpt ck = checkpoint_view(tr, cursors);
    bool ranks_match = true;
    st = td_ckpt_read(path, &ck, &ranks_match, err);
    free(ck.config_yaml);
    if (td_dist_any_failed(dist, st != TD_OK)) {
        free(cursors);
        if (st == TD_OK) td_error_set(err, TD_ERR_MPI, "another rank failed to read %s", path);
        return st == TD_OK ? TD_ERR_MPI : st;
    }
    td_model_params_changed(&tr->model);
    tr->step = ck.step;
    tr->optim.t = ck.step;
    td_data_cursor mine = cursors[dist->rank];
    if (!ranks_match || mine.index > td_data_rank_samples(tr->data)) {
        /* another rank layout: positions inside the old streams mean nothing
         * here; continue from the start of the next epoch */
        mine = (td_data_cursor){cursors[0].epoch + 1, 0, 0};
        if (dist->rank == 0)
            td_report(TD_REPORT_WARNING, "%s was written by another number of ranks; "
                      "the data order restarts at epoch %lld", path, (long long)mine.epoch);
    } else if (mine.window != td_data_get_cursor(tr->data).window) {
        /* the same position, but chunks of another size shuffle differently */
        td_report(TD_REPORT_WARNING, "rank %d: %s was written reading the data in windows of "
                  "%lld samples, this run reads windows of %lld (data.memory_mb changed?): "
                  "from here the data order differs from an uninterrupted run",
                  dist->rank, path, (long long)mine.window, (long long)td_data_get_cursor(tr->data).window);
    }
    td_data_set_cursor(tr->data, mine);
    free(cursors);
    /* like a checkpoint just written: kept with the ones before it until a
     * finite step follows (the run may resume with another learning rate) */
    tr->unconfirmed_ckpt = ck.step;
    *from_step = ck.step;
    snprintf(ckpt_path, path_len, "%s", path);
    return TD_OK;
}
