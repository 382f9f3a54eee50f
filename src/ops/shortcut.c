/* src/ops/shortcut.c: launchers for cl/shortcut.cl (option-A residual
 * shortcut: spatial subsampling plus symmetric zero channels). C twins:
 * src/ref/ref_layers.c; tests: tests/test_pool.c. */
#include "config.h"

#include <limits.h>

#include "core/error.h"
#include "cl/ctx.h"
#include "ops/layers.h"
#include "tensor/tensor_impl.h"

/* Checks that `small` [N,C,H,W] maps onto `big` [N,K,ceil(H/s),ceil(W/s)]
 * with K - C even and non-negative. */
static qg_status check(qg_ctx *ctx, const char *op, const qg_tensor *small,
                       const qg_tensor *big, int stride)
{
    if (!small || !big)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: tensors are required", op);
    if (stride < 1)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: stride %d < 1", op, stride);
    if (small->dtype != QG_DTYPE_F32 || big->dtype != QG_DTYPE_F32 || small->ndim != 4 ||
        big->ndim != 4)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: tensors '%s' and '%s' must be F32 NCHW", op,
                         small->name, big->name);
    const int64_t *s = small->shape, *b = big->shape;
    if (b[0] != s[0] || b[1] < s[1] || (b[1] - s[1]) % 2 != 0 ||
        b[2] != (s[2] + stride - 1) / stride || b[3] != (s[3] + stride - 1) / stride)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: cannot map '%s' [%lld,%lld,%lld,%lld] onto "
                         "'%s' [%lld,%lld,%lld,%lld] with stride %d", op, small->name,
                         (long long)s[0], (long long)s[1], (long long)s[2], (long long)s[3],
                         big->name, (long long)b[0], (long long)b[1], (long long)b[2],
                         (long long)b[3], stride);
    if (qg_tensor_numel(small) > INT_MAX || qg_tensor_numel(big) > INT_MAX)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: tensors beyond 2^31 elements", op);
    return QG_OK;
}

static qg_status launch(qg_ctx *ctx, qg_kernel_id kernel, const qg_tensor *in,
                        const qg_tensor *small, const qg_tensor *big, int stride,
                        qg_tensor *out, int accumulate)
{
    const long *v;
    qg_kargs a;
    qg_status st = qg__kargs_getv(ctx, kernel, &a, &v);
    if (st != QG_OK)
        return st;
    const int64_t *s = small->shape, *b = big->shape;
    qg__karg_tensor(&a, in);
    qg__karg_int(&a, (int)s[0]);
    qg__karg_int(&a, (int)s[1]);
    qg__karg_int(&a, (int)s[2]);
    qg__karg_int(&a, (int)s[3]);
    qg__karg_int(&a, (int)b[1]);
    qg__karg_int(&a, (int)b[2]);
    qg__karg_int(&a, (int)b[3]);
    qg__karg_int(&a, stride);
    qg__karg_int(&a, (int)((b[1] - s[1]) / 2));
    qg__karg_tensor(&a, out);
    qg__karg_int(&a, accumulate != 0);
    /* WG, ROW (cl/shortcut.cl): ROW 1 launches one item per output row,
     * ROW 2 one per output plane. */
    size_t n = qg_tensor_numel(out), wg = (size_t)v[QG_SHORTCUT_WG];
    if (v[QG_SHORTCUT_ROW])
        n /= (size_t)out->shape[3] * (v[QG_SHORTCUT_ROW] == 2 ? (size_t)out->shape[2] : 1);
    return qg__kargs_launch(&a, 1, &n, &wg);
}

qg_status qg__shortcut_a_fwd(qg_ctx *ctx, const qg_tensor *x, int stride, qg_tensor *y,
                             int accumulate)
{
    qg_status st = check(ctx, "shortcut_a_fwd", x, y, stride);
    if (st != QG_OK)
        return st;
    return launch(ctx, QG_K_SHORTCUT_A_FWD, x, x, y, stride, y, accumulate);
}

qg_status qg__shortcut_a_bwd(qg_ctx *ctx, const qg_tensor *dy, int stride, qg_tensor *dx,
                             int accumulate)
{
    qg_status st = check(ctx, "shortcut_a_bwd", dx, dy, stride);
    if (st != QG_OK)
        return st;
    return launch(ctx, QG_K_SHORTCUT_A_BWD, dy, dx, dy, stride, dx, accumulate);
}
