/* src/model/nodes.c: the basic node types of graph.h. Kernels live in
 * src/ops/ (conv.h, layers.h, eltwise.h); this file only wires them to
 * activations and parameters. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "cl/ctx.h"
#include "model/nodes.h"
#include "ops/conv.h"
#include "ops/eltwise.h"
#include "ops/layers.h"
#include "ops/linear.h"
#include "quant/psgd.h"
#include "quant/quant.h"
#include "ref/ref_psgd.h"
#include "tensor/tensor_impl.h"

#define IN0(n, m) qg__act((m), (n)->in[0])
#define IN1(n, m) qg__act((m), (n)->in[1])
#define OUT(n, m) qg__act((m), (n)->out)

typedef enum fill_kind { FILL_NORMAL, FILL_UNIFORM, FILL_CONST } fill_kind;

/* Initialises a parameter on the host and uploads it: normal(0, v),
 * uniform(-v, v) or the constant v. */
static qg_status fill(qg_param *p, fill_kind kind, double v, qg_rng *rng)
{
    size_t n = qg_tensor_numel(p->value);
    float *h = malloc(n * sizeof *h);
    if (!h)
        return qg__error(p->value->ctx, QG_ERR_NOMEM, "out of memory initialising '%s'", p->name);
    for (size_t i = 0; i < n; i++)
        h[i] = kind == FILL_NORMAL    ? (float)(qg__rng_normal(rng) * v)
               : kind == FILL_UNIFORM ? (float)((2.0 * qg__rng_uniform(rng) - 1.0) * v)
                                      : (float)v;
    qg_status st = qg_tensor_write(p->value, h, n * sizeof *h);
    free(h);
    return st;
}

qg_status qg__param_init_normal(qg_param *p, double stddev, qg_rng *rng)
{
    return fill(p, FILL_NORMAL, stddev, rng);
}

qg_status qg__param_init_const(qg_param *p, float v)
{
    return fill(p, FILL_CONST, v, NULL);
}

static qg_status fill_normal(qg_param *p, double stddev, qg_rng *rng)
{
    return fill(p, FILL_NORMAL, stddev, rng);
}

static qg_status fill_uniform(qg_param *p, double bound, qg_rng *rng)
{
    return fill(p, FILL_UNIFORM, bound, rng);
}

static qg_status fill_const(qg_param *p, float v)
{
    return fill(p, FILL_CONST, v, NULL);
}

qg_status qg__node_tensor_like(qg_model *m, const qg_act *a, const char *name, qg_tensor **t)
{
    qg_tensor_free(*t);
    *t = NULL;
    return qg_tensor_new(m->ctx, a->ndim, a->shape, QG_DTYPE_F32, name, t);
}

qg_status qg__node_keep_planes(qg_model *m, const qg_conv_plan *plan, qg_tensor **keep,
                               int *asked)
{
    if (*keep || *asked)
        return QG_OK;
    *asked = 1;
    size_t n = qg__conv_plan_keep_floats(plan);
    if (n == 0)
        return QG_OK;
    int64_t sh[1] = {(int64_t)n};
    return qg_tensor_new(m->ctx, 1, sh, QG_DTYPE_F32, "conv planes", keep);
}

qg_status qg__node_scalar(qg_model *m, qg_dtype dt, const char *name, qg_tensor **t)
{
    int64_t one[1] = {1};
    if (*t)
        return QG_OK;
    return qg_tensor_new(m->ctx, 1, one, dt, name, t);
}

int qg__model_rows(const qg_model *m)
{
    return m->active > 0 && m->active < m->batch ? m->active : m->batch;
}

qg_status qg__node_rows_view(const qg_model *m, qg_tensor *t, qg_tensor **view)
{
    *view = NULL;
    int rows = qg__model_rows(m);
    if (rows == m->batch)
        return QG_OK;
    int64_t sh[QG_MAX_DIMS];
    int nd = qg_tensor_ndim(t);
    for (int d = 0; d < nd; d++)
        sh[d] = qg_tensor_dim(t, d);
    if (nd < 1 || sh[0] != m->batch)
        return qg__error(m->ctx, QG_ERR_SHAPE, "rows view: tensor '%s' is not batch-shaped",
                         qg_tensor_name(t));
    sh[0] = rows;
    return qg_tensor_view(t, 0, nd, sh, view);
}

qg_status qg__gate_counter_read(const qg_gate_counter *g, long long *total, long long *on)
{
    int32_t c = 0;
    qg_status st = g->count ? qg_tensor_read(g->count, &c, sizeof c) : QG_OK;
    *total = g->outputs;
    *on = c;
    return st;
}

qg_status qg__gate_counter_reset(qg_gate_counter *g)
{
    g->outputs = 0;
    return g->count ? qg_tensor_zero(g->count) : QG_OK;
}

static void destroy_free(qg_node *n)
{
    free(n->priv);
    n->priv = NULL;
}

/* ---- conv ---------------------------------------------------------------- */

typedef struct conv_priv {
    int cout, k, stride, pad, groups;
    qg_conv_desc d;
    qg_conv_plan *plan;      /* made in setup, for this batch size */
    qg_param *w, *b;
    qg_node *fold;           /* the BN node folded in at eval, or NULL */
    qg_tensor *wf, *bf;      /* folded weights and bias */
    qg_tensor *keep;         /* x's planes from the training forward, or NULL */
    int keep_asked;          /* the shape was asked whether it can keep them */
    int kept;                /* keep holds this step's planes */
    qg_tensor *wprep;        /* folded weights in the kernels' layout */
    unsigned fold_epoch;     /* m->freeze_epoch wf, bf and wprep belong to; 0 none */
    qg_wquant *wq;           /* a method's weight quantizer, or NULL (float) */
    const qg_tensor *weff;   /* the weights the last forward computed with */
} conv_priv;

static qg_status conv_fold_forward(qg_node *n, qg_model *m);

static qg_status conv_setup(qg_node *n, qg_model *m, size_t *ws)
{
    conv_priv *p = n->priv;
    qg_act *x = IN0(n, m);
    qg__conv_plan_free(p->plan);
    p->plan = NULL;
    qg_status st = qg__conv_desc_init(m->ctx, &p->d, m->batch, (int)x->shape[1],
                                      (int)x->shape[2], (int)x->shape[3], p->cout, p->k, p->k,
                                      p->stride, p->pad, p->groups);
    if (st == QG_OK)
        st = qg__conv_plan_new(m->ctx, &p->d, NULL, &p->plan);
    if (st == QG_OK)
        *ws = qg__conv_plan_ws_floats(p->plan);
    qg_tensor_free(p->keep);
    p->keep = NULL;
    p->keep_asked = p->kept = 0;
    qg_tensor_free(p->wprep); /* its layout may follow the new shape's parameters */
    p->wprep = NULL;
    p->fold_epoch = 0;
    return st;
}

static qg_status conv_forward(qg_node *n, qg_model *m, int train)
{
    conv_priv *p = n->priv;
    p->kept = 0;
    p->weff = p->w->value;
    if (p->wq) {
        qg_status st = qg__wquant_forward(p->wq, m, train, &p->weff);
        if (st != QG_OK)
            return st;
    }
    if (!train && p->fold && !m->no_eval_fold)
        return conv_fold_forward(n, m);
    /* the network input needs no gradient, so its conv keeps nothing */
    if (train && n->in[0] != 0) {
        qg_status st = qg__node_keep_planes(m, p->plan, &p->keep, &p->keep_asked);
        if (st != QG_OK)
            return st;
    }
    p->kept = train && p->keep;
    return qg__conv_enqueue_fwd(p->plan, IN0(n, m)->value, p->weff,
                                p->b ? p->b->value : NULL, OUT(n, m)->value, m->workspace,
                                p->kept ? p->keep : NULL);
}

static qg_status conv_backward(qg_node *n, qg_model *m)
{
    conv_priv *p = n->priv;
    /* The network input needs no gradient. */
    int want_dx = n->in[0] != 0;
    qg_status st = qg__conv_enqueue_bwd(p->plan, IN0(n, m)->value, OUT(n, m)->grad, p->weff,
                                        want_dx ? IN0(n, m)->grad : NULL,
                                        want_dx ? qg__act_grad_begin(m, n->in[0]) : 0,
                                        p->w->grad, p->b ? p->b->grad : NULL, 0, m->workspace,
                                        p->kept ? p->keep : NULL);
    return st == QG_OK ? qg__wquant_backward(p->wq, m, 0) : st;
}

static void conv_destroy(qg_node *n)
{
    conv_priv *p = n->priv;
    if (p) {
        qg_tensor_free(p->wf);
        qg_tensor_free(p->bf);
        qg_tensor_free(p->keep);
        qg_tensor_free(p->wprep);
        qg__wquant_free(p->wq);
        qg__conv_plan_free(p->plan);
    }
    destroy_free(n);
}

static const qg_node_ops conv_ops = {.type = "conv2d", .setup = conv_setup,
                                     .forward = conv_forward, .backward = conv_backward, .destroy = conv_destroy};

int qg__node_conv(qg_model *m, const char *name, int in, int cout, int k, int stride, int pad,
                  int groups, int bias, qg_rng *rng)
{
    return qg__node_conv_wq(m, name, in, cout, k, stride, pad, groups, bias, NULL, NULL, rng);
}

int qg__node_conv_wq(qg_model *m, const char *name, int in, int cout, int k, int stride,
                     int pad, int groups, int bias, const qg_wquant_ops *wq,
                     const void *wq_cfg, qg_rng *rng)
{
    qg_act *x = qg__act(m, in);
    int cin = (int)x->shape[1], h = (int)x->shape[2], w = (int)x->shape[3];
    if (cin % groups || cout % groups) {
        qg__error(m->ctx, QG_ERR_SHAPE, "%s: channels %d->%d not divisible by groups %d", name,
                  cin, cout, groups);
        return -1;
    }
    int oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1;
    conv_priv *p = calloc(1, sizeof *p);
    if (!p) {
        qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
        return -1;
    }
    *p = (conv_priv){.cout = cout, .k = k, .stride = stride, .pad = pad, .groups = groups};
    char pn[128];
    int64_t ws[4] = {cout, cin / groups, k, k}, bs[1] = {cout};
    snprintf(pn, sizeof pn, "%s.weight", name);
    /* Kaiming normal, fan_in, gain sqrt(2): the CIFAR ResNet's init. */
    double fan_in = (double)(cin / groups) * k * k;
    if (qg__model_add_param(m, pn, QG_PARAM_WEIGHT, 4, ws, &p->w) != QG_OK ||
        fill_normal(p->w, sqrt(2.0 / fan_in), rng) != QG_OK)
        goto fail;
    if (bias) {
        snprintf(pn, sizeof pn, "%s.bias", name);
        if (qg__model_add_param(m, pn, QG_PARAM_BIAS, 1, bs, &p->b) != QG_OK ||
            fill_uniform(p->b, 1.0 / sqrt(fan_in), rng) != QG_OK)
            goto fail;
    }
    if (qg__wquant_new(m, wq, name, p->w, wq_cfg, &p->wq) != QG_OK)
        goto fail;
    int out = qg__model_add_act(m, cout, oh, ow);
    if (out < 0 || qg__model_add_node(m, &conv_ops, name, in, -1, out, p) < 0)
        goto fail;
    return out;
fail:
    qg__wquant_free(p->wq);
    free(p);
    return -1;
}

/* ---- batch norm (+ fused residual add and ReLU) --------------------------- */

/* y = relu(bn(x) + shortcut(res)) with the add and the ReLU optional; a
 * plain BatchNorm2d when both are off. An option-A shortcut (res of
 * another shape) goes through `sc`, a buffer of the output's shape that
 * holds the padded shortcut in forward and its gradient in backward. */
typedef struct bn_priv {
    qg_param *gamma, *beta, *mean, *var;
    qg_tensor *save_mean, *save_invstd;
    int relu;
    qg_param *alpha;         /* PACT's clip level instead of the ReLU, or NULL */
    qg_tensor *part;         /* [C] PACT: per-channel sums of its gradient */
    int stride;              /* option-A shortcut stride */
    int option_a;
    qg_tensor *sc;
    int eval_done;           /* the conv before wrote this eval forward's output */
    qg_tensor *ymax;         /* a consumer's scale: max |y| + eps, or NULL */
    int *ymax_fresh;         /* set when a training forward wrote ymax */
    int ste_nz;              /* the one reader's STE (y != 0) is in the mask */
    float aq_delta;          /* low-precision activation step (m->lowp_abits) */
    unsigned aq_epoch;       /* m->freeze_epoch aq_delta belongs to; 0 none */
} bn_priv;

static qg_status bn_setup(qg_node *n, qg_model *m, size_t *ws)
{
    bn_priv *p = n->priv;
    int64_t c[1] = {IN0(n, m)->shape[1]};
    qg_status st = QG_OK;
    if (!p->save_mean) {
        QG_TRY(qg_tensor_new(m->ctx, 1, c, QG_DTYPE_F32, "bn.save_mean", &p->save_mean));
        QG_TRY(qg_tensor_new(m->ctx, 1, c, QG_DTYPE_F32, "bn.save_invstd", &p->save_invstd));
    }
    if (p->alpha && !p->part)
        QG_TRY(qg_tensor_new(m->ctx, 1, c, QG_DTYPE_F32, "bn.pact_part", &p->part));
    if (p->option_a) {
        qg_act *y = OUT(n, m);
        int64_t sh[4] = {m->batch, y->shape[1], y->shape[2], y->shape[3]};
        qg_tensor_free(p->sc);
        p->sc = NULL;
        QG_TRY(qg_tensor_new(m->ctx, 4, sh, QG_DTYPE_F32, "bn.shortcut", &p->sc));
    }
fail:
    return st;
}

static int bn_act_kind(const bn_priv *p)
{
    return p->alpha ? QG_BN_PACT : p->relu ? QG_BN_RELU : QG_BN_NONE;
}

/* A low-precision evaluation with activation bits (m->lowp_abits)
 * quantizes this node's ReLU output on the grid of its clip
 * max_c(beta_c + n*gamma_c) (src/ref/ref_psgd.h qg_ref_psgd_act_delta; the
 * step is computed on the host from the parameters, once per frozen pass). */
static qg_status bn_act_quant(qg_node *n, qg_model *m, bn_priv *p)
{
    if (!m->lowp || !m->lowp_abits || !p->relu || p->alpha)
        return QG_OK;
    if (!m->frozen || p->aq_epoch != m->freeze_epoch) {
        size_t c = qg_tensor_numel(p->gamma->value);
        float *h = malloc(2 * c * sizeof *h), clip;
        if (!h)
            return qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
        qg_status st = qg_tensor_read(p->gamma->value, h, c * sizeof *h);
        if (st == QG_OK)
            st = qg_tensor_read(p->beta->value, h + c, c * sizeof *h);
        if (st == QG_OK)
            p->aq_delta = qg_ref_psgd_act_delta((int)c, h, h + c, m->lowp_act_clip,
                                                m->lowp_abits, &clip);
        free(h);
        if (st != QG_OK)
            return st;
        p->aq_epoch = m->frozen ? m->freeze_epoch : 0;
    }
    return qg__psgd_act_quant(m->ctx, OUT(n, m)->value, m->lowp_abits, p->aq_delta);
}

static qg_status bn_forward(qg_node *n, qg_model *m, int train)
{
    bn_priv *p = n->priv;
    qg_status st = QG_OK;
    if (!train && p->eval_done) {
        p->eval_done = 0;
        return bn_act_quant(n, m, p);
    }
    const qg_tensor *res = NULL;
    if (n->in[1] >= 0) {
        res = IN1(n, m)->value;
        if (p->option_a) {
            QG_TRY(qg__shortcut_a_fwd(m->ctx, res, p->stride, p->sc, 0));
            res = p->sc;
        }
    }
    const qg_tensor *alpha = p->alpha ? p->alpha->value : NULL;
    if (train) {
        QG_TRY(qg__bn_act_fwd_train(m->ctx, IN0(n, m)->value, p->gamma->value, p->beta->value,
                                    p->mean->value, p->var->value, 0.1f, 1e-5f, res,
                                    bn_act_kind(p), alpha, OUT(n, m)->value, p->save_mean,
                                    p->save_invstd, p->ymax, QG_QUANT_EPS));
        if (p->ymax)
            *p->ymax_fresh = 1;
        return QG_OK;
    }
    QG_TRY(qg__bn_act_fwd_eval(m->ctx, IN0(n, m)->value, p->gamma->value, p->beta->value,
                               p->mean->value, p->var->value, 1e-5f, res, bn_act_kind(p), alpha,
                               OUT(n, m)->value));
    return bn_act_quant(n, m, p);
fail:
    return st;
}

static qg_status bn_backward(qg_node *n, qg_model *m)
{
    bn_priv *p = n->priv;
    qg_tensor *dres = NULL;
    int res_acc = 0;
    /* PACT recomputes the forward's pre-activation, residual included
     * (option A: the padded shortcut still in sc, which dres overwrites). */
    qg_bn_pact_bwd pact = {.beta = p->beta->value, .part = p->part};
    if (n->in[1] >= 0) {
        if (p->option_a) {
            dres = p->sc;
            pact.res = p->sc;
        } else {
            dres = IN1(n, m)->grad;
            res_acc = qg__act_grad_begin(m, n->in[1]);
            pact.res = IN1(n, m)->value;
        }
    }
    if (p->alpha) {
        pact.alpha = p->alpha->value;
        pact.dalpha = p->alpha->grad;
        pact.nonzero = p->ste_nz;
    }
    /* a ReLU without a residual recomputes its mask from x and beta
     * rather than reading y: one tensor less to stream, twice */
    int relu_z = bn_act_kind(p) == QG_BN_RELU && n->in[1] < 0;
    qg_status st = qg__bn_act_bwd(m->ctx, IN0(n, m)->value, relu_z ? NULL : OUT(n, m)->value,
                                  OUT(n, m)->grad, p->gamma->value, p->save_mean,
                                  p->save_invstd, bn_act_kind(p), IN0(n, m)->grad,
                                  p->gamma->grad, p->beta->grad,
                                  qg__act_grad_begin(m, n->in[0]), dres, res_acc,
                                  p->alpha || relu_z ? &pact : NULL);
    if (st == QG_OK && p->option_a)
        st = qg__shortcut_a_bwd(m->ctx, p->sc, p->stride, IN1(n, m)->grad,
                                qg__act_grad_begin(m, n->in[1]));
    return st;
}

static void bn_destroy(qg_node *n)
{
    bn_priv *p = n->priv;
    if (p) {
        qg_tensor_free(p->save_mean);
        qg_tensor_free(p->save_invstd);
        qg_tensor_free(p->sc);
        qg_tensor_free(p->part);
    }
    destroy_free(n);
}

static const qg_node_ops bn_ops = {.type = "batchnorm2d", .setup = bn_setup,
                                     .forward = bn_forward, .backward = bn_backward, .destroy = bn_destroy};
static const qg_node_ops bn_act_ops = {.type = "batchnorm2d+act", .setup = bn_setup,
                                       .forward = bn_forward, .backward = bn_backward,
                                       .destroy = bn_destroy};

/* Checks that res_in can be added to an output of main's shape, directly
 * or through an option-A shortcut (stride-2 subsample, channel padding);
 * returns 1 for option A, 0 for identity, -1 (error recorded) otherwise. */
static int shortcut_kind(qg_model *m, const char *name, int main_in, int x_in, int stride)
{
    qg_act *a = qg__act(m, main_in), *x = qg__act(m, x_in);
    if (a->ndim == x->ndim && memcmp(a->shape + 1, x->shape + 1, 3 * sizeof a->shape[0]) == 0)
        return 0;
    if (a->ndim != 4 || x->ndim != 4 || (a->shape[1] - x->shape[1]) % 2 != 0 ||
        a->shape[1] < x->shape[1] || a->shape[2] != (x->shape[2] + stride - 1) / stride ||
        a->shape[3] != (x->shape[3] + stride - 1) / stride) {
        qg__error(m->ctx, QG_ERR_SHAPE, "%s: cannot map %lldx%lldx%lld onto %lldx%lldx%lld with "
                  "an option-A shortcut", name, (long long)x->shape[1], (long long)x->shape[2],
                  (long long)x->shape[3], (long long)a->shape[1], (long long)a->shape[2],
                  (long long)a->shape[3]);
        return -1;
    }
    return 1;
}

static int add_bn(qg_model *m, const char *name, int in, int res_in, int stride, int relu,
                  const char *alpha_name)
{
    qg_act *x = qg__act(m, in);
    int c = (int)x->shape[1];
    int option_a = res_in >= 0 ? shortcut_kind(m, name, in, res_in, stride) : 0;
    if (option_a < 0)
        return -1;
    bn_priv *p = calloc(1, sizeof *p);
    if (!p) {
        qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
        return -1;
    }
    p->relu = relu != 0;
    p->stride = stride;
    p->option_a = option_a;
    char pn[128];
    int64_t cs[1] = {c};
    snprintf(pn, sizeof pn, "%s.weight", name);
    if (qg__model_add_param(m, pn, QG_PARAM_BN, 1, cs, &p->gamma) != QG_OK ||
        fill_const(p->gamma, 1.0f) != QG_OK)
        goto fail;
    snprintf(pn, sizeof pn, "%s.bias", name);
    if (qg__model_add_param(m, pn, QG_PARAM_BN, 1, cs, &p->beta) != QG_OK)
        goto fail;
    snprintf(pn, sizeof pn, "%s.running_mean", name);
    if (qg__model_add_param(m, pn, QG_PARAM_BUFFER, 1, cs, &p->mean) != QG_OK)
        goto fail;
    snprintf(pn, sizeof pn, "%s.running_var", name);
    if (qg__model_add_param(m, pn, QG_PARAM_BUFFER, 1, cs, &p->var) != QG_OK ||
        fill_const(p->var, 1.0f) != QG_OK)
        goto fail;
    if (alpha_name && !(p->alpha = qg__model_find_param(m, alpha_name))) {
        int64_t one[1] = {1};
        if (qg__model_add_param(m, alpha_name, QG_PARAM_CLIP, 1, one, &p->alpha) != QG_OK ||
            qg__param_init_const(p->alpha, 6.0f) != QG_OK)
            goto fail;
    }
    int out = x->ndim == 4 ? qg__model_add_act(m, c, (int)x->shape[2], (int)x->shape[3])
                           : qg__model_add_act(m, c, 0, 0);
    const qg_node_ops *ops = relu || alpha_name || res_in >= 0 ? &bn_act_ops : &bn_ops;
    if (out < 0 || qg__model_add_node(m, ops, name, in, res_in, out, p) < 0)
        goto fail;
    return out;
fail:
    free(p);
    return -1;
}

int qg__node_bn_act(qg_model *m, const char *name, int in, int res_in, int stride, int relu)
{
    return add_bn(m, name, in, res_in, stride, relu, NULL);
}

int qg__node_bn_pact(qg_model *m, const char *name, int in, int res_in, int stride,
                     const char *alpha_name)
{
    return add_bn(m, name, in, res_in, stride, 0, alpha_name);
}

/* The BN node that writes activation act, or NULL; *readers: how many
 * node inputs read act. */
static qg_node *bn_writing(qg_model *m, int act, int *readers)
{
    qg_node *bn = NULL;
    *readers = 0;
    for (int i = 0; i < m->nnodes; i++) {
        qg_node *n = &m->nodes[i];
        *readers += (n->in[0] == act) + (n->in[1] == act);
        if (n->out == act && (n->ops == &bn_ops || n->ops == &bn_act_ops))
            bn = n;
    }
    return bn;
}

int qg__node_bn_offer_ymax(qg_model *m, int act, qg_tensor *ymax, int *fresh)
{
    int readers;
    qg_node *bn = bn_writing(m, act, &readers);
    bn_priv *p = bn ? bn->priv : NULL;
    if (!p || (p->ymax && p->ymax_fresh != fresh))
        return 0; /* none, or another consumer's */
    p->ymax = ymax;
    p->ymax_fresh = fresh;
    *fresh = 0;
    return 1;
}

int qg__node_bn_take_ste(qg_model *m, int act)
{
    int readers;
    qg_node *bn = bn_writing(m, act, &readers);
    bn_priv *p = bn ? bn->priv : NULL;
    if (!p || readers != 1 || (!p->alpha && !p->relu))
        return 0;
    /* The ReLU's mask y > 0 already passes only y != 0; PACT's 0 <= z
     * passes z = 0, where y = 0. */
    p->ste_nz = p->alpha != NULL;
    return 1;
}

int qg__node_bn(qg_model *m, const char *name, int in)
{
    return add_bn(m, name, in, -1, 1, 0, NULL);
}

/* ---- eval-mode conv + BN (+ residual + ReLU) fold ------------------------- */

/* relu(bn_eval(conv(x, w)) + shortcut(res)) as one conv: the conv's
 * epilogue reads an identity residual where it is; an option-A shortcut
 * (subsampled, zero-padded channels) goes into the output first and is
 * added to. Only for convs whose plan has the epilogue
 * (qg__nodes_link_eval_folds links no other). */
static qg_status conv_fold_forward(qg_node *n, qg_model *m)
{
    conv_priv *p = n->priv;
    qg_node *bn = p->fold;
    bn_priv *b = bn->priv;
    qg_tensor *y = OUT(bn, m)->value;
    qg_status st = QG_OK;
    /* while the parameters are frozen, the fold of the pass's first batch
     * serves the rest: folded and prepared weights alike */
    int ready = m->frozen && p->fold_epoch == m->freeze_epoch;
    p->fold_epoch = 0;
    if (!ready) {
        st = qg__bn_fold(m->ctx, p->w->value, p->b ? p->b->value : NULL, b->gamma->value,
                         b->beta->value, b->mean->value, b->var->value, 1e-5f, p->wf, p->bf);
        if (st != QG_OK)
            return st;
    }
    if (!p->wprep) {
        size_t nw = qg__conv_plan_wprep_floats(p->plan);
        int64_t sh[1] = {(int64_t)(nw ? nw : 1)};
        if ((st = qg_tensor_new(m->ctx, 1, sh, QG_DTYPE_F32, "folded weights", &p->wprep)) !=
            QG_OK)
            return st;
    }
    const qg_tensor *res = bn->in[1] >= 0 ? IN1(bn, m)->value : NULL;
    int acc = 0;
    if (res && b->option_a) {
        if ((st = qg__shortcut_a_fwd(m->ctx, res, b->stride, y, 0)) != QG_OK)
            return st;
        res = NULL;
        acc = 1;
    }
    st = qg__conv_enqueue_fwd_fused(p->plan, IN0(n, m)->value, p->wf, p->bf, y, m->workspace,
                                    acc, res, b->relu, p->wprep, ready);
    if (st == QG_OK) {
        b->eval_done = 1;
        p->fold_epoch = m->frozen ? m->freeze_epoch : 0;
    }
    return st;
}

qg_status qg__nodes_link_eval_folds(qg_model *m)
{
    m->eval_folds = 0;
    for (int i = 0; i < m->nnodes; i++) {
        qg_node *c = &m->nodes[i];
        if (c->ops != &conv_ops)
            continue;
        conv_priv *p = c->priv;
        p->fold = NULL;
        if (p->wq) /* the fold would scale float weights, not the quantized ones */
            continue;
        int uses = 0;
        qg_node *bn = NULL;
        for (int j = 0; j < m->nnodes; j++)
            for (int k = 0; k < 2; k++)
                if (m->nodes[j].in[k] == c->out) {
                    uses++;
                    bn = &m->nodes[j];
                }
        /* (the conv epilogue has the ReLU but not PACT's clip) */
        if (uses != 1 || (bn->ops != &bn_ops && bn->ops != &bn_act_ops) ||
            ((bn_priv *)bn->priv)->alpha || bn->in[0] != c->out || !p->plan ||
            !(qg__conv_plan_caps(p->plan) & QG_CONV_CAP_EPILOGUE))
            continue;
        /* The fold adds the residual when the conv runs, so the residual
         * must exist by then: option B's shortcut conv + BN come after the
         * block's second conv in node order. */
        int late = 0;
        for (int j = i + 1; j < m->nnodes && bn->in[1] >= 0; j++)
            late |= m->nodes[j].out == bn->in[1];
        if (late)
            continue;
        qg_status st = QG_OK;
        if (!p->wf) {
            int64_t ks[1] = {p->cout};
            QG_TRY(qg_tensor_new(m->ctx, p->w->value->ndim, p->w->value->shape, QG_DTYPE_F32,
                                 "conv.folded_weight", &p->wf));
            QG_TRY(qg_tensor_new(m->ctx, 1, ks, QG_DTYPE_F32, "conv.folded_bias", &p->bf));
        }
        p->fold = bn;
        m->eval_folds++;
        continue;
fail:
        return st;
    }
    return QG_OK;
}

/* ---- relu ---------------------------------------------------------------- */

static qg_status relu_forward(qg_node *n, qg_model *m, int train)
{
    return qg__relu_fwd(m->ctx, IN0(n, m)->value, OUT(n, m)->value);
}

static qg_status relu_backward(qg_node *n, qg_model *m)
{
    return qg__relu_bwd(m->ctx, IN0(n, m)->value, OUT(n, m)->grad, IN0(n, m)->grad,
                        qg__act_grad_begin(m, n->in[0]));
}

static const qg_node_ops relu_ops = {.type = "relu", .setup = NULL,
                                     .forward = relu_forward, .backward = relu_backward, .destroy = NULL};

static int same_shape_act(qg_model *m, int in)
{
    qg_act *x = qg__act(m, in);
    return x->ndim == 4 ? qg__model_add_act(m, (int)x->shape[1], (int)x->shape[2],
                                            (int)x->shape[3])
                        : qg__model_add_act(m, (int)x->shape[1], 0, 0);
}

int qg__node_relu(qg_model *m, const char *name, int in)
{
    int out = same_shape_act(m, in);
    if (out < 0 || qg__model_add_node(m, &relu_ops, name, in, -1, out, NULL) < 0) {
        qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
        return -1;
    }
    return out;
}

/* ---- residual add -------------------------------------------------------- */

typedef struct residual_priv {
    int stride;
    int option_a;    /* shapes differ: subsample + zero-pad channels */
} residual_priv;

static qg_status residual_forward(qg_node *n, qg_model *m, int train)
{
    residual_priv *p = n->priv;
    if (!p->option_a)
        return qg__eltwise_add(m->ctx, IN0(n, m)->value, IN1(n, m)->value, OUT(n, m)->value);
    qg_status st = qg__eltwise_axpby(m->ctx, 1.0f, IN0(n, m)->value, 0.0f, OUT(n, m)->value);
    if (st == QG_OK)
        st = qg__shortcut_a_fwd(m->ctx, IN1(n, m)->value, p->stride, OUT(n, m)->value, 1);
    return st;
}

static qg_status pass_grad(qg_model *m, const qg_tensor *dy, int id)
{
    int acc = qg__act_grad_begin(m, id);
    return qg__eltwise_axpby(m->ctx, 1.0f, dy, acc ? 1.0f : 0.0f, qg__act(m, id)->grad);
}

static qg_status residual_backward(qg_node *n, qg_model *m)
{
    residual_priv *p = n->priv;
    const qg_tensor *dy = OUT(n, m)->grad;
    qg_status st = pass_grad(m, dy, n->in[0]);
    if (st != QG_OK)
        return st;
    if (!p->option_a)
        return pass_grad(m, dy, n->in[1]);
    return qg__shortcut_a_bwd(m->ctx, dy, p->stride, IN1(n, m)->grad,
                              qg__act_grad_begin(m, n->in[1]));
}

static const qg_node_ops residual_ops = {.type = "residual", .setup = NULL,
                                     .forward = residual_forward, .backward = residual_backward, .destroy = destroy_free};

int qg__node_residual(qg_model *m, const char *name, int main_in, int x_in, int stride)
{
    int option_a = shortcut_kind(m, name, main_in, x_in, stride);
    if (option_a < 0)
        return -1;
    residual_priv *p = calloc(1, sizeof *p);
    if (!p) {
        qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
        return -1;
    }
    p->stride = stride;
    p->option_a = option_a;
    int out = same_shape_act(m, main_in);
    if (out < 0 || qg__model_add_node(m, &residual_ops, name, main_in, x_in, out, p) < 0) {
        free(p);
        qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
        return -1;
    }
    return out;
}

/* ---- global average pool ------------------------------------------------- */

static qg_status gap_forward(qg_node *n, qg_model *m, int train)
{
    return qg__gap_fwd(m->ctx, IN0(n, m)->value, OUT(n, m)->value);
}

static qg_status gap_backward(qg_node *n, qg_model *m)
{
    /* qg__gap_bwd overwrites: the pooled tensor feeds only this node. */
    QG_ASSERT(!qg__act_grad_begin(m, n->in[0]));
    return qg__gap_bwd(m->ctx, OUT(n, m)->grad, IN0(n, m)->grad);
}

static const qg_node_ops gap_ops = {.type = "avgpool", .setup = NULL,
                                     .forward = gap_forward, .backward = gap_backward, .destroy = NULL};

int qg__node_gap(qg_model *m, const char *name, int in)
{
    int out = qg__model_add_act(m, (int)qg__act(m, in)->shape[1], 0, 0);
    if (out < 0 || qg__model_add_node(m, &gap_ops, name, in, -1, out, NULL) < 0) {
        qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
        return -1;
    }
    return out;
}

/* ---- linear -------------------------------------------------------------- */

typedef struct linear_priv {
    int in_f, out_f;
    qg_param *w, *b;
    qg_wquant *wq;           /* a method's weight quantizer, or NULL (float) */
    qg_wquant *bq;           /* its bias quantizer (ops->bias), or NULL */
    const qg_tensor *weff;   /* the weights the last forward computed with */
} linear_priv;

static qg_status linear_forward(qg_node *n, qg_model *m, int train)
{
    linear_priv *p = n->priv;
    const qg_tensor *beff = p->b->value;
    p->weff = p->w->value;
    if (p->wq) {
        qg_status st = qg__wquant_forward(p->wq, m, train, &p->weff);
        if (st == QG_OK && p->bq)
            st = qg__wquant_forward(p->bq, m, train, &beff);
        if (st != QG_OK)
            return st;
    }
    return qg__linear_fwd(m->ctx, m->batch, p->in_f, p->out_f, IN0(n, m)->value, p->weff,
                          beff, OUT(n, m)->value);
}

static qg_status linear_backward(qg_node *n, qg_model *m)
{
    linear_priv *p = n->priv;
    QG_ASSERT(!qg__act_grad_begin(m, n->in[0]));
    qg_status st = qg__linear_bwd(m->ctx, m->batch, p->in_f, p->out_f, IN0(n, m)->value,
                                  p->weff, OUT(n, m)->grad, IN0(n, m)->grad, p->w->grad,
                                  p->b->grad, 0);
    if (st == QG_OK)
        st = qg__wquant_backward(p->wq, m, 0);
    return st == QG_OK ? qg__wquant_backward(p->bq, m, 0) : st;
}

static void linear_destroy(qg_node *n)
{
    linear_priv *p = n->priv;
    if (p) {
        qg__wquant_free(p->wq);
        qg__wquant_free(p->bq);
    }
    destroy_free(n);
}

static const qg_node_ops linear_ops = {.type = "linear", .setup = NULL,
                                     .forward = linear_forward, .backward = linear_backward, .destroy = linear_destroy};

int qg__node_linear(qg_model *m, const char *name, int in, int out_features, qg_rng *rng)
{
    return qg__node_linear_wq(m, name, in, out_features, NULL, NULL, rng);
}

int qg__node_linear_wq(qg_model *m, const char *name, int in, int out_features,
                       const qg_wquant_ops *wq, const void *wq_cfg, qg_rng *rng)
{
    qg_act *x = qg__act(m, in);
    int in_f = (int)x->shape[1];
    for (int d = 2; d < x->ndim; d++)
        in_f *= (int)x->shape[d];
    linear_priv *p = calloc(1, sizeof *p);
    if (!p) {
        qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
        return -1;
    }
    p->in_f = in_f;
    p->out_f = out_features;
    char pn[128];
    int64_t ws[2] = {out_features, in_f}, bs[1] = {out_features};
    snprintf(pn, sizeof pn, "%s.weight", name);
    if (qg__model_add_param(m, pn, QG_PARAM_WEIGHT, 2, ws, &p->w) != QG_OK ||
        fill_normal(p->w, sqrt(2.0 / in_f), rng) != QG_OK)
        goto fail;
    snprintf(pn, sizeof pn, "%s.bias", name);
    if (qg__model_add_param(m, pn, QG_PARAM_BIAS, 1, bs, &p->b) != QG_OK ||
        fill_uniform(p->b, 1.0 / sqrt((double)in_f), rng) != QG_OK)
        goto fail;
    if (qg__wquant_new(m, wq, name, p->w, wq_cfg, &p->wq) != QG_OK ||
        (wq && wq->bias && qg__wquant_new(m, wq, name, p->b, wq_cfg, &p->bq) != QG_OK))
        goto fail;
    int out = qg__model_add_act(m, out_features, 0, 0);
    if (out < 0 || qg__model_add_node(m, &linear_ops, name, in, -1, out, p) < 0)
        goto fail;
    return out;
fail:
    qg__wquant_free(p->wq);
    qg__wquant_free(p->bq);
    free(p);
    return -1;
}

double qg__node_macs(const qg_model *m, const qg_node *n)
{
    if (n->ops->macs)
        return n->ops->macs(m, n);
    if (n->ops == &conv_ops) {
        const conv_priv *p = n->priv;
        const qg_act *x = &m->acts[n->in[0]], *y = &m->acts[n->out];
        return (double)p->cout * y->shape[2] * y->shape[3] * (x->shape[1] / p->groups) * p->k *
               p->k;
    }
    if (n->ops == &linear_ops) {
        const linear_priv *p = n->priv;
        return (double)p->in_f * p->out_f;
    }
    return 0;
}

qg_status qg__model_gate_flops(qg_model *m, double *full, double *effective, int *ncost,
                               double *node_cost)
{
    *full = *effective = 0;
    *ncost = 0;
    for (int i = 0; i < m->nnodes; i++) {
        qg_node *n = &m->nodes[i];
        double f = qg__node_macs(m, n), cost = 1.0;
        if (n->ops->gated_cost && n->ops->gate_counts) {
            long long total, on;
            qg_status st = qg__node_gate_counts(n, m, &total, &on);
            if (st != QG_OK)
                return st;
            cost = n->ops->gated_cost(n, total ? (double)on / (double)total : 1.0);
            if (node_cost)
                node_cost[*ncost] = cost;
            (*ncost)++;
        }
        *full += f;
        *effective += f * cost;
    }
    return QG_OK;
}
