/* The shard datasets' names and element sizes (shard_format.h). */
#include "tokdrop/base/shard_format.h"

const td_shard_dataset_info td_shard_datasets[TD_SHARD_N_DATASETS] = {
    [TD_SHARD_INPUT_IDS] = {"input_ids", 4},
    [TD_SHARD_INPUT_MASK] = {"input_mask", 1},
    [TD_SHARD_SEGMENT_IDS] = {"segment_ids", 1},
    [TD_SHARD_MLM_POSITIONS] = {"masked_lm_positions", 4},
    [TD_SHARD_MLM_IDS] = {"masked_lm_ids", 4},
    [TD_SHARD_NSP_LABELS] = {"next_sentence_labels", 1},
    [TD_SHARD_TOKEN_COUNTS] = {"token_counts", 8},
};
