/* Evaluation (SPEC section 7): full-sequence masked-LM loss and accuracy and
 * NSP loss and accuracy on the eval shards. Never drops tokens, no dropout.
 * Every evaluation reads the same samples: the eval stream restarts at its
 * first epoch each time. */
#ifndef TOKDROP_EVAL_H
#define TOKDROP_EVAL_H

#include <stdint.h>

#include "tokdrop/train/data.h"
#include "tokdrop/train/dist.h"
#include "tokdrop/base/error.h"
#include "tokdrop/nn/model.h"

typedef struct {
    int64_t sequences; /* over all ranks */
    int64_t n_masked;
    double mlm_loss, mlm_acc, nsp_loss, nsp_acc;
} td_eval_result;

/* Evaluates every sample of this rank's share of the evaluation set (an
 * ordered reader: the set is the same whatever the rank count), in
 * micro-batches of at most batch->B sequences; batch is scratch of the
 * model's capacity. Collective. */
td_status td_eval_run(td_model *model, td_data *eval_data, td_batch *batch, const td_dist *dist,
                      td_eval_result *out, td_error *err);

#endif
