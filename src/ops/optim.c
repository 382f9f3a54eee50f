/* src/ops/optim.c: launchers for cl/optim.cl (torch.optim SGD and Adam
 * steps, sum of squares for the gradient norm). C twins:
 * src/ref/ref_layers.c; tests: tests/test_optim.c. */
#include "config.h"

#include <limits.h>
#include <math.h>

#include "core/error.h"
#include "cl/ctx.h"
#include "ops/layers.h"
#include "tensor/tensor_impl.h"

static qg_status get(qg_ctx *ctx, qg_kernel_id kernel, qg_kargs *a, size_t *wg)
{
    return qg__kargs_get(ctx, kernel, a, wg);
}

/* t must be F32 with n elements (n = numel(w)). */
static qg_status check(qg_ctx *ctx, const char *op, const char *what, const qg_tensor *t,
                       size_t n)
{
    if (!t)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: %s is NULL", op, what);
    if (t->dtype != QG_DTYPE_F32 || qg_tensor_numel(t) != n || n > INT_MAX)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: %s '%s' must be F32 with %zu elements (has "
                         "%zu)", op, what, t->name, n, qg_tensor_numel(t));
    return QG_OK;
}

qg_status qg__sgd_step(qg_ctx *ctx, qg_tensor *w, const qg_tensor *grad, qg_tensor *buf,
                       float lr, float momentum, float wd, int nesterov, int first,
                       float grad_scale)
{
    return qg__sgd_step_many(ctx, 1, &w, &grad, &buf, &wd, lr, momentum, nesterov, first,
                             grad_scale);
}

qg_status qg__sgd_step_many(qg_ctx *ctx, int count, qg_tensor *const *w,
                            const qg_tensor *const *grad, qg_tensor *const *buf,
                            const float *wd, float lr, float momentum, int nesterov, int first,
                            float grad_scale)
{
    const char *op = "sgd_step";
    int has_buf = momentum != 0.0f;
    if (nesterov && !has_buf)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: nesterov needs a non-zero momentum", op);
    for (int i0 = 0; i0 < count; i0 += 4) {
        qg_kargs a;
        size_t wg, total = 0;
        qg_status st = get(ctx, QG_K_OPTIM_SGD4, &a, &wg);
        for (int t = i0; t < i0 + 4 && t < count && st == QG_OK; t++) {
            size_t n = w[t] ? qg_tensor_numel(w[t]) : 0;
            st = check(ctx, op, "w", w[t], n);
            if (st == QG_OK)
                st = check(ctx, op, "grad", grad[t], n);
            if (st == QG_OK && has_buf)
                st = check(ctx, op, "momentum buffer", buf[t], n);
            total += n;
        }
        if (st == QG_OK && total > INT_MAX)
            st = qg__error(ctx, QG_ERR_SHAPE, "%s: %zu elements in one launch", op, total);
        if (st != QG_OK)
            return st;
        for (int t = i0; t < i0 + 4; t++) {
            int live = t < count;
            qg_tensor *wt = w[live ? t : i0];
            qg__karg_tensor(&a, wt);
            qg__karg_tensor(&a, grad[live ? t : i0]);
            qg__karg_tensor(&a, has_buf ? buf[live ? t : i0] : wt);
            qg__karg_int(&a, live ? (int)qg_tensor_numel(wt) : 0);
            qg__karg_float(&a, live ? wd[t] : 0.0f);
        }
        qg__karg_float(&a, lr);
        qg__karg_float(&a, momentum);
        qg__karg_int(&a, nesterov != 0);
        qg__karg_int(&a, first != 0);
        qg__karg_float(&a, grad_scale);
        qg__karg_int(&a, has_buf);
        if ((st = qg__kargs_launch(&a, 1, &total, &wg)) != QG_OK)
            return st;
    }
    return QG_OK;
}

qg_status qg__adam_step(qg_ctx *ctx, qg_tensor *w, const qg_tensor *grad, qg_tensor *m,
                        qg_tensor *v, float lr, float beta1, float beta2, float eps, float wd,
                        int t, float grad_scale)
{
    const char *op = "adam_step";
    qg_kargs a;
    size_t wg;
    if (!w)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: w is NULL", op);
    if (t < 1)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: step count %d < 1", op, t);
    if (!(beta1 >= 0.0f && beta1 < 1.0f && beta2 >= 0.0f && beta2 < 1.0f))
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: betas (%g, %g) must lie in [0, 1)", op,
                         beta1, beta2);
    size_t n = qg_tensor_numel(w);
    qg_status st = check(ctx, op, "w", w, n);
    if (st == QG_OK)
        st = check(ctx, op, "grad", grad, n);
    if (st == QG_OK)
        st = check(ctx, op, "m", m, n);
    if (st == QG_OK)
        st = check(ctx, op, "v", v, n);
    if (st == QG_OK)
        st = get(ctx, QG_K_OPTIM_ADAM, &a, &wg);
    if (st != QG_OK)
        return st;
    /* torch forms the bias corrections in Python floats (double). */
    double bc1 = 1.0 - pow((double)beta1, t), bc2 = 1.0 - pow((double)beta2, t);
    qg__karg_tensor(&a, w);
    qg__karg_tensor(&a, grad);
    qg__karg_tensor(&a, m);
    qg__karg_tensor(&a, v);
    qg__karg_int(&a, (int)n);
    qg__karg_float(&a, (float)((double)lr / bc1));
    qg__karg_float(&a, (float)sqrt(bc2));
    qg__karg_float(&a, beta1);
    qg__karg_float(&a, beta2);
    qg__karg_float(&a, eps);
    qg__karg_float(&a, wd);
    qg__karg_float(&a, grad_scale);
    return qg__kargs_launch(&a, 1, &n, &wg);
}

qg_status qg__sumsq(qg_ctx *ctx, const qg_tensor *x, qg_tensor *out, int accumulate)
{
    const char *op = "sumsq";
    qg_kargs a;
    size_t wg;
    if (!x || !out)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: x and out are required", op);
    qg_status st = check(ctx, op, "x", x, qg_tensor_numel(x));
    if (st == QG_OK && (out->dtype != QG_DTYPE_F32 || qg_tensor_numel(out) < 1))
        st = qg__error(ctx, QG_ERR_SHAPE, "%s: out '%s' must be F32 with at least one element",
                       op, out->name);
    if (st == QG_OK)
        st = get(ctx, QG_K_OPTIM_SUMSQ, &a, &wg);
    if (st != QG_OK)
        return st;
    qg__karg_tensor(&a, x);
    qg__karg_int(&a, (int)qg_tensor_numel(x));
    qg__karg_tensor(&a, out);
    qg__karg_int(&a, accumulate != 0);
    size_t g = wg;
    return qg__kargs_launch(&a, 1, &g, &wg);
}
