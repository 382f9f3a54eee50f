/* src/model/nodes_qact.c: BSQ's activation quantizer node (docs/methods.md
 * §7.5): y = Q_a(min(x, cap)) with Q_a(v) = S*rint(|v|(2^a-1)/S)/(2^a-1)*
 * sign(v), S = max|v| over the whole batch tensor (0 when S = 0), and an
 * identity backward through the rounding. cap > 0 makes the ReLU before it
 * a ReLU6 (gradient where x <= cap); cap 0: no clip. Kernels:
 * src/quant/quant.h (quantizer with the whole tensor's scale, PACT clip
 * with a fixed alpha). Tests: tests/test_bsq_model.c. */
#include "config.h"

#include <stdlib.h>

#include "core/error.h"
#include "model/nodes.h"
#include "model/wquant_bsq.h"
#include "quant/quant.h"

#define IN0(n, m) qg__act((m), (n)->in[0])
#define OUT(n, m) qg__act((m), (n)->out)

typedef struct qact_priv {
    int bits;
    float cap;
    qg_tensor *s, *capv, *dcap, *ws;
    qg_tensor *tmp;          /* min(x, cap), per batch; NULL without cap */
} qact_priv;

static qg_status qact_setup(qg_node *n, qg_model *m, size_t *ws)
{
    qact_priv *p = n->priv;
    (void)ws;
    return p->cap > 0 ? qg__node_tensor_like(m, IN0(n, m), "qact.tmp", &p->tmp) : QG_OK;
}

static qg_status qact_forward(qg_node *n, qg_model *m, int train)
{
    qact_priv *p = n->priv;
    (void)train;
    const qg_tensor *src = IN0(n, m)->value;
    if (p->cap > 0) {
        qg_status st = qg__pact_fwd(m->ctx, src, p->capv, p->tmp);
        if (st != QG_OK)
            return st;
        src = p->tmp;
    }
    return qg__quant_fwd(m->ctx, src, p->bits, QG_QSCALE_TF_TENSOR, p->s, OUT(n, m)->value);
}

static qg_status qact_backward(qg_node *n, qg_model *m)
{
    qact_priv *p = n->priv;
    int acc = qg__act_grad_begin(m, n->in[0]);
    if (p->cap > 0)
        return qg__pact_bwd(m->ctx, IN0(n, m)->value, p->capv, OUT(n, m)->grad,
                            IN0(n, m)->grad, p->dcap, QG_PACT_BSQ, p->ws, acc);
    return qg__quant_ste_bwd(m->ctx, IN0(n, m)->value, OUT(n, m)->grad, IN0(n, m)->grad,
                             QG_STE_IDENTITY, acc);
}

static void qact_destroy(qg_node *n)
{
    qact_priv *p = n->priv;
    if (p) {
        qg_tensor_free(p->s);
        qg_tensor_free(p->capv);
        qg_tensor_free(p->dcap);
        qg_tensor_free(p->ws);
        qg_tensor_free(p->tmp);
    }
    free(p);
}

static const qg_node_ops qact_ops = {.type = "bsq_qact", .setup = qact_setup,
                                     .forward = qact_forward, .backward = qact_backward,
                                     .destroy = qact_destroy};

int qg__node_bsq_qact(qg_model *m, const char *name, int in, int bits, float cap)
{
    qact_priv *p = calloc(1, sizeof *p);
    if (!p) {
        qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
        return -1;
    }
    p->bits = bits;
    p->cap = cap;
    int64_t one[1] = {1}, wsn[1] = {QG_QUANT_WS_NUMEL};
    qg_status st = qg_tensor_new(m->ctx, 1, one, QG_DTYPE_F32, "qact.s", &p->s);
    if (st == QG_OK && cap > 0) {
        st = qg_tensor_new(m->ctx, 1, one, QG_DTYPE_F32, "qact.cap", &p->capv);
        if (st == QG_OK)
            st = qg_tensor_write(p->capv, &cap, sizeof cap);
        if (st == QG_OK)
            st = qg_tensor_new(m->ctx, 1, one, QG_DTYPE_F32, "qact.dcap", &p->dcap);
        if (st == QG_OK)
            st = qg_tensor_new(m->ctx, 1, wsn, QG_DTYPE_F32, "qact.ws", &p->ws);
    }
    qg_act *x = qg__act(m, in);
    int out = -1;
    if (st == QG_OK)
        out = x->ndim == 4 ? qg__model_add_act(m, (int)x->shape[1], (int)x->shape[2],
                                              (int)x->shape[3])
                           : qg__model_add_act(m, (int)x->shape[1], 0, 0);
    if (out < 0 || qg__model_add_node(m, &qact_ops, name, in, -1, out, p) < 0) {
        qg_node tmp = {.priv = p};
        qact_destroy(&tmp);
        qg__error(m->ctx, st != QG_OK ? st : QG_ERR_NOMEM, "%s: cannot add the activation "
                  "quantizer (out of memory)", name);
        return -1;
    }
    return out;
}
