/* src/model/graph.c: model containers, the activation arena and the
 * forward/backward drivers (see graph.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/fault.h"
#include "core/error.h"
#include "cl/ctx.h"
#include "dist/dist.h"
#include "model/graph.h"
#include "model/qbits.h"
#include "tensor/tensor_impl.h"

static int grow(void **arr, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return 1;
    int nc = *cap ? *cap * 2 : 16;
    while (nc < need)
        nc *= 2;
    void *n = realloc(*arr, (size_t)nc * elem);
    if (!n)
        return 0;
    memset((char *)n + (size_t)*cap * elem, 0, (size_t)(nc - *cap) * elem);
    *arr = n;
    *cap = nc;
    return 1;
}

qg_status qg__model_new(qg_ctx *ctx, const char *arch, int in_c, int in_h, int in_w,
                        int classes, qg_model **out)
{
    *out = NULL;
    qg_model *m = calloc(1, sizeof *m);
    if (!m)
        return qg__error(ctx, QG_ERR_NOMEM, "out of memory creating model");
    m->ctx = ctx;
    snprintf(m->arch, sizeof m->arch, "%s", arch);
    m->in_c = in_c;
    m->in_h = in_h;
    m->in_w = in_w;
    m->classes = classes;
    if (qg__model_add_act(m, in_c, in_h, in_w) != 0) {
        qg__model_free(m);
        return qg__error(ctx, QG_ERR_NOMEM, "out of memory creating model");
    }
    *out = m;
    return QG_OK;
}

static void free_arena(qg_model *m)
{
    for (int i = 0; i < m->nacts; i++) {
        qg_tensor_free(m->acts[i].value);
        qg_tensor_free(m->acts[i].grad);
        m->acts[i].value = m->acts[i].grad = NULL;
    }
    qg_tensor_free(m->workspace);
    m->workspace = NULL;
    if (m->arena) {
        clReleaseMemObject(m->arena);
        qg__ctx_mem(m->ctx, m->arena_floats * sizeof(float), -1);
    }
    m->arena = NULL;
    m->arena_floats = 0;
    m->batch = 0;
}

void qg__model_free(qg_model *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->nnodes; i++)
        if (m->nodes[i].ops->destroy)
            m->nodes[i].ops->destroy(&m->nodes[i]);
    free_arena(m);
    free(m->wquants);
    m->wquants = NULL;
    m->nwquants = 0;
    qg__qbits_free(m);
    qg_tensor_free(m->grad_norm_acc);
    for (int i = 0; i < m->nparams; i++) {
        qg_tensor_free(m->params[i]->value);
        qg_tensor_free(m->params[i]->grad);
        qg_tensor_free(m->params[i]->state[0]);
        qg_tensor_free(m->params[i]->state[1]);
        free(m->params[i]);
    }
    free(m->prof_fwd);
    free(m->prof_bwd);
    free(m->nodes);
    free(m->acts);
    free(m->params);
    free(m->aux);
    free(m->methods);
    free(m);
}

int qg__model_add_act(qg_model *m, int c, int h, int w)
{
    if (!grow((void **)&m->acts, &m->cap_acts, m->nacts + 1, sizeof *m->acts))
        return -1;
    qg_act *a = &m->acts[m->nacts];
    memset(a, 0, sizeof *a);
    if (h > 0) {
        a->ndim = 4;
        a->shape[1] = c;
        a->shape[2] = h;
        a->shape[3] = w;
    } else {
        a->ndim = 2;
        a->shape[1] = c;
    }
    return m->nacts++;
}

int qg__model_add_node(qg_model *m, const qg_node_ops *ops, const char *name, int in0, int in1,
                       int out, void *priv)
{
    if (!grow((void **)&m->nodes, &m->cap_nodes, m->nnodes + 1, sizeof *m->nodes))
        return -1;
    qg_node *n = &m->nodes[m->nnodes];
    n->ops = ops;
    snprintf(n->name, sizeof n->name, "%s", name ? name : "");
    n->in[0] = in0;
    n->in[1] = in1;
    n->out = out;
    n->priv = priv;
    return m->nnodes++;
}

qg_status qg__model_add_param(qg_model *m, const char *name, qg_param_kind kind, int ndim,
                              const int64_t *shape, qg_param **p)
{
    qg_status st = QG_OK;
    *p = NULL;
    if (!grow((void **)&m->params, &m->cap_params, m->nparams + 1, sizeof *m->params))
        return qg__error(m->ctx, QG_ERR_NOMEM, "out of memory adding parameter '%s'", name);
    qg_param *q = calloc(1, sizeof *q);
    if (!q)
        return qg__error(m->ctx, QG_ERR_NOMEM, "out of memory adding parameter '%s'", name);
    snprintf(q->name, sizeof q->name, "%s", name);
    q->kind = kind;
    QG_TRY(qg_tensor_new(m->ctx, ndim, shape, QG_DTYPE_F32, name, &q->value));
    if (kind != QG_PARAM_BUFFER)
        QG_TRY(qg_tensor_new(m->ctx, ndim, shape, QG_DTYPE_F32, name, &q->grad));
    m->params[m->nparams++] = q;
    *p = q;
    return QG_OK;
fail:
    qg_tensor_free(q->value);
    free(q);
    return st;
}

qg_status qg__model_param_resize(qg_model *m, qg_param *p, int ndim, const int64_t *shape)
{
    qg_status st = QG_OK;
    qg_tensor *v = NULL, *g = NULL, *s[2] = {NULL, NULL};
    QG_TRY(qg_tensor_new(m->ctx, ndim, shape, QG_DTYPE_F32, p->name, &v));
    QG_TRY(qg_tensor_zero(v));
    if (p->grad) {
        QG_TRY(qg_tensor_new(m->ctx, ndim, shape, QG_DTYPE_F32, p->name, &g));
        QG_TRY(qg_tensor_zero(g));
    }
    for (int k = 0; k < 2; k++)
        if (p->state[k]) {
            QG_TRY(qg_tensor_new(m->ctx, ndim, shape, QG_DTYPE_F32, p->name, &s[k]));
            QG_TRY(qg_tensor_zero(s[k]));
        }
    qg_tensor_free(p->value);
    qg_tensor_free(p->grad);
    p->value = v;
    p->grad = g;
    for (int k = 0; k < 2; k++) {
        qg_tensor_free(p->state[k]);
        p->state[k] = s[k];
    }
    return QG_OK;
fail:
    qg_tensor_free(v);
    qg_tensor_free(g);
    qg_tensor_free(s[0]);
    qg_tensor_free(s[1]);
    return st;
}

qg_status qg__model_add_wquant(qg_model *m, struct qg_wquant *q)
{
    if (!grow((void **)&m->wquants, &m->cap_wquants, m->nwquants + 1, sizeof *m->wquants))
        return qg__error(m->ctx, QG_ERR_NOMEM, "out of memory adding a weight quantizer");
    m->wquants[m->nwquants++] = q;
    return QG_OK;
}

void qg__model_remove_wquant(qg_model *m, struct qg_wquant *q)
{
    for (int i = 0; i < m->nwquants; i++)
        if (m->wquants[i] == q) {
            memmove(&m->wquants[i], &m->wquants[i + 1],
                    (size_t)(m->nwquants - i - 1) * sizeof *m->wquants);
            m->nwquants--;
            return;
        }
}

qg_status qg__model_reset_optim_state(qg_model *m)
{
    for (int i = 0; i < m->nparams; i++)
        for (int k = 0; k < 2; k++)
            if (m->params[i]->state[k]) {
                qg_status st = qg_tensor_zero(m->params[i]->state[k]);
                if (st != QG_OK)
                    return st;
            }
    return QG_OK;
}

qg_param *qg__model_find_param(qg_model *m, const char *name)
{
    for (int i = 0; i < m->nparams; i++)
        if (strcmp(m->params[i]->name, name) == 0)
            return m->params[i];
    return NULL;
}

static size_t act_numel(const qg_act *a, int batch)
{
    size_t n = (size_t)batch;
    for (int d = 1; d < a->ndim; d++)
        n *= (size_t)a->shape[d];
    return n;
}

qg_status qg__model_setup(qg_model *m, int batch)
{
    qg_status st = QG_OK;
    cl_int e;
    m->active = batch;
    if (m->batch == batch && m->arena)
        return QG_OK;
    if (batch < 1)
        return qg__error(m->ctx, QG_ERR_INVALID_ARG, "batch size must be >= 1 (got %d)", batch);
    free_arena(m);
    size_t ws = 1;
    for (int i = 0; i < m->nacts; i++)
        m->acts[i].shape[0] = batch;
    m->batch = batch;
    for (int i = 0; i < m->nnodes; i++) {
        size_t need = 0;
        if (m->nodes[i].ops->setup) {
            QG_TRY(m->nodes[i].ops->setup(&m->nodes[i], m, &need));
            if (need > ws)
                ws = need;
        }
    }
    /* One arena: every activation value, then the gradients, which share
     * memory where their lifetimes in backward allow (grad_plan.c).
     * Offsets are aligned to 64 floats so views start on cache lines. */
    size_t total = 0;
    size_t *off = calloc((size_t)m->nacts * 3, sizeof *off);
    if (!off)
        return qg__error(m->ctx, QG_ERR_NOMEM, "out of memory sizing the arena");
    size_t *sizes = off + 2 * m->nacts;
    for (int i = 0; i < m->nacts; i++) {
        sizes[i] = (act_numel(&m->acts[i], batch) + 63) / 64 * 64;
        off[i] = total;
        total += sizes[i];
    }
    size_t grads = qg__grad_plan(m, sizes, off + m->nacts);
    if (grads == 0) {
        free(off);
        return qg__error(m->ctx, QG_ERR_NOMEM, "out of memory planning the gradients");
    }
    for (int i = 0; i < m->nacts; i++)
        off[m->nacts + i] += total;
    total += grads;
    if (total > (size_t)0x7fffffff) {
        free(off);
        st = qg__error(m->ctx, QG_ERR_NOMEM, "activation arena of %zu floats for a batch of "
                       "%d exceeds 2^31; use a smaller batch", total, batch);
        goto fail;
    }
    if (qg__fault(QG_FAULT_ALLOC))
        e = CL_MEM_OBJECT_ALLOCATION_FAILURE;
    else
        m->arena = clCreateBuffer(m->ctx->context, CL_MEM_READ_WRITE, total * sizeof(float),
                                  NULL, &e);
    if (e == CL_SUCCESS) {
        m->arena_floats = total;
        qg__ctx_mem(m->ctx, total * sizeof(float), 1);
    }
    if (e != CL_SUCCESS) {
        free(off);
        st = qg__error(m->ctx, QG_ERR_CL, "clCreateBuffer(%zu MiB) for the activation arena "
                       "(batch %d) failed with %s on device '%s'", (total * 4) >> 20, batch,
                       qg_cl_error_name(e), m->ctx->info.name);
        goto fail;
    }
    for (int i = 0; i < m->nacts && st == QG_OK; i++) {
        qg_act *a = &m->acts[i];
        st = qg__tensor_wrap(m->ctx, m->arena, off[i], a->ndim, a->shape, QG_DTYPE_F32, "act",
                             &a->value);
        if (st == QG_OK)
            st = qg__tensor_wrap(m->ctx, m->arena, off[m->nacts + i], a->ndim, a->shape,
                                 QG_DTYPE_F32, "grad", &a->grad);
    }
    free(off);
    if (st != QG_OK)
        goto fail;
    int64_t wshape[1] = {(int64_t)ws};
    QG_TRY(qg_tensor_new(m->ctx, 1, wshape, QG_DTYPE_F32, "workspace", &m->workspace));
    QG_TRY(qg__nodes_link_eval_folds(m));
    return QG_OK;
fail:
    free_arena(m);
    return st;
}

qg_tensor *qg__model_input(qg_model *m) { return m->acts[0].value; }
qg_tensor *qg__model_logits(qg_model *m) { return m->acts[m->nacts - 1].value; }
qg_tensor *qg__model_logits_grad(qg_model *m) { return m->acts[m->nacts - 1].grad; }

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

qg_status qg__model_profile_enable(qg_model *m)
{
    if (!m->prof_fwd) {
        m->prof_fwd = calloc((size_t)m->nnodes, sizeof *m->prof_fwd);
        m->prof_bwd = calloc((size_t)m->nnodes, sizeof *m->prof_bwd);
        if (!m->prof_fwd || !m->prof_bwd)
            return qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
    }
    return QG_OK;
}

static qg_status timed(qg_model *m, double *slot, double t0)
{
    if (!slot)
        return QG_OK;
    cl_int e = clFinish(m->ctx->queue);
    if (e != CL_SUCCESS)
        return qg__cl_error(m->ctx, e, "clFinish", __FILE__, __LINE__);
    *slot += now_s() - t0;
    return QG_OK;
}

void qg__model_freeze(qg_model *m, int on)
{
    m->frozen = on != 0;
    if (on)
        m->freeze_epoch++;
}

qg_status qg__model_forward(qg_model *m, int train)
{
    if (!m->arena)
        return qg__error(m->ctx, QG_ERR_INVALID_ARG, "model forward before setup");
    m->train_mode = train;
    if (train)
        m->frozen = 0; /* batch-norm statistics move */
    for (int i = 0; i < m->nnodes; i++) {
        qg_node *n = &m->nodes[i];
        double t0 = now_s();
        qg_status st = n->ops->forward(n, m, train);
        if (st == QG_OK)
            st = timed(m, m->prof_fwd ? &m->prof_fwd[i] : NULL, t0);
        if (st != QG_OK) {
            qg__error_append(m->ctx, "in forward of %s '%s'", n->ops->type, n->name);
            return st;
        }
    }
    return QG_OK;
}

int qg__act_grad_begin(qg_model *m, int id)
{
    int acc = m->acts[id].grad_written;
    m->acts[id].grad_written = 1;
    return acc;
}

qg_status qg__model_backward(qg_model *m)
{
    for (int i = 0; i < m->nacts; i++)
        m->acts[i].grad_written = 0;
    /* Thresholds and PACT clips are shared or reduced by several kernels
     * that add into their gradients, so those start from zero. */
    for (int i = 0; i < m->nparams; i++)
        if (m->params[i]->kind == QG_PARAM_GATE || m->params[i]->kind == QG_PARAM_CLIP) {
            qg_status st = qg_tensor_zero(m->params[i]->grad);
            if (st != QG_OK)
                return st;
        }
    m->acts[m->nacts - 1].grad_written = 1;
    for (int i = m->nnodes - 1; i >= 0; i--) {
        qg_node *n = &m->nodes[i];
        double t0 = now_s();
        qg_status st = n->ops->backward(n, m);
        if (st == QG_OK)
            st = timed(m, m->prof_bwd ? &m->prof_bwd[i] : NULL, t0);
        if (st != QG_OK) {
            qg__error_append(m->ctx, "in backward of %s '%s'", n->ops->type, n->name);
            return st;
        }
    }
    return QG_OK;
}

size_t qg__model_param_count(const qg_model *m)
{
    size_t n = 0;
    for (int i = 0; i < m->nparams; i++)
        if (m->params[i]->kind != QG_PARAM_BUFFER)
            n += qg_tensor_numel(m->params[i]->value);
    return n;
}

qg_status qg__model_add_aux_loss(qg_model *m, const char *name, qg_aux_loss_fn fn, int node,
                                 void *user)
{
    if (!grow((void **)&m->aux, &m->cap_aux, m->naux + 1, sizeof *m->aux))
        return qg__error(m->ctx, QG_ERR_NOMEM, "out of memory adding loss term '%s'", name);
    qg_aux_loss *a = &m->aux[m->naux++];
    snprintf(a->name, sizeof a->name, "%s", name);
    a->fn = fn;
    a->node = node;
    a->user = user;
    return QG_OK;
}

qg_status qg__model_aux_loss(qg_model *m, qg_tensor *loss)
{
    qg_status st = qg_tensor_zero(loss);
    for (int i = 0; i < m->naux && st == QG_OK; i++) {
        const qg_aux_loss *a = &m->aux[i];
        st = a->fn(a->node >= 0 ? &m->nodes[a->node] : NULL, m, a->user, loss);
        if (st != QG_OK)
            qg__error_append(m->ctx, "loss term '%s'", a->name);
    }
    return st;
}

qg_status qg__node_gate_counts(qg_node *n, qg_model *m, long long *total, long long *on)
{
    qg_status st = n->ops->gate_counts(n, m, total, on);
    if (st != QG_OK || !m->ctx->dist_counts)
        return st;
    double v[2] = {(double)*total, (double)*on}; /* exact below 2^53 */
    st = qg__dist_sum_d(v, 2);
    *total = (long long)v[0];
    *on = (long long)v[1];
    return st;
}

qg_status qg__model_gate_stats(qg_model *m, long long *total, long long *on, int *ngated,
                               const char **names, long long *node_total, long long *node_on)
{
    *total = *on = 0;
    int k = 0;
    for (int i = 0; i < m->nnodes; i++) {
        qg_node *n = &m->nodes[i];
        if (!n->ops->gate_counts)
            continue;
        long long t, o;
        qg_status st = qg__node_gate_counts(n, m, &t, &o);
        if (st != QG_OK)
            return st;
        *total += t;
        *on += o;
        if (names)
            names[k] = n->name;
        if (node_total)
            node_total[k] = t;
        if (node_on)
            node_on[k] = o;
        k++;
    }
    if (ngated)
        *ngated = k;
    return QG_OK;
}

qg_status qg__model_gate_reset(qg_model *m)
{
    for (int i = 0; i < m->nnodes; i++)
        if (m->nodes[i].ops->gate_reset) {
            qg_status st = m->nodes[i].ops->gate_reset(&m->nodes[i], m);
            if (st != QG_OK)
                return st;
        }
    return QG_OK;
}
