/* tests/test_dwconv.c: depthwise 3x3 convolution (src/ops/dwconv.c,
 * cl/dwconv.cl) against the C references of src/ref/ref_dwconv.c, and
 * finite-difference checks of those references.
 *
 * Device cases: odd shapes (7x5, 8x9, 1x1, 13x7, 56x56 -> 28x28), stride 1
 * and 2, pad 0, 1, 2, with and without bias, overwriting and
 * accumulating, under five (WG, QT, WWG, ROW) sets covering both
 * launch layouts. Outputs are views inside sentinel-filled buffers and start as NaN
 * when overwritten. Tolerances (|got - want| <= atol + rtol*|want|): the
 * forward and data gradient sum at most 9 float products (device) against
 * double (oracle): atol 1e-5, rtol 1e-5; the weight gradient sums N*P*Q
 * products (up to 1568 here) in float: atol 1e-4, rtol 1e-4.
 * Gradient checks on the references: central differences in double of
 * L = sum(g * y) with step 1e-2 (the map is linear in x, w and bias, so
 * only float rounding separates the two): |fd - analytic| <= 1e-3 +
 * 1e-3*|analytic|. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/support.h"
#include "cl/ctx.h"
#include "ops/dwconv.h"
#include "ref/ref_dwconv.h"

TestSuite(dwconv, .fini = qg_test_ctx_free);

static float *rnd(size_t n, uint32_t seed)
{
    float *v = malloc((n ? n : 1) * sizeof *v);
    qg_test_fill(v, n, -1, 1, seed);
    return v;
}

static void check(qg_test_buf *b, const float *want, float tol, const char *what,
                  const char *label)
{
    char l[200];
    snprintf(l, sizeof l, "%s [%s]", what, label);
    float *got = qg_test_buf_get(b, l);
    cr_expect(qg_test_allclose(l, got, want, b->n, tol, tol), "%s", l);
    free(got);
    qg_test_buf_free(b);
}

typedef struct dcase {
    int N, C, H, W, stride, pad;
} dcase;

static void run(qg_ctx *ctx, const dcase *d, int bias, int acc, const char *label)
{
    int P = qg__dwconv_out(d->H, d->stride, d->pad), Q = qg__dwconv_out(d->W, d->stride, d->pad);
    size_t nx = (size_t)d->N * d->C * d->H * d->W, ny = (size_t)d->N * d->C * P * Q;
    size_t nw = (size_t)d->C * 9;
    int64_t sx[4] = {d->N, d->C, d->H, d->W}, sy[4] = {d->N, d->C, P, Q},
            sw[4] = {d->C, 1, 3, 3}, sb[1] = {d->C};
    float *x = rnd(nx, 1), *w = rnd(nw, 2), *b = rnd((size_t)d->C, 3), *g = rnd(ny, 4);
    float *dx0 = acc ? rnd(nx, 5) : NULL, *dw0 = acc ? rnd(nw, 6) : NULL,
          *db0 = acc ? rnd((size_t)d->C, 7) : NULL;
    float *y = malloc(ny * 4), *dx = malloc(nx * 4), *dw = malloc(nw * 4),
          *db = malloc((size_t)d->C * 4);
    qg_test_buf tx = qg_test_buf_new(ctx, 4, sx, x), tw = qg_test_buf_new(ctx, 4, sw, w),
                tb = qg_test_buf_new(ctx, 1, sb, b), tg = qg_test_buf_new(ctx, 4, sy, g);

    qg_test_buf ty = qg_test_buf_new(ctx, 4, sy, NULL);
    QG_EXPECT_OK(qg__dwconv_fwd(ctx, tx.view, tw.view, bias ? tb.view : NULL, d->stride,
                                d->pad, ty.view));
    qg_ref_dwconv_fwd(d->N, d->C, d->H, d->W, d->stride, d->pad, x, w, bias ? b : NULL, y);
    check(&ty, y, 1e-5f, "y", label);

    qg_test_buf tdx = qg_test_buf_new(ctx, 4, sx, dx0);
    QG_EXPECT_OK(qg__dwconv_bwd_data(ctx, tg.view, tw.view, d->stride, d->pad, tdx.view, acc));
    if (acc)
        memcpy(dx, dx0, nx * 4);
    qg_ref_dwconv_bwd_data(d->N, d->C, d->H, d->W, d->stride, d->pad, g, w, dx, acc);
    check(&tdx, dx, 1e-5f, "dx", label);

    qg_test_buf tdw = qg_test_buf_new(ctx, 4, sw, dw0), tdb = qg_test_buf_new(ctx, 1, sb, db0);
    QG_EXPECT_OK(qg__dwconv_bwd_weight(ctx, tx.view, tg.view, d->stride, d->pad, tdw.view,
                                       bias ? tdb.view : NULL, acc));
    if (acc) {
        memcpy(dw, dw0, nw * 4);
        memcpy(db, db0, (size_t)d->C * 4);
    }
    qg_ref_dwconv_bwd_weight(d->N, d->C, d->H, d->W, d->stride, d->pad, x, g, dw,
                             bias ? db : NULL, acc);
    check(&tdw, dw, 1e-4f, "dw", label);
    if (bias) {
        check(&tdb, db, 1e-4f, "db", label);
    } else {
        /* db untouched: still NaN or its accumulate start */
        float *got = qg_test_buf_get(&tdb, "db unused");
        for (int c = 0; c < d->C; c++)
            cr_expect(acc ? got[c] == db0[c] : isnan(got[c]), "db written without bias [%s]",
                      label);
        free(got);
        qg_test_buf_free(&tdb);
    }
    qg_test_buf_free(&tx), qg_test_buf_free(&tw), qg_test_buf_free(&tb), qg_test_buf_free(&tg);
    free(x), free(w), free(b), free(g), free(dx0), free(dw0), free(db0);
    free(y), free(dx), free(dw), free(db);
}

Test(dwconv, matches_reference, .timeout = 300)
{
    qg_ctx *ctx = qg_test_ctx();
    static const dcase cases[] = {{2, 3, 7, 5, 1, 1}, {2, 5, 8, 9, 2, 1}, {3, 2, 1, 1, 1, 1},
                                  {1, 4, 13, 7, 1, 2}, {2, 3, 6, 7, 2, 0},
                                  {2, 2, 56, 56, 2, 1}};
    static const long params[][4] = {
        {64, 1, 64, 0}, {16, 4, 16, 0}, {128, 3, 256, 0}, {64, 1, 32, 1}, {4, 2, 16, 1}};
    for (size_t p = 0; p < 5; p++) {
        QG_EXPECT_OK(qg__program_override(ctx, "dwconv", params[p]));
        for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
            for (int v = 0; v < 3; v++) {
                const dcase *d = &cases[c];
                char label[128];
                snprintf(label, sizeof label, "N%d C%d %dx%d s%d p%d bias%d acc%d "
                         "WG%ld QT%ld WWG%ld ROW%ld", d->N, d->C, d->H, d->W, d->stride,
                         d->pad, v != 1, v == 2, params[p][0], params[p][1], params[p][2],
                         params[p][3]);
                run(ctx, d, v != 1, v == 2, label);
            }
    }
}

Test(dwconv, bad_arguments)
{
    qg_ctx *ctx = qg_test_ctx();
    int64_t sx[4] = {1, 2, 5, 5}, sy[4] = {1, 2, 5, 5}, sw[4] = {2, 1, 3, 3},
            sw3[4] = {3, 1, 3, 3};
    float z[64] = {0};
    qg_tensor *x = qg_test_tensor(ctx, 4, sx, z), *y = qg_test_tensor(ctx, 4, sy, z),
              *w = qg_test_tensor(ctx, 4, sw, z), *w3 = qg_test_tensor(ctx, 4, sw3, z);
    cr_expect_eq(qg__dwconv_fwd(ctx, x, w, NULL, 1, 1, y), QG_OK);
    cr_expect_eq(qg__dwconv_fwd(ctx, x, w, NULL, 2, 1, y), QG_ERR_SHAPE, "y is not 3x3");
    cr_expect_eq(qg__dwconv_fwd(ctx, x, w3, NULL, 1, 1, y), QG_ERR_SHAPE);
    cr_expect_eq(qg__dwconv_fwd(ctx, x, w, NULL, 1, 3, y), QG_ERR_INVALID_ARG);
    long bad[4] = {64, 1, 8, 0};
    cr_expect_eq(qg__program_override(ctx, "dwconv", bad), QG_ERR_INVALID_ARG, "WWG 8");
    qg_tensor_free(x), qg_tensor_free(y), qg_tensor_free(w), qg_tensor_free(w3);
}

static double loss(const dcase *d, const float *x, const float *w, const float *b,
                   const float *g, float *y)
{
    int P = qg__dwconv_out(d->H, d->stride, d->pad), Q = qg__dwconv_out(d->W, d->stride, d->pad);
    qg_ref_dwconv_fwd(d->N, d->C, d->H, d->W, d->stride, d->pad, x, w, b, y);
    double l = 0;
    for (size_t k = 0; k < (size_t)d->N * d->C * P * Q; k++)
        l += (double)g[k] * y[k];
    return l;
}

static void fd_check(float *v, size_t n, const float *analytic, const char *what,
                     const dcase *d, const float *x, const float *w, const float *b,
                     const float *g, float *y)
{
    for (size_t i = 0; i < n; i++) {
        float keep = v[i];
        double h = 1e-2;
        v[i] = keep + (float)h;
        double lp = loss(d, x, w, b, g, y);
        v[i] = keep - (float)h;
        double lm = loss(d, x, w, b, g, y);
        v[i] = keep;
        double fd = (lp - lm) / (2 * h);
        cr_assert_leq(fabs(fd - analytic[i]), 1e-3 + 1e-3 * fabs(analytic[i]),
                      "s%d p%d d/d%s[%zu]: fd %g analytic %g", d->stride, d->pad, what, i, fd,
                      analytic[i]);
    }
}

Test(dwconv, reference_gradients)
{
    static const dcase cases[] = {{2, 2, 5, 4, 2, 1}, {1, 3, 5, 5, 1, 1}, {1, 2, 6, 5, 1, 2}};
    for (size_t c = 0; c < 3; c++) {
        const dcase *d = &cases[c];
        int P = qg__dwconv_out(d->H, d->stride, d->pad),
            Q = qg__dwconv_out(d->W, d->stride, d->pad);
        size_t nx = (size_t)d->N * d->C * d->H * d->W, ny = (size_t)d->N * d->C * P * Q;
        float *x = rnd(nx, 11), *w = rnd((size_t)d->C * 9, 12), *b = rnd((size_t)d->C, 13);
        float *g = rnd(ny, 14), *y = malloc(ny * 4), *dx = malloc(nx * 4);
        float *dw = malloc((size_t)d->C * 9 * 4), *db = malloc((size_t)d->C * 4);
        qg_ref_dwconv_bwd_data(d->N, d->C, d->H, d->W, d->stride, d->pad, g, w, dx, 0);
        qg_ref_dwconv_bwd_weight(d->N, d->C, d->H, d->W, d->stride, d->pad, x, g, dw, db, 0);
        fd_check(x, nx, dx, "x", d, x, w, b, g, y);
        fd_check(w, (size_t)d->C * 9, dw, "w", d, x, w, b, g, y);
        fd_check(b, (size_t)d->C, db, "bias", d, x, w, b, g, y);
        free(x), free(w), free(b), free(g), free(y), free(dx), free(dw), free(db);
    }
}
