/* src/tune/cases_bsq.c: the tune case of program bsq (cl/bsq.cl) on a
 * ResNet-20 stage-3 conv held as 8 bit planes (64x64x3x3 values): the
 * effective weights from the planes, then the planes' gradients (the
 * forward and backward every BSQ step runs per layer). Inputs are reset
 * by nothing: both kernels overwrite their outputs, so every run computes
 * the same values. C references: src/ref/ref_bsq.c. */
#include "config.h"

#include <stdlib.h>

#include "core/error.h"
#include "quant/bsq.h"
#include "ref/ref_bsq.h"
#include "tensor/tensor_impl.h"
#include "tune/cases.h"

enum { B_M = 64 * 64 * 9, B_N = 8 };
#define B_SCALE 0.05f

typedef struct bq_state {
    qg_tensor *p, *n, *s, *w, *dw, *dp, *dn, *ws;
    float *ref_w, *ref_dp;
} bq_state;

static void bq_release(void *v)
{
    bq_state *s = v;
    if (!s)
        return;
    qg_tensor_free(s->p), qg_tensor_free(s->n), qg_tensor_free(s->s), qg_tensor_free(s->w);
    qg_tensor_free(s->dw), qg_tensor_free(s->dp), qg_tensor_free(s->dn), qg_tensor_free(s->ws);
    free(s->ref_w), free(s->ref_dp);
    free(s);
}

static qg_status bq_prepare(qg_ctx *ctx, void **state)
{
    qg_status st = QG_OK;
    bq_state *s = calloc(1, sizeof *s);
    float *hp = NULL, *hn = NULL, *hdw = NULL, *ref_dn = NULL;
    if (!s)
        return qg__error(ctx, QG_ERR_NOMEM, "out of memory");
    int64_t ps[2] = {B_M, B_N}, ms[1] = {B_M}, one[1] = {1}, wss[1] = {QG_BSQ_WS_NUMEL};
    QG_TRY(qg__tune_tensor(ctx, 2, ps, "p", 81, 0.5f, &hp, &s->p));
    QG_TRY(qg__tune_tensor(ctx, 2, ps, "n", 82, 0.5f, &hn, &s->n));
    QG_TRY(qg__tune_tensor(ctx, 1, ms, "dw", 83, 1.0f, &hdw, &s->dw));
    QG_TRY(qg__tune_tensor(ctx, 1, one, "s", 0, 0, NULL, &s->s));
    QG_TRY(qg__tune_tensor(ctx, 1, ms, "w", 0, 0, NULL, &s->w));
    QG_TRY(qg__tune_tensor(ctx, 2, ps, "dp", 0, 0, NULL, &s->dp));
    QG_TRY(qg__tune_tensor(ctx, 2, ps, "dn", 0, 0, NULL, &s->dn));
    QG_TRY(qg__tune_tensor(ctx, 1, wss, "ws", 0, 0, NULL, &s->ws));
    float scale = B_SCALE;
    QG_TRY(qg_tensor_write(s->s, &scale, sizeof scale));
    s->ref_w = malloc(B_M * sizeof(float));
    s->ref_dp = malloc((size_t)B_M * B_N * sizeof(float));
    ref_dn = malloc((size_t)B_M * B_N * sizeof(float));
    if (!s->ref_w || !s->ref_dp || !ref_dn) {
        st = qg__error(ctx, QG_ERR_NOMEM, "out of memory");
        goto fail;
    }
    double ds;
    qg_ref_bsq_fwd(B_M, B_N, hp, hn, B_SCALE, s->ref_w);
    qg_ref_bsq_bwd(B_M, B_N, hp, hn, B_SCALE, hdw, s->ref_dp, ref_dn, &ds);
    *state = s;
    s = NULL;
fail:
    free(hp), free(hn), free(hdw), free(ref_dn);
    bq_release(s);
    return st;
}

static qg_status bq_run(qg_ctx *ctx, void *state)
{
    bq_state *s = state;
    qg_status st = qg__bsq_fwd(ctx, s->p, s->n, s->s, s->w);
    return st == QG_OK ? qg__bsq_bwd(ctx, s->p, s->n, s->s, s->dw, s->dp, s->dn, NULL, 0, s->ws)
                       : st;
}

static qg_status bq_check(qg_ctx *ctx, void *state, double *err)
{
    bq_state *s = state;
    *err = 0;
    qg_status st = qg__tune_check_f32(ctx, s->w, s->ref_w, B_M, 1e-6, err);
    return st == QG_OK ? qg__tune_check_f32(ctx, s->dp, s->ref_dp, (size_t)B_M * B_N, 1e-6, err)
                       : st;
}

/* Work per run in bytes: the planes read twice, w written, dw read, dp and
 * dn written. */
static const qg_tune_case cases[] = {
    {.program = "bsq", .shape = "resnet20_planes8", .prepare = bq_prepare, .run = bq_run,
     .check = bq_check, .release = bq_release, .tolerance = 1e-6,
     .work = 4.0 * ((double)B_M * B_N * 6 + 2.0 * B_M)},
};

const qg_tune_case *qg__tune_cases_bsq(size_t *n)
{
    *n = sizeof cases / sizeof *cases;
    return cases;
}
