/* tests/test_bn.c: batch norm (src/ops/bn.c, cl/bn.cl) against the C
 * references of src/ref/ref_layers.c, and finite-difference checks of those
 * references.
 *
 * Device tests run NCHW 3x5x7x5, a map with more elements per channel
 * than the largest work-group (3x3x17x13 = 663), and rank-2 [33, 5]
 * (BatchNorm1d), each affine and affine-free, under the default
 * work-group size and two others. Every output is a view inside a larger
 * buffer whose margins hold a sentinel, checked untouched afterwards;
 * overwritten outputs start as NaN so a kernel that reads them fails.
 *
 * Tolerances (device vs reference, |got - want| <= atol + rtol*|want|):
 *   eval forward (elementwise)                  atol 1e-5, rtol 1e-5
 *   train forward, statistics, backward sums    atol 1e-4, rtol 1e-4
 * (device reductions sum in float in tree order; the oracle in double).
 * Gradient checks: central differences in double of L = sum(g * y) on the
 * float reference (step 1e-2; BN is smooth, the truncation error is
 * O(step^2)), |fd - analytic| <= 2e-3 + 1e-2*|analytic|. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/support.h"
#include "cl/ctx.h"
#include "ops/layers.h"
#include "ref/ref_layers.h"

TestSuite(bn, .fini = qg_test_ctx_free);

/* (WG, VW, PARTS) sets: the GPU default, the CPU default and others; the
 * training passes by work-group per channel (PARTS 0) and by image ranges
 * (PARTS 3 splits N = 4 unevenly; PARTS 16 is cut to N). */
static const long params[][3] = {{256, 1, 0}, {2, 16, 16}, {16, 4, 3}, {1, 8, 1}, {64, 16, 0}};
#define NPARAMS (sizeof params / sizeof *params)

/* ---- device buffers with sentinel margins ---- */

#define PAD 13
#define SENTINEL -12345.5f

typedef struct dbuf {
    qg_tensor *whole, *view;
    size_t n;
} dbuf;

/* init NULL fills the view with NaN. */
static dbuf dbuf_new(qg_ctx *ctx, int ndim, const int64_t *shape, const float *init)
{
    dbuf b = {.n = 1};
    for (int i = 0; i < ndim; i++)
        b.n *= (size_t)shape[i];
    size_t total = b.n + 2 * PAD;
    float *h = malloc(total * sizeof *h);
    for (size_t i = 0; i < total; i++)
        h[i] = i < PAD || i >= PAD + b.n ? SENTINEL : init ? init[i - PAD] : NAN;
    int64_t s1[1] = {(int64_t)total};
    b.whole = qg_test_tensor(ctx, 1, s1, h);
    QG_EXPECT_OK(qg_tensor_view(b.whole, PAD, ndim, shape, &b.view));
    free(h);
    return b;
}

/* The view's contents (malloc'd); fails the test if a margin changed. */
static float *dbuf_read(const dbuf *b, const char *label)
{
    float *h = qg_test_read(b->whole);
    for (size_t i = 0; i < PAD; i++) {
        cr_expect_eq(h[i], SENTINEL, "%s: write before the tensor at %zu", label, i);
        cr_expect_eq(h[PAD + b->n + i], SENTINEL, "%s: write past the tensor at %zu", label, i);
    }
    float *v = malloc(b->n * sizeof *v);
    memcpy(v, h + PAD, b->n * sizeof *v);
    free(h);
    return v;
}

static void dbuf_free(dbuf *b)
{
    qg_tensor_free(b->view);
    qg_tensor_free(b->whole);
    b->view = b->whole = NULL;
}

static float *rand_vec(size_t n, float lo, float hi, uint32_t seed)
{
    float *v = malloc((n ? n : 1) * sizeof *v);
    qg_test_fill(v, n, lo, hi, seed);
    return v;
}

/* Reads b, compares with want and frees both the copy and b. */
static void expect_close(dbuf *b, const float *want, float atol, float rtol, const char *what,
                         const char *ctxlabel)
{
    char l[160];
    snprintf(l, sizeof l, "%s [%s]", what, ctxlabel);
    float *got = dbuf_read(b, l);
    cr_expect(qg_test_allclose(l, got, want, b->n, atol, rtol), "%s", l);
    free(got);
    dbuf_free(b);
}

/* ---- device vs reference ---- */

typedef struct bn_shape {
    int ndim, N, C, H, W;
} bn_shape;

static void run_case(qg_ctx *ctx, const bn_shape *s, int affine, const long *wg, uint32_t seed)
{
    int HW = s->ndim == 4 ? s->H * s->W : 1, N = s->N, C = s->C;
    int64_t sh4[4] = {N, C, s->H, s->W}, sh2[2] = {N, C}, sc[1] = {C};
    const int64_t *sh = s->ndim == 4 ? sh4 : sh2;
    size_t n = (size_t)N * C * HW;
    const float momentum = 0.1f, eps = 1e-5f;
    char label[160];
    snprintf(label, sizeof label, "%s %dx%dx%d affine=%d WG=%ld VW=%ld PARTS=%ld",
             s->ndim == 4 ? "NCHW" : "NC", N, C, HW, affine, wg[0], wg[1], wg[2]);

    /* Offset inputs: a mean away from 0 (see also statistics_survive_a_large_mean). */
    float *x = rand_vec(n, 1.0f, 4.0f, seed), *dy = rand_vec(n, -1, 1, seed + 1);
    float *gamma = rand_vec(C, 0.5f, 1.5f, seed + 2), *beta = rand_vec(C, -0.5f, 0.5f, seed + 3);
    float *rm0 = rand_vec(C, -0.2f, 0.2f, seed + 4), *rv0 = rand_vec(C, 0.5f, 2.0f, seed + 5);
    float *dx0 = rand_vec(n, -1, 1, seed + 6);
    float *y_ref = malloc(n * 4), *dx_ref = malloc(n * 4), *dxa_ref = malloc(n * 4);
    float *rm = malloc(C * 4), *rv = malloc(C * 4), *smean = malloc(C * 4);
    float *sinv = malloc(C * 4), *dg_ref = malloc(C * 4), *db_ref = malloc(C * 4);
    const float *g = affine ? gamma : NULL, *b = affine ? beta : NULL;

    memcpy(rm, rm0, C * 4);
    memcpy(rv, rv0, C * 4);
    qg_ref_bn_fwd_train(N, C, HW, x, g, b, rm, rv, momentum, eps, y_ref, smean, sinv);

    dbuf tx = dbuf_new(ctx, s->ndim, sh, x), tdy = dbuf_new(ctx, s->ndim, sh, dy);
    dbuf tg = dbuf_new(ctx, 1, sc, gamma), tb = dbuf_new(ctx, 1, sc, beta);
    dbuf trm = dbuf_new(ctx, 1, sc, rm0), trv = dbuf_new(ctx, 1, sc, rv0);
    dbuf ty = dbuf_new(ctx, s->ndim, sh, NULL);
    dbuf tsm = dbuf_new(ctx, 1, sc, NULL), tsi = dbuf_new(ctx, 1, sc, NULL);
    QG_EXPECT_OK(qg__bn_fwd_train(ctx, tx.view, affine ? tg.view : NULL,
                                  affine ? tb.view : NULL, trm.view, trv.view, momentum, eps,
                                  ty.view, tsm.view, tsi.view));
    expect_close(&ty, y_ref, 1e-4f, 1e-4f, "train y", label);
    expect_close(&trm, rm, 1e-4f, 1e-4f, "running_mean", label);
    expect_close(&trv, rv, 1e-4f, 1e-4f, "running_var", label);
    /* The backward below takes the reference's saved statistics, so the
     * device backward is checked on its own. */
    float *gsm = dbuf_read(&tsm, "save_mean"), *gsi = dbuf_read(&tsi, "save_invstd");
    cr_expect(qg_test_allclose("save_mean", gsm, smean, C, 1e-4f, 1e-4f), "%s", label);
    cr_expect(qg_test_allclose("save_invstd", gsi, sinv, C, 1e-4f, 1e-4f), "%s", label);
    free(gsm);
    free(gsi);
    QG_EXPECT_OK(qg_tensor_write(tsm.view, smean, C * 4));
    QG_EXPECT_OK(qg_tensor_write(tsi.view, sinv, C * 4));

    /* Eval with the (reference-updated) running statistics. */
    trm = dbuf_new(ctx, 1, sc, rm);
    trv = dbuf_new(ctx, 1, sc, rv);
    ty = dbuf_new(ctx, s->ndim, sh, NULL);
    QG_EXPECT_OK(qg__bn_fwd_eval(ctx, tx.view, affine ? tg.view : NULL,
                                 affine ? tb.view : NULL, trm.view, trv.view, eps, ty.view));
    qg_ref_bn_fwd_eval(N, C, HW, x, g, b, rm, rv, eps, y_ref);
    expect_close(&ty, y_ref, 1e-5f, 1e-5f, "eval y", label);
    dbuf_free(&trm);
    dbuf_free(&trv);

    /* Backward, overwriting dx (NaN start) and accumulating into dx0. */
    qg_ref_bn_bwd(N, C, HW, x, dy, g, smean, sinv, dx_ref, dg_ref, db_ref, 0);
    memcpy(dxa_ref, dx0, n * 4);
    qg_ref_bn_bwd(N, C, HW, x, dy, g, smean, sinv, dxa_ref, NULL, NULL, 1);
    dbuf tdx = dbuf_new(ctx, s->ndim, sh, NULL);
    dbuf tdg = dbuf_new(ctx, 1, sc, NULL), tdb = dbuf_new(ctx, 1, sc, NULL);
    QG_EXPECT_OK(qg__bn_bwd(ctx, tx.view, tdy.view, affine ? tg.view : NULL, tsm.view,
                            tsi.view, tdx.view, affine ? tdg.view : NULL,
                            affine ? tdb.view : NULL, 0));
    expect_close(&tdx, dx_ref, 1e-4f, 1e-4f, "dx", label);
    if (affine) {
        expect_close(&tdg, dg_ref, 1e-4f, 1e-4f, "dgamma", label);
        expect_close(&tdb, db_ref, 1e-4f, 1e-4f, "dbeta", label);
    } else {
        /* Untouched: still NaN inside, sentinels outside. */
        float *u = dbuf_read(&tdg, "dgamma unused");
        for (int c = 0; c < C; c++)
            cr_expect(isnan(u[c]), "dgamma written without being asked [%s]", label);
        free(u);
        dbuf_free(&tdg);
        dbuf_free(&tdb);
    }
    tdx = dbuf_new(ctx, s->ndim, sh, dx0);
    QG_EXPECT_OK(qg__bn_bwd(ctx, tx.view, tdy.view, affine ? tg.view : NULL, tsm.view,
                            tsi.view, tdx.view, NULL, NULL, 1));
    expect_close(&tdx, dxa_ref, 1e-4f, 1e-4f, "dx accumulate", label);

    dbuf *all[] = {&tx, &tdy, &tg, &tb, &tsm, &tsi};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        dbuf_free(all[i]);
    float *hs[] = {x, dy, gamma, beta, rm0, rv0, dx0, y_ref, dx_ref, dxa_ref,
                   rm, rv, smean, sinv, dg_ref, db_ref};
    for (size_t i = 0; i < sizeof hs / sizeof *hs; i++)
        free(hs[i]);
}

Test(bn, device_matches_reference)
{
    static const bn_shape shapes[] = {
        {4, 3, 5, 7, 5},
        {4, 3, 3, 17, 13},
        {2, 33, 5, 1, 1},
    };
    qg_ctx *ctx = qg_test_ctx();
    for (size_t w = 0; w < NPARAMS; w++) {
        QG_EXPECT_OK(qg__program_override(ctx, "bn", params[w]));
        for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++)
            for (int affine = 1; affine >= 0; affine--)
                run_case(ctx, &shapes[si], affine, params[w], 100 + 10 * (uint32_t)si);
    }
}

/* ---- fused residual add + ReLU / PACT against the composed references ---- */

#define PACT_ALPHA 1.25f

/* y = act(bn(x) + res) (each part optional; act QG_BN_NONE, RELU or PACT
 * with alpha PACT_ALPHA); backward g = dy*[y > 0] (ReLU) or dy*[0 <= z <=
 * alpha] (PACT, z the pre-activation), dx = bn_bwd(g), dres = g (or dres0
 * + g), dalpha = dalpha0 + sum dy*[z > alpha]. */
static void run_fused_case(qg_ctx *ctx, const bn_shape *s, int use_res, int act, int train,
                           const long *wg, uint32_t seed)
{
    int HW = s->ndim == 4 ? s->H * s->W : 1, N = s->N, C = s->C;
    int64_t sh4[4] = {N, C, s->H, s->W}, sh2[2] = {N, C}, sc[1] = {C}, s1[1] = {1};
    const int64_t *sh = s->ndim == 4 ? sh4 : sh2;
    size_t n = (size_t)N * C * HW;
    char label[160];
    snprintf(label, sizeof label, "fused %dx%dx%d res=%d act=%d train=%d WG=%ld VW=%ld PARTS=%ld",
             N, C, HW, use_res, act, train, wg[0], wg[1], wg[2]);
    float *x = rand_vec(n, -1.0f, 3.0f, seed), *res = rand_vec(n, -2, 1, seed + 1);
    float *dy = rand_vec(n, -1, 1, seed + 2), *dres0 = rand_vec(n, -1, 1, seed + 3);
    float *gamma = rand_vec(C, 0.5f, 1.5f, seed + 4), *beta = rand_vec(C, -0.5f, 0.5f, seed + 5);
    float *rm = rand_vec(C, -0.2f, 0.2f, seed + 6), *rv = rand_vec(C, 0.5f, 2.0f, seed + 7);
    float *y = malloc(n * 4), *g = malloc(n * 4), *dx = malloc(n * 4), *dresa = malloc(n * 4);
    float *smean = malloc(C * 4), *sinv = malloc(C * 4), *dgam = malloc(C * 4);
    float *dbet = malloc(C * 4), *rm1 = malloc(C * 4), *rv1 = malloc(C * 4);
    float alpha = PACT_ALPHA, dalpha0 = 0.5f;
    memcpy(rm1, rm, C * 4);
    memcpy(rv1, rv, C * 4);
    if (train)
        qg_ref_bn_fwd_train(N, C, HW, x, gamma, beta, rm1, rv1, 0.1f, 1e-5f, y, smean, sinv);
    else
        qg_ref_bn_fwd_eval(N, C, HW, x, gamma, beta, rm, rv, 1e-5f, y);
    for (size_t i = 0; i < n; i++) {
        y[i] += use_res ? res[i] : 0.0f;
        if (act != QG_BN_NONE)
            y[i] = y[i] > 0 ? y[i] : 0.0f;
        if (act == QG_BN_PACT)
            y[i] = y[i] < alpha ? y[i] : alpha;
    }

    dbuf tx = dbuf_new(ctx, s->ndim, sh, x), tres = dbuf_new(ctx, s->ndim, sh, res);
    dbuf tg = dbuf_new(ctx, 1, sc, gamma), tb = dbuf_new(ctx, 1, sc, beta);
    dbuf trm = dbuf_new(ctx, 1, sc, rm), trv = dbuf_new(ctx, 1, sc, rv);
    dbuf ty = dbuf_new(ctx, s->ndim, sh, NULL), tal = dbuf_new(ctx, 1, s1, &alpha);
    dbuf tsm = dbuf_new(ctx, 1, sc, NULL), tsi = dbuf_new(ctx, 1, sc, NULL);
    float stale = 1e9f;   /* ymax must be reset, not max'ed into */
    dbuf tym = dbuf_new(ctx, 1, s1, &stale);
    if (train)
        QG_EXPECT_OK(qg__bn_act_fwd_train(ctx, tx.view, tg.view, tb.view, trm.view, trv.view,
                                          0.1f, 1e-5f, use_res ? tres.view : NULL, act,
                                          tal.view, ty.view, tsm.view, tsi.view, tym.view,
                                          1e-7f));
    else
        QG_EXPECT_OK(qg__bn_act_fwd_eval(ctx, tx.view, tg.view, tb.view, trm.view, trv.view,
                                         1e-5f, use_res ? tres.view : NULL, act, tal.view,
                                         ty.view));
    /* The device's y (its ReLU mask) drives its backward; compare first. */
    float *gy = qg_test_read(ty.view);
    cr_expect(qg_test_allclose(label, gy, y, n, 1e-4f, 1e-4f), "y [%s]", label);
    if (train) {
        /* max |y| + add over the y it stored, exactly */
        float m = 0.0f, *got = qg_test_read(tym.view);
        for (size_t i = 0; i < n; i++)
            m = fmaxf(m, fabsf(gy[i]));
        cr_expect(got[0] == m + 1e-7f, "ymax %.9g, want %.9g [%s]", got[0], m + 1e-7f, label);
        free(got);
    }
    free(gy);
    if (train) {
        expect_close(&trm, rm1, 1e-4f, 1e-4f, "running_mean", label);
        expect_close(&trv, rv1, 1e-4f, 1e-4f, "running_var", label);
        /* Backward from the reference statistics and output. The PACT mask
         * comes from z formed as the kernels form it from those statistics
         * (float, a and b unfused, then one fma), which it must match. */
        double sda = 0;
        for (int c = 0; c < C; c++) {
            volatile float a = sinv[c] * gamma[c], am = smean[c] * a;
            float b = beta[c] - am;
            for (int nn = 0; nn < N; nn++)
                for (int j = 0; j < HW; j++) {
                    size_t i = ((size_t)nn * C + c) * HW + j;
                    float z = fmaf(x[i], a, b) + (use_res ? res[i] : 0.0f);
                    if (act == QG_BN_RELU)
                        g[i] = y[i] > 0 ? dy[i] : 0.0f;
                    else if (act == QG_BN_PACT)
                        g[i] = z >= 0 && z <= alpha ? dy[i] : 0.0f;
                    else
                        g[i] = dy[i];
                    if (act == QG_BN_PACT && z > alpha)
                        sda += dy[i];
                    dresa[i] = dres0[i] + g[i];
                }
        }
        float want_dalpha = (float)(dalpha0 + sda);
        QG_EXPECT_OK(qg_tensor_write(tsm.view, smean, C * 4));
        QG_EXPECT_OK(qg_tensor_write(tsi.view, sinv, C * 4));
        QG_EXPECT_OK(qg_tensor_write(ty.view, y, n * 4));
        qg_ref_bn_bwd(N, C, HW, x, g, gamma, smean, sinv, dx, dgam, dbet, 0);
        dbuf tdy = dbuf_new(ctx, s->ndim, sh, dy), tdx = dbuf_new(ctx, s->ndim, sh, NULL);
        dbuf tdg = dbuf_new(ctx, 1, sc, NULL), tdb = dbuf_new(ctx, 1, sc, NULL);
        /* PACT with a residual: dres replaces res in place (option A's
         * shortcut buffer), so the kernel must read each res first. */
        int alias = act == QG_BN_PACT && use_res;
        dbuf tdr = dbuf_new(ctx, s->ndim, sh, alias ? res : NULL);
        dbuf tda = dbuf_new(ctx, 1, s1, &dalpha0), tpart = dbuf_new(ctx, 1, sc, NULL);
        qg_bn_pact_bwd pact = {.alpha = tal.view, .beta = tb.view,
                               .res = use_res ? (alias ? tdr.view : tres.view) : NULL,
                               .dalpha = tda.view, .part = tpart.view};
        QG_EXPECT_OK(qg__bn_act_bwd(ctx, tx.view, ty.view, tdy.view, tg.view, tsm.view,
                                    tsi.view, act, tdx.view, tdg.view, tdb.view, 0,
                                    use_res ? tdr.view : NULL, 0,
                                    act == QG_BN_PACT ? &pact : NULL));
        expect_close(&tdx, dx, 1e-4f, 1e-4f, "dx", label);
        expect_close(&tdg, dgam, 1e-4f, 1e-4f, "dgamma", label);
        expect_close(&tdb, dbet, 1e-4f, 1e-4f, "dbeta", label);
        if (act == QG_BN_RELU && !use_res) {
            /* without y: the mask recomputed from x and beta */
            qg_bn_pact_bwd rz = {.beta = tb.view};
            tdx = dbuf_new(ctx, s->ndim, sh, NULL);
            tdg = dbuf_new(ctx, 1, sc, NULL);
            tdb = dbuf_new(ctx, 1, sc, NULL);
            QG_EXPECT_OK(qg__bn_act_bwd(ctx, tx.view, NULL, tdy.view, tg.view, tsm.view,
                                        tsi.view, act, tdx.view, tdg.view, tdb.view, 0, NULL, 0,
                                        &rz));
            expect_close(&tdx, dx, 1e-4f, 1e-4f, "dx, mask from x", label);
            expect_close(&tdg, dgam, 1e-4f, 1e-4f, "dgamma, mask from x", label);
            expect_close(&tdb, dbet, 1e-4f, 1e-4f, "dbeta, mask from x", label);
        }
        if (act == QG_BN_PACT) {
            expect_close(&tda, &want_dalpha, 1e-4f, 1e-4f, "dalpha", label);
            cr_expect(sda != 0, "no value above alpha: the dalpha check is empty [%s]", label);
        } else {
            dbuf_free(&tda);
        }
        dbuf_free(&tpart);
        if (use_res) {
            expect_close(&tdr, g, 0, 0, "dres", label);
            /* Accumulating into an existing residual gradient. */
            tdr = dbuf_new(ctx, s->ndim, sh, dres0);
            tdx = dbuf_new(ctx, s->ndim, sh, NULL);
            tda = dbuf_new(ctx, 1, s1, &dalpha0);
            tpart = dbuf_new(ctx, 1, sc, NULL);
            pact.res = tres.view;
            pact.dalpha = tda.view;
            pact.part = tpart.view;
            QG_EXPECT_OK(qg__bn_act_bwd(ctx, tx.view, ty.view, tdy.view, tg.view, tsm.view,
                                        tsi.view, act, tdx.view, NULL, NULL, 0, tdr.view, 1,
                                        act == QG_BN_PACT ? &pact : NULL));
            expect_close(&tdr, dresa, 0, 0, "dres accumulate", label);
            dbuf_free(&tdx);
            dbuf_free(&tda);
            dbuf_free(&tpart);
        } else {
            float *u = dbuf_read(&tdr, "dres unused");
            cr_expect(isnan(u[0]) && isnan(u[n - 1]), "dres written without being asked [%s]",
                      label);
            free(u);
            dbuf_free(&tdr);
        }
        dbuf_free(&tdy);
    } else {
        dbuf_free(&trm);
        dbuf_free(&trv);
    }
    dbuf *all[] = {&tx, &tres, &tg, &tb, &ty, &tsm, &tsi, &tal, &tym};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        dbuf_free(all[i]);
    float *hs[] = {x, res, dy, dres0, gamma, beta, rm, rv, y, g, dx, dresa, smean, sinv, dgam,
                   dbet, rm1, rv1};
    for (size_t i = 0; i < sizeof hs / sizeof *hs; i++)
        free(hs[i]);
}

Test(bn, fused_residual_relu_matches_composed_references)
{
    static const bn_shape shapes[] = {{4, 3, 5, 7, 5}, {4, 2, 3, 16, 16}, {2, 17, 4, 1, 1}};
    qg_ctx *ctx = qg_test_ctx();
    for (size_t w = 0; w < NPARAMS; w++) {
        QG_EXPECT_OK(qg__program_override(ctx, "bn", params[w]));
        for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++)
            for (int mode = 0; mode < 6; mode++)
                run_fused_case(ctx, &shapes[si], mode & 1,
                               (mode >> 1) & 1 || mode == 4 ? QG_BN_RELU : QG_BN_NONE,
                               mode < 4, params[w], 500 + 7 * (uint32_t)(si * 6 + mode));
    }
}

/* PACT's clip fused behind the norm (and the residual add): forward in
 * training and eval, backward with dalpha, the option-A in-place dres. */
Test(bn, fused_pact_matches_composed_references)
{
    static const bn_shape shapes[] = {{4, 3, 5, 7, 5}, {4, 2, 3, 16, 16}, {2, 17, 4, 1, 1}};
    qg_ctx *ctx = qg_test_ctx();
    for (size_t w = 0; w < NPARAMS; w++) {
        QG_EXPECT_OK(qg__program_override(ctx, "bn", params[w]));
        for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++)
            for (int mode = 0; mode < 3; mode++)
                run_fused_case(ctx, &shapes[si], mode & 1, QG_BN_PACT, mode < 2, params[w],
                               900 + 5 * (uint32_t)(si * 3 + mode));
    }
}

/* --sync-bn (src/ops/bn_sync.c) with one process: the partial sums go
 * through the host rewrite (global moments, shift = mean) and every
 * result -- plain and fused, ymax, running statistics, gradients, dalpha
 * -- still matches the references, for every parameter set (those without
 * parts are forced onto the parts path). tests/test_dist.sh checks 2
 * processes against 1. */
Test(bn, sync_bn_rewrite_keeps_one_process_results)
{
    static const bn_shape shapes[] = {{4, 3, 5, 7, 5}, {2, 17, 4, 1, 1}};
    qg_ctx *ctx = qg_test_ctx();
    ctx->sync_bn = 1;
    for (size_t w = 0; w < NPARAMS; w++) {
        QG_EXPECT_OK(qg__program_override(ctx, "bn", params[w]));
        for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
            run_case(ctx, &shapes[si], 1, params[w], 1300 + 10 * (uint32_t)si);
            for (int mode = 0; mode < 4; mode++)
                run_fused_case(ctx, &shapes[si], mode & 1, mode < 2 ? QG_BN_RELU : QG_BN_PACT,
                               1, params[w], 1400 + 7 * (uint32_t)(si * 4 + mode));
        }
    }
    ctx->sync_bn = 0;
}

/* PACT for a reader whose STE passes only y != 0 (pact.nonzero): the
 * backward with dy equals the plain PACT backward with dy already zeroed
 * where y == 0 -- bit for bit, both kernel families, with and without a
 * residual, for alpha > 0, alpha == 0 (y = 0 everywhere: no gradient and no
 * dalpha at all) and alpha < 0 (y = alpha). Channel 0 is all zeros with
 * beta 0, so z == 0 exactly there: plain PACT passes it, the STE does not. */
Test(bn, pact_nonzero_equals_masking_dy_where_y_is_zero)
{
    enum { N = 4, C = 3, H = 5, W = 7 };
    const size_t n = (size_t)N * C * H * W, HW = H * W;
    int64_t sh[4] = {N, C, H, W}, sc[1] = {C}, s1[1] = {1};
    static const float alphas[] = {0.6f, 0.0f, -0.5f};
    qg_ctx *ctx = qg_test_ctx();
    float *x = rand_vec(n, -1, 1, 1201), *res = rand_vec(n, -0.5f, 0.5f, 1202);
    float *dy = rand_vec(n, -1, 1, 1203), *gamma = rand_vec(C, 0.5f, 1.5f, 1204);
    float beta[C] = {0.0f, 0.1f, -0.2f}, zero1 = 0.0f, dal0 = 0.25f;
    const float zeros3[C] = {0}, ones3[C] = {1, 1, 1};
    for (int nn = 0; nn < N; nn++)
        for (size_t j = 0; j < HW; j++)
            x[(size_t)nn * C * HW + j] = res[(size_t)nn * C * HW + j] = 0.0f;
    for (size_t w = 0; w < NPARAMS; w++) {
        QG_EXPECT_OK(qg__program_override(ctx, "bn", params[w]));
        for (size_t ai = 0; ai < sizeof alphas / sizeof *alphas; ai++) {
            for (int use_res = 0; use_res < 2; use_res++) {
                char l[160];
                snprintf(l, sizeof l, "alpha %g res %d WG=%ld VW=%ld PARTS=%ld", alphas[ai],
                         use_res, params[w][0], params[w][1], params[w][2]);
                dbuf tx = dbuf_new(ctx, 4, sh, x), tr = dbuf_new(ctx, 4, sh, res);
                dbuf tg = dbuf_new(ctx, 1, sc, gamma), tb = dbuf_new(ctx, 1, sc, beta);
                dbuf trm = dbuf_new(ctx, 1, sc, zeros3), trv = dbuf_new(ctx, 1, sc, ones3);
                dbuf tal = dbuf_new(ctx, 1, s1, &alphas[ai]), ty = dbuf_new(ctx, 4, sh, NULL);
                dbuf tsm = dbuf_new(ctx, 1, sc, NULL), tsi = dbuf_new(ctx, 1, sc, NULL);
                dbuf tym = dbuf_new(ctx, 1, s1, &zero1);
                QG_EXPECT_OK(qg__bn_act_fwd_train(ctx, tx.view, tg.view, tb.view, trm.view,
                                                  trv.view, 0.1f, 1e-5f,
                                                  use_res ? tr.view : NULL, QG_BN_PACT,
                                                  tal.view, ty.view, tsm.view, tsi.view,
                                                  tym.view, 1e-7f));
                float *y = dbuf_read(&ty, l), *dym = malloc(n * sizeof *dym);
                size_t zeros = 0;
                for (size_t i = 0; i < n; i++) {
                    dym[i] = y[i] != 0.0f ? dy[i] : 0.0f;
                    zeros += y[i] == 0.0f && dy[i] != 0.0f;
                }
                if (alphas[ai] >= 0.0f)
                    cr_expect(zeros >= (size_t)N * HW, "%zu zeros of y: the check is empty [%s]",
                              zeros, l);
                float *got[2][5];
                for (int nz = 0; nz < 2; nz++) {
                    dbuf tdy = dbuf_new(ctx, 4, sh, nz ? dy : dym);
                    dbuf tdx = dbuf_new(ctx, 4, sh, NULL), tdr = dbuf_new(ctx, 4, sh, NULL);
                    dbuf tdg = dbuf_new(ctx, 1, sc, NULL), tdb = dbuf_new(ctx, 1, sc, NULL);
                    dbuf tda = dbuf_new(ctx, 1, s1, &dal0), tp = dbuf_new(ctx, 1, sc, NULL);
                    qg_bn_pact_bwd pact = {.alpha = tal.view, .beta = tb.view,
                                           .res = use_res ? tr.view : NULL,
                                           .dalpha = tda.view, .part = tp.view,
                                           .nonzero = nz};
                    QG_EXPECT_OK(qg__bn_act_bwd(ctx, tx.view, ty.view, tdy.view, tg.view,
                                                tsm.view, tsi.view, QG_BN_PACT, tdx.view,
                                                tdg.view, tdb.view, 0,
                                                use_res ? tdr.view : NULL, 0, &pact));
                    dbuf *outs[5] = {&tdx, &tdg, &tdb, &tda, &tdr};
                    for (int k = 0; k < 5; k++)
                        got[nz][k] = k < 4 || use_res ? dbuf_read(outs[k], l) : NULL;
                    dbuf *all[] = {&tdy, &tdx, &tdr, &tdg, &tdb, &tda, &tp};
                    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
                        dbuf_free(all[i]);
                }
                static const char *what[5] = {"dx", "dgamma", "dbeta", "dalpha", "dres"};
                const size_t len[5] = {n, C, C, 1, n};
                for (int k = 0; k < 5; k++) {
                    if (!got[0][k])
                        continue;
                    size_t diff = 0;
                    for (size_t i = 0; i < len[k]; i++)
                        diff += memcmp(&got[0][k][i], &got[1][k][i], sizeof(float)) != 0;
                    cr_expect_eq(diff, 0, "%s: %zu of %zu values differ [%s]", what[k], diff,
                                 len[k], l);
                    if (alphas[ai] == 0.0f && k == 3)
                        cr_expect_eq(got[1][k][0], dal0, "alpha 0: dalpha moved [%s]", l);
                    free(got[0][k]);
                    free(got[1][k]);
                }
                free(y);
                free(dym);
                dbuf *all[] = {&tx, &tr, &tg, &tb, &trm, &trv, &tal, &ty, &tsm, &tsi, &tym};
                for (size_t i = 0; i < sizeof all / sizeof *all; i++)
                    dbuf_free(all[i]);
            }
        }
    }
    free(x);
    free(res);
    free(dy);
    free(gamma);
}

/* Eval BN folded into conv weights: device vs the double-precision
 * reference, |got - want| <= 1e-6 + 1e-5*|want|, with and without a conv
 * bias and affine parameters, K = 5 channels of 3x3x3 weights. */
Test(bn, fold_into_conv_matches_reference)
{
    qg_ctx *ctx = qg_test_ctx();
    const int K = 5, per = 27;
    int64_t ws[4] = {K, 3, 3, 3}, ks[1] = {K};
    float *w = rand_vec((size_t)K * per, -1, 1, 700), *b = rand_vec(K, -1, 1, 701);
    float *g = rand_vec(K, 0.5f, 1.5f, 702), *bt = rand_vec(K, -0.5f, 0.5f, 703);
    float *rm = rand_vec(K, -0.3f, 0.3f, 704), *rv = rand_vec(K, 0.2f, 3.0f, 705);
    float wf_ref[5 * 27], bf_ref[5];
    for (int mode = 0; mode < 4; mode++) {
        int has_b = mode & 1, affine = mode >> 1;
        qg_ref_bn_fold(K, per, w, has_b ? b : NULL, affine ? g : NULL, affine ? bt : NULL, rm,
                       rv, 1e-5f, wf_ref, bf_ref);
        dbuf tw = dbuf_new(ctx, 4, ws, w), tb = dbuf_new(ctx, 1, ks, b);
        dbuf tg = dbuf_new(ctx, 1, ks, g), tbt = dbuf_new(ctx, 1, ks, bt);
        dbuf trm = dbuf_new(ctx, 1, ks, rm), trv = dbuf_new(ctx, 1, ks, rv);
        dbuf twf = dbuf_new(ctx, 4, ws, NULL), tbf = dbuf_new(ctx, 1, ks, NULL);
        QG_EXPECT_OK(qg__bn_fold(ctx, tw.view, has_b ? tb.view : NULL, affine ? tg.view : NULL,
                                 affine ? tbt.view : NULL, trm.view, trv.view, 1e-5f, twf.view,
                                 tbf.view));
        char l[48];
        snprintf(l, sizeof l, "bias=%d affine=%d", has_b, affine);
        expect_close(&twf, wf_ref, 1e-6f, 1e-5f, "folded weight", l);
        expect_close(&tbf, bf_ref, 1e-6f, 1e-5f, "folded bias", l);
        dbuf *all[] = {&tw, &tb, &tg, &tbt, &trm, &trv};
        for (size_t i = 0; i < 6; i++)
            dbuf_free(all[i]);
    }
    free(w);
    free(b);
    free(g);
    free(bt);
    free(rm);
    free(rv);
}

Test(bn, fused_relu_without_output_is_an_error)
{
    qg_ctx *ctx = qg_test_ctx();
    int64_t sh[2] = {3, 4}, s4[1] = {4};
    qg_tensor *x = qg_test_tensor(ctx, 2, sh, NULL), *c4 = qg_test_tensor(ctx, 1, s4, NULL);
    qg_tensor *d4 = qg_test_tensor(ctx, 1, s4, NULL), *dx = qg_test_tensor(ctx, 2, sh, NULL);
    cr_expect_eq(qg__bn_act_bwd(ctx, x, NULL, x, NULL, c4, d4, QG_BN_RELU, dx, NULL, NULL, 0,
                                NULL, 0, NULL),
                 QG_ERR_INVALID_ARG);
    cr_expect(strstr(qg_last_error(), "ReLU") != NULL, "message: %s", qg_last_error());
    cr_expect_eq(qg__bn_act_bwd(ctx, x, NULL, x, NULL, c4, d4, QG_BN_PACT, dx, NULL, NULL, 0,
                                NULL, 0, NULL),
                 QG_ERR_INVALID_ARG);
    cr_expect(strstr(qg_last_error(), "alpha") != NULL, "message: %s", qg_last_error());
    qg_tensor *ts[] = {x, c4, d4, dx};
    for (size_t i = 0; i < 4; i++)
        qg_tensor_free(ts[i]);
}

Test(bn, running_stats_follow_pytorch_on_a_worked_example)
{
    /* One channel, x = {1, 2, 3, 6}: mean 3, biased var 3.5, unbiased
     * 14/3. With momentum 0.1 from (0, 1): running_mean 0.3, running_var
     * 0.9 + 0.1*14/3 = 1.3666667; y = (x - 3)/sqrt(3.5 + eps). */
    qg_ctx *ctx = qg_test_ctx();
    float x[4] = {1, 2, 3, 6}, rm = 0, rv = 1;
    int64_t sh[2] = {4, 1}, sc[1] = {1};
    qg_tensor *tx = qg_test_tensor(ctx, 2, sh, x), *ty = qg_test_tensor(ctx, 2, sh, NULL);
    qg_tensor *trm = qg_test_tensor(ctx, 1, sc, &rm), *trv = qg_test_tensor(ctx, 1, sc, &rv);
    qg_tensor *tsm = qg_test_tensor(ctx, 1, sc, NULL), *tsi = qg_test_tensor(ctx, 1, sc, NULL);
    QG_EXPECT_OK(qg__bn_fwd_train(ctx, tx, NULL, NULL, trm, trv, 0.1f, 1e-5f, ty, tsm, tsi));
    float y[4], got_rm, got_rv, got_sm, got_si;
    QG_EXPECT_OK(qg_tensor_read(ty, y, sizeof y));
    QG_EXPECT_OK(qg_tensor_read(trm, &got_rm, 4));
    QG_EXPECT_OK(qg_tensor_read(trv, &got_rv, 4));
    QG_EXPECT_OK(qg_tensor_read(tsm, &got_sm, 4));
    QG_EXPECT_OK(qg_tensor_read(tsi, &got_si, 4));
    double inv = 1.0 / sqrt(3.5 + 1e-5);
    float want_y[4] = {(float)(-2 * inv), (float)(-inv), 0, (float)(3 * inv)};
    float want_rm = 0.3f, want_rv = (float)(0.9 + 0.1 * 14.0 / 3.0), want_si = (float)inv;
    float want_sm = 3.0f;
    cr_expect(qg_test_allclose("worked y", y, want_y, 4, 1e-6f, 1e-5f));
    cr_expect(qg_test_allclose("worked running_mean", &got_rm, &want_rm, 1, 1e-6f, 1e-5f));
    cr_expect(qg_test_allclose("worked running_var", &got_rv, &want_rv, 1, 1e-6f, 1e-5f));
    cr_expect(qg_test_allclose("worked save_mean", &got_sm, &want_sm, 1, 1e-6f, 1e-5f));
    cr_expect(qg_test_allclose("worked save_invstd", &got_si, &want_si, 1, 1e-6f, 1e-5f));
    qg_tensor *ts[] = {tx, ty, trm, trv, tsm, tsi};
    for (size_t i = 0; i < 6; i++)
        qg_tensor_free(ts[i]);
}

/* Channels whose mean is far from 0 next to their spread (1000 +- 1 and
 * -300 +- 0.1): the one-pass statistics must keep the variance, where
 * float E[x^2] - mean^2 would lose most of it (1e6 and 9e4 times 2^-24
 * against variances of 0.33 and 0.0033). invstd and y within 1e-3 of the
 * double reference (the float mean's own rounding, half an ulp of 300,
 * moves y by 3e-4). */
Test(bn, statistics_survive_a_large_mean)
{
    qg_ctx *ctx = qg_test_ctx();
    enum { N = 4, C = 2, HW = 64 };
    float x[N * C * HW], y[N * C * HW], rm[C] = {0, 0}, rv[C] = {1, 1}, sm[C], si[C];
    float *u = rand_vec(N * C * HW, -1.0f, 1.0f, 77);
    for (int n = 0; n < N; n++)
        for (int i = 0; i < HW; i++) {
            x[(n * C + 0) * HW + i] = 1000.0f + u[(n * C + 0) * HW + i];
            x[(n * C + 1) * HW + i] = -300.0f + 0.1f * u[(n * C + 1) * HW + i];
        }
    free(u);
    qg_ref_bn_fwd_train(N, C, HW, x, NULL, NULL, rm, rv, 0.1f, 1e-5f, y, sm, si);
    int64_t sh[4] = {N, C, 8, 8}, sc[1] = {C};
    qg_tensor *tx = qg_test_tensor(ctx, 4, sh, x), *ty = qg_test_tensor(ctx, 4, sh, NULL);
    qg_tensor *tsm = qg_test_tensor(ctx, 1, sc, NULL), *tsi = qg_test_tensor(ctx, 1, sc, NULL);
    for (size_t w = 0; w < NPARAMS; w++) {
        QG_EXPECT_OK(qg__program_override(ctx, "bn", params[w]));
        QG_EXPECT_OK(qg__bn_fwd_train(ctx, tx, NULL, NULL, NULL, NULL, 0.1f, 1e-5f, ty, tsm, tsi));
        float *gi = qg_test_read(tsi), *gy = qg_test_read(ty);
        char l[96];
        snprintf(l, sizeof l, "large mean invstd WG=%ld VW=%ld PARTS=%ld", params[w][0],
                 params[w][1], params[w][2]);
        cr_expect(qg_test_allclose(l, gi, si, C, 0, 1e-3f), "%s", l);
        snprintf(l, sizeof l, "large mean y WG=%ld VW=%ld PARTS=%ld", params[w][0], params[w][1],
                 params[w][2]);
        cr_expect(qg_test_allclose(l, gy, y, N * C * HW, 1e-3f, 1e-3f), "%s", l);
        free(gi);
        free(gy);
    }
    QG_EXPECT_OK(qg__program_override(ctx, "bn", NULL));
    qg_tensor *ts[] = {tx, ty, tsm, tsi};
    for (size_t i = 0; i < 4; i++)
        qg_tensor_free(ts[i]);
}

Test(bn, bad_arguments_are_errors)
{
    qg_ctx *ctx = qg_test_ctx();
    int64_t one[2] = {1, 4}, sh[2] = {3, 4}, s3[1] = {3}, s4[1] = {4};
    qg_tensor *x1 = qg_test_tensor(ctx, 2, one, NULL), *x = qg_test_tensor(ctx, 2, sh, NULL);
    qg_tensor *y = qg_test_tensor(ctx, 2, sh, NULL), *c3 = qg_test_tensor(ctx, 1, s3, NULL);
    qg_tensor *c4 = qg_test_tensor(ctx, 1, s4, NULL), *d4 = qg_test_tensor(ctx, 1, s4, NULL);
    /* One value per channel cannot be normalised in training. */
    cr_expect_eq(qg__bn_fwd_train(ctx, x1, NULL, NULL, NULL, NULL, 0.1f, 1e-5f, x1, c4, d4),
                 QG_ERR_SHAPE);
    cr_expect_eq(qg__bn_fwd_train(ctx, x, c3, c3, NULL, NULL, 0.1f, 1e-5f, y, c4, d4),
                 QG_ERR_SHAPE);
    cr_expect_eq(qg__bn_fwd_train(ctx, x, c4, NULL, NULL, NULL, 0.1f, 1e-5f, y, c4, d4),
                 QG_ERR_INVALID_ARG);
    cr_expect_eq(qg__bn_fwd_eval(ctx, x, NULL, NULL, c3, c4, 1e-5f, y), QG_ERR_SHAPE);
    cr_expect_eq(qg__bn_bwd(ctx, x, y, NULL, c4, d4, c3, NULL, NULL, 0), QG_ERR_SHAPE);
    qg_tensor *ts[] = {x1, x, y, c3, c4, d4};
    for (size_t i = 0; i < 6; i++)
        qg_tensor_free(ts[i]);
}

/* ---- finite differences on the C references ---- */

#define FD_EPS 1e-2
#define FD_ATOL 2e-3
#define FD_RTOL 1e-2

typedef struct fd_bn {
    int N, C, HW;
    float *x, *gamma, *beta, *g, *y, *sm, *si;
} fd_bn;

static double bn_loss(const fd_bn *f)
{
    qg_ref_bn_fwd_train(f->N, f->C, f->HW, f->x, f->gamma, f->beta, NULL, NULL, 0.1f, 1e-5f,
                        f->y, f->sm, f->si);
    double l = 0;
    for (size_t i = 0; i < (size_t)f->N * f->C * f->HW; i++)
        l += (double)f->g[i] * f->y[i];
    return l;
}

/* Central difference of the loss in v[i], over the step the float took. */
static double central(const fd_bn *f, float *v, size_t i)
{
    float v0 = v[i];
    float vp = (float)(v0 + FD_EPS), vm = (float)(v0 - FD_EPS);
    v[i] = vp;
    double lp = bn_loss(f);
    v[i] = vm;
    double lm = bn_loss(f);
    v[i] = v0;
    return (lp - lm) / ((double)vp - (double)vm);
}

static int fd_check(const char *label, const fd_bn *f, float *v, const float *grad, size_t n)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double fd = central(f, v, i);
        if (!(fabs(fd - grad[i]) <= FD_ATOL + FD_RTOL * fabs(grad[i]))) {
            if (bad < 10)
                fprintf(stderr, "%s: [%zu] finite difference %.6g, analytic %.6g\n", label, i,
                        fd, grad[i]);
            bad++;
        }
    }
    return bad;
}

Test(bn, reference_gradients_match_finite_differences)
{
    for (int affine = 1; affine >= 0; affine--) {
        fd_bn f = {.N = 3, .C = 2, .HW = 6};
        size_t n = (size_t)f.N * f.C * f.HW;
        f.x = rand_vec(n, -1, 2, 300);
        f.g = rand_vec(n, -1, 1, 301);
        f.gamma = affine ? rand_vec(f.C, 0.5f, 1.5f, 302) : NULL;
        f.beta = affine ? rand_vec(f.C, -0.5f, 0.5f, 303) : NULL;
        f.y = malloc(n * 4);
        f.sm = malloc(f.C * 4);
        f.si = malloc(f.C * 4);
        float *dx = malloc(n * 4), dg[2], db[2];
        bn_loss(&f);
        qg_ref_bn_bwd(f.N, f.C, f.HW, f.x, f.g, f.gamma, f.sm, f.si, dx, dg, db, 0);
        /* The gradient must not be trivially small, or the check is empty. */
        double mag = 0;
        for (size_t i = 0; i < n; i++)
            mag = fmax(mag, fabs(dx[i]));
        cr_expect_gt(mag, 0.1, "dx is degenerate (max %g)", mag);
        char l[64];
        snprintf(l, sizeof l, "bn dx affine=%d", affine);
        cr_expect_eq(fd_check(l, &f, f.x, dx, n), 0, "%s", l);
        snprintf(l, sizeof l, "bn dgamma/dbeta affine=%d", affine);
        if (affine) {
            cr_expect_eq(fd_check("bn dgamma", &f, f.gamma, dg, f.C), 0, "%s", l);
            cr_expect_eq(fd_check("bn dbeta", &f, f.beta, db, f.C), 0, "%s", l);
        } else {
            /* Affine-free: the sums still equal d/dgamma, d/dbeta at 1, 0. */
            float one[2] = {1, 1}, zero[2] = {0, 0};
            f.gamma = one;
            f.beta = zero;
            cr_expect_eq(fd_check("bn dgamma@1", &f, f.gamma, dg, f.C), 0, "%s", l);
            cr_expect_eq(fd_check("bn dbeta@0", &f, f.beta, db, f.C), 0, "%s", l);
            f.gamma = f.beta = NULL;
        }
        free(f.x);
        free(f.g);
        free(f.gamma);
        free(f.beta);
        free(f.y);
        free(f.sm);
        free(f.si);
        free(dx);
    }
}
