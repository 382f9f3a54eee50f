/* src/ops/reduce.c: launchers for cl/reduce.cl. */
#include "config.h"

#include "core/error.h"
#include "cl/ctx.h"
#include "ops/reduce.h"
#include "tensor/tensor_impl.h"

static qg_status whole(qg_ctx *ctx, qg_kernel_id kernel, const qg_tensor *x, qg_tensor *out)
{
    size_t wg;
    qg_kargs a;
    if (qg_tensor_numel(out) < 1)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: output tensor '%s' is empty",
                         qg__kernel_name(kernel), out->name);
    qg_status st = qg__kargs_get(ctx, kernel, &a, &wg);
    if (st != QG_OK)
        return st;
    qg__karg_tensor(&a, x);
    qg__karg_int(&a, (int)qg_tensor_numel(x));
    qg__karg_tensor(&a, out);
    size_t g = wg, l = wg;
    return qg__kargs_launch(&a, 1, &g, &l);
}

qg_status qg__reduce_sum(qg_ctx *ctx, const qg_tensor *x, qg_tensor *out)
{
    return whole(ctx, QG_K_REDUCE_SUM, x, out);
}

qg_status qg__reduce_absmax(qg_ctx *ctx, const qg_tensor *x, qg_tensor *out)
{
    return whole(ctx, QG_K_REDUCE_ABSMAX, x, out);
}

qg_status qg__reduce_channel_stats(qg_ctx *ctx, const qg_tensor *x, qg_tensor *sum,
                                   qg_tensor *sumsq)
{
    size_t wg;
    qg_kargs a;
    if (x->ndim != 4)
        return qg__error(ctx, QG_ERR_SHAPE, "channel_stats: tensor '%s' must be NCHW (rank 4)",
                         x->name);
    int N = (int)x->shape[0], C = (int)x->shape[1], HW = (int)(x->shape[2] * x->shape[3]);
    if ((int)qg_tensor_numel(sum) != C || (int)qg_tensor_numel(sumsq) != C)
        return qg__error(ctx, QG_ERR_SHAPE, "channel_stats: sum/sumsq must have %d elements", C);
    qg_status st = qg__kargs_get(ctx, QG_K_REDUCE_CHANNEL_STATS, &a, &wg);
    if (st != QG_OK)
        return st;
    qg__karg_tensor(&a, x);
    qg__karg_int(&a, N);
    qg__karg_int(&a, C);
    qg__karg_int(&a, HW);
    qg__karg_tensor(&a, sum);
    qg__karg_tensor(&a, sumsq);
    size_t g = (size_t)C * wg, l = wg;
    return qg__kargs_launch(&a, 1, &g, &l);
}
