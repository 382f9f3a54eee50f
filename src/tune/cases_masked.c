/* src/tune/cases_masked.c: the tune case of program conv_masked
 * (cl/conv_masked.cl): a ResNet-20 stage-1 CG conditional conv (16 -> 16
 * channels, 32x32 maps, 32 images) under a gate mask of about 40% density
 * in spatial clusters (a rectangle per channel map, a fifth of the maps
 * wholly off), the shape of gating the tiles are meant for: forward over
 * the listed tiles and the weight gradient of a gradient masked alike.
 * Its winner is stored for every shape ("*"); `qgate tune --shapes` can
 * refine per layer. The masked conv resolves its parameters when made, so
 * run() makes it again whenever the program's current values change.
 * References: src/ref/ref_conv_masked.c (the forward bit for bit). */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "cl/ctx.h"
#include "ops/conv_masked.h"
#include "ref/ref_conv_masked.h"
#include "tensor/tensor_impl.h"
#include "tune/cases.h"

enum { M_N = 32, M_C = 16, M_K = 16, M_H = 32 };

typedef struct cm_state {
    qg_conv_desc d;
    qg_convm *cm;
    long vals[QG_MASKED_NP];
    qg_tensor *x, *w, *mask, *y, *dy, *dw;
    float *ref_y, *ref_dw;
} cm_state;

static void cm_release(void *v)
{
    cm_state *s = v;
    if (!s)
        return;
    qg__convm_free(s->cm);
    qg_tensor_free(s->x), qg_tensor_free(s->w), qg_tensor_free(s->mask);
    qg_tensor_free(s->y), qg_tensor_free(s->dy), qg_tensor_free(s->dw);
    free(s->ref_y), free(s->ref_dw);
    free(s);
}

static qg_status cm_prepare(qg_ctx *ctx, void **state)
{
    qg_status st = QG_OK;
    cm_state *s = calloc(1, sizeof *s);
    float *hx = NULL, *hw = NULL, *hdy = NULL, *hm = NULL;
    if (!s)
        return qg__error(ctx, QG_ERR_NOMEM, "out of memory");
    QG_TRY(qg__conv_desc_init(ctx, &s->d, M_N, M_C, M_H, M_H, M_K, 3, 3, 1, 1, 1));
    const qg_conv_desc *d = &s->d;
    size_t ny = (size_t)M_N * M_K * M_H * M_H, PQ = (size_t)M_H * M_H;
    int64_t sx[4] = {M_N, M_C, M_H, M_H}, sw[4] = {M_K, M_C, 3, 3}, sy[4] = {M_N, M_K, M_H, M_H};
    QG_TRY(qg__tune_tensor(ctx, 4, sx, "x", 91, 1.0f, &hx, &s->x));
    QG_TRY(qg__tune_tensor(ctx, 4, sw, "w", 92, 0.1f, &hw, &s->w));
    QG_TRY(qg__tune_tensor(ctx, 4, sy, "dy", 93, 1.0f, &hdy, &s->dy));
    QG_TRY(qg__tune_tensor(ctx, 4, sy, "mask", 0, 0, NULL, &s->mask));
    QG_TRY(qg__tune_tensor(ctx, 4, sy, "y", 0, 0, NULL, &s->y));
    QG_TRY(qg__tune_tensor(ctx, 4, sw, "dw", 0, 0, NULL, &s->dw));
    hm = malloc(ny * sizeof *hm);
    s->ref_y = malloc(ny * sizeof *s->ref_y);
    s->ref_dw = malloc((size_t)M_K * M_C * 9 * sizeof *s->ref_dw);
    if (!hm || !s->ref_y || !s->ref_dw) {
        st = qg__error(ctx, QG_ERR_NOMEM, "out of memory");
        goto fail;
    }
    /* per map: off (one in five), else a rectangle of about half the
     * side each way, placed by a fixed walk */
    for (int nk = 0; nk < M_N * M_K; nk++) {
        int off = nk % 5 == 2, h = 18 + nk % 7, w = 18 + (nk * 3) % 9;
        int p0 = (nk * 7) % (M_H - h + 1), q0 = (nk * 11) % (M_H - w + 1);
        for (int p = 0; p < M_H; p++)
            for (int q = 0; q < M_H; q++)
                hm[(size_t)nk * PQ + (size_t)p * M_H + q] =
                    !off && p >= p0 && p < p0 + h && q >= q0 && q < q0 + w ? 1.0f : 0.0f;
    }
    for (size_t i = 0; i < ny; i++)
        hdy[i] = hm[i] != 0.0f ? hdy[i] : 0.0f;
    QG_TRY(qg_tensor_write(s->mask, hm, ny * sizeof *hm));
    QG_TRY(qg_tensor_write(s->dy, hdy, ny * sizeof *hdy));
    qg_ref_conv_masked_fwd(d, hx, hw, hm, s->ref_y);
    qg_ref_conv_masked_bwd_weight(d, hx, hdy, hm, s->ref_dw);
    *state = s;
    s = NULL;
fail:
    free(hx), free(hw), free(hdy), free(hm);
    cm_release(s);
    return st;
}

static qg_status cm_run(qg_ctx *ctx, void *state)
{
    cm_state *s = state;
    long v[QG_MASKED_NP];
    int nv = 0;
    qg_status st = qg__program_params(ctx, "conv_masked", v, &nv);
    if (st != QG_OK)
        return st;
    if (!s->cm || memcmp(v, s->vals, sizeof v) != 0) {
        qg__convm_free(s->cm);
        s->cm = NULL;
        if ((st = qg__convm_new(ctx, &s->d, &s->cm)) != QG_OK)
            return st;
        memcpy(s->vals, v, sizeof v);
    }
    st = qg__convm_fwd(s->cm, s->x, s->w, s->mask, s->y);
    return st == QG_OK ? qg__convm_bwd_weight(s->cm, s->x, s->dy, s->dw, 0) : st;
}

static qg_status cm_check(qg_ctx *ctx, void *state, double *err)
{
    cm_state *s = state;
    *err = 0;
    qg_status st = qg__tune_check_f32(ctx, s->y, s->ref_y, (size_t)M_N * M_K * M_H * M_H, 1e-3,
                                      err);
    return st == QG_OK
               ? qg__tune_check_f32(ctx, s->dw, s->ref_dw, (size_t)M_K * M_C * 9, 1e-2, err)
               : st;
}

/* Work per run in flops: both passes over all tiles (the report's GFLOP/s
 * then read as dense-equivalent speed). */
static const qg_tune_case cases[] = {
    {.program = "conv_masked", .shape = "resnet20_cg_s1_clustered40", .prepare = cm_prepare,
     .run = cm_run, .check = cm_check, .release = cm_release, .tolerance = 1e-3,
     .work = 2.0 * 2.0 * M_N * M_K * M_C * 9.0 * M_H * M_H},
};

const qg_tune_case *qg__tune_cases_masked(size_t *n)
{
    *n = sizeof cases / sizeof *cases;
    return cases;
}
