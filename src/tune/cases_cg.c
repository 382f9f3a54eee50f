/* src/tune/cases_cg.c: the tune case of program "cg" (cl/cg.cl): one
 * Channel-Gating layer's gate work at ResNet-20 stage-1 shape ([128,16,
 * 32,32], the reference recipe's alpha 2 and spbp): gate forward (output
 * and counter), gate backward (z gradient, both path gradients, threshold
 * gradient) and a 4-group channel shuffle. C references: src/ref/ref_cg.c
 * (the oracles of tests/test_cg.c). */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cg/cg.h"
#include "core/error.h"
#include "ref/ref_cg.h"
#include "tensor/tensor_impl.h"
#include "tune/cases.h"

enum { G_N = 128, G_C = 16, G_HW = 32 * 32, G_P = 4 };
#define G_NUMEL ((size_t)G_N * G_C * G_HW)
#define G_ALPHA 2.0f

typedef struct cg_state {
    qg_tensor *z, *yp, *yc, *dout, *out, *g, *dyp, *dyc, *sh, *delta, *ddelta, *count;
    float *hz, *hyp, *hyc, *hdout, hdelta[G_C];
    float *rout, *rg, *rdyp, *rdyc, *rsh, rddelta[G_C];
    int32_t rcount;
} cg_state;

static void cg_release(void *p)
{
    cg_state *q = p;
    if (!q)
        return;
    qg_tensor *ts[] = {q->z, q->yp, q->yc, q->dout, q->out, q->g, q->dyp, q->dyc, q->sh,
                       q->delta, q->ddelta, q->count};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++)
        qg_tensor_free(ts[i]);
    float *hs[] = {q->hz, q->hyp, q->hyc, q->hdout, q->rout, q->rg, q->rdyp, q->rdyc, q->rsh};
    for (size_t i = 0; i < sizeof hs / sizeof *hs; i++)
        free(hs[i]);
    free(q);
}

static qg_status cg_prepare(qg_ctx *ctx, void **state)
{
    qg_status st = QG_OK;
    cg_state *q = calloc(1, sizeof *q);
    if (!q)
        return qg__error(ctx, QG_ERR_NOMEM, "out of memory");
    int64_t sh[4] = {G_N, G_C, 32, 32}, sc[1] = {G_C}, one[1] = {1};
    QG_TRY(qg__tune_tensor(ctx, 4, sh, "z", 41, 1.0f, &q->hz, &q->z));
    QG_TRY(qg__tune_tensor(ctx, 4, sh, "yp", 42, 1.0f, &q->hyp, &q->yp));
    QG_TRY(qg__tune_tensor(ctx, 4, sh, "yc", 43, 1.0f, &q->hyc, &q->yc));
    QG_TRY(qg__tune_tensor(ctx, 4, sh, "dout", 44, 1.0f, &q->hdout, &q->dout));
    qg_tensor **outs[] = {&q->out, &q->g, &q->dyp, &q->dyc, &q->sh};
    for (size_t i = 0; i < sizeof outs / sizeof *outs; i++)
        QG_TRY(qg__tune_tensor(ctx, 4, sh, "cg_out", 0, 0, NULL, outs[i]));
    QG_TRY(qg__tune_tensor(ctx, 1, sc, "delta", 0, 0, NULL, &q->delta));
    QG_TRY(qg__tune_tensor(ctx, 1, sc, "delta_grad", 0, 0, NULL, &q->ddelta));
    QG_TRY(qg_tensor_new(ctx, 1, one, QG_DTYPE_I32, "count", &q->count));
    /* Thresholds around 0; z kept clear of the gate's edge, where device
     * and C exp may round a sigmoid to 0.5 differently. */
    for (int c = 0; c < G_C; c++)
        q->hdelta[c] = 0.1f * (float)(c - G_C / 2);
    for (size_t i = 0; i < G_NUMEL; i++) {
        float d = q->hdelta[(i / G_HW) % G_C];
        if (fabsf(G_ALPHA * (q->hz[i] - d)) < 1e-3f)
            q->hz[i] = d + 1e-3f;
    }
    QG_TRY(qg_tensor_write(q->z, q->hz, G_NUMEL * sizeof(float)));
    QG_TRY(qg_tensor_write(q->delta, q->hdelta, sizeof q->hdelta));
    float **refs[] = {&q->rout, &q->rg, &q->rdyp, &q->rdyc, &q->rsh};
    for (size_t i = 0; i < sizeof refs / sizeof *refs; i++)
        if (!(*refs[i] = malloc(G_NUMEL * sizeof(float)))) {
            st = qg__error(ctx, QG_ERR_NOMEM, "out of memory");
            goto fail;
        }
    q->rcount = 0;
    qg_ref_cg_gate_fwd(G_N, G_C, G_HW, q->hz, q->hdelta, q->hyp, q->hyc, G_ALPHA, q->rout,
                       &q->rcount);
    memset(q->rddelta, 0, sizeof q->rddelta);
    qg_ref_cg_gate_bwd(G_N, G_C, G_HW, q->hz, q->hdelta, q->hyc, q->hdout, G_ALPHA, 1, q->rg,
                       q->rdyp, q->rdyc, q->rddelta);
    qg_ref_cg_shuffle(G_N, G_C, G_HW, G_P, q->hyp, q->rsh, 0);
    *state = q;
    return QG_OK;
fail:
    cg_release(q);
    return st;
}

static qg_status cg_run(qg_ctx *ctx, void *state)
{
    cg_state *q = state;
    qg_status st = QG_OK;
    /* The counter and the threshold gradient are added into: zeroed per
     * step, as the training loop does. */
    QG_TRY(qg_tensor_zero(q->count));
    QG_TRY(qg_tensor_zero(q->ddelta));
    QG_TRY(qg__cg_gate_fwd(ctx, q->z, q->delta, q->yp, q->yc, G_ALPHA, q->out, q->count, G_N));
    QG_TRY(qg__cg_gate_bwd(ctx, q->z, q->delta, q->yc, q->dout, G_ALPHA, 1, q->g, q->dyp,
                           q->dyc, q->ddelta));
    QG_TRY(qg__cg_shuffle(ctx, q->yp, G_P, q->sh, 0));
fail:
    return st;
}

static qg_status cg_check(qg_ctx *ctx, void *state, double *err)
{
    cg_state *q = state;
    qg_status st = QG_OK;
    *err = 0;
    /* Elementwise results are exact up to the sigmoid's exp (a few ulp in
     * the z gradient); the threshold sums are judged against sqrt(terms). */
    const qg_tensor *ts[] = {q->out, q->g, q->dyp, q->dyc, q->sh};
    const float *rs[] = {q->rout, q->rg, q->rdyp, q->rdyc, q->rsh};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++)
        QG_TRY(qg__tune_check_f32(ctx, ts[i], rs[i], G_NUMEL, 1e-6, err));
    QG_TRY(qg__tune_check_f32(ctx, q->ddelta, q->rddelta, G_C, sqrt((double)G_N * G_HW), err));
    QG_TRY(qg__tune_check_i32(ctx, q->count, &q->rcount, 1, err));
fail:
    return st;
}

/* Activation-sized passes per run: gate forward 4, gate backward 6,
 * shuffle 2. */
static const qg_tune_case cases[] = {
    {.program = "cg", .shape = "resnet20", .prepare = cg_prepare, .run = cg_run,
     .check = cg_check, .release = cg_release, .tolerance = 1e-4,
     .work = (double)G_NUMEL * 4 * 12},
};

const qg_tune_case *qg__tune_cases_cg(size_t *n)
{
    *n = sizeof cases / sizeof *cases;
    return cases;
}
