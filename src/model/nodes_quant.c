/* src/model/nodes_quant.c: PACT, QuantizedConv2d and PGConv2d nodes (see
 * nodes_quant.h). The reference (dnn-gating utils/pg_utils.py) computes the LSB
 * conv densely and masks it; so does this first version, so Y, the
 * gradients and the counters match it; skipping gated-off work is the
 * speed roadmap's job (docs/methods.md §2.9). */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "cl/ctx.h"
#include "ops/bn_sync.h"
#include "model/nodes.h"
#include "model/nodes_quant.h"
#include "cg/cg.h"
#include "ops/conv.h"
#include "ops/conv_masked.h"
#include "quant/quant.h"
#include "tensor/tensor_impl.h"

#define IN0(n, m) qg__act((m), (n)->in[0])
#define OUT(n, m) qg__act((m), (n)->out)

/* ---- PACT ---------------------------------------------------------------- */

typedef struct pact_priv {
    qg_param *alpha;
    qg_tensor *ws;
    int mode;                /* qg_pact_mode */
} pact_priv;

static qg_status pact_setup(qg_node *n, qg_model *m, size_t *ws)
{
    pact_priv *p = n->priv;
    int64_t sh[1] = {QG_QUANT_WS_NUMEL};
    if (p->ws)
        return QG_OK;
    return qg_tensor_new(m->ctx, 1, sh, QG_DTYPE_F32, "pact.ws", &p->ws);
}

static qg_status pact_forward(qg_node *n, qg_model *m, int train)
{
    pact_priv *p = n->priv;
    return qg__pact_fwd(m->ctx, IN0(n, m)->value, p->alpha->value, OUT(n, m)->value);
}

static qg_status pact_backward(qg_node *n, qg_model *m)
{
    pact_priv *p = n->priv;
    return qg__pact_bwd(m->ctx, IN0(n, m)->value, p->alpha->value, OUT(n, m)->grad,
                        IN0(n, m)->grad, p->alpha->grad, (qg_pact_mode)p->mode, p->ws,
                        qg__act_grad_begin(m, n->in[0]));
}

static void pact_destroy(qg_node *n)
{
    pact_priv *p = n->priv;
    if (p)
        qg_tensor_free(p->ws);
    free(p);
}

static const qg_node_ops pact_ops = {.type = "pact", .setup = pact_setup,
                                     .forward = pact_forward, .backward = pact_backward,
                                     .destroy = pact_destroy};

int qg__node_pact(qg_model *m, const char *name, int in, const char *alpha_name)
{
    return qg__node_pact_mode(m, name, in, alpha_name, QG_PACT_PG);
}

int qg__node_pact_mode(qg_model *m, const char *name, int in, const char *alpha_name,
                       int mode)
{
    if (mode != QG_PACT_PG && mode != QG_PACT_TF && mode != QG_PACT_BSQ) {
        qg__error(m->ctx, QG_ERR_INVALID_ARG, "%s: unknown PACT mode %d", name, mode);
        return -1;
    }
    pact_priv *p = calloc(1, sizeof *p);
    if (!p) {
        qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
        return -1;
    }
    p->mode = mode;
    p->alpha = qg__model_find_param(m, alpha_name);
    if (!p->alpha) {
        int64_t one[1] = {1};
        if (qg__model_add_param(m, alpha_name, QG_PARAM_CLIP, 1, one, &p->alpha) != QG_OK ||
            qg__param_init_const(p->alpha, 6.0f) != QG_OK) {
            free(p);
            return -1;
        }
    }
    qg_act *x = qg__act(m, in);
    int out = x->ndim == 4 ? qg__model_add_act(m, (int)x->shape[1], (int)x->shape[2],
                                               (int)x->shape[3])
                           : qg__model_add_act(m, (int)x->shape[1], 0, 0);
    if (out < 0 || qg__model_add_node(m, &pact_ops, name, in, -1, out, p) < 0) {
        free(p);
        qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
        return -1;
    }
    return out;
}

/* ---- activation quantizer (PG-TF, per-sample scale) ------------------------ */

typedef struct aquant_priv {
    int bits;
    qg_tensor *s;            /* [batch] scales */
} aquant_priv;

/* A [batch] F32 tensor for per-sample scales (reallocated per batch size). */
static qg_status sample_scales(qg_model *m, const char *name, qg_tensor **t)
{
    int64_t sh[1] = {m->batch > 0 ? m->batch : 1};
    if (*t && (*t)->shape[0] == sh[0])
        return QG_OK;
    qg_tensor_free(*t);
    *t = NULL;
    return qg_tensor_new(m->ctx, 1, sh, QG_DTYPE_F32, name, t);
}

static qg_status aquant_setup(qg_node *n, qg_model *m, size_t *ws)
{
    return sample_scales(m, "aquant.s", &((aquant_priv *)n->priv)->s);
}

static qg_status aquant_forward(qg_node *n, qg_model *m, int train)
{
    aquant_priv *p = n->priv;
    qg_status st = QG_OK;
    QG_TRY(qg__quant_scale(m->ctx, IN0(n, m)->value, QG_QSCALE_TF_SAMPLE, p->s));
    QG_TRY(qg__quant_apply(m->ctx, IN0(n, m)->value, p->s, p->bits, 0, OUT(n, m)->value, NULL,
                           NULL, NULL));
fail:
    return st;
}

static qg_status aquant_backward(qg_node *n, qg_model *m)
{
    return qg__quant_ste_bwd(m->ctx, IN0(n, m)->value, OUT(n, m)->grad, IN0(n, m)->grad,
                             QG_STE_NONZERO, qg__act_grad_begin(m, n->in[0]));
}

static void aquant_destroy(qg_node *n)
{
    aquant_priv *p = n->priv;
    if (p)
        qg_tensor_free(p->s);
    free(p);
}

static const qg_node_ops aquant_ops = {.type = "aquant", .setup = aquant_setup,
                                       .forward = aquant_forward, .backward = aquant_backward,
                                       .destroy = aquant_destroy};

int qg__node_aquant(qg_model *m, const char *name, int in, int bits)
{
    if (bits < 2 || bits > 16) {
        qg__error(m->ctx, QG_ERR_INVALID_ARG, "%s: %d activation bits (2..16)", name, bits);
        return -1;
    }
    aquant_priv *p = calloc(1, sizeof *p);
    if (!p) {
        qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
        return -1;
    }
    p->bits = bits;
    qg_act *x = qg__act(m, in);
    int out = x->ndim == 4 ? qg__model_add_act(m, (int)x->shape[1], (int)x->shape[2],
                                               (int)x->shape[3])
                           : qg__model_add_act(m, (int)x->shape[1], 0, 0);
    if (out < 0 || qg__model_add_node(m, &aquant_ops, name, in, -1, out, p) < 0) {
        free(p);
        qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
        return -1;
    }
    return out;
}

/* ---- quantized and PG convolutions --------------------------------------- */

typedef struct qconv_priv {
    int pg;                  /* PGConv2d */
    int cout, k, stride, pad;
    qg_pg_cfg cfg;
    qg_conv_desc d;
    qg_conv_plan *plan;      /* made in setup, for this batch size */
    qg_param *w, *delta;
    int tf;                  /* cfg.style == QG_PG_TF: float weights, per-sample
                                scales; PG: xlsb holds X (the whole quantized
                                input), omsb/olsb h_hb/h_full, dmsb/dlsb their
                                gradients */
    qg_wquant *wquant;       /* the weights' quantizer (uniform at cfg.wbits; NULL tf) */
    const qg_tensor *wq;     /* the weights the last forward computed with */
    qg_tensor *sx;
    qg_tensor *xq, *xlsb;    /* input sized: quantized (or MSB) and LSB parts; xq
                                created where the conv cannot quantize its input
                                itself (always with PG) */
    int xq_fresh;            /* xq holds this step's quantized input */
    int sx_fresh;            /* the BN before wrote this step's scale into sx */
    int ste_in_bn;           /* the BN before applies the input STE (x != 0) */
    qg_tensor *dxq;          /* input sized: gradient before the STE mask, where
                                the conv cannot mask its store (else NULL) */
    qg_tensor *omsb, *olsb, *dmsb, *dlsb;   /* output sized (PG only) */
    qg_tensor *keep;         /* xq's planes from the training forward, or NULL */
    int keep_asked;          /* the shape was asked whether it can keep them */
    int kept;                /* keep holds this step's planes */
    qg_gate_counter gc;      /* outputs gated / updated in full precision */
    /* PG inference skipping (docs/gate_skipping.md): the LSB conv on the
     * tiles where the gate may be on only, where the masked conv pays */
    qg_convm *cm;            /* NULL: dense LSB conv */
    qg_tensor *gmask;        /* output sized */
} qconv_priv;

static qg_status qconv_setup(qg_node *n, qg_model *m, size_t *ws)
{
    qconv_priv *p = n->priv;
    qg_status st = QG_OK;
    qg_act *x = IN0(n, m), *y = OUT(n, m);
    QG_TRY(qg__conv_desc_init(m->ctx, &p->d, m->batch, (int)x->shape[1], (int)x->shape[2],
                              (int)x->shape[3], p->cout, p->k, p->k, p->stride, p->pad, 1));
    /* (PG splits x in two before its convs: none quantizes x itself; nor
     * can a conv apply TF's per-sample scales) */
    qg_conv_opts co = {.quant_bits = p->pg || p->tf ? 0 : p->cfg.abits};
    qg__conv_plan_free(p->plan);
    p->plan = NULL;
    QG_TRY(qg__conv_plan_new(m->ctx, &p->d, &co, &p->plan));
    *ws = qg__conv_plan_ws_floats(p->plan);
    if (p->tf) {
        /* one scale per sample, computed by the node (a BN reports only
         * the whole tensor's max) */
        QG_TRY(sample_scales(m, "sx", &p->sx));
        p->sx_fresh = 0;
    } else {
        QG_TRY(qg__node_scalar(m, QG_DTYPE_F32, "sx", &p->sx));
        /* the scale from the pass that writes x, where a BN does */
        qg__node_bn_offer_ymax(m, n->in[0], p->sx, &p->sx_fresh);
    }
    /* and the input's STE in its backward mask, where x is ours alone */
    p->ste_in_bn = qg__quant_ste(p->cfg.abits) == QG_STE_NONZERO &&
                   qg__node_bn_take_ste(m, n->in[0]);
    /* xq and dxq only where the conv path needs them (created then) */
    qg_tensor_free(p->xq);
    qg_tensor_free(p->dxq);
    p->xq = p->dxq = NULL;
    p->xq_fresh = 0;
    qg_tensor_free(p->keep);
    p->keep = NULL;
    p->keep_asked = p->kept = 0;
    if (p->pg) {
        QG_TRY(qg__node_tensor_like(m, x, "xq", &p->xq));
        QG_TRY(qg__node_tensor_like(m, x, "xlsb", &p->xlsb));
        QG_TRY(qg__node_tensor_like(m, y, "omsb", &p->omsb));
        QG_TRY(qg__node_tensor_like(m, y, "olsb", &p->olsb));
        QG_TRY(qg__node_tensor_like(m, y, "dmsb", &p->dmsb));
        QG_TRY(qg__node_tensor_like(m, y, "dlsb", &p->dlsb));
        QG_TRY(qg__node_scalar(m, QG_DTYPE_I32, "count", &p->gc.count));
        qg__convm_free(p->cm);
        p->cm = NULL;
        if (!p->tf && qg__convm_takes(&p->d)) {
            QG_TRY(qg__convm_new(m->ctx, &p->d, &p->cm));
            if (!qg__convm_pays(p->cm)) {
                qg__convm_free(p->cm);
                p->cm = NULL;
            }
        }
        if (p->cm)
            QG_TRY(qg__node_tensor_like(m, y, "gmask", &p->gmask));
    }
fail:
    return st;
}

/* olsb = conv(xlsb, wq) where the gate may be on (5*(omsb - delta) >=
 * -1e-5, a superset of sigmoid(...) > 0.5), 0 elsewhere: inference only
 * (the training backward reads olsb everywhere for the gate's gradient).
 * qg__convm_should_skip's measured rule keeps the dense conv where
 * skipping does not pay. Returns 0 (doing nothing) where it does not
 * skip. */
static int pg_lsb_skip(qconv_priv *p, qg_model *m, int train, qg_status *st)
{
    *st = QG_OK;
    if (!p->cm || train || m->dense_gates || !qg__convm_should_skip(p->cm))
        return 0;
    *st = qg__cg_gate_mask(m->ctx, p->omsb, p->delta->value, 5.0f, p->gmask);
    if (*st == QG_OK)
        *st = qg__convm_fwd(p->cm, p->xlsb, p->wq, p->gmask, p->olsb);
    if (*st == QG_OK)
        *st = qg__convm_after_skip(p->cm);
    return 1;
}

/* xq = the input quantized by this step's scale sx, unless already there. */
static qg_status xq_store(qconv_priv *p, qg_node *n, qg_model *m)
{
    qg_status st = QG_OK;
    if (p->xq_fresh)
        return QG_OK;
    if (!p->xq)
        QG_TRY(qg__node_tensor_like(m, IN0(n, m), "xq", &p->xq));
    QG_TRY(qg__quant_apply(m->ctx, IN0(n, m)->value, p->sx, p->cfg.abits, 0, p->xq, NULL, NULL,
                           NULL));
    p->xq_fresh = 1;
fail:
    return st;
}

static qg_status qconv_forward(qg_node *n, qg_model *m, int train)
{
    qconv_priv *p = n->priv;
    qg_status st = QG_OK;
    /* a partial batch: the scale and the gate counters see its real rows
     * only, never the stale ones of the previous batch (NULL: all rows) */
    qg_tensor *xr = NULL, *mr = NULL, *lr = NULL, *yr = NULL;
    p->wq = p->w->value; /* float weights unless a quantizer replaces them */
    QG_TRY(qg__wquant_forward(p->wquant, m, train, &p->wq));
    const qg_tensor *x = IN0(n, m)->value;
    if (train)
        QG_TRY(qg__node_keep_planes(m, p->plan, &p->keep, &p->keep_asked));
    p->kept = train && p->keep;
    p->xq_fresh = 0;
    qg_tensor *keep = p->kept ? p->keep : NULL;
    if (!p->sx_fresh) {
        QG_TRY(qg__node_rows_view(m, IN0(n, m)->value, &xr));
        QG_TRY(qg__quant_scale(m->ctx, xr ? xr : x,
                               p->tf ? QG_QSCALE_TF_SAMPLE : QG_QSCALE_PG, p->sx));
    }
    p->sx_fresh = 0;
    if (train) /* --sync-bn: the global batch's range (no-op otherwise) */
        QG_TRY(qg__sync_max(m->ctx, p->sx));
    if (!p->pg) {
        /* The conv rounds x as it prepares it where its plan can, so no
         * quantized copy is stored, where the backward will not need one:
         * its weight gradient reads the kept (quantized) planes. */
        if ((qg__conv_plan_caps(p->plan) & QG_CONV_CAP_FUSED_QUANT) && (!train || p->kept)) {
            st = qg__conv_enqueue_fwd_quant(p->plan, x, p->sx, p->wq, OUT(n, m)->value,
                                            m->workspace, keep);
            goto fail;
        }
        QG_TRY(xq_store(p, n, m));
        st = qg__conv_enqueue_fwd(p->plan, p->xq, p->wq, NULL, OUT(n, m)->value, m->workspace,
                                  keep);
        goto fail;
    }
    if (p->tf) {
        /* PG-TF (docs/methods.md §3.4): X and its truncation from one pass
         * (re-quantizing X, as the reference does, finds the same scale
         * and codes); h_hb = conv(X_msb, W), h_full = conv(X, W). */
        QG_TRY(qg__quant_apply(m->ctx, x, p->sx, p->cfg.abits, p->cfg.pred_bits, p->xlsb,
                               p->xq, NULL, NULL));
        p->xq_fresh = 1;
        QG_TRY(qg__conv_enqueue_fwd(p->plan, p->xq, p->wq, NULL, p->omsb, m->workspace, keep));
        QG_TRY(qg__conv_enqueue_fwd(p->plan, p->xlsb, p->wq, NULL, p->olsb, m->workspace,
                                    NULL));
        QG_TRY(qg__node_rows_view(m, p->omsb, &mr));
        QG_TRY(qg__node_rows_view(m, p->olsb, &lr));
        QG_TRY(qg__node_rows_view(m, OUT(n, m)->value, &yr));
        QG_TRY(qg__pgtf_gate_fwd(m->ctx, mr ? mr : p->omsb, p->delta->value, lr ? lr : p->olsb,
                                 yr ? yr : OUT(n, m)->value, p->gc.count));
        p->gc.outputs += (long long)qg_tensor_numel(yr ? yr : OUT(n, m)->value);
        goto fail;
    }
    /* PG: MSB and LSB parts from one pass with one scale (docs/methods.md §2.2). */
    QG_TRY(qg__quant_apply(m->ctx, x, p->sx, p->cfg.abits, p->cfg.pred_bits, NULL, p->xq,
                           p->xlsb, NULL));
    p->xq_fresh = 1;
    QG_TRY(qg__conv_enqueue_fwd(p->plan, p->xq, p->wq, NULL, p->omsb, m->workspace, keep));
    if (!pg_lsb_skip(p, m, train, &st))
        QG_TRY(qg__conv_enqueue_fwd(p->plan, p->xlsb, p->wq, NULL, p->olsb, m->workspace,
                                    NULL));
    QG_TRY(st);
    QG_TRY(qg__node_rows_view(m, p->omsb, &mr));
    QG_TRY(qg__node_rows_view(m, p->olsb, &lr));
    QG_TRY(qg__node_rows_view(m, OUT(n, m)->value, &yr));
    QG_TRY(qg__pg_gate_fwd(m->ctx, mr ? mr : p->omsb, p->delta->value, lr ? lr : p->olsb, 5.0f,
                           yr ? yr : OUT(n, m)->value, p->gc.count));
    p->gc.outputs += (long long)qg_tensor_numel(yr ? yr : OUT(n, m)->value);
fail:
    qg_tensor_free(xr);
    qg_tensor_free(mr);
    qg_tensor_free(lr);
    qg_tensor_free(yr);
    return st;
}

/* PG-TF backward (docs/methods.md §3.4), the reference's chain rule:
 *   dW = corr(X_msb, d_hb) + corr(X, d_full)
 *   dx = [X != 0]*conv_T(d_hb, W) + [x != 0]*conv_T(d_full, W)
 * ([X != 0] is the STE of re-quantizing X; it implies x != 0, so a BN
 * that applies [x != 0] for us leaves the first term right). */
static qg_status pgtf_backward(qconv_priv *p, qg_node *n, qg_model *m)
{
    qg_status st = QG_OK;
    QG_TRY(qg__pgtf_gate_bwd(m->ctx, p->omsb, p->delta->value, p->olsb, OUT(n, m)->grad, 5.0f,
                             p->dmsb, p->dlsb, p->delta->grad));
    const qg_tensor *x = IN0(n, m)->value;
    qg_tensor *dx = IN0(n, m)->grad;
    int acc = qg__act_grad_begin(m, n->in[0]);
    const qg_tensor *keep = p->kept ? p->keep : NULL;
    if (qg__conv_plan_caps(p->plan) & QG_CONV_CAP_MASKED_BWD) {
        QG_TRY(qg__conv_enqueue_bwd_masked(p->plan, p->xq, p->dmsb, p->wq, dx, acc, p->xlsb,
                                           p->w->grad, 0, NULL, m->workspace, keep));
        QG_TRY(qg__conv_enqueue_bwd_masked(p->plan, p->xlsb, p->dlsb, p->wq, dx, 1,
                                           p->ste_in_bn ? NULL : x, p->w->grad, 1, NULL,
                                           m->workspace, NULL));
        return QG_OK;
    }
    if (!p->dxq)
        QG_TRY(qg__node_tensor_like(m, IN0(n, m), "dxq", &p->dxq));
    QG_TRY(qg__conv_enqueue_bwd(p->plan, p->xq, p->dmsb, p->wq, p->dxq, 0, p->w->grad, NULL, 0,
                                m->workspace, keep));
    QG_TRY(qg__quant_ste_bwd(m->ctx, p->xlsb, p->dxq, dx, QG_STE_NONZERO, acc));
    QG_TRY(qg__conv_enqueue_bwd(p->plan, p->xlsb, p->dlsb, p->wq, p->dxq, 0, p->w->grad, NULL, 1,
                                m->workspace, NULL));
    QG_TRY(qg__quant_ste_bwd(m->ctx, x, p->dxq, dx, QG_STE_NONZERO, 1));
fail:
    return st;
}

static qg_status qconv_backward(qg_node *n, qg_model *m)
{
    qconv_priv *p = n->priv;
    qg_status st = QG_OK;
    if (p->pg && p->tf)
        return pgtf_backward(p, n, m);
    const qg_tensor *dy = OUT(n, m)->grad;
    const qg_tensor *dy_msb = dy;
    if (p->pg) {
        QG_TRY(qg__pg_gate_bwd(m->ctx, p->omsb, p->delta->value, p->olsb, dy, 5.0f,
                               p->cfg.spbp, p->dmsb, p->dlsb, p->delta->grad));
        dy_msb = p->dmsb;
    }
    /* Input: only through the MSB (or fully quantized) path; the STE of
     * sign-magnitude rounding and truncation is 1 where x != 0, applied
     * by the BN that wrote x where it can (ste_in_bn), else fused into the
     * data gradient's store where the conv plan has that epilogue. */
    /* Weights: through both convs; then the weight quantizer's STE. */
    const qg_tensor *x = IN0(n, m)->value;
    qg_tensor *dx = IN0(n, m)->grad;
    int acc = qg__act_grad_begin(m, n->in[0]);
    qg_ste ste = qg__quant_ste(p->cfg.abits);
    const qg_tensor *keep = p->kept ? p->keep : NULL;
    /* Without xq the kept planes are its only copy; the masked path reads
     * them and not its x argument (any other path stores xq first). */
    const qg_tensor *mask = p->ste_in_bn ? NULL : x;
    /* the weights' STE in the weight gradient's last pass, unless PG's
     * LSB pass adds to it after */
    const qg_tensor *wmask = !p->pg ? qg__wquant_ste_mask(p->wquant) : NULL;
    if (ste == QG_STE_NONZERO && (qg__conv_plan_caps(p->plan) & QG_CONV_CAP_MASKED_BWD)) {
        QG_TRY(qg__conv_enqueue_bwd_masked(p->plan, p->xq_fresh ? p->xq : x, dy_msb, p->wq, dx,
                                           acc, mask, p->w->grad, 0, wmask, m->workspace, keep));
    } else {
        /* the separate passes; the STE a pass of its own unless the BN has it */
        QG_TRY(xq_store(p, n, m));
        if (!p->ste_in_bn && !p->dxq)
            QG_TRY(qg__node_tensor_like(m, IN0(n, m), "dxq", &p->dxq));
        QG_TRY(qg__conv_enqueue_bwd(p->plan, p->xq, dy_msb, p->wq, p->ste_in_bn ? dx : p->dxq,
                                    p->ste_in_bn ? acc : 0, p->w->grad, NULL, 0, m->workspace,
                                    keep));
        if (!p->ste_in_bn)
            QG_TRY(qg__quant_ste_bwd(m->ctx, x, p->dxq, dx, ste, acc));
        wmask = NULL;
    }
    if (p->pg)
        QG_TRY(qg__conv_enqueue_bwd_weight(p->plan, p->xlsb, p->dlsb, p->w->grad, NULL,
                                           m->workspace, 1));
    QG_TRY(qg__wquant_backward(p->wquant, m, wmask != NULL));
fail:
    return st;
}

static qg_status qconv_aux(qg_node *n, qg_model *m, void *user, qg_tensor *loss)
{
    qconv_priv *p = n->priv;
    if (!p->pg || p->cfg.sigma == 0.0f)
        return QG_OK;
    return qg__gate_loss(m->ctx, p->delta->value, p->cfg.gtar, p->cfg.sigma,
                         p->tf ? QG_GATE_LOSS_TF : QG_GATE_LOSS_PG, loss, p->delta->grad);
}

static qg_status qconv_counts(qg_node *n, qg_model *m, long long *total, long long *on)
{
    return qg__gate_counter_read(&((qconv_priv *)n->priv)->gc, total, on);
}

static qg_status qconv_reset(qg_node *n, qg_model *m)
{
    qconv_priv *p = n->priv;
    qg_status st = qg__gate_counter_reset(&p->gc);
    if (st == QG_OK && p->cm)
        st = qg__convm_tiles_reset(p->cm);
    return st;
}

static void qconv_destroy(qg_node *n)
{
    qconv_priv *p = n->priv;
    if (!p)
        return;
    qg__wquant_free(p->wquant);
    qg_tensor *ts[] = {p->sx, p->xq, p->xlsb, p->dxq, p->omsb, p->olsb,
                       p->dmsb, p->dlsb, p->gc.count, p->keep, p->gmask};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++)
        qg_tensor_free(ts[i]);
    qg__conv_plan_free(p->plan);
    qg__convm_free(p->cm);
    free(p);
}

/* The LSB conv's tiles computed by the skipping forwards since the reset. */
static qg_status qconv_skip_tiles(qg_node *n, qg_model *m, long long *computed, long long *total)
{
    qconv_priv *p = n->priv;
    *computed = *total = 0;
    return p->cm ? qg__convm_tiles_sum(p->cm, computed, total) : QG_OK;
}

/* The layer's multiply-adds per image (one conv: the architecture's
 * count, whatever precision passes PG splits it into). */
static double qconv_macs(const qg_model *m, const qg_node *n)
{
    const qconv_priv *p = n->priv;
    const qg_act *x = &m->acts[n->in[0]], *y = &m->acts[n->out];
    return (double)p->cout * y->shape[2] * y->shape[3] * x->shape[1] * p->k * p->k;
}

static const qg_node_ops qconv_ops = {.type = "qconv2d", .setup = qconv_setup,
                                      .forward = qconv_forward, .backward = qconv_backward,
                                      .destroy = qconv_destroy, .macs = qconv_macs};
static const qg_node_ops pgconv_ops = {.type = "pgconv2d", .setup = qconv_setup,
                                       .forward = qconv_forward, .backward = qconv_backward,
                                       .destroy = qconv_destroy,
                                       .gate_counts = qconv_counts, .gate_reset = qconv_reset,
                                       .macs = qconv_macs, .skip_tiles = qconv_skip_tiles};

static int add_qconv(qg_model *m, const char *name, int in, int cout, int k, int stride, int pad,
                     const qg_pg_cfg *cfg, int pg, qg_rng *rng)
{
    qg_act *x = qg__act(m, in);
    int cin = (int)x->shape[1], h = (int)x->shape[2], w = (int)x->shape[3];
    int oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1;
    if (cfg->style != QG_PG_PYTORCH && cfg->style != QG_PG_TF) {
        qg__error(m->ctx, QG_ERR_INVALID_ARG, "%s: unknown PG style %d", name, cfg->style);
        return -1;
    }
    if (pg && cfg->style == QG_PG_TF && cfg->spbp) {
        qg__error(m->ctx, QG_ERR_INVALID_ARG, "%s: the TensorFlow PG semantics have no sparse "
                  "back-prop (spbp)", name);
        return -1;
    }
    qconv_priv *p = calloc(1, sizeof *p);
    if (!p) {
        qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
        return -1;
    }
    p->pg = pg;
    p->tf = cfg->style == QG_PG_TF;
    p->cout = cout;
    p->k = k;
    p->stride = stride;
    p->pad = pad;
    p->cfg = *cfg;
    char pn[128];
    int64_t ws[4] = {cout, cin, k, k}, ds[4] = {1, cout, 1, 1};
    snprintf(pn, sizeof pn, "%s.weight", name);
    if (qg__model_add_param(m, pn, QG_PARAM_WEIGHT, 4, ws, &p->w) != QG_OK ||
        qg__param_init_normal(p->w, sqrt(2.0 / (cin * k * k)), rng) != QG_OK ||
        qg__wquant_new(m, p->tf ? NULL : &qg__wquant_uniform, name, p->w, &p->cfg.wbits,
                       &p->wquant) != QG_OK)
        goto fail;
    if (pg) {
        snprintf(pn, sizeof pn, "%s.threshold", name);
        if (qg__model_add_param(m, pn, QG_PARAM_GATE, 4, ds, &p->delta) != QG_OK)
            goto fail;
    }
    int out = qg__model_add_act(m, cout, oh, ow);
    int node = out < 0 ? -1 : qg__model_add_node(m, pg ? &pgconv_ops : &qconv_ops, name, in, -1,
                                                  out, p);
    if (node < 0)
        goto fail;
    /* the gating loss sigma*||delta - g|| as one of the model's loss terms */
    if (pg && qg__model_add_aux_loss(m, name, qconv_aux, node, NULL) != QG_OK)
        return -1; /* the node owns p now */
    return out;
fail:
    qg__wquant_free(p->wquant);
    free(p);
    return -1;
}

int qg__node_qconv(qg_model *m, const char *name, int in, int cout, int k, int stride, int pad,
                   const qg_pg_cfg *cfg, qg_rng *rng)
{
    return add_qconv(m, name, in, cout, k, stride, pad, cfg, 0, rng);
}

int qg__node_pgconv(qg_model *m, const char *name, int in, int cout, int k, int stride,
                    int pad, const qg_pg_cfg *cfg, qg_rng *rng)
{
    return add_qconv(m, name, in, cout, k, stride, pad, cfg, 1, rng);
}

qg_status qg__pgconv_clip_thresholds(qg_model *m)
{
    qg_status st = QG_OK;
    for (int i = 0; i < m->nnodes && st == QG_OK; i++) {
        const qconv_priv *p = m->nodes[i].priv;
        if (m->nodes[i].ops == &pgconv_ops && p->tf)
            st = qg__quant_clip(m->ctx, p->delta->value, -QG_PGTF_DELTA_MAX, QG_PGTF_DELTA_MAX);
    }
    return st;
}
