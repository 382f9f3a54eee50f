/* src/model/nodes_dropout.c: the dropout node (see nodes.h). Kernels:
 * cl/eltwise.cl qg_eltwise_dropout_* (src/ops/eltwise.h); C twins in
 * src/ref/ref_eltwise.c; tests: tests/test_vgg.c. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/nodes.h"
#include "ops/eltwise.h"

#define IN0(n, m) qg__act((m), (n)->in[0])
#define OUT(n, m) qg__act((m), (n)->out)

typedef struct dropout_priv {
    float p;
    uint64_t seed;           /* from the builder's (the run's) generator */
    uint64_t count;          /* training forwards so far */
    uint64_t key;            /* the last training forward's mask */
    int hold;                /* tests: every forward uses `key` */
} dropout_priv;

static qg_status dropout_forward(qg_node *n, qg_model *m, int train)
{
    dropout_priv *p = n->priv;
    if (!train)
        return qg__eltwise_axpby(m->ctx, 1.0f, IN0(n, m)->value, 0.0f, OUT(n, m)->value);
    if (!p->hold) {
        p->count++;
        qg_rng r = {p->seed + p->count * 0xD1B54A32D192ED03ULL};
        p->key = qg__rng_u64(&r);
    }
    return qg__dropout_fwd(m->ctx, IN0(n, m)->value, OUT(n, m)->value, p->p, p->key);
}

static qg_status dropout_backward(qg_node *n, qg_model *m)
{
    dropout_priv *p = n->priv;
    return qg__dropout_bwd(m->ctx, OUT(n, m)->grad, IN0(n, m)->grad, p->p, p->key,
                           qg__act_grad_begin(m, n->in[0]));
}

static void dropout_destroy(qg_node *n)
{
    free(n->priv);
    n->priv = NULL;
}

static const qg_node_ops dropout_ops = {.type = "dropout", .forward = dropout_forward,
                                        .backward = dropout_backward,
                                        .destroy = dropout_destroy};

int qg__node_dropout(qg_model *m, const char *name, int in, float p, qg_rng *rng)
{
    if (!(p >= 0.0f && p < 1.0f)) {
        qg__error(m->ctx, QG_ERR_INVALID_ARG, "%s: dropout probability %g is outside [0, 1)",
                  name, p);
        return -1;
    }
    qg_act *x = qg__act(m, in);
    dropout_priv *d = calloc(1, sizeof *d);
    if (!d) {
        qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
        return -1;
    }
    d->p = p;
    d->seed = qg__rng_u64(rng);
    int out = x->ndim == 2 ? qg__model_add_act(m, (int)x->shape[1], 0, 0)
                           : qg__model_add_act(m, (int)x->shape[1], (int)x->shape[2],
                                               (int)x->shape[3]);
    if (out < 0 || qg__model_add_node(m, &dropout_ops, name, in, -1, out, d) < 0) {
        free(d);
        qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
        return -1;
    }
    return out;
}

qg_status qg__node_dropout_hold(qg_model *m, const char *name, uint64_t key)
{
    for (int i = 0; i < m->nnodes; i++)
        if (m->nodes[i].ops == &dropout_ops && strcmp(m->nodes[i].name, name) == 0) {
            dropout_priv *p = m->nodes[i].priv;
            p->key = key;
            p->hold = 1;
            return QG_OK;
        }
    return qg__error(m->ctx, QG_ERR_INVALID_ARG, "no dropout node named '%s'", name);
}
