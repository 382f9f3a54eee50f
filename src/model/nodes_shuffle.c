/* src/model/nodes_shuffle.c: depthwise conv, max pool, channel slice and
 * ShuffleNet V2 join nodes (see nodes_shuffle.h). */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/error.h"
#include "model/nodes.h"
#include "model/nodes_shuffle.h"
#include "ops/chan.h"
#include "ops/dwconv.h"
#include "ops/layers.h"

#define IN0(n, m) qg__act((m), (n)->in[0])
#define IN1(n, m) qg__act((m), (n)->in[1])
#define OUT(n, m) qg__act((m), (n)->out)

static int fail_nomem(qg_model *m)
{
    qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
    return -1;
}

static void destroy_free(qg_node *n)
{
    free(n->priv);
    n->priv = NULL;
}

/* Adds src's channels sc0, sc0+ss, ... (count of them) into channels
 * dc0.. of activation id's gradient. Gradients follow graph.h's rule (the
 * first writer overwrites): a first writer that covers only part of the
 * channels zeroes the gradient first, so the other writers can add. */
static qg_status grad_channels(qg_model *m, int id, const qg_tensor *src, int sc0, int ss,
                               int dc0, int count)
{
    qg_act *x = qg__act(m, id);
    int acc = qg__act_grad_begin(m, id);
    if (!acc && count < x->shape[1]) {
        qg_status st = qg_tensor_zero(x->grad);
        if (st != QG_OK)
            return st;
        acc = 1;
    }
    return qg__chan_copy(m->ctx, src, sc0, ss, x->grad, dc0, 1, count, acc);
}

/* ---- depthwise 3x3 conv --------------------------------------------------- */

typedef struct dw_priv {
    int stride, pad;
    qg_param *w;
    qg_wquant *wq;
    const qg_tensor *weff;
} dw_priv;

static qg_status dw_forward(qg_node *n, qg_model *m, int train)
{
    dw_priv *p = n->priv;
    p->weff = p->w->value;
    qg_status st = qg__wquant_forward(p->wq, m, train, &p->weff);
    if (st != QG_OK)
        return st;
    return qg__dwconv_fwd(m->ctx, IN0(n, m)->value, p->weff, NULL, p->stride, p->pad,
                          OUT(n, m)->value);
}

static qg_status dw_backward(qg_node *n, qg_model *m)
{
    dw_priv *p = n->priv;
    qg_status st = QG_OK;
    if (n->in[0] != 0) /* the network input needs no gradient */
        st = qg__dwconv_bwd_data(m->ctx, OUT(n, m)->grad, p->weff, p->stride, p->pad,
                                 IN0(n, m)->grad, qg__act_grad_begin(m, n->in[0]));
    if (st == QG_OK)
        st = qg__dwconv_bwd_weight(m->ctx, IN0(n, m)->value, OUT(n, m)->grad, p->stride,
                                   p->pad, p->w->grad, NULL, 0);
    return st == QG_OK ? qg__wquant_backward(p->wq, m, 0) : st;
}

static double dw_macs(const qg_model *m, const qg_node *n)
{
    const qg_act *y = &m->acts[n->out];
    return 9.0 * (double)y->shape[1] * (double)y->shape[2] * (double)y->shape[3];
}

static void dw_destroy(qg_node *n)
{
    dw_priv *p = n->priv;
    if (p)
        qg__wquant_free(p->wq);
    destroy_free(n);
}

static const qg_node_ops dw_ops = {.type = "dwconv3x3", .forward = dw_forward,
                                   .backward = dw_backward, .destroy = dw_destroy,
                                   .macs = dw_macs};

int qg__node_dwconv(qg_model *m, const char *name, int in, int stride, int pad,
                    const qg_wquant_ops *wq, const void *wq_cfg, qg_rng *rng)
{
    qg_act *x = qg__act(m, in);
    if (x->ndim != 4 || stride < 1 || pad < 0 || pad > 2 || x->shape[2] + 2 * pad < 3 ||
        x->shape[3] + 2 * pad < 3) {
        qg__error(m->ctx, QG_ERR_SHAPE, "%s: a 3x3 depthwise conv (stride %d, pad %d) does "
                  "not fit its %lldx%lld input", name, stride, pad,
                  (long long)(x->ndim == 4 ? x->shape[2] : 0),
                  (long long)(x->ndim == 4 ? x->shape[3] : 0));
        return -1;
    }
    int c = (int)x->shape[1];
    dw_priv *p = calloc(1, sizeof *p);
    if (!p)
        return fail_nomem(m);
    p->stride = stride;
    p->pad = pad;
    char pn[128];
    int64_t ws[4] = {c, 1, 3, 3};
    snprintf(pn, sizeof pn, "%s.weight", name);
    if (qg__model_add_param(m, pn, QG_PARAM_WEIGHT, 4, ws, &p->w) != QG_OK ||
        qg__param_init_normal(p->w, sqrt(2.0 / 9.0), rng) != QG_OK ||
        qg__wquant_new(m, wq, name, p->w, wq_cfg, &p->wq) != QG_OK)
        goto fail;
    int out = qg__model_add_act(m, c, qg__dwconv_out((int)x->shape[2], stride, pad),
                                qg__dwconv_out((int)x->shape[3], stride, pad));
    if (out < 0 || qg__model_add_node(m, &dw_ops, name, in, -1, out, p) < 0)
        goto fail;
    return out;
fail:
    qg__wquant_free(p->wq);
    free(p);
    return -1;
}

/* ---- max pool ------------------------------------------------------------- */

typedef struct mp_priv {
    int k, stride, pad;
    qg_tensor *argmax;
} mp_priv;

static qg_status mp_setup(qg_node *n, qg_model *m, size_t *ws)
{
    mp_priv *p = n->priv;
    qg_act *y = OUT(n, m);
    int64_t sh[4] = {m->batch, y->shape[1], y->shape[2], y->shape[3]};
    (void)ws;
    qg_tensor_free(p->argmax);
    p->argmax = NULL;
    return qg_tensor_new(m->ctx, 4, sh, QG_DTYPE_I32, "maxpool.argmax", &p->argmax);
}

static qg_status mp_forward(qg_node *n, qg_model *m, int train)
{
    mp_priv *p = n->priv;
    (void)train;
    return qg__maxpool_fwd(m->ctx, IN0(n, m)->value, p->k, p->stride, p->pad,
                           OUT(n, m)->value, p->argmax);
}

static qg_status mp_backward(qg_node *n, qg_model *m)
{
    mp_priv *p = n->priv;
    if (n->in[0] == 0)
        return QG_OK;
    /* qg__maxpool_bwd overwrites dx: the pooled tensor has no other reader. */
    QG_ASSERT(!qg__act_grad_begin(m, n->in[0]));
    return qg__maxpool_bwd(m->ctx, OUT(n, m)->grad, p->argmax, IN0(n, m)->grad);
}

static void mp_destroy(qg_node *n)
{
    mp_priv *p = n->priv;
    if (p)
        qg_tensor_free(p->argmax);
    destroy_free(n);
}

static const qg_node_ops mp_ops = {.type = "maxpool", .setup = mp_setup,
                                   .forward = mp_forward, .backward = mp_backward,
                                   .destroy = mp_destroy};

int qg__node_maxpool(qg_model *m, const char *name, int in, int k, int stride, int pad)
{
    qg_act *x = qg__act(m, in);
    int h = x->ndim == 4 ? (int)x->shape[2] : 0, w = x->ndim == 4 ? (int)x->shape[3] : 0;
    if (k < 1 || stride < 1 || pad < 0 || 2 * pad > k || h + 2 * pad < k || w + 2 * pad < k) {
        qg__error(m->ctx, QG_ERR_SHAPE, "%s: a %dx%d max pool (stride %d, pad %d) does not "
                  "fit its %dx%d input", name, k, k, stride, pad, h, w);
        return -1;
    }
    mp_priv *p = calloc(1, sizeof *p);
    if (!p)
        return fail_nomem(m);
    *p = (mp_priv){.k = k, .stride = stride, .pad = pad};
    int out = qg__model_add_act(m, (int)x->shape[1], (h + 2 * pad - k) / stride + 1,
                                (w + 2 * pad - k) / stride + 1);
    if (out < 0 || qg__model_add_node(m, &mp_ops, name, in, -1, out, p) < 0) {
        free(p);
        return fail_nomem(m);
    }
    return out;
}

/* ---- channel slice -------------------------------------------------------- */

typedef struct slice_priv {
    int c0, count;
} slice_priv;

static qg_status slice_forward(qg_node *n, qg_model *m, int train)
{
    slice_priv *p = n->priv;
    (void)train;
    return qg__chan_copy(m->ctx, IN0(n, m)->value, p->c0, 1, OUT(n, m)->value, 0, 1, p->count,
                         0);
}

static qg_status slice_backward(qg_node *n, qg_model *m)
{
    slice_priv *p = n->priv;
    if (n->in[0] == 0)
        return QG_OK;
    return grad_channels(m, n->in[0], OUT(n, m)->grad, 0, 1, p->c0, p->count);
}

static const qg_node_ops slice_ops = {.type = "chan_slice", .forward = slice_forward,
                                      .backward = slice_backward, .destroy = destroy_free};

int qg__node_chan_slice(qg_model *m, const char *name, int in, int c0, int count)
{
    qg_act *x = qg__act(m, in);
    if (x->ndim != 4 || c0 < 0 || count < 1 || c0 + count > x->shape[1]) {
        qg__error(m->ctx, QG_ERR_SHAPE, "%s: channels %d..%d do not fit its %lld-channel "
                  "input", name, c0, c0 + count - 1, (long long)x->shape[1]);
        return -1;
    }
    slice_priv *p = calloc(1, sizeof *p);
    if (!p)
        return fail_nomem(m);
    *p = (slice_priv){.c0 = c0, .count = count};
    int out = qg__model_add_act(m, count, (int)x->shape[2], (int)x->shape[3]);
    if (out < 0 || qg__model_add_node(m, &slice_ops, name, in, -1, out, p) < 0) {
        free(p);
        return fail_nomem(m);
    }
    return out;
}

/* ---- ShuffleNet V2 join: concat + channel shuffle(2) ---------------------- */

typedef struct join_priv {
    int a_c0, half;
    int fused;   /* a gives all its channels: the one-pass kernels */
} join_priv;

static qg_status join_forward(qg_node *n, qg_model *m, int train)
{
    join_priv *p = n->priv;
    (void)train;
    const qg_tensor *a = IN0(n, m)->value, *b = IN1(n, m)->value;
    qg_tensor *y = OUT(n, m)->value;
    if (p->fused)
        return qg__chan_concat_shuffle2(m->ctx, a, b, y, 0);
    qg_status st = qg__chan_copy(m->ctx, a, p->a_c0, 1, y, 0, 2, p->half, 0);
    return st == QG_OK ? qg__chan_copy(m->ctx, b, 0, 1, y, 1, 2, p->half, 0) : st;
}

static qg_status join_backward(qg_node *n, qg_model *m)
{
    join_priv *p = n->priv;
    const qg_tensor *dy = OUT(n, m)->grad;
    qg_status st = QG_OK;
    if (p->fused && n->in[0] != 0) {
        /* one pass, unless the two gradients differ in whether they add */
        int acc_a = qg__act_grad_begin(m, n->in[0]), acc_b = qg__act_grad_begin(m, n->in[1]);
        if (acc_a == acc_b)
            return qg__chan_unshuffle2(m->ctx, dy, IN0(n, m)->grad, IN1(n, m)->grad, acc_a);
        st = qg__chan_copy(m->ctx, dy, 0, 2, IN0(n, m)->grad, 0, 1, p->half, acc_a);
        return st == QG_OK
                   ? qg__chan_copy(m->ctx, dy, 1, 2, IN1(n, m)->grad, 0, 1, p->half, acc_b)
                   : st;
    }
    if (n->in[0] != 0)
        st = grad_channels(m, n->in[0], dy, 0, 2, p->a_c0, p->half);
    if (st == QG_OK)
        st = grad_channels(m, n->in[1], dy, 1, 2, 0, p->half);
    return st;
}

static const qg_node_ops join_ops = {.type = "shuffle_join", .forward = join_forward,
                                     .backward = join_backward, .destroy = destroy_free};

int qg__node_shuffle_join(qg_model *m, const char *name, int a, int a_c0, int b)
{
    qg_act *xa = qg__act(m, a), *xb = qg__act(m, b);
    int half = xb->ndim == 4 ? (int)xb->shape[1] : 0;
    if (xa->ndim != 4 || xb->ndim != 4 || xa->shape[2] != xb->shape[2] ||
        xa->shape[3] != xb->shape[3] || a_c0 < 0 || a_c0 + half > xa->shape[1]) {
        qg__error(m->ctx, QG_ERR_SHAPE, "%s: cannot join channels %d.. of a %lld-channel map "
                  "with a %d-channel map of another size", name, a_c0, (long long)xa->shape[1],
                  half);
        return -1;
    }
    join_priv *p = calloc(1, sizeof *p);
    if (!p)
        return fail_nomem(m);
    *p = (join_priv){.a_c0 = a_c0, .half = half, .fused = a_c0 == 0 && xa->shape[1] == half};
    int out = qg__model_add_act(m, 2 * half, (int)xb->shape[2], (int)xb->shape[3]);
    if (out < 0 || qg__model_add_node(m, &join_ops, name, a, b, out, p) < 0) {
        free(p);
        return fail_nomem(m);
    }
    return out;
}
