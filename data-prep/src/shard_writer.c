/* HDF5 shard writer (shard_writer.h): the format is tokdrop/base/shard_format.h; the
 * file is written through the shared HDF5 writer (h5util.h), atomically (fs.h). */
#include "shard_writer.h"

#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

#include "formats/h5util.h"
#include "instances.h"
#include "util.h"

void tdp_shard_arrays_init(tdp_shard_arrays *a, int64_t n, int64_t seq_len, int64_t max_pred,
                           int64_t vocab_size)
{
    a->n = n;
    a->seq_len = seq_len;
    a->max_pred = max_pred;
    a->vocab_size = vocab_size;
    size_t nt = (size_t)(n * seq_len), np = (size_t)(n * max_pred);
    a->input_ids = td_xcalloc(nt, sizeof(int32_t));
    a->input_mask = td_xcalloc(nt, 1);
    a->segment_ids = td_xcalloc(nt, 1);
    a->mlm_positions = td_xcalloc(np, sizeof(int32_t));
    a->mlm_ids = td_xcalloc(np, sizeof(int32_t));
    a->nsp_labels = td_xcalloc((size_t)n, 1);
    a->token_counts = td_xcalloc((size_t)vocab_size, sizeof(int64_t));
}

void tdp_shard_arrays_free(tdp_shard_arrays *a)
{
    free(a->input_ids);
    free(a->input_mask);
    free(a->segment_ids);
    free(a->mlm_positions);
    free(a->mlm_ids);
    free(a->nsp_labels);
    free(a->token_counts);
    memset(a, 0, sizeof(*a));
}

void tdp_shard_arrays_fill(tdp_shard_arrays *a, const int32_t *const *rec, int32_t pad_id)
{
    const int64_t T = a->seq_len, P = a->max_pred;
    for (int64_t i = 0; i < a->n; i++) {
        const int32_t *r = rec[i];
        int64_t len = r[TDP_REC_LEN], seg0 = r[TDP_REC_SEG0], n_pred = r[TDP_REC_NPRED];
        TD_ASSERT(len <= T && n_pred <= P && seg0 < len);
        const int32_t *ids = r + TDP_REC_HEADER;
        const int32_t *pos = ids + len, *rep = pos + n_pred;
        int32_t *row = a->input_ids + i * T;
        memcpy(row, ids, (size_t)len * sizeof(int32_t));
        for (int64_t t = len; t < T; t++) row[t] = pad_id;
        for (int64_t t = 0; t < len; t++) {
            TD_ASSERT(ids[t] >= 0 && ids[t] < a->vocab_size);
            a->token_counts[ids[t]]++;
        }
        memset(a->input_mask + i * T, 1, (size_t)len);
        memset(a->segment_ids + i * T + seg0, 1, (size_t)(len - seg0));
        for (int64_t k = 0; k < n_pred; k++) {
            a->mlm_positions[i * P + k] = pos[k];
            a->mlm_ids[i * P + k] = ids[pos[k]];
            row[pos[k]] = rep[k];
        }
        a->nsp_labels[i] = (int8_t)r[TDP_REC_RANDOM_NEXT];
    }
}

static void attr_i64(td_h5_writer *w, const char *name, int64_t value)
{
    td_h5_write_attr_num(w, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

/* Dataset d of the format (shard_format.h), under its name and integer width. */
static void write_dataset(td_h5_writer *w, td_shard_dataset d, int rank, const hsize_t *dims,
                          const void *data)
{
    const td_shard_dataset_info *info = &td_shard_datasets[d];
    switch (info->elem_bytes) {
    case 1: td_h5_write_dataset(w, info->name, H5T_STD_I8LE, H5T_NATIVE_INT8, rank, dims, data); break;
    case 4: td_h5_write_dataset(w, info->name, H5T_STD_I32LE, H5T_NATIVE_INT32, rank, dims, data); break;
    default:
        TD_ASSERT(info->elem_bytes == 8);
        td_h5_write_dataset(w, info->name, H5T_STD_I64LE, H5T_NATIVE_INT64, rank, dims, data);
        break;
    }
}

td_status tdp_shard_write(const char *path, const tdp_shard_arrays *a, const tdp_shard_attrs *at,
                          td_error *err)
{
    /* Errors are reported through td_error, not HDF5's stack dump. */
    td_h5_quiet q = td_h5_quiet_begin();
    /* File format 1.8 or later: attributes over 64 KiB (source_files of a
     * corpus of many files) need its dense attribute storage. */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0) H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST);
    td_h5_writer w;
    td_h5_writer_create(&w, path, fapl, err);
    td_h5_close_id(fapl, H5Pclose);
    w.cset = H5T_CSET_UTF8;
    hsize_t d_nt[2] = {(hsize_t)a->n, (hsize_t)a->seq_len};
    hsize_t d_np[2] = {(hsize_t)a->n, (hsize_t)a->max_pred};
    hsize_t d_n[1] = {(hsize_t)a->n};
    hsize_t d_v[1] = {(hsize_t)a->vocab_size};
    write_dataset(&w, TD_SHARD_INPUT_IDS, 2, d_nt, a->input_ids);
    write_dataset(&w, TD_SHARD_INPUT_MASK, 2, d_nt, a->input_mask);
    write_dataset(&w, TD_SHARD_SEGMENT_IDS, 2, d_nt, a->segment_ids);
    write_dataset(&w, TD_SHARD_MLM_POSITIONS, 2, d_np, a->mlm_positions);
    write_dataset(&w, TD_SHARD_MLM_IDS, 2, d_np, a->mlm_ids);
    write_dataset(&w, TD_SHARD_NSP_LABELS, 1, d_n, a->nsp_labels);
    write_dataset(&w, TD_SHARD_TOKEN_COUNTS, 1, d_v, a->token_counts);
    td_h5_write_attr_str(&w, TD_SHARD_ATTR_FORMAT, TD_SHARD_FORMAT);
    attr_i64(&w, TD_SHARD_ATTR_FORMAT_VERSION, TD_SHARD_FORMAT_VERSION);
    td_h5_write_attr_str(&w, TD_SHARD_ATTR_VOCAB_HASH, at->vocab_hash);
    attr_i64(&w, TD_SHARD_ATTR_VOCAB_SIZE, a->vocab_size);
    attr_i64(&w, TD_SHARD_ATTR_SEQ_LENGTH, a->seq_len);
    attr_i64(&w, TD_SHARD_ATTR_MAX_PRED, a->max_pred);
    td_h5_write_attr_str(&w, TD_SHARD_ATTR_MASKING, at->masking);
    td_h5_write_attr_str(&w, TD_SHARD_ATTR_SOURCE_FILES, at->source_files);
    td_h5_write_attr_str(&w, TD_SHARD_ATTR_SPLIT, at->split);
    attr_i64(&w, TD_SHARD_ATTR_SEED, at->seed);
    attr_i64(&w, TD_SHARD_ATTR_DUPE_FACTOR, at->dupe_factor);
    attr_i64(&w, TD_SHARD_ATTR_WHOLE_WORD, at->whole_word);
    attr_i64(&w, TD_SHARD_ATTR_LOWER_CASE, at->lower_case);
    td_status st = td_h5_writer_close(&w);
    td_h5_quiet_end(q);
    return st;
}
