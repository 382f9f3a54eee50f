/* tests/test_pool_same.c: ShuffleNet's pooling layers. The 'SAME'-padded
 * max pool (src/ops/pool.c qg__maxpool_same_fwd, cl/pool.cl) against
 * src/ref/ref_pool_same.c, its backward through qg__maxpool_bwd, and the
 * global average pool over 7x7 maps (qg__gap_fwd/bwd) against
 * src/ref/ref_layers.c, with finite-difference checks of the references.
 *
 * Max-pool cases: k3 s2 (the stem), k3 s1 and k2 s2 on 7x7, 8x8, 7x8,
 * 8x7, 1x1, 2x3 and 56x56 maps, under three work-group sizes; outputs in
 * sentinel-bounded views starting as NaN. Values and argmax must match
 * exactly (the max moves values), and so must dx (both sides add in
 * output order). A hand-worked 4x4 case pins TensorFlow's padding (none
 * on top for even sizes), which PyTorch's padding=1 would not give.
 * GAP over 49 values: device float sum vs double: atol 1e-5, rtol 1e-4;
 * its backward dy/49: rtol 1e-6. Gradient checks: central differences in
 * double, step 1e-3, of L = sum(g * y) on inputs spaced >= 1e-2 apart
 * (so the argmax never changes): |fd - analytic| <= 1e-3 + 1e-2*|analytic|. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/support.h"
#include "cl/ctx.h"
#include "ops/layers.h"
#include "ref/ref_layers.h"
#include "ref/ref_pool_same.h"

TestSuite(pool_same, .fini = qg_test_ctx_free);

static const long wgs[] = {64, 16, 128};

/* Distinct values: a shuffled ramp with steps of 0.01. */
static float *ramp(size_t n, uint32_t seed)
{
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = (float)i * 0.01f - (float)n * 0.005f;
    uint32_t s = seed;
    for (size_t i = n; i > 1; i--) {
        s = s * 1664525u + 1013904223u;
        size_t j = s % i;
        float t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
    return v;
}

static void run_max(qg_ctx *ctx, int N, int C, int H, int W, int k, int s, const char *label)
{
    int NC = N * C, P = qg__pool_same_out(H, s), Q = qg__pool_same_out(W, s);
    size_t nx = (size_t)NC * H * W, ny = (size_t)NC * P * Q;
    int64_t sx[4] = {N, C, H, W}, sy[4] = {N, C, P, Q};
    float *x = ramp(nx, 3), *g = malloc(ny * 4), *y = malloc(ny * 4), *dx = malloc(nx * 4);
    qg_test_fill(g, ny, -1, 1, 4);
    int32_t *am = malloc(ny * 4);
    qg_ref_maxpool_same_fwd(NC, H, W, k, s, x, y, am);
    qg_test_buf tx = qg_test_buf_new(ctx, 4, sx, x), ty = qg_test_buf_new(ctx, 4, sy, NULL);
    qg_test_buf tg = qg_test_buf_new(ctx, 4, sy, g), tdx = qg_test_buf_new(ctx, 4, sx, NULL);
    qg_tensor *tam = qg_test_i32_tensor(ctx, ny, -7);
    qg_tensor *amv = NULL;
    QG_EXPECT_OK(qg_tensor_view(tam, 0, 4, sy, &amv));
    QG_EXPECT_OK(qg__maxpool_same_fwd(ctx, tx.view, k, s, ty.view, amv));
    float *got = qg_test_buf_get(&ty, label);
    cr_expect(qg_test_allclose(label, got, y, ny, 0, 0), "y [%s]", label);
    int32_t *gam = qg_test_read_i32(tam);
    for (size_t i = 0; i < ny; i++)
        cr_expect_eq(gam[i], am[i], "argmax %zu [%s]", i, label);
    QG_EXPECT_OK(qg__maxpool_bwd(ctx, tg.view, amv, tdx.view));
    qg_ref_maxpool_bwd(NC, H, W, P, Q, g, am, dx);
    float *gdx = qg_test_buf_get(&tdx, label);
    cr_expect(qg_test_allclose(label, gdx, dx, nx, 0, 0), "dx [%s]", label);
    free(got), free(gam), free(gdx);
    qg_tensor_free(amv);
    qg_tensor_free(tam);
    qg_test_buf_free(&tx), qg_test_buf_free(&ty), qg_test_buf_free(&tg);
    qg_test_buf_free(&tdx);
    free(x), free(g), free(y), free(dx), free(am);
}

Test(pool_same, max_matches_reference)
{
    qg_ctx *ctx = qg_test_ctx();
    static const int maps[][2] = {{7, 7}, {8, 8}, {7, 8}, {8, 7}, {1, 1}, {2, 3}, {56, 56}};
    static const int ks[][2] = {{3, 2}, {3, 1}, {2, 2}};
    for (size_t w = 0; w < 3; w++) {
        QG_EXPECT_OK(qg__program_override(ctx, "pool", &wgs[w]));
        for (size_t m = 0; m < sizeof maps / sizeof *maps; m++)
            for (size_t k = 0; k < 3; k++) {
                char label[96];
                snprintf(label, sizeof label, "%dx%d k%d s%d WG%ld", maps[m][0], maps[m][1],
                         ks[k][0], ks[k][1], wgs[w]);
                run_max(ctx, 2, 3, maps[m][0], maps[m][1], ks[k][0], ks[k][1], label);
            }
    }
}

Test(pool_same, tensorflow_padding_by_hand)
{
    /* 4x4 ramp, k3 s2: P = 2, total padding 1, all of it past the bottom
     * and right edges: windows [0,3)x[0,3) -> 10, [0,3)x[2,4) -> 11,
     * [2,4)x[0,3) -> 14, [2,4)x[2,4) -> 15. */
    float x[16], y[4];
    int32_t am[4];
    for (int i = 0; i < 16; i++)
        x[i] = (float)i;
    qg_ref_maxpool_same_fwd(1, 4, 4, 3, 2, x, y, am);
    const float want[4] = {10, 11, 14, 15};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(y[i], want[i], "y[%d] = %g", i, y[i]);
        cr_assert_eq(am[i], (int)want[i]);
    }
    cr_assert_eq(qg__pool_same_out(112, 2), 56);
    cr_assert_eq(qg__pool_same_pad(112, 3, 2), 0);
    cr_assert_eq(qg__pool_same_pad(7, 3, 2), 1);
    /* The device agrees. */
    qg_ctx *ctx = qg_test_ctx();
    int64_t sx[4] = {1, 1, 4, 4}, sy[4] = {1, 1, 2, 2};
    qg_tensor *tx = qg_test_tensor(ctx, 4, sx, x), *ty = qg_test_tensor(ctx, 4, sy, y);
    qg_tensor *ta = qg_test_i32_tensor(ctx, 4, 0), *tav = NULL;
    QG_EXPECT_OK(qg_tensor_view(ta, 0, 4, sy, &tav));
    QG_EXPECT_OK(qg__maxpool_same_fwd(ctx, tx, 3, 2, ty, tav));
    float *got = qg_test_read(ty);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(got[i], want[i], "device y[%d] = %g", i, got[i]);
    free(got);
    qg_tensor_free(tav), qg_tensor_free(ta), qg_tensor_free(tx), qg_tensor_free(ty);
}

Test(pool_same, gap_7x7_matches_reference)
{
    qg_ctx *ctx = qg_test_ctx();
    enum { N = 3, C = 33, HW = 49 };
    size_t nx = (size_t)N * C * HW;
    int64_t sx[4] = {N, C, 7, 7}, sy[4] = {N, C, 1, 1};
    float *x = malloc(nx * 4), *g = malloc(N * C * 4), *y = malloc(N * C * 4),
          *dx = malloc(nx * 4);
    qg_test_fill(x, nx, -2, 3, 5);
    qg_test_fill(g, N * C, -1, 1, 6);
    qg_ref_gap_fwd(N * C, HW, x, y);
    qg_ref_gap_bwd(N * C, HW, g, dx);
    for (size_t w = 0; w < 3; w++) {
        QG_EXPECT_OK(qg__program_override(ctx, "pool", &wgs[w]));
        qg_test_buf tx = qg_test_buf_new(ctx, 4, sx, x), ty = qg_test_buf_new(ctx, 4, sy, NULL);
        qg_test_buf tg = qg_test_buf_new(ctx, 4, sy, g), tdx = qg_test_buf_new(ctx, 4, sx, NULL);
        QG_EXPECT_OK(qg__gap_fwd(ctx, tx.view, ty.view));
        QG_EXPECT_OK(qg__gap_bwd(ctx, tg.view, tdx.view));
        float *gy = qg_test_buf_get(&ty, "gap y"), *gdx = qg_test_buf_get(&tdx, "gap dx");
        cr_expect(qg_test_allclose("gap y", gy, y, N * C, 1e-5f, 1e-4f), "WG %ld", wgs[w]);
        cr_expect(qg_test_allclose("gap dx", gdx, dx, nx, 0, 1e-6f), "WG %ld", wgs[w]);
        free(gy), free(gdx);
        qg_test_buf_free(&tx), qg_test_buf_free(&ty), qg_test_buf_free(&tg);
        qg_test_buf_free(&tdx);
    }
    free(x), free(g), free(y), free(dx);
}

Test(pool_same, reference_gradients)
{
    /* Max pool SAME k3 s2 on 7x6: dL/dx from qg_ref_maxpool_bwd. */
    enum { NC = 2, H = 7, W = 6 };
    int P = qg__pool_same_out(H, 2), Q = qg__pool_same_out(W, 2);
    size_t nx = (size_t)NC * H * W, ny = (size_t)NC * P * Q;
    float *x = ramp(nx, 9), *g = malloc(ny * 4), *y = malloc(ny * 4), *dx = malloc(nx * 4);
    int32_t *am = malloc(ny * 4);
    qg_test_fill(g, ny, -1, 1, 10);
    qg_ref_maxpool_same_fwd(NC, H, W, 3, 2, x, y, am);
    qg_ref_maxpool_bwd(NC, H, W, P, Q, g, am, dx);
    for (size_t i = 0; i < nx; i++) {
        double l[2], h = 1e-3;
        float keep = x[i];
        for (int sgn = 0; sgn < 2; sgn++) {
            x[i] = keep + (float)(sgn ? -h : h);
            qg_ref_maxpool_same_fwd(NC, H, W, 3, 2, x, y, am);
            l[sgn] = 0;
            for (size_t k = 0; k < ny; k++)
                l[sgn] += (double)g[k] * y[k];
        }
        x[i] = keep;
        double fd = (l[0] - l[1]) / (2 * h);
        cr_assert_leq(fabs(fd - dx[i]), 1e-3 + 1e-2 * fabs(dx[i]), "maxpool d/dx[%zu]: fd %g "
                      "analytic %g", i, fd, dx[i]);
    }
    /* GAP over 7x7. */
    float gx[49], gg[1] = {0.7f}, gy[1], gdx[49];
    qg_test_fill(gx, 49, -1, 1, 11);
    qg_ref_gap_bwd(1, 49, gg, gdx);
    for (int i = 0; i < 49; i++) {
        double l[2], h = 1e-3;
        float keep = gx[i];
        for (int sgn = 0; sgn < 2; sgn++) {
            gx[i] = keep + (float)(sgn ? -h : h);
            qg_ref_gap_fwd(1, 49, gx, gy);
            l[sgn] = (double)gg[0] * gy[0];
        }
        gx[i] = keep;
        double fd = (l[0] - l[1]) / (2 * h);
        cr_assert_leq(fabs(fd - gdx[i]), 1e-3 + 1e-2 * fabs(gdx[i]), "gap d/dx[%d]", i);
    }
    free(x), free(g), free(y), free(dx), free(am);
}
