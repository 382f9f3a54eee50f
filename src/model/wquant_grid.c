/* src/model/wquant_grid.c: PSGD's weight quantizer (see wquant.h,
 * docs/methods.md §6). Kernels: src/quant/psgd.h (cl/psgd.cl); tests:
 * tests/test_psgd.c.
 *
 * The scale |w - Q(w)| is not stored: the backward recomputes it from the
 * weights (unchanged since the forward) and the grid step of the last
 * forward, in the same pass that scales the gradient. That is one read of
 * w and one read-modify-write of the gradient, instead of writing a scale
 * tensor in the forward and reading it back. */
#include "config.h"

#include <math.h>
#include <stdlib.h>

#include "core/error.h"
#include "model/wquant.h"
#include "quant/psgd.h"
#include "ref/ref_psgd.h"
#include "tensor/tensor_impl.h"

typedef struct grid_priv {
    qg_wquant_grid_cfg cfg;
    qg_tensor *state;        /* x_min, x_max, delta, seen */
    qg_tensor *wq;           /* Q(w) for low-precision forwards, made when first needed */
    int last_lowp;           /* the last forward computed with Q(w): backward is the STE */
} grid_priv;

static qg_status grid_init(qg_wquant *q, qg_model *m, const char *layer, const void *cfg)
{
    (void)layer;
    grid_priv *p = calloc(1, sizeof *p);
    if (!p)
        return qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
    q->priv = p;
    p->cfg = *(const qg_wquant_grid_cfg *)cfg;
    if (p->cfg.bits < QG_PSGD_MIN_BITS || p->cfg.bits > QG_PSGD_MAX_BITS)
        return qg__error(m->ctx, QG_ERR_INVALID_ARG, "%s: PSGD grid of %d bits (%d..%d)", layer,
                         p->cfg.bits, QG_PSGD_MIN_BITS, QG_PSGD_MAX_BITS);
    int64_t shape[1] = {QG_PSGD_STATE_NUMEL};
    qg_status st = qg_tensor_new(m->ctx, 1, shape, QG_DTYPE_F32, "psgd_range", &p->state);
    return st == QG_OK ? qg_tensor_zero(p->state) : st;
}

static qg_status grid_forward(qg_wquant *q, qg_model *m, int train, const qg_tensor **weff)
{
    grid_priv *p = q->priv;
    int lowp = !train && m->lowp;
    const qg_tensor *w = q->w->value;
    if (lowp && !p->wq) {
        qg_status st = qg_tensor_new(m->ctx, w->ndim, w->shape, QG_DTYPE_F32, "psgd_wq", &p->wq);
        if (st != QG_OK)
            return st;
    }
    p->last_lowp = lowp;
    *weff = lowp ? p->wq : w;
    return qg__psgd_range(m->ctx, w, p->cfg.bits, p->state, lowp ? p->wq : NULL);
}

static qg_status grid_backward(qg_wquant *q, qg_model *m, int fused)
{
    (void)fused;
    grid_priv *p = q->priv;
    if (p->last_lowp)
        return QG_OK;
    return qg__psgd_scale(m->ctx, q->w->value, q->w->grad, p->cfg.bits, p->cfg.lambda_s,
                          p->state);
}

static void grid_destroy(qg_wquant *q)
{
    grid_priv *p = q->priv;
    if (!p)
        return;
    qg_tensor_free(p->state);
    qg_tensor_free(p->wq);
    free(p);
}

const qg_wquant_ops qg__wquant_grid = {
    .name = "psgd_grid", .init = grid_init, .forward = grid_forward,
    .backward = grid_backward, .destroy = grid_destroy, .bias = 1};

qg_status qg__wquant_grid_stats(qg_wquant *q, double *dist, double *delta, int nbins,
                                double *hist)
{
    grid_priv *p = q->priv;
    const qg_tensor *w = q->w->value;
    size_t n = qg_tensor_numel(w);
    float st[QG_PSGD_STATE_NUMEL];
    float *h = malloc((n ? n : 1) * sizeof *h);
    if (!h)
        return qg__error(q->m->ctx, QG_ERR_NOMEM, "out of memory");
    qg_status s = qg_tensor_read(w, h, n * sizeof *h);
    if (s == QG_OK)
        s = qg_tensor_read(p->state, st, sizeof st);
    if (s != QG_OK) {
        free(h);
        return s;
    }
    if (st[3] == 0.0f) { /* no forward yet: the grid of the weights themselves */
        st[0] = st[1] = st[3] = 0.0f;
        qg_ref_psgd_range(n, h, p->cfg.bits, st, NULL);
    }
    double d = st[2], sum = 0;
    for (int b = 0; b < nbins; b++)
        hist[b] = 0;
    for (size_t i = 0; i < n; i++) {
        float qv = qg_ref_psgd_q(h[i], (float)d, p->cfg.bits);
        double pos = d > 0 ? (h[i] - qv) / d : 0;
        sum += fabs(pos);
        if (nbins > 0) {
            int b = (int)floor((pos + 0.5) * nbins);
            b = b < 0 ? 0 : (b >= nbins ? nbins - 1 : b);
            hist[b] += 1;
        }
    }
    for (int b = 0; b < nbins; b++)
        hist[b] = n ? hist[b] / (double)n : 0;
    *dist = n ? sum / (double)n : 0;
    *delta = d;
    free(h);
    return QG_OK;
}
