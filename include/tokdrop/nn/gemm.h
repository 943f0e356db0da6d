/* The matrix product behind every layer (SPEC section 9).
 *
 * An engine runs td_gemm in one precision:
 *   fp32  every product in fp32 through OpenBLAS: the exact path. A NULL
 *         engine means fp32.
 *   bf16  the inputs of the product rounded to bf16 (round to nearest even),
 *         products accumulated in fp32 and written in fp32, through oneDNN's
 *         matmul primitive (AVX512-BF16 or AMX kernels where the CPU has
 *         them).
 * The model passes its engine down and never knows which library runs.
 *
 * Results never depend on the thread count: C is split into blocks whose
 * sizes depend only on the shape, each block is one single-threaded library
 * call, and the blocks run in parallel. */
#ifndef TOKDROP_GEMM_H
#define TOKDROP_GEMM_H

#include <stdbool.h>
#include <stdint.h>

#include "tokdrop/base/error.h"

/* SPEC section 9. */
typedef enum { TD_PRECISION_FP32 = 0, TD_PRECISION_BF16, TD_PRECISION_AUTO } td_precision;

typedef struct td_gemm_engine td_gemm_engine;

/* Whether the CPU has bf16 instructions that oneDNN uses (AVX512-BF16 or
 * AMX), as oneDNN sees it (it honours ONEDNN_MAX_CPU_ISA). */
bool td_gemm_native_bf16(void);

/* fp32 and bf16 as they are; auto becomes bf16 where td_gemm_native_bf16()
 * and fp32 elsewhere. */
td_precision td_gemm_resolve_precision(td_precision precision);

/* A new engine for precision (fp32 or bf16; auto is resolved first). */
td_status td_gemm_engine_create(td_gemm_engine **out, td_precision precision, td_error *err);
void td_gemm_engine_free(td_gemm_engine *eng);

/* fp32 for a NULL engine. */
td_precision td_gemm_engine_precision(const td_gemm_engine *eng);

/* The kernels that run the products, e.g. "OpenBLAS SkylakeX" or
 * "oneDNN brg:avx512_core_bf16", as the libraries report them. */
const char *td_gemm_engine_kernels(td_gemm_engine *eng);

/* bf16 only (a no-op otherwise): keeps a bf16 copy of the n_elems floats at
 * block, which td_gemm then reads instead of rounding an operand that lies
 * inside the block. For the parameters: they are rounded once per update,
 * not once per product. The copy is made at the next td_gemm_engine_sync. */
void td_gemm_engine_mirror(td_gemm_engine *eng, const float *block, int64_t n_elems);
/* Marks the mirrored block as changed; the next td_gemm_engine_sync rounds it. */
void td_gemm_engine_stale(td_gemm_engine *eng);
/* Rounds the mirrored block again if it was marked stale. */
void td_gemm_engine_sync(td_gemm_engine *eng);

/* Tells the bf16 engine that X will be read, unchanged, by the next
 * products of the calling thread until td_gemm_engine_release(eng, X): it
 * is rounded once, not once per product (a layer's input read by the query,
 * key and value projections; a gradient read by both products of a linear
 * backward). At most two held at a time; a no-op in fp32 and for NULL. */
void td_gemm_engine_hold(td_gemm_engine *eng, const float *X);
void td_gemm_engine_release(td_gemm_engine *eng, const float *X);

/* C = alpha op(A) op(B) + beta C, with op(X) = X or X^T; op(A) is M x K,
 * op(B) is K x N, C is M x N; leading dimensions as in row-major CBLAS.
 * The only place in tokdrop that calls cblas_* or oneDNN. */
void td_gemm(td_gemm_engine *eng, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
             float alpha, const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
             float *C, int64_t ldc);

/* The same product by three plain loops, in double: the reference for tests. */
void td_gemm_ref(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                 const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                 int64_t ldc);

/* x rounded to bf16 (nearest even) and back to float: what the bf16 engine
 * feeds its products; for tests and error bounds. */
float td_bf16_round(float x);

#endif
