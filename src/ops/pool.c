/* src/ops/pool.c: launchers for cl/pool.cl (max, average and global
 * average pooling; layouts and math in the .cl banner). C twins:
 * src/ref/ref_layers.c; tests: tests/test_pool.c. */
#include "config.h"

#include <limits.h>

#include "core/error.h"
#include "cl/ctx.h"
#include "ops/layers.h"
#include "tensor/tensor_impl.h"

static qg_status get(qg_ctx *ctx, qg_kernel_id kernel, qg_kargs *a, size_t *wg)
{
    return qg__kargs_get(ctx, kernel, a, wg);
}

/* t must be `dt`, rank 4 and [N, C, H, W]. */
static qg_status check4(qg_ctx *ctx, const char *op, const char *what, const qg_tensor *t,
                        qg_dtype dt, int N, int C, int H, int W)
{
    if (!t)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: %s is NULL", op, what);
    if (t->dtype != dt || t->ndim != 4 || t->shape[0] != N || t->shape[1] != C ||
        t->shape[2] != H || t->shape[3] != W)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: %s '%s' must be %s [%d,%d,%d,%d]", op, what,
                         t->name, qg_dtype_name(dt), N, C, H, W);
    if (qg_tensor_numel(t) > INT_MAX)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: %s '%s' has more than 2^31 elements", op,
                         what, t->name);
    return QG_OK;
}

/* Shape of the pooled map; the input x (or dx) gives N, C, H, W. */
typedef struct pool_geom {
    int N, C, H, W, P, Q;
} pool_geom;

static qg_status geom(qg_ctx *ctx, const char *op, const qg_tensor *x, int k, int stride,
                      int pad, pool_geom *g)
{
    if (!x)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: input is NULL", op);
    if (x->dtype != QG_DTYPE_F32 || x->ndim != 4)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: tensor '%s' must be F32 NCHW", op, x->name);
    if (k < 1 || stride < 1 || pad < 0 || pad > k / 2)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: need k >= 1, stride >= 1 and 0 <= pad "
                         "<= k/2 (k=%d stride=%d pad=%d)", op, k, stride, pad);
    g->N = (int)x->shape[0];
    g->C = (int)x->shape[1];
    g->H = (int)x->shape[2];
    g->W = (int)x->shape[3];
    if (g->H + 2 * pad < k || g->W + 2 * pad < k)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: window %d does not fit the padded %dx%d input",
                         op, k, g->H + 2 * pad, g->W + 2 * pad);
    g->P = (g->H + 2 * pad - k) / stride + 1;
    g->Q = (g->W + 2 * pad - k) / stride + 1;
    return check4(ctx, op, "input", x, QG_DTYPE_F32, g->N, g->C, g->H, g->W);
}

static void bind_geom(qg_kargs *a, const pool_geom *g, int k, int stride, int pad)
{
    qg__karg_int(a, g->N * g->C);
    qg__karg_int(a, g->H);
    qg__karg_int(a, g->W);
    qg__karg_int(a, g->P);
    qg__karg_int(a, g->Q);
    qg__karg_int(a, k);
    qg__karg_int(a, stride);
    qg__karg_int(a, pad);
}

qg_status qg__maxpool_fwd(qg_ctx *ctx, const qg_tensor *x, int k, int stride, int pad,
                          qg_tensor *y, qg_tensor *argmax)
{
    const char *op = "maxpool_fwd";
    pool_geom g;
    qg_kargs a;
    size_t wg;
    qg_status st = geom(ctx, op, x, k, stride, pad, &g);
    if (st == QG_OK)
        st = check4(ctx, op, "y", y, QG_DTYPE_F32, g.N, g.C, g.P, g.Q);
    if (st == QG_OK)
        st = check4(ctx, op, "argmax", argmax, QG_DTYPE_I32, g.N, g.C, g.P, g.Q);
    if (st == QG_OK)
        st = get(ctx, QG_K_POOL_MAX_FWD, &a, &wg);
    if (st != QG_OK)
        return st;
    qg__karg_tensor(&a, x);
    bind_geom(&a, &g, k, stride, pad);
    qg__karg_tensor(&a, y);
    qg__karg_tensor(&a, argmax);
    size_t n = qg_tensor_numel(y);
    return qg__kargs_launch(&a, 1, &n, &wg);
}

qg_status qg__maxpool_bwd(qg_ctx *ctx, const qg_tensor *dy, const qg_tensor *argmax,
                          qg_tensor *dx)
{
    const char *op = "maxpool_bwd";
    qg_kargs a;
    size_t wg;
    if (!dy || !argmax || !dx)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: dy, argmax and dx are required", op);
    if (dx->ndim != 4 || dy->ndim != 4)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: dy '%s' and dx '%s' must be NCHW", op,
                         dy->name, dx->name);
    int N = (int)dx->shape[0], C = (int)dx->shape[1];
    int H = (int)dx->shape[2], W = (int)dx->shape[3];
    int P = (int)dy->shape[2], Q = (int)dy->shape[3];
    qg_status st = check4(ctx, op, "dx", dx, QG_DTYPE_F32, N, C, H, W);
    if (st == QG_OK)
        st = check4(ctx, op, "dy", dy, QG_DTYPE_F32, N, C, P, Q);
    if (st == QG_OK)
        st = check4(ctx, op, "argmax", argmax, QG_DTYPE_I32, N, C, P, Q);
    if (st == QG_OK)
        st = get(ctx, QG_K_POOL_ZERO, &a, &wg);
    if (st != QG_OK)
        return st;
    size_t n = qg_tensor_numel(dx);
    qg__karg_tensor(&a, dx);
    qg__karg_int(&a, (int)n);
    st = qg__kargs_launch(&a, 1, &n, &wg);
    if (st == QG_OK)
        st = get(ctx, QG_K_POOL_MAX_BWD, &a, &wg);
    if (st != QG_OK)
        return st;
    qg__karg_tensor(&a, dy);
    qg__karg_tensor(&a, argmax);
    qg__karg_int(&a, N * C);
    qg__karg_int(&a, P * Q);
    qg__karg_int(&a, H * W);
    qg__karg_tensor(&a, dx);
    size_t planes = (size_t)N * C;
    return qg__kargs_launch(&a, 1, &planes, &wg);
}

qg_status qg__avgpool_fwd(qg_ctx *ctx, const qg_tensor *x, int k, int stride, int pad,
                          qg_tensor *y)
{
    const char *op = "avgpool_fwd";
    pool_geom g;
    qg_kargs a;
    size_t wg;
    qg_status st = geom(ctx, op, x, k, stride, pad, &g);
    if (st == QG_OK)
        st = check4(ctx, op, "y", y, QG_DTYPE_F32, g.N, g.C, g.P, g.Q);
    if (st == QG_OK)
        st = get(ctx, QG_K_POOL_AVG_FWD, &a, &wg);
    if (st != QG_OK)
        return st;
    qg__karg_tensor(&a, x);
    bind_geom(&a, &g, k, stride, pad);
    qg__karg_tensor(&a, y);
    size_t n = qg_tensor_numel(y);
    return qg__kargs_launch(&a, 1, &n, &wg);
}

qg_status qg__avgpool_bwd(qg_ctx *ctx, const qg_tensor *dy, int k, int stride, int pad,
                          qg_tensor *dx)
{
    const char *op = "avgpool_bwd";
    pool_geom g;
    qg_kargs a;
    size_t wg;
    qg_status st = geom(ctx, op, dx, k, stride, pad, &g);
    if (st == QG_OK)
        st = check4(ctx, op, "dy", dy, QG_DTYPE_F32, g.N, g.C, g.P, g.Q);
    if (st == QG_OK)
        st = get(ctx, QG_K_POOL_AVG_BWD, &a, &wg);
    if (st != QG_OK)
        return st;
    qg__karg_tensor(&a, dy);
    bind_geom(&a, &g, k, stride, pad);
    qg__karg_tensor(&a, dx);
    size_t n = qg_tensor_numel(dx);
    return qg__kargs_launch(&a, 1, &n, &wg);
}

/* The pooled tensor: [N, C] or [N, C, 1, 1] F32. */
static qg_status check_pooled(qg_ctx *ctx, const char *op, const char *what, const qg_tensor *t,
                              int N, int C)
{
    if (!t)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: %s is NULL", op, what);
    int ok = t->dtype == QG_DTYPE_F32 && (t->ndim == 2 || t->ndim == 4) && t->shape[0] == N &&
             t->shape[1] == C && qg_tensor_numel(t) == (size_t)N * C;
    if (!ok)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: %s '%s' must be F32 [%d,%d] or [%d,%d,1,1]", op,
                         what, t->name, N, C, N, C);
    return QG_OK;
}

qg_status qg__gap_fwd(qg_ctx *ctx, const qg_tensor *x, qg_tensor *y)
{
    const char *op = "gap_fwd";
    qg_kargs a;
    size_t wg;
    if (!x || x->ndim != 4)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: input must be NCHW", op);
    int N = (int)x->shape[0], C = (int)x->shape[1], H = (int)x->shape[2], W = (int)x->shape[3];
    qg_status st = check4(ctx, op, "x", x, QG_DTYPE_F32, N, C, H, W);
    if (st == QG_OK)
        st = check_pooled(ctx, op, "y", y, N, C);
    if (st == QG_OK && H * W < 1)
        st = qg__error(ctx, QG_ERR_SHAPE, "%s: tensor '%s' has empty planes", op, x->name);
    if (st == QG_OK)
        st = get(ctx, QG_K_POOL_GAP_FWD, &a, &wg);
    if (st != QG_OK)
        return st;
    qg__karg_tensor(&a, x);
    qg__karg_int(&a, N * C);
    qg__karg_int(&a, H * W);
    qg__karg_tensor(&a, y);
    size_t n = (size_t)N * C;
    return qg__kargs_launch(&a, 1, &n, &wg);
}

qg_status qg__gap_bwd(qg_ctx *ctx, const qg_tensor *dy, qg_tensor *dx)
{
    const char *op = "gap_bwd";
    qg_kargs a;
    size_t wg;
    if (!dx || dx->ndim != 4)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: dx must be NCHW", op);
    int N = (int)dx->shape[0], C = (int)dx->shape[1];
    int H = (int)dx->shape[2], W = (int)dx->shape[3];
    qg_status st = check4(ctx, op, "dx", dx, QG_DTYPE_F32, N, C, H, W);
    if (st == QG_OK)
        st = check_pooled(ctx, op, "dy", dy, N, C);
    if (st == QG_OK)
        st = get(ctx, QG_K_POOL_GAP_BWD, &a, &wg);
    if (st != QG_OK)
        return st;
    qg__karg_tensor(&a, dy);
    qg__karg_int(&a, N * C);
    qg__karg_int(&a, H * W);
    qg__karg_tensor(&a, dx);
    size_t n = qg_tensor_numel(dx);
    return qg__kargs_launch(&a, 1, &n, &wg);
}

int qg__pool_same_out(int H, int stride)
{
    return (H + stride - 1) / stride;
}

int qg__pool_same_pad(int H, int k, int stride)
{
    int total = (qg__pool_same_out(H, stride) - 1) * stride + k - H;
    return total > 0 ? total / 2 : 0;
}

qg_status qg__maxpool_same_fwd(qg_ctx *ctx, const qg_tensor *x, int k, int stride,
                               qg_tensor *y, qg_tensor *argmax)
{
    const char *op = "maxpool_same_fwd";
    qg_kargs a;
    size_t wg;
    if (!x || x->dtype != QG_DTYPE_F32 || x->ndim != 4)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: the input must be F32 NCHW", op);
    if (k < 1 || stride < 1)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: need k >= 1 and stride >= 1 (k=%d "
                         "stride=%d)", op, k, stride);
    int N = (int)x->shape[0], C = (int)x->shape[1], H = (int)x->shape[2], W = (int)x->shape[3];
    int P = qg__pool_same_out(H, stride), Q = qg__pool_same_out(W, stride);
    qg_status st = check4(ctx, op, "input", x, QG_DTYPE_F32, N, C, H, W);
    if (st == QG_OK)
        st = check4(ctx, op, "y", y, QG_DTYPE_F32, N, C, P, Q);
    if (st == QG_OK)
        st = check4(ctx, op, "argmax", argmax, QG_DTYPE_I32, N, C, P, Q);
    if (st == QG_OK)
        st = get(ctx, QG_K_POOL_MAX_SAME_FWD, &a, &wg);
    if (st != QG_OK)
        return st;
    qg__karg_tensor(&a, x);
    qg__karg_int(&a, N * C);
    qg__karg_int(&a, H);
    qg__karg_int(&a, W);
    qg__karg_int(&a, P);
    qg__karg_int(&a, Q);
    qg__karg_int(&a, k);
    qg__karg_int(&a, stride);
    qg__karg_int(&a, qg__pool_same_pad(H, k, stride));
    qg__karg_int(&a, qg__pool_same_pad(W, k, stride));
    qg__karg_tensor(&a, y);
    qg__karg_tensor(&a, argmax);
    size_t n = qg_tensor_numel(y);
    return qg__kargs_launch(&a, 1, &n, &wg);
}
