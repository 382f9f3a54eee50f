/* src/ops/bn.c: launchers for cl/bn.cl (batch norm, PyTorch BatchNorm2d
 * semantics; math in the .cl banner). C twins: src/ref/ref_layers.c;
 * tests: tests/test_bn.c.
 *
 * x may be NCHW (rank 4) or [N, C] (rank 2, BatchNorm1d; HW = 1). Optional
 * tensors (gamma/beta, running stats, dgamma/dbeta) are bound to a tensor
 * that is always present plus a flag, since a kernel argument cannot be
 * NULL portably in OpenCL 1.2. */
#include "config.h"

#include <limits.h>

#include "core/error.h"
#include "cl/ctx.h"
#include "ops/bn_sync.h"
#include "ops/layers.h"
#include "tensor/tensor_impl.h"

/* cl/bn.cl's backward-only activation codes: the ReLU, its mask from x;
 * PACT for a reader that passes gradient only where y != 0. */
#define BN_RELU_Z 3
#define BN_PACT_NZ 4

typedef struct bn_dims {
    int N, C, HW;
} bn_dims;

static qg_status dims_of(qg_ctx *ctx, const char *op, const qg_tensor *x, bn_dims *d)
{
    if (!x)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: input tensor is NULL", op);
    if (x->dtype != QG_DTYPE_F32 || (x->ndim != 2 && x->ndim != 4))
        return qg__error(ctx, QG_ERR_SHAPE, "%s: tensor '%s' must be F32 [N,C,H,W] or [N,C]",
                         op, x->name);
    if (qg_tensor_numel(x) > INT_MAX)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: tensor '%s' has more than 2^31 elements", op,
                         x->name);
    d->N = (int)x->shape[0];
    d->C = (int)x->shape[1];
    d->HW = x->ndim == 4 ? (int)(x->shape[2] * x->shape[3]) : 1;
    return QG_OK;
}

/* t must be F32 with `n` elements; NULL passes when optional. */
static qg_status check(qg_ctx *ctx, const char *op, const char *what, const qg_tensor *t,
                       size_t n, int optional)
{
    if (!t) {
        if (optional)
            return QG_OK;
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: %s is NULL", op, what);
    }
    if (t->dtype != QG_DTYPE_F32 || qg_tensor_numel(t) != n)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: %s '%s' must be F32 with %zu elements (has "
                         "%zu)", op, what, t->name, n, qg_tensor_numel(t));
    return QG_OK;
}

/* The kernel with the context's current WG and VW (registry order). */
static qg_status get(qg_ctx *ctx, qg_kernel_id kernel, qg_kargs *a, size_t *wg, int *vw)
{
    const long *v;
    qg_status st = qg__kargs_getv(ctx, kernel, a, &v);
    if (st != QG_OK)
        return st;
    *wg = (size_t)v[QG_BN_WG];
    *vw = (int)v[QG_BN_VW];
    return QG_OK;
}

/* The training passes' layout: 0 (a work-group per channel) or the number
 * of image ranges of the partial-sums path, at most N. Their parts passes
 * launch one item per work-group (PARTS_LOCAL): left to choose, PoCL's
 * CPU device made the 16 items one work-group, so one core summed while
 * the other waited (bwd_part 81 -> 66 ms, stats_part 32 -> 24 ms in 13
 * steps' kernel profile; the quantized step ~4% faster). */
static qg_status parts_of(qg_ctx *ctx, int N, int *parts)
{
    const long *v;
    qg_status st = qg__program_values(ctx, QG_PROG_BN, &v);
    if (st != QG_OK)
        return st;
    *parts = v[QG_BN_PARTS] < N ? (int)v[QG_BN_PARTS] : N;
    if (ctx->sync_bn && *parts == 0) /* --sync-bn combines the parts' sums */
        *parts = 1;
    return QG_OK;
}

/* Scratch for the partial-sums path: per-part rows of `per` sums per
 * channel, then C more floats (the forward's shifts). */
static qg_status part_scratch(qg_ctx *ctx, int parts, int C, int per, cl_mem *m)
{
    return qg__ctx_scratch(ctx, ((size_t)parts * per + 1) * C * sizeof(float), m);
}

static void karg_at(qg_kargs *a, cl_mem m, int off)
{
    qg__karg_mem(a, m);
    qg__karg_int(a, off);
}

/* The apply kernels' last arguments: where max |y| + add goes, if anywhere
 * (bound to y, and ignored, when NULL). */
static void karg_ymax(qg_kargs *a, qg_tensor *ymax, float add, const qg_tensor *y)
{
    qg__karg_tensor(a, ymax ? ymax : y);
    qg__karg_int(a, ymax != NULL);
    qg__karg_float(a, add);
}

/* Forward training by parts: stats_part, apply (cl/bn.cl). */
static qg_status fwd_train_parts(qg_ctx *ctx, const bn_dims *d, int parts, const qg_tensor *x,
                                 const qg_tensor *gamma, const qg_tensor *beta,
                                 qg_tensor *running_mean, qg_tensor *running_var,
                                 float momentum, float eps, const qg_tensor *res, int act,
                                 const qg_tensor *alpha, qg_tensor *y, qg_tensor *save_mean,
                                 qg_tensor *save_invstd, qg_tensor *ymax, float ymax_add)
{
    qg_kargs a;
    size_t wg;
    int vw;
    cl_mem m;
    qg_status st = part_scratch(ctx, parts, d->C, 2, &m);
    if (st == QG_OK)
        st = get(ctx, QG_K_BN_STATS_PART, &a, &wg, &vw);
    if (st != QG_OK)
        return st;
    qg__karg_tensor(&a, x);
    qg__karg_int(&a, d->N);
    qg__karg_int(&a, d->C);
    qg__karg_int(&a, d->HW);
    qg__karg_int(&a, parts);
    karg_at(&a, m, 0);
    qg__karg_tensor(&a, ymax ? ymax : y);
    qg__karg_int(&a, ymax != NULL);
    size_t g = (size_t)parts, one = 1; /* (PARTS_LOCAL) */
    if ((st = qg__kargs_launch(&a, 1, &g, &one)) != QG_OK)
        return st;
    if (ctx->sync_bn && (st = qg__bn_sync_stats(ctx, m, parts, d->C, d->N, d->HW)) != QG_OK)
        return st;
    if ((st = get(ctx, QG_K_BN_APPLY, &a, &wg, &vw)) != QG_OK)
        return st;
    qg__karg_tensor(&a, x);
    qg__karg_int(&a, d->N);
    qg__karg_int(&a, d->C);
    qg__karg_int(&a, d->HW);
    karg_at(&a, m, 0);
    qg__karg_int(&a, parts);
    qg__karg_tensor(&a, gamma ? gamma : x);
    qg__karg_tensor(&a, beta ? beta : x);
    qg__karg_int(&a, gamma != NULL);
    qg__karg_tensor(&a, running_mean ? running_mean : save_mean);
    qg__karg_tensor(&a, running_var ? running_var : save_invstd);
    qg__karg_int(&a, running_mean != NULL);
    qg__karg_float(&a, momentum);
    qg__karg_float(&a, eps);
    qg__karg_tensor(&a, save_mean);
    qg__karg_tensor(&a, save_invstd);
    qg__karg_tensor(&a, y);
    qg__karg_tensor(&a, res ? res : x);
    qg__karg_int(&a, res != NULL);
    qg__karg_int(&a, act);
    qg__karg_tensor(&a, alpha ? alpha : x);
    karg_ymax(&a, ymax, ymax_add, y);
    g = (size_t)d->N * d->C;
    return qg__kargs_launch(&a, 1, &g, NULL);
}

static qg_status check_affine(qg_ctx *ctx, const char *op, const qg_tensor *gamma,
                              const qg_tensor *beta, int C)
{
    if (!gamma != !beta)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: gamma and beta must both be given or "
                         "both be NULL", op);
    qg_status st = check(ctx, op, "gamma", gamma, (size_t)C, 1);
    if (st == QG_OK)
        st = check(ctx, op, "beta", beta, (size_t)C, 1);
    return st;
}

static qg_status check_act(qg_ctx *ctx, const char *op, int act, const qg_tensor *alpha)
{
    if (act != QG_BN_NONE && act != QG_BN_RELU && act != QG_BN_PACT)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: unknown activation %d", op, act);
    if (act == QG_BN_PACT && !alpha)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: the PACT clip needs alpha", op);
    return check(ctx, op, "alpha", act == QG_BN_PACT ? alpha : NULL, 1, 1);
}

qg_status qg__bn_act_fwd_train(qg_ctx *ctx, const qg_tensor *x, const qg_tensor *gamma,
                               const qg_tensor *beta, qg_tensor *running_mean,
                               qg_tensor *running_var, float momentum, float eps,
                               const qg_tensor *res, int act, const qg_tensor *alpha,
                               qg_tensor *y, qg_tensor *save_mean, qg_tensor *save_invstd,
                               qg_tensor *ymax, float ymax_add)
{
    const char *op = "bn_fwd_train";
    bn_dims d;
    qg_kargs a;
    size_t wg;
    int vw;
    qg_status st = dims_of(ctx, op, x, &d);
    if (st != QG_OK)
        return st;
    if ((size_t)d.N * d.HW < 2)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: training needs more than one value per "
                         "channel (tensor '%s' has %d)", op, x->name, d.N * d.HW);
    if (!running_mean != !running_var)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: running_mean and running_var must both "
                         "be given or both be NULL", op);
    st = check_affine(ctx, op, gamma, beta, d.C);
    if (st == QG_OK)
        st = check(ctx, op, "running_mean", running_mean, (size_t)d.C, 1);
    if (st == QG_OK)
        st = check(ctx, op, "running_var", running_var, (size_t)d.C, 1);
    if (st == QG_OK)
        st = check(ctx, op, "y", y, qg_tensor_numel(x), 0);
    if (st == QG_OK)
        st = check(ctx, op, "save_mean", save_mean, (size_t)d.C, 0);
    if (st == QG_OK)
        st = check(ctx, op, "save_invstd", save_invstd, (size_t)d.C, 0);
    if (st == QG_OK)
        st = check(ctx, op, "res", res, qg_tensor_numel(x), 1);
    if (st == QG_OK)
        st = check_act(ctx, op, act, alpha);
    if (st == QG_OK)
        st = check(ctx, op, "ymax", ymax, 1, 1);
    int parts = 0;
    if (st == QG_OK)
        st = parts_of(ctx, d.N, &parts);
    /* (the parts path zeroes ymax in its first pass) */
    if (st == QG_OK && ymax && parts == 0)
        st = qg_tensor_zero(ymax);
    if (st == QG_OK && parts > 0)
        return fwd_train_parts(ctx, &d, parts, x, gamma, beta, running_mean, running_var,
                               momentum, eps, res, act, alpha, y, save_mean, save_invstd,
                               ymax, ymax_add);
    if (st == QG_OK)
        st = get(ctx, QG_K_BN_FWD_TRAIN, &a, &wg, &vw);
    if (st != QG_OK)
        return st;
    qg__karg_tensor(&a, x);
    qg__karg_int(&a, d.N);
    qg__karg_int(&a, d.C);
    qg__karg_int(&a, d.HW);
    qg__karg_tensor(&a, gamma ? gamma : x);
    qg__karg_tensor(&a, beta ? beta : x);
    qg__karg_int(&a, gamma != NULL);
    qg__karg_tensor(&a, running_mean ? running_mean : save_mean);
    qg__karg_tensor(&a, running_var ? running_var : save_invstd);
    qg__karg_int(&a, running_mean != NULL);
    qg__karg_float(&a, momentum);
    qg__karg_float(&a, eps);
    qg__karg_tensor(&a, y);
    qg__karg_tensor(&a, save_mean);
    qg__karg_tensor(&a, save_invstd);
    qg__karg_tensor(&a, res ? res : x);
    qg__karg_int(&a, res != NULL);
    qg__karg_int(&a, act);
    qg__karg_tensor(&a, alpha ? alpha : x);
    karg_ymax(&a, ymax, ymax_add, y);
    size_t g = (size_t)d.C * wg;
    return qg__kargs_launch(&a, 1, &g, &wg);
}

qg_status qg__bn_fwd_train(qg_ctx *ctx, const qg_tensor *x, const qg_tensor *gamma,
                           const qg_tensor *beta, qg_tensor *running_mean,
                           qg_tensor *running_var, float momentum, float eps, qg_tensor *y,
                           qg_tensor *save_mean, qg_tensor *save_invstd)
{
    return qg__bn_act_fwd_train(ctx, x, gamma, beta, running_mean, running_var, momentum, eps,
                                NULL, QG_BN_NONE, NULL, y, save_mean, save_invstd, NULL, 0.0f);
}

qg_status qg__bn_act_fwd_eval(qg_ctx *ctx, const qg_tensor *x, const qg_tensor *gamma,
                              const qg_tensor *beta, const qg_tensor *running_mean,
                              const qg_tensor *running_var, float eps, const qg_tensor *res,
                              int act, const qg_tensor *alpha, qg_tensor *y)
{
    const char *op = "bn_fwd_eval";
    bn_dims d;
    qg_kargs a;
    size_t wg;
    int vw;
    qg_status st = dims_of(ctx, op, x, &d);
    if (st == QG_OK)
        st = check_affine(ctx, op, gamma, beta, d.C);
    if (st == QG_OK)
        st = check(ctx, op, "running_mean", running_mean, (size_t)d.C, 0);
    if (st == QG_OK)
        st = check(ctx, op, "running_var", running_var, (size_t)d.C, 0);
    if (st == QG_OK)
        st = check(ctx, op, "y", y, qg_tensor_numel(x), 0);
    if (st == QG_OK)
        st = check(ctx, op, "res", res, qg_tensor_numel(x), 1);
    if (st == QG_OK)
        st = check_act(ctx, op, act, alpha);
    if (st == QG_OK)
        st = get(ctx, QG_K_BN_FWD_EVAL, &a, &wg, &vw);
    if (st != QG_OK)
        return st;
    size_t planes = (size_t)d.N * d.C;
    size_t total = planes * (size_t)((d.HW + vw - 1) / vw);
    qg__karg_tensor(&a, x);
    qg__karg_int(&a, d.C);
    qg__karg_int(&a, d.HW);
    qg__karg_int(&a, (int)planes);
    qg__karg_tensor(&a, gamma ? gamma : x);
    qg__karg_tensor(&a, beta ? beta : x);
    qg__karg_int(&a, gamma != NULL);
    qg__karg_tensor(&a, running_mean);
    qg__karg_tensor(&a, running_var);
    qg__karg_float(&a, eps);
    qg__karg_tensor(&a, y);
    qg__karg_tensor(&a, res ? res : x);
    qg__karg_int(&a, res != NULL);
    qg__karg_int(&a, act);
    qg__karg_tensor(&a, alpha ? alpha : x);
    return qg__kargs_launch(&a, 1, &total, &wg);
}

qg_status qg__bn_fwd_eval(qg_ctx *ctx, const qg_tensor *x, const qg_tensor *gamma,
                          const qg_tensor *beta, const qg_tensor *running_mean,
                          const qg_tensor *running_var, float eps, qg_tensor *y)
{
    return qg__bn_act_fwd_eval(ctx, x, gamma, beta, running_mean, running_var, eps, NULL,
                               QG_BN_NONE, NULL, y);
}

/* What the backward kernels bind besides the tensors every call has: the
 * kernel's activation code (BN_RELU_Z: the ReLU's mask recomputed from x),
 * and beta, res, alpha and part, bound to x (or dx) where unused. */
typedef struct bwd_binds {
    int act, has_res;
    const qg_tensor *beta, *res, *alpha;
    qg_tensor *part;
} bwd_binds;

/* The backward kernels' gamma (and its flag) and saved statistics. */
static void karg_saved(qg_kargs *a, const qg_tensor *gamma, const qg_tensor *save_mean,
                       const qg_tensor *save_invstd)
{
    qg__karg_tensor(a, gamma ? gamma : save_mean);
    qg__karg_int(a, gamma != NULL);
    qg__karg_tensor(a, save_mean);
    qg__karg_tensor(a, save_invstd);
}

/* beta, res (and its flag) and alpha, in the kernels' order. */
static void karg_binds(qg_kargs *a, const bwd_binds *k)
{
    qg__karg_tensor(a, k->beta);
    qg__karg_tensor(a, k->res);
    qg__karg_int(a, k->has_res);
    qg__karg_tensor(a, k->alpha);
}

/* Backward by parts: bwd_part, bwd_apply (cl/bn.cl). */
static qg_status bwd_parts(qg_ctx *ctx, const bn_dims *d, int parts, const qg_tensor *x,
                           const qg_tensor *y, const qg_tensor *dy, const qg_tensor *gamma,
                           const qg_tensor *save_mean, const qg_tensor *save_invstd,
                           const bwd_binds *k, qg_tensor *dx, qg_tensor *dgamma,
                           qg_tensor *dbeta, int accumulate, qg_tensor *dres,
                           int res_accumulate, qg_tensor *dalpha)
{
    qg_kargs a;
    size_t wg;
    int vw;
    cl_mem m;
    qg_status st = part_scratch(ctx, parts, d->C, 3, &m);
    if (st == QG_OK)
        st = get(ctx, QG_K_BN_BWD_PART, &a, &wg, &vw);
    if (st != QG_OK)
        return st;
    qg__karg_tensor(&a, x);
    qg__karg_tensor(&a, dy);
    qg__karg_int(&a, d->N);
    qg__karg_int(&a, d->C);
    qg__karg_int(&a, d->HW);
    qg__karg_int(&a, parts);
    karg_saved(&a, gamma, save_mean, save_invstd);
    qg__karg_tensor(&a, y ? y : x);
    qg__karg_int(&a, k->act);
    karg_binds(&a, k);
    karg_at(&a, m, 0);
    size_t g = (size_t)parts, one = 1; /* (PARTS_LOCAL) */
    if ((st = qg__kargs_launch(&a, 1, &g, &one)) != QG_OK)
        return st;
    if (ctx->sync_bn && (st = qg__bn_sync_bwd(ctx, m, parts, d->C, d->N, d->HW)) != QG_OK)
        return st;
    if ((st = get(ctx, QG_K_BN_BWD_APPLY, &a, &wg, &vw)) != QG_OK)
        return st;
    qg__karg_tensor(&a, x);
    qg__karg_tensor(&a, dy);
    qg__karg_int(&a, d->N);
    qg__karg_int(&a, d->C);
    qg__karg_int(&a, d->HW);
    karg_saved(&a, gamma, save_mean, save_invstd);
    karg_at(&a, m, 0);
    qg__karg_int(&a, parts);
    qg__karg_tensor(&a, dgamma ? dgamma : dx);
    qg__karg_int(&a, dgamma != NULL);
    qg__karg_tensor(&a, dbeta ? dbeta : dx);
    qg__karg_int(&a, dbeta != NULL);
    qg__karg_tensor(&a, dx);
    qg__karg_int(&a, accumulate != 0);
    qg__karg_tensor(&a, y ? y : x);
    qg__karg_int(&a, k->act);
    qg__karg_tensor(&a, dres ? dres : dx);
    qg__karg_int(&a, dres ? (res_accumulate ? 2 : 1) : 0);
    karg_binds(&a, k);
    /* PACT: dalpha += the channels' sums, by the first item */
    qg__karg_tensor(&a, dalpha ? dalpha : dx);
    qg__karg_int(&a, dalpha != NULL);
    g = (size_t)d->N * d->C;
    return qg__kargs_launch(&a, 1, &g, NULL);
}

qg_status qg__bn_act_bwd(qg_ctx *ctx, const qg_tensor *x, const qg_tensor *y,
                         const qg_tensor *dy, const qg_tensor *gamma,
                         const qg_tensor *save_mean, const qg_tensor *save_invstd, int act,
                         qg_tensor *dx, qg_tensor *dgamma, qg_tensor *dbeta, int accumulate,
                         qg_tensor *dres, int res_accumulate, const qg_bn_pact_bwd *pact)
{
    const char *op = "bn_bwd";
    bn_dims d;
    qg_kargs a;
    size_t wg;
    int vw;
    qg_status st = dims_of(ctx, op, x, &d);
    if (st == QG_OK)
        st = check(ctx, op, "dy", dy, qg_tensor_numel(x), 0);
    if (st == QG_OK)
        st = check(ctx, op, "gamma", gamma, (size_t)d.C, 1);
    if (st == QG_OK)
        st = check(ctx, op, "save_mean", save_mean, (size_t)d.C, 0);
    if (st == QG_OK)
        st = check(ctx, op, "save_invstd", save_invstd, (size_t)d.C, 0);
    if (st == QG_OK)
        st = check(ctx, op, "dx", dx, qg_tensor_numel(x), 0);
    if (st == QG_OK)
        st = check(ctx, op, "dgamma", dgamma, (size_t)d.C, 1);
    if (st == QG_OK)
        st = check(ctx, op, "dbeta", dbeta, (size_t)d.C, 1);
    /* the ReLU's mask from y, or recomputed from x (needs beta, no residual) */
    int rz = act == QG_BN_RELU && !y;
    if (st == QG_OK && rz && (!pact || (gamma && !pact->beta) || pact->res || dres))
        st = qg__error(ctx, QG_ERR_INVALID_ARG, "%s: the fused ReLU needs the output y, or "
                       "beta and no residual to recompute its mask", op);
    if (st == QG_OK && rz)
        st = check(ctx, op, "beta", pact->beta, (size_t)d.C, 1);
    if (st == QG_OK)
        st = check(ctx, op, "y", y, qg_tensor_numel(x), 1);
    if (st == QG_OK)
        st = check(ctx, op, "dres", dres, qg_tensor_numel(x), 1);
    if (st == QG_OK)
        st = check_act(ctx, op, act, pact ? pact->alpha : NULL);
    if (st == QG_OK && act == QG_BN_PACT) {
        st = check(ctx, op, "beta", pact->beta, (size_t)d.C, gamma == NULL);
        if (st == QG_OK)
            st = check(ctx, op, "res", pact->res, qg_tensor_numel(x), 1);
        if (st == QG_OK)
            st = check(ctx, op, "dalpha", pact->dalpha, 1, 0);
        if (st == QG_OK)
            st = check(ctx, op, "part", pact->part, (size_t)d.C, 0);
        if (st == QG_OK && pact->res && pact->res == dres && res_accumulate)
            st = qg__error(ctx, QG_ERR_INVALID_ARG, "%s: dres may replace res, not add to it",
                           op);
    }
    int parts = 0, pa = act == QG_BN_PACT;
    const qg_bn_pact_bwd none = {0}, *pp = pact && st == QG_OK ? pact : &none;
    bwd_binds k = {.act = rz ? BN_RELU_Z : pa && pp->nonzero ? BN_PACT_NZ : act,
                   .has_res = pa && pp->res,
                   .beta = (pa || rz) && gamma && pp->beta ? pp->beta : x,
                   .res = pa && pp->res ? pp->res : x, .alpha = pa && pp->alpha ? pp->alpha : x,
                   .part = pa && pp->part ? pp->part : dx};
    if (st == QG_OK)
        st = parts_of(ctx, d.N, &parts);
    if (st == QG_OK && parts > 0) {
        /* (the PACT sum rides on the last pass: one launch less) */
        return bwd_parts(ctx, &d, parts, x, y, dy, gamma, save_mean, save_invstd, &k, dx,
                         dgamma, dbeta, accumulate, dres, res_accumulate,
                         pa ? pact->dalpha : NULL);
    }
    if (st == QG_OK)
        st = get(ctx, QG_K_BN_BWD, &a, &wg, &vw);
    if (st != QG_OK)
        return st;
    qg__karg_tensor(&a, x);
    qg__karg_tensor(&a, dy);
    qg__karg_int(&a, d.N);
    qg__karg_int(&a, d.C);
    qg__karg_int(&a, d.HW);
    karg_saved(&a, gamma, save_mean, save_invstd);
    qg__karg_tensor(&a, dx);
    qg__karg_int(&a, accumulate != 0);
    qg__karg_tensor(&a, dgamma ? dgamma : dx);
    qg__karg_int(&a, dgamma != NULL);
    qg__karg_tensor(&a, dbeta ? dbeta : dx);
    qg__karg_int(&a, dbeta != NULL);
    qg__karg_tensor(&a, y ? y : x);
    qg__karg_int(&a, k.act);
    qg__karg_tensor(&a, dres ? dres : dx);
    qg__karg_int(&a, dres ? (res_accumulate ? 2 : 1) : 0);
    karg_binds(&a, &k);
    qg__karg_tensor(&a, k.part);
    size_t g = (size_t)d.C * wg;
    st = qg__kargs_launch(&a, 1, &g, &wg);
    if (st != QG_OK || !pa)
        return st;
    /* dalpha += the channels' sums, in channel order. */
    if ((st = get(ctx, QG_K_BN_PART_ADD, &a, &wg, &vw)) != QG_OK)
        return st;
    qg__karg_tensor(&a, pact->part);
    qg__karg_int(&a, d.C);
    qg__karg_tensor(&a, pact->dalpha);
    size_t one = 1;
    return qg__kargs_launch(&a, 1, &one, NULL);
}

qg_status qg__bn_bwd(qg_ctx *ctx, const qg_tensor *x, const qg_tensor *dy,
                     const qg_tensor *gamma, const qg_tensor *save_mean,
                     const qg_tensor *save_invstd, qg_tensor *dx, qg_tensor *dgamma,
                     qg_tensor *dbeta, int accumulate)
{
    return qg__bn_act_bwd(ctx, x, NULL, dy, gamma, save_mean, save_invstd, QG_BN_NONE, dx,
                          dgamma, dbeta, accumulate, NULL, 0, NULL);
}

qg_status qg__bn_fold(qg_ctx *ctx, const qg_tensor *w, const qg_tensor *b,
                      const qg_tensor *gamma, const qg_tensor *beta,
                      const qg_tensor *running_mean, const qg_tensor *running_var, float eps,
                      qg_tensor *wf, qg_tensor *bf)
{
    const char *op = "bn_fold";
    if (!w || !wf || !bf || w->ndim < 1)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: w, wf and bf are required", op);
    int K = (int)w->shape[0];
    size_t n = qg_tensor_numel(w);
    qg_status st = check(ctx, op, "wf", wf, n, 0);
    if (st == QG_OK)
        st = check(ctx, op, "bf", bf, (size_t)K, 0);
    if (st == QG_OK)
        st = check(ctx, op, "conv bias", b, (size_t)K, 1);
    if (st == QG_OK)
        st = check_affine(ctx, op, gamma, beta, K);
    if (st == QG_OK)
        st = check(ctx, op, "running_mean", running_mean, (size_t)K, 0);
    if (st == QG_OK)
        st = check(ctx, op, "running_var", running_var, (size_t)K, 0);
    if (st == QG_OK && n > INT_MAX)
        st = qg__error(ctx, QG_ERR_SHAPE, "%s: weight '%s' beyond 2^31 elements", op, w->name);
    qg_kargs a;
    size_t wg;
    int vw;
    if (st == QG_OK)
        st = get(ctx, QG_K_BN_FOLD, &a, &wg, &vw);
    if (st != QG_OK)
        return st;
    qg__karg_tensor(&a, w);
    qg__karg_int(&a, K);
    qg__karg_int(&a, (int)(n / (size_t)K));
    qg__karg_tensor(&a, b ? b : w);
    qg__karg_int(&a, b != NULL);
    qg__karg_tensor(&a, gamma ? gamma : running_mean);
    qg__karg_tensor(&a, beta ? beta : running_mean);
    qg__karg_int(&a, gamma != NULL);
    qg__karg_tensor(&a, running_mean);
    qg__karg_tensor(&a, running_var);
    qg__karg_float(&a, eps);
    qg__karg_tensor(&a, wf);
    qg__karg_tensor(&a, bf);
    size_t l = 64;
    return qg__kargs_launch(&a, 1, &n, &l);
}
