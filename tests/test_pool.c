/* tests/test_pool.c: max, average and global-average pooling
 * (src/ops/pool.c, cl/pool.cl) and the option-A shortcut
 * (src/ops/shortcut.c, cl/shortcut.cl) against the C references of
 * src/ref/ref_layers.c, and finite-difference checks of those references.
 *
 * Device tests run 3x5x7x5 maps (k3 s2 p1, k2 s2 p0, k3 s1 p1), the
 * shortcut 16->32 at stride 2 on 7x5 and 5x7 maps and 3->5 at stride 1,
 * forward and backward, overwriting and accumulating, under the default
 * work-group size and two others. Outputs are views inside a larger
 * buffer whose margins hold a sentinel, checked untouched afterwards;
 * overwritten outputs start as NaN so a kernel that reads them fails.
 *
 * Tolerances (|got - want| <= atol + rtol*|want|): max pool, argmax, GAP
 * backward and the shortcut move values, so they must match exactly;
 * averages sum in float on the device and in double in the oracle:
 * atol 1e-5, rtol 1e-5 (1e-4 for GAP over 35 elements). Gradient checks:
 * central differences in double of L = sum(g * y) on the float
 * references; these maps are linear (max pool piecewise, inputs kept
 * >= 1e-2 apart so the step 1e-3 never changes the argmax), so
 * |fd - analytic| <= 1e-3 + 1e-2*|analytic|. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/support.h"
#include "cl/ctx.h"
#include "ops/layers.h"
#include "ref/ref_layers.h"

TestSuite(pool, .fini = qg_test_ctx_free);

static const long wgs[] = {64, 16, 128};

/* ---- device buffers with sentinel margins (F32 or I32, 4 bytes) ---- */

#define PAD 13
#define SENTINEL -12345.5f

typedef struct dbuf {
    qg_tensor *whole, *view;
    size_t n;
} dbuf;

/* init NULL fills the view with NaN (F32) or -7 (I32). */
static dbuf dbuf_new_dt(qg_ctx *ctx, qg_dtype dt, int ndim, const int64_t *shape,
                        const void *init)
{
    dbuf b = {.n = 1};
    for (int i = 0; i < ndim; i++)
        b.n *= (size_t)shape[i];
    size_t total = b.n + 2 * PAD;
    float *h = malloc(total * sizeof *h);
    int32_t fill_i = -7;
    float fill = NAN;
    if (dt == QG_DTYPE_I32)
        memcpy(&fill, &fill_i, 4);
    for (size_t i = 0; i < total; i++)
        h[i] = i < PAD || i >= PAD + b.n ? SENTINEL : fill;
    if (init)
        memcpy(h + PAD, init, b.n * 4);
    int64_t s1[1] = {(int64_t)total};
    QG_EXPECT_OK(qg_tensor_new(ctx, 1, s1, dt, "test", &b.whole));
    QG_EXPECT_OK(qg_tensor_write(b.whole, h, total * 4));
    QG_EXPECT_OK(qg_tensor_view(b.whole, PAD, ndim, shape, &b.view));
    free(h);
    return b;
}

static dbuf dbuf_new(qg_ctx *ctx, int ndim, const int64_t *shape, const float *init)
{
    return dbuf_new_dt(ctx, QG_DTYPE_F32, ndim, shape, init);
}

/* The view's contents (malloc'd, 4-byte elements); checks the margins. */
static void *dbuf_read(const dbuf *b, const char *label)
{
    float *h = malloc((b->n + 2 * PAD) * 4);
    QG_EXPECT_OK(qg_tensor_read(b->whole, h, (b->n + 2 * PAD) * 4));
    for (size_t i = 0; i < PAD; i++) {
        cr_expect_eq(h[i], SENTINEL, "%s: write before the tensor at %zu", label, i);
        cr_expect_eq(h[PAD + b->n + i], SENTINEL, "%s: write past the tensor at %zu", label, i);
    }
    float *v = malloc(b->n * 4);
    memcpy(v, h + PAD, b->n * 4);
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

/* Reads b, compares with want, frees b. */
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

/* ---- pooling: device vs reference ---- */

typedef struct pool_case {
    int k, stride, pad;
} pool_case;

static const pool_case pool_cases[] = {{3, 2, 1}, {2, 2, 0}, {3, 1, 1}};
enum { PN = 3, PC = 5, PH = 7, PW = 5 };

static void run_pool(qg_ctx *ctx, const pool_case *pc, long wg, const float *x, uint32_t seed)
{
    int NC = PN * PC, k = pc->k, s = pc->stride, pad = pc->pad;
    int P = qg_ref_pool_out(PH, k, s, pad), Q = qg_ref_pool_out(PW, k, s, pad);
    size_t nx = (size_t)NC * PH * PW, ny = (size_t)NC * P * Q;
    int64_t shx[4] = {PN, PC, PH, PW}, shy[4] = {PN, PC, P, Q};
    char label[96];
    snprintf(label, sizeof label, "k%d s%d p%d -> %dx%d WG=%ld", k, s, pad, P, Q, wg);
    float *dy = rand_vec(ny, -1, 1, seed), *y_ref = malloc(ny * 4), *dx_ref = malloc(nx * 4);
    int32_t *am_ref = malloc(ny * 4);
    dbuf tx = dbuf_new(ctx, 4, shx, x), tdy = dbuf_new(ctx, 4, shy, dy);

    dbuf ty = dbuf_new(ctx, 4, shy, NULL), tam = dbuf_new_dt(ctx, QG_DTYPE_I32, 4, shy, NULL);
    QG_EXPECT_OK(qg__maxpool_fwd(ctx, tx.view, k, s, pad, ty.view, tam.view));
    qg_ref_maxpool_fwd(NC, PH, PW, k, s, pad, x, y_ref, am_ref);
    expect_close(&ty, y_ref, 0, 0, "maxpool y", label);
    int32_t *am = dbuf_read(&tam, "argmax");
    int am_bad = 0;
    for (size_t i = 0; i < ny; i++)
        am_bad += am[i] != am_ref[i];
    cr_expect_eq(am_bad, 0, "argmax differs at %d places [%s]", am_bad, label);
    free(am);
    dbuf tdx = dbuf_new(ctx, 4, shx, NULL);
    QG_EXPECT_OK(qg__maxpool_bwd(ctx, tdy.view, tam.view, tdx.view));
    qg_ref_maxpool_bwd(NC, PH, PW, P, Q, dy, am_ref, dx_ref);
    /* Overlapping windows add in output order on both sides: exact. */
    expect_close(&tdx, dx_ref, 0, 0, "maxpool dx", label);
    dbuf_free(&tam);

    ty = dbuf_new(ctx, 4, shy, NULL);
    QG_EXPECT_OK(qg__avgpool_fwd(ctx, tx.view, k, s, pad, ty.view));
    qg_ref_avgpool_fwd(NC, PH, PW, k, s, pad, x, y_ref);
    expect_close(&ty, y_ref, 1e-5f, 1e-5f, "avgpool y", label);
    tdx = dbuf_new(ctx, 4, shx, NULL);
    QG_EXPECT_OK(qg__avgpool_bwd(ctx, tdy.view, k, s, pad, tdx.view));
    qg_ref_avgpool_bwd(NC, PH, PW, k, s, pad, dy, dx_ref);
    expect_close(&tdx, dx_ref, 1e-5f, 1e-5f, "avgpool dx", label);

    dbuf_free(&tx);
    dbuf_free(&tdy);
    free(dy);
    free(y_ref);
    free(dx_ref);
    free(am_ref);
}

Test(pool, max_and_avg_match_reference)
{
    qg_ctx *ctx = qg_test_ctx();
    size_t nx = (size_t)PN * PC * PH * PW;
    /* Random values, and a copy rounded to a few levels so windows hold
     * ties (first maximum must win on both sides) and an all-negative
     * plane (padding must never win). */
    float *x = rand_vec(nx, -2, 2, 11), *xt = malloc(nx * 4);
    for (size_t i = 0; i < nx; i++)
        xt[i] = i < (size_t)PH * PW ? -1.0f - floorf((x[i] + 2.0f) * 1.5f) : floorf(x[i]);
    for (size_t w = 0; w < sizeof wgs / sizeof *wgs; w++) {
        QG_EXPECT_OK(qg__program_override(ctx, "pool", &wgs[w]));
        for (size_t c = 0; c < sizeof pool_cases / sizeof *pool_cases; c++) {
            run_pool(ctx, &pool_cases[c], wgs[w], x, 20 + (uint32_t)c);
            run_pool(ctx, &pool_cases[c], wgs[w], xt, 30 + (uint32_t)c);
        }
    }
    free(x);
    free(xt);
}

Test(pool, max_picks_the_first_maximum_and_ignores_padding)
{
    /* One 3x3 plane, k3 s2 p1 -> 2x2; every value -1 except a tie of 5s
     * at (1,1) and (1,2): the window at (0,0) covers (0..1, 0..1), the one
     * at (0,1) covers (0..1, 1..2) and holds both 5s: first one wins. */
    qg_ctx *ctx = qg_test_ctx();
    float x[9] = {-1, -1, -1, -1, 5, 5, -1, -1, -1};
    int64_t shx[4] = {1, 1, 3, 3}, shy[4] = {1, 1, 2, 2};
    qg_tensor *tx = qg_test_tensor(ctx, 4, shx, x), *ty = qg_test_tensor(ctx, 4, shy, NULL);
    qg_tensor *tam = NULL;
    QG_EXPECT_OK(qg_tensor_new(ctx, 4, shy, QG_DTYPE_I32, "argmax", &tam));
    QG_EXPECT_OK(qg__maxpool_fwd(ctx, tx, 3, 2, 1, ty, tam));
    float y[4];
    int32_t am[4];
    QG_EXPECT_OK(qg_tensor_read(ty, y, sizeof y));
    QG_EXPECT_OK(qg_tensor_read(tam, am, sizeof am));
    float want_y[4] = {5, 5, 5, 5};
    int32_t want_am[4] = {4, 4, 4, 4};
    cr_expect(qg_test_allclose("tie y", y, want_y, 4, 0, 0));
    for (int i = 0; i < 4; i++)
        cr_expect_eq(am[i], want_am[i], "argmax[%d] = %d, want %d", i, am[i], want_am[i]);
    float neg[9] = {-3, -2, -4, -5, -6, -7, -8, -9, -1};
    QG_EXPECT_OK(qg_tensor_write(tx, neg, sizeof neg));
    QG_EXPECT_OK(qg__maxpool_fwd(ctx, tx, 3, 2, 1, ty, tam));
    QG_EXPECT_OK(qg_tensor_read(ty, y, sizeof y));
    float want_neg[4] = {-2, -2, -5, -1};
    cr_expect(qg_test_allclose("negative y (padding must not win)", y, want_neg, 4, 0, 0));
    qg_tensor_free(tx);
    qg_tensor_free(ty);
    qg_tensor_free(tam);
}

Test(pool, global_average_matches_reference)
{
    qg_ctx *ctx = qg_test_ctx();
    int NC = PN * PC, HW = PH * PW;
    float *x = rand_vec((size_t)NC * HW, -1, 3, 40), *dy = rand_vec(NC, -1, 1, 41);
    float *y_ref = malloc(NC * 4), *dx_ref = malloc((size_t)NC * HW * 4);
    qg_ref_gap_fwd(NC, HW, x, y_ref);
    qg_ref_gap_bwd(NC, HW, dy, dx_ref);
    int64_t shx[4] = {PN, PC, PH, PW}, sh2[2] = {PN, PC}, sh4[4] = {PN, PC, 1, 1};
    for (size_t w = 0; w < sizeof wgs / sizeof *wgs; w++) {
        QG_EXPECT_OK(qg__program_override(ctx, "pool", &wgs[w]));
        char label[64];
        snprintf(label, sizeof label, "WG=%ld", wgs[w]);
        for (int r = 0; r < 2; r++) {
            const int64_t *shy = r ? sh4 : sh2;
            dbuf tx = dbuf_new(ctx, 4, shx, x), ty = dbuf_new(ctx, r ? 4 : 2, shy, NULL);
            QG_EXPECT_OK(qg__gap_fwd(ctx, tx.view, ty.view));
            expect_close(&ty, y_ref, 1e-4f, 1e-4f, r ? "gap y [N,C,1,1]" : "gap y [N,C]", label);
            dbuf tdy = dbuf_new(ctx, r ? 4 : 2, shy, dy), tdx = dbuf_new(ctx, 4, shx, NULL);
            QG_EXPECT_OK(qg__gap_bwd(ctx, tdy.view, tdx.view));
            expect_close(&tdx, dx_ref, 0, 0, "gap dx", label);
            dbuf_free(&tx);
            dbuf_free(&tdy);
        }
    }
    free(x);
    free(dy);
    free(y_ref);
    free(dx_ref);
}

Test(pool, bad_geometry_is_an_error)
{
    qg_ctx *ctx = qg_test_ctx();
    int64_t shx[4] = {1, 2, 5, 5}, shy[4] = {1, 2, 3, 3}, bad[4] = {1, 2, 2, 2};
    qg_tensor *x = qg_test_tensor(ctx, 4, shx, NULL), *y = qg_test_tensor(ctx, 4, shy, NULL);
    qg_tensor *yb = qg_test_tensor(ctx, 4, bad, NULL);
    cr_expect_eq(qg__avgpool_fwd(ctx, x, 3, 2, 1, y), QG_OK);
    cr_expect_eq(qg__avgpool_fwd(ctx, x, 3, 2, 1, yb), QG_ERR_SHAPE);
    cr_expect_eq(qg__avgpool_fwd(ctx, x, 2, 2, 2, y), QG_ERR_INVALID_ARG);
    cr_expect_eq(qg__maxpool_fwd(ctx, x, 3, 2, 1, y, y), QG_ERR_SHAPE); /* argmax not I32 */
    cr_expect_eq(qg__gap_fwd(ctx, x, y), QG_ERR_SHAPE);
    cr_expect_eq(qg__shortcut_a_fwd(ctx, x, 2, yb, 0), QG_ERR_SHAPE);
    qg_tensor_free(x);
    qg_tensor_free(y);
    qg_tensor_free(yb);
}

/* ---- option-A shortcut: device vs reference ---- */

typedef struct sc_case {
    int N, C, H, W, K, stride;
} sc_case;

Test(pool, shortcut_matches_reference)
{
    static const sc_case cases[] = {
        {3, 16, 7, 5, 32, 2},
        {3, 16, 5, 7, 32, 2},
        {3, 3, 5, 7, 5, 1},
    };
    qg_ctx *ctx = qg_test_ctx();
    for (size_t w = 0; w < 2 * sizeof wgs / sizeof *wgs; w++) {
        /* Every WG with one item per element (ROW 0), then with one item
         * per row (ROW 1) or per plane (ROW 2). */
        size_t nw = sizeof wgs / sizeof *wgs;
        long set[2] = {wgs[w % nw], w < nw ? 0 : 1 + (long)(w % 2)};
        QG_EXPECT_OK(qg__program_override(ctx, "shortcut", set));
        for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
            const sc_case *c = &cases[ci];
            int P = (c->H + c->stride - 1) / c->stride, Q = (c->W + c->stride - 1) / c->stride;
            size_t nx = (size_t)c->N * c->C * c->H * c->W, ny = (size_t)c->N * c->K * P * Q;
            int64_t shx[4] = {c->N, c->C, c->H, c->W}, shy[4] = {c->N, c->K, P, Q};
            char label[96];
            snprintf(label, sizeof label, "%d->%d s%d %dx%d WG=%ld ROW=%ld", c->C, c->K,
                     c->stride, c->H, c->W, set[0], set[1]);
            uint32_t seed = 50 + 10 * (uint32_t)ci;
            float *x = rand_vec(nx, -1, 1, seed), *dy = rand_vec(ny, -1, 1, seed + 1);
            float *y0 = rand_vec(ny, -1, 1, seed + 2), *dx0 = rand_vec(nx, -1, 1, seed + 3);
            float *y_ref = malloc(ny * 4), *dx_ref = malloc(nx * 4);
            dbuf tx = dbuf_new(ctx, 4, shx, x), tdy = dbuf_new(ctx, 4, shy, dy);
            for (int acc = 0; acc < 2; acc++) {
                const char *fw = acc ? "shortcut fwd accumulate" : "shortcut fwd";
                const char *bw = acc ? "shortcut bwd accumulate" : "shortcut bwd";
                memcpy(y_ref, y0, ny * 4);
                memcpy(dx_ref, dx0, nx * 4);
                qg_ref_shortcut_a_fwd(c->N, c->C, c->H, c->W, c->K, c->stride, x, y_ref, acc);
                qg_ref_shortcut_a_bwd(c->N, c->C, c->H, c->W, c->K, c->stride, dy, dx_ref,
                                      acc);
                dbuf ty = dbuf_new(ctx, 4, shy, acc ? y0 : NULL);
                dbuf tdx = dbuf_new(ctx, 4, shx, acc ? dx0 : NULL);
                QG_EXPECT_OK(qg__shortcut_a_fwd(ctx, tx.view, c->stride, ty.view, acc));
                QG_EXPECT_OK(qg__shortcut_a_bwd(ctx, tdy.view, c->stride, tdx.view, acc));
                expect_close(&ty, y_ref, 0, 0, fw, label);
                expect_close(&tdx, dx_ref, 0, 0, bw, label);
            }
            dbuf_free(&tx);
            dbuf_free(&tdy);
            float *hs[] = {x, dy, y0, dx0, y_ref, dx_ref};
            for (size_t i = 0; i < sizeof hs / sizeof *hs; i++)
                free(hs[i]);
        }
    }
}

Test(pool, shortcut_reference_on_a_worked_example)
{
    /* x [1,2,3,3] = 0..17, K = 4, stride 2: y [1,4,2,2] has zero planes 0
     * and 3; plane 1 = x plane 0 at (0,0),(0,2),(2,0),(2,2) = 0,2,6,8 and
     * plane 2 the same of x plane 1 = 9,11,15,17. */
    float x[18], y[16];
    for (int i = 0; i < 18; i++)
        x[i] = (float)i;
    qg_ref_shortcut_a_fwd(1, 2, 3, 3, 4, 2, x, y, 0);
    float want[16] = {0, 0, 0, 0, 0, 2, 6, 8, 9, 11, 15, 17, 0, 0, 0, 0};
    cr_expect(qg_test_allclose("shortcut worked example", y, want, 16, 0, 0));
}

/* ---- finite differences on the C references ---- */

#define FD_EPS 1e-3
#define FD_ATOL 1e-3
#define FD_RTOL 1e-2

/* Loss L = sum g*y of one of the references below; x is perturbed. */
typedef struct fd_pool {
    int kind; /* 0 max, 1 avg, 2 gap, 3 shortcut */
    int N, C, H, W, k, stride, pad, K;
    float *x, *g, *y;
    int32_t *am;
    size_t ny;
} fd_pool;

static double pool_loss(const fd_pool *f)
{
    int NC = f->N * f->C;
    switch (f->kind) {
    case 0:
        qg_ref_maxpool_fwd(NC, f->H, f->W, f->k, f->stride, f->pad, f->x, f->y, f->am);
        break;
    case 1:
        qg_ref_avgpool_fwd(NC, f->H, f->W, f->k, f->stride, f->pad, f->x, f->y);
        break;
    case 2:
        qg_ref_gap_fwd(NC, f->H * f->W, f->x, f->y);
        break;
    default:
        qg_ref_shortcut_a_fwd(f->N, f->C, f->H, f->W, f->K, f->stride, f->x, f->y, 0);
    }
    double l = 0;
    for (size_t i = 0; i < f->ny; i++)
        l += (double)f->g[i] * f->y[i];
    return l;
}

static int fd_check(const char *label, fd_pool *f, const float *grad, size_t n)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        float v0 = f->x[i], vp = (float)(v0 + FD_EPS), vm = (float)(v0 - FD_EPS);
        f->x[i] = vp;
        double lp = pool_loss(f);
        f->x[i] = vm;
        double lm = pool_loss(f);
        f->x[i] = v0;
        double fd = (lp - lm) / ((double)vp - (double)vm);
        if (!(fabs(fd - grad[i]) <= FD_ATOL + FD_RTOL * fabs(grad[i]))) {
            if (bad < 10)
                fprintf(stderr, "%s: [%zu] finite difference %.6g, analytic %.6g\n", label, i,
                        fd, grad[i]);
            bad++;
        }
    }
    return bad;
}

Test(pool, reference_gradients_match_finite_differences)
{
    enum { N = 2, C = 3, H = 7, W = 5 };
    size_t nx = (size_t)N * C * H * W;
    /* Distinct values 1e-2 apart (a shuffled ramp): no ties in any window
     * survive the 1e-3 step. */
    float *x = malloc(nx * 4), *dx = malloc(nx * 4), *r = rand_vec(nx, 0, 1, 60);
    for (size_t i = 0; i < nx; i++)
        x[i] = (float)i * 1e-2f;
    for (size_t i = nx - 1; i > 0; i--) {
        size_t j = (size_t)(r[i] * (float)(i + 1)) % (i + 1);
        float t = x[i];
        x[i] = x[j];
        x[j] = t;
    }
    static const struct {
        int kind, k, stride, pad, K;
        const char *what;
    } cases[] = {
        {0, 3, 2, 1, 0, "maxpool k3 s2 p1"}, {0, 2, 2, 0, 0, "maxpool k2 s2"},
        {1, 3, 2, 1, 0, "avgpool k3 s2 p1"}, {1, 2, 2, 0, 0, "avgpool k2 s2"},
        {2, 0, 1, 0, 0, "gap"},              {3, 0, 2, 0, 5, "shortcut 3->5 s2"},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        fd_pool f = {.kind = cases[ci].kind, .N = N, .C = C, .H = H, .W = W,
                     .k = cases[ci].k, .stride = cases[ci].stride, .pad = cases[ci].pad,
                     .K = cases[ci].K, .x = x};
        int P, Q;
        if (f.kind <= 1) {
            P = qg_ref_pool_out(H, f.k, f.stride, f.pad);
            Q = qg_ref_pool_out(W, f.k, f.stride, f.pad);
            f.ny = (size_t)N * C * P * Q;
        } else if (f.kind == 2) {
            P = Q = 1;
            f.ny = (size_t)N * C;
        } else {
            P = (H + f.stride - 1) / f.stride;
            Q = (W + f.stride - 1) / f.stride;
            f.ny = (size_t)N * f.K * P * Q;
        }
        f.g = rand_vec(f.ny, -1, 1, 70 + (uint32_t)ci);
        f.y = malloc(f.ny * 4);
        f.am = malloc(f.ny * 4);
        pool_loss(&f);
        switch (f.kind) {
        case 0:
            qg_ref_maxpool_bwd(N * C, H, W, P, Q, f.g, f.am, dx);
            break;
        case 1:
            qg_ref_avgpool_bwd(N * C, H, W, f.k, f.stride, f.pad, f.g, dx);
            break;
        case 2:
            qg_ref_gap_bwd(N * C, H * W, f.g, dx);
            break;
        default:
            qg_ref_shortcut_a_bwd(N, C, H, W, f.K, f.stride, f.g, dx, 0);
        }
        cr_expect_eq(fd_check(cases[ci].what, &f, dx, nx), 0, "%s", cases[ci].what);
        free(f.g);
        free(f.y);
        free(f.am);
    }
    free(x);
    free(dx);
    free(r);
}
