/* src/quant/psgd.c: launchers for cl/psgd.cl (contract in
 * src/quant/psgd.h). */
#include "config.h"

#include "core/error.h"
#include "cl/ctx.h"
#include "quant/psgd.h"
#include "tensor/tensor_impl.h"

static qg_status check(qg_ctx *ctx, const char *op, const qg_tensor *w, int bits,
                       const qg_tensor *state)
{
    size_t n = qg_tensor_numel(w);
    qg_status st = qg__tensor_need(ctx, op, "w", w, n, QG_DTYPE_F32);
    if (st == QG_OK)
        st = qg__tensor_need(ctx, op, "state", state, QG_PSGD_STATE_NUMEL, QG_DTYPE_F32);
    if (st != QG_OK)
        return st;
    if (bits < QG_PSGD_MIN_BITS || bits > QG_PSGD_MAX_BITS)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: %d bits is outside %d..%d", op, bits,
                         QG_PSGD_MIN_BITS, QG_PSGD_MAX_BITS);
    if (n > (size_t)0x7fffffff)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: %zu elements exceed the kernels' int indexing",
                         op, n);
    return QG_OK;
}

qg_status qg__psgd_range(qg_ctx *ctx, const qg_tensor *w, int bits, qg_tensor *state,
                         qg_tensor *wq)
{
    const char *op = "psgd_range";
    size_t n = qg_tensor_numel(w);
    qg_status st = check(ctx, op, w, bits, state);
    if (st == QG_OK && wq)
        st = qg__tensor_need(ctx, op, "wq", wq, n, QG_DTYPE_F32);
    if (st != QG_OK || n == 0)
        return st;
    qg_kargs a;
    size_t wg;
    if ((st = qg__kargs_get(ctx, QG_K_PSGD_RANGE, &a, &wg)) != QG_OK)
        return st;
    qg__karg_tensor(&a, w);
    qg__karg_int(&a, (int)n);
    qg__karg_int(&a, bits);
    qg__karg_tensor(&a, state);
    qg__karg_int(&a, wq != NULL);
    qg__karg_tensor(&a, wq ? wq : w); /* never written when quant is 0 */
    return qg__kargs_launch(&a, 1, &wg, &wg);
}

qg_status qg__psgd_scale(qg_ctx *ctx, const qg_tensor *w, qg_tensor *g, int bits, float lambda,
                         const qg_tensor *state)
{
    const char *op = "psgd_scale";
    size_t n = qg_tensor_numel(w);
    qg_status st = check(ctx, op, w, bits, state);
    if (st == QG_OK)
        st = qg__tensor_need(ctx, op, "g", g, n, QG_DTYPE_F32);
    if (st != QG_OK || n == 0)
        return st;
    qg_kargs a;
    size_t wg;
    if ((st = qg__kargs_get(ctx, QG_K_PSGD_SCALE, &a, &wg)) != QG_OK)
        return st;
    qg__karg_tensor(&a, w);
    qg__karg_tensor(&a, g);
    qg__karg_int(&a, (int)n);
    qg__karg_int(&a, bits);
    qg__karg_float(&a, lambda);
    qg__karg_tensor(&a, state);
    size_t items = n;
    return qg__kargs_launch(&a, 1, &items, &wg);
}

qg_status qg__psgd_act_quant(qg_ctx *ctx, qg_tensor *x, int bits, float delta)
{
    const char *op = "psgd_act_quant";
    if (bits < QG_PSGD_MIN_BITS || bits > QG_PSGD_MAX_BITS)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: %d activation bits (%d..%d)", op, bits,
                         QG_PSGD_MIN_BITS, QG_PSGD_MAX_BITS);
    size_t n = qg_tensor_numel(x);
    qg_status st = qg__tensor_need(ctx, op, "x", x, n, QG_DTYPE_F32);
    if (st != QG_OK || n == 0)
        return st;
    qg_kargs a;
    size_t wg;
    if ((st = qg__kargs_get(ctx, QG_K_PSGD_ACT_QUANT, &a, &wg)) != QG_OK)
        return st;
    qg__karg_tensor(&a, x);
    qg__karg_int(&a, (int)n);
    qg__karg_int(&a, bits);
    qg__karg_float(&a, delta);
    size_t items = n;
    return qg__kargs_launch(&a, 1, &items, &wg);
}
