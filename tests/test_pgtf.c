/* tests/test_pgtf.c: precision gating with the TensorFlow semantics
 * (--pg-style tf; docs/methods.md §3).
 *
 * Kernels (cl/quant.cl via src/quant/quant.c) against their C twins
 * (src/ref/ref_quant.c): the PG-TF gate forward and backward and the
 * threshold clip, under three work-group / layout / vector settings, at
 * odd shapes. Tolerances, device vs reference: mask, count, Y, d_full and
 * the clip exact (the same IEEE operations on both sides; the mask is a
 * plain comparison, no exp); d_hb 1e-6 + 1e-5*|want| (device exp in the
 * sigmoid surrogate may differ from expf by ulps); delta_grad (sums in
 * another order) 1e-5 + 1e-4*|want|. The oracle PGTF-G1 pins the numbers
 * by hand; finite differences (double, step 1e-3) check the reference's
 * surrogate gradient, |fd - analytic| <= 1e-4 + 1e-3*|analytic|.
 *
 * Goldens: PyTorch autograd of the TensorFlow graph
 * (tests/tools/gen_pgtf_golden.py) against the PGConv2d node.
 *
 * Nodes (src/model/nodes_quant.c): the PG-TF PGConv2d, the PG-TF
 * QuantizedConv2d (float weights, per-sample input scale) and the
 * activation quantizer for depthwise inputs, forward and backward, against
 * a host composition of the references (conv tolerance 1e-4 + 1e-4*|want|,
 * as tests/test_pgconv.c). The inputs hold exact zeros, tiny values that
 * quantize to 0 (where the TF chain's [X != 0] mask differs from [x != 0])
 * and one all-zero sample (scale 0: output 0, no NaN).
 *
 * Method level: --pg-style and the TF spellings (--a --t --g), messages,
 * metadata, the threshold clip after a step, the TF gating loss (oracle
 * GATE-L1), the ResNet-8 build (TF PACT nodes, TF quantized conv2) and the
 * depthwise input hook. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/support.h"
#include "cl/ctx.h"
#include "method/m_pg.h"
#include "method/method.h"
#include "method/params.h"
#include "model/nodes.h"
#include "model/nodes_quant.h"
#include "model/resnet.h"
#include "ops/conv.h"
#include "quant/quant.h"
#include "ref/ref_conv.h"
#include "ref/ref_quant.h"
#include "tensor/tensor_impl.h"

TestSuite(pgtf, .fini = qg_test_ctx_free);

#define GTOL_A 1e-6f
#define GTOL_R 1e-5f
#define STOL_A 1e-5f
#define STOL_R 1e-4f
#define CTOL 1e-4f

static const long wgs[] = {64, 16, 256};

/* as tests/test_quant.c: the GPU default and two CPU layouts */
static void set_wg(qg_ctx *ctx, long wg)
{
    long v[3] = {wg, wg != 64, wg == 64 ? 1 : wg == 16 ? 16 : 4};
    QG_EXPECT_OK(qg__program_override(ctx, "quant", v));
}

typedef qg_test_buf buf;

static int same(const char *label, const float *got, const float *want, size_t n)
{
    return qg_test_allclose(label, got, want, n, 0, 0);
}

static double sigm(double z)
{
    return 1.0 / (1.0 + exp(-z));
}

/* ---- oracle PGTF-G1: the gate by hand ---- */

Test(pgtf, oracle_gate)
{
    /* [N=1, C=3, 1, 1]: h_hb = 0.3 (gate on), 0.2 (off), 0.25 == delta
     * (off: a strict comparison); h_full = h_hb + 0.125; dY = 1. */
    qg_ctx *ctx = qg_test_ctx();
    const float hb[3] = {0.3f, 0.2f, 0.25f}, de[3] = {0.25f, 0.25f, 0.25f};
    const float hf[3] = {0.425f, 0.325f, 0.375f}, dy[3] = {1.0f, 1.0f, 1.0f};
    int64_t sh[4] = {1, 3, 1, 1}, sc[1] = {3};
    buf bh = qg_test_buf_new(ctx, 4, sh, hb), bf = qg_test_buf_new(ctx, 4, sh, hf);
    buf bd = qg_test_buf_new(ctx, 1, sc, de), by = qg_test_buf_new(ctx, 4, sh, NULL);
    buf bg = qg_test_buf_new(ctx, 4, sh, dy);
    qg_tensor *count = qg_test_i32_tensor(ctx, 1, 5);
    QG_EXPECT_OK(qg__pgtf_gate_fwd(ctx, bh.view, bd.view, bf.view, by.view, count));
    float *y = qg_test_buf_get(&by, "Y");
    const float ywant[3] = {0.3f + (0.425f - 0.3f), 0.2f, 0.25f};
    cr_expect(same("PGTF-G1 Y", y, ywant, 3));
    cr_expect(fabsf(y[0] - 0.425f) <= 1e-7f, "y0 = %.9g", y[0]);
    int32_t *cnt = qg_test_read_i32(count);
    cr_expect_eq(cnt[0], 6, "count accumulates: 5 + 1, got %d", cnt[0]);
    free(cnt);
    free(y);

    /* s = sigmoid(5*(h_hb - delta)); g = 0.125*s*(1-s)*5 per channel;
     * channel 0: s = sigmoid(0.25) = 0.5621765, g/0.125 = 1.2306704 (the
     * surrogate of PG-G1); channel 2: s = 0.5, g = 0.125*0.25*5. */
    float g[3];
    for (int c = 0; c < 3; c++) {
        float z = 5.0f * (hb[c] - de[c]);
        float s = 1.0f / (1.0f + expf(-z));
        g[c] = 1.0f * (hf[c] - hb[c]) * s * (1.0f - s) * 5.0f;
    }
    cr_expect(fabsf(g[0] / 0.125f - 1.2306704f) <= 1e-6f, "g0/0.125 = %.9g", g[0] / 0.125f);
    cr_expect(fabsf(g[2] - 0.15625f) <= 1e-7f, "g2 = %.9g", g[2]);
    const float dhb_want[3] = {0.0f + g[0], 1.0f + g[1], 1.0f + g[2]};
    const float dhf_want[3] = {1.0f, 0.0f, 0.0f};
    const float dd_want[3] = {0.5f - g[0], 0.5f - g[1], 0.5f - g[2]};
    const float half[3] = {0.5f, 0.5f, 0.5f};
    buf bdh = qg_test_buf_new(ctx, 4, sh, NULL), bdf = qg_test_buf_new(ctx, 4, sh, NULL);
    buf bdd = qg_test_buf_new(ctx, 1, sc, half);
    QG_EXPECT_OK(qg__pgtf_gate_bwd(ctx, bh.view, bd.view, bf.view, bg.view, 5.0f, bdh.view,
                                   bdf.view, bdd.view));
    float rh[3], rf[3], rd[3] = {0.5f, 0.5f, 0.5f};
    qg_ref_pgtf_gate_bwd(1, 3, 1, hb, de, hf, dy, 5.0f, rh, rf, rd);
    float *gh = qg_test_buf_get(&bdh, "d_hb"), *gf = qg_test_buf_get(&bdf, "d_full");
    float *gd = qg_test_buf_get(&bdd, "delta_grad");
    cr_expect(same("PGTF-G1 ref d_hb", rh, dhb_want, 3) && same("ref d_full", rf, dhf_want, 3));
    cr_expect(same("PGTF-G1 ref ddelta", rd, dd_want, 3));
    cr_expect(qg_test_allclose("PGTF-G1 d_hb", gh, dhb_want, 3, 1e-7f, 0));
    cr_expect(same("PGTF-G1 d_full", gf, dhf_want, 3));
    cr_expect(qg_test_allclose("PGTF-G1 ddelta", gd, dd_want, 3, 1e-7f, 0));
    free(gh);
    free(gf);
    free(gd);
    qg_test_buf_free(&bdh);
    qg_test_buf_free(&bdf);
    qg_test_buf_free(&bdd);
    qg_tensor_free(count);
    qg_test_buf_free(&bh);
    qg_test_buf_free(&bf);
    qg_test_buf_free(&bd);
    qg_test_buf_free(&by);
    qg_test_buf_free(&bg);
}

/* ---- random tensors, device vs reference ---- */

typedef struct shp {
    int N, C, H, W;
} shp;
static const shp shapes[] = {{2, 3, 5, 7}, {3, 5, 1, 1}, {1, 16, 9, 9}, {4, 2, 17, 3}};
#define NSHAPES (sizeof shapes / sizeof *shapes)

static float *rand_data(size_t n, float lo, float hi, uint32_t seed)
{
    float *x = malloc(n * sizeof *x);
    qg_test_fill(x, n, lo, hi, seed);
    return x;
}

Test(pgtf, random_gate_matches_reference)
{
    qg_ctx *ctx = qg_test_ctx();
    const float slope = 5.0f;
    for (size_t w = 0; w < 3; w++) {
        set_wg(ctx, wgs[w]);
        for (size_t si = 0; si < NSHAPES; si++) {
            shp s = shapes[si];
            size_t n = (size_t)s.N * s.C * s.H * s.W;
            int HW = s.H * s.W;
            int64_t sh[4] = {s.N, s.C, s.H, s.W}, sc[1] = {s.C};
            float *hb = rand_data(n, -1, 1, 11 + (uint32_t)si);
            float *hf = rand_data(n, -1, 1, 13 + (uint32_t)si);
            float *dy = rand_data(n, -1, 1, 17 + (uint32_t)si);
            float *de = rand_data((size_t)s.C, -0.4f, 0.4f, 19 + (uint32_t)si);
            hb[0] = de[0]; /* one tie: off */
            float *ry = malloc(n * 4), *rh = malloc(n * 4), *rf = malloc(n * 4);
            float *rd = calloc((size_t)s.C, 4), *zero = calloc((size_t)s.C, 4);
            int32_t rcount = 0;
            qg_ref_pgtf_gate_fwd(s.N, s.C, HW, hb, de, hf, ry, &rcount);
            cr_expect(rcount > 0 && (size_t)rcount < n, "the data must open and close gates");
            qg_ref_pgtf_gate_bwd(s.N, s.C, HW, hb, de, hf, dy, slope, rh, rf, rd);
            buf bh = qg_test_buf_new(ctx, 4, sh, hb), bf = qg_test_buf_new(ctx, 4, sh, hf);
            buf bd = qg_test_buf_new(ctx, 1, sc, de), by = qg_test_buf_new(ctx, 4, sh, NULL);
            buf bg = qg_test_buf_new(ctx, 4, sh, dy), bdh = qg_test_buf_new(ctx, 4, sh, NULL);
            buf bdf = qg_test_buf_new(ctx, 4, sh, NULL), bdd = qg_test_buf_new(ctx, 1, sc, zero);
            qg_tensor *count = qg_test_i32_tensor(ctx, 1, 0);
            char lab[80];
            snprintf(lab, sizeof lab, "pgtf gate WG=%ld shape %zu", wgs[w], si);
            QG_EXPECT_OK(qg__pgtf_gate_fwd(ctx, bh.view, bd.view, bf.view, by.view, count));
            QG_EXPECT_OK(qg__pgtf_gate_bwd(ctx, bh.view, bd.view, bf.view, bg.view, slope,
                                           bdh.view, bdf.view, bdd.view));
            float *gy = qg_test_buf_get(&by, lab), *gh = qg_test_buf_get(&bdh, lab);
            float *gf = qg_test_buf_get(&bdf, lab), *gd = qg_test_buf_get(&bdd, lab);
            int32_t *gc = qg_test_read_i32(count);
            cr_expect_eq(gc[0], rcount, "%s count %d vs %d", lab, gc[0], rcount);
            cr_expect(same(lab, gy, ry, n), "%s Y", lab);
            cr_expect(same(lab, gf, rf, n), "%s d_full", lab);
            cr_expect(qg_test_allclose(lab, gh, rh, n, GTOL_A, GTOL_R), "%s d_hb", lab);
            cr_expect(qg_test_allclose(lab, gd, rd, (size_t)s.C, STOL_A, STOL_R), "%s ddelta",
                      lab);
            free(gy);
            free(gh);
            free(gf);
            free(gd);
            free(gc);
            qg_tensor_free(count);
            float *all[] = {hb, hf, dy, de, ry, rh, rf, rd, zero};
            for (size_t i = 0; i < sizeof all / sizeof *all; i++)
                free(all[i]);
            buf *bs[] = {&bh, &bf, &bd, &by, &bg, &bdh, &bdf, &bdd};
            for (size_t i = 0; i < sizeof bs / sizeof *bs; i++)
                qg_test_buf_free(bs[i]);
        }
    }
    set_wg(ctx, 64);
}

/* The surrogate the backward differentiates: mask = sigmoid(slope*(h_hb -
 * delta)) with the difference h_full - h_hb held (its own gradient is the
 * straight-through part). L = sum dy*mask*(h_full - h_hb). */
static double surrogate(int N, int C, int HW, const double *hb, const double *de,
                        const float *hf, const float *hb0, const float *dy, double slope)
{
    double L = 0;
    for (int i = 0; i < N * C * HW; i++)
        L += dy[i] * sigm(slope * (hb[i] - de[(i / HW) % C])) * ((double)hf[i] - hb0[i]);
    return L;
}

Test(pgtf, reference_gate_gradient_matches_finite_differences)
{
    const int N = 2, C = 3, HW = 5, n = N * C * HW;
    const double slope = 5.0, h = 1e-3;
    float *hb = rand_data((size_t)n, -0.6f, 0.6f, 31), *hf = rand_data((size_t)n, -1, 1, 37);
    float *dy = rand_data((size_t)n, -1, 1, 41), *de = rand_data((size_t)C, -0.2f, 0.2f, 43);
    float *rh = malloc((size_t)n * 4), *rf = malloc((size_t)n * 4), rd[3] = {0, 0, 0};
    qg_ref_pgtf_gate_bwd(N, C, HW, hb, de, hf, dy, (float)slope, rh, rf, rd);
    double *xh = malloc((size_t)n * sizeof *xh), xd[3];
    for (int i = 0; i < n; i++)
        xh[i] = hb[i];
    for (int c = 0; c < C; c++)
        xd[c] = de[c];
    for (int c = 0; c < C; c++) {
        xd[c] = de[c] + h;
        double lp = surrogate(N, C, HW, xh, xd, hf, hb, dy, slope);
        xd[c] = de[c] - h;
        double lm = surrogate(N, C, HW, xh, xd, hf, hb, dy, slope);
        xd[c] = de[c];
        double fd = (lp - lm) / (2 * h);
        cr_expect(fabs(fd - rd[c]) <= 1e-4 + 1e-3 * fabs(rd[c]), "ddelta[%d]: fd %.7g vs %.7g",
                  c, fd, rd[c]);
    }
    for (int i = 0; i < n; i++) {
        /* d_hb minus the straight part (1 - m)*dy is the surrogate's share */
        float m = hb[i] > de[(i / HW) % C] ? 1.0f : 0.0f;
        double g = rh[i] - (dy[i] - m * dy[i]);
        xh[i] = hb[i] + h;
        double lp = surrogate(N, C, HW, xh, xd, hf, hb, dy, slope);
        xh[i] = hb[i] - h;
        double lm = surrogate(N, C, HW, xh, xd, hf, hb, dy, slope);
        xh[i] = hb[i];
        double fd = (lp - lm) / (2 * h);
        cr_expect(fabs(fd - g) <= 1e-4 + 1e-3 * fabs(g), "d_hb[%d]: fd %.7g vs %.7g", i, fd, g);
        cr_expect_eq(rf[i], m * dy[i], "d_full[%d]", i);
    }
    free(hb);
    free(hf);
    free(dy);
    free(de);
    free(rh);
    free(rf);
    free(xh);
}

Test(pgtf, threshold_clip)
{
    qg_ctx *ctx = qg_test_ctx();
    const float x[7] = {-30.0f, -20.0f, -19.5f, 0.0f, 19.99f, 20.0f, 25.0f};
    const float want[7] = {-20.0f, -20.0f, -19.5f, 0.0f, 19.99f, 20.0f, 20.0f};
    for (size_t w = 0; w < 3; w++) {
        set_wg(ctx, wgs[w]);
        int64_t sh[1] = {7};
        buf b = qg_test_buf_new(ctx, 1, sh, x);
        QG_EXPECT_OK(qg__quant_clip(ctx, b.view, -20.0f, 20.0f));
        float *got = qg_test_buf_get(&b, "clip"), ref[7];
        memcpy(ref, x, sizeof ref);
        qg_ref_quant_clip(7, ref, -20.0f, 20.0f);
        cr_expect(same("clip device", got, want, 7));
        cr_expect(same("clip reference", ref, want, 7));
        free(got);
        qg_test_buf_free(&b);
    }
    set_wg(ctx, 64);
    int64_t sh[1] = {2};
    buf b = qg_test_buf_new(ctx, 1, sh, x);
    cr_expect_eq(qg__quant_clip(ctx, b.view, 1.0f, -1.0f), QG_ERR_INVALID_ARG);
    qg_test_buf_free(&b);
}

/* ---- the nodes against a host composition ---- */

/* x for the node tests: values in [-1, 1] with exact zeros (every 5th),
 * tiny values that quantize to 0 at 6 bits (every 7th: |x| < s/126), and
 * sample `zero_sample` all zero. */
static float *node_input(int N, int C, int H, int W, uint32_t seed, int zero_sample)
{
    size_t per = (size_t)C * H * W, n = (size_t)N * per;
    float *x = rand_data(n, -1, 1, seed);
    for (size_t i = 0; i < n; i++) {
        if (i % 5 == 0)
            x[i] = 0.0f;
        else if (i % 7 == 0)
            x[i] = x[i] > 0 ? 1e-3f : -1e-3f;
    }
    if (zero_sample >= 0)
        memset(x + (size_t)zero_sample * per, 0, per * sizeof *x);
    return x;
}

typedef struct host_pg {
    float *xf, *xm, *hb, *hf, *y, *dhb, *dhf, *dx, *dw, *dd, *tmp, *db;
    int32_t count;
} host_pg;

static void host_pg_free(host_pg *h)
{
    float *all[] = {h->xf, h->xm, h->hb, h->hf, h->y, h->dhb, h->dhf, h->dx, h->dw, h->dd,
                    h->tmp, h->db};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        free(all[i]);
}

/* The reference's chain for PG-TF (docs/methods.md §3.4). */
static void host_pgtf(const qg_conv_desc *d, const float *x, const float *w, const float *de,
                      const float *dy, int abits, int pbits, host_pg *h)
{
    int N = d->N, K = d->K, PQ = d->P * d->Q;
    size_t nx = (size_t)N * d->C * d->H * d->W, ny = (size_t)N * K * PQ;
    size_t nw = (size_t)K * d->C * d->R * d->S;
    float s[16];
    memset(h, 0, sizeof *h);
    h->xf = malloc(nx * 4), h->xm = malloc(nx * 4), h->hb = malloc(ny * 4);
    h->hf = malloc(ny * 4), h->y = malloc(ny * 4), h->dhb = malloc(ny * 4);
    h->dhf = malloc(ny * 4), h->dx = malloc(nx * 4), h->tmp = malloc(nx * 4);
    h->dw = malloc(nw * 4), h->dd = calloc((size_t)K, 4), h->db = malloc((size_t)K * 4);
    float *dw2 = malloc(nw * 4);
    qg_ref_quant_scale(nx, (size_t)N, x, QG_QSCALE_TF_SAMPLE, s);
    qg_ref_quant_apply(nx, (size_t)N, x, s, abits, pbits, h->xf, h->xm, NULL, NULL);
    qg_ref_conv2d_fwd(d, h->xm, w, NULL, h->hb);
    qg_ref_conv2d_fwd(d, h->xf, w, NULL, h->hf);
    qg_ref_pgtf_gate_fwd(N, K, PQ, h->hb, de, h->hf, h->y, &h->count);
    qg_ref_pgtf_gate_bwd(N, K, PQ, h->hb, de, h->hf, dy, 5.0f, h->dhb, h->dhf, h->dd);
    /* dx = [X != 0] conv_T(d_hb) + [x != 0] conv_T(d_full) */
    qg_ref_conv2d_bwd_data(d, h->dhb, w, h->dx);
    qg_ref_quant_ste_bwd(nx, h->xf, h->dx, h->dx, QG_STE_NONZERO, 0);
    qg_ref_conv2d_bwd_data(d, h->dhf, w, h->tmp);
    qg_ref_quant_ste_bwd(nx, x, h->tmp, h->dx, QG_STE_NONZERO, 1);
    /* dW = corr(X_msb, d_hb) + corr(X, d_full) */
    qg_ref_conv2d_bwd_weight(d, h->xm, h->dhb, h->dw, h->db);
    qg_ref_conv2d_bwd_weight(d, h->xf, h->dhf, dw2, h->db);
    for (size_t i = 0; i < nw; i++)
        h->dw[i] += dw2[i];
    free(dw2);
}

static void run_pgtf_node(int N, int C, int H, int W, int K, int k, int stride, int pad,
                          uint32_t seed)
{
    qg_ctx *ctx = qg_test_ctx();
    const int abits = 6, pbits = 4;
    qg_pg_cfg cfg = {.abits = abits, .pred_bits = pbits, .style = QG_PG_TF, .wbits = 8};
    qg_model *m;
    QG_EXPECT_OK(qg__model_new(ctx, "pgtf", C, H, W, K, &m));
    qg_rng rng = {seed};
    int out = qg__node_pgconv(m, "conv", 0, K, k, stride, pad, &cfg, &rng);
    cr_assert_geq(out, 0, "%s", qg_last_error());
    QG_EXPECT_OK(qg__model_setup(m, N));
    qg_conv_desc d;
    QG_EXPECT_OK(qg__conv_desc_init(ctx, &d, N, C, H, W, K, k, k, stride, pad, 1));
    size_t nx = (size_t)N * C * H * W, nw = (size_t)K * C * k * k;
    size_t ny = (size_t)N * K * d.P * d.Q;
    float *x = node_input(N, C, H, W, seed, N - 1);
    float *w = rand_data(nw, -0.5f, 0.5f, seed + 1), *dy = rand_data(ny, -1, 1, seed + 2);
    /* thresholds near each channel's median prediction, kept 1e-3 away
     * from every h_hb so no decision can flip between device and host */
    float *de = calloc((size_t)K, 4);
    host_pg h;
    host_pgtf(&d, x, w, de, dy, abits, pbits, &h);
    int PQ = d.P * d.Q;
    for (int c = 0; c < K; c++) {
        float v = h.hb[(size_t)c * PQ + PQ / 2];
        for (int tries = 0; tries < 50; tries++) {
            int close = 0;
            for (int nn = 0; nn < N; nn++)
                for (int p = 0; p < PQ; p++)
                    close |= fabsf(h.hb[((size_t)nn * K + c) * PQ + p] - v) < 1e-3f;
            if (!close)
                break;
            v += 7.3e-4f;
        }
        de[c] = v;
    }
    host_pg_free(&h);
    host_pgtf(&d, x, w, de, dy, abits, pbits, &h);
    cr_expect(h.count > 0 && (size_t)h.count < ny, "gates must open and close: %d of %zu",
              h.count, ny);

    qg_param *pw = qg__model_find_param(m, "conv.weight");
    qg_param *pd = qg__model_find_param(m, "conv.threshold");
    cr_assert_not_null(pw);
    cr_assert_not_null(pd);
    QG_EXPECT_OK(qg_tensor_write(pw->value, w, nw * 4));
    QG_EXPECT_OK(qg_tensor_write(pd->value, de, (size_t)K * 4));
    QG_EXPECT_OK(qg_tensor_write(qg__model_input(m), x, nx * 4));
    QG_EXPECT_OK(qg__model_forward(m, 1));
    char l[96];
    float *gy = qg_test_read(qg__model_logits(m));
    snprintf(l, sizeof l, "pgtf y (k %d stride %d)", k, stride);
    cr_expect(qg_test_allclose(l, gy, h.y, ny, CTOL, CTOL), "%s", l);
    for (size_t i = 0; i < ny; i++)
        cr_assert(isfinite(gy[i]), "y[%zu] = %g (the all-zero sample)", i, gy[i]);
    long long total, on;
    QG_EXPECT_OK(qg__model_gate_stats(m, &total, &on, NULL, NULL, NULL, NULL));
    cr_expect_eq(total, (long long)ny);
    cr_expect_eq(on, (long long)h.count, "full-precision outputs %lld vs %d", on, h.count);
    QG_EXPECT_OK(qg_tensor_write(qg__model_logits_grad(m), dy, ny * 4));
    QG_EXPECT_OK(qg__model_backward(m));
    float *gdx = qg_test_read(m->acts[0].grad), *gdw = qg_test_read(pw->grad);
    float *gdd = qg_test_read(pd->grad);
    snprintf(l, sizeof l, "pgtf dx (k %d stride %d)", k, stride);
    cr_expect(qg_test_allclose(l, gdx, h.dx, nx, CTOL, CTOL), "%s", l);
    snprintf(l, sizeof l, "pgtf dw (k %d stride %d)", k, stride);
    cr_expect(qg_test_allclose(l, gdw, h.dw, nw, CTOL, CTOL), "%s", l);
    snprintf(l, sizeof l, "pgtf ddelta (k %d stride %d)", k, stride);
    cr_expect(qg_test_allclose(l, gdd, h.dd, (size_t)K, CTOL, CTOL), "%s", l);
    /* the [X != 0] mask matters: somewhere x != 0, X == 0 and dx differs
     * from the PyTorch chain's [x != 0]*conv_T(d_hb + d_full) */
    size_t differ = 0;
    float *t1 = malloc(nx * 4), *t2 = malloc(nx * 4);
    qg_ref_conv2d_bwd_data(&d, h.dhb, w, t1);
    qg_ref_conv2d_bwd_data(&d, h.dhf, w, t2);
    for (size_t i = 0; i < nx; i++)
        differ += x[i] != 0.0f && h.xf[i] == 0.0f && fabsf(t1[i]) > 1e-3f &&
                  fabsf(h.dx[i] - (t1[i] + t2[i])) > 1e-3f;
    cr_expect(differ > 0, "the test data must exercise the [X != 0] mask");
    float *fr[] = {x, w, dy, de, gy, gdx, gdw, gdd, t1, t2};
    for (size_t i = 0; i < sizeof fr / sizeof *fr; i++)
        free(fr[i]);
    host_pg_free(&h);
    qg__model_free(m);
}

Test(pgtf, pgconv_node_matches_reference_3x3_s1) { run_pgtf_node(3, 4, 7, 6, 5, 3, 1, 1, 51); }
Test(pgtf, pgconv_node_matches_reference_3x3_s2) { run_pgtf_node(2, 3, 9, 7, 6, 3, 2, 1, 52); }
Test(pgtf, pgconv_node_matches_reference_1x1) { run_pgtf_node(3, 8, 5, 5, 6, 1, 1, 0, 53); }

/* Against PyTorch autograd of the TensorFlow graph (tests/tools/
 * gen_pgtf_golden.py, committed in tests/data/golden/): an independent
 * derivation of the chain the host composition above writes out. The
 * generator keeps every h_hb at least 1e-3 from its threshold, so no gate
 * can flip; tolerance 2e-4 + 1e-3*|want| as the PyTorch-style goldens. */
static void run_golden(const char *name)
{
    json_t *g = qg_test_golden(name);
    qg_ctx *ctx = qg_test_ctx();
#define geti qg_test_json_int
    int N = geti(g, "N"), C = geti(g, "C"), K = geti(g, "K"), H = geti(g, "H"), W = geti(g, "W");
    qg_pg_cfg cfg = {.abits = geti(g, "abits"), .pred_bits = geti(g, "pred_bits"),
                     .style = QG_PG_TF, .wbits = 8};
    qg_model *m;
    QG_EXPECT_OK(qg__model_new(ctx, "pgtf", C, H, W, K, &m));
    qg_rng rng = {1};
    int out = qg__node_pgconv(m, "conv", 0, K, geti(g, "R"), geti(g, "stride"), geti(g, "pad"),
                              &cfg, &rng);
    cr_assert_geq(out, 0, "%s", qg_last_error());
    QG_EXPECT_OK(qg__model_setup(m, N));
    size_t nx, nw, nd, ndy, ny, n1, n2, n3;
    float *x = qg_test_json_floats(g, "x", &nx), *w = qg_test_json_floats(g, "w", &nw);
    float *de = qg_test_json_floats(g, "delta", &nd), *dy = qg_test_json_floats(g, "dy", &ndy);
    float *y = qg_test_json_floats(g, "y", &ny), *dx = qg_test_json_floats(g, "dx", &n1);
    float *dw = qg_test_json_floats(g, "dw", &n2), *dd = qg_test_json_floats(g, "ddelta", &n3);
#undef geti
    qg_param *pw = qg__model_find_param(m, "conv.weight");
    qg_param *pd = qg__model_find_param(m, "conv.threshold");
    QG_EXPECT_OK(qg_tensor_write(pw->value, w, nw * 4));
    QG_EXPECT_OK(qg_tensor_write(pd->value, de, nd * 4));
    QG_EXPECT_OK(qg_tensor_write(qg__model_input(m), x, nx * 4));
    QG_EXPECT_OK(qg__model_forward(m, 1));
    float *gy = qg_test_read(qg__model_logits(m));
    cr_assert_eq(qg_tensor_numel(qg__model_logits(m)), ny);
    cr_expect(qg_test_allclose("pgtf golden y", gy, y, ny, 2e-4f, 1e-3f), "%s", name);
    QG_EXPECT_OK(qg_tensor_write(qg__model_logits_grad(m), dy, ndy * 4));
    QG_EXPECT_OK(qg__model_backward(m));
    float *gdx = qg_test_read(m->acts[0].grad), *gdw = qg_test_read(pw->grad);
    float *gdd = qg_test_read(pd->grad);
    cr_expect(qg_test_allclose("pgtf golden dx", gdx, dx, n1, 2e-4f, 1e-3f), "%s", name);
    cr_expect(qg_test_allclose("pgtf golden dw", gdw, dw, n2, 2e-4f, 1e-3f), "%s", name);
    cr_expect(qg_test_allclose("pgtf golden ddelta", gdd, dd, n3, 2e-4f, 1e-3f), "%s", name);
    long long total, on;
    QG_EXPECT_OK(qg__model_gate_stats(m, &total, &on, NULL, NULL, NULL, NULL));
    cr_expect_eq(total, (long long)ny);
    cr_expect(on > 0 && on < total, "full-precision count %lld of %lld", on, total);
    float *fr[] = {x, w, de, dy, y, dx, dw, dd, gy, gdx, gdw, gdd};
    for (size_t i = 0; i < sizeof fr / sizeof *fr; i++)
        free(fr[i]);
    qg__model_free(m);
    json_decref(g);
}

Test(pgtf, golden_stride1) { run_golden("pgtf_s1"); }
Test(pgtf, golden_stride2_signed) { run_golden("pgtf_s2_signed"); }
Test(pgtf, golden_1x1) { run_golden("pgtf_1x1"); }

/* The PG-TF QuantizedConv2d (ResNet's conv2 with --pg-style tf): float
 * weights, per-sample input scale, dx = [x != 0] conv_T(dy). */
Test(pgtf, qconv_node_matches_reference)
{
    qg_ctx *ctx = qg_test_ctx();
    const int N = 3, C = 4, H = 6, W = 5, K = 5, abits = 6;
    qg_pg_cfg cfg = {.wbits = 8, .abits = abits, .style = QG_PG_TF};
    qg_model *m;
    QG_EXPECT_OK(qg__model_new(ctx, "qconv", C, H, W, K, &m));
    qg_rng rng = {61};
    int out = qg__node_qconv(m, "conv", 0, K, 3, 1, 1, &cfg, &rng);
    cr_assert_geq(out, 0, "%s", qg_last_error());
    QG_EXPECT_OK(qg__model_setup(m, N));
    qg_conv_desc d;
    QG_EXPECT_OK(qg__conv_desc_init(ctx, &d, N, C, H, W, K, 3, 3, 1, 1, 1));
    size_t nx = (size_t)N * C * H * W, nw = (size_t)K * C * 9, ny = (size_t)N * K * H * W;
    float *x = node_input(N, C, H, W, 62, 1), *w = rand_data(nw, -0.5f, 0.5f, 63);
    float *dy = rand_data(ny, -1, 1, 64);
    float s[3], *xq = malloc(nx * 4), *y = malloc(ny * 4), *dx = malloc(nx * 4);
    float *dw = malloc(nw * 4), db[5];
    qg_ref_quant_fwd(nx, (size_t)N, x, abits, QG_QSCALE_TF_SAMPLE, s, xq);
    cr_expect_eq(s[1], 0.0f, "the all-zero sample's scale");
    qg_ref_conv2d_fwd(&d, xq, w, NULL, y);
    qg_ref_conv2d_bwd_data(&d, dy, w, dx);
    qg_ref_quant_ste_bwd(nx, x, dx, dx, QG_STE_NONZERO, 0);
    qg_ref_conv2d_bwd_weight(&d, xq, dy, dw, db);
    qg_param *pw = qg__model_find_param(m, "conv.weight");
    QG_EXPECT_OK(qg_tensor_write(pw->value, w, nw * 4));
    QG_EXPECT_OK(qg_tensor_write(qg__model_input(m), x, nx * 4));
    for (int train = 0; train < 2; train++) {
        QG_EXPECT_OK(qg__model_forward(m, train));
        float *gy = qg_test_read(qg__model_logits(m));
        cr_expect(qg_test_allclose(train ? "qconv tf y train" : "qconv tf y eval", gy, y, ny,
                                   CTOL, CTOL));
        free(gy);
    }
    QG_EXPECT_OK(qg_tensor_write(qg__model_logits_grad(m), dy, ny * 4));
    QG_EXPECT_OK(qg__model_backward(m));
    float *gdx = qg_test_read(m->acts[0].grad), *gdw = qg_test_read(pw->grad);
    cr_expect(qg_test_allclose("qconv tf dx", gdx, dx, nx, CTOL, CTOL));
    cr_expect(qg_test_allclose("qconv tf dw (float weights: no weight STE)", gdw, dw, nw, CTOL,
                               CTOL));
    float *fr[] = {x, w, dy, xq, y, dx, dw, gdx, gdw};
    for (size_t i = 0; i < sizeof fr / sizeof *fr; i++)
        free(fr[i]);
    qg__model_free(m);
}

/* The depthwise input quantizer: y = quantize_a(x) per sample (oracle
 * PGTF-V1's activation rows as three samples), dx = dy where x != 0. */
Test(pgtf, aquant_node_per_sample)
{
    qg_ctx *ctx = qg_test_ctx();
    const float x[18] = {-0.01f, 0.3f, 0.2f, 0.16f, 0.1f, 0.26f,      /* b=2 row */
                         0, 0, 0, 0, 0, 0,                            /* all zero */
                         -0.1f, 3.0f, 2.0f, 1.6f, 1.0f, 2.6f};        /* x10 */
    const float want[18] = {0, 0.3f, 0.2f, 0.2f, 0.1f, 0.3f, 0, 0, 0, 0, 0, 0,
                            0, 3.0f, 2.0f, 2.0f, 1.0f, 3.0f};
    qg_model *m;
    QG_EXPECT_OK(qg__model_new(ctx, "aq", 6, 1, 1, 6, &m));
    int out = qg__node_aquant(m, "dw.aquant", 0, 2);
    cr_assert_geq(out, 0, "%s", qg_last_error());
    QG_EXPECT_OK(qg__model_setup(m, 3));
    QG_EXPECT_OK(qg_tensor_write(qg__model_input(m), x, sizeof x));
    QG_EXPECT_OK(qg__model_forward(m, 1));
    float *y = qg_test_read(qg__model_logits(m));
    float ref[18], s[3];
    qg_ref_quant_fwd(18, 3, x, 2, QG_QSCALE_TF_SAMPLE, s, ref);
    cr_expect(same("aquant vs reference", y, ref, 18));
    cr_expect(qg_test_allclose("aquant vs PGTF-V1", y, want, 18, 1e-6f, 1e-6f));
    float dy[18], dxw[18];
    for (int i = 0; i < 18; i++) {
        dy[i] = 0.5f + (float)i;
        dxw[i] = x[i] != 0.0f ? dy[i] : 0.0f;
    }
    QG_EXPECT_OK(qg_tensor_write(qg__model_logits_grad(m), dy, sizeof dy));
    QG_EXPECT_OK(qg__model_backward(m));
    float *dx = qg_test_read(m->acts[0].grad);
    cr_expect(same("aquant dx", dx, dxw, 18));
    free(y);
    free(dx);
    qg__model_free(m);
    QG_EXPECT_OK(qg__model_new(ctx, "aq", 6, 1, 1, 6, &m));
    cr_expect_lt(qg__node_aquant(m, "bad", 0, 1), 0, "1 bit is refused");
    qg__model_free(m);
}

/* ---- method level ---- */

Test(pgtf, options_aliases_messages_and_metadata)
{
    qg_method_cfg mc;
    QG_EXPECT_OK(qg_test_methods_try("pg pact pg_style=tf a=6 t=4 g=0.5", &mc));
    const qg_pg_params *pg = qg__method_params(&mc, QG_METHOD_PG);
    const qg_quant_params *q = qg__method_params(&mc, QG_METHOD_QUANT);
    cr_assert_not_null(pg);
    cr_assert_not_null(q);
    cr_expect_eq(pg->style, QG_PG_TF);
    cr_expect_eq(pg->pred_bits, 4);
    cr_expect_eq(q->abits, 6);
    cr_expect_float_eq(pg->gtar, 0.5f, 1e-9);
    QG_EXPECT_OK(qg_test_methods_try("pg pg-style=tf abits=6 trunc-bits=4 gtar=0", &mc));
    char buf[64];
    QG_EXPECT_OK(qg_method_cfg_get(&mc, "pg_style", buf, sizeof buf));
    cr_expect_str_eq(buf, "tf");
    QG_EXPECT_OK(qg_method_cfg_get(&mc, "t", buf, sizeof buf));
    cr_expect_str_eq(buf, "4");
    qg_method_cfg_describe(&mc, buf, sizeof buf);
    cr_expect(strstr(buf, "tf") != NULL, "describe: %s", buf);
    cr_expect(strstr(buf, "w8") == NULL, "TF weights are float, describe says %s", buf);

    /* messages name the flags */
    cr_expect_eq(qg_test_methods_try("pg pg_style=keras abits=6 pred_bits=4", &mc),
                 QG_ERR_INVALID_ARG);
    cr_expect(strstr(qg_last_error(), "--pg-style") || strstr(qg_last_error(), "pg_style"),
              "%s", qg_last_error());
    cr_expect(strstr(qg_last_error(), "pytorch|tf"), "%s", qg_last_error());
    cr_expect_eq(qg_test_methods_try("pg pg_style=tf abits=6 pred_bits=4 spbp", &mc),
                 QG_ERR_INVALID_ARG);
    cr_expect(strstr(qg_last_error(), "--spbp"), "%s", qg_last_error());
    cr_expect_eq(qg_test_methods_try("pg pg_style=tf wbits=4 abits=6 pred_bits=4", &mc),
                 QG_ERR_INVALID_ARG);
    cr_expect(strstr(qg_last_error(), "--wbits"), "%s", qg_last_error());
    cr_expect_eq(qg_test_methods_try("pg pg_style=tf abits=4 t=4", &mc), QG_ERR_INVALID_ARG);
    /* the PyTorch default is unchanged */
    QG_EXPECT_OK(qg_test_methods_try("pg wbits=8 abits=3 pb=2 spbp", &mc));
    cr_expect_eq(((const qg_pg_params *)qg__method_params(&mc, QG_METHOD_PG))->style,
                 QG_PG_PYTORCH);
}

typedef struct kv {
    char k[32][32], v[32][32];
    int n;
} kv;
static void kv_add(void *u, const char *k, const char *v)
{
    kv *s = u;
    snprintf(s->k[s->n], 32, "%s", k);
    snprintf(s->v[s->n++], 32, "%s", v);
}
static const char *kv_get(void *u, const char *k)
{
    kv *s = u;
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->k[i], k) == 0)
            return s->v[i];
    return NULL;
}

Test(pgtf, metadata_round_trip)
{
    qg_method_cfg mc, back;
    QG_EXPECT_OK(qg_test_methods_try("pg pact pg_style=tf a=6 t=4", &mc));
    char scratch[QG_METHOD_META_SCRATCH];
    kv s = {.n = 0};
    qg__method_cfg_to_meta(&mc, scratch, kv_add, &s);
    cr_expect_str_eq(kv_get(&s, "pg_style"), "tf");
    QG_EXPECT_OK(qg__method_cfg_from_meta(&back, kv_get, &s));
    QG_EXPECT_OK(qg__method_cfg_finish(&back));
    const qg_pg_params *pg = qg__method_params(&back, QG_METHOD_PG);
    cr_assert_not_null(pg);
    cr_expect_eq(pg->style, QG_PG_TF);
    cr_expect_eq(pg->pred_bits, 4);
}

/* ResNet-8 with --pg-style tf: each block's conv1 a TF PGConv2d, conv2 a
 * TF quantized conv, PACT as separate TF-mode nodes; the loss term is the
 * squared one; post_step clips the thresholds; the depthwise hook. */
Test(pgtf, resnet8_build_loss_clip_and_hooks)
{
    qg_ctx *ctx = qg_test_ctx();
    const qg_method_cfg *mc = qg_test_methods("pg pact pg_style=tf a=6 t=4 g=1");
    qg_resnet_opts o = {.depth = 8, .shortcut = 'A', .in_c = 1, .in_h = 8, .in_w = 8,
                        .classes = 10, .seed = 3, .methods = mc};
    qg_model *m;
    QG_EXPECT_OK(qg__model_resnet_cifar(ctx, &o, &m));
    int npg = 0, nq = 0, npact = 0, nbnpact = 0;
    for (int i = 0; i < m->nnodes; i++) {
        const char *t = m->nodes[i].ops->type;
        npg += strcmp(t, "pgconv2d") == 0;
        nq += strcmp(t, "qconv2d") == 0;
        npact += strcmp(t, "pact") == 0;
        nbnpact += strstr(t, "pact") != NULL && strcmp(t, "pact") != 0;
    }
    cr_expect_eq(npg, 3, "one PG conv per block");
    cr_expect_eq(nq, 3, "conv2: quantized input, float weights");
    cr_expect_eq(npact, 7, "TF PACT as its own node after each of the 7 BNs (%d)", npact);
    cr_expect_eq(nbnpact, 0);
    QG_EXPECT_OK(qg__model_setup(m, 2));
    /* squared loss, delta 0, target 1, sigma 0.001: 0.001*sum 1/2 per layer */
    int64_t one[1] = {1};
    float zero = 0.0f, lv;
    qg_tensor *loss = qg_test_tensor(ctx, 1, one, &zero);
    QG_EXPECT_OK(qg__model_aux_loss(m, loss));
    QG_EXPECT_OK(qg_tensor_read(loss, &lv, 4));
    double want = 0.001 * (16 + 32 + 64) / 2.0;
    cr_expect(fabs(lv - want) <= 1e-6, "TF gating loss %.7g want %.7g", lv, want);
    qg_param *d = qg__model_find_param(m, "layer1.0.conv1.threshold");
    cr_assert_not_null(d);
    QG_EXPECT_OK(qg_tensor_zero(d->grad));
    QG_EXPECT_OK(qg__model_aux_loss(m, loss));
    float *g = qg_test_read(d->grad);
    cr_expect(fabsf(g[0] + 0.001f) <= 1e-7f, "d/ddelta = 0.001*(delta - g) = %.7g", g[0]);
    free(g);
    /* post_step: the clip to [-20, 20] */
    float dv[16];
    for (int c = 0; c < 16; c++)
        dv[c] = (float)(c - 8) * 4.0f;
    QG_EXPECT_OK(qg_tensor_write(d->value, dv, sizeof dv));
    QG_EXPECT_OK(qg__methods_post_step(m, mc));
    float *got = qg_test_read(d->value);
    for (int c = 0; c < 16; c++)
        cr_expect_eq(got[c], fminf(fmaxf(dv[c], -20.0f), 20.0f), "delta[%d] = %g", c, got[c]);
    free(got);
    qg_tensor_free(loss);
    /* the depthwise input hook: a quantizer with TF, nothing without */
    cr_expect_eq(qg__methods_ainput(mc, QG_ROLE_DEPTHWISE), 6);
    cr_expect_eq(qg__methods_ainput(mc, QG_ROLE_BLOCK), 0);
    const qg_method_cfg *pt = qg_test_methods("pg pact wbits=8 abits=3 pb=2");
    cr_expect_eq(qg__methods_ainput(pt, QG_ROLE_DEPTHWISE), 0);
    cr_expect_eq(qg__pg_pact_mode(pt), QG_PACT_PG);
    cr_expect_eq(qg__pg_pact_mode(mc), QG_PACT_TF);
    qg__model_free(m);
    qg_model *m2;
    QG_EXPECT_OK(qg__model_new(ctx, "dw", 4, 5, 5, 4, &m2));
    int x = qg__methods_quant_input(m2, pt, QG_ROLE_DEPTHWISE, "s.dw", 0);
    cr_expect_eq(x, 0, "no quantizer without PG-TF");
    x = qg__methods_quant_input(m2, mc, QG_ROLE_DEPTHWISE, "s.dw", 0);
    cr_expect_gt(x, 0);
    cr_expect_eq(m2->nnodes, 1);
    cr_expect_str_eq(m2->nodes[0].name, "s.dw.aquant");
    cr_expect_str_eq(m2->nodes[0].ops->type, "aquant");
    qg__model_free(m2);
}
