/* src/ops/conv_plan.c: the convolution descriptor and plan, and the
 * enqueue functions that dispatch each pass to the path the plan chose:
 * the direct kernels (src/ops/conv_direct.c, cl/conv_direct.cl) or
 * im2col + GEMM (src/ops/conv_gemm.c, cl/im2col.cl). C twin:
 * src/ref/ref_conv.c; tests: tests/test_conv.c.
 *
 * A plan decides once, from the shape, the tuned parameters of its shape
 * class and the workspace it will get: the direct kernels take 3x3
 * convolutions with stride 1 or 2 and pad <= 2 (ResNet's layers; grouped
 * ones too, as Channel Gating's base path: N*groups images of one group's
 * channels, measured 5-30x faster than per-group im2col + GEMM on PoCL),
 * each pass in image chunks when one image's planes fit the workspace,
 * and the backward in one whole-batch pass with dy prepared once when the
 * whole batch fits; otherwise a pass takes im2col + GEMM. The passes then
 * only check their arguments and run what was decided; only the chunk
 * size still follows the workspace each call gets. */
#include "config.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/error.h"
#include "ops/conv_impl.h"

qg_status qg__conv_desc_init(qg_ctx *ctx, qg_conv_desc *d, int N, int C, int H, int W, int K,
                             int R, int S, int stride, int pad, int groups)
{
    if (N < 1 || C < 1 || H < 1 || W < 1 || K < 1 || R < 1 || S < 1 || stride < 1 || pad < 0 ||
        groups < 1)
        return qg__error(ctx, QG_ERR_SHAPE, "conv2d: invalid shape N=%d C=%d H=%d W=%d K=%d "
                         "R=%d S=%d stride=%d pad=%d groups=%d", N, C, H, W, K, R, S, stride,
                         pad, groups);
    if (C % groups != 0 || K % groups != 0)
        return qg__error(ctx, QG_ERR_SHAPE, "conv2d: channels in (%d) and out (%d) must both "
                         "be divisible by groups (%d)", C, K, groups);
    if (H + 2 * pad < R || W + 2 * pad < S)
        return qg__error(ctx, QG_ERR_SHAPE, "conv2d: kernel %dx%d does not fit the padded input "
                         "%dx%d (pad %d)", R, S, H + 2 * pad, W + 2 * pad, pad);
    int P = (H + 2 * pad - R) / stride + 1, Q = (W + 2 * pad - S) / stride + 1;
    /* Kernels index with int; every tensor and one image's column matrix
     * must stay below 2^31 elements. */
    int64_t big = INT_MAX;
    if ((int64_t)N * C * H * W > big || (int64_t)N * K * P * Q > big ||
        (int64_t)K * (C / groups) * R * S > big ||
        ((int64_t)C * R * S + K) * P * Q > big)
        return qg__error(ctx, QG_ERR_SHAPE, "conv2d: shape N=%d C=%d H=%d W=%d K=%d R=%d S=%d "
                         "has more than 2^31 elements in one tensor", N, C, H, W, K, R, S);
    *d = (qg_conv_desc){.N = N, .C = C, .H = H, .W = W, .K = K, .R = R, .S = S,
                        .stride = stride, .pad = pad, .groups = groups, .P = P, .Q = Q};
    return QG_OK;
}

qg_status qg__conv_check_tensor(qg_ctx *ctx, const char *op, const char *what,
                                const qg_tensor *t, size_t numel)
{
    if (!t)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: tensor %s is NULL", op, what);
    if (t->dtype != QG_DTYPE_F32)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: %s '%s' must be F32, not %s", op, what,
                         t->name, qg_dtype_name(t->dtype));
    if (qg_tensor_numel(t) != numel)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: %s '%s' has %zu elements, expected %zu", op,
                         what, t->name, qg_tensor_numel(t), numel);
    return QG_OK;
}

/* ---- plan ---- */

/* The workspace a plan asks for by default: the GEMM path's chunks of up
 * to QG_CONV_WS_TARGET floats; for shapes the direct kernels take, what
 * they want for the whole batch (qg__conv_direct_ws_bound) and at least
 * one image of the GEMM path. */
static size_t default_ws(const qg_conv_desc *d)
{
    size_t per = qg__conv_gemm_per_image(d);
    size_t nb = QG_CONV_WS_TARGET / per;
    if (nb < 1)
        nb = 1;
    if (nb > (size_t)d->N)
        nb = (size_t)d->N;
    size_t direct = qg__conv_direct_ws_bound(d);
    if (direct)
        return per > direct ? per : direct;
    return nb * per;
}

/* A whole-batch backward layout that fits ws floats. */
static int fits(const qg_conv_bwd_layout *b, size_t ws)
{
    return b->ok && b->total <= ws && b->total <= (size_t)INT_MAX;
}

static const char *route_name(qg_conv_route r)
{
    switch (r) {
    case QG_CONV_ROUTE_GEMM: return "im2col+GEMM";
    case QG_CONV_ROUTE_POINTWISE: return "pointwise GEMM";
    case QG_CONV_ROUTE_DIRECT: return "direct";
    case QG_CONV_ROUTE_SHARED: return "direct whole-batch";
    }
    return "?";
}

qg_status qg__conv_plan_new(qg_ctx *ctx, const qg_conv_desc *d, const qg_conv_opts *opts,
                            qg_conv_plan **out)
{
    qg_status st = QG_OK;
    *out = NULL;
    if (!d || d->groups < 1 || d->P < 1 || d->Q < 1 || d->C % d->groups || d->K % d->groups)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "conv plan: descriptor not set up by "
                         "qg__conv_desc_init");
    const qg_conv_opts o = opts ? *opts : (qg_conv_opts){0};
    if (o.quant_bits && (o.quant_bits < 2 || o.quant_bits > 16))
        return qg__error(ctx, QG_ERR_INVALID_ARG, "conv plan: input quantizer of %d bits "
                         "(2..16, or 0 for none)", o.quant_bits);
    size_t per = qg__conv_gemm_per_image(d);
    if (o.ws_floats && o.ws_floats < per)
        return qg__error(ctx, QG_ERR_SHAPE, "conv plan: a workspace of %zu floats is below one "
                         "image of the %dx%d conv N=%d C=%d H=%d W=%d K=%d (%zu floats)",
                         o.ws_floats, d->R, d->S, d->N, d->C, d->H, d->W, d->K, per);
    qg_conv_plan *pl = calloc(1, sizeof *pl);
    if (!pl)
        return qg__error(ctx, QG_ERR_NOMEM, "out of memory for a conv plan");
    pl->ctx = ctx;
    pl->d = *d;
    pl->ws_floats = o.ws_floats ? o.ws_floats : default_ws(d);
    const size_t ws = pl->ws_floats;
    if (!o.force_gemm && qg__conv_direct_takes(d)) {
        QG_TRY(qg__conv_direct_params(ctx, d, &pl->p));
        qg__conv_direct_needs(d, &pl->p, &pl->dn);
        const qg_conv_direct_needs *n = &pl->dn;
        pl->fwd = ws >= n->fwd_one ? QG_CONV_ROUTE_DIRECT : QG_CONV_ROUTE_GEMM;
        pl->bwd_data = fits(&n->data, ws)      ? QG_CONV_ROUTE_SHARED
                       : ws >= n->bwd_data_one ? QG_CONV_ROUTE_DIRECT
                                               : QG_CONV_ROUTE_GEMM;
        pl->bwd_weight = fits(&n->weight, ws)      ? QG_CONV_ROUTE_SHARED
                         : ws >= n->bwd_weight_one ? QG_CONV_ROUTE_DIRECT
                                                   : QG_CONV_ROUTE_GEMM;
        pl->bwd_shared = fits(&n->both, ws);
        if (pl->fwd == QG_CONV_ROUTE_DIRECT) {
            pl->caps |= QG_CONV_CAP_DIRECT | QG_CONV_CAP_EPILOGUE;
            if (n->keep_L)
                pl->caps |= QG_CONV_CAP_KEEP_PLANES;
            if (o.quant_bits >= 2 && o.quant_bits <= QG_CONV_QUANT_BITS_MAX) {
                pl->caps |= QG_CONV_CAP_FUSED_QUANT;
                pl->quant_levels = (1 << o.quant_bits) - 1;
            }
        }
        if (pl->bwd_shared)
            pl->caps |= QG_CONV_CAP_MASKED_BWD;
    } else {
        pl->fwd = pl->bwd_data =
            qg__conv_pointwise(d) ? QG_CONV_ROUTE_POINTWISE : QG_CONV_ROUTE_GEMM;
        pl->bwd_weight = QG_CONV_ROUTE_GEMM;
    }
    snprintf(pl->name, sizeof pl->name, "%dx%d conv N=%d C=%d H=%d W=%d K=%d stride %d pad %d "
             "groups %d (%s)", d->R, d->S, d->N, d->C, d->H, d->W, d->K, d->stride, d->pad,
             d->groups, route_name(pl->fwd));
    *out = pl;
    return QG_OK;
fail:
    free(pl);
    return st;
}

void qg__conv_plan_free(qg_conv_plan *plan)
{
    free(plan);
}

const qg_conv_desc *qg__conv_plan_desc(const qg_conv_plan *plan) { return &plan->d; }
unsigned qg__conv_plan_caps(const qg_conv_plan *plan) { return plan->caps; }
size_t qg__conv_plan_ws_floats(const qg_conv_plan *plan) { return plan->ws_floats; }
const char *qg__conv_plan_name(const qg_conv_plan *plan) { return plan->name; }

size_t qg__conv_plan_keep_floats(const qg_conv_plan *plan)
{
    return plan->caps & QG_CONV_CAP_KEEP_PLANES ? plan->dn.keep_floats : 0;
}

size_t qg__conv_plan_wprep_floats(const qg_conv_plan *plan)
{
    return plan->caps & QG_CONV_CAP_EPILOGUE ? plan->dn.wprep_floats : 0;
}

/* ---- argument checks ---- */

/* op needs `cap`: an error naming the conv and its path when the plan
 * lacks it. */
static qg_status need_cap(const qg_conv_plan *pl, const char *op, unsigned cap,
                          const char *what)
{
    if (pl->caps & cap)
        return QG_OK;
    return qg__error(pl->ctx, QG_ERR_UNSUPPORTED, "%s: the plan of the %s has no %s (ask "
                     "qg__conv_plan_caps first)", op, pl->name, what);
}

static qg_status check_ws(const qg_conv_plan *pl, const char *op, const qg_tensor *ws)
{
    if (!ws)
        return qg__error(pl->ctx, QG_ERR_INVALID_ARG, "%s: workspace is NULL (the %s needs "
                         "%zu floats)", op, pl->name, pl->ws_floats);
    if (ws->dtype != QG_DTYPE_F32)
        return qg__error(pl->ctx, QG_ERR_INVALID_ARG, "%s: workspace '%s' must be F32", op,
                         ws->name);
    if (qg_tensor_numel(ws) < pl->ws_floats)
        return qg__error(pl->ctx, QG_ERR_SHAPE, "%s: workspace '%s' has %zu floats, the plan "
                         "of the %s needs %zu (qg__conv_plan_ws_floats)", op, ws->name,
                         qg_tensor_numel(ws), pl->name, pl->ws_floats);
    return QG_OK;
}

/* A kept-planes buffer: NULL, or (with the cap) large enough. */
static qg_status check_keep(const qg_conv_plan *pl, const char *op, const qg_tensor *keep)
{
    if (!keep)
        return QG_OK;
    qg_status st = need_cap(pl, op, QG_CONV_CAP_KEEP_PLANES, "kept planes");
    if (st == QG_OK && (keep->dtype != QG_DTYPE_F32 ||
                        qg_tensor_numel(keep) < pl->dn.keep_floats))
        st = qg__error(pl->ctx, QG_ERR_SHAPE, "%s: kept planes '%s' need %zu F32 elements "
                       "(qg__conv_plan_keep_floats)", op, keep->name, pl->dn.keep_floats);
    return st;
}

#define NX(d) ((size_t)(d)->N * (d)->C * (d)->H * (d)->W)
#define NY(d) ((size_t)(d)->N * (d)->K * (d)->P * (d)->Q)
#define NW(d) ((size_t)(d)->K * ((d)->C / (d)->groups) * (d)->R * (d)->S)

static qg_status check_fwd(const qg_conv_plan *pl, const char *op, const qg_tensor *x,
                           const qg_tensor *w, const qg_tensor *bias, const qg_tensor *y,
                           const qg_tensor *ws)
{
    qg_ctx *ctx = pl->ctx;
    const qg_conv_desc *d = &pl->d;
    qg_status st = qg__conv_check_tensor(ctx, op, "x", x, NX(d));
    if (st == QG_OK)
        st = qg__conv_check_tensor(ctx, op, "w", w, NW(d));
    if (st == QG_OK)
        st = qg__conv_check_tensor(ctx, op, "y", y, NY(d));
    if (st == QG_OK && bias)
        st = qg__conv_check_tensor(ctx, op, "bias", bias, (size_t)d->K);
    if (st == QG_OK)
        st = check_ws(pl, op, ws);
    return st;
}

/* ---- forward ---- */

qg_status qg__conv_enqueue_fwd(const qg_conv_plan *pl, const qg_tensor *x, const qg_tensor *w,
                               const qg_tensor *bias, qg_tensor *y, qg_tensor *ws,
                               qg_tensor *keep)
{
    static const char op[] = "conv2d_fwd";
    qg_status st = QG_OK;
    QG_TRY(check_fwd(pl, op, x, w, bias, y, ws));
    QG_TRY(check_keep(pl, op, keep));
    if (pl->fwd == QG_CONV_ROUTE_DIRECT) {
        qg_conv_fwd_cache fc = {.keep = keep};
        return qg__conv_direct_fwd(pl, x, w, bias, y, ws, 0, NULL, 0, &fc);
    }
    return qg__conv_gemm_fwd(pl, x, w, bias, y, ws);
fail:
    return st;
}

qg_status qg__conv_enqueue_fwd_quant(const qg_conv_plan *pl, const qg_tensor *x,
                                     const qg_tensor *s, const qg_tensor *w, qg_tensor *y,
                                     qg_tensor *ws, qg_tensor *keep)
{
    static const char op[] = "conv2d_fwd_quant";
    qg_status st = QG_OK;
    QG_TRY(need_cap(pl, op, QG_CONV_CAP_FUSED_QUANT, "fused input quantizer (direct forward, "
                    "2..4 bits in the plan's options)"));
    QG_TRY(check_fwd(pl, op, x, w, NULL, y, ws));
    QG_TRY(qg__conv_check_tensor(pl->ctx, op, "scale", s, 1));
    QG_TRY(check_keep(pl, op, keep));
    qg_conv_fwd_cache fc = {.keep = keep};
    QG_TRY(qg__conv_direct_qtable(pl, s, pl->quant_levels, &fc.q));
    return qg__conv_direct_fwd(pl, x, w, NULL, y, ws, 0, NULL, 0, &fc);
fail:
    return st;
}

qg_status qg__conv_enqueue_fwd_fused(const qg_conv_plan *pl, const qg_tensor *x,
                                     const qg_tensor *w, const qg_tensor *bias, qg_tensor *y,
                                     qg_tensor *ws, int accumulate, const qg_tensor *res,
                                     int relu, qg_tensor *wprep, int wprep_ready)
{
    static const char op[] = "conv2d_fwd_fused";
    qg_status st = QG_OK;
    QG_TRY(need_cap(pl, op, QG_CONV_CAP_EPILOGUE, "fused epilogue"));
    QG_TRY(check_fwd(pl, op, x, w, bias, y, ws));
    if (res)
        QG_TRY(qg__conv_check_tensor(pl->ctx, op, "res", res, NY(&pl->d)));
    if (wprep && (wprep->dtype != QG_DTYPE_F32 ||
                  qg_tensor_numel(wprep) < pl->dn.wprep_floats)) {
        return qg__error(pl->ctx, QG_ERR_SHAPE, "%s: prepared weights '%s' need %zu F32 "
                         "elements (qg__conv_plan_wprep_floats)", op, wprep->name,
                         pl->dn.wprep_floats);
    }
    qg_conv_fwd_cache fc = {.wprep = wprep, .wprep_ready = wprep_ready};
    return qg__conv_direct_fwd(pl, x, w, bias, y, ws, accumulate, res, relu, &fc);
fail:
    return st;
}

/* ---- backward ---- */

qg_status qg__conv_enqueue_bwd_data(const qg_conv_plan *pl, const qg_tensor *dy,
                                    const qg_tensor *w, qg_tensor *dx, qg_tensor *ws,
                                    int accumulate)
{
    static const char op[] = "conv2d_bwd_data";
    const qg_conv_desc *d = &pl->d;
    qg_status st = QG_OK;
    QG_TRY(qg__conv_check_tensor(pl->ctx, op, "dy", dy, NY(d)));
    QG_TRY(qg__conv_check_tensor(pl->ctx, op, "w", w, NW(d)));
    QG_TRY(qg__conv_check_tensor(pl->ctx, op, "dx", dx, NX(d)));
    QG_TRY(check_ws(pl, op, ws));
    switch (pl->bwd_data) {
    case QG_CONV_ROUTE_SHARED:
        return qg__conv_direct_bwd(pl, &pl->dn.data, NULL, dy, w, dx, accumulate, NULL, NULL,
                                   NULL, 0, NULL, ws, NULL);
    case QG_CONV_ROUTE_DIRECT:
        return qg__conv_direct_bwd_data(pl, dy, w, dx, ws, accumulate);
    default:
        return qg__conv_gemm_bwd_data(pl, dy, w, dx, ws, accumulate);
    }
fail:
    return st;
}

static qg_status check_bwd_weight(const qg_conv_plan *pl, const char *op, const qg_tensor *x,
                                  const qg_tensor *dy, const qg_tensor *dw,
                                  const qg_tensor *dbias)
{
    const qg_conv_desc *d = &pl->d;
    qg_status st = qg__conv_check_tensor(pl->ctx, op, "x", x, NX(d));
    if (st == QG_OK)
        st = qg__conv_check_tensor(pl->ctx, op, "dy", dy, NY(d));
    if (st == QG_OK)
        st = qg__conv_check_tensor(pl->ctx, op, "dw", dw, NW(d));
    if (st == QG_OK && dbias)
        st = qg__conv_check_tensor(pl->ctx, op, "dbias", dbias, (size_t)d->K);
    return st;
}

/* The weight gradient by its own route (keep: the forward's planes, read
 * where the route is the whole-batch one). */
static qg_status bwd_weight(const qg_conv_plan *pl, const qg_tensor *x, const qg_tensor *dy,
                            qg_tensor *dw, qg_tensor *dbias, qg_tensor *ws, int accumulate,
                            const qg_tensor *keep)
{
    switch (pl->bwd_weight) {
    case QG_CONV_ROUTE_SHARED:
        return qg__conv_direct_bwd(pl, &pl->dn.weight, x, dy, NULL, NULL, 0, NULL, dw, dbias,
                                   accumulate, NULL, ws, keep);
    case QG_CONV_ROUTE_DIRECT:
        return qg__conv_direct_bwd_weight(pl, x, dy, dw, dbias, ws, accumulate);
    default:
        return qg__conv_gemm_bwd_weight(pl, x, dy, dw, dbias, ws, accumulate);
    }
}

qg_status qg__conv_enqueue_bwd_weight(const qg_conv_plan *pl, const qg_tensor *x,
                                      const qg_tensor *dy, qg_tensor *dw, qg_tensor *dbias,
                                      qg_tensor *ws, int accumulate)
{
    static const char op[] = "conv2d_bwd_weight";
    qg_status st = QG_OK;
    QG_TRY(check_bwd_weight(pl, op, x, dy, dw, dbias));
    QG_TRY(check_ws(pl, op, ws));
    return bwd_weight(pl, x, dy, dw, dbias, ws, accumulate, NULL);
fail:
    return st;
}

qg_status qg__conv_enqueue_bwd(const qg_conv_plan *pl, const qg_tensor *x,
                               const qg_tensor *dy, const qg_tensor *w, qg_tensor *dx,
                               int acc_dx, qg_tensor *dw, qg_tensor *dbias, int acc_dw,
                               qg_tensor *ws, const qg_tensor *keep)
{
    static const char op[] = "conv2d_bwd";
    const qg_conv_desc *d = &pl->d;
    qg_status st = QG_OK;
    if (dx) {
        QG_TRY(qg__conv_check_tensor(pl->ctx, op, "w", w, NW(d)));
        QG_TRY(qg__conv_check_tensor(pl->ctx, op, "dx", dx, NX(d)));
    }
    if (dw)
        QG_TRY(check_bwd_weight(pl, op, x, dy, dw, dbias));
    else
        QG_TRY(qg__conv_check_tensor(pl->ctx, op, "dy", dy, NY(d)));
    QG_TRY(check_ws(pl, op, ws));
    QG_TRY(check_keep(pl, op, keep));
    if (dx && dw && pl->bwd_shared)
        return qg__conv_direct_bwd(pl, &pl->dn.both, x, dy, w, dx, acc_dx, NULL, dw, dbias,
                                   acc_dw, NULL, ws, keep);
    if (dx)
        QG_TRY(qg__conv_enqueue_bwd_data(pl, dy, w, dx, ws, acc_dx));
    if (dw)
        QG_TRY(bwd_weight(pl, x, dy, dw, dbias, ws, acc_dw, keep));
    return QG_OK;
fail:
    return st;
}

qg_status qg__conv_enqueue_bwd_masked(const qg_conv_plan *pl, const qg_tensor *x,
                                      const qg_tensor *dy, const qg_tensor *w, qg_tensor *dx,
                                      int acc_dx, const qg_tensor *mask, qg_tensor *dw,
                                      int acc_dw, const qg_tensor *wmask, qg_tensor *ws,
                                      const qg_tensor *keep)
{
    static const char op[] = "conv2d_bwd_masked";
    const qg_conv_desc *d = &pl->d;
    qg_status st = QG_OK;
    QG_TRY(need_cap(pl, op, QG_CONV_CAP_MASKED_BWD, "masked whole-batch backward"));
    QG_TRY(check_bwd_weight(pl, op, x, dy, dw, NULL));
    QG_TRY(qg__conv_check_tensor(pl->ctx, op, "w", w, NW(d)));
    QG_TRY(qg__conv_check_tensor(pl->ctx, op, "dx", dx, NX(d)));
    if (mask)
        QG_TRY(qg__conv_check_tensor(pl->ctx, op, "mask", mask, NX(d)));
    if (wmask)
        QG_TRY(qg__conv_check_tensor(pl->ctx, op, "wmask", wmask, NW(d)));
    QG_TRY(check_ws(pl, op, ws));
    QG_TRY(check_keep(pl, op, keep));
    return qg__conv_direct_bwd(pl, &pl->dn.both, x, dy, w, dx, acc_dx, mask, dw, NULL, acc_dw,
                               wmask, ws, keep);
fail:
    return st;
}
