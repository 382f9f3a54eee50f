/* src/tune/cases_shuffle.c: tune cases of programs chan and dwconv
 * (cl/chan.cl, cl/dwconv.cl) on ShuffleNet v2 (1x, 224x224) stage-2
 * shapes at batch 8:
 *   chan    the unit's concat + channel shuffle of two [8,58,28,28]
 *           halves into [8,116,28,28], and its backward (unshuffle)
 *   dwconv  the 3x3 depthwise conv of [8,116,28,28], stride 1, pad 1:
 *           forward, data gradient and weight + bias gradient
 * C references: src/ref/ref_chan.c, src/ref/ref_dwconv.c. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "ops/chan.h"
#include "ops/dwconv.h"
#include "ref/ref_chan.h"
#include "ref/ref_dwconv.h"
#include "tensor/tensor_impl.h"
#include "tune/cases.h"

enum { S_N = 8, S_C = 116, S_H = 28 };

typedef struct sh_state {
    qg_tensor *t[8];
    float *ref[4];
    size_t n[4];
} sh_state;

static void sh_release(void *p)
{
    sh_state *s = p;
    if (!s)
        return;
    for (int i = 0; i < 8; i++)
        qg_tensor_free(s->t[i]);
    for (int i = 0; i < 4; i++)
        free(s->ref[i]);
    free(s);
}

/* ---- chan: t = a, b, y, da, db; ref = y, a, b ---- */

static qg_status chan_prepare(qg_ctx *ctx, void **state)
{
    qg_status st = QG_OK;
    sh_state *s = calloc(1, sizeof *s);
    float *cat = NULL;
    if (!s)
        return qg__error(ctx, QG_ERR_NOMEM, "out of memory");
    int64_t hs[4] = {S_N, S_C / 2, S_H, S_H}, ys[4] = {S_N, S_C, S_H, S_H};
    QG_TRY(qg__tune_tensor(ctx, 4, hs, "a", 51, 1.0f, &s->ref[1], &s->t[0]));
    QG_TRY(qg__tune_tensor(ctx, 4, hs, "b", 52, 1.0f, &s->ref[2], &s->t[1]));
    QG_TRY(qg__tune_tensor(ctx, 4, ys, "y", 0, 0, NULL, &s->t[2]));
    QG_TRY(qg__tune_tensor(ctx, 4, hs, "da", 0, 0, NULL, &s->t[3]));
    QG_TRY(qg__tune_tensor(ctx, 4, hs, "db", 0, 0, NULL, &s->t[4]));
    s->n[0] = qg_tensor_numel(s->t[2]);
    s->n[1] = s->n[2] = qg_tensor_numel(s->t[0]);
    s->ref[0] = malloc(s->n[0] * sizeof(float));
    cat = malloc(s->n[0] * sizeof(float));
    if (!s->ref[0] || !cat) {
        st = qg__error(ctx, QG_ERR_NOMEM, "out of memory");
        goto fail;
    }
    qg_ref_chan_concat(S_N, S_C / 2, S_C / 2, S_H * S_H, s->ref[1], s->ref[2], cat, 0);
    qg_ref_chan_shuffle(S_N, S_C, S_H * S_H, 2, cat, s->ref[0], 0);
    free(cat);
    *state = s;
    return QG_OK;
fail:
    free(cat);
    sh_release(s);
    return st;
}

static qg_status chan_run(qg_ctx *ctx, void *state)
{
    sh_state *s = state;
    qg_status st = qg__chan_concat_shuffle2(ctx, s->t[0], s->t[1], s->t[2], 0);
    return st == QG_OK ? qg__chan_unshuffle2(ctx, s->t[2], s->t[3], s->t[4], 0) : st;
}

/* Copies: exact. */
static qg_status chan_check(qg_ctx *ctx, void *state, double *err)
{
    sh_state *s = state;
    *err = 0;
    qg_status st = qg__tune_check_f32(ctx, s->t[2], s->ref[0], s->n[0], 1e-6, err);
    if (st == QG_OK)
        st = qg__tune_check_f32(ctx, s->t[3], s->ref[1], s->n[1], 1e-6, err);
    if (st == QG_OK)
        st = qg__tune_check_f32(ctx, s->t[4], s->ref[2], s->n[2], 1e-6, err);
    return st;
}

/* ---- dwconv: t = x, w, bias, dy, y, dx, dw, db; ref = y, dx, dw, db ---- */

static qg_status dw_prepare(qg_ctx *ctx, void **state)
{
    qg_status st = QG_OK;
    sh_state *s = calloc(1, sizeof *s);
    float *hx = NULL, *hw = NULL, *hb = NULL, *hdy = NULL;
    if (!s)
        return qg__error(ctx, QG_ERR_NOMEM, "out of memory");
    int64_t xs[4] = {S_N, S_C, S_H, S_H}, ws[4] = {S_C, 1, 3, 3}, bs[1] = {S_C};
    QG_TRY(qg__tune_tensor(ctx, 4, xs, "x", 61, 1.0f, &hx, &s->t[0]));
    QG_TRY(qg__tune_tensor(ctx, 4, ws, "w", 62, 0.3f, &hw, &s->t[1]));
    QG_TRY(qg__tune_tensor(ctx, 1, bs, "bias", 63, 0.1f, &hb, &s->t[2]));
    QG_TRY(qg__tune_tensor(ctx, 4, xs, "dy", 64, 1.0f, &hdy, &s->t[3]));
    QG_TRY(qg__tune_tensor(ctx, 4, xs, "y", 0, 0, NULL, &s->t[4]));
    QG_TRY(qg__tune_tensor(ctx, 4, xs, "dx", 0, 0, NULL, &s->t[5]));
    QG_TRY(qg__tune_tensor(ctx, 4, ws, "dw", 0, 0, NULL, &s->t[6]));
    QG_TRY(qg__tune_tensor(ctx, 1, bs, "db", 0, 0, NULL, &s->t[7]));
    s->n[0] = s->n[1] = qg_tensor_numel(s->t[0]);
    s->n[2] = (size_t)S_C * 9;
    s->n[3] = S_C;
    for (int i = 0; i < 4; i++)
        if (!(s->ref[i] = malloc(s->n[i] * sizeof(float)))) {
            st = qg__error(ctx, QG_ERR_NOMEM, "out of memory");
            goto fail;
        }
    qg_ref_dwconv_fwd(S_N, S_C, S_H, S_H, 1, 1, hx, hw, hb, s->ref[0]);
    qg_ref_dwconv_bwd_data(S_N, S_C, S_H, S_H, 1, 1, hdy, hw, s->ref[1], 0);
    qg_ref_dwconv_bwd_weight(S_N, S_C, S_H, S_H, 1, 1, hx, hdy, s->ref[2], s->ref[3], 0);
    *state = s;
    s = NULL;
fail:
    free(hx);
    free(hw);
    free(hb);
    free(hdy);
    sh_release(s);
    return st;
}

static qg_status dw_run(qg_ctx *ctx, void *state)
{
    sh_state *s = state;
    qg_status st = qg__dwconv_fwd(ctx, s->t[0], s->t[1], s->t[2], 1, 1, s->t[4]);
    if (st == QG_OK)
        st = qg__dwconv_bwd_data(ctx, s->t[3], s->t[1], 1, 1, s->t[5], 0);
    return st == QG_OK ? qg__dwconv_bwd_weight(ctx, s->t[0], s->t[3], 1, 1, s->t[6], s->t[7], 0)
                       : st;
}

/* Nine products per output (floor 1e-2); the weight gradient sums
 * 8*28*28 products of N(0,1) values, ~80 in size (floor 1). */
static qg_status dw_check(qg_ctx *ctx, void *state, double *err)
{
    sh_state *s = state;
    *err = 0;
    qg_status st = qg__tune_check_f32(ctx, s->t[4], s->ref[0], s->n[0], 1e-2, err);
    if (st == QG_OK)
        st = qg__tune_check_f32(ctx, s->t[5], s->ref[1], s->n[1], 1e-2, err);
    if (st == QG_OK)
        st = qg__tune_check_f32(ctx, s->t[6], s->ref[2], s->n[2], 1.0, err);
    if (st == QG_OK)
        st = qg__tune_check_f32(ctx, s->t[7], s->ref[3], s->n[3], 1.0, err);
    return st;
}

/* Work per run in bytes: chan moves y twice and the halves twice; dwconv
 * reads x, writes y; reads dy, writes dx; reads x and dy. */
static const qg_tune_case cases[] = {
    {.program = "chan", .shape = "shufflenet_v2", .prepare = chan_prepare, .run = chan_run,
     .check = chan_check, .release = sh_release, .tolerance = 1e-6,
     .work = 4.0 * 4 * S_N * S_C * S_H * S_H},
    {.program = "dwconv", .shape = "shufflenet_v2", .prepare = dw_prepare, .run = dw_run,
     .check = dw_check, .release = sh_release, .tolerance = 1e-4,
     .work = 4.0 * 6 * S_N * S_C * S_H * S_H},
};

const qg_tune_case *qg__tune_cases_shuffle(size_t *n)
{
    *n = sizeof cases / sizeof *cases;
    return cases;
}
