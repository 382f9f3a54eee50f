/* src/model/nodes_pq.c: ProQHA's DoReFa weight quantizer and PACT quantizer
 * node (see nodes_pq.h). Tests: tests/test_proqha.c. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/error.h"
#include "model/nodes.h"
#include "model/nodes_pq.h"
#include "model/qbits.h"
#include "quant/quant.h"
#include "tensor/tensor_impl.h"

/* ---- DoReFa weights ------------------------------------------------------ */

typedef struct dorefa_priv {
    int slot;
    qg_tensor *wq, *aux, *ws;
} dorefa_priv;

static qg_status dorefa_init(qg_wquant *q, qg_model *m, const char *layer, const void *cfg)
{
    dorefa_priv *p = calloc(1, sizeof *p);
    qg_status st = QG_OK;
    if (!p)
        return qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
    q->priv = p;
    const qg_tensor *w = q->w->value;
    int64_t wsn[1] = {QG_QUANT_WS_NUMEL};
    p->slot = qg__qbits_add(m, layer, QG_QB_WEIGHT, *(const int *)cfg, -1, qg_tensor_numel(w));
    if (p->slot < 0)
        return QG_ERR_INVALID_ARG;
    QG_TRY(qg_tensor_new(m->ctx, w->ndim, w->shape, QG_DTYPE_F32, "wq", &p->wq));
    QG_TRY(qg__node_scalar(m, QG_DTYPE_F32, "dorefa.aux", &p->aux));
    QG_TRY(qg_tensor_new(m->ctx, 1, wsn, QG_DTYPE_F32, "dorefa.ws", &p->ws));
fail:
    return st;
}

static qg_status dorefa_forward(qg_wquant *q, qg_model *m, int train, const qg_tensor **weff)
{
    dorefa_priv *p = q->priv;
    (void)train;
    int bits = qg__qbits_get(m, p->slot);
    if (bits >= QG_QB_FLOAT) {
        *weff = q->w->value;
        return QG_OK;
    }
    *weff = p->wq;
    return qg__dorefa_fwd(m->ctx, q->w->value, bits, p->aux, p->wq);
}

static qg_status dorefa_backward(qg_wquant *q, qg_model *m, int fused)
{
    dorefa_priv *p = q->priv;
    (void)fused;
    int bits = qg__qbits_get(m, p->slot);
    if (bits >= QG_QB_FLOAT || bits == 1)
        return QG_OK; /* identity (k = 1: STE through the detached mean) */
    /* in place: the max path's partials are summed before the elementwise
     * pass reads and writes each element once */
    return qg__dorefa_bwd(m->ctx, q->w->value, bits, p->aux, q->w->grad, q->w->grad,
                          QG_DOREFA_GRAD_AUTOGRAD, p->ws, 0);
}

static void dorefa_destroy(qg_wquant *q)
{
    dorefa_priv *p = q->priv;
    if (!p)
        return;
    qg_tensor_free(p->wq);
    qg_tensor_free(p->aux);
    qg_tensor_free(p->ws);
    free(p);
}

const qg_wquant_ops qg__wquant_dorefa = {
    .name = "dorefa", .init = dorefa_init, .forward = dorefa_forward,
    .backward = dorefa_backward, .destroy = dorefa_destroy};

/* ---- PACT quantizer ------------------------------------------------------- */

#define IN0(n, m) qg__act((m), (n)->in[0])
#define OUT(n, m) qg__act((m), (n)->out)

typedef struct pq_priv {
    qg_param *alpha;
    int slot;
    qg_tensor *ws;
} pq_priv;

static qg_status pq_setup(qg_node *n, qg_model *m, size_t *ws)
{
    pq_priv *p = n->priv;
    int64_t sh[1] = {QG_QUANT_WS_NUMEL};
    (void)ws;
    if (p->ws)
        return QG_OK;
    return qg_tensor_new(m->ctx, 1, sh, QG_DTYPE_F32, "pact_quant.ws", &p->ws);
}

static qg_status pq_forward(qg_node *n, qg_model *m, int train)
{
    pq_priv *p = n->priv;
    (void)train;
    return qg__pact_quant_fwd(m->ctx, IN0(n, m)->value, p->alpha->value,
                              qg__qbits_get(m, p->slot), OUT(n, m)->value);
}

static qg_status pq_backward(qg_node *n, qg_model *m)
{
    pq_priv *p = n->priv;
    return qg__pact_quant_bwd(m->ctx, IN0(n, m)->value, p->alpha->value,
                              qg__qbits_get(m, p->slot), OUT(n, m)->grad, IN0(n, m)->grad,
                              p->alpha->grad, p->ws, qg__act_grad_begin(m, n->in[0]));
}

static void pq_destroy(qg_node *n)
{
    pq_priv *p = n->priv;
    if (p)
        qg_tensor_free(p->ws);
    free(p);
}

static const qg_node_ops pq_ops = {.type = "pact_quant", .setup = pq_setup,
                                   .forward = pq_forward, .backward = pq_backward,
                                   .destroy = pq_destroy};

int qg__node_pact_quant(qg_model *m, const char *name, int in, int bits)
{
    pq_priv *p = calloc(1, sizeof *p);
    if (!p) {
        qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
        return -1;
    }
    char an[96];
    int64_t one[1] = {1};
    snprintf(an, sizeof an, "%s.alpha", name);
    if (qg__model_add_param(m, an, QG_PARAM_CLIP, 1, one, &p->alpha) != QG_OK ||
        qg__param_init_const(p->alpha, 10.0f) != QG_OK) {
        free(p);
        return -1;
    }
    qg_act *x = qg__act(m, in);
    int out = x->ndim == 4 ? qg__model_add_act(m, (int)x->shape[1], (int)x->shape[2],
                                               (int)x->shape[3])
                           : qg__model_add_act(m, (int)x->shape[1], 0, 0);
    if (out < 0) {
        free(p);
        qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
        return -1;
    }
    p->slot = qg__qbits_add(m, name, QG_QB_ACT, bits, out, 0);
    if (p->slot < 0) {
        free(p);
        return -1;
    }
    if (qg__model_add_node(m, &pq_ops, name, in, -1, out, p) < 0) {
        free(p);
        qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
        return -1;
    }
    return out;
}
