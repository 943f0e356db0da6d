/* `tokdrop train --dump FILE` (SPEC section 7): the first step's loss
 * terms, importance table, kept positions, global gradients before
 * clipping and parameters after the update, for comparison with other
 * implementations. We also store the global batch under batch/ so that a
 * reference needs nothing of our data order. Global sample order: rank
 * major, then micro-step, then sequence. */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokdrop/train/train.h"

#include "formats/h5util.h"

/* Gathers n_elems int32 (or float) of every rank to rank 0, rank-major. */
static void *gather(const td_dist *dist, const void *local, int64_t n_elems, bool is_float)
{
    void *all = dist->rank == 0 ? td_xmalloc((size_t)(n_elems * dist->size) * 4) : NULL;
    if (is_float)
        td_dist_gather_f32(dist, local, all, n_elems);
    else
        td_dist_gather_i32(dist, local, all, n_elems);
    return all;
}

/* The n_micro batches' field (each n_per_micro elements) in one array. */
static void *concat_field(const td_trainer *tr, size_t field_offset, int64_t n_per_micro, size_t elem_bytes)
{
    char *out = td_xmalloc((size_t)(tr->n_micro * n_per_micro) * elem_bytes);
    for (int64_t a = 0; a < tr->n_micro; a++) {
        const char *src = *(const char *const *)((const char *)&tr->micro[a] + field_offset);
        memcpy(out + (size_t)(a * n_per_micro) * elem_bytes, src, (size_t)n_per_micro * elem_bytes);
    }
    return out;
}

td_status td_trainer_write_dump(const td_trainer *tr, const td_step_stats *stats, const char *path,
                                td_error *err)
{
    const td_dist *dist = tr->dist;
    const int64_t B = tr->cfg.train.micro_batch, T = tr->cfg.data.seq_len;
    const int64_t MP = tr->cfg.data.max_pred, K = stats->keep; /* 0: the step was full */
    const int64_t n_local = tr->n_micro * B;
    const hsize_t G = (hsize_t)(n_local * dist->size);
    TD_ASSERT(tr->grads_before_clip != NULL);

    static const struct {
        const char *name;
        size_t offset;
        int per_token; /* 1: (G, T), 0: (G, max_pred), -1: (G) */
        bool is_float;
    } fields[] = {
        {"batch/input_ids", offsetof(td_batch, input_ids), 1, false},
        {"batch/input_mask", offsetof(td_batch, input_mask), 1, false},
        {"batch/segment_ids", offsetof(td_batch, segment_ids), 1, false},
        {"batch/masked_lm_positions", offsetof(td_batch, mlm_positions), 0, false},
        {"batch/masked_lm_ids", offsetof(td_batch, mlm_ids), 0, false},
        {"batch/masked_lm_weights", offsetof(td_batch, mlm_weights), 0, true},
        {"batch/next_sentence_labels", offsetof(td_batch, nsp_labels), -1, false},
    };
    enum { N_FIELDS = sizeof(fields) / sizeof(fields[0]) };
    void *gathered[N_FIELDS];
    for (int i = 0; i < N_FIELDS; i++) {
        int64_t per = fields[i].per_token == 1 ? B * T : fields[i].per_token == 0 ? B * MP : B;
        void *local = concat_field(tr, fields[i].offset, per, 4);
        gathered[i] = gather(dist, local, tr->n_micro * per, fields[i].is_float);
        free(local);
    }
    int32_t *kept = K > 0 ? gather(dist, tr->kept, n_local * K, false) : NULL;

    td_status st = TD_OK;
    if (dist->rank == 0) {
        td_h5_quiet q = td_h5_quiet_begin();
        td_h5_writer d;
        td_h5_writer_create(&d, path, H5P_DEFAULT, err);
        /* every dataset name creates its groups (batch/, grad/, param/) */
        hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
        if (lcpl >= 0) H5Pset_create_intermediate_group(lcpl, 1);
        d.lcpl = lcpl;
        td_h5_write_attr_str(&d, "format", "tokdrop-dump");
        td_h5_write_attr_str(&d, "format_version", "1");
        td_h5_write_dataset(&d, "loss", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, NULL, &stats->loss);
        td_h5_write_dataset(&d, "mlm_loss", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, NULL, &stats->mlm_loss);
        td_h5_write_dataset(&d, "nsp_loss", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, NULL, &stats->nsp_loss);
        if (kept) {
            hsize_t dk[2] = {G, (hsize_t)K};
            td_h5_write_dataset(&d, "kept", H5T_STD_I32LE, H5T_NATIVE_INT32, 2, dk, kept);
        }
        if (tr->tracking) {
            hsize_t dv[1] = {(hsize_t)tr->drop.V};
            td_h5_write_dataset(&d, "importance", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, dv, tr->drop.imp);
        } else {
            /* no table without a vocabulary to resolve allow/deny: loss_init everywhere */
            int64_t V = tr->model.V;
            float *imp = td_xmalloc((size_t)V * sizeof(float));
            for (int64_t i = 0; i < V; i++) imp[i] = (float)tr->cfg.token_drop.loss_init;
            hsize_t dv[1] = {(hsize_t)V};
            td_h5_write_dataset(&d, "importance", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, dv, imp);
            free(imp);
        }
        for (int i = 0; i < tr->model.n_tensors; i++) {
            const td_tensor_info *ti = &tr->model.tensors[i];
            hsize_t dims[2] = {(hsize_t)ti->shape[0], (hsize_t)ti->shape[1]};
            char name[TD_TENSOR_NAME_LEN + 8];
            snprintf(name, sizeof(name), "grad/%s", ti->name);
            td_h5_write_dataset(&d, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, ti->ndim, dims,
                                tr->grads_before_clip + ti->offset);
            snprintf(name, sizeof(name), "param/%s", ti->name);
            td_h5_write_dataset(&d, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, ti->ndim, dims,
                                tr->model.params + ti->offset);
        }
        for (int i = 0; i < N_FIELDS; i++) {
            hsize_t dims[2] = {G, (hsize_t)(fields[i].per_token == 1 ? T : MP)};
            int nd = fields[i].per_token == -1 ? 1 : 2;
            if (fields[i].is_float)
                td_h5_write_dataset(&d, fields[i].name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, nd, dims, gathered[i]);
            else
                td_h5_write_dataset(&d, fields[i].name, H5T_STD_I32LE, H5T_NATIVE_INT32, nd, dims, gathered[i]);
        }
        td_h5_close_id(lcpl, H5Pclose);
        st = td_h5_writer_close(&d);
        td_h5_quiet_end(q);
    }
    for (int i = 0; i < N_FIELDS; i++) free(gathered[i]);
    free(kept);
    return st;
}
