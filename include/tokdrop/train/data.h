/* Training data (SPEC section 5): NVIDIA-format HDF5 shards, rank ownership
 * of shard files, a per-epoch shuffle of each rank's sample stream, batching,
 * and dynamic masking. The batch layout is what model.h consumes. */
#ifndef TOKDROP_DATA_H
#define TOKDROP_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "tokdrop/base/error.h"
#include "tokdrop/nn/batch.h"


/* Allocates the arrays of a batch of the given sizes (zeroed). */
void td_batch_init(td_batch *batch, int64_t B, int64_t T, int64_t max_pred);
void td_batch_free(td_batch *batch);

/* Number of predictions with weight 1 in the batch. */
int64_t td_batch_count_masked(const td_batch *batch);

typedef struct {
    int64_t seq_len;
    int64_t max_pred;
    int64_t vocab_size;
    int rank, n_ranks;
    uint64_t seed;
    int dynamic_masking;  /* mask at read time: 15%, 80/10/10, from the RNG */
    /* token ids needed by dynamic masking; ignored otherwise */
    int32_t mask_id, cls_id, sep_id, pad_id;
    int64_t memory_bytes; /* bound on the samples a rank holds (data.memory_mb); 0 = 4 GiB */
    /* Evaluation sets: no shuffling, and the set is the first `limit`
     * samples of the files in glob order (0 = all), rank r reading those
     * with global index g % n_ranks == r, so that the set does not depend
     * on the rank count. */
    int ordered;
    int64_t limit;
    const char *key;      /* the config key of the glob, for messages ("data.train") */
    /* The run's vocabulary (model.vocab), which shards written by
     * tokdrop-prep must carry in their vocab_hash attribute; NULL: none,
     * not checked. Used only while td_data_open runs. */
    const char *vocab_path;
    uint64_t vocab_hash;  /* its td_vocab_hash (vocab.h) */
} td_data_options;

typedef struct td_data td_data; /* opaque reader of one rank's sample stream */

/* Opens the shard files matching glob_pattern (sorted by name), keeps those
 * this rank owns (file i belongs to rank i % n_ranks; with fewer files than
 * ranks, or when ordered, every rank reads all files and takes samples
 * g % n_ranks == rank), and checks every dataset's presence, rank, shape
 * and integer type, and the format, version and vocabulary of shards that
 * tokdrop-prep wrote (tokdrop/base/shard_format.h). An error names the file and
 * dataset or attribute and says what was expected. Starts the background thread that loads the window. */
td_status td_data_open(td_data **out, const char *glob_pattern, const td_data_options *opt,
                       td_error *err);

/* Fills batch->B samples from the stream, moving to the next epoch when
 * the rank's samples run out. Values are validated as samples are loaded;
 * a bad one is an error naming the file, dataset, row and column. */
td_status td_data_next(td_data *data, td_batch *batch, td_error *err);

/* The stream position, for checkpoints: the epoch, the position in the
 * epoch's stream, and the shuffle window the stream was read with (samples
 * per chunk; 0 = the whole epoch shuffled as one, which is what checkpoints
 * written before streaming hold). The same (seed, epoch, index, window)
 * always gives the same samples. */
typedef struct {
    int64_t epoch;
    int64_t index;
    int64_t window;
} td_data_cursor;
td_data_cursor td_data_get_cursor(const td_data *data);
/* Moves to (epoch, index); cursor.window is not used (compare it with
 * td_data_get_cursor's to know whether the order is the one written). */
void td_data_set_cursor(td_data *data, td_data_cursor cursor);

/* Samples this rank reads per epoch, and in the whole dataset (all files,
 * or the first `limit`). */
int64_t td_data_rank_samples(const td_data *data);
int64_t td_data_total_samples(const td_data *data);

/* Where the stream is, for the log: the file the next sample comes from
 * and its row there. */
void td_data_describe_position(const td_data *data, char *out, size_t n);

/* A default for data.memory_mb on this node: an eighth of the physical
 * memory shared by the ranks on the node, within [256, 4096] MiB. */
int64_t td_data_default_memory_mb(int ranks_on_node);

void td_data_free(td_data *data);

#endif
