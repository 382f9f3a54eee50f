/* tests/test_conv.c: the conv plan and its passes (src/ops/conv_plan.c,
 * conv_direct.c with cl/conv_direct.cl, conv_gemm.c with cl/im2col.cl +
 * CLBlast GEMM) and linear layers (src/ops/linear.c) against
 * src/ref/ref_conv.c, and finite-difference checks of those references.
 *
 * Device tests run every shape under the default work-group size and two
 * others (and, for the 3x3 shapes that take cl/conv_direct.cl, under its
 * default parameters and two other sets), each with a plan for the plan's
 * own workspace (whole batch per chunk) or a smaller one (chunks of 2
 * images, and of 1), so the chunk loop and the last partial chunk run
 * too. Every tensor is a view
 * at an offset inside a larger buffer whose margins hold a sentinel,
 * checked untouched afterwards; overwritten outputs and the workspace
 * start as NaN, so a result that reads them instead of overwriting fails.
 *
 * Tolerances: device vs reference |got - want| <= 1e-4 + 1e-4*|want| (the
 * GEMMs sum in float in their own order; the oracle sums in double).
 * Gradient checks: central differences in double of L = sum(g * y) on the
 * float reference; L is linear in each argument, so the step (5e-2) only
 * has to beat the float rounding of y; |fd - analytic| <= 1e-3 + 1e-2*|a|. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/support.h"
#include "cl/ctx.h"
#include "ops/conv.h"
#include "ops/linear.h"
#include "quant/quant.h"
#include "ref/ref_conv.h"
#include "ref/ref_quant.h"

TestSuite(conv, .fini = qg_test_ctx_free);

#define ATOL 1e-4f
#define RTOL 1e-4f
#define PAD 13
#define SENTINEL -12345.5f

static const long wgs[] = {64, 16, 256};
/* conv_direct parameter sets run alongside wgs (WG, VW, JT, KT, WKT, WN):
 * the default, then sets whose channel, position and image tiles leave
 * partial tiles at the odd shapes below. */
static const long direct_sets[][6] = {{0}, {4, 8, 1, 2, 1, 1}, {2, 16, 3, 6, 3, 2}};

typedef struct shape {
    int N, C, H, W, K, R, S, stride, pad, groups;
    const char *what;
} shape;

static const shape shapes[] = {
    {3, 5, 7, 5, 4, 3, 3, 1, 1, 1, "3x3 s1 p1"},
    {3, 5, 7, 5, 4, 3, 3, 2, 1, 1, "3x3 s2 p1"},
    {2, 4, 8, 6, 5, 3, 3, 2, 1, 1, "3x3 s2 p1, even map"},
    {3, 5, 7, 5, 16, 1, 1, 2, 0, 1, "1x1 s2 (option-B shortcut)"},
    {3, 5, 7, 5, 3, 1, 1, 1, 0, 1, "1x1 s1 pointwise, batched over images"},
    {3, 6, 7, 5, 4, 1, 1, 1, 0, 2, "1x1 s1 pointwise, groups 2 < N"},
    {1, 6, 5, 7, 4, 1, 1, 1, 0, 2, "1x1 s1 pointwise, groups 2 > N"},
    {3, 6, 7, 5, 4, 3, 3, 1, 1, 2, "3x3 groups 2"},
    {3, 5, 7, 5, 5, 3, 3, 2, 1, 5, "3x3 s2 depthwise"},
    {1, 3, 7, 5, 5, 5, 5, 1, 2, 1, "5x5 p2 N=1"},
    {3, 3, 5, 7, 5, 3, 2, 1, 0, 1, "3x2 no padding"},
    {3, 16, 5, 7, 3, 3, 3, 2, 2, 1, "3x3 s2 p2, 16 channels"},
    {3, 5, 7, 5, 7, 3, 3, 1, 1, 1, "3x3 s1 p1, K=7 (direct)"},
    {3, 5, 7, 5, 7, 3, 3, 2, 1, 1, "3x3 s2 p1, K=7 (direct)"},
    {3, 5, 7, 5, 7, 3, 3, 1, 0, 1, "3x3 s1 p0, K=7 (direct)"},
    {3, 1, 9, 8, 16, 3, 3, 1, 1, 1, "3x3 stem C=1 (direct)"},
    {2, 5, 6, 14, 7, 3, 3, 1, 1, 1, "3x3 s1 p1, 14 wide (row-walk wgrad; 2 strips at VW 8)"},
    {2, 3, 4, 17, 5, 3, 3, 1, 1, 1, "3x3 s1 p1, 17 wide (flat position mode at VW 16)"},
    {2, 3, 8, 8, 3, 3, 3, 1, 3, 1, "3x3 p3 (pad > 2: GEMM)"},
    /* narrow maps with channels for the channel-vectorised kernels' whole
     * tiles (32 channels by 8 positions) and a part tile after them */
    {2, 32, 6, 6, 33, 3, 3, 1, 1, 1, "3x3 s1 p1 narrow, 32 -> 33 channels (whole tiles)"},
    {2, 8, 8, 6, 5, 3, 3, 2, 1, 1, "3x3 s2 p1 narrow, 8 channels (whole phase tiles)"},
    {2, 3, 6, 18, 4, 3, 3, 2, 1, 1, "3x3 s2 p1, 18 wide (data gradient rows as vectors)"},
    /* 8-wide outputs: the channel-vectorised tiles lie inside one row */
    {2, 5, 3, 8, 33, 3, 3, 1, 1, 1, "3x3 s1 p1, 8 wide, 33 channels (tiles inside a row)"},
    {2, 6, 5, 16, 33, 3, 3, 2, 1, 1, "3x3 s2 p1, 16 wide, 33 channels (tiles inside a row)"},
    /* grouped 3x3 on the direct kernels: group counts 2..5, odd maps and
     * channels per group, stride 2, a channel tile across groups */
    {3, 8, 7, 9, 12, 3, 3, 1, 1, 4, "3x3 s1 p1 groups 4 (direct)"},
    {2, 10, 9, 7, 15, 3, 3, 2, 1, 5, "3x3 s2 p1 groups 5, 2 -> 3 per group (direct)"},
    {3, 12, 6, 5, 6, 3, 3, 1, 1, 3, "3x3 s1 p1 groups 3, 4 -> 2 per group (direct)"},
    {2, 8, 8, 6, 8, 3, 3, 2, 1, 2, "3x3 s2 p1 groups 2, even map (direct)"},
    {2, 6, 5, 18, 6, 3, 3, 1, 0, 2, "3x3 s1 p0 groups 2, 18 wide (direct)"},
    {2, 16, 10, 10, 16, 3, 3, 1, 1, 4, "3x3 s1 p1 groups 4, 4 per group (CG's base path)"},
};

/* A tensor of n floats at offset PAD inside a buffer of n + 2*PAD. */
typedef struct buf {
    qg_tensor *whole, *view;
    size_t n;
} buf;

static void buf_set(buf *b, const float *init, float fill)
{
    size_t total = b->n + 2 * PAD;
    float *h = malloc(total * sizeof *h);
    for (size_t i = 0; i < total; i++)
        h[i] = SENTINEL;
    for (size_t i = 0; i < b->n; i++)
        h[PAD + i] = init ? init[i] : fill;
    QG_EXPECT_OK(qg_tensor_write(b->whole, h, total * sizeof *h));
    free(h);
}

static buf buf_new(qg_ctx *ctx, size_t n, const float *init, float fill)
{
    buf b = {.n = n};
    int64_t s1[1] = {(int64_t)(n + 2 * PAD)}, s2[1] = {(int64_t)n};
    b.whole = qg_test_tensor(ctx, 1, s1, NULL);
    QG_EXPECT_OK(qg_tensor_view(b.whole, PAD, 1, s2, &b.view));
    buf_set(&b, init, fill);
    return b;
}

/* The view's contents (malloc'd); fails the test if a margin changed. */
static float *buf_get(const buf *b, const char *label)
{
    float *h = qg_test_read(b->whole);
    for (size_t i = 0; i < PAD; i++) {
        cr_expect_eq(h[i], SENTINEL, "%s: write before the tensor at %zu", label, i);
        cr_expect_eq(h[PAD + b->n + i], SENTINEL, "%s: write past the tensor at %zu", label, i);
    }
    float *out = malloc(b->n * sizeof *out);
    memcpy(out, h + PAD, b->n * sizeof *out);
    free(h);
    return out;
}

static void buf_free(buf *b)
{
    qg_tensor_free(b->view);
    qg_tensor_free(b->whole);
}

static float *rand_vec(size_t n, uint32_t seed)
{
    float *v = malloc((n ? n : 1) * sizeof *v);
    qg_test_fill(v, n, -1, 1, seed);
    return v;
}

/* Compares buffer b with want (+ base when base is not NULL). */
static void expect_buf(const buf *b, const float *want, const float *base, const char *label)
{
    float *got = buf_get(b, label);
    float *w = malloc(b->n * sizeof *w);
    for (size_t i = 0; i < b->n; i++)
        w[i] = base ? base[i] + want[i] : want[i];
    cr_expect(qg_test_allclose(label, got, w, b->n, ATOL, RTOL), "%s", label);
    free(w);
    free(got);
}

static void set_wg(qg_ctx *ctx, long wg)
{
    QG_EXPECT_OK(qg__program_override(ctx, "im2col", &wg));
}

static void set_direct(qg_ctx *ctx, size_t i)
{
    QG_EXPECT_OK(qg__program_override(ctx, "conv_direct", i ? direct_sets[i] : NULL));
}

/* A plan of d (opts.ws_floats = ws, 0: its own) and its workspace. */
static qg_conv_plan *plan_new(qg_ctx *ctx, const qg_conv_desc *d, size_t ws, int quant_bits)
{
    qg_conv_plan *pl = NULL;
    qg_conv_opts o = {.ws_floats = ws, .quant_bits = quant_bits};
    QG_EXPECT_OK(qg__conv_plan_new(ctx, d, &o, &pl));
    cr_assert(pl != NULL);
    return pl;
}

/* The shapes the direct kernels take (3x3, grouped or not, stride 1 or 2,
 * pad <= 2), as the plan must route them. */
static int direct_shape(const qg_conv_desc *d)
{
    return d->R == 3 && d->S == 3 && (d->stride == 1 || d->stride == 2) && d->pad <= 2;
}

/* A refused optional pass: QG_ERR_UNSUPPORTED, and a message that names
 * the pass and the conv's shape. */
static void expect_refused(qg_status st, const char *op, const qg_conv_desc *d,
                           const char *label)
{
    char shape[64];
    snprintf(shape, sizeof shape, "N=%d C=%d H=%d W=%d K=%d", d->N, d->C, d->H, d->W, d->K);
    cr_expect_eq(st, QG_ERR_UNSUPPORTED, "%s: status %d", label, (int)st);
    cr_expect(strstr(qg_last_error(), op) != NULL, "%s: message without '%s': %s", label, op,
              qg_last_error());
    cr_expect(strstr(qg_last_error(), shape) != NULL, "%s: message without '%s': %s", label,
              shape, qg_last_error());
}

static void run_conv_case(qg_ctx *ctx, const shape *s, uint32_t seed)
{
    qg_conv_desc d, d1;
    QG_EXPECT_OK(qg__conv_desc_init(ctx, &d, s->N, s->C, s->H, s->W, s->K, s->R, s->S,
                                    s->stride, s->pad, s->groups));
    QG_EXPECT_OK(qg__conv_desc_init(ctx, &d1, 1, s->C, s->H, s->W, s->K, s->R, s->S,
                                    s->stride, s->pad, s->groups));
    size_t nx = (size_t)d.N * d.C * d.H * d.W, ny = (size_t)d.N * d.K * d.P * d.Q;
    size_t nw = (size_t)d.K * (d.C / d.groups) * d.R * d.S, nk = (size_t)d.K;
    qg_conv_plan *p1 = plan_new(ctx, &d1, 0, 0);
    size_t per_image = qg__conv_plan_ws_floats(p1);
    qg__conv_plan_free(p1);

    float *x = rand_vec(nx, seed), *w = rand_vec(nw, seed + 1), *b = rand_vec(nk, seed + 2);
    float *dy = rand_vec(ny, seed + 3), *base_x = rand_vec(nx, seed + 4);
    float *base_w = rand_vec(nw, seed + 5), *base_b = rand_vec(nk, seed + 6);
    float *y_ref = malloc(ny * 4), *y_ref_nb = malloc(ny * 4), *dx_ref = malloc(nx * 4);
    float *dw_ref = malloc(nw * 4), *db_ref = malloc(nk * 4);
    qg_ref_conv2d_fwd(&d, x, w, b, y_ref);
    qg_ref_conv2d_fwd(&d, x, w, NULL, y_ref_nb);
    qg_ref_conv2d_bwd_data(&d, dy, w, dx_ref);
    qg_ref_conv2d_bwd_weight(&d, x, dy, dw_ref, db_ref);

    buf tx = buf_new(ctx, nx, x, 0), tw = buf_new(ctx, nw, w, 0), tb = buf_new(ctx, nk, b, 0);
    buf tdy = buf_new(ctx, ny, dy, 0);
    buf ty = buf_new(ctx, ny, NULL, NAN), tdx = buf_new(ctx, nx, NULL, NAN);
    buf tdw = buf_new(ctx, nw, NULL, NAN), tdb = buf_new(ctx, nk, NULL, NAN);
    float *mask = malloc(nx * 4), *dx_masked = malloc(nx * 4);
    for (size_t i = 0; i < nx; i++) {
        mask[i] = i % 3 == 1 ? 0.0f : x[i];
        dx_masked[i] = mask[i] != 0.0f ? dx_ref[i] : 0.0f;
    }
    buf tmask = buf_new(ctx, nx, mask, 0);
    float *res = rand_vec(ny, seed + 7);
    buf tres = buf_new(ctx, ny, res, 0);

    for (size_t wi = 0; wi < sizeof wgs / sizeof *wgs; wi++) {
        set_wg(ctx, wgs[wi]);
        set_direct(ctx, wi);
        /* whole batch, chunks of 2 (+ a last one of 1 when N = 3), chunks of 1 */
        qg_conv_plan *pl = plan_new(ctx, &d, wi == 0 ? 0 : wi == 1 ? 2 * per_image + 5
                                                                   : per_image, 0);
        size_t ws_n = qg__conv_plan_ws_floats(pl);
        unsigned caps = qg__conv_plan_caps(pl);
        cr_expect_geq(ws_n, per_image, "%s", s->what);
        /* (a smaller workspace may leave a direct shape to the GEMM path) */
        if (wi == 0 || !direct_shape(&d))
            cr_expect_eq(!!(caps & QG_CONV_CAP_DIRECT), direct_shape(&d), "%s set %zu: caps %#x",
                         s->what, wi, caps);
        buf tws = buf_new(ctx, ws_n, NULL, NAN);
        char l[200];
#define LABEL(op) snprintf(l, sizeof l, "%s [%s] WG=%ld direct set %zu ws=%zu", op, s->what, \
                           wgs[wi], wi, ws_n)

        buf_set(&ty, NULL, NAN);
        QG_EXPECT_OK(qg__conv_enqueue_fwd(pl, tx.view, tw.view, tb.view, ty.view, tws.view,
                                          NULL));
        LABEL("fwd+bias");
        expect_buf(&ty, y_ref, NULL, l);
        buf_set(&ty, NULL, NAN);
        QG_EXPECT_OK(qg__conv_enqueue_fwd(pl, tx.view, tw.view, NULL, ty.view, tws.view, NULL));
        LABEL("fwd");
        expect_buf(&ty, y_ref_nb, NULL, l);

        buf_set(&tdx, NULL, NAN);
        QG_EXPECT_OK(qg__conv_enqueue_bwd_data(pl, tdy.view, tw.view, tdx.view, tws.view, 0));
        LABEL("bwd_data");
        expect_buf(&tdx, dx_ref, NULL, l);
        buf_set(&tdx, base_x, 0);
        QG_EXPECT_OK(qg__conv_enqueue_bwd_data(pl, tdy.view, tw.view, tdx.view, tws.view, 1));
        LABEL("bwd_data accumulate");
        expect_buf(&tdx, dx_ref, base_x, l);

        buf_set(&tdw, NULL, NAN);
        buf_set(&tdb, NULL, NAN);
        QG_EXPECT_OK(qg__conv_enqueue_bwd_weight(pl, tx.view, tdy.view, tdw.view, tdb.view,
                                                 tws.view, 0));
        LABEL("bwd_weight dw");
        expect_buf(&tdw, dw_ref, NULL, l);
        LABEL("bwd_weight dbias");
        expect_buf(&tdb, db_ref, NULL, l);
        buf_set(&tdw, base_w, 0);
        buf_set(&tdb, base_b, 0);
        QG_EXPECT_OK(qg__conv_enqueue_bwd_weight(pl, tx.view, tdy.view, tdw.view, tdb.view,
                                                 tws.view, 1));
        LABEL("bwd_weight dw accumulate");
        expect_buf(&tdw, dw_ref, base_w, l);
        LABEL("bwd_weight dbias accumulate");
        expect_buf(&tdb, db_ref, base_b, l);
        /* without dbias, dbias stays as it was */
        buf_set(&tdw, NULL, NAN);
        QG_EXPECT_OK(qg__conv_enqueue_bwd_weight(pl, tx.view, tdy.view, tdw.view, NULL,
                                                 tws.view, 0));
        LABEL("bwd_weight dw, no dbias");
        expect_buf(&tdw, dw_ref, NULL, l);
        LABEL("dbias untouched");
        expect_buf(&tdb, db_ref, base_b, l);

        /* Both gradients in one call (one shared dy preparation on the
         * direct path when the workspace holds the whole batch). */
        buf_set(&tdx, NULL, NAN);
        buf_set(&tdw, NULL, NAN);
        buf_set(&tdb, NULL, NAN);
        QG_EXPECT_OK(qg__conv_enqueue_bwd(pl, tx.view, tdy.view, tw.view, tdx.view, 0, tdw.view,
                                          tdb.view, 0, tws.view, NULL));
        LABEL("bwd dx");
        expect_buf(&tdx, dx_ref, NULL, l);
        LABEL("bwd dw");
        expect_buf(&tdw, dw_ref, NULL, l);
        LABEL("bwd dbias");
        expect_buf(&tdb, db_ref, NULL, l);
        buf_set(&tdx, base_x, 0);
        buf_set(&tdw, NULL, NAN);
        QG_EXPECT_OK(qg__conv_enqueue_bwd(pl, tx.view, tdy.view, tw.view, tdx.view, 1, tdw.view,
                                          NULL, 0, tws.view, NULL));
        LABEL("bwd dx accumulate, dw overwrite");
        expect_buf(&tdx, dx_ref, base_x, l);
        expect_buf(&tdw, dw_ref, NULL, l);
        buf_set(&tdx, NULL, NAN);
        buf_set(&tdw, base_w, 0);
        QG_EXPECT_OK(qg__conv_enqueue_bwd(pl, tx.view, tdy.view, tw.view, tdx.view, 0, tdw.view,
                                          NULL, 1, tws.view, NULL));
        LABEL("bwd dx overwrite, dw accumulate");
        expect_buf(&tdx, dx_ref, NULL, l);
        expect_buf(&tdw, dw_ref, base_w, l);
        /* The data gradient masked by a quantizer's STE (mask = x with a
         * third of it zeroed): fused where the plan has the shared-dy
         * direct form (surely the 3x3 "same" and stride-2 pad-1 convs with
         * the full workspace), else refused with nothing written. */
        int sure = wi == 0 && d.R == 3 && d.S == 3 && d.pad == 1 &&
                   (d.stride == 1 || d.stride == 2);
        if (sure)
            cr_expect(caps & QG_CONV_CAP_MASKED_BWD, "%s: no masked backward", s->what);
        for (int acc = 0; acc < 2; acc++) {
            buf_set(&tdx, acc ? base_x : NULL, NAN);
            buf_set(&tdw, NULL, NAN);
            qg_status mst = qg__conv_enqueue_bwd_masked(pl, tx.view, tdy.view, tw.view,
                                                        tdx.view, acc, tmask.view, tdw.view, 0,
                                                        NULL, tws.view, NULL);
            LABEL(acc ? "bwd masked, dx accumulate" : "bwd masked");
            if (!(caps & QG_CONV_CAP_MASKED_BWD)) {
                expect_refused(mst, "conv2d_bwd_masked", &d, l);
                float *u = buf_get(&tdx, l), *v = buf_get(&tdw, l);
                size_t changed = 0;
                for (size_t i = 0; i < nx; i++)
                    changed += acc ? u[i] != base_x[i] : !isnan(u[i]);
                for (size_t i = 0; i < nw; i++)
                    changed += !isnan(v[i]);
                cr_expect_eq(changed, 0, "%s: refused but wrote %zu values", l, changed);
                free(u);
                free(v);
                continue;
            }
            cr_expect_eq(mst, QG_OK, "%s: %s", l, qg_last_error());
            expect_buf(&tdx, dx_masked, acc ? base_x : NULL, l);
            expect_buf(&tdw, dw_ref, NULL, l);
        }
        /* The eval-fold epilogue: y = relu(y0 + conv + bias + res), each
         * of y0 (accumulate), res and the clamp optional: the direct
         * forward's, so every direct shape has it with the full workspace,
         * and a workspace below one image's planes leaves it out. */
        if (wi == 0 && direct_shape(&d))
            cr_expect(caps & QG_CONV_CAP_EPILOGUE, "%s: no epilogue", s->what);
        if (caps & QG_CONV_CAP_EPILOGUE) {
            float *want = malloc(ny * 4);
            for (int mode = 0; mode < 8; mode++) {
                int acc = mode & 1, relu = (mode >> 1) & 1, use_res = mode >> 2;
                for (size_t i = 0; i < ny; i++) {
                    float v = y_ref[i] + (acc ? dy[i] : 0.0f) + (use_res ? res[i] : 0.0f);
                    want[i] = relu && v < 0 ? 0.0f : v;
                }
                buf_set(&ty, acc ? dy : NULL, acc ? 0 : NAN);
                qg_status fst = qg__conv_enqueue_fwd_fused(pl, tx.view, tw.view, tb.view,
                                                           ty.view, tws.view, acc,
                                                           use_res ? tres.view : NULL, relu,
                                                           NULL, 0);
                char lf[220];
                snprintf(lf, sizeof lf, "fwd fused acc=%d res=%d relu=%d [%s] set %zu", acc,
                         use_res, relu, s->what, wi);
                cr_expect_eq(fst, QG_OK, "%s: %s", lf, qg_last_error());
                expect_buf(&ty, want, NULL, lf);
            }
            free(want);
        } else {
            buf_set(&ty, NULL, NAN);
            LABEL("fwd fused refused");
            expect_refused(qg__conv_enqueue_fwd_fused(pl, tx.view, tw.view, tb.view, ty.view,
                                                      tws.view, 0, NULL, 1, NULL, 0),
                           "conv2d_fwd_fused", &d, l);
            float *u = buf_get(&ty, l);
            size_t written = 0;
            for (size_t i = 0; i < ny; i++)
                written += !isnan(u[i]);
            cr_expect_eq(written, 0, "%s: refused but wrote %zu values", l, written);
            free(u);
        }
#undef LABEL

        float *wsh = buf_get(&tws, "workspace");
        free(wsh);
        buf_free(&tws);
        qg__conv_plan_free(pl);
    }
    QG_EXPECT_OK(qg__program_override(ctx, "im2col", NULL));
    set_direct(ctx, 0);

    buf *all[] = {&tx, &tw, &tb, &tdy, &ty, &tdx, &tdw, &tdb, &tmask, &tres};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        buf_free(all[i]);
    float *hs[] = {x,      w,      b,        dy,     base_x, base_w, base_b,
                   y_ref, y_ref_nb, dx_ref, dw_ref, db_ref, mask,   dx_masked, res};
    for (size_t i = 0; i < sizeof hs / sizeof *hs; i++)
        free(hs[i]);
}

Test(conv, device_matches_reference)
{
    qg_ctx *ctx = qg_test_ctx();
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        run_conv_case(ctx, &shapes[i], 100 + 10 * (uint32_t)i);
}

/* The forward's planes kept for the weight gradient (the keep buffer of
 * qg__conv_enqueue_fwd, qg__conv_enqueue_bwd and
 * qg__conv_enqueue_bwd_masked): y, dx and dw match the references under
 * every direct parameter set, and where the shared-dy backward runs it
 * really reads the kept planes: it is handed a zero x, so a weight
 * gradient prepared from x instead would be 0. Shapes: stride 1 on a wide
 * map (position kernels) and a narrow one (channel-vectorised), stride 2 on
 * a wide map (phase planes); at stride 2 on a narrow map the forward reads
 * plain planes and the weight gradient phase planes, so nothing is kept
 * there (no QG_CONV_CAP_KEEP_PLANES: keep_floats 0, and a keep buffer is
 * refused). */
Test(conv, kept_planes_serve_the_weight_gradient)
{
    static const shape ks[] = {
        {2, 3, 6, 20, 5, 3, 3, 1, 1, 1, "s1 wide"},
        {3, 5, 7, 5, 4, 3, 3, 1, 1, 1, "s1 narrow"},
        {2, 4, 12, 18, 6, 3, 3, 2, 1, 1, "s2 wide"},
        {2, 4, 8, 6, 5, 3, 3, 2, 1, 1, "s2 narrow"},
    };
    static const int expect_keep[] = {1, 1, 1, 0};
    qg_ctx *ctx = qg_test_ctx();
    for (size_t si = 0; si < sizeof ks / sizeof *ks; si++) {
        const shape *s = &ks[si];
        qg_conv_desc d;
        QG_EXPECT_OK(qg__conv_desc_init(ctx, &d, s->N, s->C, s->H, s->W, s->K, 3, 3, s->stride,
                                        s->pad, 1));
        size_t nx = (size_t)d.N * d.C * d.H * d.W, ny = (size_t)d.N * d.K * d.P * d.Q;
        size_t nw = (size_t)d.K * d.C * 9;
        uint32_t seed = 700 + 10 * (uint32_t)si;
        float *x = rand_vec(nx, seed), *w = rand_vec(nw, seed + 1), *dy = rand_vec(ny, seed + 2);
        float *y_ref = malloc(ny * 4), *dx_ref = malloc(nx * 4), *dw_ref = malloc(nw * 4);
        float *db = malloc((size_t)d.K * 4), *mask = malloc(nx * 4), *dxm = malloc(nx * 4);
        float *wmask = malloc(nw * 4), *dwm = malloc(nw * 4);
        qg_ref_conv2d_fwd(&d, x, w, NULL, y_ref);
        qg_ref_conv2d_bwd_data(&d, dy, w, dx_ref);
        qg_ref_conv2d_bwd_weight(&d, x, dy, dw_ref, db);
        for (size_t i = 0; i < nx; i++) {
            mask[i] = i % 3 == 1 ? 0.0f : 1.0f;
            dxm[i] = mask[i] != 0.0f ? dx_ref[i] : 0.0f;
        }
        /* the weights' STE mask: zeros at taps of every kind */
        for (size_t i = 0; i < nw; i++) {
            wmask[i] = i % 4 == 2 ? 0.0f : w[i];
            dwm[i] = i % 4 == 2 ? 0.0f : dw_ref[i];
        }
        buf tx = buf_new(ctx, nx, x, 0), tz = buf_new(ctx, nx, NULL, 0);
        buf tw = buf_new(ctx, nw, w, 0), twm = buf_new(ctx, nw, wmask, 0);
        buf tdy = buf_new(ctx, ny, dy, 0), tm = buf_new(ctx, nx, mask, 0);
        buf ty = buf_new(ctx, ny, NULL, NAN), tdx = buf_new(ctx, nx, NULL, NAN);
        buf tdw = buf_new(ctx, nw, NULL, NAN);
        for (size_t set = 0; set < sizeof direct_sets / sizeof *direct_sets; set++) {
            set_direct(ctx, set);
            qg_conv_plan *pl = plan_new(ctx, &d, 0, 0);
            buf tws = buf_new(ctx, qg__conv_plan_ws_floats(pl), NULL, NAN);
            unsigned caps = qg__conv_plan_caps(pl);
            size_t kf = qg__conv_plan_keep_floats(pl);
            cr_expect_eq(kf > 0, expect_keep[si], "[%s] set %zu: keep_floats %zu", s->what, set,
                         kf);
            cr_expect_eq(!!(caps & QG_CONV_CAP_KEEP_PLANES), kf > 0, "[%s] set %zu: caps %#x",
                         s->what, set, caps);
            buf tk = buf_new(ctx, kf ? kf : 1, NULL, NAN);
            const qg_tensor *keep = kf ? tk.view : NULL;
            if (!kf) {
                char l[160];
                snprintf(l, sizeof l, "keep refused [%s] set %zu", s->what, set);
                expect_refused(qg__conv_enqueue_fwd(pl, tx.view, tw.view, NULL, ty.view,
                                                    tws.view, tk.view),
                               "conv2d_fwd", &d, l);
            }
            /* Some parameter sets leave this shape to the separate passes
             * (no shared-dy form in the workspace), which read x. */
            int shared = !!(caps & QG_CONV_CAP_MASKED_BWD);
            for (int masked = 0; masked < 1 + shared; masked++) {
                char l[160];
                buf_set(&ty, NULL, NAN);
                QG_EXPECT_OK(qg__conv_enqueue_fwd(pl, tx.view, tw.view, NULL, ty.view, tws.view,
                                                  kf ? tk.view : NULL));
                snprintf(l, sizeof l, "kept fwd [%s] set %zu", s->what, set);
                expect_buf(&ty, y_ref, NULL, l);
                buf_set(&tdx, NULL, NAN);
                buf_set(&tdw, NULL, NAN);
                /* x as the forward saw it where nothing is kept, else zeros */
                const qg_tensor *xb = kf && shared ? tz.view : tx.view;
                if (masked) /* (and the weights' mask) */
                    QG_EXPECT_OK(qg__conv_enqueue_bwd_masked(pl, xb, tdy.view, tw.view, tdx.view,
                                                             0, tm.view, tdw.view, 0, twm.view,
                                                             tws.view, keep));
                else
                    QG_EXPECT_OK(qg__conv_enqueue_bwd(pl, xb, tdy.view, tw.view, tdx.view, 0,
                                                      tdw.view, NULL, 0, tws.view, keep));
                snprintf(l, sizeof l, "kept bwd%s dx [%s] set %zu", masked ? " masked" : "",
                         s->what, set);
                expect_buf(&tdx, masked ? dxm : dx_ref, NULL, l);
                snprintf(l, sizeof l, "kept bwd%s dw [%s] set %zu", masked ? " masked" : "",
                         s->what, set);
                expect_buf(&tdw, masked ? dwm : dw_ref, NULL, l);
            }
            buf_free(&tk);
            buf_free(&tws);
            qg__conv_plan_free(pl);
        }
        set_direct(ctx, 0);
        buf *bs[] = {&tx, &tz, &tw, &twm, &tdy, &tm, &ty, &tdx, &tdw};
        for (size_t i = 0; i < sizeof bs / sizeof *bs; i++)
            buf_free(bs[i]);
        free(x);
        free(w);
        free(dy);
        free(y_ref);
        free(dx_ref);
        free(dw_ref);
        free(db);
        free(mask);
        free(dxm);
        free(wmask);
        free(dwm);
    }
}

/* The least float whose code reaches k at `bits` with scale sc, by the
 * reference quantizer (bisection over non-negative float bit patterns). */
static float first_reaching(float sc, int bits, int k)
{
    uint32_t lo = 0, hi = 0x7f800000u;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        float t;
        int32_t code;
        memcpy(&t, &mid, sizeof t);
        qg_ref_quant_apply(1, 1, &t, &sc, bits, 0, NULL, NULL, NULL, &code);
        if (code >= k)
            hi = mid;
        else
            lo = mid + 1;
    }
    float t;
    memcpy(&t, &lo, sizeof t);
    return t;
}

/* A conv that rounds its input while preparing it (qg__conv_enqueue_fwd_quant)
 * gives exactly what the separate quantizer pass + conv give: the same
 * floats into the same kernels, so bit for bit; and both match the host
 * reference within the conv tolerance. Where planes are kept, they are
 * the quantized ones: the weight gradient read from them (x passed as
 * zeros) is the reference's on the quantized input. Plans of the GEMM
 * path or of more than 15 levels lack QG_CONV_CAP_FUSED_QUANT, and the
 * pass then answers QG_ERR_UNSUPPORTED with a message and leaves y
 * alone. */
Test(conv, quantizing_forward_matches_quantize_then_conv)
{
    static const shape qs[] = {
        {2, 3, 6, 20, 5, 3, 3, 1, 1, 1, "s1 wide"},
        {2, 4, 12, 18, 6, 3, 3, 2, 1, 1, "s2 wide"},
        {2, 3, 6, 32, 4, 3, 3, 2, 1, 1, "s2 32 wide (rows end in gathered fours)"},
        {2, 4, 8, 6, 5, 3, 3, 2, 1, 1, "s2 narrow"},
        {3, 1, 9, 8, 16, 3, 3, 1, 1, 1, "stem C=1"},
        {3, 5, 7, 5, 3, 1, 1, 1, 0, 1, "1x1 (GEMM path)"},
    };
    /* 2..4 bits (up to QG_QT_MAX levels) take the fused path, 8 does not */
    static const int bits[] = {2, 3, 4, 8};
    qg_ctx *ctx = qg_test_ctx();
    for (size_t si = 0; si < sizeof qs / sizeof *qs; si++) {
        const shape *s = &qs[si];
        qg_conv_desc d;
        QG_EXPECT_OK(qg__conv_desc_init(ctx, &d, s->N, s->C, s->H, s->W, s->K, s->R, s->S,
                                        s->stride, s->pad, 1));
        size_t nx = (size_t)d.N * d.C * d.H * d.W, ny = (size_t)d.N * d.K * d.P * d.Q;
        size_t nw = (size_t)d.K * d.C * d.R * d.S;
        uint32_t seed = 900 + 10 * (uint32_t)si;
        float *x = rand_vec(nx, seed), *w = rand_vec(nw, seed + 1), *dy = rand_vec(ny, seed + 2);
        float *xq = malloc(nx * 4), *y_ref = malloc(ny * 4), *dw_ref = malloc(nw * 4);
        float *db = malloc((size_t)d.K * 4), *ones = malloc(nx * 4), sc;
        for (size_t i = 0; i < nx; i++)
            ones[i] = 1.0f;
        /* zeros, and max |x| = 1 so that the scale is known here: then
         * every level's first float and the float below it, both signs,
         * for 2, 3 and 4 bits (where an off-by-one-ulp table would show) */
        x[0] = 1.0f;
        x[1] = 0.0f;
        x[2] = -0.0f;
        qg_ref_quant_scale(nx, 1, x, QG_QSCALE_PG, &sc);
        size_t at = 3;
        for (int b = 2; b <= 4; b++)
            for (int k = 1; k < (1 << b) && at + 4 <= nx; k++, at += 4) {
                x[at] = first_reaching(sc, b, k);
                x[at + 1] = nextafterf(x[at], 0.0f);
                x[at + 2] = -x[at];
                x[at + 3] = -x[at + 1];
            }
        buf tx = buf_new(ctx, nx, x, 0), tz = buf_new(ctx, nx, NULL, 0);
        buf txq = buf_new(ctx, nx, NULL, NAN), tw = buf_new(ctx, nw, w, 0);
        buf tdy = buf_new(ctx, ny, dy, 0), tm = buf_new(ctx, nx, ones, 0);
        buf tsc = buf_new(ctx, 1, &sc, 0);
        buf ty = buf_new(ctx, ny, NULL, NAN), ty2 = buf_new(ctx, ny, NULL, NAN);
        buf tdx = buf_new(ctx, nx, NULL, NAN), tdw = buf_new(ctx, nw, NULL, NAN);
        for (size_t bi = 0; bi < sizeof bits / sizeof *bits; bi++) {
            qg_ref_quant_apply(nx, 1, x, &sc, bits[bi], 0, xq, NULL, NULL, NULL);
            qg_ref_conv2d_fwd(&d, xq, w, NULL, y_ref);
            qg_ref_conv2d_bwd_weight(&d, xq, dy, dw_ref, db);
            QG_EXPECT_OK(qg__quant_apply(ctx, tx.view, tsc.view, bits[bi], 0, txq.view, NULL,
                                         NULL, NULL));
            for (size_t set = 0; set < sizeof direct_sets / sizeof *direct_sets; set++) {
                char l[160];
                set_direct(ctx, set);
                qg_conv_plan *pl = plan_new(ctx, &d, 0, bits[bi]);
                buf tws = buf_new(ctx, qg__conv_plan_ws_floats(pl), NULL, NAN);
                unsigned caps = qg__conv_plan_caps(pl);
                size_t kf = qg__conv_plan_keep_floats(pl);
                buf tk = buf_new(ctx, kf ? kf : 1, NULL, NAN);
                int fusable = s->R == 3 && bits[bi] <= 4;
                cr_expect_eq(!!(caps & QG_CONV_CAP_FUSED_QUANT), fusable, "[%s] %d bits: caps "
                             "%#x", s->what, bits[bi], caps);
                for (int kept = 0; kept < 1 + (kf > 0); kept++) {
                    snprintf(l, sizeof l, "fwd_quant [%s] %d bits set %zu%s", s->what, bits[bi],
                             set, kept ? " kept" : "");
                    buf_set(&ty, NULL, NAN);
                    qg_status st = qg__conv_enqueue_fwd_quant(pl, tx.view, tsc.view, tw.view,
                                                              ty.view, tws.view,
                                                              kept ? tk.view : NULL);
                    if (!fusable) {
                        expect_refused(st, "conv2d_fwd_quant", &d, l);
                        float *got = buf_get(&ty, l);
                        cr_expect(isnan(got[0]) && isnan(got[ny - 1]), "%s: y written", l);
                        free(got);
                        continue;
                    }
                    QG_EXPECT_OK(st);
                    expect_buf(&ty, y_ref, NULL, l);
                    buf_set(&ty2, NULL, NAN);
                    QG_EXPECT_OK(qg__conv_enqueue_fwd(pl, txq.view, tw.view, NULL, ty2.view,
                                                      tws.view, NULL));
                    float *a = buf_get(&ty, l), *b = buf_get(&ty2, l);
                    cr_expect(memcmp(a, b, ny * 4) == 0, "%s: not bit-equal to quantize + conv",
                              l);
                    free(a);
                    free(b);
                    if (!kept || !(caps & QG_CONV_CAP_MASKED_BWD))
                        continue;
                    buf_set(&tdw, NULL, NAN);
                    QG_EXPECT_OK(qg__conv_enqueue_bwd_masked(pl, tz.view, tdy.view, tw.view,
                                                             tdx.view, 0, tm.view, tdw.view, 0,
                                                             NULL, tws.view, tk.view));
                    expect_buf(&tdw, dw_ref, NULL, l);
                }
                buf_free(&tk);
                buf_free(&tws);
                qg__conv_plan_free(pl);
            }
        }
        set_direct(ctx, 0);
        buf *bs[] = {&tx, &tz, &txq, &tw, &tdy, &tm, &tsc, &ty, &ty2, &tdx, &tdw};
        for (size_t i = 0; i < sizeof bs / sizeof *bs; i++)
            buf_free(bs[i]);
        float *hs[] = {x, w, dy, xq, y_ref, dw_ref, db, ones};
        for (size_t i = 0; i < sizeof hs / sizeof *hs; i++)
            free(hs[i]);
    }
}

static int program_built(const qg_ctx *ctx, const char *name)
{
    for (const qg_program_entry *e = ctx->programs; e; e = e->next)
        if (strcmp(e->program, name) == 0)
            return 1;
    return 0;
}

/* The direct kernels really run for the shapes conv.c routes to them (a
 * routing slip would otherwise pass unnoticed, the GEMM path being right
 * too), and only the GEMM path runs for the others. */
Test(conv, direct_path_is_taken_for_3x3)
{
    qg_ctx *ctx = NULL;
    QG_EXPECT_OK(qg_ctx_new(NULL, &ctx));
    cr_assert(ctx != NULL);
    run_conv_case(ctx, &shapes[5], 77); /* 1x1 groups 2: GEMM */
    cr_expect(!program_built(ctx, "conv_direct"), "grouped 1x1 conv took the direct path");
    run_conv_case(ctx, &shapes[7], 78); /* 3x3 groups 2: direct */
    cr_expect(program_built(ctx, "conv_direct"), "grouped 3x3 conv did not take the direct path");
    qg_ctx_free(ctx);
}

Test(conv, linear_device_matches_reference)
{
    qg_ctx *ctx = qg_test_ctx();
    static const int cases[][4] = {{3, 7, 5, 1}, {3, 7, 5, 0}, {37, 19, 10, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int N = cases[c][0], I = cases[c][1], O = cases[c][2], has_b = cases[c][3];
        size_t nx = (size_t)N * I, nw = (size_t)O * I, ny = (size_t)N * O;
        uint32_t seed = 500 + 10 * (uint32_t)c;
        float *x = rand_vec(nx, seed), *w = rand_vec(nw, seed + 1), *b = rand_vec(O, seed + 2);
        float *dy = rand_vec(ny, seed + 3), *base_w = rand_vec(nw, seed + 4);
        float *base_b = rand_vec(O, seed + 5);
        float *y_ref = malloc(ny * 4), *dx_ref = malloc(nx * 4), *dw_ref = malloc(nw * 4);
        float *db_ref = malloc(O * 4);
        qg_ref_linear_fwd(N, I, O, x, w, has_b ? b : NULL, y_ref);
        qg_ref_linear_bwd(N, I, O, x, w, dy, dx_ref, dw_ref, db_ref);
        buf tx = buf_new(ctx, nx, x, 0), tw = buf_new(ctx, nw, w, 0), tb = buf_new(ctx, O, b, 0);
        buf tdy = buf_new(ctx, ny, dy, 0), ty = buf_new(ctx, ny, NULL, NAN);
        buf tdx = buf_new(ctx, nx, NULL, NAN), tdw = buf_new(ctx, nw, NULL, NAN);
        buf tdb = buf_new(ctx, O, NULL, NAN);
        for (size_t wi = 0; wi < sizeof wgs / sizeof *wgs; wi++) {
            set_wg(ctx, wgs[wi]);
            char l[160];
#define LABEL(op) snprintf(l, sizeof l, "linear %s N=%d I=%d O=%d bias=%d WG=%ld", op, N, I, \
                           O, has_b, wgs[wi])
            buf_set(&ty, NULL, NAN);
            QG_EXPECT_OK(qg__linear_fwd(ctx, N, I, O, tx.view, tw.view, has_b ? tb.view : NULL,
                                        ty.view));
            LABEL("fwd");
            expect_buf(&ty, y_ref, NULL, l);

            buf_set(&tdx, NULL, NAN);
            buf_set(&tdw, NULL, NAN);
            buf_set(&tdb, NULL, NAN);
            QG_EXPECT_OK(qg__linear_bwd(ctx, N, I, O, tx.view, tw.view, tdy.view, tdx.view,
                                        tdw.view, has_b ? tdb.view : NULL, 0));
            LABEL("bwd dx");
            expect_buf(&tdx, dx_ref, NULL, l);
            LABEL("bwd dw");
            expect_buf(&tdw, dw_ref, NULL, l);
            if (has_b) {
                LABEL("bwd db");
                expect_buf(&tdb, db_ref, NULL, l);
            }

            /* accumulate, dx skipped: dx keeps its contents */
            buf_set(&tdx, x, 0);
            buf_set(&tdw, base_w, 0);
            buf_set(&tdb, base_b, 0);
            QG_EXPECT_OK(qg__linear_bwd(ctx, N, I, O, tx.view, tw.view, tdy.view, NULL,
                                        tdw.view, has_b ? tdb.view : NULL, 1));
            LABEL("bwd dw accumulate");
            expect_buf(&tdw, dw_ref, base_w, l);
            LABEL("bwd db accumulate / untouched");
            float zero[64] = {0};
            expect_buf(&tdb, has_b ? db_ref : zero, base_b, l);
            LABEL("dx untouched");
            expect_buf(&tdx, x, NULL, l);
#undef LABEL
        }
        QG_EXPECT_OK(qg__program_override(ctx, "im2col", NULL));
        buf *all[] = {&tx, &tw, &tb, &tdy, &ty, &tdx, &tdw, &tdb};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++)
            buf_free(all[i]);
        float *hs[] = {x, w, b, dy, base_w, base_b, y_ref, dx_ref, dw_ref, db_ref};
        for (size_t i = 0; i < sizeof hs / sizeof *hs; i++)
            free(hs[i]);
    }
}

/* ---- finite differences on the C references ---- */

#define FD_EPS 5e-2
#define FD_ATOL 1e-3
#define FD_RTOL 1e-2

typedef struct fd_conv {
    const qg_conv_desc *d;
    float *x, *w, *b, *g, *y;
} fd_conv;

static double conv_loss(const fd_conv *f)
{
    qg_ref_conv2d_fwd(f->d, f->x, f->w, f->b, f->y);
    size_t ny = (size_t)f->d->N * f->d->K * f->d->P * f->d->Q;
    double l = 0;
    for (size_t i = 0; i < ny; i++)
        l += (double)f->g[i] * f->y[i];
    return l;
}

/* Central difference of loss with respect to v[i], with the step the
 * float actually took. */
static double central(double (*loss)(const void *), const void *f, float *v, size_t i)
{
    float v0 = v[i];
    float vp = (float)(v0 + FD_EPS), vm = (float)(v0 - FD_EPS);
    v[i] = vp;
    double lp = loss(f);
    v[i] = vm;
    double lm = loss(f);
    v[i] = v0;
    return (lp - lm) / ((double)vp - (double)vm);
}

static double conv_loss_v(const void *f) { return conv_loss(f); }

/* Checks every element of v's gradient; returns the number of misses. */
static int fd_check(const char *label, double (*loss)(const void *), const void *f, float *v,
                    const float *grad, size_t n)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double fd = central(loss, f, v, i);
        if (fabs(fd - grad[i]) > FD_ATOL + FD_RTOL * fabs(grad[i])) {
            if (bad < 10)
                fprintf(stderr, "%s: [%zu] finite difference %.6g, analytic %.6g\n", label, i,
                        fd, grad[i]);
            bad++;
        }
    }
    return bad;
}

Test(conv, reference_gradients_match_finite_differences)
{
    static const shape fd_shapes[] = {
        {2, 3, 5, 4, 4, 3, 3, 1, 1, 1, "3x3 s1 p1"},
        {2, 4, 6, 5, 6, 3, 3, 2, 1, 2, "3x3 s2 groups 2"},
        {2, 3, 5, 5, 3, 3, 2, 1, 0, 3, "3x2 depthwise"},
        {2, 3, 5, 4, 4, 1, 1, 2, 0, 1, "1x1 s2"},
    };
    for (size_t si = 0; si < sizeof fd_shapes / sizeof *fd_shapes; si++) {
        const shape *s = &fd_shapes[si];
        qg_conv_desc d;
        QG_EXPECT_OK(qg__conv_desc_init(NULL, &d, s->N, s->C, s->H, s->W, s->K, s->R, s->S,
                                        s->stride, s->pad, s->groups));
        size_t nx = (size_t)d.N * d.C * d.H * d.W, ny = (size_t)d.N * d.K * d.P * d.Q;
        size_t nw = (size_t)d.K * (d.C / d.groups) * d.R * d.S;
        uint32_t seed = 900 + 10 * (uint32_t)si;
        fd_conv f = {.d = &d, .x = rand_vec(nx, seed), .w = rand_vec(nw, seed + 1),
                     .b = rand_vec(d.K, seed + 2), .g = rand_vec(ny, seed + 3),
                     .y = malloc(ny * 4)};
        float *dx = malloc(nx * 4), *dw = malloc(nw * 4), *db = malloc(d.K * 4);
        qg_ref_conv2d_bwd_data(&d, f.g, f.w, dx);
        qg_ref_conv2d_bwd_weight(&d, f.x, f.g, dw, db);
        char l[128];
        snprintf(l, sizeof l, "conv dx [%s]", s->what);
        cr_expect_eq(fd_check(l, conv_loss_v, &f, f.x, dx, nx), 0, "%s", l);
        snprintf(l, sizeof l, "conv dw [%s]", s->what);
        cr_expect_eq(fd_check(l, conv_loss_v, &f, f.w, dw, nw), 0, "%s", l);
        snprintf(l, sizeof l, "conv dbias [%s]", s->what);
        cr_expect_eq(fd_check(l, conv_loss_v, &f, f.b, db, d.K), 0, "%s", l);
        free(f.x);
        free(f.w);
        free(f.b);
        free(f.g);
        free(f.y);
        free(dx);
        free(dw);
        free(db);
    }
}

typedef struct fd_linear {
    int N, I, O;
    float *x, *w, *b, *g, *y;
} fd_linear;

static double linear_loss_v(const void *p)
{
    const fd_linear *f = p;
    qg_ref_linear_fwd(f->N, f->I, f->O, f->x, f->w, f->b, f->y);
    double l = 0;
    for (size_t i = 0; i < (size_t)f->N * f->O; i++)
        l += (double)f->g[i] * f->y[i];
    return l;
}

Test(conv, linear_reference_gradients_match_finite_differences)
{
    fd_linear f = {.N = 3, .I = 7, .O = 5};
    size_t nx = 21, nw = 35, ny = 15;
    f.x = rand_vec(nx, 77);
    f.w = rand_vec(nw, 78);
    f.b = rand_vec(5, 79);
    f.g = rand_vec(ny, 80);
    f.y = malloc(ny * 4);
    float dx[21], dw[35], db[5];
    qg_ref_linear_bwd(f.N, f.I, f.O, f.x, f.w, f.g, dx, dw, db);
    cr_expect_eq(fd_check("linear dx", linear_loss_v, &f, f.x, dx, nx), 0);
    cr_expect_eq(fd_check("linear dw", linear_loss_v, &f, f.w, dw, nw), 0);
    cr_expect_eq(fd_check("linear db", linear_loss_v, &f, f.b, db, 5), 0);
    free(f.x);
    free(f.w);
    free(f.b);
    free(f.g);
    free(f.y);
}

Test(conv, bad_shapes_are_errors)
{
    qg_ctx *ctx = qg_test_ctx();
    qg_conv_desc d = {0};
    /* C = 5 not divisible by groups = 2 */
    cr_expect_eq(qg__conv_desc_init(ctx, &d, 3, 5, 7, 5, 4, 3, 3, 1, 1, 2), QG_ERR_SHAPE);
    cr_expect(strstr(qg_last_error(), "groups") != NULL, "message: %s", qg_last_error());
    cr_expect_eq(d.P, 0, "descriptor written on failure");
    /* K = 5 not divisible by groups = 2 */
    cr_expect_eq(qg__conv_desc_init(ctx, &d, 3, 6, 7, 5, 5, 3, 3, 1, 1, 2), QG_ERR_SHAPE);
    /* 5x5 kernel on a 3x3 input without padding */
    cr_expect_eq(qg__conv_desc_init(ctx, &d, 1, 1, 3, 3, 1, 5, 5, 1, 0, 1), QG_ERR_SHAPE);
    cr_expect_eq(qg__conv_desc_init(ctx, &d, 1, 1, 3, 3, 1, 1, 1, 0, 0, 1), QG_ERR_SHAPE);

    /* a plan for a workspace below one image of the GEMM path (its
     * im2col columns and output, (3*9 + 4)*25 floats), passes given a
     * workspace below the plan's, and a tensor of the wrong size */
    QG_EXPECT_OK(qg__conv_desc_init(ctx, &d, 2, 3, 5, 5, 4, 3, 3, 1, 1, 1));
    qg_conv_plan *pl = (qg_conv_plan *)&d; /* must come back NULL */
    qg_conv_opts small = {.ws_floats = (3 * 9 + 4) * 25 - 1};
    cr_expect_eq(qg__conv_plan_new(ctx, &d, &small, &pl), QG_ERR_SHAPE);
    cr_expect(strstr(qg_last_error(), "workspace") != NULL, "message: %s", qg_last_error());
    cr_expect(pl == NULL, "plan returned on failure");
    qg_conv_opts bits = {.quant_bits = 1};
    cr_expect_eq(qg__conv_plan_new(ctx, &d, &bits, &pl), QG_ERR_INVALID_ARG);
    qg_conv_desc raw = d;
    raw.P = 0; /* not from qg__conv_desc_init */
    cr_expect_eq(qg__conv_plan_new(ctx, &raw, NULL, &pl), QG_ERR_INVALID_ARG);
    pl = plan_new(ctx, &d, 0, 0);
    int64_t sx[4] = {2, 3, 5, 5}, sw[4] = {4, 3, 3, 3}, sy[4] = {2, 4, 5, 5};
    int64_t sws[1] = {(int64_t)qg__conv_plan_ws_floats(pl) - 1}, sbad[4] = {2, 4, 5, 4};
    qg_tensor *x = qg_test_tensor(ctx, 4, sx, NULL), *w = qg_test_tensor(ctx, 4, sw, NULL);
    qg_tensor *y = qg_test_tensor(ctx, 4, sy, NULL), *ws = qg_test_tensor(ctx, 1, sws, NULL);
    qg_tensor *ybad = qg_test_tensor(ctx, 4, sbad, NULL);
    cr_expect_eq(qg__conv_enqueue_fwd(pl, x, w, NULL, y, ws, NULL), QG_ERR_SHAPE);
    cr_expect(strstr(qg_last_error(), "workspace") != NULL, "message: %s", qg_last_error());
    cr_expect_eq(qg__conv_enqueue_bwd_weight(pl, x, y, w, NULL, ws, 0), QG_ERR_SHAPE);
    cr_expect_eq(qg__conv_enqueue_fwd(pl, x, w, NULL, ybad, ws, NULL), QG_ERR_SHAPE);
    cr_expect_eq(qg__conv_enqueue_fwd(pl, x, w, NULL, y, NULL, NULL), QG_ERR_INVALID_ARG);
    cr_expect_eq(qg__linear_fwd(ctx, 2, 75, 3, x, w, NULL, y), QG_ERR_SHAPE);
    qg__conv_plan_free(pl);
    qg_tensor_free(x);
    qg_tensor_free(w);
    qg_tensor_free(y);
    qg_tensor_free(ws);
    qg_tensor_free(ybad);
}

/* A plan says what it can do: a ResNet-like 3x3 conv takes the direct
 * kernels with every optional pass (the fused quantizer only when asked
 * for, at 2..4 bits); with a workspace of one image the whole-batch
 * backward is gone; a 1x1 stride-2 conv takes the GEMM path with none.
 * An optional pass its plan lacks is an error with a message naming the
 * pass and the conv, and writes nothing. */
Test(conv, plan_reports_its_caps)
{
    qg_ctx *ctx = qg_test_ctx();
    const unsigned all = QG_CONV_CAP_DIRECT | QG_CONV_CAP_KEEP_PLANES | QG_CONV_CAP_EPILOGUE |
                         QG_CONV_CAP_MASKED_BWD;
    qg_conv_desc dd, dg, d1;
    QG_EXPECT_OK(qg__conv_desc_init(ctx, &dd, 2, 4, 8, 8, 8, 3, 3, 1, 1, 1));
    QG_EXPECT_OK(qg__conv_desc_init(ctx, &dg, 2, 4, 8, 8, 8, 1, 1, 2, 0, 1));
    QG_EXPECT_OK(qg__conv_desc_init(ctx, &d1, 1, 4, 8, 8, 8, 3, 3, 1, 1, 1));

    qg_conv_plan *pd = plan_new(ctx, &dd, 0, 0), *pq = plan_new(ctx, &dd, 0, 3);
    qg_conv_plan *p8 = plan_new(ctx, &dd, 0, 8), *p1 = plan_new(ctx, &d1, 0, 0);
    cr_expect_eq(qg__conv_plan_caps(pd), all, "direct: caps %#x", qg__conv_plan_caps(pd));
    cr_expect_eq(qg__conv_plan_caps(pq), all | QG_CONV_CAP_FUSED_QUANT, "direct, 3 bits: %#x",
                 qg__conv_plan_caps(pq));
    cr_expect_eq(qg__conv_plan_caps(p8), all, "direct, 8 bits: %#x", qg__conv_plan_caps(p8));
    cr_expect_gt(qg__conv_plan_keep_floats(pd), 0);
    cr_expect_gt(qg__conv_plan_wprep_floats(pd), 0);
    cr_expect(strstr(qg__conv_plan_name(pd), "direct") != NULL, "%s", qg__conv_plan_name(pd));
    cr_expect_eq(qg__conv_plan_desc(pd)->P, 8);
    /* one image's workspace: still direct, chunk by chunk */
    qg_conv_plan *ps = plan_new(ctx, &dd, qg__conv_plan_ws_floats(p1), 0);
    cr_expect_eq(qg__conv_plan_caps(ps) & QG_CONV_CAP_MASKED_BWD, 0, "%#x",
                 qg__conv_plan_caps(ps));
    cr_expect(qg__conv_plan_caps(ps) & QG_CONV_CAP_DIRECT, "%#x", qg__conv_plan_caps(ps));

    qg_conv_plan *pg = plan_new(ctx, &dg, 0, 3);
    cr_expect_eq(qg__conv_plan_caps(pg), 0, "GEMM: caps %#x", qg__conv_plan_caps(pg));
    cr_expect_eq(qg__conv_plan_keep_floats(pg), 0);
    cr_expect_eq(qg__conv_plan_wprep_floats(pg), 0);
    cr_expect(strstr(qg__conv_plan_name(pg), "GEMM") != NULL, "%s", qg__conv_plan_name(pg));

    size_t nx = 2 * 4 * 8 * 8, ny = 2 * 8 * 4 * 4, nw = 8 * 4;
    buf tx = buf_new(ctx, nx, NULL, 1.0f), tw = buf_new(ctx, nw, NULL, 1.0f);
    buf ty = buf_new(ctx, ny, NULL, NAN), tdx = buf_new(ctx, nx, NULL, NAN);
    buf tdw = buf_new(ctx, nw, NULL, NAN), ts = buf_new(ctx, 1, NULL, 1.0f);
    buf tws = buf_new(ctx, qg__conv_plan_ws_floats(pg), NULL, NAN);
    buf tk = buf_new(ctx, 64, NULL, NAN), twp = buf_new(ctx, 64, NULL, NAN);
    expect_refused(qg__conv_enqueue_fwd_quant(pg, tx.view, ts.view, tw.view, ty.view, tws.view,
                                              NULL), "conv2d_fwd_quant", &dg, "fwd_quant");
    expect_refused(qg__conv_enqueue_fwd_fused(pg, tx.view, tw.view, NULL, ty.view, tws.view, 0,
                                              NULL, 1, twp.view, 0),
                   "conv2d_fwd_fused", &dg, "fwd_fused");
    expect_refused(qg__conv_enqueue_fwd(pg, tx.view, tw.view, NULL, ty.view, tws.view, tk.view),
                   "conv2d_fwd", &dg, "fwd with keep");
    expect_refused(qg__conv_enqueue_bwd_masked(pg, tx.view, ty.view, tw.view, tdx.view, 0, NULL,
                                               tdw.view, 0, NULL, tws.view, NULL),
                   "conv2d_bwd_masked", &dg, "bwd_masked");
    expect_refused(qg__conv_enqueue_bwd(pg, tx.view, ty.view, tw.view, tdx.view, 0, tdw.view,
                                        NULL, 0, tws.view, tk.view),
                   "conv2d_bwd", &dg, "bwd with keep");
    buf *outs[] = {&ty, &tdx, &tdw, &tk, &twp};
    for (size_t i = 0; i < sizeof outs / sizeof *outs; i++) {
        float *h = buf_get(outs[i], "refused");
        size_t written = 0;
        for (size_t j = 0; j < outs[i]->n; j++)
            written += !isnan(h[j]);
        cr_expect_eq(written, 0, "output %zu: refused passes wrote %zu values", i, written);
        free(h);
    }
    /* and the passes it has run (ones * ones: every output is C = 4) */
    QG_EXPECT_OK(qg__conv_enqueue_fwd(pg, tx.view, tw.view, NULL, ty.view, tws.view, NULL));
    float *y = buf_get(&ty, "fwd");
    cr_expect_eq(y[0], 4.0f);
    cr_expect_eq(y[ny - 1], 4.0f);
    free(y);

    buf *bs[] = {&tx, &tw, &ty, &tdx, &tdw, &ts, &tws, &tk, &twp};
    for (size_t i = 0; i < sizeof bs / sizeof *bs; i++)
        buf_free(bs[i]);
    qg_conv_plan *ps_all[] = {pd, pq, p8, p1, ps, pg};
    for (size_t i = 0; i < sizeof ps_all / sizeof *ps_all; i++)
        qg__conv_plan_free(ps_all[i]);
    qg__conv_plan_free(NULL);
}
