/* HDF5 shard writer (shard_writer.h); the format is tokdrop/shard_format.h. */
#include "shard_writer.h"

#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* HDF5 calls return negative on failure; the message names the step. */
#define H5_TRY(call, what)                                                                  \
    do {                                                                                    \
        if ((call) < 0) {                                                                   \
            st = td_error_set(err, TD_ERR_IO, "%s: HDF5 failed to %s (disk full?)", path,   \
                              what);                                                        \
            goto done;                                                                      \
        }                                                                                   \
    } while (0)

/* Dataset d of the format (shard_format.h): its name and integer width. */
static herr_t write_dataset(hid_t file, td_shard_dataset d, int rank, const hsize_t *dims,
                            const void *data)
{
    const td_shard_dataset_info *info = &td_shard_datasets[d];
    hid_t file_type, mem_type;
    switch (info->elem_bytes) {
    case 1: file_type = H5T_STD_I8LE, mem_type = H5T_NATIVE_INT8; break;
    case 4: file_type = H5T_STD_I32LE, mem_type = H5T_NATIVE_INT32; break;
    default:
        TD_ASSERT(info->elem_bytes == 8);
        file_type = H5T_STD_I64LE, mem_type = H5T_NATIVE_INT64;
        break;
    }
    hid_t space = H5Screate_simple(rank, dims, NULL);
    if (space < 0) return -1;
    hid_t ds = H5Dcreate2(file, info->name, file_type, space, H5P_DEFAULT, H5P_DEFAULT,
                          H5P_DEFAULT);
    herr_t rc = -1;
    if (ds >= 0) {
        rc = H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
        if (H5Dclose(ds) < 0) rc = -1;
    }
    H5Sclose(space);
    return rc;
}

static herr_t write_attr_str(hid_t file, const char *name, const char *value)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    if (type < 0) return -1;
    herr_t rc = -1;
    hid_t space = -1, attr = -1;
    if (H5Tset_size(type, strlen(value) + 1) < 0 || H5Tset_strpad(type, H5T_STR_NULLTERM) < 0 ||
        H5Tset_cset(type, H5T_CSET_UTF8) < 0)
        goto out;
    space = H5Screate(H5S_SCALAR);
    if (space < 0) goto out;
    attr = H5Acreate2(file, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (attr < 0) goto out;
    rc = H5Awrite(attr, type, value);
out:
    if (attr >= 0 && H5Aclose(attr) < 0) rc = -1;
    if (space >= 0) H5Sclose(space);
    H5Tclose(type);
    return rc;
}

static herr_t write_attr_i64(hid_t file, const char *name, int64_t value)
{
    hid_t space = H5Screate(H5S_SCALAR);
    if (space < 0) return -1;
    hid_t attr = H5Acreate2(file, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = -1;
    if (attr >= 0) {
        rc = H5Awrite(attr, H5T_NATIVE_INT64, &value);
        if (H5Aclose(attr) < 0) rc = -1;
    }
    H5Sclose(space);
    return rc;
}

td_status tdp_shard_write(const char *path, const tdp_shard_arrays *a, const tdp_shard_attrs *at,
                          td_error *err)
{
    td_status st = TD_OK;
    size_t n_path = strlen(path);
    char *tmp = td_xmalloc(n_path + 5);
    memcpy(tmp, path, n_path);
    memcpy(tmp + n_path, ".tmp", 5);
    /* Errors are reported through td_error, not HDF5's stack dump. */
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    /* File format 1.8 or later: attributes over 64 KiB (source_files of a
     * corpus of many files) need its dense attribute storage. */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    hid_t file = -1;
    if (fapl >= 0 && H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST) >= 0)
        file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (fapl >= 0) H5Pclose(fapl);
    if (file < 0) {
        st = td_error_set(err, TD_ERR_IO, "%s: cannot create the shard file; expected a "
                          "writable output directory", tmp);
        free(tmp);
        return st;
    }
    hsize_t d_nt[2] = {(hsize_t)a->n, (hsize_t)a->seq_len};
    hsize_t d_np[2] = {(hsize_t)a->n, (hsize_t)a->max_pred};
    hsize_t d_n[1] = {(hsize_t)a->n};
    hsize_t d_v[1] = {(hsize_t)a->vocab_size};
    H5_TRY(write_dataset(file, TD_SHARD_INPUT_IDS, 2, d_nt, a->input_ids), "write input_ids");
    H5_TRY(write_dataset(file, TD_SHARD_INPUT_MASK, 2, d_nt, a->input_mask), "write input_mask");
    H5_TRY(write_dataset(file, TD_SHARD_SEGMENT_IDS, 2, d_nt, a->segment_ids),
           "write segment_ids");
    H5_TRY(write_dataset(file, TD_SHARD_MLM_POSITIONS, 2, d_np, a->mlm_positions),
           "write masked_lm_positions");
    H5_TRY(write_dataset(file, TD_SHARD_MLM_IDS, 2, d_np, a->mlm_ids), "write masked_lm_ids");
    H5_TRY(write_dataset(file, TD_SHARD_NSP_LABELS, 1, d_n, a->nsp_labels),
           "write next_sentence_labels");
    H5_TRY(write_dataset(file, TD_SHARD_TOKEN_COUNTS, 1, d_v, a->token_counts),
           "write token_counts");
#define ATTR_STR(name, value) H5_TRY(write_attr_str(file, name, value), "write attribute " name)
#define ATTR_I64(name, value) H5_TRY(write_attr_i64(file, name, value), "write attribute " name)
    ATTR_STR(TD_SHARD_ATTR_FORMAT, TD_SHARD_FORMAT);
    ATTR_I64(TD_SHARD_ATTR_FORMAT_VERSION, TD_SHARD_FORMAT_VERSION);
    ATTR_STR(TD_SHARD_ATTR_VOCAB_HASH, at->vocab_hash);
    ATTR_I64(TD_SHARD_ATTR_VOCAB_SIZE, a->vocab_size);
    ATTR_I64(TD_SHARD_ATTR_SEQ_LENGTH, a->seq_len);
    ATTR_I64(TD_SHARD_ATTR_MAX_PRED, a->max_pred);
    ATTR_STR(TD_SHARD_ATTR_MASKING, at->masking);
    ATTR_STR(TD_SHARD_ATTR_SOURCE_FILES, at->source_files);
    ATTR_STR(TD_SHARD_ATTR_SPLIT, at->split);
    ATTR_I64(TD_SHARD_ATTR_SEED, at->seed);
    ATTR_I64(TD_SHARD_ATTR_DUPE_FACTOR, at->dupe_factor);
    ATTR_I64(TD_SHARD_ATTR_WHOLE_WORD, at->whole_word);
    ATTR_I64(TD_SHARD_ATTR_LOWER_CASE, at->lower_case);
#undef ATTR_STR
#undef ATTR_I64
done:
    if (H5Fclose(file) < 0 && st == TD_OK)
        st = td_error_set(err, TD_ERR_IO, "%s: HDF5 failed to close the file (disk full?)", tmp);
    if (st == TD_OK && rename(tmp, path) != 0)
        st = td_error_set(err, TD_ERR_IO, "%s: cannot rename %s into place: %s", path, tmp,
                          strerror(errno));
    if (st != TD_OK) remove(tmp);
    free(tmp);
    return st;
}
