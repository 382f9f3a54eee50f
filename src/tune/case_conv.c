/* src/tune/case_conv.c: the convolution tune case on any shape (see
 * tune/cases.h): forward, then both gradients in one qg__conv_enqueue_bwd
 * call as training runs them, each output checked against
 * src/ref/ref_conv.c.
 * cases.c times it on ResNet-20 shapes; `qgate tune --shapes FILE` on the
 * file's (cases_shapes.c). */
#include "config.h"

#include <math.h>
#include <stdlib.h>

#include "core/error.h"
#include "ops/conv.h"
#include "ref/ref_conv.h"
#include "tune/cases.h"

typedef struct conv_state {
    qg_conv_desc d;
    qg_tensor *x, *w, *dy, *y, *dx, *dw, *ws;
    float *ref_y, *ref_dx, *ref_dw;
    /* Error scales: the rms of each reference (see conv_check). */
    double s_y, s_dx, s_dw;
} conv_state;

void qg__tune_conv_release(void *p)
{
    conv_state *c = p;
    if (!c)
        return;
    qg_tensor *ts[] = {c->x, c->w, c->dy, c->y, c->dx, c->dw, c->ws};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++)
        qg_tensor_free(ts[i]);
    free(c->ref_y);
    free(c->ref_dx);
    free(c->ref_dw);
    free(c);
}

static double rms(const float *v, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)v[i] * v[i];
    return n ? sqrt(s / (double)n) : 0;
}

double qg__tune_conv_flops(const qg_tune_conv_shape *s)
{
    double P = (double)((s->h + 2 * s->pad - s->r) / s->stride + 1);
    double Q = (double)((s->w + 2 * s->pad - s->r) / s->stride + 1);
    return 3 * 2.0 * s->n * s->k * P * Q * s->c * s->r * s->r / (s->groups > 1 ? s->groups : 1);
}

qg_status qg__tune_conv_prepare(qg_ctx *ctx, const qg_tune_conv_shape *s, void **state)
{
    qg_status st = QG_OK;
    float *hx = NULL, *hw = NULL, *hdy = NULL;
    conv_state *c = calloc(1, sizeof *c);
    if (!c)
        return qg__error(ctx, QG_ERR_NOMEM, "out of memory");
    qg_conv_desc *d = &c->d;
    QG_TRY(qg__conv_desc_init(ctx, d, s->n, s->c, s->h, s->w, s->k, s->r, s->r, s->stride,
                              s->pad, s->groups > 1 ? s->groups : 1));
    int64_t xs[4] = {d->N, d->C, d->H, d->W}, wsh[4] = {d->K, d->C / d->groups, d->R, d->S};
    int64_t ys[4] = {d->N, d->K, d->P, d->Q};
    /* (the workspace follows the shape alone, not the parameters) */
    qg_conv_plan *plan = NULL;
    QG_TRY(qg__conv_plan_new(ctx, d, NULL, &plan));
    int64_t wss[1] = {(int64_t)qg__conv_plan_ws_floats(plan)};
    qg__conv_plan_free(plan);
    /* Weights at 0.1 keep y near unit scale for ResNet channel counts. */
    QG_TRY(qg__tune_tensor(ctx, 4, xs, "x", 123, 1.0f, &hx, &c->x));
    QG_TRY(qg__tune_tensor(ctx, 4, wsh, "w", 5, 0.1f, &hw, &c->w));
    QG_TRY(qg__tune_tensor(ctx, 4, ys, "dy", 7, 1.0f, &hdy, &c->dy));
    QG_TRY(qg__tune_tensor(ctx, 4, ys, "y", 0, 0, NULL, &c->y));
    QG_TRY(qg__tune_tensor(ctx, 4, xs, "dx", 0, 0, NULL, &c->dx));
    QG_TRY(qg__tune_tensor(ctx, 4, wsh, "dw", 0, 0, NULL, &c->dw));
    QG_TRY(qg__tune_tensor(ctx, 1, wss, "ws", 0, 0, NULL, &c->ws));
    size_t nx = qg_tensor_numel(c->x), nw = qg_tensor_numel(c->w), ny = qg_tensor_numel(c->y);
    c->ref_y = malloc(ny * sizeof(float));
    c->ref_dx = malloc(nx * sizeof(float));
    c->ref_dw = malloc(nw * sizeof(float));
    if (!c->ref_y || !c->ref_dx || !c->ref_dw) {
        st = qg__error(ctx, QG_ERR_NOMEM, "out of memory for the conv references");
        goto fail;
    }
    qg_ref_conv2d_fwd(d, hx, hw, NULL, c->ref_y);
    qg_ref_conv2d_bwd_data(d, hdy, hw, c->ref_dx);
    qg_ref_conv2d_bwd_weight(d, hx, hdy, c->ref_dw, NULL);
    c->s_y = rms(c->ref_y, ny);
    c->s_dx = rms(c->ref_dx, nx);
    c->s_dw = rms(c->ref_dw, nw);
    free(hx);
    free(hw);
    free(hdy);
    *state = c;
    return QG_OK;
fail:
    free(hx);
    free(hw);
    free(hdy);
    qg__tune_conv_release(c);
    return st;
}

/* A plan per run: it reads the parameters the tuner just set. */
qg_status qg__tune_conv_run(qg_ctx *ctx, void *state)
{
    conv_state *c = state;
    qg_conv_plan *plan = NULL;
    qg_status st = qg__conv_plan_new(ctx, &c->d, NULL, &plan);
    if (st == QG_OK)
        st = qg__conv_enqueue_fwd(plan, c->x, c->w, NULL, c->y, c->ws, NULL);
    if (st == QG_OK)
        st = qg__conv_enqueue_bwd(plan, c->x, c->dy, c->w, c->dx, 0, c->dw, NULL, 0, c->ws,
                                  NULL);
    qg__conv_plan_free(plan);
    return st;
}

/* Errors are relative to |ref| plus the rms of the reference: the weight
 * gradient sums N*P*Q products, so its float rounding grows with that
 * count while single values can sit near zero; a fixed floor would then
 * reject correct candidates on large shapes. A wrong tile or a skipped
 * chunk still errs by about the rms, far above any tolerance. */
qg_status qg__tune_conv_check(qg_ctx *ctx, void *state, double *err)
{
    conv_state *c = state;
    *err = 0;
    qg_status st = qg__tune_check_f32(ctx, c->y, c->ref_y, qg_tensor_numel(c->y), c->s_y, err);
    if (st == QG_OK)
        st = qg__tune_check_f32(ctx, c->dx, c->ref_dx, qg_tensor_numel(c->dx), c->s_dx, err);
    if (st == QG_OK)
        st = qg__tune_check_f32(ctx, c->dw, c->ref_dw, qg_tensor_numel(c->dw), c->s_dw, err);
    return st;
}
