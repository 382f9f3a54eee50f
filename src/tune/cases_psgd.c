/* src/tune/cases_psgd.c: the tune case of program psgd (cl/psgd.cl) on a
 * ResNet-32 stage-3 conv's weights (64x64x3x3): a fresh range update with
 * Q(w) (a low-precision forward) and the scaled gradient. The state and
 * the gradient are reset from the host each run, so every run computes
 * the same values. C references: src/ref/ref_psgd.c. */
#include "config.h"

#include <stdlib.h>

#include "core/error.h"
#include "quant/psgd.h"
#include "ref/ref_psgd.h"
#include "tensor/tensor_impl.h"
#include "tune/cases.h"

enum { P_N = 64 * 64 * 9, P_BITS = 4 };

typedef struct ps_state {
    qg_tensor *w, *g, *st, *wq;
    float *g0, ref_st[4], *ref_wq, *ref_g;
} ps_state;

static void ps_release(void *p)
{
    ps_state *s = p;
    if (!s)
        return;
    qg_tensor_free(s->w), qg_tensor_free(s->g), qg_tensor_free(s->st), qg_tensor_free(s->wq);
    free(s->g0), free(s->ref_wq), free(s->ref_g);
    free(s);
}

static qg_status ps_prepare(qg_ctx *ctx, void **state)
{
    qg_status st = QG_OK;
    ps_state *s = calloc(1, sizeof *s);
    float *hw = NULL;
    if (!s)
        return qg__error(ctx, QG_ERR_NOMEM, "out of memory");
    int64_t ws[1] = {P_N}, ss[1] = {QG_PSGD_STATE_NUMEL};
    QG_TRY(qg__tune_tensor(ctx, 1, ws, "w", 71, 0.1f, &hw, &s->w));
    QG_TRY(qg__tune_tensor(ctx, 1, ws, "g", 72, 1.0f, &s->g0, &s->g));
    QG_TRY(qg__tune_tensor(ctx, 1, ws, "wq", 0, 0, NULL, &s->wq));
    QG_TRY(qg__tune_tensor(ctx, 1, ss, "state", 0, 0, NULL, &s->st));
    s->ref_wq = malloc(P_N * sizeof(float));
    s->ref_g = malloc(P_N * sizeof(float));
    if (!s->ref_wq || !s->ref_g) {
        st = qg__error(ctx, QG_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < P_N; i++)
        s->ref_g[i] = s->g0[i];
    qg_ref_psgd_range(P_N, hw, P_BITS, s->ref_st, s->ref_wq);
    qg_ref_psgd_scale(P_N, hw, s->ref_g, P_BITS, 150.0f, s->ref_st);
    *state = s;
    s = NULL;
fail:
    free(hw);
    ps_release(s);
    return st;
}

static qg_status ps_run(qg_ctx *ctx, void *state)
{
    ps_state *s = state;
    qg_status st = qg_tensor_zero(s->st);
    if (st == QG_OK)
        st = qg_tensor_write(s->g, s->g0, P_N * sizeof(float));
    if (st == QG_OK)
        st = qg__psgd_range(ctx, s->w, P_BITS, s->st, s->wq);
    return st == QG_OK ? qg__psgd_scale(ctx, s->w, s->g, P_BITS, 150.0f, s->st) : st;
}

static qg_status ps_check(qg_ctx *ctx, void *state, double *err)
{
    ps_state *s = state;
    *err = 0;
    qg_status st = qg__tune_check_f32(ctx, s->st, s->ref_st, QG_PSGD_STATE_NUMEL, 1e-6, err);
    if (st == QG_OK)
        st = qg__tune_check_f32(ctx, s->wq, s->ref_wq, P_N, 1e-6, err);
    return st == QG_OK ? qg__tune_check_f32(ctx, s->g, s->ref_g, P_N, 1e-6, err) : st;
}

/* Work per run in bytes: w read twice, wq written, g read and written. */
static const qg_tune_case cases[] = {
    {.program = "psgd", .shape = "resnet32_w", .prepare = ps_prepare, .run = ps_run,
     .check = ps_check, .release = ps_release, .tolerance = 1e-6, .work = 4.0 * 5 * P_N},
};

const qg_tune_case *qg__tune_cases_psgd(size_t *n)
{
    *n = sizeof cases / sizeof *cases;
    return cases;
}
