/* The model's input: one micro-batch, as the data layer builds it
 * (tokdrop/train/data.h) and the model and token dropping read it. */
#ifndef TOKDROP_BATCH_H
#define TOKDROP_BATCH_H

#include <stdint.h>

/* One micro-batch of B sequences of length T (size letters as in model.h). */
typedef struct {
    int64_t B, T, max_pred;
    int32_t *input_ids;     /* (B, T) */
    int32_t *input_mask;    /* (B, T) 1 = real token, 0 = padding */
    int32_t *segment_ids;   /* (B, T) */
    int32_t *mlm_positions; /* (B, max_pred) */
    int32_t *mlm_ids;       /* (B, max_pred) label token ids */
    float *mlm_weights;     /* (B, max_pred) 1 for real predictions, 0 for padding */
    int32_t *nsp_labels;    /* (B) 1 = random next sentence */
    int64_t *sample_ids;    /* (B) global index of the sample in the dataset:
                               files in sorted glob order, rows in file order */
} td_batch;

#endif
