/* The trainer: everything one rank holds during a run, and one optimizer
 * step whose data flow reads top to bottom in td_trainer_step (DESIGN.md). */
#ifndef TOKDROP_TRAIN_H
#define TOKDROP_TRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "tokdrop/train/ckpt.h"
#include "tokdrop/train/config.h"
#include "tokdrop/train/data.h"
#include "tokdrop/train/dist.h"
#include "tokdrop/nn/drop.h"
#include "tokdrop/train/eval.h"
#include "tokdrop/base/error.h"
#include "tokdrop/nn/model.h"
#include "tokdrop/nn/optim.h"
#include "tokdrop/base/vocab.h"
#include "tokdrop/train/watchdog.h"

/* Figures of one step, identical on every rank. */
typedef struct {
    int64_t step; /* the update just applied, 1-based */
    double loss, mlm_loss, nsp_loss;
    double mlm_acc, nsp_acc;
    double lr, grad_norm; /* grad_norm is NaN when the loss was not finite */
    bool skipped;         /* loss or gradient norm not finite: no update was applied */
    int64_t keep;         /* tokens per sequence the step kept (td_drop_keep_at); 0: a full-sequence step */
    double kept_fraction; /* tokens through the middle layers / all tokens */
    int64_t sequences, tokens, n_masked;
    /* seconds of this rank */
    double t_data, t_forward, t_backward, t_allreduce, t_optimizer, t_total;
} td_step_stats;

typedef struct {
    td_config cfg;
    const td_dist *dist;
    td_model model;
    td_optim optim;
    td_vocab vocab; /* empty when model.vocab is "" */
    bool dropping;        /* token_drop.enabled */
    bool tracking;        /* the importance table is kept (and updated): when dropping,
                             or when a vocabulary resolves the allow/deny tokens */
    td_drop drop;
    td_data *data;
    int64_t n_micro;      /* micro-batches per step (accumulation) */
    td_batch *micro;      /* (n_micro) this step's micro-batches */
    int32_t *kept;        /* (n_micro, B, K) the last step's kept positions, K its kept count */
    float *grads_before_clip; /* (n_params) only for --dump */
    int64_t step;         /* steps taken so far (skipped ones included) */
    int64_t unconfirmed_ckpt; /* step of the newest checkpoint that no finite step has followed yet, or -1 */
    td_data *eval_data;   /* NULL when data.eval is "" */
    td_dist_pending pending;
    td_watchdog *watchdog; /* may be NULL; beaten at every phase of a step */
    /* tests only (the CLI's TOKDROP_FAULT=nan:R:S:N sets them on rank R):
     * this rank's loss is NaN on steps [fault_nan_from, + fault_nan_steps),
     * as a bad batch's would be */
    int64_t fault_nan_from, fault_nan_steps;
} td_trainer;

/* The data reader options a config implies for this rank, for data.train
 * or (eval) data.eval: the evaluation set is the first run.eval_batches x
 * train.micro_batch sequences of data.eval, in file order, whatever the
 * rank count. Special token ids for dynamic masking come from vocab, which
 * may be empty otherwise. */
td_status td_trainer_data_options(td_data_options *opt, const td_config *cfg, const td_dist *dist,
                                  const td_vocab *vocab, bool eval, td_error *err);

/* Builds the model (from model.init or a seeded random init), optimizer,
 * importance table and the rank's data stream. cfg must be resolved and
 * validated. */
td_status td_trainer_init(td_trainer *tr, const td_config *cfg, const td_dist *dist, td_error *err);
void td_trainer_free(td_trainer *tr);

/* One optimizer step over micro_batch x accumulation sequences per rank.
 * A step whose loss or gradient norm is not finite counts (the step number
 * and the schedule advance, the batch is consumed) but changes neither the
 * parameters, the moments nor the importance table: stats->skipped. */
td_status td_trainer_step(td_trainer *tr, td_step_stats *stats, td_error *err);

/* Writes a checkpoint of the current state to run.dir/checkpoints
 * (collective: cursors are gathered and rank 0 writes; every rank gets the
 * status). The checkpoints before it stay until td_trainer_confirm_checkpoint. */
td_status td_trainer_save(td_trainer *tr, td_error *err);

/* After a step that was not skipped: the newest checkpoint led to a finite
 * step, so the ones beyond run.keep_checkpoints can go (collective; nothing
 * to do, and no communication, when every checkpoint is confirmed). */
td_status td_trainer_confirm_checkpoint(td_trainer *tr, td_error *err);

/* The run is stopping on non-finite steps: the checkpoint that no finite
 * step followed (its state led straight to them) is renamed *.diverged, so
 * that the newest checkpoint is the last good one (collective). Its new
 * name in path (path_len bytes), "" when there was none. */
td_status td_trainer_set_aside_checkpoint(td_trainer *tr, char *path, size_t path_len, td_error *err);

/* Restores the newest valid checkpoint of run.dir/checkpoints, if any
 * (collective). *from_step is the step it held and ckpt_path (path_len
 * bytes) its file, on every rank; 0 and "" when none was found. Corrupt
 * newer checkpoints are reported on stderr and skipped. */
td_status td_trainer_resume(td_trainer *tr, int64_t *from_step, char *ckpt_path, size_t path_len,
                            td_error *err);

/* Evaluates on data.eval (run.eval_batches micro-batches per rank). */
td_status td_trainer_eval(td_trainer *tr, td_eval_result *result, td_error *err);

/* Collective: a hash of the parameters, compared across ranks; an error
 * naming the step when they differ (data parallelism must keep them equal). */
td_status td_trainer_check_replicas(const td_trainer *tr, td_error *err);

/* After a first step taken with tr->grads_before_clip allocated: writes the
 * SPEC section 7 dump (collective; rank 0 writes the file). */
td_status td_trainer_write_dump(const td_trainer *tr, const td_step_stats *stats, const char *path,
                                td_error *err);

#endif
