/* src/tune/cases.c: the benchmark cases `qgate tune` runs, one per
 * program, on ResNet-20 training shapes (batch 128, 16x32x32 maps). Each
 * computes its C reference once and checks every candidate against it. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "gemm/gemm.h"
#include "ops/eltwise.h"
#include "ops/layers.h"
#include "ops/reduce.h"
#include "ref/ref_eltwise.h"
#include "ref/ref_layers.h"
#include "tensor/tensor_impl.h"
#include "tune/cases.h"

enum { RN_N = 128, RN_C = 16, RN_HW = 32 * 32 };
#define RN_NUMEL ((size_t)RN_N * RN_C * RN_HW)

typedef struct bufs {
    qg_tensor *a, *b, *y, *z, *dz, *s1, *s2;
    float *ha, *hb, *ref1, *ref2;
} bufs;

static void bufs_free(void *p)
{
    bufs *s = p;
    if (!s)
        return;
    qg_tensor_free(s->a);
    qg_tensor_free(s->b);
    qg_tensor_free(s->y);
    qg_tensor_free(s->z);
    qg_tensor_free(s->dz);
    qg_tensor_free(s->s1);
    qg_tensor_free(s->s2);
    free(s->ha);
    free(s->hb);
    free(s->ref1);
    free(s->ref2);
    free(s);
}

static qg_status bufs_new(qg_ctx *ctx, bufs **out)
{
    qg_status st = QG_OK;
    bufs *s = calloc(1, sizeof *s);
    *out = NULL;
    if (!s)
        return qg__error(ctx, QG_ERR_NOMEM, "out of memory");
    int64_t sh[4] = {RN_N, RN_C, 32, 32}, sc[1] = {RN_C};
    s->ha = malloc(RN_NUMEL * sizeof(float));
    s->hb = malloc(RN_NUMEL * sizeof(float));
    s->ref1 = malloc(RN_NUMEL * sizeof(float));
    s->ref2 = malloc(RN_NUMEL * sizeof(float));
    if (!s->ha || !s->hb || !s->ref1 || !s->ref2) {
        st = qg__error(ctx, QG_ERR_NOMEM, "out of memory");
        goto fail;
    }
    qg_rng r = {123};
    for (size_t i = 0; i < RN_NUMEL; i++) {
        s->ha[i] = (float)qg__rng_normal(&r);
        s->hb[i] = (float)qg__rng_normal(&r);
    }
    QG_TRY(qg_tensor_new(ctx, 4, sh, QG_DTYPE_F32, "a", &s->a));
    QG_TRY(qg_tensor_new(ctx, 4, sh, QG_DTYPE_F32, "b", &s->b));
    QG_TRY(qg_tensor_new(ctx, 4, sh, QG_DTYPE_F32, "y", &s->y));
    QG_TRY(qg_tensor_new(ctx, 4, sh, QG_DTYPE_F32, "z", &s->z));
    QG_TRY(qg_tensor_new(ctx, 4, sh, QG_DTYPE_F32, "dz", &s->dz));
    QG_TRY(qg_tensor_new(ctx, 1, sc, QG_DTYPE_F32, "s1", &s->s1));
    QG_TRY(qg_tensor_new(ctx, 1, sc, QG_DTYPE_F32, "s2", &s->s2));
    QG_TRY(qg_tensor_write(s->a, s->ha, RN_NUMEL * sizeof(float)));
    QG_TRY(qg_tensor_write(s->b, s->hb, RN_NUMEL * sizeof(float)));
    *out = s;
    return QG_OK;
fail:
    bufs_free(s);
    return st;
}

/* eltwise: the residual add, ReLU forward and backward of one activation. */
static qg_status elt_prepare(qg_ctx *ctx, void **state)
{
    bufs *s;
    qg_status st = bufs_new(ctx, &s);
    if (st != QG_OK)
        return st;
    qg_ref_eltwise_add(RN_NUMEL, s->ha, s->hb, s->ref1);
    qg_ref_relu_bwd(RN_NUMEL, s->ref1, s->hb, s->ref2, 0);
    *state = s;
    return QG_OK;
}

static qg_status elt_run(qg_ctx *ctx, void *state)
{
    bufs *s = state;
    qg_status st = qg__eltwise_add(ctx, s->a, s->b, s->y);
    if (st == QG_OK)
        st = qg__relu_fwd(ctx, s->y, s->z);
    if (st == QG_OK)
        st = qg__relu_bwd(ctx, s->y, s->b, s->dz, 0);
    return st;
}

static qg_status elt_check(qg_ctx *ctx, void *state, double *err)
{
    bufs *s = state;
    float *g = malloc(RN_NUMEL * sizeof *g);
    if (!g)
        return qg__error(ctx, QG_ERR_NOMEM, "out of memory");
    qg_status st = qg_tensor_read(s->y, g, RN_NUMEL * sizeof *g);
    double e1 = st == QG_OK ? qg__tune_max_rel_err(g, s->ref1, RN_NUMEL, 1e-6) : 0;
    if (st == QG_OK)
        st = qg_tensor_read(s->dz, g, RN_NUMEL * sizeof *g);
    double e2 = st == QG_OK ? qg__tune_max_rel_err(g, s->ref2, RN_NUMEL, 1e-6) : 0;
    free(g);
    *err = e1 > e2 ? e1 : e2;
    return st;
}

static qg_status red_prepare(qg_ctx *ctx, void **state)
{
    bufs *s;
    qg_status st = bufs_new(ctx, &s);
    if (st != QG_OK)
        return st;
    qg_ref_reduce_channel_stats(RN_N, RN_C, RN_HW, s->ha, s->ref1, s->ref2);
    *state = s;
    return QG_OK;
}

static qg_status red_run(qg_ctx *ctx, void *state)
{
    bufs *s = state;
    return qg__reduce_channel_stats(ctx, s->a, s->s1, s->s2);
}

static qg_status red_check(qg_ctx *ctx, void *state, double *err)
{
    bufs *s = state;
    float g1[RN_C], g2[RN_C];
    qg_status st = qg_tensor_read(s->s1, g1, sizeof g1);
    if (st == QG_OK)
        st = qg_tensor_read(s->s2, g2, sizeof g2);
    /* Sums of 131072 terms: compare against the sum of magnitudes scale. */
    double e1 = qg__tune_max_rel_err(g1, s->ref1, RN_C, 10.0);
    double e2 = qg__tune_max_rel_err(g2, s->ref2, RN_C, 1.0);
    *err = e1 > e2 ? e1 : e2;
    return st;
}

/* Convolutions of CV_N images on ResNet-20 stage-1 maps (case_conv.c):
 * conv_direct times the 3x3 16->16 conv; im2col times the 1x1 stride-2
 * 16->32 option-B shortcut, which takes the im2col + CLBlast path. */
enum { CV_N = 32 };

static qg_status direct_prepare(qg_ctx *ctx, void **state)
{
    const qg_tune_conv_shape s = {.n = CV_N, .c = RN_C, .k = RN_C, .h = 32, .w = 32, .r = 3,
                                  .stride = 1, .pad = 1};
    return qg__tune_conv_prepare(ctx, &s, state);
}

/* conv_direct on Channel Gating's base path (CG ResNet-20, --pt 4
 * --group): the 4-group 3x3 16->16 conv of stage 1, stored under its
 * shape class (grouped convs tile one group's 4 channels, where the
 * program-wide set suits 16). */
#define CGV_CLASS "c16k16h32w32s1g4"
static qg_status gconv_prepare(qg_ctx *ctx, void **state)
{
    const qg_tune_conv_shape s = {.n = CV_N, .c = RN_C, .k = RN_C, .h = 32, .w = 32, .r = 3,
                                  .stride = 1, .pad = 1, .groups = 4};
    return qg__tune_conv_prepare(ctx, &s, state);
}

static qg_status im2col_prepare(qg_ctx *ctx, void **state)
{
    const qg_tune_conv_shape s = {.n = CV_N, .c = RN_C, .k = 2 * RN_C, .h = 32, .w = 32, .r = 1,
                                  .stride = 2, .pad = 0};
    return qg__tune_conv_prepare(ctx, &s, state);
}

/* clblast_xgemm: the GEMM of a ResNet-20 stage-1 conv forward for a
 * chunk of 32 images: [16 x 144] x [144 x 32768]. */
enum { GM = 16, GK = 144, GN = 32 * 1024 };

typedef struct gemm_state {
    qg_tensor *a, *b, *c;
    float *ref;
} gemm_state;

static void gemm_release(void *p)
{
    gemm_state *g = p;
    if (!g)
        return;
    qg_tensor_free(g->a);
    qg_tensor_free(g->b);
    qg_tensor_free(g->c);
    free(g->ref);
    free(g);
}

static qg_status gemm_prepare(qg_ctx *ctx, void **state)
{
    qg_status st = QG_OK;
    gemm_state *g = calloc(1, sizeof *g);
    float *ha = malloc(sizeof(float) * GM * GK), *hb = malloc(sizeof(float) * GK * GN);
    if (!g || !ha || !hb || !(g->ref = malloc(sizeof(float) * GM * GN))) {
        st = qg__error(ctx, QG_ERR_NOMEM, "out of memory");
        goto fail;
    }
    qg_rng r = {9};
    for (int i = 0; i < GM * GK; i++)
        ha[i] = (float)qg__rng_normal(&r);
    for (int i = 0; i < GK * GN; i++)
        hb[i] = (float)qg__rng_normal(&r);
    for (int i = 0; i < GM; i++)
        for (int j = 0; j < GN; j++) {
            double acc = 0;
            for (int k = 0; k < GK; k++)
                acc += (double)ha[i * GK + k] * hb[(size_t)k * GN + j];
            g->ref[(size_t)i * GN + j] = (float)acc;
        }
    int64_t sa[2] = {GM, GK}, sb[2] = {GK, GN}, sc[2] = {GM, GN};
    QG_TRY(qg_tensor_new(ctx, 2, sa, QG_DTYPE_F32, "A", &g->a));
    QG_TRY(qg_tensor_new(ctx, 2, sb, QG_DTYPE_F32, "B", &g->b));
    QG_TRY(qg_tensor_new(ctx, 2, sc, QG_DTYPE_F32, "C", &g->c));
    QG_TRY(qg_tensor_write(g->a, ha, sizeof(float) * GM * GK));
    QG_TRY(qg_tensor_write(g->b, hb, sizeof(float) * GK * GN));
    free(ha);
    free(hb);
    *state = g;
    return QG_OK;
fail:
    free(ha);
    free(hb);
    gemm_release(g);
    return st;
}

static qg_status gemm_run(qg_ctx *ctx, void *state)
{
    gemm_state *g = state;
    qg_gemm_operand A = {g->a->mem, 0, GK}, B = {g->b->mem, 0, GN}, C = {g->c->mem, 0, GN};
    return qg__gemm(ctx, 0, 0, GM, GN, GK, 1.0f, A, B, 0.0f, C);
}

static qg_status gemm_check(qg_ctx *ctx, void *state, double *err)
{
    gemm_state *g = state;
    float *h = malloc(sizeof(float) * GM * GN);
    if (!h)
        return qg__error(ctx, QG_ERR_NOMEM, "out of memory");
    qg_status st = qg_tensor_read(g->c, h, sizeof(float) * GM * GN);
    *err = st == QG_OK ? qg__tune_max_rel_err(h, g->ref, (size_t)GM * GN, 1.0) : 0;
    free(h);
    return st;
}

/* bn: training forward (batch statistics) and backward of one ResNet-20
 * stage-1 activation; gamma = 1, beta = 0 as at initialisation. */
typedef struct bn_state {
    bufs *b;
    qg_tensor *gamma, *beta, *rm, *rv, *sm, *si, *dg, *db;
    float *ref_dx;
} bn_state;

static void bn_release(void *p)
{
    bn_state *c = p;
    if (!c)
        return;
    qg_tensor *ts[] = {c->gamma, c->beta, c->rm, c->rv, c->sm, c->si, c->dg, c->db};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++)
        qg_tensor_free(ts[i]);
    bufs_free(c->b);
    free(c->ref_dx);
    free(c);
}

static qg_status bn_prepare(qg_ctx *ctx, void **state)
{
    qg_status st = QG_OK;
    bn_state *c = calloc(1, sizeof *c);
    if (!c)
        return qg__error(ctx, QG_ERR_NOMEM, "out of memory");
    QG_TRY(bufs_new(ctx, &c->b));
    int64_t sc[1] = {RN_C};
    qg_tensor **ts[] = {&c->gamma, &c->beta, &c->rm, &c->rv, &c->sm, &c->si, &c->dg, &c->db};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++)
        QG_TRY(qg_tensor_new(ctx, 1, sc, QG_DTYPE_F32, "bn", ts[i]));
    float ones[RN_C], zeros[RN_C] = {0}, rm[RN_C] = {0}, rv[RN_C], sm[RN_C], si[RN_C];
    float dg[RN_C], db[RN_C];
    for (int i = 0; i < RN_C; i++)
        ones[i] = rv[i] = 1.0f;
    QG_TRY(qg_tensor_write(c->gamma, ones, sizeof ones));
    QG_TRY(qg_tensor_write(c->rv, ones, sizeof ones));
    c->ref_dx = malloc(RN_NUMEL * sizeof(float));
    if (!c->ref_dx) {
        st = qg__error(ctx, QG_ERR_NOMEM, "out of memory");
        goto fail;
    }
    qg_ref_bn_fwd_train(RN_N, RN_C, RN_HW, c->b->ha, ones, zeros, rm, rv, 0.1f, 1e-5f,
                        c->b->ref1, sm, si);
    qg_ref_bn_bwd(RN_N, RN_C, RN_HW, c->b->ha, c->b->hb, ones, sm, si, c->ref_dx, dg, db, 0);
    *state = c;
    return QG_OK;
fail:
    bn_release(c);
    return st;
}

static qg_status bn_run(qg_ctx *ctx, void *state)
{
    bn_state *c = state;
    qg_status st = qg__bn_fwd_train(ctx, c->b->a, c->gamma, c->beta, c->rm, c->rv, 0.1f, 1e-5f,
                                    c->b->y, c->sm, c->si);
    if (st == QG_OK)
        st = qg__bn_bwd(ctx, c->b->a, c->b->b, c->gamma, c->sm, c->si, c->b->z, c->dg, c->db,
                        0);
    return st;
}

static qg_status bn_check(qg_ctx *ctx, void *state, double *err)
{
    bn_state *c = state;
    float *g = malloc(RN_NUMEL * sizeof *g);
    if (!g)
        return qg__error(ctx, QG_ERR_NOMEM, "out of memory");
    qg_status st = qg_tensor_read(c->b->y, g, RN_NUMEL * sizeof *g);
    double e1 = st == QG_OK ? qg__tune_max_rel_err(g, c->b->ref1, RN_NUMEL, 1e-2) : 0;
    if (st == QG_OK)
        st = qg_tensor_read(c->b->z, g, RN_NUMEL * sizeof *g);
    double e2 = st == QG_OK ? qg__tune_max_rel_err(g, c->ref_dx, RN_NUMEL, 1e-2) : 0;
    free(g);
    *err = e1 > e2 ? e1 : e2;
    return st;
}

static const qg_tune_case cases[] = {
    {.program = "clblast_xgemm", .shape = "resnet20", .prepare = gemm_prepare, .run = gemm_run,
     .check = gemm_check, .release = gemm_release, .tolerance = 1e-4,
     .apply = qg__gemm_override,
     .builtin = qg__gemm_use_builtin,
     .work = 2.0 * GM * GN * GK, .work_is_flops = 1},
    {.program = "conv_direct", .shape = "resnet20", .prepare = direct_prepare,
     .run = qg__tune_conv_run, .check = qg__tune_conv_check, .release = qg__tune_conv_release,
     .tolerance = 1e-3, .work = 3 * 2.0 * CV_N * RN_C * RN_HW * RN_C * 9, .work_is_flops = 1},
    {.program = "conv_direct", .shape = "cg_group4", .db_shape = CGV_CLASS,
     .prepare = gconv_prepare, .run = qg__tune_conv_run, .check = qg__tune_conv_check,
     .release = qg__tune_conv_release, .tolerance = 1e-3,
     .work = 3 * 2.0 * CV_N * RN_C * RN_HW * (RN_C / 4) * 9, .work_is_flops = 1},
    {.program = "im2col", .shape = "resnet20", .prepare = im2col_prepare,
     .run = qg__tune_conv_run, .check = qg__tune_conv_check, .release = qg__tune_conv_release,
     .tolerance = 1e-3, .work = 3 * 2.0 * CV_N * RN_C * (RN_HW / 4) * 2 * RN_C,
     .work_is_flops = 1},
    {.program = "bn", .shape = "resnet20", .prepare = bn_prepare, .run = bn_run,
     .check = bn_check, .release = bn_release, .tolerance = 1e-3,
     .work = (double)RN_NUMEL * 4 * 6},
    {.program = "eltwise", .shape = "resnet20", .prepare = elt_prepare, .run = elt_run,
     .check = elt_check, .release = bufs_free, .tolerance = 1e-6,
     .work = (double)RN_NUMEL * 4 * 8},
    {.program = "reduce", .shape = "resnet20", .prepare = red_prepare, .run = red_run,
     .check = red_check, .release = bufs_free, .tolerance = 1e-4,
     .work = (double)RN_NUMEL * 4},
};

const qg_tune_case *qg__tune_cases_core(size_t *n)
{
    *n = sizeof cases / sizeof *cases;
    return cases;
}
