/* src/tune/cases_quant.c: the tune case of program "quant" (cl/quant.cl):
 * one Precision-Gating block's quantizer and gate work at ResNet-20
 * stage-1 shape (x [128,16,32,32]) with the reference recipe's bits
 * (-w 8 -a 3 --pb 2 --pact --spbp), forward and backward:
 *   a = PACT(x); s = max|a| + eps; (msb, lsb) = Truncate/RoundToBits(a)
 *   y = gate(o_msb, delta, lsb); backward of the gate (sparse), the
 *   activation STE and PACT; and the 8-bit weight quantizer of one conv.
 * C references: src/ref/ref_quant.c (the same oracles as
 * tests/test_quant.c). */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "quant/quant.h"
#include "ref/ref_quant.h"
#include "tensor/tensor_impl.h"
#include "tune/cases.h"

enum { Q_N = 128, Q_C = 16, Q_HW = 32 * 32, Q_WBITS = 8, Q_ABITS = 3, Q_PB = 2 };
#define Q_NUMEL ((size_t)Q_N * Q_C * Q_HW)
#define Q_WNUMEL ((size_t)Q_C * Q_C * 9)
#define Q_ALPHA 1.5f
#define Q_SLOPE 5.0f

typedef struct quant_state {
    /* device */
    qg_tensor *x, *a, *msb, *lsb, *omsb, *y, *dy, *dmsb, *dlsb, *dxq, *dx;
    qg_tensor *delta, *dgrad, *alpha, *dalpha, *s, *count, *ws, *w, *sw, *wq;
    /* host inputs and references */
    float *hx, *homsb, *hdy, *hw, hdelta[Q_C];
    float *ra, *rmsb, *rlsb, *ry, *rdmsb, *rdlsb, *rdxq, *rdx, *rwq;
    float rdgrad[Q_C], rdalpha;
    int32_t rcount;
} quant_state;

static void quant_release(void *p)
{
    quant_state *q = p;
    if (!q)
        return;
    qg_tensor *ts[] = {q->x, q->a, q->msb, q->lsb, q->omsb, q->y, q->dy, q->dmsb, q->dlsb,
                       q->dxq, q->dx, q->delta, q->dgrad, q->alpha, q->dalpha, q->s, q->count,
                       q->ws, q->w, q->sw, q->wq};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++)
        qg_tensor_free(ts[i]);
    float *hs[] = {q->hx, q->homsb, q->hdy, q->hw, q->ra, q->rmsb, q->rlsb, q->ry, q->rdmsb,
                   q->rdlsb, q->rdxq, q->rdx, q->rwq};
    for (size_t i = 0; i < sizeof hs / sizeof *hs; i++)
        free(hs[i]);
    free(q);
}

/* The C chain the device must reproduce. */
static void quant_reference(quant_state *q)
{
    float s, sw;
    qg_ref_pact_fwd(Q_NUMEL, q->hx, Q_ALPHA, q->ra);
    qg_ref_quant_scale(Q_NUMEL, Q_N, q->ra, QG_QSCALE_PG, &s);
    qg_ref_quant_apply(Q_NUMEL, 1, q->ra, &s, Q_ABITS, Q_PB, NULL, q->rmsb, q->rlsb, NULL);
    q->rcount = 0;
    qg_ref_pg_gate_fwd(Q_N, Q_C, Q_HW, q->homsb, q->hdelta, q->rlsb, Q_SLOPE, q->ry, &q->rcount);
    memset(q->rdgrad, 0, sizeof q->rdgrad);
    qg_ref_pg_gate_bwd(Q_N, Q_C, Q_HW, q->homsb, q->hdelta, q->rlsb, q->hdy, Q_SLOPE, 1,
                       q->rdmsb, q->rdlsb, q->rdgrad);
    qg_ref_quant_ste_bwd(Q_NUMEL, q->ra, q->rdmsb, q->rdxq, QG_STE_NONZERO, 0);
    q->rdalpha = 0;
    qg_ref_pact_bwd(Q_NUMEL, q->hx, Q_ALPHA, q->rdxq, q->rdx, &q->rdalpha, QG_PACT_PG, 0);
    qg_ref_quant_fwd(Q_WNUMEL, Q_C, q->hw, Q_WBITS, QG_QSCALE_PG, &sw, q->rwq);
}

static qg_status quant_prepare(qg_ctx *ctx, void **state)
{
    qg_status st = QG_OK;
    quant_state *q = calloc(1, sizeof *q);
    if (!q)
        return qg__error(ctx, QG_ERR_NOMEM, "out of memory");
    int64_t sh[4] = {Q_N, Q_C, 32, 32}, sc[1] = {Q_C}, one[1] = {1};
    int64_t sws[1] = {QG_QUANT_WS_NUMEL}, swt[4] = {Q_C, Q_C, 3, 3};
    QG_TRY(qg__tune_tensor(ctx, 4, sh, "x", 31, 1.0f, &q->hx, &q->x));
    QG_TRY(qg__tune_tensor(ctx, 4, sh, "dy", 32, 1.0f, &q->hdy, &q->dy));
    QG_TRY(qg__tune_tensor(ctx, 4, swt, "w", 33, 0.1f, &q->hw, &q->w));
    QG_TRY(qg__tune_tensor(ctx, 4, sh, "o_msb", 34, 1.0f, &q->homsb, &q->omsb));
    qg_tensor **outs[] = {&q->a, &q->msb, &q->lsb, &q->y, &q->dmsb, &q->dlsb, &q->dxq, &q->dx};
    for (size_t i = 0; i < sizeof outs / sizeof *outs; i++)
        QG_TRY(qg__tune_tensor(ctx, 4, sh, "quant_out", 0, 0, NULL, outs[i]));
    QG_TRY(qg__tune_tensor(ctx, 4, swt, "wq", 0, 0, NULL, &q->wq));
    QG_TRY(qg__tune_tensor(ctx, 1, sc, "delta", 0, 0, NULL, &q->delta));
    QG_TRY(qg__tune_tensor(ctx, 1, sc, "delta_grad", 0, 0, NULL, &q->dgrad));
    QG_TRY(qg__tune_tensor(ctx, 1, one, "alpha", 0, 0, NULL, &q->alpha));
    QG_TRY(qg__tune_tensor(ctx, 1, one, "dalpha", 0, 0, NULL, &q->dalpha));
    QG_TRY(qg__tune_tensor(ctx, 1, one, "s", 0, 0, NULL, &q->s));
    QG_TRY(qg__tune_tensor(ctx, 1, one, "sw", 0, 0, NULL, &q->sw));
    QG_TRY(qg__tune_tensor(ctx, 1, sws, "ws", 0, 0, NULL, &q->ws));
    QG_TRY(qg_tensor_new(ctx, 1, one, QG_DTYPE_I32, "count", &q->count));
    /* Thresholds spread around 0 (their initial value); prediction outputs
     * kept clear of the gate's edge, where device and C exp may round a
     * sigmoid to 0.5 differently. */
    for (int c = 0; c < Q_C; c++)
        q->hdelta[c] = 0.05f * (float)(c - Q_C / 2);
    for (size_t i = 0; i < Q_NUMEL; i++) {
        float d = q->hdelta[(i / Q_HW) % Q_C];
        if (fabsf(Q_SLOPE * (q->homsb[i] - d)) < 1e-3f)
            q->homsb[i] = d + 1e-3f;
    }
    float alpha = Q_ALPHA;
    QG_TRY(qg_tensor_write(q->omsb, q->homsb, Q_NUMEL * sizeof(float)));
    QG_TRY(qg_tensor_write(q->delta, q->hdelta, sizeof q->hdelta));
    QG_TRY(qg_tensor_write(q->alpha, &alpha, sizeof alpha));
    float **refs[] = {&q->ra, &q->rmsb, &q->rlsb, &q->ry, &q->rdmsb, &q->rdlsb, &q->rdxq,
                      &q->rdx};
    for (size_t i = 0; i < sizeof refs / sizeof *refs; i++)
        if (!(*refs[i] = malloc(Q_NUMEL * sizeof(float)))) {
            st = qg__error(ctx, QG_ERR_NOMEM, "out of memory");
            goto fail;
        }
    if (!(q->rwq = malloc(Q_WNUMEL * sizeof(float)))) {
        st = qg__error(ctx, QG_ERR_NOMEM, "out of memory");
        goto fail;
    }
    quant_reference(q);
    *state = q;
    return QG_OK;
fail:
    quant_release(q);
    return st;
}

static qg_status quant_run(qg_ctx *ctx, void *state)
{
    quant_state *q = state;
    qg_status st = QG_OK;
    /* Counters and parameter gradients are added into: zeroed per step,
     * as the training loop does. */
    QG_TRY(qg_tensor_zero(q->count));
    QG_TRY(qg_tensor_zero(q->dgrad));
    QG_TRY(qg_tensor_zero(q->dalpha));
    QG_TRY(qg__quant_fwd(ctx, q->w, Q_WBITS, QG_QSCALE_PG, q->sw, q->wq));
    QG_TRY(qg__pact_fwd(ctx, q->x, q->alpha, q->a));
    QG_TRY(qg__quant_scale(ctx, q->a, QG_QSCALE_PG, q->s));
    QG_TRY(qg__quant_apply(ctx, q->a, q->s, Q_ABITS, Q_PB, NULL, q->msb, q->lsb, NULL));
    QG_TRY(qg__pg_gate_fwd(ctx, q->omsb, q->delta, q->lsb, Q_SLOPE, q->y, q->count));
    QG_TRY(qg__pg_gate_bwd(ctx, q->omsb, q->delta, q->lsb, q->dy, Q_SLOPE, 1, q->dmsb, q->dlsb,
                           q->dgrad));
    QG_TRY(qg__quant_ste_bwd(ctx, q->a, q->dmsb, q->dxq, QG_STE_NONZERO, 0));
    QG_TRY(qg__pact_bwd(ctx, q->x, q->alpha, q->dxq, q->dx, q->dalpha, QG_PACT_PG, q->ws, 0));
fail:
    return st;
}

static qg_status quant_check(qg_ctx *ctx, void *state, double *err)
{
    quant_state *q = state;
    qg_status st = QG_OK;
    *err = 0;
    /* Elementwise results are exact on IEEE devices up to the sigmoid's
     * exp (a few ulp in the gate's gradient); per-channel sums are judged
     * against sqrt(terms), the size of their rounding noise. */
    const qg_tensor *ts[] = {q->a, q->msb, q->lsb, q->y, q->dmsb, q->dlsb, q->dxq, q->dx};
    const float *rs[] = {q->ra, q->rmsb, q->rlsb, q->ry, q->rdmsb, q->rdlsb, q->rdxq, q->rdx};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++)
        QG_TRY(qg__tune_check_f32(ctx, ts[i], rs[i], Q_NUMEL, 1e-6, err));
    QG_TRY(qg__tune_check_f32(ctx, q->wq, q->rwq, Q_WNUMEL, 1e-6, err));
    QG_TRY(qg__tune_check_f32(ctx, q->dgrad, q->rdgrad, Q_C, sqrt((double)Q_N * Q_HW), err));
    QG_TRY(qg__tune_check_f32(ctx, q->dalpha, &q->rdalpha, 1, sqrt((double)Q_NUMEL), err));
    QG_TRY(qg__tune_check_i32(ctx, q->count, &q->rcount, 1, err));
fail:
    return st;
}

/* Bytes moved per run: PACT 2, scale 1, apply 3, gate fwd 4, gate bwd 5,
 * STE 3, PACT backward 3 (activation-sized passes). */
static const qg_tune_case cases[] = {
    {.program = "quant", .shape = "resnet20", .prepare = quant_prepare, .run = quant_run,
     .check = quant_check, .release = quant_release, .tolerance = 1e-4,
     .work = (double)Q_NUMEL * 4 * 21},
};

const qg_tune_case *qg__tune_cases_quant(size_t *n)
{
    *n = sizeof cases / sizeof *cases;
    return cases;
}
