/* src/ops/linear.c: fully connected layers (see linear.h): one GEMM per
 * product through src/gemm/gemm.c, the bias passes shared with the conv's
 * GEMM path (src/ops/conv_gemm.c, cl/im2col.cl). C twin:
 * src/ref/ref_conv.c; tests: tests/test_conv.c. */
#include "config.h"

#include <limits.h>
#include <stdint.h>

#include "core/error.h"
#include "ops/conv_impl.h"
#include "ops/linear.h"

static qg_status check_linear(qg_ctx *ctx, const char *op, int N, int I, int O)
{
    if (N < 1 || I < 1 || O < 1 || (int64_t)N * I > INT_MAX || (int64_t)N * O > INT_MAX ||
        (int64_t)O * I > INT_MAX)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: invalid shape N=%d I=%d O=%d", op, N, I, O);
    return QG_OK;
}

qg_status qg__linear_fwd(qg_ctx *ctx, int N, int I, int O, const qg_tensor *x,
                         const qg_tensor *w, const qg_tensor *b, qg_tensor *y)
{
    static const char op[] = "linear_fwd";
    qg_status st;
    QG_TRY(check_linear(ctx, op, N, I, O));
    QG_TRY(qg__conv_check_tensor(ctx, op, "x", x, (size_t)N * I));
    QG_TRY(qg__conv_check_tensor(ctx, op, "w", w, (size_t)O * I));
    QG_TRY(qg__conv_check_tensor(ctx, op, "y", y, (size_t)N * O));
    if (b)
        QG_TRY(qg__conv_check_tensor(ctx, op, "b", b, (size_t)O));
    QG_TRY(qg__gemm(ctx, 0, 1, (size_t)N, (size_t)O, (size_t)I, 1.0f, qg__conv_opnd(x, 0, I),
                    qg__conv_opnd(w, 0, I), 0.0f, qg__conv_opnd(y, 0, O)));
    if (b)
        QG_TRY(qg__conv_bias_add(ctx, y, b, O, 1));
    return QG_OK;
fail:
    return st;
}

qg_status qg__linear_bwd(qg_ctx *ctx, int N, int I, int O, const qg_tensor *x,
                         const qg_tensor *w, const qg_tensor *dy, qg_tensor *dx, qg_tensor *dw,
                         qg_tensor *db, int accumulate)
{
    static const char op[] = "linear_bwd";
    qg_status st;
    QG_TRY(check_linear(ctx, op, N, I, O));
    QG_TRY(qg__conv_check_tensor(ctx, op, "x", x, (size_t)N * I));
    QG_TRY(qg__conv_check_tensor(ctx, op, "w", w, (size_t)O * I));
    QG_TRY(qg__conv_check_tensor(ctx, op, "dy", dy, (size_t)N * O));
    QG_TRY(qg__conv_check_tensor(ctx, op, "dw", dw, (size_t)O * I));
    if (dx)
        QG_TRY(qg__conv_check_tensor(ctx, op, "dx", dx, (size_t)N * I));
    if (db)
        QG_TRY(qg__conv_check_tensor(ctx, op, "db", db, (size_t)O));
    if (dx)
        QG_TRY(qg__gemm(ctx, 0, 0, (size_t)N, (size_t)I, (size_t)O, 1.0f, qg__conv_opnd(dy, 0, O),
                        qg__conv_opnd(w, 0, I), 0.0f, qg__conv_opnd(dx, 0, I)));
    QG_TRY(qg__gemm(ctx, 1, 0, (size_t)O, (size_t)I, (size_t)N, 1.0f, qg__conv_opnd(dy, 0, O),
                    qg__conv_opnd(x, 0, I), accumulate ? 1.0f : 0.0f, qg__conv_opnd(dw, 0, I)));
    if (db)
        QG_TRY(qg__conv_bias_grad(ctx, dy, N, O, 1, db, accumulate));
    return QG_OK;
fail:
    return st;
}
