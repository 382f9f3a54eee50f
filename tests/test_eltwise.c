/* tests/test_eltwise.c: cl/eltwise.cl and cl/reduce.cl against
 * src/ref/ref_eltwise.c, at odd sizes (partial work-groups) and under the
 * default and two other work-group sizes. Outputs are views inside a
 * larger buffer filled with a sentinel, checked untouched afterwards.
 * Tolerances: elementwise results must be exact (same float ops);
 * reductions allow rtol 1e-5 (different summation order). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/support.h"
#include "cl/ctx.h"
#include "ops/eltwise.h"
#include "ops/reduce.h"
#include "ref/ref_eltwise.h"

TestSuite(eltwise, .fini = qg_test_ctx_free);

static const size_t sizes[] = {1, 31, 33, 65, 1000};
static const long wgs[] = {64, 16, 256};
#define PAD 17
#define SENTINEL -12345.5f

typedef struct padded {
    qg_tensor *whole, *view;
    size_t n;
} padded;

static padded make_padded(qg_ctx *ctx, size_t n, const float *init)
{
    padded p = {.n = n};
    size_t total = n + 2 * PAD;
    float *h = malloc(total * sizeof *h);
    for (size_t i = 0; i < total; i++)
        h[i] = SENTINEL;
    if (init)
        memcpy(h + PAD, init, n * sizeof *h);
    int64_t s1[1] = {(int64_t)total}, s2[1] = {(int64_t)n};
    p.whole = qg_test_tensor(ctx, 1, s1, h);
    QG_EXPECT_OK(qg_tensor_view(p.whole, PAD, 1, s2, &p.view));
    free(h);
    return p;
}

/* Reads the view into out and checks the sentinels. */
static void read_padded(padded *p, float *out, const char *label)
{
    float *h = qg_test_read(p->whole);
    for (size_t i = 0; i < PAD; i++) {
        cr_expect_eq(h[i], SENTINEL, "%s: write before the tensor at %zu", label, i);
        cr_expect_eq(h[PAD + p->n + i], SENTINEL, "%s: write past the tensor at %zu", label, i);
    }
    memcpy(out, h + PAD, p->n * sizeof *out);
    free(h);
    qg_tensor_free(p->view);
    qg_tensor_free(p->whole);
}

static void set_wg(qg_ctx *ctx, const char *program, long wg)
{
    QG_EXPECT_OK(qg__program_override(ctx, program, &wg));
}

Test(eltwise, binary_ops_and_relu_match_reference)
{
    qg_ctx *ctx = qg_test_ctx();
    for (size_t w = 0; w < sizeof wgs / sizeof *wgs; w++) {
        set_wg(ctx, "eltwise", wgs[w]);
        for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
            size_t n = sizes[si];
            float *a = malloc(n * 4), *b = malloc(n * 4), *r = malloc(n * 4), *g = malloc(n * 4);
            qg_test_fill(a, n, -2, 2, 42 + (uint32_t)n);
            qg_test_fill(b, n, -2, 2, 7 + (uint32_t)n);
            int64_t sh[1] = {(int64_t)n};
            qg_tensor *ta = qg_test_tensor(ctx, 1, sh, a), *tb = qg_test_tensor(ctx, 1, sh, b);
            char label[64];

            padded y = make_padded(ctx, n, NULL);
            QG_EXPECT_OK(qg__eltwise_add(ctx, ta, tb, y.view));
            snprintf(label, sizeof label, "add n=%zu WG=%ld", n, wgs[w]);
            read_padded(&y, g, label);
            qg_ref_eltwise_add(n, a, b, r);
            cr_expect(qg_test_allclose(label, g, r, n, 0, 0));

            y = make_padded(ctx, n, NULL);
            QG_EXPECT_OK(qg__eltwise_mul(ctx, ta, tb, y.view));
            snprintf(label, sizeof label, "mul n=%zu WG=%ld", n, wgs[w]);
            read_padded(&y, g, label);
            qg_ref_eltwise_mul(n, a, b, r);
            cr_expect(qg_test_allclose(label, g, r, n, 0, 0));

            y = make_padded(ctx, n, b);
            QG_EXPECT_OK(qg__eltwise_axpby(ctx, 0.5f, ta, -1.5f, y.view));
            snprintf(label, sizeof label, "axpby n=%zu WG=%ld", n, wgs[w]);
            read_padded(&y, g, label);
            memcpy(r, b, n * 4);
            qg_ref_eltwise_axpby(n, 0.5f, a, -1.5f, r);
            cr_expect(qg_test_allclose(label, g, r, n, 1e-6f, 1e-6f));

            y = make_padded(ctx, n, NULL);
            QG_EXPECT_OK(qg__relu_fwd(ctx, ta, y.view));
            snprintf(label, sizeof label, "relu_fwd n=%zu WG=%ld", n, wgs[w]);
            read_padded(&y, g, label);
            qg_ref_relu_fwd(n, a, r);
            cr_expect(qg_test_allclose(label, g, r, n, 0, 0));

            y = make_padded(ctx, n, b);
            QG_EXPECT_OK(qg__relu_bwd(ctx, ta, ta, y.view, 1));
            snprintf(label, sizeof label, "relu_bwd+acc n=%zu WG=%ld", n, wgs[w]);
            read_padded(&y, g, label);
            memcpy(r, b, n * 4);
            qg_ref_relu_bwd(n, a, a, r, 1);
            cr_expect(qg_test_allclose(label, g, r, n, 0, 0));

            y = make_padded(ctx, n, NULL);
            QG_EXPECT_OK(qg__eltwise_fill(ctx, y.view, 3.25f));
            snprintf(label, sizeof label, "fill n=%zu WG=%ld", n, wgs[w]);
            read_padded(&y, g, label);
            for (size_t i = 0; i < n; i++)
                cr_expect_eq(g[i], 3.25f);

            qg_tensor_free(ta);
            qg_tensor_free(tb);
            free(a);
            free(b);
            free(r);
            free(g);
        }
    }
}

Test(eltwise, relu_gradient_is_zero_at_the_kink)
{
    qg_ctx *ctx = qg_test_ctx();
    float x[4] = {-1, 0, 1e-30f, 2}, dy[4] = {1, 1, 1, 1};
    int64_t sh[1] = {4};
    qg_tensor *tx = qg_test_tensor(ctx, 1, sh, x), *td = qg_test_tensor(ctx, 1, sh, dy);
    qg_tensor *dx = qg_test_tensor(ctx, 1, sh, NULL);
    QG_EXPECT_OK(qg__relu_bwd(ctx, tx, td, dx, 0));
    float *g = qg_test_read(dx);
    float want[4] = {0, 0, 1, 1};
    cr_expect(qg_test_allclose("relu_bwd kink", g, want, 4, 0, 0));
    free(g);
    qg_tensor_free(tx);
    qg_tensor_free(td);
    qg_tensor_free(dx);
}

Test(eltwise, shape_mismatch_is_an_error)
{
    qg_ctx *ctx = qg_test_ctx();
    int64_t s3[1] = {3}, s4[1] = {4};
    qg_tensor *a = qg_test_tensor(ctx, 1, s3, NULL), *b = qg_test_tensor(ctx, 1, s4, NULL);
    cr_expect_eq(qg__eltwise_add(ctx, a, b, b), QG_ERR_SHAPE);
    qg_tensor_free(a);
    qg_tensor_free(b);
}

Test(eltwise, reductions_match_reference)
{
    qg_ctx *ctx = qg_test_ctx();
    for (size_t w = 0; w < sizeof wgs / sizeof *wgs; w++) {
        set_wg(ctx, "reduce", wgs[w]);
        for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
            size_t n = sizes[si];
            float *a = malloc(n * 4);
            qg_test_fill(a, n, -3, 2, 99 + (uint32_t)n);
            int64_t sh[1] = {(int64_t)n}, one[1] = {1};
            qg_tensor *ta = qg_test_tensor(ctx, 1, sh, a), *out = qg_test_tensor(ctx, 1, one, NULL);
            float got, want;
            QG_EXPECT_OK(qg__reduce_sum(ctx, ta, out));
            QG_EXPECT_OK(qg_tensor_read(out, &got, 4));
            want = qg_ref_reduce_sum(n, a);
            cr_expect(qg_test_allclose("sum", &got, &want, 1, 1e-5f, 1e-5f), "n=%zu WG=%ld", n,
                      wgs[w]);
            QG_EXPECT_OK(qg__reduce_absmax(ctx, ta, out));
            QG_EXPECT_OK(qg_tensor_read(out, &got, 4));
            want = qg_ref_reduce_absmax(n, a);
            cr_expect_eq(got, want, "absmax n=%zu WG=%ld: %g vs %g", n, wgs[w], got, want);
            qg_tensor_free(ta);
            qg_tensor_free(out);
            free(a);
        }
    }
}

Test(eltwise, channel_stats_match_reference)
{
    qg_ctx *ctx = qg_test_ctx();
    const int N = 3, C = 5, H = 7, W = 5;
    size_t n = (size_t)N * C * H * W;
    float *x = malloc(n * 4);
    qg_test_fill(x, n, -1, 3, 5);
    int64_t sh[4] = {N, C, H, W}, sc[1] = {C};
    for (size_t w = 0; w < sizeof wgs / sizeof *wgs; w++) {
        set_wg(ctx, "reduce", wgs[w]);
        qg_tensor *tx = qg_test_tensor(ctx, 4, sh, x);
        qg_tensor *ts = qg_test_tensor(ctx, 1, sc, NULL), *tq = qg_test_tensor(ctx, 1, sc, NULL);
        QG_EXPECT_OK(qg__reduce_channel_stats(ctx, tx, ts, tq));
        float rs[5], rq[5];
        qg_ref_reduce_channel_stats(N, C, H * W, x, rs, rq);
        float *gs = qg_test_read(ts), *gq = qg_test_read(tq);
        cr_expect(qg_test_allclose("channel sum", gs, rs, C, 1e-4f, 1e-5f));
        cr_expect(qg_test_allclose("channel sumsq", gq, rq, C, 1e-4f, 1e-5f));
        free(gs);
        free(gq);
        qg_tensor_free(tx);
        qg_tensor_free(ts);
        qg_tensor_free(tq);
    }
    free(x);
}
