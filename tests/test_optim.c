/* tests/test_optim.c: optimizer steps and the sum of squares
 * (src/ops/optim.c, cl/optim.cl) against the C references of
 * src/ref/ref_layers.c, and those references against torch.optim
 * semantics worked by hand.
 *
 * Hand-worked values: one scalar parameter w0 = 1 and gradients 0.5,
 * -0.25, 1.0 over three steps, following torch.optim.SGD/Adam
 * (_single_tensor_sgd/_adam) in double; e.g. SGD lr 0.1, momentum 0.9,
 * wd 0.1: step 1 g = 0.5 + 0.1*1 = 0.6, buf = g (first step), w = 0.94;
 * step 2 g = -0.25 + 0.094 = -0.156, buf = 0.54 - 0.156 = 0.384,
 * w = 0.9016; step 3 g = 1.09016, buf = 1.43576, w = 0.758024. Adam's
 * first step moves by lr*sign(g) (bias correction), hence 0.99.
 *
 * Device tests: n = 1, 33 and 1001 (partial work-groups) for 3 steps,
 * SGD plain / momentum / nesterov with weight decay and grad_scale, Adam
 * with and without weight decay, under the default work-group size and
 * two others; the momentum buffer starts as NaN so the first step must
 * not read it; grad must come back unchanged.
 *
 * Tolerances: device vs reference (same float operations; the device may
 * fuse multiply-adds) atol 1e-6, rtol 1e-5; references vs hand values
 * (float vs double) rtol 1e-5; sum of squares rtol 1e-5 (tree order). */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/support.h"
#include "cl/ctx.h"
#include "ops/layers.h"
#include "ref/ref_layers.h"

TestSuite(optim, .fini = qg_test_ctx_free);

static const long wgs[] = {256, 16, 64};
static const float grads3[3] = {0.5f, -0.25f, 1.0f};

/* ---- references vs hand-worked torch.optim values ---- */

typedef struct sgd_cfg {
    float lr, momentum, wd;
    int nesterov;
    float scale;
    double want[3];
    const char *what;
} sgd_cfg;

static const sgd_cfg sgd_cases[] = {
    {0.1f, 0.0f, 0.0f, 0, 1.0f, {0.95, 0.975, 0.875}, "sgd plain"},
    {0.1f, 0.9f, 0.1f, 0, 1.0f, {0.94, 0.9016, 0.758024}, "sgd momentum wd"},
    {0.1f, 0.9f, 0.1f, 1, 0.5f, {0.9335, 0.9111635, 0.775900043}, "sgd nesterov wd scale"},
};

typedef struct adam_cfg {
    float lr, b1, b2, eps, wd, scale;
    double want[3];
    const char *what;
} adam_cfg;

static const adam_cfg adam_cases[] = {
    {0.01f, 0.9f, 0.999f, 1e-8f, 0.0f, 1.0f, {0.99, 0.98733663, 0.980755514}, "adam"},
    {0.01f, 0.9f, 0.999f, 1e-8f, 0.1f, 0.5f, {0.99, 0.983869391, 0.975961941}, "adam wd scale"},
};

static int near(double got, double want, double rtol)
{
    return fabs(got - want) <= rtol * fabs(want);
}

Test(optim, references_follow_torch_optim)
{
    for (size_t c = 0; c < sizeof sgd_cases / sizeof *sgd_cases; c++) {
        const sgd_cfg *s = &sgd_cases[c];
        float w = 1.0f, buf = NAN;
        for (int t = 0; t < 3; t++) {
            qg_ref_sgd_step(1, &w, &grads3[t], &buf, s->lr, s->momentum, s->wd, s->nesterov,
                            t == 0, s->scale);
            cr_expect(near(w, s->want[t], 1e-5), "%s step %d: w %.9g, want %.9g", s->what,
                      t + 1, w, s->want[t]);
        }
    }
    for (size_t c = 0; c < sizeof adam_cases / sizeof *adam_cases; c++) {
        const adam_cfg *a = &adam_cases[c];
        float w = 1.0f, m = 0, v = 0;
        for (int t = 0; t < 3; t++) {
            qg_ref_adam_step(1, &w, &grads3[t], &m, &v, a->lr, a->b1, a->b2, a->eps, a->wd,
                             t + 1, a->scale);
            cr_expect(near(w, a->want[t], 1e-5), "%s step %d: w %.9g, want %.9g", a->what,
                      t + 1, w, a->want[t]);
        }
    }
}

/* ---- device vs reference ---- */

static qg_tensor *upload(qg_ctx *ctx, size_t n, const float *h)
{
    int64_t sh[1] = {(int64_t)n};
    return qg_test_tensor(ctx, 1, sh, h);
}

static void expect_tensor(const qg_tensor *t, const float *want, size_t n, float atol,
                          float rtol, const char *what, const char *label)
{
    float *got = qg_test_read(t);
    char l[160];
    snprintf(l, sizeof l, "%s [%s]", what, label);
    cr_expect(qg_test_allclose(l, got, want, n, atol, rtol), "%s", l);
    free(got);
}

static void run_sgd(qg_ctx *ctx, size_t n, const sgd_cfg *s, long wg, uint32_t seed)
{
    char label[96];
    snprintf(label, sizeof label, "%s n=%zu WG=%ld", s->what, n, wg);
    float *w = malloc(n * 4), *buf = malloc(n * 4), *g = malloc(n * 4);
    qg_test_fill(w, n, -1, 1, seed);
    for (size_t i = 0; i < n; i++)
        buf[i] = NAN;
    qg_tensor *tw = upload(ctx, n, w), *tb = upload(ctx, n, buf), *tg = upload(ctx, n, NULL);
    for (int t = 0; t < 3; t++) {
        qg_test_fill(g, n, -2, 2, seed + 1 + (uint32_t)t);
        QG_EXPECT_OK(qg_tensor_write(tg, g, n * 4));
        /* momentum 0 takes no buffer at all. */
        QG_EXPECT_OK(qg__sgd_step(ctx, tw, tg, s->momentum != 0.0f ? tb : NULL, s->lr,
                                  s->momentum, s->wd, s->nesterov, t == 0, s->scale));
        qg_ref_sgd_step(n, w, g, buf, s->lr, s->momentum, s->wd, s->nesterov, t == 0, s->scale);
        expect_tensor(tw, w, n, 1e-6f, 1e-5f, "sgd w", label);
        if (s->momentum != 0.0f)
            expect_tensor(tb, buf, n, 1e-6f, 1e-5f, "sgd buf", label);
        expect_tensor(tg, g, n, 0, 0, "sgd grad unchanged", label);
    }
    qg_tensor_free(tw);
    qg_tensor_free(tb);
    qg_tensor_free(tg);
    free(w);
    free(buf);
    free(g);
}

static void run_adam(qg_ctx *ctx, size_t n, const adam_cfg *a, long wg, uint32_t seed)
{
    char label[96];
    snprintf(label, sizeof label, "%s n=%zu WG=%ld", a->what, n, wg);
    float *w = malloc(n * 4), *m = calloc(n, 4), *v = calloc(n, 4), *g = malloc(n * 4);
    qg_test_fill(w, n, -1, 1, seed);
    qg_tensor *tw = upload(ctx, n, w), *tm = upload(ctx, n, m), *tv = upload(ctx, n, v);
    qg_tensor *tg = upload(ctx, n, NULL);
    for (int t = 1; t <= 3; t++) {
        qg_test_fill(g, n, -2, 2, seed + (uint32_t)t);
        QG_EXPECT_OK(qg_tensor_write(tg, g, n * 4));
        QG_EXPECT_OK(qg__adam_step(ctx, tw, tg, tm, tv, a->lr, a->b1, a->b2, a->eps, a->wd, t,
                                   a->scale));
        qg_ref_adam_step(n, w, g, m, v, a->lr, a->b1, a->b2, a->eps, a->wd, t, a->scale);
        expect_tensor(tw, w, n, 1e-6f, 1e-5f, "adam w", label);
        expect_tensor(tm, m, n, 1e-6f, 1e-5f, "adam m", label);
        expect_tensor(tv, v, n, 1e-6f, 1e-5f, "adam v", label);
        expect_tensor(tg, g, n, 0, 0, "adam grad unchanged", label);
    }
    qg_tensor *ts[] = {tw, tm, tv, tg};
    for (size_t i = 0; i < 4; i++)
        qg_tensor_free(ts[i]);
    free(w);
    free(m);
    free(v);
    free(g);
}

Test(optim, device_matches_reference)
{
    static const size_t sizes[] = {1, 33, 1001};
    qg_ctx *ctx = qg_test_ctx();
    for (size_t wi = 0; wi < sizeof wgs / sizeof *wgs; wi++) {
        QG_EXPECT_OK(qg__program_override(ctx, "optim", &wgs[wi]));
        for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
            uint32_t seed = 600 + 10 * (uint32_t)si;
            for (size_t c = 0; c < sizeof sgd_cases / sizeof *sgd_cases; c++)
                run_sgd(ctx, sizes[si], &sgd_cases[c], wgs[wi], seed);
            for (size_t c = 0; c < sizeof adam_cases / sizeof *adam_cases; c++)
                run_adam(ctx, sizes[si], &adam_cases[c], wgs[wi], seed);
        }
    }
}

/* Several tensors per launch (qg__sgd_step_many) give the values of one
 * qg__sgd_step (a launch with one slot) per tensor bit for bit, so a
 * tensor's update does not depend on its slot or its neighbours: five
 * tensors of odd sizes (a full launch of four, then one with three slots
 * unused), each with its own weight decay, three steps of every SGD case. */
Test(optim, sgd_many_equals_one_call_per_tensor)
{
    enum { T = 5 };
    static const size_t sizes[T] = {1, 300, 17, 4099, 64};
    static const float wds[T] = {0.1f, 0.0f, 0.05f, 0.1f, 0.0f};
    qg_ctx *ctx = qg_test_ctx();
    for (size_t c = 0; c < sizeof sgd_cases / sizeof *sgd_cases; c++) {
        const sgd_cfg *s = &sgd_cases[c];
        qg_tensor *w[2][T], *b[2][T], *g[T];
        for (int k = 0; k < T; k++) {
            float *h = malloc(sizes[k] * 4);
            qg_test_fill(h, sizes[k], -1, 1, 300 + (uint32_t)k);
            for (int v = 0; v < 2; v++) {
                w[v][k] = upload(ctx, sizes[k], h);
                b[v][k] = upload(ctx, sizes[k], NULL);
            }
            g[k] = upload(ctx, sizes[k], NULL);
            free(h);
        }
        for (int t = 0; t < 3; t++) {
            for (int k = 0; k < T; k++) {
                float *h = malloc(sizes[k] * 4);
                qg_test_fill(h, sizes[k], -2, 2, 400 + 10 * (uint32_t)t + (uint32_t)k);
                QG_EXPECT_OK(qg_tensor_write(g[k], h, sizes[k] * 4));
                free(h);
                QG_EXPECT_OK(qg__sgd_step(ctx, w[0][k], g[k], b[0][k], s->lr, s->momentum,
                                          wds[k], s->nesterov, t == 0, s->scale));
            }
            QG_EXPECT_OK(qg__sgd_step_many(ctx, T, w[1], (const qg_tensor *const *)g, b[1], wds,
                                           s->lr, s->momentum, s->nesterov, t == 0, s->scale));
            for (int k = 0; k < T; k++) {
                float *a0 = qg_test_read(w[0][k]), *a1 = qg_test_read(w[1][k]);
                float *b0 = qg_test_read(b[0][k]), *b1 = qg_test_read(b[1][k]);
                size_t n = sizes[k], bad = memcmp(a0, a1, n * 4) != 0;
                bad += s->momentum != 0.0f && memcmp(b0, b1, n * 4) != 0;
                cr_expect_eq(bad, 0, "%s step %d tensor %d (n=%zu): w or buf differ", s->what, t,
                             k, n);
                free(a0);
                free(a1);
                free(b0);
                free(b1);
            }
        }
        for (int k = 0; k < T; k++) {
            qg_tensor_free(w[0][k]);
            qg_tensor_free(w[1][k]);
            qg_tensor_free(b[0][k]);
            qg_tensor_free(b[1][k]);
            qg_tensor_free(g[k]);
        }
    }
}

Test(optim, device_follows_torch_optim_by_hand)
{
    /* The device path alone against the hand-worked values. */
    qg_ctx *ctx = qg_test_ctx();
    const sgd_cfg *s = &sgd_cases[2];
    float one = 1.0f, nan_buf = NAN;
    qg_tensor *tw = upload(ctx, 1, &one), *tb = upload(ctx, 1, &nan_buf);
    qg_tensor *tg = upload(ctx, 1, NULL);
    for (int t = 0; t < 3; t++) {
        QG_EXPECT_OK(qg_tensor_write(tg, &grads3[t], 4));
        QG_EXPECT_OK(qg__sgd_step(ctx, tw, tg, tb, s->lr, s->momentum, s->wd, s->nesterov,
                                  t == 0, s->scale));
        float w;
        QG_EXPECT_OK(qg_tensor_read(tw, &w, 4));
        cr_expect(near(w, s->want[t], 1e-5), "device %s step %d: %.9g vs %.9g", s->what,
                  t + 1, w, s->want[t]);
    }
    const adam_cfg *a = &adam_cases[1];
    float zero = 0.0f;
    qg_tensor *tm = upload(ctx, 1, &zero), *tv = upload(ctx, 1, &zero);
    QG_EXPECT_OK(qg_tensor_write(tw, &one, 4));
    for (int t = 1; t <= 3; t++) {
        QG_EXPECT_OK(qg_tensor_write(tg, &grads3[t - 1], 4));
        QG_EXPECT_OK(qg__adam_step(ctx, tw, tg, tm, tv, a->lr, a->b1, a->b2, a->eps, a->wd, t,
                                   a->scale));
        float w;
        QG_EXPECT_OK(qg_tensor_read(tw, &w, 4));
        cr_expect(near(w, a->want[t - 1], 1e-5), "device %s step %d: %.9g vs %.9g", a->what,
                  t, w, a->want[t - 1]);
    }
    cr_expect_eq(qg__adam_step(ctx, tw, tg, tm, tv, 0.1f, 0.9f, 0.999f, 1e-8f, 0, 0, 1.0f),
                 QG_ERR_INVALID_ARG, "step count 0 must be rejected");
    cr_expect_eq(qg__sgd_step(ctx, tw, tg, NULL, 0.1f, 0.9f, 0, 0, 1, 1.0f),
                 QG_ERR_INVALID_ARG, "momentum without a buffer must be rejected");
    qg_tensor *ts[] = {tw, tb, tg, tm, tv};
    for (size_t i = 0; i < 5; i++)
        qg_tensor_free(ts[i]);
}

Test(optim, sumsq_matches_reference)
{
    static const size_t sizes[] = {1, 33, 1001, 5000};
    qg_ctx *ctx = qg_test_ctx();
    int64_t one[1] = {1};
    for (size_t wi = 0; wi < sizeof wgs / sizeof *wgs; wi++) {
        QG_EXPECT_OK(qg__program_override(ctx, "optim", &wgs[wi]));
        qg_tensor *out = qg_test_tensor(ctx, 1, one, NULL);
        double total = 0;
        for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
            size_t n = sizes[si];
            float *x = malloc(n * 4);
            qg_test_fill(x, n, -2, 2, 700 + (uint32_t)n);
            qg_tensor *tx = upload(ctx, n, x);
            float got, want = qg_ref_sumsq(n, x);
            QG_EXPECT_OK(qg__sumsq(ctx, tx, out, 0));
            QG_EXPECT_OK(qg_tensor_read(out, &got, 4));
            cr_expect(qg_test_allclose("sumsq", &got, &want, 1, 1e-6f, 1e-5f), "n=%zu WG=%ld",
                      n, wgs[wi]);
            total += want;
            qg_tensor_free(tx);
            free(x);
        }
        /* The same tensors again, accumulating after the first. */
        float got, want;
        for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
            size_t n = sizes[si];
            float *x = malloc(n * 4);
            qg_test_fill(x, n, -2, 2, 700 + (uint32_t)n);
            qg_tensor *tx = upload(ctx, n, x);
            QG_EXPECT_OK(qg__sumsq(ctx, tx, out, si > 0));
            qg_tensor_free(tx);
            free(x);
        }
        want = (float)total;
        QG_EXPECT_OK(qg_tensor_read(out, &got, 4));
        cr_expect(qg_test_allclose("sumsq accumulated", &got, &want, 1, 1e-6f, 1e-5f),
                  "WG=%ld", wgs[wi]);
        qg_tensor_free(out);
    }
}
