/* src/ops/eltwise.c: launchers for cl/eltwise.cl. */
#include "config.h"

#include "core/error.h"
#include "cl/ctx.h"
#include "ops/eltwise.h"
#include "ref/ref_eltwise.h"
#include "tensor/tensor_impl.h"

static qg_status check_same(qg_ctx *ctx, const char *op, const qg_tensor *a, const qg_tensor *b)
{
    if (qg_tensor_numel(a) != qg_tensor_numel(b))
        return qg__error(ctx, QG_ERR_SHAPE, "%s: tensor '%s' has %zu elements, '%s' has %zu",
                         op, a->name, qg_tensor_numel(a), b->name, qg_tensor_numel(b));
    if (a->dtype != QG_DTYPE_F32 || b->dtype != QG_DTYPE_F32)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: tensors must be F32", op);
    return QG_OK;
}

/* Gets `kernel`, binds nothing; the caller binds and calls launch1d. */
static qg_status get(qg_ctx *ctx, qg_kernel_id kernel, qg_kargs *a, size_t *wg)
{
    return qg__kargs_get(ctx, kernel, a, wg);
}

static qg_status launch1d(qg_kargs *a, size_t n, size_t wg)
{
    size_t g = n, l = wg;
    return qg__kargs_launch(a, 1, &g, &l);
}

qg_status qg__eltwise_fill(qg_ctx *ctx, qg_tensor *y, float v)
{
    qg_kargs a;
    size_t wg, n = qg_tensor_numel(y);
    qg_status st = get(ctx, QG_K_ELTWISE_FILL, &a, &wg);
    if (st != QG_OK)
        return st;
    qg__karg_tensor(&a, y);
    qg__karg_float(&a, v);
    qg__karg_int(&a, (int)n);
    return launch1d(&a, n, wg);
}

qg_status qg__eltwise_axpby(qg_ctx *ctx, float alpha, const qg_tensor *x, float beta,
                            qg_tensor *y)
{
    qg_kargs a;
    size_t wg, n = qg_tensor_numel(y);
    qg_status st = check_same(ctx, "axpby", x, y);
    if (st == QG_OK)
        st = get(ctx, QG_K_ELTWISE_AXPBY, &a, &wg);
    if (st != QG_OK)
        return st;
    qg__karg_float(&a, alpha);
    qg__karg_tensor(&a, x);
    qg__karg_float(&a, beta);
    qg__karg_tensor(&a, y);
    qg__karg_int(&a, (int)n);
    return launch1d(&a, n, wg);
}

static qg_status binary(qg_ctx *ctx, qg_kernel_id kernel, const qg_tensor *x0,
                        const qg_tensor *x1, qg_tensor *y)
{
    qg_kargs a;
    size_t wg, n = qg_tensor_numel(y);
    qg_status st = check_same(ctx, qg__kernel_name(kernel), x0, y);
    if (st == QG_OK)
        st = check_same(ctx, qg__kernel_name(kernel), x1, y);
    if (st == QG_OK)
        st = get(ctx, kernel, &a, &wg);
    if (st != QG_OK)
        return st;
    qg__karg_tensor(&a, x0);
    qg__karg_tensor(&a, x1);
    qg__karg_tensor(&a, y);
    qg__karg_int(&a, (int)n);
    return launch1d(&a, n, wg);
}

qg_status qg__eltwise_add(qg_ctx *ctx, const qg_tensor *a, const qg_tensor *b, qg_tensor *y)
{
    return binary(ctx, QG_K_ELTWISE_ADD, a, b, y);
}

qg_status qg__eltwise_mul(qg_ctx *ctx, const qg_tensor *a, const qg_tensor *b, qg_tensor *y)
{
    return binary(ctx, QG_K_ELTWISE_MUL, a, b, y);
}

qg_status qg__relu_fwd(qg_ctx *ctx, const qg_tensor *x, qg_tensor *y)
{
    qg_kargs a;
    size_t wg, n = qg_tensor_numel(y);
    qg_status st = check_same(ctx, "relu_fwd", x, y);
    if (st == QG_OK)
        st = get(ctx, QG_K_ELTWISE_RELU_FWD, &a, &wg);
    if (st != QG_OK)
        return st;
    qg__karg_tensor(&a, x);
    qg__karg_tensor(&a, y);
    qg__karg_int(&a, (int)n);
    return launch1d(&a, n, wg);
}

qg_status qg__relu_bwd(qg_ctx *ctx, const qg_tensor *x, const qg_tensor *dy, qg_tensor *dx,
                       int accumulate)
{
    qg_kargs a;
    size_t wg, n = qg_tensor_numel(dx);
    qg_status st = check_same(ctx, "relu_bwd", x, dx);
    if (st == QG_OK)
        st = check_same(ctx, "relu_bwd", dy, dx);
    if (st == QG_OK)
        st = get(ctx, QG_K_ELTWISE_RELU_BWD, &a, &wg);
    if (st != QG_OK)
        return st;
    qg__karg_tensor(&a, x);
    qg__karg_tensor(&a, dy);
    qg__karg_tensor(&a, dx);
    qg__karg_int(&a, (int)n);
    qg__karg_int(&a, accumulate);
    return launch1d(&a, n, wg);
}

/* The kernels' parameters of a dropout: the key's halves, the threshold
 * and the scale (qg_ref_dropout_params). */
static qg_status dropout(qg_ctx *ctx, qg_kernel_id kernel, const qg_tensor *in, qg_tensor *out,
                         float p, uint64_t key, int accumulate)
{
    qg_kargs a;
    size_t wg, n;
    const char *op = qg__kernel_name(kernel);
    if (!(p >= 0.0f && p < 1.0f))
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: drop probability %g is outside [0, 1)",
                         op, p);
    qg_status st = check_same(ctx, op, in, out);
    if (st == QG_OK)
        st = get(ctx, kernel, &a, &wg);
    if (st != QG_OK)
        return st;
    n = qg_tensor_numel(out);
    uint32_t thresh;
    float scale;
    qg_ref_dropout_params(p, &thresh, &scale);
    qg__karg_tensor(&a, in);
    qg__karg_tensor(&a, out);
    qg__karg_int(&a, (int)n);
    qg__karg_uint(&a, (unsigned)(key & 0xffffffffu));
    qg__karg_uint(&a, (unsigned)(key >> 32));
    qg__karg_uint(&a, thresh);
    qg__karg_float(&a, scale);
    if (kernel == QG_K_ELTWISE_DROPOUT_BWD)
        qg__karg_int(&a, accumulate);
    return launch1d(&a, n, wg);
}

qg_status qg__dropout_fwd(qg_ctx *ctx, const qg_tensor *x, qg_tensor *y, float p, uint64_t key)
{
    return dropout(ctx, QG_K_ELTWISE_DROPOUT_FWD, x, y, p, key, 0);
}

qg_status qg__dropout_bwd(qg_ctx *ctx, const qg_tensor *dy, qg_tensor *dx, float p, uint64_t key,
                          int accumulate)
{
    return dropout(ctx, QG_K_ELTWISE_DROPOUT_BWD, dy, dx, p, key, accumulate);
}
