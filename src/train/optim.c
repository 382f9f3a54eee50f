/* src/train/optim.c: optimizer steps and LR schedules (see optim.h). */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "ops/layers.h"
#include "train/optim.h"
#include "tensor/tensor_impl.h"

float qg__schedule_lr(const qg_schedule *s, float base, int epoch, long step)
{
    switch (s->kind) {
    case QG_SCHED_MULTISTEP: {
        float lr = base;
        for (int i = 0; i < s->nmilestones; i++)
            if (epoch >= s->milestones[i])
                lr *= s->gamma;
        return lr;
    }
    case QG_SCHED_COSINE:
        if (s->epochs <= 0)
            return base;
        return s->end_lr + (base - s->end_lr) * 0.5f *
                               (1.0f + cosf((float)M_PI * (float)epoch / (float)s->epochs));
    case QG_SCHED_POLY: {
        double total = (double)s->epochs * (double)s->steps_per_epoch;
        double t = (double)epoch * (double)s->steps_per_epoch + (double)step;
        if (total <= 0)
            return base;
        double f = 1.0 - fmin(t, total) / total;
        return (float)((base - s->end_lr) * pow(f, s->power > 0 ? s->power : 1.0) + s->end_lr);
    }
    case QG_SCHED_CONST:
        break;
    }
    return base;
}

int qg__schedule_parse_milestones(qg_schedule *s, const char *list)
{
    s->nmilestones = 0;
    const char *p = list;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || s->nmilestones >= 16)
            return 0;
        s->milestones[s->nmilestones++] = (int)v;
        p = end;
        if (*p == ',')
            p++;
        else if (*p)
            return 0;
    }
    return 1;
}

qg_status qg__optim_ensure_state(qg_model *m, const qg_optim_cfg *cfg)
{
    /* SGD always gets its buffer so the kernel has a valid argument. */
    int nstate = cfg->kind == QG_OPTIM_ADAM ? 2 : 1;
    for (int i = 0; i < m->nparams; i++) {
        qg_param *p = m->params[i];
        if (p->kind == QG_PARAM_BUFFER)
            continue;
        for (int k = 0; k < nstate; k++) {
            if (p->state[k])
                continue;
            qg_status st = qg_tensor_new(m->ctx, p->value->ndim, p->value->shape, QG_DTYPE_F32,
                                         p->name, &p->state[k]);
            if (st != QG_OK)
                return st;
        }
    }
    return QG_OK;
}

qg_status qg__optim_grad_norm(qg_model *m, float *norm)
{
    qg_status st = QG_OK;
    int64_t one[1] = {1};
    int first = 1;
    if (!m->grad_norm_acc)
        QG_TRY(qg_tensor_new(m->ctx, 1, one, QG_DTYPE_F32, "grad_norm", &m->grad_norm_acc));
    qg_tensor *acc = m->grad_norm_acc;
    for (int i = 0; i < m->nparams; i++) {
        /* a buffer with a gradient (a quantizer's effective weights) is not trained */
        if (!m->params[i]->grad || m->params[i]->kind == QG_PARAM_BUFFER)
            continue;
        QG_TRY(qg__sumsq(m->ctx, m->params[i]->grad, acc, !first));
        first = 0;
    }
    float ss = 0;
    QG_TRY(qg_tensor_read(acc, &ss, sizeof ss));
    *norm = sqrtf(ss);
fail:
    return st;
}

static float param_wd(const qg_optim_cfg *cfg, const qg_param *p)
{
    return (cfg->decay_kinds & (1u << p->kind)) ? cfg->weight_decay : 0.0f;
}

/* Every trained parameter's SGD step, four to a launch (ResNet-20 has 65
 * parameters, most of them small: a launch each cost more than the
 * updates); the batches live on the stack, nothing is allocated a step. */
static qg_status sgd_all(qg_model *m, const qg_optim_cfg *cfg, float lr, long t, float scale)
{
    enum { B = 4 };
    qg_tensor *w[B], *b[B];
    const qg_tensor *g[B];
    float wd[B];
    int n = 0;
    qg_status st = QG_OK;
    for (int i = 0; i <= m->nparams && st == QG_OK; i++) {
        if (n == B || (i == m->nparams && n > 0)) {
            st = qg__sgd_step_many(m->ctx, n, w, g, b, wd, lr, cfg->momentum, cfg->nesterov,
                                   t == 1, scale);
            n = 0;
        }
        if (i == m->nparams || m->params[i]->kind == QG_PARAM_BUFFER)
            continue;
        qg_param *p = m->params[i];
        w[n] = p->value;
        g[n] = p->grad;
        b[n] = p->state[0];
        wd[n++] = param_wd(cfg, p);
    }
    if (st != QG_OK)
        qg__error_append(m->ctx, "optimizer step");
    return st;
}

qg_status qg__optim_step(qg_model *m, const qg_optim_cfg *cfg, float lr, long t)
{
    qg_status st = qg__optim_ensure_state(m, cfg);
    if (st != QG_OK)
        return st;
    float scale = 1.0f;
    if (cfg->clip_norm > 0) {
        float norm;
        st = qg__optim_grad_norm(m, &norm);
        if (st != QG_OK)
            return st;
        /* torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6). */
        if (norm > cfg->clip_norm)
            scale = cfg->clip_norm / (norm + 1e-6f);
    }
    if (cfg->kind != QG_OPTIM_ADAM)
        return sgd_all(m, cfg, lr, t, scale);
    for (int i = 0; i < m->nparams && st == QG_OK; i++) {
        qg_param *p = m->params[i];
        if (p->kind == QG_PARAM_BUFFER)
            continue;
        st = qg__adam_step(m->ctx, p->value, p->grad, p->state[0], p->state[1], lr, cfg->beta1,
                           cfg->beta2, cfg->eps, param_wd(cfg, p), (int)t, scale);
        if (st != QG_OK)
            qg__error_append(m->ctx, "optimizer step of '%s'", p->name);
    }
    return st;
}
