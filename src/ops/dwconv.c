/* src/ops/dwconv.c: launchers for cl/dwconv.cl (depthwise 3x3 conv fwd,
 * data and weight gradients). C twin: src/ref/ref_dwconv.c; tests:
 * tests/test_dwconv.c. */
#include "config.h"

#include <limits.h>

#include "core/error.h"
#include "cl/ctx.h"
#include "ops/dwconv.h"
#include "tensor/tensor_impl.h"

int qg__dwconv_out(int H, int stride, int pad)
{
    return (H + 2 * pad - 3) / stride + 1;
}

typedef struct geom {
    int N, C, H, W, P, Q;
} geom;

/* x (or dx) gives N, C, H, W; checks y (or dy), w, bias against it. */
static qg_status check(qg_ctx *ctx, const char *op, const qg_tensor *x, const qg_tensor *y,
                       const qg_tensor *w, const qg_tensor *b, int stride, int pad, geom *g)
{
    if (!x || !y || !w)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: x, y and w are required", op);
    if (stride < 1 || pad < 0 || pad > 2)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: stride %d must be >= 1 and pad %d in "
                         "0..2", op, stride, pad);
    if (x->dtype != QG_DTYPE_F32 || y->dtype != QG_DTYPE_F32 || w->dtype != QG_DTYPE_F32 ||
        x->ndim != 4 || y->ndim != 4)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: '%s' and '%s' must be F32 NCHW", op, x->name,
                         y->name);
    g->N = (int)x->shape[0];
    g->C = (int)x->shape[1];
    g->H = (int)x->shape[2];
    g->W = (int)x->shape[3];
    if (g->H + 2 * pad < 3 || g->W + 2 * pad < 3)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: a 3x3 window does not fit '%s' padded by %d",
                         op, x->name, pad);
    g->P = qg__dwconv_out(g->H, stride, pad);
    g->Q = qg__dwconv_out(g->W, stride, pad);
    if (y->shape[0] != g->N || y->shape[1] != g->C || y->shape[2] != g->P ||
        y->shape[3] != g->Q)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: '%s' must be [%d,%d,%d,%d]", op, y->name,
                         g->N, g->C, g->P, g->Q);
    if (qg_tensor_numel(w) != (size_t)g->C * 9 || w->shape[0] != g->C)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: weights '%s' must be [%d,1,3,3]", op, w->name,
                         g->C);
    if (b && (b->dtype != QG_DTYPE_F32 || qg_tensor_numel(b) != (size_t)g->C))
        return qg__error(ctx, QG_ERR_SHAPE, "%s: bias '%s' must be F32 [%d]", op, b->name,
                         g->C);
    if (qg_tensor_numel(x) > INT_MAX || qg_tensor_numel(y) > INT_MAX)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: tensors beyond 2^31 elements", op);
    return QG_OK;
}

/* Kernel k with its program's current WG, QT, WWG, ROW in v. */
static qg_status kernel(qg_ctx *ctx, qg_kernel_id k, qg_kargs *a, long v[4])
{
    const long *vals;
    qg_status st = qg__kargs_getv(ctx, k, a, &vals);
    if (st != QG_OK)
        return st;
    v[0] = vals[QG_DW_WG];
    v[1] = vals[QG_DW_QT];
    v[2] = vals[QG_DW_WWG];
    v[3] = vals[QG_DW_ROW];
    return QG_OK;
}

/* ROW 0: 2-D launch, blocks of QT along a row of `len` (work-groups of
 * WG, or the smallest power of two covering a short row) x `rows`.
 * ROW 1: 1-D, an item per QT of the `units` (planes or rows). Binds
 * `rows` and then `out` last. */
static qg_status launch_rows(qg_kargs *a, int len, size_t rows, size_t units,
                             const long v[4], qg_tensor *out)
{
    qg__karg_int(a, (int)rows);
    qg__karg_tensor(a, out);
    if (v[3]) {
        size_t wg = (size_t)v[0], items = (units + (size_t)v[1] - 1) / (size_t)v[1];
        return qg__kargs_launch(a, 1, &items, &wg);
    }
    size_t blocks = ((size_t)len + (size_t)v[1] - 1) / (size_t)v[1], wg = (size_t)v[0];
    if (wg > blocks) {
        size_t w2 = 1;
        while (w2 < blocks)
            w2 *= 2;
        wg = w2;
    }
    size_t global[2] = {qg__round_up(blocks, wg), rows}, local[2] = {wg, 1};
    return qg__kargs_launch(a, 2, global, local);
}

/* qg_dw_fwd over in [N,C,H,W] into out [N,C,P,Q] (g describes in/out). */
static qg_status launch_fwd(qg_ctx *ctx, const qg_tensor *in, const qg_tensor *w,
                            const qg_tensor *bias, const geom *g, int stride, int pad, int flipw,
                            int accumulate, qg_tensor *out)
{
    qg_kargs a;
    long v[4];
    qg_status st = kernel(ctx, QG_K_DW_FWD, &a, v);
    if (st != QG_OK)
        return st;
    qg__karg_tensor(&a, in);
    qg__karg_tensor(&a, w);
    qg__karg_tensor(&a, bias ? bias : w);
    qg__karg_int(&a, bias != NULL);
    qg__karg_int(&a, g->C);
    qg__karg_int(&a, g->H);
    qg__karg_int(&a, g->W);
    qg__karg_int(&a, g->P);
    qg__karg_int(&a, g->Q);
    qg__karg_int(&a, stride);
    qg__karg_int(&a, pad);
    qg__karg_int(&a, flipw);
    qg__karg_int(&a, accumulate != 0);
    return launch_rows(&a, g->Q, (size_t)g->N * g->C * g->P, (size_t)g->N * g->C, v, out);
}

qg_status qg__dwconv_fwd(qg_ctx *ctx, const qg_tensor *x, const qg_tensor *w,
                         const qg_tensor *bias, int stride, int pad, qg_tensor *y)
{
    geom g;
    qg_status st = check(ctx, "dwconv_fwd", x, y, w, bias, stride, pad, &g);
    return st == QG_OK ? launch_fwd(ctx, x, w, bias, &g, stride, pad, 0, 0, y) : st;
}

qg_status qg__dwconv_bwd_data(qg_ctx *ctx, const qg_tensor *dy, const qg_tensor *w, int stride,
                              int pad, qg_tensor *dx, int accumulate)
{
    geom g;
    qg_kargs a;
    long v[4];
    qg_status st = check(ctx, "dwconv_bwd_data", dx, dy, w, NULL, stride, pad, &g);
    if (st == QG_OK && stride == 1) {
        /* The forward over dy (P x Q) with the turned filter, pad 2 - pad. */
        geom t = {g.N, g.C, g.P, g.Q, g.H, g.W};
        return launch_fwd(ctx, dy, w, NULL, &t, 1, 2 - pad, 1, accumulate, dx);
    }
    if (st == QG_OK)
        st = kernel(ctx, QG_K_DW_BWD_DATA, &a, v);
    if (st != QG_OK)
        return st;
    qg__karg_tensor(&a, dy);
    qg__karg_tensor(&a, w);
    qg__karg_int(&a, g.C);
    qg__karg_int(&a, g.H);
    qg__karg_int(&a, g.W);
    qg__karg_int(&a, g.P);
    qg__karg_int(&a, g.Q);
    qg__karg_int(&a, stride);
    qg__karg_int(&a, pad);
    qg__karg_int(&a, accumulate != 0);
    return launch_rows(&a, g.W, (size_t)g.N * g.C * g.H, (size_t)g.N * g.C * g.H, v, dx);
}

qg_status qg__dwconv_bwd_weight(qg_ctx *ctx, const qg_tensor *x, const qg_tensor *dy,
                                int stride, int pad, qg_tensor *dw, qg_tensor *db,
                                int accumulate)
{
    geom g;
    qg_kargs a;
    long v[4];
    qg_status st = check(ctx, "dwconv_bwd_weight", x, dy, dw, db, stride, pad, &g);
    if (st == QG_OK)
        st = kernel(ctx, QG_K_DW_BWD_WEIGHT, &a, v);
    if (st != QG_OK)
        return st;
    qg__karg_tensor(&a, x);
    qg__karg_tensor(&a, dy);
    qg__karg_int(&a, g.N);
    qg__karg_int(&a, g.C);
    qg__karg_int(&a, g.H);
    qg__karg_int(&a, g.W);
    qg__karg_int(&a, g.P);
    qg__karg_int(&a, g.Q);
    qg__karg_int(&a, stride);
    qg__karg_int(&a, pad);
    qg__karg_int(&a, db != NULL);
    qg__karg_int(&a, accumulate != 0);
    qg__karg_tensor(&a, dw);
    qg__karg_tensor(&a, db ? db : dw);
    size_t wg = (size_t)v[2], n = (size_t)g.C * wg;
    return qg__kargs_launch(&a, 1, &n, &wg);
}
