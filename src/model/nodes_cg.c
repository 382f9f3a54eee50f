/* src/model/nodes_cg.c: the CGConv2d node (see nodes_cg.h; kernels and the
 * decomposition in src/cg/cg.h).
 *
 * Per step, with Xs = X or channel_shuffle(X, p):
 *   forward   Wb, Wc = split(W, M) = W*M, W*(1-M); Yp = conv(Xs, Wb);
 *             Yc = conv(Xs, Wc); Z = BN(Yp)
 *             (batch statistics in training, running ones in eval);
 *             out = Yp + d*Yc; the counter adds the outputs gated on.
 *   backward  g, dYp = dOut, dYc = d*dOut, ddelta (cg gate backward);
 *             dYp += BN backward of g; dW = M*corr(Xs, dYp) +
 *             (1-M)*corr(Xs, dYc); dXs = conv^T(dYp, Wb) + conv^T(dYc, Wc);
 *             dX = unshuffle(dXs).
 * This equals the reference's autograd: its dY = dOut*d, dYp = dOut*(1-d)
 * + BN term, dW = corr(X, dY) + M*corr(X, dYp), split along M. Every
 * buffer is allocated in setup, so a step allocates nothing; the counter
 * stays on the device until gate_counts reads it.
 *
 * The base path with the block-diagonal mask (group) is a p-group conv:
 * Wb is the compact [K][C/p][k][k] stack of M's diagonal blocks
 * (qg__cg_weights_fwd), Yp = groupconv(Xs, Wb) costs 1/p of the dense
 * conv's MACs, its backward runs through the same grouped plan, and
 * qg__cg_weights_bwd scatters the compact dWb back into W's full,
 * PyTorch-shaped gradient. src/ops/conv_plan.c runs grouped 3x3 convs on
 * the direct kernels (bench/bench_gconv: 1.2-3x faster than the dense
 * masked conv at p = 4 on PoCL, where im2col + GEMM was 5-30x slower).
 * Without group (the first-C/p-channels mask) the base path is a conv over
 * that slice: Xb = Xs[:, :C/p] copied out, Yp = conv(Xb, Wb) on the
 * compact [K][C/p][k][k] first columns of W (also 1/p of the MACs), its
 * data gradient added back into the first C/p channels of dXs.
 * cfg.dense_base keeps the reference's dense conv with masked full-size
 * weights for either mask. The conditional path Yc is a dense conv with
 * Wc = W*(1-M) (2 convolutions a step become 1 + 1/p).
 *
 * Skipping (docs/gate_skipping.md): where the output-masked conv of
 * src/ops/conv_masked.h pays for the layer's shape (qg__convm_pays) and
 * m->dense_gates is off, Z comes first, a mask marks the outputs the gate
 * may turn on (qg__cg_gate_mask, a superset with a margin), and Yc is
 * computed on the tiles holding them only (0 elsewhere: out = Yp there);
 * the weight gradient of the conditional path then walks the same tiles.
 * Training skips only with sparse back-prop: without it the gate's
 * gradient reads Yc at every output. The data gradient stays a dense
 * transposed conv of the (masked) dYc. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/error.h"
#include "cg/cg.h"
#include "model/nodes.h"
#include "model/nodes_cg.h"
#include "ops/chan.h"
#include "ops/conv.h"
#include "ops/conv_masked.h"
#include "ops/layers.h"
#include "quant/quant.h"
#include "tensor/tensor_impl.h"

#define IN0(n, m) qg__act((m), (n)->in[0])
#define OUT(n, m) qg__act((m), (n)->out)

typedef struct cg_priv {
    int cin, cout, k, stride, pad;
    qg_cg_cfg cfg;
    qg_conv_desc d;                 /* the conditional path, and the base path unless compact */
    qg_conv_plan *plan;             /* made in setup, for this batch size */
    /* the base path on compact weights (unless dense_base): QG_CG_COMPACT_BLOCKS
     * (group: a p-group conv), QG_CG_COMPACT_FIRST (a conv over x's first C/p
     * channels, copied to xb), 0: a dense conv on masked weights */
    int compact;
    qg_conv_desc dg;                /* ... its descriptor and plan */
    qg_conv_plan *gplan;
    qg_tensor *xb, *dxb;            /* [N][C/p][H][W] with QG_CG_COMPACT_FIRST */
    qg_param *w, *mask, *delta, *rmean, *rvar;
    /* W*M (compact: [K][C/p][k][k]), W*(1-M) and their grads */
    qg_tensor *wb, *wc, *dwb, *dwc;
    qg_tensor *xs, *dxs;            /* input-sized, with shuffle only */
    qg_tensor *yp, *yc, *z, *g, *dyp, *dyc;  /* output-sized */
    qg_tensor *save_mean, *save_invstd;
    qg_gate_counter gc;             /* outputs gated / computed in full */
    /* Skipping (src/ops/conv_masked.h): the conditional path only where
     * the gate may be on, when the masked conv pays for this shape. */
    qg_conv_desc dc;                /* the conditional path's conv */
    qg_convm *cm;                   /* NULL: the shape keeps the dense path */
    qg_tensor *gmask;               /* output-sized: where Yc is computed */
    int skipped;                    /* the last forward skipped (its backward follows) */
} cg_priv;

static qg_status cg_setup(qg_node *n, qg_model *m, size_t *ws)
{
    cg_priv *p = n->priv;
    qg_status st = QG_OK;
    qg_act *x = IN0(n, m), *y = OUT(n, m);
    int H = (int)x->shape[2], W = (int)x->shape[3];
    QG_TRY(qg__conv_desc_init(m->ctx, &p->d, m->batch, p->cin, H, W, p->cout, p->k, p->k,
                              p->stride, p->pad, 1));
    qg__conv_plan_free(p->plan);
    p->plan = NULL;
    QG_TRY(qg__conv_plan_new(m->ctx, &p->d, NULL, &p->plan));
    *ws = qg__conv_plan_ws_floats(p->plan);
    qg__conv_plan_free(p->gplan);
    p->gplan = NULL;
    if (p->compact) {
        int first = p->compact == QG_CG_COMPACT_FIRST, P = p->cfg.partitions;
        QG_TRY(qg__conv_desc_init(m->ctx, &p->dg, m->batch, first ? p->cin / P : p->cin, H, W,
                                  p->cout, p->k, p->k, p->stride, p->pad, first ? 1 : P));
        QG_TRY(qg__conv_plan_new(m->ctx, &p->dg, NULL, &p->gplan));
        size_t gws = qg__conv_plan_ws_floats(p->gplan);
        if (gws > *ws)
            *ws = gws;
    }
    if (!p->wb) {
        const int64_t *sw = p->w->value->shape;
        int64_t sc[1] = {p->cout};
        int64_t swb[4] = {sw[0], qg__cg_base_channels((int)sw[1], p->cfg.partitions, p->compact),
                          sw[2], sw[3]};
        QG_TRY(qg_tensor_new(m->ctx, 4, swb, QG_DTYPE_F32, "cg.wb", &p->wb));
        QG_TRY(qg_tensor_new(m->ctx, 4, swb, QG_DTYPE_F32, "cg.dwb", &p->dwb));
        QG_TRY(qg_tensor_new(m->ctx, 4, sw, QG_DTYPE_F32, "cg.wc", &p->wc));
        QG_TRY(qg_tensor_new(m->ctx, 4, sw, QG_DTYPE_F32, "cg.dwc", &p->dwc));
        QG_TRY(qg_tensor_new(m->ctx, 1, sc, QG_DTYPE_F32, "cg.save_mean", &p->save_mean));
        QG_TRY(qg_tensor_new(m->ctx, 1, sc, QG_DTYPE_F32, "cg.save_invstd", &p->save_invstd));
    }
    if (p->cfg.shuffle) {
        QG_TRY(qg__node_tensor_like(m, x, "cg.xs", &p->xs));
        QG_TRY(qg__node_tensor_like(m, x, "cg.dxs", &p->dxs));
    }
    if (p->compact == QG_CG_COMPACT_FIRST) {
        int64_t sb[4] = {m->batch, p->cin / p->cfg.partitions, H, W};
        qg_tensor_free(p->xb);
        qg_tensor_free(p->dxb);
        p->xb = p->dxb = NULL;
        QG_TRY(qg_tensor_new(m->ctx, 4, sb, QG_DTYPE_F32, "cg.xb", &p->xb));
        QG_TRY(qg_tensor_new(m->ctx, 4, sb, QG_DTYPE_F32, "cg.dxb", &p->dxb));
    }
    QG_TRY(qg__node_tensor_like(m, y, "cg.yp", &p->yp));
    QG_TRY(qg__node_tensor_like(m, y, "cg.yc", &p->yc));
    QG_TRY(qg__node_tensor_like(m, y, "cg.z", &p->z));
    QG_TRY(qg__node_tensor_like(m, y, "cg.g", &p->g));
    QG_TRY(qg__node_tensor_like(m, y, "cg.dyp", &p->dyp));
    QG_TRY(qg__node_tensor_like(m, y, "cg.dyc", &p->dyc));
    QG_TRY(qg__node_scalar(m, QG_DTYPE_I32, "cg.count", &p->gc.count));
    qg__convm_free(p->cm);
    p->cm = NULL;
    QG_TRY(qg__conv_desc_init(m->ctx, &p->dc, m->batch, p->cin, H, W, p->cout, p->k, p->k,
                              p->stride, p->pad, 1));
    if (qg__convm_takes(&p->dc)) {
        QG_TRY(qg__convm_new(m->ctx, &p->dc, &p->cm));
        if (!qg__convm_pays(p->cm)) {
            qg__convm_free(p->cm);
            p->cm = NULL;
        }
    }
    if (p->cm) {
        /* W*(1-M) is zero on each output's base block: skipped */
        QG_TRY(qg__convm_zero_blocks(p->cm, p->cfg.partitions, p->cfg.group));
        QG_TRY(qg__node_tensor_like(m, y, "cg.gmask", &p->gmask));
    }
fail:
    return st;
}

/* The base path's plan: the p-group conv's or the slice conv's when
 * compact. */
static const qg_conv_plan *base_plan(const cg_priv *p)
{
    return p->compact ? p->gplan : p->plan;
}

/* The base path's input: x itself, or (first channels, compact) its first
 * C/p channels copied to xb when `copy`. */
static qg_status base_input(cg_priv *p, qg_ctx *ctx, const qg_tensor *x, int copy,
                            const qg_tensor **xb)
{
    *xb = x;
    if (p->compact != QG_CG_COMPACT_FIRST)
        return QG_OK;
    *xb = p->xb;
    return copy ? qg__chan_copy(ctx, x, 0, 1, p->xb, 0, 1, p->cin / p->cfg.partitions, 0)
                : QG_OK;
}

/* The input both paths convolve: X, or its channel shuffle. */
static const qg_tensor *path_input(cg_priv *p, qg_node *n, qg_model *m)
{
    return p->cfg.shuffle ? p->xs : IN0(n, m)->value;
}

static qg_status cg_forward(qg_node *n, qg_model *m, int train)
{
    cg_priv *p = n->priv;
    qg_status st = QG_OK;
    int P = p->cfg.partitions;
    if (p->cfg.shuffle)
        QG_TRY(qg__cg_shuffle(m->ctx, IN0(n, m)->value, P, p->xs, 0));
    const qg_tensor *x = path_input(p, n, m);
    QG_TRY(qg__cg_weights_fwd(m->ctx, p->w->value, p->mask->value, P, p->compact, p->wb,
                              p->wc));
    const qg_tensor *xb;
    QG_TRY(base_input(p, m->ctx, x, 1, &xb));
    QG_TRY(qg__conv_enqueue_fwd(base_plan(p), xb, p->wb, NULL, p->yp, m->workspace, NULL));
    /* Skipping: Z first, then Yc only where the gate may be on (0
     * elsewhere). Training without sparse back-prop needs Yc at every
     * output (the gate's gradient reads it), so it stays dense. */
    p->skipped = p->cm && !m->dense_gates && (!train || p->cfg.spbp) &&
                 qg__convm_should_skip(p->cm);
    if (!p->skipped)
        QG_TRY(qg__conv_enqueue_fwd(p->plan, x, p->wc, NULL, p->yc, m->workspace, NULL));
    if (train)
        QG_TRY(qg__bn_fwd_train(m->ctx, p->yp, NULL, NULL, p->rmean->value, p->rvar->value,
                                0.1f, 1e-5f, p->z, p->save_mean, p->save_invstd));
    else
        QG_TRY(qg__bn_fwd_eval(m->ctx, p->yp, NULL, NULL, p->rmean->value, p->rvar->value,
                               1e-5f, p->z));
    if (p->skipped) {
        QG_TRY(qg__cg_gate_mask(m->ctx, p->z, p->delta->value, p->cfg.alpha, p->gmask));
        QG_TRY(qg__convm_fwd(p->cm, x, p->wc, p->gmask, p->yc));
        QG_TRY(qg__convm_after_skip(p->cm));
    }
    int counted = qg__model_rows(m);
    QG_TRY(qg__cg_gate_fwd(m->ctx, p->z, p->delta->value, p->yp, p->yc, p->cfg.alpha,
                           OUT(n, m)->value, p->gc.count, counted));
    p->gc.outputs += (long long)counted * (long long)(qg_tensor_numel(p->yp) /
                                                         (size_t)m->batch);
fail:
    return st;
}

static qg_status cg_backward(qg_node *n, qg_model *m)
{
    cg_priv *p = n->priv;
    qg_status st = QG_OK;
    const qg_tensor *x = path_input(p, n, m);
    QG_TRY(qg__cg_gate_bwd(m->ctx, p->z, p->delta->value, p->yc, OUT(n, m)->grad,
                           p->cfg.alpha, p->cfg.spbp, p->g, p->dyp, p->dyc, p->delta->grad));
    /* dYp += the affine-free BN's backward of the gate's gradient. */
    QG_TRY(qg__bn_bwd(m->ctx, p->yp, p->g, NULL, p->save_mean, p->save_invstd, p->dyp, NULL,
                      NULL, 1));
    const qg_tensor *xb;
    QG_TRY(base_input(p, m->ctx, x, 0, &xb)); /* (xb as the forward left it) */
    QG_TRY(qg__conv_enqueue_bwd_weight(base_plan(p), xb, p->dyp, p->dwb, NULL, m->workspace, 0));
    /* dYc = d*dOut is 0 outside the forward's mask: the masked conv's
     * weight gradient walks only its non-zero values */
    if (p->skipped && qg__convm_wgrad_pays(p->cm))
        QG_TRY(qg__convm_bwd_weight(p->cm, x, p->dyc, p->dwc, 0));
    else
        QG_TRY(qg__conv_enqueue_bwd_weight(p->plan, x, p->dyc, p->dwc, NULL, m->workspace,
                                           0));
    QG_TRY(qg__cg_weights_bwd(m->ctx, p->mask->value, p->dwb, p->dwc, p->cfg.partitions,
                              p->compact, p->w->grad));
    int acc = qg__act_grad_begin(m, n->in[0]);
    /* With shuffle the convs write dXs, which is then unshuffled (a shuffle
     * with C/p groups, the inverse permutation) into dX. */
    qg_tensor *dx = p->cfg.shuffle ? p->dxs : IN0(n, m)->grad;
    if (p->compact == QG_CG_COMPACT_FIRST) {
        /* the slice's gradient into dX's first C/p channels, the rest 0
         * unless dX accumulates (the conditional path then adds its own) */
        int sacc = p->cfg.shuffle ? 0 : acc;
        QG_TRY(qg__conv_enqueue_bwd_data(p->gplan, p->dyp, p->wb, p->dxb, m->workspace, 0));
        if (!sacc)
            QG_TRY(qg_tensor_zero(dx));
        QG_TRY(qg__chan_copy(m->ctx, p->dxb, 0, 1, dx, 0, 1, p->cin / p->cfg.partitions, 1));
    } else {
        QG_TRY(qg__conv_enqueue_bwd_data(base_plan(p), p->dyp, p->wb, dx, m->workspace,
                                         p->cfg.shuffle ? 0 : acc));
    }
    /* dYc is zero outside the forward's mask too */
    if (p->skipped && qg__convm_dgrad_pays(p->cm))
        QG_TRY(qg__convm_bwd_data(p->cm, p->dyc, p->wc, dx, 1));
    else
        QG_TRY(qg__conv_enqueue_bwd_data(p->plan, p->dyc, p->wc, dx, m->workspace, 1));
    if (p->cfg.shuffle)
        QG_TRY(qg__cg_shuffle(m->ctx, p->dxs, p->cin / p->cfg.partitions, IN0(n, m)->grad,
                              acc));
fail:
    return st;
}

static qg_status cg_aux(qg_node *n, qg_model *m, void *user, qg_tensor *loss)
{
    cg_priv *p = n->priv;
    if (p->cfg.coef == 0.0f)
        return QG_OK;
    return qg__gate_loss(m->ctx, p->delta->value, p->cfg.gtar, p->cfg.coef, QG_GATE_LOSS_CG,
                         loss, p->delta->grad);
}

static qg_status cg_counts(qg_node *n, qg_model *m, long long *total, long long *on)
{
    return qg__gate_counter_read(&((cg_priv *)n->priv)->gc, total, on);
}

static qg_status cg_reset(qg_node *n, qg_model *m)
{
    cg_priv *p = n->priv;
    qg_status st = qg__gate_counter_reset(&p->gc);
    if (st == QG_OK && p->cm)
        st = qg__convm_tiles_reset(p->cm);
    return st;
}

static qg_status cg_skip_tiles(qg_node *n, qg_model *m, long long *computed, long long *total)
{
    cg_priv *p = n->priv;
    *computed = *total = 0;
    return p->cm ? qg__convm_tiles_sum(p->cm, computed, total) : QG_OK;
}

static double cg_macs(const qg_model *m, const qg_node *n)
{
    const cg_priv *p = n->priv;
    const qg_act *y = &m->acts[n->out];
    return (double)p->cout * y->shape[2] * y->shape[3] * p->cin * p->k * p->k;
}

static double cg_cost(const qg_node *n, double r)
{
    const cg_priv *p = n->priv;
    return qg__cg_cost(p->cin, p->cfg.partitions, r);
}

static void cg_destroy(qg_node *n)
{
    cg_priv *p = n->priv;
    if (!p)
        return;
    qg_tensor *ts[] = {p->wb, p->wc, p->dwb, p->dwc, p->xs, p->dxs, p->yp, p->yc, p->z, p->g,
                       p->dyp, p->dyc, p->save_mean, p->save_invstd, p->gc.count, p->xb,
                       p->dxb, p->gmask};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++)
        qg_tensor_free(ts[i]);
    qg__conv_plan_free(p->plan);
    qg__conv_plan_free(p->gplan);
    qg__convm_free(p->cm);
    free(p);
}

static const qg_node_ops cgconv_ops = {.type = "cgconv2d", .setup = cg_setup,
                                       .forward = cg_forward, .backward = cg_backward,
                                       .destroy = cg_destroy,
                                       .gate_counts = cg_counts, .gate_reset = cg_reset,
                                       .macs = cg_macs, .gated_cost = cg_cost,
                                       .skip_tiles = cg_skip_tiles};

/* Adds parameter `<name>.<suffix>`; returns 0 on failure. */
static int add_param(qg_model *m, const char *name, const char *suffix, qg_param_kind kind,
                     int ndim, const int64_t *shape, qg_param **p)
{
    char pn[128];
    snprintf(pn, sizeof pn, "%s.%s", name, suffix);
    return qg__model_add_param(m, pn, kind, ndim, shape, p) == QG_OK;
}

qg_status qg__cg_cfg_check(qg_ctx *ctx, const char *name, int cin, int cout,
                           const qg_cg_cfg *c)
{
    int P = c->partitions;
    if (P < 1 || cin % P || ((c->group || c->shuffle) && cout % P))
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: %d partitions must divide the %d input "
                         "channels%s (output channels: %d)", name, P, cin,
                         c->group || c->shuffle ? " and the output channels" : "", cout);
    if (!(c->alpha > 0.0f) || !isfinite(c->alpha) || !isfinite(c->ginit) || !isfinite(c->gtar))
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: the gate slope must be positive and the "
                         "threshold and target finite (alpha %g, init %g, target %g)", name,
                         c->alpha, c->ginit, c->gtar);
    return QG_OK;
}

int qg__node_cgconv(qg_model *m, const char *name, int in, int cout, int k, int stride,
                    int pad, const qg_cg_cfg *cfg, qg_rng *rng)
{
    qg_act *x = qg__act(m, in);
    int cin = (int)x->shape[1], h = (int)x->shape[2], w = (int)x->shape[3];
    if (qg__cg_cfg_check(m->ctx, name, cin, cout, cfg) != QG_OK)
        return -1;
    int oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1;
    cg_priv *p = calloc(1, sizeof *p);
    float *mask = malloc((size_t)cout * cin * k * k * sizeof *mask);
    if (!p || !mask) {
        qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
        goto fail;
    }
    *p = (cg_priv){.cin = cin, .cout = cout, .k = k, .stride = stride, .pad = pad, .cfg = *cfg,
                   .compact = cfg->dense_base ? 0
                              : cfg->group ? QG_CG_COMPACT_BLOCKS
                                           : QG_CG_COMPACT_FIRST};
    int64_t ws[4] = {cout, cin, k, k}, ds[4] = {1, cout, 1, 1}, cs[1] = {cout};
    if (!add_param(m, name, "weight", QG_PARAM_WEIGHT, 4, ws, &p->w) ||
        qg__param_init_normal(p->w, sqrt(2.0 / ((double)cin * k * k)), rng) != QG_OK)
        goto fail;
    qg__cg_mask_fill(cout, cin, k * k, cfg->partitions, cfg->group, mask);
    if (!add_param(m, name, "mask", QG_PARAM_BUFFER, 4, ws, &p->mask) ||
        qg_tensor_write(p->mask->value, mask, qg_tensor_numel(p->mask->value) * sizeof *mask))
        goto fail;
    if (!add_param(m, name, "threshold", QG_PARAM_GATE, 4, ds, &p->delta) ||
        qg__param_init_const(p->delta, cfg->ginit) != QG_OK)
        goto fail;
    if (!add_param(m, name, "bn.running_mean", QG_PARAM_BUFFER, 1, cs, &p->rmean) ||
        !add_param(m, name, "bn.running_var", QG_PARAM_BUFFER, 1, cs, &p->rvar) ||
        qg__param_init_const(p->rvar, 1.0f) != QG_OK)
        goto fail;
    int out = qg__model_add_act(m, cout, oh, ow);
    int node = out < 0 ? -1 : qg__model_add_node(m, &cgconv_ops, name, in, -1, out, p);
    if (node < 0) {
        qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
        goto fail;
    }
    free(mask);
    /* the gating loss coef*sum (delta - g)^2 as one of the model's loss terms */
    return qg__model_add_aux_loss(m, name, cg_aux, node, NULL) == QG_OK ? out : -1;
fail:
    free(mask);
    free(p);
    return -1;
}
