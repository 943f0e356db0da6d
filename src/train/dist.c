/* MPI wrappers: the only file that calls MPI, every call checked. Large
 * buffers are reduced in chunks below INT_MAX elements because MPI counts
 * are int. */
#include "tokdrop/train/dist.h"

#include <limits.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <stdlib.h>

#include "tokdrop/base/report.h"

#define TD_MPI_CHECK(call) \
    do { \
        int rc_ = (call); \
        if (rc_ != MPI_SUCCESS) { \
            char s_[MPI_MAX_ERROR_STRING]; \
            int n_ = 0; \
            MPI_Error_string(rc_, s_, &n_); \
            td_report(TD_REPORT_FATAL, "%s:%d: %s failed: %s", __FILE__, __LINE__, #call, s_); \
            MPI_Abort(MPI_COMM_WORLD, 71); \
        } \
    } while (0)

/* Open MPI allocates a temporary buffer the size of the message (or of a
 * 1/P share of it) on every large reduction and frees it afterwards. glibc
 * serves each block over 32 MiB with a fresh mmap, so every allreduce of a
 * gradient faulted in and zeroed hundreds of MB again: bert-base on 2
 * ranks spent 2.0 s per step in the allreduce over TCP and 1.5 s over
 * shared memory, 0.2 s and 0.1-0.2 s with freed memory kept for reuse
 * (bench/README.md, "The network path"). The cost: memory a process frees
 * stays with it, so its resident size is its peak; tokdrop allocates its
 * large blocks once, at start-up, and the peak is what a step needs. */
static void keep_freed_memory(void)
{
#if defined(__GLIBC__)
    mallopt(M_MMAP_MAX, 0);              /* large blocks from the heap, reused */
    mallopt(M_TRIM_THRESHOLD, INT_MAX);  /* and not handed back after each free */
#endif
}

/* Open MPI's libnbc reduces an in-place MPI_Iallreduce (the gradient
 * buckets) along a binomial tree, a reduce to rank 0 then a broadcast,
 * whatever the number of ranks: the root's link carries 2 log2(P) times the
 * bucket, where a ring carries 2 (P-1)/P times it. Measured on 2 ranks,
 * bert-base's 14 buckets started at once: 0.13-0.15 s binomial, 0.06-0.07 s
 * ring over shared memory (0.33-0.42 s and 0.21-0.29 s over TCP), the
 * ring as fast as blocking sums one by one; sums exact with both
 * (td-bench-allreduce). We ask for the ring through the MPI tool interface
 * unless the user chose an algorithm (mpirun --mca
 * coll_libnbc_iallreduce_algorithm N); an MPI without that variable keeps
 * its own choice. */
static void prefer_ring_iallreduce(void)
{
    int provided = 0, index = 0, count = 0;
    if (MPI_T_init_thread(MPI_THREAD_SINGLE, &provided) != MPI_SUCCESS) return;
    MPI_T_cvar_handle handle;
    if (MPI_T_cvar_get_index("coll_libnbc_iallreduce_algorithm", &index) == MPI_SUCCESS &&
        MPI_T_cvar_handle_alloc(index, NULL, &handle, &count) == MPI_SUCCESS) {
        int alg = -1;
        if (count == 1 && MPI_T_cvar_read(handle, &alg) == MPI_SUCCESS && alg == 0) {
            alg = 1; /* 0 ignore (libnbc's own choice), 1 ring */
            MPI_T_cvar_write(handle, &alg);
        }
        MPI_T_cvar_handle_free(&handle);
    }
    MPI_T_finalize();
}

/* The abort hook of error.h: a failed assertion on one rank takes every
 * rank down instead of leaving the others waiting in a collective. */
static void abort_job(int exit_code)
{
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (initialized && !finalized) MPI_Abort(MPI_COMM_WORLD, exit_code);
}

td_status td_dist_init(td_dist *dist, int *argc, char ***argv, td_error *err)
{
    keep_freed_memory();
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized && MPI_Init(argc, argv) != MPI_SUCCESS)
        return td_error_set(err, TD_ERR_MPI, "MPI_Init failed");
    prefer_ring_iallreduce();
    td_error_set_abort_hook(abort_job);
    dist->comm = MPI_COMM_WORLD;
    /* Errors come back as codes, which TD_MPI_CHECK turns into a message
     * with the call site before aborting every rank. */
    MPI_Comm_set_errhandler(dist->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(dist->comm, &dist->rank);
    MPI_Comm_size(dist->comm, &dist->size);
    return TD_OK;
}

void td_dist_finalize(td_dist *dist)
{
    (void)dist;
    td_error_set_abort_hook(NULL);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
}

static void allreduce(const td_dist *dist, void *buf, int64_t n_elems, MPI_Datatype type,
                      size_t elem_bytes)
{
    if (dist->size == 1) return;
    char *p = buf;
    while (n_elems > 0) {
        int n = n_elems > INT_MAX / 2 ? INT_MAX / 2 : (int)n_elems;
        TD_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, p, n, type, MPI_SUM, dist->comm));
        p += (size_t)n * elem_bytes;
        n_elems -= n;
    }
}

void td_dist_allreduce_f32(const td_dist *dist, float *buf, int64_t n_elems)
{
    allreduce(dist, buf, n_elems, MPI_FLOAT, sizeof(float));
}

void td_dist_allreduce_f64(const td_dist *dist, double *buf, int64_t n_elems)
{
    allreduce(dist, buf, n_elems, MPI_DOUBLE, sizeof(double));
}

void td_dist_allreduce_i64(const td_dist *dist, int64_t *buf, int64_t n_elems)
{
    allreduce(dist, buf, n_elems, MPI_INT64_T, sizeof(int64_t));
}

bool td_dist_any_failed(const td_dist *dist, bool failed)
{
    return td_dist_max_int(dist, failed ? 1 : 0) != 0;
}

int td_dist_max_int(const td_dist *dist, int value)
{
    int max = value;
    if (dist->size > 1) TD_MPI_CHECK(MPI_Allreduce(&value, &max, 1, MPI_INT, MPI_MAX, dist->comm));
    return max;
}

_Noreturn void td_dist_abort(const td_dist *dist, const char *msg)
{
    td_report(TD_REPORT_FATAL, "rank %d: %s", dist->rank, msg);
    MPI_Abort(dist->comm, 1);
    exit(1);
}

void td_dist_pending_init(td_dist_pending *p, int capacity)
{
    p->reqs = td_xmalloc((size_t)capacity * sizeof(MPI_Request));
    p->n = 0;
    p->cap = capacity;
}

void td_dist_pending_free(td_dist_pending *p)
{
    free(p->reqs);
    p->reqs = NULL;
    p->n = p->cap = 0;
}

void td_dist_iallreduce_f32(const td_dist *dist, float *buf, int64_t n_elems, td_dist_pending *p)
{
    if (dist->size == 1) return;
    while (n_elems > 0) {
        int n = n_elems > INT_MAX / 2 ? INT_MAX / 2 : (int)n_elems;
        TD_ASSERT(p->n < p->cap);
        TD_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, dist->comm,
                                    &p->reqs[p->n++]));
        buf += n;
        n_elems -= n;
    }
}

void td_dist_progress(td_dist_pending *p)
{
    if (p->n == 0) return;
    int done = 0;
    TD_MPI_CHECK(MPI_Testall(p->n, p->reqs, &done, MPI_STATUSES_IGNORE));
    if (done) p->n = 0;
}

void td_dist_wait(td_dist_pending *p)
{
    if (p->n == 0) return;
    TD_MPI_CHECK(MPI_Waitall(p->n, p->reqs, MPI_STATUSES_IGNORE));
    p->n = 0;
}

int td_dist_ranks_on_node(const td_dist *dist)
{
    MPI_Comm node;
    int n = 1;
    TD_MPI_CHECK(MPI_Comm_split_type(dist->comm, MPI_COMM_TYPE_SHARED, dist->rank, MPI_INFO_NULL, &node));
    TD_MPI_CHECK(MPI_Comm_size(node, &n));
    TD_MPI_CHECK(MPI_Comm_free(&node));
    return n;
}

bool td_dist_all_equal_u64(const td_dist *dist, uint64_t value)
{
    if (dist->size == 1) return true;
    uint64_t lo = value, hi = value;
    TD_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UINT64_T, MPI_MIN, dist->comm));
    TD_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UINT64_T, MPI_MAX, dist->comm));
    return lo == hi;
}

/* Gathers n_elems of every rank into all on rank 0, rank-major (all is
 * only read on rank 0 and may be NULL elsewhere). */
static void gather(const td_dist *dist, const void *local, void *all, int64_t n_elems, MPI_Datatype type)
{
    TD_ASSERT(n_elems <= INT_MAX);
    TD_MPI_CHECK(MPI_Gather(local, (int)n_elems, type, all, (int)n_elems, type, 0, dist->comm));
}

void td_dist_gather_f32(const td_dist *dist, const float *local, float *all, int64_t n_elems)
{
    gather(dist, local, all, n_elems, MPI_FLOAT);
}

void td_dist_gather_i32(const td_dist *dist, const int32_t *local, int32_t *all, int64_t n_elems)
{
    gather(dist, local, all, n_elems, MPI_INT32_T);
}

void td_dist_gather_i64(const td_dist *dist, const int64_t *local, int64_t *all, int64_t n_elems)
{
    gather(dist, local, all, n_elems, MPI_INT64_T);
}

int td_dist_bcast_int(const td_dist *dist, int value)
{
    TD_MPI_CHECK(MPI_Bcast(&value, 1, MPI_INT, 0, dist->comm));
    return value;
}

void td_dist_bcast_bytes(const td_dist *dist, void *buf, size_t n_bytes)
{
    TD_ASSERT(n_bytes <= INT_MAX);
    TD_MPI_CHECK(MPI_Bcast(buf, (int)n_bytes, MPI_BYTE, 0, dist->comm));
}
