/* src/model/wquant.c: the weight-quantizer interface's dispatch (see
 * wquant.h) and the uniform sign-magnitude quantizer. Kernels:
 * src/quant/quant.h (cl/quant.cl); tests: tests/test_method.c and the
 * quantized-conv tests in tests/test_model.c. */
#include "config.h"

#include <stdlib.h>

#include "core/error.h"
#include "model/nodes.h"
#include "model/wquant.h"
#include "quant/quant.h"
#include "tensor/tensor_impl.h"

qg_status qg__wquant_new(qg_model *m, const qg_wquant_ops *ops, const char *layer, qg_param *w,
                         const void *cfg, qg_wquant **out)
{
    *out = NULL;
    if (!ops)
        return QG_OK;
    qg_wquant *q = calloc(1, sizeof *q);
    if (!q)
        return qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
    q->ops = ops;
    q->w = w;
    q->m = m;
    qg_status st = qg__model_add_wquant(m, q);
    if (st == QG_OK && ops->init)
        st = ops->init(q, m, layer, cfg);
    if (st != QG_OK) {
        qg__wquant_free(q);
        return st;
    }
    *out = q;
    return QG_OK;
}

void qg__wquant_free(qg_wquant *q)
{
    if (!q)
        return;
    qg__model_remove_wquant(q->m, q);
    if (q->ops->destroy)
        q->ops->destroy(q);
    free(q);
}

qg_status qg__wquant_forward(qg_wquant *q, qg_model *m, int train, const qg_tensor **weff)
{
    if (!q) {
        return QG_OK; /* caller keeps its own weights */
    }
    return q->ops->forward(q, m, train, weff);
}

qg_status qg__wquant_backward(qg_wquant *q, qg_model *m, int fused)
{
    return q && q->ops->backward ? q->ops->backward(q, m, fused) : QG_OK;
}

const qg_tensor *qg__wquant_ste_mask(const qg_wquant *q)
{
    return q && q->ops->ste_mask ? q->ops->ste_mask(q) : NULL;
}

/* ---- uniform ------------------------------------------------------------- */

typedef struct uniform_priv {
    int bits;
    qg_tensor *wq, *sw;
    unsigned epoch;          /* m->freeze_epoch wq was quantized in; 0: none */
} uniform_priv;

static qg_status uniform_init(qg_wquant *q, qg_model *m, const char *layer, const void *cfg)
{
    uniform_priv *p = calloc(1, sizeof *p);
    qg_status st = QG_OK;
    if (!p)
        return qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
    q->priv = p;
    p->bits = *(const int *)cfg;
    const qg_tensor *w = q->w->value;
    QG_TRY(qg_tensor_new(m->ctx, w->ndim, w->shape, QG_DTYPE_F32, "wq", &p->wq));
    QG_TRY(qg__node_scalar(m, QG_DTYPE_F32, "sw", &p->sw));
fail:
    return st;
}

static qg_status uniform_forward(qg_wquant *q, qg_model *m, int train, const qg_tensor **weff)
{
    uniform_priv *p = q->priv;
    /* an evaluation pass (frozen parameters) quantizes the weights once */
    int frozen = !train && m->frozen;
    if (!frozen || p->epoch != m->freeze_epoch) {
        qg_status st = qg__quant_fwd(m->ctx, q->w->value, p->bits, QG_QSCALE_PG, p->sw, p->wq);
        if (st != QG_OK)
            return st;
    }
    p->epoch = frozen ? m->freeze_epoch : 0;
    *weff = p->wq;
    return QG_OK;
}

static qg_status uniform_backward(qg_wquant *q, qg_model *m, int fused)
{
    uniform_priv *p = q->priv;
    if (fused)
        return QG_OK;
    return qg__quant_ste_bwd(m->ctx, q->w->value, q->w->grad, q->w->grad,
                             qg__quant_ste(p->bits), 0);
}

static const qg_tensor *uniform_mask(const qg_wquant *q)
{
    const uniform_priv *p = q->priv;
    return qg__quant_ste(p->bits) == QG_STE_NONZERO ? q->w->value : NULL;
}

static void uniform_destroy(qg_wquant *q)
{
    uniform_priv *p = q->priv;
    if (!p)
        return;
    qg_tensor_free(p->wq);
    qg_tensor_free(p->sw);
    free(p);
}

const qg_wquant_ops qg__wquant_uniform = {
    .name = "uniform", .init = uniform_init, .forward = uniform_forward,
    .backward = uniform_backward, .ste_mask = uniform_mask, .destroy = uniform_destroy};
