/* MPI data parallelism: ranks, collectives, and errors that take the whole
 * job down. All distributed state travels in a td_dist; one rank is P = 1. */
#ifndef TOKDROP_DIST_H
#define TOKDROP_DIST_H

#include <mpi.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokdrop/base/error.h"

typedef struct {
    int rank;
    int size;
    MPI_Comm comm;
} td_dist;

/* MPI_Init (if not already initialized) and the world communicator. Also
 * tells glibc to keep freed memory for reuse (MPI's per-call reduction
 * buffers) and Open MPI to reduce non-blocking sums along a ring (see
 * dist.c), and installs the abort hook (error.h) that makes a failed
 * TD_ASSERT abort every rank; td_dist_finalize removes it. A failed MPI call
 * is reported (report.h) with its call site and aborts the job. */
td_status td_dist_init(td_dist *dist, int *argc, char ***argv, td_error *err);
void td_dist_finalize(td_dist *dist);

/* In-place sums over all ranks; counts are elements. */
void td_dist_allreduce_f32(const td_dist *dist, float *buf, int64_t n_elems);
void td_dist_allreduce_f64(const td_dist *dist, double *buf, int64_t n_elems);
void td_dist_allreduce_i64(const td_dist *dist, int64_t *buf, int64_t n_elems);

/* Non-blocking in-place sums, for reducing gradients bucket by bucket
 * while the backward goes on. Requests live in a td_dist_pending. */
typedef struct {
    MPI_Request *reqs;
    int n, cap;
} td_dist_pending;

void td_dist_pending_init(td_dist_pending *p, int capacity);
void td_dist_pending_free(td_dist_pending *p);
/* Starts the sum of buf over all ranks; buf must not be touched until
 * td_dist_wait returns. */
void td_dist_iallreduce_f32(const td_dist *dist, float *buf, int64_t n_elems, td_dist_pending *p);
/* Lets MPI move outstanding reductions along (Open MPI progresses
 * non-blocking collectives only inside MPI calls). */
void td_dist_progress(td_dist_pending *p);
/* Waits for every outstanding reduction and forgets them. */
void td_dist_wait(td_dist_pending *p);

/* Collective: the same 64-bit value on every rank? (e.g. a parameter hash) */
/* Ranks running on this rank's node (sharing its memory). Collective. */
int td_dist_ranks_on_node(const td_dist *dist);

bool td_dist_all_equal_u64(const td_dist *dist, uint64_t value);

/* Collective: true when any rank passes failed = true. Lets every rank stop
 * together after a local error instead of waiting in a later collective. */
bool td_dist_any_failed(const td_dist *dist, bool failed);

/* Collective: the largest value any rank passes. */
int td_dist_max_int(const td_dist *dist, int value);

/* Collective: every rank's n_elems gathered into all on rank 0,
 * rank-major (all: n_elems x size; ignored on other ranks, may be NULL). */
void td_dist_gather_f32(const td_dist *dist, const float *local, float *all, int64_t n_elems);
void td_dist_gather_i32(const td_dist *dist, const int32_t *local, int32_t *all, int64_t n_elems);
void td_dist_gather_i64(const td_dist *dist, const int64_t *local, int64_t *all, int64_t n_elems);

/* Collective: rank 0's value, on every rank. */
int td_dist_bcast_int(const td_dist *dist, int value);
/* Collective: rank 0's n_bytes of buf copied into buf on every rank. */
void td_dist_bcast_bytes(const td_dist *dist, void *buf, size_t n_bytes);

/* Reports the message with the rank (report.h) and aborts every rank. */
_Noreturn void td_dist_abort(const td_dist *dist, const char *msg);

#endif
