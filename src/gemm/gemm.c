/* src/gemm/gemm.c: the only file that calls CLBlast. Keeping it in one
 * place lets the tuner override CLBlast's parameters and lets a future
 * own-kernel GEMM replace it without touching the layers. */
#include "config.h"

#include <clblast_c.h>

#include "core/error.h"
#include "cl/ctx.h"
#include "gemm/gemm.h"

static qg_status clblast_error(qg_ctx *ctx, CLBlastStatusCode s, const char *what, size_t M,
                               size_t N, size_t K)
{
    if (s > -1000)
        return qg__error(ctx, QG_ERR_CLBLAST, "%s (M=%zu N=%zu K=%zu) failed with %s (%d) on "
                         "device '%s'", what, M, N, K, qg_cl_error_name(s), (int)s,
                         ctx->info.name);
    return qg__error(ctx, QG_ERR_CLBLAST, "%s (M=%zu N=%zu K=%zu) failed with CLBlast status "
                     "%d on device '%s'", what, M, N, K, (int)s, ctx->info.name);
}

/* The tuned CLBlast parameters are applied once per context, lazily, so
 * programs that never multiply matrices never read the database. */
static qg_status ensure_tuned(qg_ctx *ctx)
{
    return qg__gemm_apply_tuned(ctx);
}

qg_status qg__gemm(qg_ctx *ctx, int trans_a, int trans_b, size_t M, size_t N, size_t K,
                   float alpha, qg_gemm_operand A, qg_gemm_operand B, float beta,
                   qg_gemm_operand C)
{
    if (!M || !N)
        return QG_OK;
    qg_status st = ensure_tuned(ctx);
    if (st != QG_OK)
        return st;
    CLBlastStatusCode s = CLBlastSgemm(
        CLBlastLayoutRowMajor, trans_a ? CLBlastTransposeYes : CLBlastTransposeNo,
        trans_b ? CLBlastTransposeYes : CLBlastTransposeNo, M, N, K, alpha, A.mem, A.offset,
        A.ld, B.mem, B.offset, B.ld, beta, C.mem, C.offset, C.ld, &ctx->queue, NULL);
    if (s != CLBlastSuccess)
        return clblast_error(ctx, s, "CLBlastSgemm", M, N, K);
    return QG_OK;
}

qg_status qg__gemm_batched(qg_ctx *ctx, int trans_a, int trans_b, size_t M, size_t N, size_t K,
                           float alpha, qg_gemm_operand A, size_t stride_a, qg_gemm_operand B,
                           size_t stride_b, float beta, qg_gemm_operand C, size_t stride_c,
                           size_t count)
{
    if (!M || !N || !count)
        return QG_OK;
    qg_status st = ensure_tuned(ctx);
    if (st != QG_OK)
        return st;
    if (count == 1)
        return qg__gemm(ctx, trans_a, trans_b, M, N, K, alpha, A, B, beta, C);
    CLBlastStatusCode s = CLBlastSgemmStridedBatched(
        CLBlastLayoutRowMajor, trans_a ? CLBlastTransposeYes : CLBlastTransposeNo,
        trans_b ? CLBlastTransposeYes : CLBlastTransposeNo, M, N, K, alpha, A.mem, A.offset,
        A.ld, stride_a, B.mem, B.offset, B.ld, stride_b, beta, C.mem, C.offset, C.ld, stride_c,
        count, &ctx->queue, NULL);
    if (s != CLBlastSuccess)
        return clblast_error(ctx, s, "CLBlastSgemmStridedBatched", M, N, K);
    return QG_OK;
}
