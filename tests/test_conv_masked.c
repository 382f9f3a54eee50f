/* tests/test_conv_masked.c: the output-masked 3x3 conv
 * (src/ops/conv_masked.c, cl/conv_masked.cl) against its C oracles
 * (src/ref/ref_conv_masked.c) and against the dense conv plan with the
 * mask applied afterwards, at mask densities 0%, 3%, 50%, 100%, random and
 * spatially clustered, stride 1 and 2, odd map sizes, under the default
 * parameters, three sets of the tiles (1..8 channels, 8 and 16 columns,
 * 1..4 items per block) and two of the per-output gather (channel vectors
 * of 4 and 8).
 *
 * Tolerances: the tiles' forward sums in float with fma over (c, r, s)
 * like its oracle, so it must match the oracle bit for bit (and the dense
 * direct kernels, which sum in the same order, within 1e-5 relative:
 * their channel-vectorised form on narrow maps groups differently). The
 * gather sums over (r, s) and then c in vector lanes: within 1e-5 + 1e-5
 * relative of the oracle (values here are sums of at most 72 products of
 * magnitude below 0.5). The weight gradient sums lanes and image chunks in
 * its own order: |got - want| <= 1e-4 + 1e-4*|want| against the double
 * oracle and the dense plan. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/support.h"
#include "cl/ctx.h"
#include "ops/conv.h"
#include "ops/conv_masked.h"
#include "ref/ref_conv.h"
#include "ref/ref_conv_masked.h"

TestSuite(conv_masked, .fini = qg_test_ctx_free);

typedef struct shape {
    int N, C, H, W, K, stride, pad;
} shape;

static const shape shapes[] = {
    {2, 3, 7, 5, 5, 1, 1},    /* odd, narrower than a tile */
    {3, 5, 9, 19, 7, 1, 1},   /* two column tiles, the second partial */
    {2, 4, 11, 13, 6, 2, 1},  /* stride 2, odd */
    {2, 3, 16, 34, 9, 2, 1},  /* stride 2, 17 columns */
    {2, 2, 6, 6, 3, 1, 0},    /* no padding */
    {1, 8, 32, 32, 16, 1, 1}, /* a ResNet stage-1 layer, one image */
};

/* WG, VW, KT, SP, MODE, GV, PAY (-1: the built-in rule); {0} = the defaults */
static const long sets[][QG_MASKED_NP] = {{0},
                                          {2, 8, 1, 2, 0, 8, -1},
                                          {1, 16, 8, 4, 0, 8, -1},
                                          {4, 8, 2, 1, 0, 8, -1},
                                          {2, 16, 4, 1, 1, 4, -1},
                                          {1, 16, 4, 1, 1, 8, -1}};

enum { RANDOM, CLUSTERED };

/* A mask of y's shape: density `dens` of random ons, or (CLUSTERED) per
 * (n, k) a rectangle covering about dens of the map, some maps all off. */
static void make_mask(const qg_conv_desc *d, double dens, int kind, uint32_t seed, float *m)
{
    size_t PQ = (size_t)d->P * d->Q, ny = (size_t)d->N * d->K * PQ;
    float *u = malloc(ny * sizeof *u);
    qg_test_fill(u, ny, 0.0f, 1.0f, seed);
    if (kind == RANDOM) {
        for (size_t i = 0; i < ny; i++)
            m[i] = u[i] < dens ? 1.0f : 0.0f;
        free(u);
        return;
    }
    for (int nk = 0; nk < d->N * d->K; nk++) {
        float *mm = m + (size_t)nk * PQ;
        const float *uu = u + (size_t)nk * PQ;
        int off = dens < 1.0 && uu[0] < 0.3f; /* a map wholly off */
        double side = sqrt(dens);
        int h = (int)ceil(side * d->P), w = (int)ceil(side * d->Q);
        int p0 = (int)(uu[1 % PQ] * (d->P - h + 1)), q0 = (int)(uu[2 % PQ] * (d->Q - w + 1));
        for (int p = 0; p < d->P; p++)
            for (int q = 0; q < d->Q; q++)
                mm[p * d->Q + q] = !off && dens > 0 && p >= p0 && p < p0 + h && q >= q0 &&
                                           q < q0 + w
                                       ? 1.0f
                                       : 0.0f;
    }
    free(u);
}

/* The parameters d's conv resolves (the current overrides). */
static void masked_params(qg_ctx *ctx, const qg_conv_desc *d, long *v)
{
    int nv = 0;
    char shape[QG_CONV_SHAPE_CLASS_MAX];
    qg__conv_shape_class(d, shape, sizeof shape);
    QG_EXPECT_OK(qg__program_params_shape(ctx, "conv_masked", shape, v, &nv));
}

/* The tiles (KT channels x 1 row x VW columns) with any mask value on, as
 * the list pass must find them, under the parameters d's conv resolves;
 * for the gather (MODE 1) the outputs on. */
static long expected_tiles(qg_ctx *ctx, const qg_conv_desc *d, int gathers, const float *m)
{
    long v[16];
    masked_params(ctx, d, v);
    long on = 0;
    if (gathers) {
        for (size_t i = 0; i < (size_t)d->N * d->K * d->P * d->Q; i++)
            on += m[i] != 0.0f;
        return on;
    }
    int VW = (int)v[1], KT = (int)v[2], QB = (d->Q + VW - 1) / VW;
    for (int n = 0; n < d->N; n++)
        for (int k0 = 0; k0 < d->K; k0 += KT)
            for (int p = 0; p < d->P; p++)
                for (int qb = 0; qb < QB; qb++) {
                    int any = 0;
                    for (int k = k0; k < k0 + KT && k < d->K; k++)
                        for (int q = qb * VW; q < qb * VW + VW && q < d->Q; q++)
                            any |= m[(((size_t)n * d->K + k) * d->P + p) * d->Q + q] != 0.0f;
                    on += any;
                }
    return on;
}

/* zp > 0: the weights are zero in blocks (qg__convm_zero_blocks(zp,
 * zgroup)), the conv is told so, and the weight gradient is 0 there. */
static int zero_block(const qg_conv_desc *d, int zp, int zgroup, int k, int c)
{
    if (zp <= 1)
        return 0;
    int ci = d->C / zp, j = zgroup ? k / (d->K / zp) : 0;
    return c >= j * ci && c < (j + 1) * ci;
}

static void run_case_z(const shape *s, const long *set, double dens, int kind, int zp,
                       int zgroup)
{
    qg_ctx *ctx = qg_test_ctx();
    qg_conv_desc d;
    QG_EXPECT_OK(qg__conv_desc_init(ctx, &d, s->N, s->C, s->H, s->W, s->K, 3, 3, s->stride,
                                    s->pad, 1));
    QG_EXPECT_OK(qg__program_override(ctx, "conv_masked", set[0] ? set : NULL));
    size_t nx = (size_t)d.N * d.C * d.H * d.W, ny = (size_t)d.N * d.K * d.P * d.Q;
    size_t nw = (size_t)d.K * d.C * 9;
    float *x = malloc(nx * sizeof *x), *w = malloc(nw * sizeof *w);
    float *m = malloc(ny * sizeof *m), *dy = malloc(ny * sizeof *dy);
    float *want = malloc(ny * sizeof *want), *dw_want = malloc(nw * sizeof *dw_want);
    qg_test_fill(x, nx, -1.0f, 1.0f, 11);
    qg_test_fill(w, nw, -0.5f, 0.5f, 12);
    qg_test_fill(dy, ny, -1.0f, 1.0f, 13);
    make_mask(&d, dens, kind, 14, m);
    for (int k = 0; k < d.K; k++)
        for (int c = 0; c < d.C; c++)
            if (zero_block(&d, zp, zgroup, k, c))
                memset(w + ((size_t)k * d.C + c) * 9, 0, 9 * sizeof *w);
    for (size_t i = 0; i < ny; i++)
        dy[i] = m[i] != 0.0f ? dy[i] : 0.0f; /* the gradient of a masked output */
    qg_ref_conv_masked_fwd(&d, x, w, m, want);
    qg_ref_conv_masked_bwd_weight(&d, x, dy, m, dw_want);
    for (int k = 0; k < d.K; k++)
        for (int c = 0; c < d.C; c++)
            if (zero_block(&d, zp, zgroup, k, c))
                memset(dw_want + ((size_t)k * d.C + c) * 9, 0, 9 * sizeof *dw_want);
    char label[200];
    snprintf(label, sizeof label, "N%d C%d %dx%d K%d s%d p%d set %ld/%ld/%ld/%ld/%ld/%ld %s "
             "%.0f%% zero blocks %d%s", d.N, d.C, d.H, d.W, d.K, d.stride, d.pad, set[0],
             set[1], set[2], set[3], set[4], set[5], kind == RANDOM ? "random" : "clustered",
             100 * dens, zp, zgroup ? " group" : "");

    int64_t sx[4] = {d.N, d.C, d.H, d.W}, sy[4] = {d.N, d.K, d.P, d.Q},
            sw[4] = {d.K, d.C, 3, 3};
    qg_tensor *tx = qg_test_tensor(ctx, 4, sx, x), *tw = qg_test_tensor(ctx, 4, sw, w);
    qg_tensor *tm = qg_test_tensor(ctx, 4, sy, m), *tdy = qg_test_tensor(ctx, 4, sy, dy);
    qg_test_buf y = qg_test_buf_new(ctx, 4, sy, NULL); /* NaN: every value must be written */
    qg_test_buf dw = qg_test_buf_new(ctx, 4, sw, NULL);
    qg_convm *cm = NULL;
    QG_EXPECT_OK(qg__convm_new(ctx, &d, &cm));
    if (zp)
        QG_EXPECT_OK(qg__convm_zero_blocks(cm, zp, zgroup));
    float ftol = qg__convm_gathers(cm) ? 1e-5f : 0.0f; /* see the top of the file */
    QG_EXPECT_OK(qg__convm_fwd(cm, tx, tw, tm, y.view));
    float *got = qg_test_buf_get(&y, label);
    cr_expect(qg_test_allclose(label, got, want, ny, ftol, ftol), "forward vs oracle");
    long listed, total;
    QG_EXPECT_OK(qg__convm_tiles(cm, &listed, &total));
    long expect = expected_tiles(ctx, &d, qg__convm_gathers(cm), m);
    cr_expect_eq(listed, expect, "%s: %ld tiles listed, %ld have outputs on", label, listed,
                 expect);
    if (dens == 0.0)
        cr_expect_eq(listed, 0, "%s: %ld tiles listed at 0%%", label, listed);
    if (dens == 1.0)
        cr_expect_eq(listed, total, "%s: %ld of %ld tiles listed at 100%%", label, listed,
                     total);
    QG_EXPECT_OK(qg__convm_bwd_weight(cm, tx, tdy, dw.view, 0));
    float *gdw = qg_test_buf_get(&dw, label);
    cr_expect(qg_test_allclose(label, gdw, dw_want, nw, 1e-4f, 1e-4f), "wgrad vs oracle");
    /* accumulate adds to what is there */
    QG_EXPECT_OK(qg__convm_bwd_weight(cm, tx, tdy, dw.view, 1));
    float *gdw2 = qg_test_buf_get(&dw, label);
    for (size_t i = 0; i < nw; i++)
        dw_want[i] = 2.0f * gdw[i];
    cr_expect(qg_test_allclose(label, gdw2, dw_want, nw, 1e-6f, 1e-6f), "wgrad accumulate");

    /* the dense plan, masked afterwards */
    qg_conv_plan *pl = NULL;
    QG_EXPECT_OK(qg__conv_plan_new(ctx, &d, NULL, &pl));
    int64_t swsp[1] = {(int64_t)qg__conv_plan_ws_floats(pl)};
    qg_tensor *ws = NULL, *yd = NULL, *dwd = NULL;
    QG_EXPECT_OK(qg_tensor_new(ctx, 1, swsp, QG_DTYPE_F32, "ws", &ws));
    QG_EXPECT_OK(qg_tensor_new(ctx, 4, sy, QG_DTYPE_F32, "yd", &yd));
    QG_EXPECT_OK(qg_tensor_new(ctx, 4, sw, QG_DTYPE_F32, "dwd", &dwd));
    QG_EXPECT_OK(qg__conv_enqueue_fwd(pl, tx, tw, NULL, yd, ws, NULL));
    QG_EXPECT_OK(qg__conv_enqueue_bwd_weight(pl, tx, tdy, dwd, NULL, ws, 0));
    float *dense = qg_test_read(yd), *ddw = qg_test_read(dwd);
    for (size_t i = 0; i < ny; i++)
        dense[i] = m[i] != 0.0f ? dense[i] : 0.0f;
    for (int k = 0; k < d.K; k++)
        for (int c = 0; c < d.C; c++)
            if (zero_block(&d, zp, zgroup, k, c))
                memset(ddw + ((size_t)k * d.C + c) * 9, 0, 9 * sizeof *ddw);
    cr_expect(qg_test_allclose(label, got, dense, ny, 1e-5f, 1e-5f), "forward vs dense plan");

    /* the data gradient of the masked dy: against the C oracle of the
     * transposed conv (over all of dy, zeros included) and the dense plan;
     * then accumulating onto a non-zero dx */
    float *dx_want = malloc(nx * sizeof *dx_want), *dx_start = malloc(nx * sizeof *dx_start);
    qg_ref_conv2d_bwd_data(&d, dy, w, dx_want);
    qg_test_buf dxm = qg_test_buf_new(ctx, 4, sx, NULL);
    QG_EXPECT_OK(qg__convm_bwd_data(cm, tdy, tw, dxm.view, 0));
    float *gdx = qg_test_buf_get(&dxm, label);
    cr_expect(qg_test_allclose(label, gdx, dx_want, nx, 1e-5f, 1e-5f), "dgrad vs oracle");
    qg_tensor *dxd = NULL;
    QG_EXPECT_OK(qg_tensor_new(ctx, 4, sx, QG_DTYPE_F32, "dxd", &dxd));
    QG_EXPECT_OK(qg__conv_enqueue_bwd_data(pl, tdy, tw, dxd, ws, 0));
    float *ddx = qg_test_read(dxd);
    cr_expect(qg_test_allclose(label, gdx, ddx, nx, 1e-5f, 1e-5f), "dgrad vs dense plan");
    qg_test_fill(dx_start, nx, -1.0f, 1.0f, 15);
    qg_tensor *tdx = qg_test_tensor(ctx, 4, sx, dx_start);
    QG_EXPECT_OK(qg__convm_bwd_data(cm, tdy, tw, tdx, 1));
    float *gdx2 = qg_test_read(tdx);
    for (size_t i = 0; i < nx; i++)
        dx_want[i] += dx_start[i];
    cr_expect(qg_test_allclose(label, gdx2, dx_want, nx, 1e-5f, 1e-5f), "dgrad accumulate");
    free(dx_want), free(dx_start), free(gdx), free(ddx), free(gdx2);
    qg_tensor_free(dxd);
    qg_tensor_free(tdx);
    qg_test_buf_free(&dxm);
    cr_expect(qg_test_allclose(label, gdw, ddw, nw, 1e-4f, 1e-4f), "wgrad vs dense plan");

    free(dense);
    free(ddw);
    free(got);
    free(gdw);
    free(gdw2);
    qg_tensor_free(ws);
    qg_tensor_free(yd);
    qg_tensor_free(dwd);
    qg__conv_plan_free(pl);
    qg__convm_free(cm);
    qg_test_buf_free(&y);
    qg_test_buf_free(&dw);
    qg_tensor_free(tx);
    qg_tensor_free(tw);
    qg_tensor_free(tm);
    qg_tensor_free(tdy);
    free(x);
    free(w);
    free(m);
    free(dy);
    free(want);
    free(dw_want);
    QG_EXPECT_OK(qg__program_override(ctx, "conv_masked", NULL));
}

static void run_case(const shape *s, const long *set, double dens, int kind)
{
    run_case_z(s, set, dens, kind, 0, 0);
}

static const double densities[] = {0.0, 0.03, 0.5, 1.0};

/* Zero weight blocks (CG's conditional weights): block-diagonal where the
 * channels split in two, else the first channel of every output. */
Test(conv_masked, zero_weight_blocks)
{
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const shape *sh = &shapes[s];
        int group = sh->C % 2 == 0 && sh->K % 2 == 0;
        for (size_t p = 0; p < sizeof sets / sizeof *sets; p++)
            for (size_t i = 1; i < 4; i++)
                run_case_z(sh, sets[p], densities[i], RANDOM, group ? 2 : sh->C, group);
    }
    qg_ctx *ctx = qg_test_ctx();
    qg_conv_desc d;
    qg_convm *cm = NULL;
    QG_EXPECT_OK(qg__conv_desc_init(ctx, &d, 1, 6, 8, 8, 5, 3, 3, 1, 1, 1));
    QG_EXPECT_OK(qg__convm_new(ctx, &d, &cm));
    cr_expect_eq(qg__convm_zero_blocks(cm, 4, 0), QG_ERR_INVALID_ARG, "4 does not divide 6");
    cr_expect_eq(qg__convm_zero_blocks(cm, 3, 1), QG_ERR_INVALID_ARG, "3 does not divide 5");
    /* the measured rule: the tile share, less the zero blocks' part */
    long most = qg__convm_gathers(cm) ? 60 : 80;
    cr_expect(qg__convm_keeps_paying(cm, most, 100) && !qg__convm_keeps_paying(cm, most + 1, 100));
    QG_EXPECT_OK(qg__convm_zero_blocks(cm, 2, 0));
    cr_expect(qg__convm_keeps_paying(cm, 100, 100), "a zero half pays for full tiles");
    QG_EXPECT_OK(qg__convm_zero_blocks(cm, 6, 0));
    cr_expect(qg__convm_keeps_paying(cm, most * 6 / 5, 100) &&
              !qg__convm_keeps_paying(cm, most * 6 / 5 + 1, 100));
    qg__convm_free(cm);
}

Test(conv_masked, random_masks)
{
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (size_t p = 0; p < sizeof sets / sizeof *sets; p++)
            for (size_t i = 0; i < sizeof densities / sizeof *densities; i++)
                run_case(&shapes[s], sets[p], densities[i], RANDOM);
}

Test(conv_masked, clustered_masks)
{
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (size_t p = 0; p < sizeof sets / sizeof *sets; p++)
            for (size_t i = 1; i < 3; i++)
                run_case(&shapes[s], sets[p], densities[i], CLUSTERED);
}

Test(conv_masked, refuses_other_shapes)
{
    qg_ctx *ctx = qg_test_ctx();
    qg_conv_desc d;
    qg_convm *cm = NULL;
    QG_EXPECT_OK(qg__conv_desc_init(ctx, &d, 2, 4, 8, 8, 4, 1, 1, 1, 0, 1));
    cr_expect_eq(qg__convm_new(ctx, &d, &cm), QG_ERR_UNSUPPORTED);
    cr_expect_null(cm);
    QG_EXPECT_OK(qg__conv_desc_init(ctx, &d, 2, 4, 8, 8, 4, 3, 3, 1, 1, 2));
    cr_expect_eq(qg__convm_new(ctx, &d, &cm), QG_ERR_UNSUPPORTED);
    /* the default form per width, zero blocks or not, and what pays */
    static const struct {
        int hw, zero, gathers;
        const char *why;
    } forms[] = {{8, 0, 1, "8x8 maps gather"},
                 {8, 2, 1, "8x8 maps gather, zero blocks or not"},
                 {14, 0, 0, "14x14: tiles"},
                 {14, 2, 0, "14x14 with zero blocks: tiles"},
                 {32, 2, 0, "32x32 with zero blocks: tiles"}};
    for (size_t i = 0; i < sizeof forms / sizeof *forms; i++) {
        int hw = forms[i].hw;
        QG_EXPECT_OK(qg__conv_desc_init(ctx, &d, 2, 4, hw, hw, 4, 3, 3, 1, 1, 1));
        QG_EXPECT_OK(qg__convm_new(ctx, &d, &cm));
        if (forms[i].zero)
            QG_EXPECT_OK(qg__convm_zero_blocks(cm, forms[i].zero, 1));
        cr_expect(qg__convm_gathers(cm) == forms[i].gathers && qg__convm_pays(cm) &&
                      qg__convm_wgrad_pays(cm),
                  "%s", forms[i].why);
        qg__convm_free(cm);
    }
    /* tiles forced: 8x8 maps keep the dense path */
    long tiles[QG_MASKED_NP] = {1, 16, 4, 1, 0, 8, -1};
    QG_EXPECT_OK(qg__program_override(ctx, "conv_masked", tiles));
    QG_EXPECT_OK(qg__conv_desc_init(ctx, &d, 2, 4, 8, 8, 4, 3, 3, 1, 1, 1));
    QG_EXPECT_OK(qg__convm_new(ctx, &d, &cm));
    cr_expect(!qg__convm_gathers(cm) && !qg__convm_pays(cm),
              "8x8 maps in tiles keep the dense forward");
    qg__convm_free(cm);
    QG_EXPECT_OK(qg__program_override(ctx, "conv_masked", NULL));
}
