/* tests/test_quant.c: cl/quant.cl (via src/quant/quant.c) against
 * src/ref/ref_quant.c, the oracles of docs/methods.md §9 (ROUND-1, PG-Q1-3, PG-G1,
 * GATE-L1, PACT-1, PQ-A1, DOREFA-1, PGTF-V1) on both the reference and the device, and
 * finite-difference checks of the references' smooth surrogates.
 *
 * Oracles: the quantities docs/methods.md pins exactly (codes, masks, counts, ties,
 * gradient masks) are compared exactly; values are also compared exactly
 * with the same float expression written out here, and to docs/methods.md's
 * printed decimals within their printed precision.
 *
 * Random tensors run under the default work-group size and two others, at
 * odd shapes (partial groups, channel counts 3, 5, 16); inputs and outputs
 * are views inside larger buffers whose margins hold a sentinel, checked
 * untouched afterwards, and overwritten outputs start as NaN.
 * Tolerances, device vs reference:
 *   - round-to-bits, truncate, binarize, STE masks, PACT, ProQHA's PACT
 *     quantizer (forward and dx): exact. Both sides do the same IEEE
 *     operations (PoCL's division is correctly rounded), so no code may
 *     differ, not even within an ulp of a tie.
 *   - DoReFa: device tanh may differ from tanhf by a few ulp, so a code may
 *     differ only where the reference's u*(2^k-1) lies within 2e-6*(2^k-1)
 *     of a .5 tie; gradients 1e-6 + 1e-5*|want|.
 *   - PG gate: mask and count exact except where |slope*(O-delta)| < 1e-6
 *     (none occur in the data); Y exact; gradients 1e-6 + 1e-5*|want|.
 *   - sums (dalpha, delta_grad, losses; different order, float vs double):
 *     1e-5 + 1e-4*|want|.
 * Gradient checks: central differences in double, step 1e-3, of
 * L = sum(g*f) where f is the smooth surrogate the STE differentiates
 * (round frozen); |fd - analytic| <= 1e-4 + 1e-3*|analytic|. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/support.h"
#include "cl/ctx.h"
#include "quant/quant.h"
#include "ref/ref_quant.h"

TestSuite(quant, .fini = qg_test_ctx_free);

#define GTOL_A 1e-6f
#define GTOL_R 1e-5f
#define STOL_A 1e-5f
#define STOL_R 1e-4f

static const long wgs[] = {64, 16, 256};

/* The GPU default (WG 64, CHUNK 0, VW 1) and two others with the
 * contiguous loop layout and vectors of 16 and 4 (the odd sizes below
 * leave partial vectors and runs across segment ends). */
static void set_wg(qg_ctx *ctx, long wg)
{
    long v[3] = {wg, wg != 64, wg == 64 ? 1 : wg == 16 ? 16 : 4};
    QG_EXPECT_OK(qg__program_override(ctx, "quant", v));
}

/* ---- padded device buffers (tests/support) ---- */

typedef qg_test_buf buf;
#define buf_new qg_test_buf_new
#define buf_get qg_test_buf_get
#define buf_free qg_test_buf_free

static buf buf_flat(qg_ctx *ctx, size_t n, const float *init)
{
    int64_t s[1] = {(int64_t)n};
    return buf_new(ctx, 1, s, init);
}

static qg_tensor *scalar(qg_ctx *ctx, float v)
{
    int64_t one[1] = {1};
    return qg_test_tensor(ctx, 1, one, &v);
}

static float read_scalar(const qg_tensor *t)
{
    float v;
    QG_EXPECT_OK(qg_tensor_read(t, &v, sizeof v));
    return v;
}

#define i32_tensor qg_test_i32_tensor
#define read_i32 qg_test_read_i32

static qg_tensor *workspace(qg_ctx *ctx)
{
    int64_t s[1] = {QG_QUANT_WS_NUMEL};
    return qg_test_tensor(ctx, 1, s, NULL);
}

/* Exact comparison (bit patterns equal, or both NaN); prints mismatches. */
static int same(const char *label, const float *got, const float *want, size_t n)
{
    return qg_test_allclose(label, got, want, n, 0, 0);
}

static int same_i32(const char *label, const int32_t *got, const int32_t *want, size_t n)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i] && bad++ < 10)
            fprintf(stderr, "%s: [%zu] got %d want %d\n", label, i, got[i], want[i]);
    return bad == 0;
}

/* ---- device runners for the oracles (one call each, default WG) ---- */

typedef struct split {
    float s[8], full[32], msb[32], lsb[32];
    int32_t codes[32];
} split;

/* Scale + one-pass apply on the device; shape [rows, n/rows]. */
static split dev_split(qg_ctx *ctx, const float *x, size_t n, size_t rows, qg_qscale mode,
                       int bits, int msb_bits)
{
    split r;
    int64_t sh[2] = {(int64_t)rows, (int64_t)(n / rows)};
    buf bx = buf_new(ctx, 2, sh, x), bf = buf_new(ctx, 2, sh, NULL);
    buf bm = buf_new(ctx, 2, sh, NULL), bl = buf_new(ctx, 2, sh, NULL);
    size_t ns = qg__quant_scale_numel(bx.view, mode);
    buf bs = buf_flat(ctx, ns, NULL);
    qg_tensor *codes = i32_tensor(ctx, n, 99);
    QG_EXPECT_OK(qg__quant_scale(ctx, bx.view, mode, bs.view));
    QG_EXPECT_OK(qg__quant_apply(ctx, bx.view, bs.view, bits, msb_bits, bf.view,
                                 msb_bits ? bm.view : NULL, msb_bits ? bl.view : NULL, codes));
    float *v = buf_get(&bs, "scale");
    memcpy(r.s, v, ns * sizeof *v);
    free(v);
    v = buf_get(&bf, "full");
    memcpy(r.full, v, n * sizeof *v);
    free(v);
    if (msb_bits) {
        v = buf_get(&bm, "msb");
        memcpy(r.msb, v, n * sizeof *v);
        free(v);
        v = buf_get(&bl, "lsb");
        memcpy(r.lsb, v, n * sizeof *v);
        free(v);
    }
    int32_t *c = read_i32(codes);
    memcpy(r.codes, c, n * sizeof *c);
    free(c);
    qg_tensor_free(codes);
    buf_free(&bx);
    buf_free(&bf);
    buf_free(&bm);
    buf_free(&bl);
    buf_free(&bs);
    return r;
}

static split ref_split(const float *x, size_t n, size_t rows, qg_qscale mode, int bits,
                       int msb_bits)
{
    split r;
    qg_ref_quant_scale(n, rows, x, mode, r.s);
    qg_ref_quant_apply(n, mode == QG_QSCALE_TF_SAMPLE ? rows : 1, x, r.s, bits,
                       msb_bits ? msb_bits : bits, r.full, r.msb, r.lsb, r.codes);
    return r;
}

/* ---- oracle PG-Q1 ---- */

Test(quant, oracle_t8_1_pg_activation_quant)
{
    qg_ctx *ctx = qg_test_ctx();
    const float x[4] = {0.0f, 0.37f, 0.8f, 1.0f};
    const int32_t codes[4] = {0, 6, 12, 15};
    const float s = 1.0f + 1e-7f;
    cr_expect_eq(s, 1.00000011920928955f, "1 + 1e-7 in float");
    const float want[4] = {0.0f, 6.0f / 15.0f * s, 12.0f / 15.0f * s, 15.0f / 15.0f * s};
    const float printed[4] = {0.0f, 0.40000007f, 0.80000013f, 1.0000001192f};
    for (int dev = 0; dev < 2; dev++) {
        split r = dev ? dev_split(ctx, x, 4, 1, QG_QSCALE_PG, 4, 0)
                      : ref_split(x, 4, 1, QG_QSCALE_PG, 4, 0);
        const char *who = dev ? "device" : "reference";
        cr_expect_eq(r.s[0], s, "%s scale %.9g", who, r.s[0]);
        cr_expect(same_i32(who, r.codes, codes, 4), "%s PG-Q1 codes", who);
        cr_expect(same(who, r.full, want, 4), "%s PG-Q1 values", who);
        cr_expect(qg_test_allclose(who, r.full, printed, 4, 1e-7f, 0), "%s PG-Q1 printed", who);
        /* TF quantize_a: no eps, per-sample max 1.0: 0.37 -> 0.4 exactly */
        r = dev ? dev_split(ctx, x, 4, 1, QG_QSCALE_TF_SAMPLE, 4, 0)
                : ref_split(x, 4, 1, QG_QSCALE_TF_SAMPLE, 4, 0);
        cr_expect_eq(r.s[0], 1.0f, "%s TF scale", who);
        cr_expect_eq(r.full[1], 0.4f, "%s TF 0.37 -> %.9g", who, r.full[1]);
        cr_expect(same_i32(who, r.codes, codes, 4), "%s PG-Q1 TF codes", who);
    }
}

/* ---- oracle ROUND-1: ties go to even ---- */

Test(quant, oracle_t8_2_round_half_to_even)
{
    cr_expect_eq(qg_ref_rint(2.5f), 2.0f);
    cr_expect_eq(qg_ref_rint(-2.5f), -2.0f);
    cr_expect_eq(qg_ref_rint(3.5f), 4.0f);
    cr_expect_eq(qg_ref_rint(0.5f), 0.0f);
    /* The same ties through the device quantizer: b=3, absmax 7 (TF, no
     * eps) makes the grid step 1, and |x|/7*7 lands exactly on the .5. */
    qg_ctx *ctx = qg_test_ctx();
    const float x[5] = {7.0f, 2.5f, -2.5f, 3.5f, 0.5f};
    const int32_t want[5] = {7, 2, -2, 4, 0};
    for (int dev = 0; dev < 2; dev++) {
        const char *who = dev ? "device" : "reference";
        split r = dev ? dev_split(ctx, x, 5, 1, QG_QSCALE_TF_TENSOR, 3, 0)
                      : ref_split(x, 5, 1, QG_QSCALE_TF_TENSOR, 3, 0);
        for (int i = 1; i < 5; i++) {
            float a = fabsf(x[i]) / 7.0f * 7.0f;
            cr_expect_eq(a - floorf(a), 0.5f, "input %g is not an exact tie", x[i]);
        }
        cr_expect(same_i32(who, r.codes, want, 5), "%s ROUND-1 ties", who);
    }
    /* ProQHA's PACT quantizer: alpha 3, k=2 gives v = y exactly. */
    const float px[3] = {2.5f, 1.5f, 0.5f}, pwant[3] = {2.0f, 2.0f, 0.0f};
    float py[3];
    qg_ref_pact_quant_fwd(3, px, 3.0f, 2, py);
    cr_expect(same("pact_quant ties ref", py, pwant, 3));
    buf bx = buf_flat(ctx, 3, px), by = buf_flat(ctx, 3, NULL);
    qg_tensor *al = scalar(ctx, 3.0f);
    QG_EXPECT_OK(qg__pact_quant_fwd(ctx, bx.view, al, 2, by.view));
    float *g = buf_get(&by, "pact_quant ties");
    cr_expect(same("pact_quant ties device", g, pwant, 3));
    free(g);
    qg_tensor_free(al);
    buf_free(&bx);
    buf_free(&by);
}

/* ---- oracle PG-Q2: truncation ---- */

Test(quant, oracle_t8_3_truncation)
{
    qg_ctx *ctx = qg_test_ctx();
    const float x[4] = {1.0f, 0.5f, 0.3f, 0.1f};
    struct {
        qg_qscale mode;
        int32_t q[4], m[4];
        float printed_msb[4], printed_lsb[4];
    } cases[2] = {
        {QG_QSCALE_PG, {7, 3, 2, 1}, {6, 2, 2, 0},
         {0.857143f, 0.285714f, 0.285714f, 0.0f}, {0.142857f, 0.142857f, 0.0f, 0.142857f}},
        {QG_QSCALE_TF_TENSOR, {7, 4, 2, 1}, {6, 4, 2, 0},
         {0.857143f, 0.571429f, 0.285714f, 0.0f}, {0.142857f, 0.0f, 0.0f, 0.142857f}},
    };
    for (int c = 0; c < 2; c++)
        for (int dev = 0; dev < 2; dev++) {
            char who[48];
            snprintf(who, sizeof who, "%s %s", dev ? "device" : "reference",
                     c ? "TF" : "PyTorch");
            split r = dev ? dev_split(ctx, x, 4, 1, cases[c].mode, 3, 2)
                          : ref_split(x, 4, 1, cases[c].mode, 3, 2);
            float s = r.s[0], full[4], msb[4], lsb[4];
            cr_expect_eq(s, c ? 1.0f : 1.0f + 1e-7f, "%s scale", who);
            for (int i = 0; i < 4; i++) {
                full[i] = (float)cases[c].q[i] / 7.0f * s;
                msb[i] = (float)cases[c].m[i] / 7.0f * s;
                lsb[i] = full[i] - msb[i];
            }
            cr_expect(same_i32(who, r.codes, cases[c].q, 4), "%s codes", who);
            cr_expect(same(who, r.full, full, 4), "%s full", who);
            cr_expect(same(who, r.msb, msb, 4), "%s msb", who);
            cr_expect(same(who, r.lsb, lsb, 4), "%s lsb", who);
            cr_expect(qg_test_allclose(who, r.msb, cases[c].printed_msb, 4, 1e-6f, 0), "%s", who);
            cr_expect(qg_test_allclose(who, r.lsb, cases[c].printed_lsb, 4, 1e-6f, 0), "%s", who);
        }
}

/* ---- oracle PG-G1: PG gate ---- */

Test(quant, oracle_t8_4_pg_gate)
{
    float s, dm;
    cr_expect_eq(qg_ref_pg_gate_elem(0.3f, 0.25f, 5.0f, 0, &s, &dm), 1);
    cr_expect(fabsf(s - 0.5621765f) <= 1e-7f, "s = %.9g", s);
    cr_expect(fabsf(dm + 1.2306704f) <= 1e-6f, "dmask/ddelta = %.9g", dm);
    float dm_sp;
    cr_expect_eq(qg_ref_pg_gate_elem(0.3f, 0.25f, 5.0f, 1, NULL, &dm_sp), 1);
    cr_expect_eq(dm_sp, dm, "spbp keeps the gradient where s >= 0.5");
    cr_expect_eq(qg_ref_pg_gate_elem(0.2f, 0.25f, 5.0f, 0, &s, &dm), 0);
    cr_expect(s < 0.5f);
    cr_expect(fabsf(dm + 1.2306704f) <= 1e-6f, "without spbp the gradient stays: %.9g", dm);
    cr_expect_eq(qg_ref_pg_gate_elem(0.2f, 0.25f, 5.0f, 1, NULL, &dm), 0);
    cr_expect_eq(dm, 0.0f, "spbp zeroes it where s < 0.5");
    cr_expect_eq(qg_ref_pg_gate_elem(0.25f, 0.25f, 5.0f, 0, &s, NULL), 0, "s == 0.5: mask 0");

    /* Device and reference on [N=1, C=3, 1, 1]: channel 0 is the O=0.3
     * case, channel 1 the O=0.2 case, channel 2 has O == delta (s == 0.5:
     * mask 0, yet spbp keeps the gradient); O_lsb = 0.125, dY = 1. */
    qg_ctx *ctx = qg_test_ctx();
    const float om[3] = {0.3f, 0.2f, 0.25f}, de[3] = {0.25f, 0.25f, 0.25f};
    const float ol[3] = {0.125f, 0.125f, 0.125f}, dy[3] = {1.0f, 1.0f, 1.0f};
    int64_t sh[4] = {1, 3, 1, 1}, sc[1] = {3};
    buf bo = buf_new(ctx, 4, sh, om), bl = buf_new(ctx, 4, sh, ol), bd = buf_new(ctx, 1, sc, de);
    buf by = buf_new(ctx, 4, sh, NULL), bg = buf_new(ctx, 4, sh, dy);
    qg_tensor *count = i32_tensor(ctx, 1, 5);
    QG_EXPECT_OK(qg__pg_gate_fwd(ctx, bo.view, bd.view, bl.view, 5.0f, by.view, count));
    float *y = buf_get(&by, "gate Y");
    const float ywant[3] = {0.3f + 0.125f, 0.2f, 0.25f};
    cr_expect(same("gate Y", y, ywant, 3));
    int32_t *cnt = read_i32(count);
    cr_expect_eq(cnt[0], 6, "count accumulates: 5 + 1, got %d", cnt[0]);
    free(cnt);
    free(y);
    for (int spbp = 0; spbp < 2; spbp++) {
        float gs = 0.125f, s0, s1;
        qg_ref_pg_gate_elem(0.3f, 0.25f, 5.0f, 0, &s0, NULL);
        qg_ref_pg_gate_elem(0.2f, 0.25f, 5.0f, 0, &s1, NULL);
        float g0 = gs * (1.0f - s0) * s0 * 5.0f, g1 = spbp ? 0.0f : gs * (1.0f - s1) * s1 * 5.0f;
        float g2 = gs * 0.5f * 0.5f * 5.0f;
        const float dmsb_want[3] = {1.0f + g0, 1.0f + g1, 1.0f + g2};
        const float dlsb_want[3] = {1.0f, 0.0f, 0.0f};
        const float dd_want[3] = {0.5f - g0, 0.5f - g1, 0.5f - g2};
        cr_expect(fabsf(g0 / 0.125f - 1.2306704f) <= 1e-6f);
        buf bdm = buf_new(ctx, 4, sh, NULL), bdl = buf_new(ctx, 4, sh, NULL);
        const float half[3] = {0.5f, 0.5f, 0.5f};
        buf bdd = buf_new(ctx, 1, sc, half);
        QG_EXPECT_OK(qg__pg_gate_bwd(ctx, bo.view, bd.view, bl.view, bg.view, 5.0f, spbp,
                                     bdm.view, bdl.view, bdd.view));
        float rm[3], rl[3], rd[3] = {0.5f, 0.5f, 0.5f};
        qg_ref_pg_gate_bwd(1, 3, 1, om, de, ol, dy, 5.0f, spbp, rm, rl, rd);
        float *gm = buf_get(&bdm, "dO_msb"), *gl = buf_get(&bdl, "dO_lsb");
        float *gd = buf_get(&bdd, "ddelta");
        const char *lab = spbp ? "PG-G1 spbp" : "PG-G1";
        cr_expect(same(lab, rm, dmsb_want, 3) && same(lab, rl, dlsb_want, 3));
        cr_expect(same(lab, rd, dd_want, 3));
        cr_expect(same(lab, gm, dmsb_want, 3) && same(lab, gl, dlsb_want, 3));
        cr_expect(qg_test_allclose(lab, gd, dd_want, 3, 1e-7f, 0));
        free(gm);
        free(gl);
        free(gd);
        buf_free(&bdm);
        buf_free(&bdl);
        buf_free(&bdd);
    }
    qg_tensor_free(count);
    buf_free(&bo);
    buf_free(&bl);
    buf_free(&bd);
    buf_free(&by);
    buf_free(&bg);
}

/* ---- oracle GATE-L1: gating losses ---- */

Test(quant, oracle_t8_6_gating_losses)
{
    qg_ctx *ctx = qg_test_ctx();
    const float delta[4] = {0, 0, 0, 0};
    struct {
        qg_gate_loss kind;
        float coef, loss, grad;
    } cases[3] = {
        {QG_GATE_LOSS_PG, 0.001f, 0.002f, -0.0005f},
        {QG_GATE_LOSS_TF, 1e-3f, 0.002f, -0.001f},
        {QG_GATE_LOSS_CG, 1e-4f, 0.0004f, -2e-4f},
    };
    for (int c = 0; c < 3; c++) {
        float g[4] = {0}, want[4];
        float l = qg_ref_gate_loss(4, delta, 1.0f, cases[c].coef, cases[c].kind, g);
        for (int i = 0; i < 4; i++)
            want[i] = cases[c].grad;
        cr_expect(fabsf(l - cases[c].loss) <= 1e-9f, "ref loss %d: %.9g", c, l);
        cr_expect(qg_test_allclose("ref grad", g, want, 4, 1e-10f, 1e-6f), "kind %d", c);
        /* device: adds into a loss already holding 1 and a grad holding 0.25 */
        buf bd = buf_flat(ctx, 4, delta);
        const float q[4] = {0.25f, 0.25f, 0.25f, 0.25f};
        buf bg = buf_flat(ctx, 4, q);
        qg_tensor *loss = scalar(ctx, 1.0f);
        QG_EXPECT_OK(qg__gate_loss(ctx, bd.view, 1.0f, cases[c].coef, cases[c].kind, loss,
                                   bg.view));
        float dl = read_scalar(loss) - 1.0f;
        cr_expect(fabsf(dl - cases[c].loss) <= 1e-7f, "device loss %d: %.9g", c, dl);
        float *dg = buf_get(&bg, "gate loss grad");
        for (int i = 0; i < 4; i++)
            want[i] = 0.25f + cases[c].grad;
        cr_expect(qg_test_allclose("device grad", dg, want, 4, 1e-8f, 1e-6f), "kind %d", c);
        free(dg);
        qg_tensor_free(loss);
        buf_free(&bd);
        buf_free(&bg);
    }
}

/* ---- oracle PACT-1: PACT ---- */

static void pact_case(qg_ctx *ctx, const float *x, size_t n, float alpha, qg_pact_mode mode,
                      const float *dx_want, float da_want, const char *label)
{
    float *dy = malloc(n * sizeof *dy), *dx = malloc(n * sizeof *dx), da = 0.0f;
    for (size_t i = 0; i < n; i++)
        dy[i] = 1.0f;
    qg_ref_pact_bwd(n, x, alpha, dy, dx, &da, mode, 0);
    cr_expect(same(label, dx, dx_want, n), "%s ref dx", label);
    cr_expect_eq(da, da_want, "%s ref dalpha %g", label, da);
    buf bx = buf_flat(ctx, n, x), bdy = buf_flat(ctx, n, dy), bdx = buf_flat(ctx, n, NULL);
    qg_tensor *al = scalar(ctx, alpha), *dal = scalar(ctx, 0.0f);
    QG_EXPECT_OK(qg__pact_bwd(ctx, bx.view, al, bdy.view, bdx.view, dal, mode, NULL, 0));
    float *g = buf_get(&bdx, label);
    cr_expect(same(label, g, dx_want, n), "%s device dx", label);
    cr_expect_eq(read_scalar(dal), da_want, "%s device dalpha", label);
    free(g);
    free(dy);
    free(dx);
    qg_tensor_free(al);
    qg_tensor_free(dal);
    buf_free(&bx);
    buf_free(&bdy);
    buf_free(&bdx);
}

Test(quant, oracle_t8_7_pact)
{
    qg_ctx *ctx = qg_test_ctx();
    const float x[6] = {-2.0f, -0.5f, 0.5f, 2.0f, 3.0f, 4.0f};
    const float y_want[6] = {0, 0, 0.5f, 2.0f, 2.5f, 2.5f}, dx_want[6] = {0, 0, 1, 1, 0, 0};
    float y[6];
    qg_ref_pact_fwd(6, x, 2.5f, y);
    cr_expect(same("PACT-1 ref y", y, y_want, 6));
    buf bx = buf_flat(ctx, 6, x), by = buf_flat(ctx, 6, NULL);
    qg_tensor *al = scalar(ctx, 2.5f);
    QG_EXPECT_OK(qg__pact_fwd(ctx, bx.view, al, by.view));
    float *g = buf_get(&by, "PACT-1 y");
    cr_expect(same("PACT-1 device y", g, y_want, 6));
    free(g);
    qg_tensor_free(al);
    buf_free(&bx);
    buf_free(&by);
    const qg_pact_mode modes[3] = {QG_PACT_PG, QG_PACT_TF, QG_PACT_BSQ};
    const char *names[3] = {"PACT-1 PG", "PACT-1 TF", "PACT-1 BSQ"};
    for (int m = 0; m < 3; m++)
        pact_case(ctx, x, 6, 2.5f, modes[m], dx_want, 2.0f, names[m]);
    /* x == alpha: strict PG gives dalpha 0, TF and BSQ 1; dx passes in all.
     * x == 0: tf.nn.relu's gradient is 0 there, PG and BSQ pass it. */
    const float xb[2] = {2.5f, 0.0f};
    const float dx_pg[2] = {1, 1}, dx_tf[2] = {1, 0};
    pact_case(ctx, xb, 2, 2.5f, QG_PACT_PG, dx_pg, 0.0f, "x==alpha PG");
    pact_case(ctx, xb, 2, 2.5f, QG_PACT_TF, dx_tf, 1.0f, "x==alpha TF");
    pact_case(ctx, xb, 2, 2.5f, QG_PACT_BSQ, dx_pg, 1.0f, "x==alpha BSQ");
}

/* ---- oracle PQ-A1: ProQHA PACT quantizer ---- */

Test(quant, oracle_t8_8_pact_quant)
{
    qg_ctx *ctx = qg_test_ctx();
    /* 3.7 is PQ-A1; 0 and alpha hit abs's kinks (0.5 gradients); -1 and 12
     * are outside the range. */
    const float x[5] = {3.7f, 0.0f, 10.0f, -1.0f, 12.0f}, dy[5] = {1, 1, 1, 1, 1};
    const float alpha = 10.0f;
    float v = 3.7f * 3.0f / 10.0f;
    const float q_want[5] = {3.333333f, 0.0f, 10.0f, 0.0f, 10.0f};
    const float dx_want[5] = {1.0f, 0.5f, 0.5f, 0.0f, 0.0f};
    float da_each[5] = {(1.0f - v) / 3.0f, 0.0f, 0.5f, 0.0f, 1.0f};
    cr_expect(fabsf(da_each[0] + 0.0366667f) <= 1e-6f, "PQ-A1 dq/dalpha %.9g", da_each[0]);
    float da_want = 0.0f;
    for (int i = 0; i < 5; i++)
        da_want += da_each[i];
    float q[5], dx[5], da = 0.0f;
    qg_ref_pact_quant_fwd(5, x, alpha, 2, q);
    qg_ref_pact_quant_bwd(5, x, alpha, 2, dy, dx, &da, 0);
    cr_expect_eq(q[0], 1.0f * 10.0f / 3.0f, "PQ-A1 q = %.9g", q[0]);
    cr_expect(qg_test_allclose("PQ-A1 ref q", q, q_want, 5, 1e-6f, 0));
    cr_expect(same("PQ-A1 ref dx", dx, dx_want, 5));
    cr_expect(fabsf(da - da_want) <= 3e-7f, "PQ-A1 ref dalpha %.9g vs %.9g", da, da_want);
    float one_da = 0.0f;
    qg_ref_pact_quant_bwd(1, x, alpha, 2, dy, dx, &one_da, 0);
    cr_expect(fabsf(one_da + 0.0366667f) <= 1e-6f, "PQ-A1 alone %.9g", one_da);

    buf bx = buf_flat(ctx, 5, x), bq = buf_flat(ctx, 5, NULL), bdy = buf_flat(ctx, 5, dy);
    buf bdx = buf_flat(ctx, 5, NULL);
    qg_tensor *al = scalar(ctx, alpha), *dal = scalar(ctx, 0.0f);
    QG_EXPECT_OK(qg__pact_quant_fwd(ctx, bx.view, al, 2, bq.view));
    QG_EXPECT_OK(qg__pact_quant_bwd(ctx, bx.view, al, 2, bdy.view, bdx.view, dal, NULL, 0));
    float *gq = buf_get(&bq, "PQ-A1 q"), *gdx = buf_get(&bdx, "PQ-A1 dx");
    cr_expect(same("PQ-A1 device q", gq, q, 5));
    cr_expect(same("PQ-A1 device dx", gdx, dx_want, 5));
    float gda = read_scalar(dal);
    cr_expect(fabsf(gda - da_want) <= 3e-7f, "PQ-A1 device dalpha %.9g", gda);
    /* k = 32: no rounding, so dq/dalpha is the abs term alone. */
    float q32[5], dx32[5], da32 = 0.0f;
    qg_ref_pact_quant_fwd(5, x, alpha, 32, q32);
    qg_ref_pact_quant_bwd(5, x, alpha, 32, dy, dx32, &da32, 0);
    const float q32_want[5] = {3.7f, 0.0f, 10.0f, 0.0f, 10.0f};
    cr_expect(qg_test_allclose("k=32 q", q32, q32_want, 5, 5e-7f, 0));
    cr_expect_eq(da32, 1.5f, "k=32 dalpha %g", da32);
    free(gq);
    free(gdx);
    qg_tensor_free(al);
    qg_tensor_free(dal);
    buf_free(&bx);
    buf_free(&bq);
    buf_free(&bdy);
    buf_free(&bdx);
}

/* ---- oracle DOREFA-1: DoReFa ---- */

Test(quant, oracle_t8_9_dorefa)
{
    qg_ctx *ctx = qg_test_ctx();
    const float w[3] = {0.5f, -1.0f, 0.1f}, dwq[3] = {1.0f, 0.5f, -2.0f};
    const float wq_want[3] = {2.0f * (2.0f / 3.0f) - 1.0f, -1.0f, 2.0f * (2.0f / 3.0f) - 1.0f};
    const float printed[3] = {0.333333f, -1.0f, 0.333333f};
    float wq[3], aux;
    qg_ref_dorefa_fwd(3, w, 2, &aux, wq);
    cr_expect(fabsf(aux - 0.7615942f) <= 1e-7f, "max|tanh| %.9g", aux);
    cr_expect(same("DOREFA-1 ref", wq, wq_want, 3));
    cr_expect(qg_test_allclose("DOREFA-1 printed", wq, printed, 3, 1e-6f, 0));
    /* analytic gradients in double */
    double t[3], M = 0;
    for (int i = 0; i < 3; i++) {
        t[i] = tanh((double)w[i]);
        M = fmax(M, fabs(t[i]));
    }
    float det_want[3], ag_want[3];
    double S = 0;
    for (int i = 0; i < 3; i++)
        S += dwq[i] * t[i];
    for (int i = 0; i < 3; i++) {
        det_want[i] = (float)(dwq[i] / M * (1 - t[i] * t[i]));
        double extra = fabs(t[i]) == M ? -S / (M * M) * (t[i] > 0 ? 1 : -1) : 0;
        ag_want[i] = (float)((dwq[i] / M + extra) * (1 - t[i] * t[i]));
    }
    float dw[3];
    qg_ref_dorefa_bwd(3, w, 2, aux, dwq, dw, QG_DOREFA_GRAD_DETACH, 0);
    cr_expect(qg_test_allclose("DOREFA-1 ref detach grad", dw, det_want, 3, 1e-6f, 1e-5f));
    qg_ref_dorefa_bwd(3, w, 2, aux, dwq, dw, QG_DOREFA_GRAD_AUTOGRAD, 0);
    cr_expect(qg_test_allclose("DOREFA-1 ref autograd grad", dw, ag_want, 3, 1e-6f, 1e-5f));
    cr_expect(fabsf(ag_want[1] - det_want[1]) > 0.05f, "the max path must matter here");

    buf bw = buf_flat(ctx, 3, w), bq = buf_flat(ctx, 3, NULL), bg = buf_flat(ctx, 3, dwq);
    buf bdw = buf_flat(ctx, 3, NULL);
    qg_tensor *ax = scalar(ctx, NAN), *ws = workspace(ctx);
    QG_EXPECT_OK(qg__dorefa_fwd(ctx, bw.view, 2, ax, bq.view));
    float *gq = buf_get(&bq, "DOREFA-1 wq");
    cr_expect(same("DOREFA-1 device", gq, wq_want, 3));
    cr_expect(fabsf(read_scalar(ax) - 0.7615942f) <= 1e-7f);
    free(gq);
    QG_EXPECT_OK(qg__dorefa_bwd(ctx, bw.view, 2, ax, bg.view, bdw.view, QG_DOREFA_GRAD_DETACH,
                                NULL, 0));
    float *gd = buf_get(&bdw, "DOREFA-1 dw");
    cr_expect(qg_test_allclose("DOREFA-1 device detach grad", gd, det_want, 3, 1e-6f, 1e-5f));
    free(gd);
    QG_EXPECT_OK(qg__dorefa_bwd(ctx, bw.view, 2, ax, bg.view, bdw.view,
                                QG_DOREFA_GRAD_AUTOGRAD, ws, 0));
    gd = buf_get(&bdw, "DOREFA-1 dw autograd");
    cr_expect(qg_test_allclose("DOREFA-1 device autograd grad", gd, ag_want, 3, 1e-6f, 1e-5f));
    free(gd);

    /* Ties in max|tanh|: w = +-1 share the max, each gets half the max
     * path. k = 1 (mean|w|) and k = 32 (identity) in the same test. */
    const float w4[4] = {1.0f, -1.0f, 0.3f, 0.0f}, g4[4] = {1.0f, 2.0f, -1.0f, 0.5f};
    float t1 = tanhf(1.0f), S4 = 0;
    for (int i = 0; i < 4; i++)
        S4 += g4[i] * tanhf(w4[i]);
    float want4[4], dw4[4], wq4[4], aux4;
    for (int i = 0; i < 4; i++) {
        float ti = tanhf(w4[i]);
        float extra = fabsf(ti) == t1 ? -S4 / (t1 * t1) * (ti > 0 ? 1.0f : -1.0f) / 2.0f : 0;
        want4[i] = (g4[i] / t1 + extra) * (1.0f - ti * ti);
    }
    qg_ref_dorefa_fwd(4, w4, 3, &aux4, wq4);
    qg_ref_dorefa_bwd(4, w4, 3, aux4, g4, dw4, QG_DOREFA_GRAD_AUTOGRAD, 0);
    cr_expect(qg_test_allclose("tied max ref", dw4, want4, 4, 1e-6f, 1e-5f));
    buf b4 = buf_flat(ctx, 4, w4), bg4 = buf_flat(ctx, 4, g4), bd4 = buf_flat(ctx, 4, NULL);
    buf bq4 = buf_flat(ctx, 4, NULL);
    QG_EXPECT_OK(qg__dorefa_fwd(ctx, b4.view, 3, ax, bq4.view));
    QG_EXPECT_OK(qg__dorefa_bwd(ctx, b4.view, 3, ax, bg4.view, bd4.view,
                                QG_DOREFA_GRAD_AUTOGRAD, ws, 0));
    gd = buf_get(&bd4, "tied max");
    cr_expect(qg_test_allclose("tied max device", gd, want4, 4, 1e-6f, 1e-5f));
    free(gd);
    float wq1[4], e, e_want = (1.0f + 1.0f + 0.3f + 0.0f) / 4.0f;
    const float wq1_want[4] = {e_want, -e_want, e_want, 0.0f};
    qg_ref_dorefa_fwd(4, w4, 1, &e, wq1);
    cr_expect(qg_test_allclose("k=1 ref", wq1, wq1_want, 4, 1e-7f, 0));
    QG_EXPECT_OK(qg__dorefa_fwd(ctx, b4.view, 1, ax, bq4.view));
    gd = buf_get(&bq4, "k=1");
    cr_expect(qg_test_allclose("k=1 device", gd, wq1_want, 4, 1e-7f, 0));
    free(gd);
    QG_EXPECT_OK(qg__dorefa_bwd(ctx, b4.view, 1, ax, bg4.view, bd4.view,
                                QG_DOREFA_GRAD_AUTOGRAD, ws, 0));
    gd = buf_get(&bd4, "k=1 grad");
    cr_expect(same("k=1 grad is identity", gd, g4, 4));
    free(gd);
    QG_EXPECT_OK(qg__dorefa_fwd(ctx, b4.view, 32, NULL, bq4.view));
    gd = buf_get(&bq4, "k=32");
    cr_expect(same("k=32 is identity", gd, w4, 4));
    free(gd);
    qg_tensor_free(ax);
    qg_tensor_free(ws);
    buf_free(&bw);
    buf_free(&bq);
    buf_free(&bg);
    buf_free(&bdw);
    buf_free(&b4);
    buf_free(&bg4);
    buf_free(&bd4);
    buf_free(&bq4);
}

/* ---- oracle PGTF-V1: the PG-TF repo's own vectors (per-row max) ---- */

Test(quant, oracle_t8_16_pgtf_vectors)
{
    qg_ctx *ctx = qg_test_ctx();
    /* rows 0 and 1 both at b=2 in one [2,6] tensor, so each row uses its
     * own max; row 2 at b=3 alone */
    const float x2[12] = {-0.01f, 0.3f, 0.2f, 0.14f, 0.1f, 0.26f,
                          -0.01f, 0.3f, 0.2f, 0.16f, 0.1f, 0.26f};
    const float y2[12] = {0, 0.3f, 0.2f, 0.1f, 0.1f, 0.3f, 0, 0.3f, 0.2f, 0.2f, 0.1f, 0.3f};
    const int32_t c2[12] = {0, 3, 2, 1, 1, 3, 0, 3, 2, 2, 1, 3};
    const float x3[6] = {0.01f, 0.7f, 0.26f, 0.19f, 0.61f, 0.59f};
    const float y3[6] = {0, 0.7f, 0.3f, 0.2f, 0.6f, 0.6f};
    const int32_t c3[6] = {0, 7, 3, 2, 6, 6};
    /* a third row scaled x10 checks that rows really are independent */
    float x2b[18], y2b[18];
    int32_t c2b[18];
    memcpy(x2b, x2, sizeof x2);
    memcpy(y2b, y2, sizeof y2);
    memcpy(c2b, c2, sizeof c2);
    for (int i = 0; i < 6; i++) {
        x2b[12 + i] = x2[i] * 10.0f;
        y2b[12 + i] = y2[i] * 10.0f;
        c2b[12 + i] = c2[i];
    }
    for (int dev = 0; dev < 2; dev++) {
        const char *who = dev ? "device" : "reference";
        split r = dev ? dev_split(ctx, x2b, 18, 3, QG_QSCALE_TF_SAMPLE, 2, 0)
                      : ref_split(x2b, 18, 3, QG_QSCALE_TF_SAMPLE, 2, 0);
        cr_expect(same_i32(who, r.codes, c2b, 18), "%s PGTF-V1 b=2 codes", who);
        cr_expect(qg_test_allclose(who, r.full, y2b, 18, 1e-6f, 1e-6f), "%s PGTF-V1 b=2", who);
        cr_expect_eq(r.s[0], 0.3f);
        cr_expect_eq(r.s[2], x2b[13]);
        r = dev ? dev_split(ctx, x3, 6, 1, QG_QSCALE_TF_SAMPLE, 3, 0)
                : ref_split(x3, 6, 1, QG_QSCALE_TF_SAMPLE, 3, 0);
        cr_expect(same_i32(who, r.codes, c3, 6), "%s PGTF-V1 b=3 codes", who);
        cr_expect(qg_test_allclose(who, r.full, y3, 6, 1e-6f, 1e-6f), "%s PGTF-V1 b=3", who);
    }
}

/* ---- bits 0 and 1 (the PG-TF repo's binarize vectors) ---- */

Test(quant, binarize_and_identity)
{
    qg_ctx *ctx = qg_test_ctx();
    const float x[8] = {-0.01f, 0.3f, 0.05f, 0.21f, 0.0f, -3.0f, 2.0f, -0.3f};
    const float want1[8] = {-1, 1, 1, 1, -1, -1, 1, -1};
    float y[8];
    qg_ref_quant_fwd(8, 1, x, 1, QG_QSCALE_PG, NULL, y);
    cr_expect(same("binarize ref", y, want1, 8));
    qg_ref_quant_fwd(8, 1, x, 0, QG_QSCALE_PG, NULL, y);
    cr_expect(same("identity ref", y, x, 8));
    buf bx = buf_flat(ctx, 8, x), by = buf_flat(ctx, 8, NULL);
    QG_EXPECT_OK(qg__quant_fwd(ctx, bx.view, 1, QG_QSCALE_PG, NULL, by.view));
    float *g = buf_get(&by, "binarize");
    cr_expect(same("binarize device", g, want1, 8));
    free(g);
    QG_EXPECT_OK(qg__quant_fwd(ctx, bx.view, 0, QG_QSCALE_PG, NULL, by.view));
    g = buf_get(&by, "identity");
    cr_expect(same("identity device", g, x, 8));
    free(g);
    cr_expect_eq(qg__quant_ste(0), QG_STE_IDENTITY);
    cr_expect_eq(qg__quant_ste(1), QG_STE_IDENTITY);
    cr_expect_eq(qg__quant_ste(2), QG_STE_NONZERO);
    buf_free(&bx);
    buf_free(&by);
}

/* ---- random tensors, device vs reference ---- */

typedef struct shp {
    int64_t N, C, H, W;
} shp;

static const shp shapes[] = {{3, 5, 7, 5}, {3, 3, 5, 7}, {1, 16, 5, 7}, {5, 16, 9, 7}};
#define NSHAPES (sizeof shapes / sizeof *shapes)

static size_t numel(shp s)
{
    return (size_t)(s.N * s.C * s.H * s.W);
}

/* Random data with exact zeros sprinkled in, at positions that move with
 * the seed (so zeros of x and of dy do not coincide). */
static float *rand_data(size_t n, float lo, float hi, uint32_t seed)
{
    float *v = malloc(n * sizeof *v);
    qg_test_fill(v, n, lo, hi, seed);
    for (size_t i = seed % 11; i < n; i += 13)
        v[i] = 0.0f;
    return v;
}

Test(quant, random_round_to_bits_matches_reference)
{
    qg_ctx *ctx = qg_test_ctx();
    const struct {
        qg_qscale mode;
        int bits, msb_bits;
    } cfg[] = {{QG_QSCALE_PG, 3, 2}, {QG_QSCALE_PG, 8, 4}, {QG_QSCALE_TF_TENSOR, 4, 1},
               {QG_QSCALE_TF_SAMPLE, 6, 4}, {QG_QSCALE_TF_SAMPLE, 2, 1}};
    for (size_t w = 0; w < 3; w++) {
        set_wg(ctx, wgs[w]);
        for (size_t si = 0; si < NSHAPES; si++)
            for (size_t k = 0; k < sizeof cfg / sizeof *cfg; k++) {
                shp s = shapes[si];
                size_t n = numel(s);
                int64_t sh[4] = {s.N, s.C, s.H, s.W};
                float *x = rand_data(n, -3, 2, (uint32_t)(100 * si + k + 1));
                if (cfg[k].mode == QG_QSCALE_TF_SAMPLE && s.N > 1) {
                    size_t len = n / (size_t)s.N;
                    for (size_t i = 0; i < len; i++)
                        x[len + i] = 0.0f; /* an all-zero sample: scale 0, output 0 */
                }
                size_t ns = cfg[k].mode == QG_QSCALE_TF_SAMPLE ? (size_t)s.N : 1;
                float *rs = malloc(ns * sizeof *rs), *rf = malloc(n * 4), *rm = malloc(n * 4);
                float *rl = malloc(n * 4);
                int32_t *rc = malloc(n * sizeof *rc);
                qg_ref_quant_scale(n, (size_t)s.N, x, cfg[k].mode, rs);
                qg_ref_quant_apply(n, ns, x, rs, cfg[k].bits, cfg[k].msb_bits, rf, rm, rl, rc);

                buf bx = buf_new(ctx, 4, sh, x), bs = buf_flat(ctx, ns, NULL);
                buf bf = buf_new(ctx, 4, sh, NULL), bm = buf_new(ctx, 4, sh, NULL);
                buf bl = buf_new(ctx, 4, sh, NULL);
                qg_tensor *codes = i32_tensor(ctx, n, 12345);
                QG_EXPECT_OK(qg__quant_scale(ctx, bx.view, cfg[k].mode, bs.view));
                QG_EXPECT_OK(qg__quant_apply(ctx, bx.view, bs.view, cfg[k].bits,
                                             cfg[k].msb_bits, bf.view, bm.view, bl.view, codes));
                char lab[96];
                snprintf(lab, sizeof lab, "WG=%ld shape %zu mode %d bits %d/%d", wgs[w], si,
                         (int)cfg[k].mode, cfg[k].bits, cfg[k].msb_bits);
                float *gs = buf_get(&bs, lab), *gf = buf_get(&bf, lab);
                float *gm = buf_get(&bm, lab), *gl = buf_get(&bl, lab);
                int32_t *gc = read_i32(codes);
                cr_expect(same(lab, gs, rs, ns), "%s scales", lab);
                cr_expect(same_i32(lab, gc, rc, n), "%s codes", lab);
                cr_expect(same(lab, gf, rf, n), "%s full", lab);
                cr_expect(same(lab, gm, rm, n), "%s msb", lab);
                cr_expect(same(lab, gl, rl, n), "%s lsb", lab);
                /* codes really are bits wide and the top code is used */
                int32_t top = 0;
                for (size_t i = 0; i < n; i++)
                    top = abs(rc[i]) > top ? abs(rc[i]) : top;
                cr_expect_eq(top, (1 << cfg[k].bits) - 1, "%s top code %d", lab, top);
                /* qg__quant_fwd == apply's full output */
                buf by = buf_new(ctx, 4, sh, NULL);
                QG_EXPECT_OK(qg__quant_fwd(ctx, bx.view, cfg[k].bits, cfg[k].mode, bs.view,
                                           by.view));
                float *gy = buf_get(&by, lab);
                cr_expect(same(lab, gy, rf, n), "%s quant_fwd", lab);
                free(gy);
                buf_free(&by);
                free(gs);
                free(gf);
                free(gm);
                free(gl);
                free(gc);
                free(rs);
                free(rf);
                free(rm);
                free(rl);
                free(rc);
                free(x);
                qg_tensor_free(codes);
                buf_free(&bx);
                buf_free(&bs);
                buf_free(&bf);
                buf_free(&bm);
                buf_free(&bl);
            }
    }
}

/* qg__quant_fwd with the PG scale on up to QG_QUANT_SMALL_MAX elements
 * (a conv's weights) runs one launch that finds the scale and rounds: the
 * scale and every output equal the reference bit for bit, as the launches
 * for larger tensors do, under each work-group layout; sizes leave partial
 * vectors and straddle the limit. */
Test(quant, small_pg_quant_fwd_in_one_launch_matches_reference)
{
    qg_ctx *ctx = qg_test_ctx();
    static const size_t sizes[] = {1, 3, 17, 4099, 36864, QG_QUANT_SMALL_MAX,
                                   QG_QUANT_SMALL_MAX + 5};
    static const int bits[] = {2, 3, 8};
    for (size_t w = 0; w < 3; w++) {
        set_wg(ctx, wgs[w]);
        for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++)
            for (size_t b = 0; b < sizeof bits / sizeof *bits; b++) {
                size_t n = sizes[si];
                float *x = rand_data(n, -0.3f, 0.2f, (uint32_t)(40 * si + b + 7));
                float rs, *rf = malloc(n * 4), *rm = malloc(n * 4), *rl = malloc(n * 4);
                int32_t *rc = malloc(n * sizeof *rc);
                qg_ref_quant_scale(n, 1, x, QG_QSCALE_PG, &rs);
                qg_ref_quant_apply(n, 1, x, &rs, bits[b], bits[b], rf, rm, rl, rc);
                float stale = 1e9f;
                buf bx = buf_flat(ctx, n, x), by = buf_flat(ctx, n, NULL);
                buf bs = buf_flat(ctx, 1, &stale);
                QG_EXPECT_OK(qg__quant_fwd(ctx, bx.view, bits[b], QG_QSCALE_PG, bs.view,
                                           by.view));
                char lab[96];
                snprintf(lab, sizeof lab, "WG=%ld n=%zu bits %d", wgs[w], n, bits[b]);
                float *gs = buf_get(&bs, lab), *gy = buf_get(&by, lab);
                cr_expect(same(lab, gs, &rs, 1), "%s scale", lab);
                cr_expect(same(lab, gy, rf, n), "%s full", lab);
                free(gs);
                free(gy);
                buf_free(&bx);
                buf_free(&by);
                buf_free(&bs);
                free(x);
                free(rf);
                free(rm);
                free(rl);
                free(rc);
            }
    }
}

Test(quant, random_ste_matches_reference_and_formula)
{
    qg_ctx *ctx = qg_test_ctx();
    for (size_t w = 0; w < 3; w++) {
        set_wg(ctx, wgs[w]);
        for (size_t si = 0; si < NSHAPES; si++)
            for (int mode = 0; mode < 2; mode++)
                for (int acc = 0; acc < 2; acc++) {
                    size_t n = numel(shapes[si]);
                    float *x = rand_data(n, -1, 1, 7 + (uint32_t)si);
                    float *dy = malloc(n * 4), *base = rand_data(n, -1, 1, 11);
                    float *r = malloc(n * 4), *want = malloc(n * 4);
                    qg_test_fill(dy, n, 0.5f, 2, 9 + (uint32_t)si); /* no zeros */
                    memcpy(r, base, n * 4);
                    qg_ref_quant_ste_bwd(n, x, dy, r, (qg_ste)mode, acc);
                    for (size_t i = 0; i < n; i++) {
                        float g = (mode == QG_STE_IDENTITY || x[i] != 0.0f) ? dy[i] : 0.0f;
                        want[i] = acc ? base[i] + g : g;
                    }
                    buf bx = buf_flat(ctx, n, x), bdy = buf_flat(ctx, n, dy);
                    buf bdx = buf_flat(ctx, n, acc ? base : NULL);
                    QG_EXPECT_OK(qg__quant_ste_bwd(ctx, bx.view, bdy.view, bdx.view,
                                                   (qg_ste)mode, acc));
                    char lab[64];
                    snprintf(lab, sizeof lab, "ste WG=%ld n=%zu mode %d acc %d", wgs[w], n,
                             mode, acc);
                    float *g = buf_get(&bdx, lab);
                    cr_expect(same(lab, r, want, n), "%s ref vs formula", lab);
                    cr_expect(same(lab, g, r, n), "%s device", lab);
                    free(g);
                    free(x);
                    free(dy);
                    free(base);
                    free(r);
                    free(want);
                    buf_free(&bx);
                    buf_free(&bdy);
                    buf_free(&bdx);
                }
    }
}

Test(quant, random_dorefa_matches_reference)
{
    qg_ctx *ctx = qg_test_ctx();
    const int bits[] = {2, 4, 8, 1};
    qg_tensor *ws = workspace(ctx), *ax = scalar(ctx, 0.0f);
    for (size_t w = 0; w < 3; w++) {
        set_wg(ctx, wgs[w]);
        for (size_t si = 0; si < NSHAPES; si++)
            for (size_t b = 0; b < sizeof bits / sizeof *bits; b++) {
                int k = bits[b];
                size_t n = numel(shapes[si]);
                float *x = rand_data(n, -1.5f, 1.2f, 31 + (uint32_t)si);
                float *dy = rand_data(n, -1, 1, 37 + (uint32_t)b);
                float *rq = malloc(n * 4), *rd = malloc(n * 4), raux;
                qg_ref_dorefa_fwd(n, x, k, &raux, rq);
                buf bx = buf_flat(ctx, n, x), bq = buf_flat(ctx, n, NULL);
                buf bdy = buf_flat(ctx, n, dy), bdx = buf_flat(ctx, n, NULL);
                QG_EXPECT_OK(qg__dorefa_fwd(ctx, bx.view, k, ax, bq.view));
                char lab[64];
                snprintf(lab, sizeof lab, "dorefa WG=%ld n=%zu k=%d", wgs[w], n, k);
                float *gq = buf_get(&bq, lab), gaux = read_scalar(ax);
                if (k == 1) {
                    cr_expect(qg_test_allclose(lab, &gaux, &raux, 1, 0, 1e-6f), "%s E", lab);
                    cr_expect(qg_test_allclose(lab, gq, rq, n, 0, 1e-6f), "%s wq", lab);
                } else {
                    cr_expect(fabsf(gaux - raux) <= 4e-7f, "%s M %.9g vs %.9g", lab, gaux, raux);
                    float L = (float)((1 << k) - 1);
                    size_t off = 0, unexplained = 0;
                    for (size_t i = 0; i < n; i++) {
                        float cg = rintf((gq[i] + 1.0f) / 2.0f * L);
                        float cr = rintf((rq[i] + 1.0f) / 2.0f * L);
                        if (cg == cr) {
                            cr_expect_eq(gq[i], rq[i], "%s [%zu] same code, other value", lab, i);
                            continue;
                        }
                        off++;
                        float uL = (tanhf(x[i]) / 2.0f / raux + 0.5f) * L;
                        if (fabsf(uL - floorf(uL) - 0.5f) > 2e-6f * L || fabsf(cg - cr) > 1)
                            unexplained++;
                    }
                    cr_expect_eq(unexplained, 0, "%s: %zu of %zu codes differ away from ties",
                                 lab, unexplained, off);
                }
                for (int mode = 0; mode < 2; mode++) {
                    qg_ref_dorefa_bwd(n, x, k, raux, dy, rd, (qg_dorefa_grad)mode, 0);
                    QG_EXPECT_OK(qg__dorefa_bwd(ctx, bx.view, k, ax, bdy.view, bdx.view,
                                                (qg_dorefa_grad)mode, mode ? ws : NULL, 0));
                    float *gd = buf_get(&bdx, lab);
                    cr_expect(qg_test_allclose(lab, gd, rd, n, GTOL_A, GTOL_R), "%s grad %d",
                              lab, mode);
                    free(gd);
                }
                free(gq);
                free(x);
                free(dy);
                free(rq);
                free(rd);
                buf_free(&bx);
                buf_free(&bq);
                buf_free(&bdy);
                buf_free(&bdx);
            }
    }
    qg_tensor_free(ws);
    qg_tensor_free(ax);
}

Test(quant, random_pact_matches_reference)
{
    qg_ctx *ctx = qg_test_ctx();
    qg_tensor *ws = workspace(ctx);
    const float alpha = 1.25f;
    for (size_t w = 0; w < 3; w++) {
        set_wg(ctx, wgs[w]);
        for (size_t si = 0; si < NSHAPES; si++) {
            size_t n = numel(shapes[si]);
            float *x = rand_data(n, -1, 2, 51 + (uint32_t)si);
            for (size_t i = 5; i < n; i += 17)
                x[i] = alpha; /* exact boundary hits */
            float *dy = rand_data(n, -1, 1, 53 + (uint32_t)si);
            float *base = rand_data(n, -1, 1, 57);
            float *r = malloc(n * 4), *rdx = malloc(n * 4);
            qg_ref_pact_fwd(n, x, alpha, r);
            buf bx = buf_flat(ctx, n, x), by = buf_flat(ctx, n, NULL), bdy = buf_flat(ctx, n, dy);
            qg_tensor *al = scalar(ctx, alpha);
            QG_EXPECT_OK(qg__pact_fwd(ctx, bx.view, al, by.view));
            char lab[80];
            snprintf(lab, sizeof lab, "pact WG=%ld n=%zu", wgs[w], n);
            float *g = buf_get(&by, lab);
            cr_expect(same(lab, g, r, n));
            free(g);
            for (int mode = 0; mode < 3; mode++)
                for (int use_ws = 0; use_ws < 2; use_ws++) {
                    int acc = use_ws;
                    float rda = 0.5f;
                    memcpy(rdx, base, n * 4);
                    qg_ref_pact_bwd(n, x, alpha, dy, rdx, &rda, (qg_pact_mode)mode, acc);
                    buf bdx = buf_flat(ctx, n, acc ? base : NULL);
                    qg_tensor *dal = scalar(ctx, 0.5f);
                    QG_EXPECT_OK(qg__pact_bwd(ctx, bx.view, al, bdy.view, bdx.view, dal,
                                              (qg_pact_mode)mode, use_ws ? ws : NULL, acc));
                    snprintf(lab, sizeof lab, "pact bwd WG=%ld n=%zu mode %d ws %d", wgs[w], n,
                             mode, use_ws);
                    g = buf_get(&bdx, lab);
                    cr_expect(same(lab, g, rdx, n), "%s dx", lab);
                    float gda = read_scalar(dal);
                    cr_expect(qg_test_allclose(lab, &gda, &rda, 1, STOL_A, STOL_R), "%s dalpha",
                              lab);
                    free(g);
                    qg_tensor_free(dal);
                    buf_free(&bdx);
                }
            qg_tensor_free(al);
            free(x);
            free(dy);
            free(base);
            free(r);
            free(rdx);
            buf_free(&bx);
            buf_free(&by);
            buf_free(&bdy);
        }
    }
    qg_tensor_free(ws);
}

Test(quant, random_pact_quant_matches_reference)
{
    qg_ctx *ctx = qg_test_ctx();
    qg_tensor *ws = workspace(ctx);
    const float alpha = 1.7f;
    const int bits[] = {2, 4, 8, 32};
    for (size_t w = 0; w < 3; w++) {
        set_wg(ctx, wgs[w]);
        for (size_t si = 0; si < NSHAPES; si++)
            for (size_t b = 0; b < sizeof bits / sizeof *bits; b++) {
                int k = bits[b];
                size_t n = numel(shapes[si]);
                float *x = rand_data(n, -1, 2.5f, 61 + (uint32_t)si);
                for (size_t i = 3; i < n; i += 19)
                    x[i] = alpha;
                float *dy = rand_data(n, -1, 1, 67 + (uint32_t)b);
                float *rq = malloc(n * 4), *rdx = malloc(n * 4), rda = 0.0f;
                qg_ref_pact_quant_fwd(n, x, alpha, k, rq);
                qg_ref_pact_quant_bwd(n, x, alpha, k, dy, rdx, &rda, 0);
                buf bx = buf_flat(ctx, n, x), bq = buf_flat(ctx, n, NULL);
                buf bdy = buf_flat(ctx, n, dy), bdx = buf_flat(ctx, n, NULL);
                qg_tensor *al = scalar(ctx, alpha), *dal = scalar(ctx, 0.0f);
                QG_EXPECT_OK(qg__pact_quant_fwd(ctx, bx.view, al, k, bq.view));
                QG_EXPECT_OK(qg__pact_quant_bwd(ctx, bx.view, al, k, bdy.view, bdx.view, dal,
                                                (b & 1) ? ws : NULL, 0));
                char lab[80];
                snprintf(lab, sizeof lab, "pact_quant WG=%ld n=%zu k=%d", wgs[w], n, k);
                float *gq = buf_get(&bq, lab), *gdx = buf_get(&bdx, lab);
                float gda = read_scalar(dal);
                cr_expect(same(lab, gq, rq, n), "%s q", lab);
                cr_expect(same(lab, gdx, rdx, n), "%s dx", lab);
                cr_expect(qg_test_allclose(lab, &gda, &rda, 1, STOL_A, STOL_R), "%s dalpha", lab);
                free(gq);
                free(gdx);
                free(x);
                free(dy);
                free(rq);
                free(rdx);
                qg_tensor_free(al);
                qg_tensor_free(dal);
                buf_free(&bx);
                buf_free(&bq);
                buf_free(&bdy);
                buf_free(&bdx);
            }
    }
    qg_tensor_free(ws);
}

Test(quant, random_pg_gate_matches_reference)
{
    qg_ctx *ctx = qg_test_ctx();
    const float slope = 5.0f;
    for (size_t w = 0; w < 3; w++) {
        set_wg(ctx, wgs[w]);
        for (size_t si = 0; si < NSHAPES; si++) {
            shp s = shapes[si];
            size_t n = numel(s);
            int N = (int)s.N, C = (int)s.C, HW = (int)(s.H * s.W);
            int64_t sh[4] = {s.N, s.C, s.H, s.W}, sc[1] = {s.C};
            float *om = rand_data(n, -1, 1, 71 + (uint32_t)si);
            float *ol = rand_data(n, -0.5f, 0.5f, 73 + (uint32_t)si);
            float *dy = rand_data(n, -1, 1, 79 + (uint32_t)si);
            float *de = rand_data((size_t)C, -0.4f, 0.4f, 83 + (uint32_t)si);
            size_t near = 0;
            for (size_t i = 0; i < n; i++)
                near += fabsf(slope * (om[i] - de[(i / HW) % C])) < 1e-6f;
            float *ry = malloc(n * 4), *rm = malloc(n * 4), *rl = malloc(n * 4);
            float *rd = calloc((size_t)C, 4);
            int32_t rcount = 0;
            qg_ref_pg_gate_fwd(N, C, HW, om, de, ol, slope, ry, &rcount);
            cr_expect(rcount > 0 && (size_t)rcount < n, "the data must open and close gates");
            buf bo = buf_new(ctx, 4, sh, om), bl = buf_new(ctx, 4, sh, ol);
            buf bd = buf_new(ctx, 1, sc, de), by = buf_new(ctx, 4, sh, NULL);
            buf bg = buf_new(ctx, 4, sh, dy);
            qg_tensor *count = i32_tensor(ctx, 1, 0);
            QG_EXPECT_OK(qg__pg_gate_fwd(ctx, bo.view, bd.view, bl.view, slope, by.view,
                                         count));
            char lab[80];
            snprintf(lab, sizeof lab, "gate WG=%ld shape %zu", wgs[w], si);
            float *gy = buf_get(&by, lab);
            int32_t *gc = read_i32(count);
            cr_expect((size_t)abs(gc[0] - rcount) <= near, "%s count %d vs %d", lab, gc[0],
                      rcount);
            if (!near)
                cr_expect(same(lab, gy, ry, n), "%s Y", lab);
            free(gy);
            free(gc);
            for (int spbp = 0; spbp < 2; spbp++) {
                memset(rd, 0, (size_t)C * 4);
                qg_ref_pg_gate_bwd(N, C, HW, om, de, ol, dy, slope, spbp, rm, rl, rd);
                buf bdm = buf_new(ctx, 4, sh, NULL), bdl = buf_new(ctx, 4, sh, NULL);
                float *zero = calloc((size_t)C, 4);
                buf bdd = buf_new(ctx, 1, sc, zero);
                QG_EXPECT_OK(qg__pg_gate_bwd(ctx, bo.view, bd.view, bl.view, bg.view, slope,
                                             spbp, bdm.view, spbp ? NULL : bdl.view, bdd.view));
                float *gm = buf_get(&bdm, lab), *gd = buf_get(&bdd, lab);
                cr_expect(qg_test_allclose(lab, gm, rm, n, GTOL_A, GTOL_R), "%s dO_msb %d",
                          lab, spbp);
                cr_expect(qg_test_allclose(lab, gd, rd, (size_t)C, STOL_A, STOL_R),
                          "%s ddelta %d", lab, spbp);
                if (!spbp) {
                    float *gl = buf_get(&bdl, lab);
                    cr_expect(same(lab, gl, rl, n), "%s dO_lsb", lab);
                    free(gl);
                } else {
                    float *gl = buf_get(&bdl, lab);
                    size_t untouched = 0;
                    for (size_t i = 0; i < n; i++)
                        untouched += isnan(gl[i]);
                    cr_expect_eq(untouched, n, "%s: dO_lsb NULL must not be written", lab);
                    free(gl);
                }
                free(gm);
                free(gd);
                free(zero);
                buf_free(&bdm);
                buf_free(&bdl);
                buf_free(&bdd);
            }
            qg_tensor_free(count);
            free(om);
            free(ol);
            free(dy);
            free(de);
            free(ry);
            free(rm);
            free(rl);
            free(rd);
            buf_free(&bo);
            buf_free(&bl);
            buf_free(&bd);
            buf_free(&by);
            buf_free(&bg);
        }
    }
}

Test(quant, random_gate_loss_matches_reference)
{
    qg_ctx *ctx = qg_test_ctx();
    const size_t Cs[] = {3, 16, 70};
    for (size_t w = 0; w < 3; w++) {
        set_wg(ctx, wgs[w]);
        for (size_t ci = 0; ci < 3; ci++)
            for (int kind = 0; kind < 3; kind++) {
                size_t C = Cs[ci];
                float *de = rand_data(C, -1, 1.5f, 91 + (uint32_t)ci);
                float *rg = calloc(C, 4);
                float rl = qg_ref_gate_loss(C, de, 0.7f, 0.01f, (qg_gate_loss)kind, rg);
                buf bd = buf_flat(ctx, C, de);
                float *zero = calloc(C, 4);
                buf bg = buf_flat(ctx, C, zero);
                qg_tensor *loss = scalar(ctx, 0.0f);
                QG_EXPECT_OK(qg__gate_loss(ctx, bd.view, 0.7f, 0.01f, (qg_gate_loss)kind, loss,
                                           bg.view));
                QG_EXPECT_OK(qg__gate_loss(ctx, bd.view, 0.7f, 0.01f, (qg_gate_loss)kind, loss,
                                           NULL));
                char lab[64];
                snprintf(lab, sizeof lab, "gate loss WG=%ld C=%zu kind %d", wgs[w], C, kind);
                float gl = read_scalar(loss), want = 2 * rl;
                float *gg = buf_get(&bg, lab);
                cr_expect(qg_test_allclose(lab, &gl, &want, 1, 1e-7f, 1e-5f), "%s loss", lab);
                cr_expect(qg_test_allclose(lab, gg, rg, C, 1e-8f, 1e-5f), "%s grad", lab);
                free(gg);
                free(de);
                free(rg);
                free(zero);
                qg_tensor_free(loss);
                buf_free(&bd);
                buf_free(&bg);
            }
    }
}

/* ---- finite differences on the references' smooth surrogates ---- */

#define FD_H 1e-3
static int fd_close(double fd, double an)
{
    return fabs(fd - an) <= 1e-4 + 1e-3 * fabs(an);
}

/* L = sum g_i * t_i / M(t) with t = tanh(w); M = max|t| (autograd) or the
 * value at w0 (detach): DoReFa's Wq with round as identity, up to 2u-1. */
static double dorefa_surrogate(size_t n, const double *w, const float *g, double M0, int detach)
{
    double M = 0, L = 0;
    for (size_t i = 0; i < n; i++)
        M = fmax(M, fabs(tanh(w[i])));
    if (detach)
        M = M0;
    for (size_t i = 0; i < n; i++)
        L += g[i] * tanh(w[i]) / M;
    return L;
}

Test(quant, reference_gradients_match_finite_differences)
{
    /* DoReFa, both modes */
    const size_t n = 9;
    float w[9], g[9], dw[9], wq[9], aux;
    qg_test_fill(w, n, -1.2f, 1.2f, 5);
    qg_test_fill(g, n, -1, 1, 6);
    qg_ref_dorefa_fwd(n, w, 4, &aux, wq);
    for (int mode = 0; mode < 2; mode++) {
        qg_ref_dorefa_bwd(n, w, 4, aux, g, dw, (qg_dorefa_grad)mode, 0);
        double wd[9];
        for (size_t i = 0; i < n; i++)
            wd[i] = w[i];
        for (size_t i = 0; i < n; i++) {
            double keep = wd[i];
            wd[i] = keep + FD_H;
            double lp = dorefa_surrogate(n, wd, g, aux, mode == QG_DOREFA_GRAD_DETACH);
            wd[i] = keep - FD_H;
            double lm = dorefa_surrogate(n, wd, g, aux, mode == QG_DOREFA_GRAD_DETACH);
            wd[i] = keep;
            double fd = (lp - lm) / (2 * FD_H);
            cr_expect(fd_close(fd, dw[i]), "dorefa mode %d [%zu]: fd %.7g analytic %.7g", mode,
                      i, fd, dw[i]);
        }
    }

    /* PG gate, spbp off: L = sum dY*(O + s(O, delta)*O_lsb). */
    const int N = 2, C = 3, HW = 5;
    const size_t m = (size_t)N * C * HW;
    float om[30], ol[30], dy[30], de[3], dm[30], dl[30], dd[3] = {0, 0, 0};
    qg_test_fill(om, m, -0.6f, 0.6f, 7);
    qg_test_fill(ol, m, -0.5f, 0.5f, 8);
    qg_test_fill(dy, m, -1, 1, 9);
    qg_test_fill(de, 3, -0.2f, 0.2f, 10);
    qg_ref_pg_gate_bwd(N, C, HW, om, de, ol, dy, 5.0f, 0, dm, dl, dd);
    for (size_t i = 0; i < m; i++) {
        int c = (int)((i / HW) % C);
        double L[2];
        for (int side = 0; side < 2; side++) {
            double o = om[i] + (side ? -FD_H : FD_H);
            double s = 1 / (1 + exp(-5 * (o - de[c])));
            L[side] = dy[i] * (o + s * ol[i]);
        }
        double fd = (L[0] - L[1]) / (2 * FD_H);
        cr_expect(fd_close(fd, dm[i]), "gate dO_msb [%zu]: fd %.7g analytic %.7g", i, fd, dm[i]);
    }
    for (int c = 0; c < C; c++) {
        double L[2] = {0, 0};
        for (int side = 0; side < 2; side++) {
            double d = de[c] + (side ? -FD_H : FD_H);
            for (int nn = 0; nn < N; nn++)
                for (int p = 0; p < HW; p++) {
                    size_t i = ((size_t)nn * C + c) * HW + p;
                    double s = 1 / (1 + exp(-5 * (om[i] - d)));
                    L[side] += dy[i] * (om[i] + s * ol[i]);
                }
        }
        double fd = (L[0] - L[1]) / (2 * FD_H);
        cr_expect(fd_close(fd, dd[c]), "gate ddelta [%d]: fd %.7g analytic %.7g", c, fd, dd[c]);
    }

    /* Gating losses (coef 1 for conditioning). */
    const float delta[5] = {0.3f, -0.7f, 1.1f, 0.0f, 0.45f};
    for (int kind = 0; kind < 3; kind++) {
        float gr[5] = {0}, dp[5];
        qg_ref_gate_loss(5, delta, 0.2f, 1.0f, (qg_gate_loss)kind, gr);
        for (int c = 0; c < 5; c++) {
            memcpy(dp, delta, sizeof dp);
            dp[c] = delta[c] + 1e-2f;
            double lp = qg_ref_gate_loss(5, dp, 0.2f, 1.0f, (qg_gate_loss)kind, NULL);
            dp[c] = delta[c] - 1e-2f;
            double lm = qg_ref_gate_loss(5, dp, 0.2f, 1.0f, (qg_gate_loss)kind, NULL);
            double fd = (lp - lm) / ((double)(delta[c] + 1e-2f) - (double)(delta[c] - 1e-2f));
            cr_expect(fabs(fd - gr[c]) <= 1e-3 + 1e-3 * fabs(gr[c]),
                      "gate loss %d [%d]: fd %.7g analytic %.7g", kind, c, fd, gr[c]);
        }
    }

    /* PACT clip and ProQHA's quantizer (round frozen at the base point),
     * away from the kinks: dalpha through L = sum g*f(x, alpha). */
    const float px[8] = {-0.7f, 0.2f, 0.9f, 1.4f, 2.2f, 0.55f, 1.9f, 3.0f};
    const float pg[8] = {0.3f, -1.0f, 0.5f, 2.0f, -0.4f, 1.5f, 0.7f, -0.2f};
    const double a0 = 1.6;
    float pdx[8], da = 0.0f;
    qg_ref_pact_bwd(8, px, (float)a0, pg, pdx, &da, QG_PACT_PG, 0);
    double L[2] = {0, 0};
    for (int side = 0; side < 2; side++) {
        double a = a0 + (side ? -FD_H : FD_H);
        for (int i = 0; i < 8; i++)
            L[side] += pg[i] * fmin(fmax(px[i], 0), a);
    }
    double fd = (L[0] - L[1]) / (2 * FD_H);
    cr_expect(fd_close(fd, da), "pact dalpha: fd %.7g analytic %.7g", fd, da);
    for (int i = 0; i < 8; i++) {
        double lp = pg[i] * fmin(fmax(px[i] + FD_H, 0), a0);
        double lm = pg[i] * fmin(fmax(px[i] - FD_H, 0), a0);
        cr_expect(fd_close((lp - lm) / (2 * FD_H), pdx[i]), "pact dx [%d]", i);
    }
    for (int k = 2; k <= 4; k += 2) {
        double Lk = (1 << k) - 1;
        da = 0.0f;
        qg_ref_pact_quant_bwd(8, px, (float)a0, k, pg, pdx, &da, 0);
        double R[8];
        for (int i = 0; i < 8; i++)
            R[i] = rint(fmin(fmax(px[i], 0), a0) * Lk / a0);
        for (int side = 0; side < 2; side++) {
            double a = a0 + (side ? -FD_H : FD_H);
            L[side] = 0;
            for (int i = 0; i < 8; i++) {
                double v = fmin(fmax(px[i], 0), a) * Lk / a;
                double v0 = fmin(fmax(px[i], 0), a0) * Lk / a0;
                L[side] += pg[i] * (R[i] + v - v0) * a / Lk; /* rint(v) with slope 1 */
            }
        }
        fd = (L[0] - L[1]) / (2 * FD_H);
        cr_expect(fd_close(fd, da), "pact_quant k=%d dalpha: fd %.7g analytic %.7g", k, fd, da);
    }
}

/* ---- argument checks ---- */

Test(quant, bad_arguments_are_errors)
{
    qg_ctx *ctx = qg_test_ctx();
    int64_t s6[1] = {6}, s5[1] = {5}, s2[1] = {2};
    qg_tensor *x = qg_test_tensor(ctx, 1, s6, NULL), *y5 = qg_test_tensor(ctx, 1, s5, NULL);
    qg_tensor *s = scalar(ctx, 1.0f), *s_two = qg_test_tensor(ctx, 1, s2, NULL);
    qg_tensor *y = qg_test_tensor(ctx, 1, s6, NULL), *small_ws = qg_test_tensor(ctx, 1, s5, NULL);
    cr_expect_eq(qg__quant_apply(ctx, x, s, 1, 0, y, NULL, NULL, NULL), QG_ERR_INVALID_ARG);
    cr_expect_eq(qg__quant_apply(ctx, x, s, 25, 0, y, NULL, NULL, NULL), QG_ERR_INVALID_ARG);
    cr_expect_eq(qg__quant_apply(ctx, x, s, 3, 3, y, y, NULL, NULL), QG_ERR_INVALID_ARG);
    cr_expect_eq(qg__quant_apply(ctx, x, s, 3, 0, y, y, NULL, NULL), QG_ERR_INVALID_ARG);
    cr_expect_eq(qg__quant_apply(ctx, x, s_two, 3, 0, y, NULL, NULL, NULL), QG_ERR_SHAPE);
    cr_expect_eq(qg__quant_apply(ctx, x, s, 3, 0, y5, NULL, NULL, NULL), QG_ERR_SHAPE);
    cr_expect_eq(qg__quant_apply(ctx, x, s, 3, 0, NULL, NULL, NULL, y), QG_ERR_INVALID_ARG,
                 "codes must be I32");
    cr_expect_eq(qg__quant_scale(ctx, x, QG_QSCALE_PG, s_two), QG_ERR_SHAPE);
    cr_expect_eq(qg__dorefa_fwd(ctx, x, 0, s, y), QG_ERR_INVALID_ARG);
    cr_expect_eq(qg__dorefa_bwd(ctx, x, 3, s, y, y, QG_DOREFA_GRAD_AUTOGRAD, NULL, 0),
                 QG_ERR_INVALID_ARG, "autograd mode without a workspace");
    cr_expect_eq(qg__pact_bwd(ctx, x, s, y, y, s, QG_PACT_PG, small_ws, 0), QG_ERR_INVALID_ARG);
    cr_expect_eq(qg__pact_bwd(ctx, x, s_two, y, y, s, QG_PACT_PG, NULL, 0), QG_ERR_SHAPE);
    cr_expect_eq(qg__pact_quant_fwd(ctx, x, s, 25, y), QG_ERR_INVALID_ARG);
    cr_expect_eq(qg__pg_gate_fwd(ctx, x, s, x, 5.0f, y, s), QG_ERR_SHAPE, "O_msb must be NCHW");
    cr_expect_eq(qg__gate_loss(ctx, x, 1.0f, 1.0f, QG_GATE_LOSS_PG, s_two, NULL), QG_ERR_SHAPE);
    qg_tensor_free(x);
    qg_tensor_free(y5);
    qg_tensor_free(s);
    qg_tensor_free(s_two);
    qg_tensor_free(y);
    qg_tensor_free(small_ws);
}
