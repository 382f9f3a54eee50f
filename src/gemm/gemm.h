/* src/gemm/gemm.h: the one entry to CLBlast (row-major SGEMM).
 *
 * C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, row-major, with
 * element offsets and leading dimensions as in BLAS. Batched form: `count`
 * GEMMs whose operands are `stride_*` elements apart. */
#ifndef QG_GEMM_H
#define QG_GEMM_H

#include <CL/cl.h>
#include "qgate/status.h"

struct qg_ctx;

typedef struct qg_gemm_operand {
    cl_mem mem;
    size_t offset;   /* elements */
    size_t ld;       /* leading dimension (row-major) */
} qg_gemm_operand;

qg_status qg__gemm(struct qg_ctx *ctx, int trans_a, int trans_b, size_t M, size_t N,
                   size_t K, float alpha, qg_gemm_operand A, qg_gemm_operand B, float beta,
                   qg_gemm_operand C);

qg_status qg__gemm_batched(struct qg_ctx *ctx, int trans_a, int trans_b, size_t M, size_t N,
                           size_t K, float alpha, qg_gemm_operand A, size_t stride_a,
                           qg_gemm_operand B, size_t stride_b, float beta, qg_gemm_operand C,
                           size_t stride_c, size_t count);

/* Applying a set of CLBlast's Xgemm parameters (registry program
 * QG_PROG_CLBLAST_XGEMM, in its tunables order), and applying the tuned
 * one if any (once per context, before its first GEMM). */
qg_status qg__gemm_override(struct qg_ctx *ctx, const long *values);
qg_status qg__gemm_apply_tuned(struct qg_ctx *ctx);
/* Keeps CLBlast's built-in parameters for this context (the tuned set is
 * not applied): the baseline of the tuner and of `qgate bench kernels`.
 * QG_ERR_UNSUPPORTED once an override was applied, since CLBlast keeps
 * overrides for the rest of the process. */
qg_status qg__gemm_use_builtin(struct qg_ctx *ctx);

#endif
