/* Evaluation on held-out shards. */
#include "tokdrop/train/eval.h"

td_status td_eval_run(td_model *model, td_data *eval_data, td_batch *batch, const td_dist *dist,
                      td_eval_result *out, td_error *err)
{
    const int64_t cap = batch->B;
    td_data_set_cursor(eval_data, (td_data_cursor){0, 0, 0});
    int64_t remaining = td_data_rank_samples(eval_data);

    /* sums: mlm CE, nsp CE, mlm correct, nsp correct, masked, sequences */
    double sums[6] = {0};
    td_status st = TD_OK;
    while (remaining > 0 && st == TD_OK) {
        batch->B = remaining < cap ? remaining : cap;
        st = td_data_next(eval_data, batch, err);
        if (st != TD_OK) break;
        td_forward_args fa = {
            .batch = batch, .training = false, .mlm_scale = 1.0f, .nsp_scale = 1.0f,
        };
        td_forward_stats fs;
        td_model_forward(model, &fa, &fs);
        sums[0] += fs.mlm_loss_sum;
        sums[1] += fs.nsp_loss_sum;
        sums[2] += (double)fs.mlm_correct;
        sums[3] += (double)fs.nsp_correct;
        sums[4] += (double)fs.n_masked;
        sums[5] += (double)fs.n_seq;
        remaining -= batch->B;
    }
    batch->B = cap;
    if (td_dist_any_failed(dist, st != TD_OK)) {
        if (st == TD_OK) td_error_set(err, TD_ERR_MPI, "another rank failed during evaluation");
        return st == TD_OK ? TD_ERR_MPI : st;
    }
    td_dist_allreduce_f64(dist, sums, 6);
    out->sequences = (int64_t)sums[5];
    out->n_masked = (int64_t)sums[4];
    out->mlm_loss = sums[4] > 0 ? sums[0] / sums[4] : 0.0;
    out->mlm_acc = sums[4] > 0 ? sums[2] / sums[4] : 0.0;
    out->nsp_loss = sums[5] > 0 ? sums[1] / sums[5] : 0.0;
    out->nsp_acc = sums[5] > 0 ? sums[3] / sums[5] : 0.0;
    return TD_OK;
}
