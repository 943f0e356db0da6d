/* Fuzzes the safetensors reader (model.init, tokdrop import): the input is
 * the file, read against a small table of BERT tensors into a block of
 * exactly the table's size (so that a write past it is caught). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "tokdrop/formats/safetensors.h"

enum { N_TENSORS = 4 };

static const td_tensor_info table[N_TENSORS] = {
    {"bert.embeddings.word_embeddings.weight", 0, 24, 2, {6, 4}, false},
    {"bert.embeddings.LayerNorm.weight", 24, 4, 1, {4, 0}, true},
    {"bert.embeddings.LayerNorm.bias", 28, 4, 1, {4, 0}, true},
    {"cls.predictions.bias", 32, 6, 1, {6, 0}, true},
};
enum { N_PARAMS = 38 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fz_write(0, data, size);
    float *block = malloc(N_PARAMS * sizeof(float));
    bool present[N_TENSORS];
    int n_ignored = -1;
    td_error err = {0};
    td_status st = td_safetensors_read_some(path, table, N_TENSORS, block, present, &n_ignored, &err);
    fz_check_error(st, &err, "td_safetensors_read_some");
    bool all = st == TD_OK;
    for (int i = 0; all && i < N_TENSORS; i++) all = present[i];
    if (st == TD_OK && n_ignored < 0) abort();
    /* the strict reader agrees: it succeeds exactly when every tensor is there */
    st = td_safetensors_read(path, table, N_TENSORS, block, NULL, &err);
    fz_check_error(st, &err, "td_safetensors_read");
    if ((st == TD_OK) != all) abort();
    free(block);
    return 0;
}
