/* src/model/wquant_bsq.c: BSQ's bit-plane weight quantizer (see
 * wquant_bsq.h). Forward: one kernel per tensor builds the effective
 * weights from the planes; backward: one kernel scatters the gradient to
 * the planes and the scale. The host steps between epochs download the
 * planes, run src/quant/bsq.c and upload the result. Tests:
 * tests/test_bsq.c (kernels, host steps) and tests/test_method.c (the
 * method end to end). */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/nodes.h"
#include "model/wquant_bsq.h"
#include "quant/bsq.h"
#include "tensor/tensor_impl.h"

static qg_status read_all(qg_model *m, const qg_tensor *t, float **out)
{
    qg_ctx *ctx = m ? m->ctx : NULL;
    size_t n = qg_tensor_numel(t);
    *out = malloc((n ? n : 1) * sizeof **out);
    if (!*out)
        return qg__error(ctx, QG_ERR_NOMEM, "out of memory reading '%s'", t->name);
    qg_status st = qg_tensor_read(t, *out, n * sizeof **out);
    if (st != QG_OK) {
        free(*out);
        *out = NULL;
    }
    return st;
}

int qg__bsq_set_bits(const qg_bsq_set *s)
{
    const qg_tensor *p = s->p->value;
    return (int)p->shape[p->ndim - 1];
}

/* Planes, scale (and in finetune the hat) for `target`, initialised from
 * its current float values (S = max |value|). */
static qg_status add_set(qg_model *m, qg_bsq_layer *l, qg_param *target, const char *pn,
                         const char *nn, const char *sn, const char *hn, int N)
{
    qg_status st = QG_OK;
    qg_bsq_set *s = &l->set[l->nsets];
    const qg_tensor *t = target->value;
    char name[128];
    int64_t shape[QG_MAX_DIMS], one[1] = {1};
    float *w = NULL, *p = NULL, *n = NULL;
    if (t->ndim + 1 > QG_MAX_DIMS)
        return qg__error(m->ctx, QG_ERR_SHAPE, "%s: %d-d weights leave no room for a bit axis",
                         l->name, t->ndim);
    memcpy(shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
    shape[t->ndim] = N;
    s->target = target;
    s->M = qg_tensor_numel(t);
    qg_param_kind pk = l->finetune ? QG_PARAM_BUFFER : QG_PARAM_WEIGHT;
    snprintf(name, sizeof name, "%s.%s", l->name, pn);
    QG_TRY(qg__model_add_param(m, name, pk, t->ndim + 1, shape, &s->p));
    snprintf(name, sizeof name, "%s.%s", l->name, nn);
    QG_TRY(qg__model_add_param(m, name, pk, t->ndim + 1, shape, &s->n));
    s->p->flex_last = s->n->flex_last = 1;
    snprintf(name, sizeof name, "%s.%s", l->name, sn);
    QG_TRY(qg__model_add_param(m, name, QG_PARAM_WEIGHT, 1, one, &s->s));
    if (l->finetune) {
        snprintf(name, sizeof name, "%s.%s", l->name, hn);
        QG_TRY(qg__model_add_param(m, name, QG_PARAM_WEIGHT, t->ndim, t->shape, &s->hat));
    }
    /* the float values the layer was built with become its bits */
    QG_TRY(read_all(m, t, &w));
    float S = 0.0f;
    for (size_t i = 0; i < s->M; i++)
        S = fmaxf(S, fabsf(w[i]));
    p = malloc(s->M * (size_t)N * sizeof *p + 1);
    n = malloc(s->M * (size_t)N * sizeof *n + 1);
    if (!p || !n) {
        st = qg__error(m->ctx, QG_ERR_NOMEM, "out of memory building %s", l->name);
        goto fail;
    }
    qg__bsq_from_float(w, s->M, N, S, p, n);
    QG_TRY(qg_tensor_write(s->p->value, p, s->M * (size_t)N * sizeof *p));
    QG_TRY(qg_tensor_write(s->n->value, n, s->M * (size_t)N * sizeof *n));
    QG_TRY(qg_tensor_write(s->s->value, &S, sizeof S));
    /* the float tensor is now produced, not trained */
    target->kind = QG_PARAM_BUFFER;
    l->nsets++;
fail:
    free(w);
    free(p);
    free(n);
    return st;
}

static qg_status bsq_init(qg_wquant *q, qg_model *m, const char *layer, const void *cfg)
{
    const qg_bsq_cfg *c = cfg;
    qg_status st = QG_OK;
    qg_bsq_layer *l = calloc(1, sizeof *l);
    if (!l)
        return qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
    q->priv = l;
    if (c->nbits < 1 || c->nbits > QG_BSQ_MAX_BITS)
        return qg__error(m->ctx, QG_ERR_INVALID_ARG, "%s: %d bits; BSQ takes 1..%d", layer,
                         c->nbits, QG_BSQ_MAX_BITS);
    snprintf(l->name, sizeof l->name, "%s", layer);
    l->finetune = c->finetune;
    QG_TRY(add_set(m, l, q->w, "pweight", "nweight", "scale", "weight_hat", c->nbits));
    char bn[128];
    snprintf(bn, sizeof bn, "%s.bias", layer);
    qg_param *b = qg__model_find_param(m, bn);
    if (b)
        QG_TRY(add_set(m, l, b, "pbias", "nbias", "biasscale", "bias_hat", c->nbits));
    if (l->finetune) {
        int64_t one[1] = {1};
        snprintf(bn, sizeof bn, "%s.ft_ready", layer);
        QG_TRY(qg__model_add_param(m, bn, QG_PARAM_BUFFER, 1, one, &l->ft_ready));
    }
    int64_t wsn[1] = {QG_BSQ_WS_NUMEL}, nn[1] = {64};
    QG_TRY(qg_tensor_new(m->ctx, 1, wsn, QG_DTYPE_F32, "bsq_ws", &l->ws));
    QG_TRY(qg_tensor_new(m->ctx, 1, nn, QG_DTYPE_F32, "bsq_norms", &l->norms));
fail:
    return st;
}

static qg_status bsq_forward(qg_wquant *q, qg_model *m, int train, const qg_tensor **weff)
{
    qg_bsq_layer *l = q->priv;
    int frozen = !train && m->frozen;
    qg_status st = QG_OK;
    if (!frozen || l->epoch != m->freeze_epoch) {
        for (int k = 0; k < l->nsets && st == QG_OK; k++) {
            qg_bsq_set *s = &l->set[k];
            st = l->finetune
                     ? qg__bsq_ft_fwd(m->ctx, s->hat->value, qg__bsq_set_bits(s), s->s->value,
                                      s->target->value)
                     : qg__bsq_fwd(m->ctx, s->p->value, s->n->value, s->s->value,
                                   s->target->value);
        }
    }
    l->epoch = frozen ? m->freeze_epoch : 0;
    *weff = q->w->value;
    return st;
}

static qg_status bsq_backward(qg_wquant *q, qg_model *m, int fused)
{
    qg_bsq_layer *l = q->priv;
    (void)fused; /* no ste_mask: the layer never fuses */
    qg_status st = QG_OK;
    for (int k = 0; k < l->nsets && st == QG_OK; k++) {
        qg_bsq_set *s = &l->set[k];
        st = l->finetune
                 ? qg__bsq_ft_bwd(m->ctx, s->hat->value, qg__bsq_set_bits(s), s->s->value,
                                  s->target->grad, s->hat->grad, s->s->grad, 0, l->ws)
                 : qg__bsq_bwd(m->ctx, s->p->value, s->n->value, s->s->value, s->target->grad,
                               s->p->grad, s->n->grad, s->s->grad, 0, l->ws);
    }
    return st;
}

static void bsq_destroy(qg_wquant *q)
{
    qg_bsq_layer *l = q->priv;
    if (!l)
        return;
    qg_tensor_free(l->ws);
    qg_tensor_free(l->norms);
    free(l);
}

const qg_wquant_ops qg__wquant_bsq = {
    .name = "bsq", .init = bsq_init, .forward = bsq_forward, .backward = bsq_backward,
    .destroy = bsq_destroy};

qg_bsq_layer *qg__bsq_layer(qg_wquant *q)
{
    return q && q->ops == &qg__wquant_bsq ? q->priv : NULL;
}

/* New plane tensors of precision N (resized when it changed) filled from
 * host arrays [M][N]. */
static qg_status put_planes(qg_model *m, qg_bsq_set *s, int N, const float *p, const float *n)
{
    qg_status st = QG_OK;
    if (N != qg__bsq_set_bits(s)) {
        /* copied first: the resize frees the tensor they come from */
        int64_t shape[QG_MAX_DIMS];
        int ndim = s->p->value->ndim;
        memcpy(shape, s->p->value->shape, sizeof shape);
        shape[ndim - 1] = N;
        QG_TRY(qg__model_param_resize(m, s->p, ndim, shape));
        QG_TRY(qg__model_param_resize(m, s->n, ndim, shape));
    }
    QG_TRY(qg_tensor_write(s->p->value, p, s->M * (size_t)N * sizeof *p));
    QG_TRY(qg_tensor_write(s->n->value, n, s->M * (size_t)N * sizeof *n));
fail:
    return st;
}

qg_status qg__bsq_layer_requant(qg_model *m, qg_bsq_layer *l, int maxbit, int prune, float thre)
{
    qg_status st = QG_OK;
    for (int k = 0; k < l->nsets && st == QG_OK; k++) {
        qg_bsq_set *s = &l->set[k];
        int N = qg__bsq_set_bits(s);
        float *p = NULL, *n = NULL, *po = NULL, *no = NULL, sc;
        size_t cap = s->M * (size_t)(N + 1) + 1;
        po = malloc(cap * sizeof *po);
        no = malloc(cap * sizeof *no);
        if (!po || !no)
            st = qg__error(m->ctx, QG_ERR_NOMEM, "out of memory re-quantizing %s", l->name);
        if (st == QG_OK)
            st = read_all(m, s->p->value, &p);
        if (st == QG_OK)
            st = read_all(m, s->n->value, &n);
        if (st == QG_OK)
            st = qg_tensor_read(s->s->value, &sc, sizeof sc);
        if (st == QG_OK) {
            int N1 = qg__bsq_requant(p, n, s->M, N, maxbit, &sc, po, no);
            if (prune)
                N1 = qg__bsq_prune(po, no, s->M, N1, thre, &sc, po, no);
            st = put_planes(m, s, N1, po, no);
        }
        if (st == QG_OK)
            st = qg_tensor_write(s->s->value, &sc, sizeof sc);
        free(p);
        free(n);
        free(po);
        free(no);
    }
    return st;
}

qg_status qg__bsq_layer_ft_prepare(qg_model *m, qg_bsq_layer *l)
{
    float ready = 0.0f;
    qg_status st = qg_tensor_read(l->ft_ready->value, &ready, sizeof ready);
    if (st != QG_OK || ready != 0.0f)
        return st;
    /* as the reference on load: exact bits, all-zero planes dropped */
    QG_TRY(qg__bsq_layer_requant(m, l, QG_BSQ_MAX_BITS, 1, 0.0f));
    for (int k = 0; k < l->nsets; k++) {
        qg_bsq_set *s = &l->set[k];
        int N = qg__bsq_set_bits(s);
        float *p = NULL, *n = NULL, *h = malloc(s->M * sizeof *h + 1);
        if (!h)
            st = qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
        if (st == QG_OK)
            st = read_all(m, s->p->value, &p);
        if (st == QG_OK)
            st = read_all(m, s->n->value, &n);
        if (st == QG_OK) {
            for (size_t i = 0; i < s->M; i++) {
                float v = 0.0f;
                for (int b = 0; b < N; b++)
                    v += (p[i * (size_t)N + b] - n[i * (size_t)N + b]) * qg__bsq_e(N, b);
                h[i] = v;
            }
            st = qg_tensor_write(s->hat->value, h, s->M * sizeof *h);
        }
        free(p);
        free(n);
        free(h);
        if (st != QG_OK)
            return st;
    }
    ready = 1.0f;
    st = qg_tensor_write(l->ft_ready->value, &ready, sizeof ready);
fail:
    return st;
}

qg_status qg__bsq_layer_ft_to_bits(qg_model *m, qg_bsq_layer *l)
{
    qg_status st = QG_OK;
    for (int k = 0; k < l->nsets && st == QG_OK; k++) {
        qg_bsq_set *s = &l->set[k];
        int N = qg__bsq_set_bits(s);
        float *h = NULL, *p = malloc(s->M * (size_t)N * sizeof *p + 1),
              *n = malloc(s->M * (size_t)N * sizeof *n + 1);
        if (!p || !n)
            st = qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
        if (st == QG_OK)
            st = read_all(m, s->hat->value, &h);
        if (st == QG_OK) {
            qg__bsq_from_float(h, s->M, N, 1.0f, p, n);
            st = put_planes(m, s, N, p, n);
        }
        free(h);
        free(p);
        free(n);
    }
    return st;
}

qg_status qg__bsq_layer_nonzero(qg_bsq_layer *l, int k, double *nz)
{
    qg_bsq_set *s = &l->set[k];
    int N = qg__bsq_set_bits(s);
    float *p = NULL, *n = NULL;
    qg_status st = read_all(NULL, s->p->value, &p);
    if (st == QG_OK)
        st = read_all(NULL, s->n->value, &n);
    if (st == QG_OK)
        qg__bsq_code_nonzero(p, n, s->M, N, nz);
    free(p);
    free(n);
    return st;
}
