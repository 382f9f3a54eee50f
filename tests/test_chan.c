/* tests/test_chan.c: channel split, concat, shuffle and the fused
 * concat+shuffle (src/ops/chan.c, cl/chan.cl) against the C references of
 * src/ref/ref_chan.c, and the references' gradients against finite
 * differences.
 *
 * Device cases: N = 3, odd channel counts and planes (5x7, 1x1, 7x7),
 * overwrite and accumulate, under the default parameters and two other
 * (WG, EPI) sets. Outputs are views inside sentinel-filled buffers (a
 * write outside fails) and start as NaN (a read of the output fails).
 * These are copies: results must match exactly (tolerance 0), and with
 * accumulate exactly the float sum y + x both sides form.
 * Gradient checks: central differences in double of L = sum(g * y) with
 * step 1e-3; the maps are linear, so |fd - analytic| <= 1e-3. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/support.h"
#include "cl/ctx.h"
#include "ops/chan.h"
#include "ref/ref_chan.h"

TestSuite(chan, .fini = qg_test_ctx_free);

static const long params[][2] = {{64, 1}, {16, 4}, {128, 3}};

static float *rnd(size_t n, uint32_t seed)
{
    float *v = malloc((n ? n : 1) * sizeof *v);
    qg_test_fill(v, n, -1, 1, seed);
    return v;
}

static void check(qg_test_buf *b, const float *want, const char *what, const char *label)
{
    char l[200];
    snprintf(l, sizeof l, "%s [%s]", what, label);
    float *got = qg_test_buf_get(b, l);
    cr_expect(qg_test_allclose(l, got, want, b->n, 0, 0), "%s", l);
    free(got);
    qg_test_buf_free(b);
}

static void run_case(qg_ctx *ctx, int N, int Ca, int Cb, int H, int W, int acc,
                     const char *label)
{
    int HW = H * W, C = Ca + Cb;
    size_t na = (size_t)N * Ca * HW, nb = (size_t)N * Cb * HW, ny = (size_t)N * C * HW;
    int64_t sa[4] = {N, Ca, H, W}, sb[4] = {N, Cb, H, W}, sy[4] = {N, C, H, W};
    float *a = rnd(na, 1), *b = rnd(nb, 2), *x = rnd(ny, 3);
    float *ya = acc ? rnd(na, 4) : NULL, *yb = acc ? rnd(nb, 5) : NULL, *yy = acc ? rnd(ny, 6)
                                                                                   : NULL;
    float *wa = malloc(na * 4), *wb = malloc(nb * 4), *wy = malloc(ny * 4);
    qg_test_buf ta = qg_test_buf_new(ctx, 4, sa, a), tb = qg_test_buf_new(ctx, 4, sb, b),
                tx = qg_test_buf_new(ctx, 4, sy, x);

    /* concat */
    qg_test_buf out = qg_test_buf_new(ctx, 4, sy, yy);
    QG_EXPECT_OK(qg__chan_concat(ctx, ta.view, tb.view, out.view, acc));
    if (acc)
        memcpy(wy, yy, ny * 4);
    qg_ref_chan_concat(N, Ca, Cb, HW, a, b, wy, acc);
    check(&out, wy, "concat", label);

    /* split */
    qg_test_buf oa = qg_test_buf_new(ctx, 4, sa, ya), ob = qg_test_buf_new(ctx, 4, sb, yb);
    QG_EXPECT_OK(qg__chan_split(ctx, tx.view, oa.view, ob.view, acc));
    if (acc) {
        memcpy(wa, ya, na * 4);
        memcpy(wb, yb, nb * 4);
    }
    qg_ref_chan_split(N, Ca, Cb, HW, x, wa, wb, acc);
    check(&oa, wa, "split a", label);
    check(&ob, wb, "split b", label);

    /* shuffle with every group count dividing C, and its inverse */
    for (int g = 1; g <= C; g++) {
        if (C % g)
            continue;
        out = qg_test_buf_new(ctx, 4, sy, yy);
        QG_EXPECT_OK(qg__chan_shuffle(ctx, tx.view, g, out.view, acc));
        if (acc)
            memcpy(wy, yy, ny * 4);
        qg_ref_chan_shuffle(N, C, HW, g, x, wy, acc);
        char l2[160];
        snprintf(l2, sizeof l2, "%s g=%d", label, g);
        check(&out, wy, "shuffle", l2);
        if (!acc) {   /* shuffle(C/g) undoes shuffle(g) */
            float *back = malloc(ny * 4);
            qg_ref_chan_shuffle(N, C, HW, C / g, wy, back, 0);
            cr_expect_eq(memcmp(back, x, ny * 4), 0, "shuffle %d then %d [%s]", g, C / g,
                         label);
            free(back);
        }
    }

    /* fused concat + shuffle(2) and its backward */
    if (Ca == Cb) {
        out = qg_test_buf_new(ctx, 4, sy, yy);
        QG_EXPECT_OK(qg__chan_concat_shuffle2(ctx, ta.view, tb.view, out.view, acc));
        float *cat = malloc(ny * 4);
        qg_ref_chan_concat(N, Ca, Cb, HW, a, b, cat, 0);
        if (acc)
            memcpy(wy, yy, ny * 4);
        qg_ref_chan_shuffle(N, C, HW, 2, cat, wy, acc);
        check(&out, wy, "concat_shuffle2", label);
        free(cat);
        oa = qg_test_buf_new(ctx, 4, sa, ya);
        ob = qg_test_buf_new(ctx, 4, sb, yb);
        QG_EXPECT_OK(qg__chan_unshuffle2(ctx, tx.view, oa.view, ob.view, acc));
        float *un = malloc(ny * 4);
        qg_ref_chan_shuffle(N, C, HW, C / 2, x, un, 0);
        if (acc) {
            memcpy(wa, ya, na * 4);
            memcpy(wb, yb, nb * 4);
        }
        qg_ref_chan_split(N, Ca, Cb, HW, un, wa, wb, acc);
        check(&oa, wa, "unshuffle2 a", label);
        check(&ob, wb, "unshuffle2 b", label);
        free(un);
    }
    qg_test_buf_free(&ta);
    qg_test_buf_free(&tb);
    qg_test_buf_free(&tx);
    free(a), free(b), free(x), free(ya), free(yb), free(yy), free(wa), free(wb), free(wy);
}

Test(chan, ops_match_reference)
{
    qg_ctx *ctx = qg_test_ctx();
    static const int shapes[][5] = {
        {3, 5, 5, 5, 7}, {3, 3, 7, 7, 7}, {2, 6, 6, 1, 1}, {1, 1, 2, 3, 3}};
    for (size_t p = 0; p < 3; p++) {
        QG_EXPECT_OK(qg__program_override(ctx, "chan", params[p]));
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
            for (int acc = 0; acc < 2; acc++) {
                const int *sh = shapes[s];
                char label[96];
                snprintf(label, sizeof label, "N%d Ca%d Cb%d %dx%d acc%d WG%ld EPI%ld", sh[0],
                         sh[1], sh[2], sh[3], sh[4], acc, params[p][0], params[p][1]);
                run_case(ctx, sh[0], sh[1], sh[2], sh[3], sh[4], acc, label);
            }
    }
}

Test(chan, bad_shapes_are_errors)
{
    qg_ctx *ctx = qg_test_ctx();
    int64_t s6[4] = {2, 6, 3, 3}, s3[4] = {2, 3, 3, 3}, s4[4] = {2, 4, 3, 3},
            o3[4] = {1, 3, 3, 3};
    float z[108] = {0};
    qg_tensor *x = qg_test_tensor(ctx, 4, s6, z), *a = qg_test_tensor(ctx, 4, s3, z),
              *b = qg_test_tensor(ctx, 4, s4, z), *c = qg_test_tensor(ctx, 4, o3, z);
    cr_expect_eq(qg__chan_split(ctx, x, a, b, 0), QG_ERR_SHAPE);
    cr_expect_eq(qg__chan_shuffle(ctx, x, 4, x, 0), QG_ERR_SHAPE);
    cr_expect_eq(qg__chan_concat_shuffle2(ctx, a, b, x, 0), QG_ERR_SHAPE);
    cr_expect_eq(qg__chan_copy(ctx, a, 0, 1, c, 0, 1, 3, 0), QG_ERR_SHAPE, "N differs");
    cr_expect_eq(qg__chan_copy(ctx, x, 4, 1, a, 0, 1, 3, 0), QG_ERR_SHAPE, "past channel 6");
    cr_expect_eq(qg__chan_copy(ctx, x, 0, 2, a, 0, 1, 3, 0), QG_OK);
    qg_tensor_free(x), qg_tensor_free(a), qg_tensor_free(b), qg_tensor_free(c);
}

/* L = sum(g * f(x)); the analytic gradient is the adjoint map applied to
 * g (the inverse shuffle / the split), checked by central differences. */
Test(chan, reference_gradients)
{
    enum { N = 2, C = 6, HW = 5 };
    size_t n = (size_t)N * C * HW;
    float *x = rnd(n, 7), *g = rnd(n, 8), *y = malloc(n * 4), *dx = malloc(n * 4);
    for (int groups = 2; groups <= 3; groups++) {
        qg_ref_chan_shuffle(N, C, HW, C / groups, g, dx, 0);   /* adjoint */
        for (size_t i = 0; i < n; i++) {
            double h = 1e-3, l[2];
            float keep = x[i];
            for (int s = 0; s < 2; s++) {
                x[i] = keep + (float)(s ? -h : h);
                qg_ref_chan_shuffle(N, C, HW, groups, x, y, 0);
                l[s] = 0;
                for (size_t k = 0; k < n; k++)
                    l[s] += (double)g[k] * y[k];
            }
            x[i] = keep;
            double fd = (l[0] - l[1]) / (2 * h);
            cr_assert_leq(fabs(fd - dx[i]), 1e-3, "shuffle g=%d: d/dx[%zu] fd %g analytic %g",
                          groups, i, fd, dx[i]);
        }
    }
    /* concat's adjoint is split */
    float *ga = malloc((size_t)N * 2 * HW * 4), *gb = malloc((size_t)N * 4 * HW * 4);
    qg_ref_chan_split(N, 2, 4, HW, g, ga, gb, 0);
    float *a = rnd((size_t)N * 2 * HW, 9), *b = rnd((size_t)N * 4 * HW, 10);
    for (size_t i = 0; i < (size_t)N * 2 * HW; i++) {
        double h = 1e-3, l[2];
        float keep = a[i];
        for (int s = 0; s < 2; s++) {
            a[i] = keep + (float)(s ? -h : h);
            qg_ref_chan_concat(N, 2, 4, HW, a, b, y, 0);
            l[s] = 0;
            for (size_t k = 0; k < n; k++)
                l[s] += (double)g[k] * y[k];
        }
        a[i] = keep;
        cr_assert_leq(fabs((l[0] - l[1]) / (2 * h) - ga[i]), 1e-3, "concat d/da[%zu]", i);
    }
    free(x), free(g), free(y), free(dx), free(ga), free(gb), free(a), free(b);
}
