/* tests/test_bsq.c: BSQ's bit planes (docs/methods.md §7): cl/bsq.cl (via
 * src/quant/bsq.c) against src/ref/ref_bsq.c, the host steps (conversion,
 * re-quantization, precision adjustment) against the oracles of
 * docs/methods.md §7.7 (BSQ-1 conversion and precision increase, BSQ-2
 * pruning, BSQ-3 regulariser) and hand cases, and a finite-difference
 * check of the regulariser's gradient, and a PyTorch golden of one training
 * step of a BitConv2d (tests/tools/gen_bsq_golden.py).
 *
 * Tolerances, device vs reference: effective weights and plane gradients
 * exact (same float expressions, PoCL's IEEE division); sums (the scale's
 * gradient, the regulariser) 1e-5 + 1e-4*|want| (other order, float vs
 * double). */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "support/support.h"
#include "cl/ctx.h"
#include "quant/bsq.h"
#include "ops/conv.h"
#include "ref/ref_bsq.h"
#include "ref/ref_conv.h"
#include "ref/ref_layers.h"

TestSuite(bsq, .fini = qg_test_ctx_free);

static qg_tensor *scalar(qg_ctx *ctx, float v)
{
    int64_t one[1] = {1};
    return qg_test_tensor(ctx, 1, one, &v);
}

static float read1(const qg_tensor *t)
{
    float *h = qg_test_read(t), v = h[0];
    free(h);
    return v;
}

/* Bits of one weight as a string "0110" (p - n per plane, 0/1 magnitude). */
static void bits_str(const float *x, int N, char *out)
{
    for (int b = 0; b < N; b++)
        out[b] = x[b] == 0.0f ? '0' : x[b] == 1.0f ? '1' : '?';
    out[N] = 0;
}

/* ---- oracles on the host ---- */

Test(bsq, oracle_from_float)
{
    /* N = 4, W = [0.6, -0.2, 0.05], S = 0.6 */
    const float w[3] = {0.6f, -0.2f, 0.05f};
    float p[12], n[12];
    char s[8];
    qg__bsq_from_float(w, 3, 4, 0.6f, p, n);
    bits_str(p, 4, s);
    cr_expect_str_eq(s, "1111");
    bits_str(n, 4, s);
    cr_expect_str_eq(s, "0000");
    bits_str(p + 4, 4, s);
    cr_expect_str_eq(s, "0000");
    bits_str(n + 4, 4, s);
    cr_expect_str_eq(s, "0101");
    bits_str(p + 8, 4, s);
    cr_expect_str_eq(s, "0001");
    /* reconstruction -(4+1)/15 * 0.6 = -0.2 */
    cr_expect_float_eq(qg__bsq_value(p + 4, n + 4, 4) * 0.6f, -0.2f, 1e-7f);
    /* S == 0: all bits zero */
    qg__bsq_from_float(w, 3, 4, 0.0f, p, n);
    for (int i = 0; i < 12; i++)
        cr_expect(p[i] == 0.0f && n[i] == 0.0f);
}

Test(bsq, oracle_continuous_bits)
{
    /* p = [0.4, 1.2, 0, 0.9]: w_hat = 8.9/15, bit_STE gives 9/15 = 0.6 */
    const float p[4] = {0.4f, 1.2f, 0.0f, 0.9f}, n[4] = {0};
    cr_expect_float_eq(qg__bsq_value(p, n, 4), 0.6f, 1e-7f);
    cr_expect(qg__bsq_value(p, n, 4) == 9.0f / 15.0f);
}

Test(bsq, oracle_precision_increase)
{
    /* p = [2,0,0,0]: w_hat = 16/15 forwards as 1.0*s; requant: N 5,
     * s *= 31/15, bits 10000, value 16/31 * s*31/15 = 1.0667 s_old. */
    const float p[4] = {2, 0, 0, 0}, n[4] = {0};
    float s = 1.0f, po[5], no[5];
    cr_expect(qg__bsq_value(p, n, 4) == 1.0f);
    int N = qg__bsq_requant(p, n, 1, 4, 8, &s, po, no);
    cr_assert_eq(N, 5);
    char b[8];
    bits_str(po, 5, b);
    cr_expect_str_eq(b, "10000");
    cr_expect_float_eq(s, 31.0f / 15.0f, 1e-6f);
    cr_expect_float_eq(qg__bsq_value(po, no, 5) * s, 16.0f / 15.0f, 1e-6f);
    /* at maxbit the code is clipped instead */
    s = 1.0f;
    N = qg__bsq_requant(p, n, 1, 4, 4, &s, po, no);
    cr_expect_eq(N, 4);
    bits_str(po, 4, b);
    cr_expect_str_eq(b, "1111");
    cr_expect(s == 1.0f);
}

Test(bsq, oracle_prune)
{
    /* N0 = 4, codes 0110 and 0010 -> N = 2, bits 11 and 01, s factor 0.4 */
    const float p[8] = {0, 1, 1, 0, 0, 0, 1, 0}, n[8] = {0};
    float s = 1.0f, po[8], no[8];
    int N = qg__bsq_prune(p, n, 2, 4, 0.0f, &s, po, no);
    cr_assert_eq(N, 2);
    char b[8];
    bits_str(po, 2, b);
    cr_expect_str_eq(b, "11");
    bits_str(po + 2, 2, b);
    cr_expect_str_eq(b, "01");
    cr_expect_float_eq(s, 0.4f, 1e-7f);
    cr_expect_float_eq(qg__bsq_value(po, no, 2) * s, 0.4f, 1e-6f);
    cr_expect_float_eq(qg__bsq_value(po + 2, no + 2, 2) * s, 2.0f / 15.0f, 1e-6f);
    double nz[2];
    qg__bsq_nonzero(po, no, 2, 2, nz);
    cr_expect(nz[0] == 50.0 && nz[1] == 100.0);
}

Test(bsq, prune_threshold_folds_msb)
{
    /* 4 weights, N = 3: MSB set in one of four (25% < thre 30): folded into
     * the lower planes (clipped to 1) and dropped; the LSB plane, non-zero
     * in 25% <= 30, dropped too (s doubles). */
    const float p[12] = {1, 0, 0, 0, 1, 1, 0, 1, 0, 0, 0, 0}, n[12] = {0};
    float s = 1.0f, po[12], no[12];
    int N = qg__bsq_prune(p, n, 4, 3, 30.0f, &s, po, no);
    cr_assert_eq(N, 2);
    /* after the fold: 111 / 011 / 010 / 000 without the MSB; the new MSB
     * (75%) and LSB (50%) planes are kept */
    const float want[8] = {1, 1, 1, 1, 1, 0, 0, 0};
    for (int i = 0; i < 8; i++)
        cr_expect(po[i] == want[i], "bit %d: %g", i, po[i]);
    cr_expect_float_eq(s, 3.0f / 7.0f, 1e-7f);
    /* an LSB plane non-zero in 25% <= thre 30 goes too (s doubles) */
    const float p2[8] = {1, 1, 1, 0, 1, 0, 0, 0}, n2[8] = {0};
    s = 1.0f;
    N = qg__bsq_prune(p2, n2, 4, 2, 30.0f, &s, po, no);
    cr_expect_eq(N, 1);
    cr_expect_float_eq(s, 2.0f * 1.0f / 3.0f, 1e-7f);
    /* never below one plane: an all-zero layer keeps one */
    const float z[6] = {0};
    s = 1.0f;
    N = qg__bsq_prune(z, z, 2, 3, 0.0f, &s, po, no);
    cr_expect_eq(N, 1);
}

/* With thre 0, pruning after re-quantization keeps every value exactly
 * (bits 0/1, planes only removed when all zero). */
Test(bsq, prune_thre0_preserves_values)
{
    enum { M = 300, N = 6 };
    float p[M * N], n[M * N], q[M * (N + 1)], r[M * (N + 1)], po[M * (N + 1)],
        no[M * (N + 1)], w[M], u[M * N];
    /* codes 4k, k < 8, of either sign: the MSB and the two LSB planes are
     * empty; continuous noise on the bits that re-quantization rounds away */
    qg_test_fill(w, M, 0.0f, 16.0f, 7);
    for (int i = 0; i < M; i++)
        w[i] = (float)(4 * ((int)w[i] % 8)) * (w[i] >= 8.0f ? -1.0f : 1.0f) / 63.0f;
    qg__bsq_from_float(w, M, N, 1.0f, p, n);
    qg_test_fill(u, M * N, -0.002f, 0.002f, 8);
    for (int j = 0; j < M * N; j++)
        p[j] = fmaxf(p[j] + u[j], 0.0f);
    float s = 0.7f;
    int N1 = qg__bsq_requant(p, n, M, N, 8, &s, q, r);
    float before[M];
    for (int i = 0; i < M; i++)
        before[i] = qg__bsq_value(q + i * N1, r + i * N1, N1) * s;
    float s2 = s;
    int N2 = qg__bsq_prune(q, r, M, N1, 0.0f, &s2, po, no);
    cr_expect_eq(N1, N);
    cr_expect_eq(N2, 3);
    for (int i = 0; i < M; i++) {
        float after = qg__bsq_value(po + i * N2, no + i * N2, N2) * s2;
        cr_expect_float_eq(after, before[i], 1e-6f * (1.0f + fabsf(before[i])),
                           "weight %d: %g before, %g after (N %d -> %d)", i, before[i], after,
                           N1, N2);
    }
}

/* Re-quantization keeps the forward value of bits in [0, 1]-sums, and
 * makes every bit exactly 0 or 1. */
Test(bsq, requant_exact_bits)
{
    enum { M = 200, N = 5 };
    float p[M * N], n[M * N], q[M * (N + 1)], r[M * (N + 1)];
    qg_test_fill(p, M * N, 0.0f, 1.0f, 3);
    qg_test_fill(n, M * N, 0.0f, 1.0f, 4);
    float s = 0.3f, s0 = s;
    int N1 = qg__bsq_requant(p, n, M, N, 8, &s, q, r);
    cr_assert(N1 == N || N1 == N + 1);
    for (int i = 0; i < M * N1; i++)
        cr_expect(q[i] == 0.0f || q[i] == 1.0f);
    for (int i = 0; i < M; i++) {
        float want = qg__bsq_value(p + i * N, n + i * N, N) * s0;
        float got = qg__bsq_value(q + i * N1, r + i * N1, N1) * s;
        /* values that clipped at 1.0 before grow past it; others equal */
        if (fabsf(want) < s0 * 0.999f)
            cr_expect_float_eq(got, want, 1e-6f, "weight %d", i);
    }
}

Test(bsq, oracle_regulariser)
{
    /* BitConv2d(2->1, k=1, N=2): weights 10 and 01 -> R = (2*2)*2.00000001 */
    const float p[4] = {1, 0, 0, 1}, n[4] = {0};
    float norms[2], dp[4] = {0}, dn[4] = {0};
    double R = qg_ref_bsq_reg(2, 2, p, n, 4.0f, norms, dp, dn);
    cr_expect(fabs(R - 8.00000004) < 1e-6);
    /* decay 0.01, TP 2: factor 0.01/2*4 = 0.02; loss 0.04, d/dp(w0,b0) 0.02 */
    float f = 0.01f / 2.0f * 4.0f;
    memset(dp, 0, sizeof dp);
    R = qg_ref_bsq_reg(2, 2, p, n, f, norms, dp, dn);
    cr_expect(fabs(R - 0.04) < 1e-7);
    cr_expect_float_eq(dp[0], 0.02f, 1e-7f);
    /* the device */
    qg_ctx *ctx = qg_test_ctx();
    int64_t sh[2] = {2, 2}, one[1] = {1}, wsn[1] = {QG_BSQ_WS_NUMEL}, nb[1] = {2};
    qg_tensor *tp = qg_test_tensor(ctx, 2, sh, p), *tn = qg_test_tensor(ctx, 2, sh, n);
    float zero4[4] = {0}, z = 0;
    qg_tensor *tdp = qg_test_tensor(ctx, 2, sh, zero4), *tdn = qg_test_tensor(ctx, 2, sh, zero4);
    qg_tensor *loss = qg_test_tensor(ctx, 1, one, &z), *ws = NULL, *tnorm = NULL;
    QG_EXPECT_OK(qg_tensor_new(ctx, 1, wsn, QG_DTYPE_F32, "ws", &ws));
    QG_EXPECT_OK(qg_tensor_new(ctx, 1, nb, QG_DTYPE_F32, "norms", &tnorm));
    QG_EXPECT_OK(qg__bsq_reg(ctx, tp, tn, f, loss, tdp, tdn, tnorm, ws));
    cr_expect_float_eq(read1(loss), 0.04f, 1e-8f);
    float *g = qg_test_read(tdp);
    cr_expect_float_eq(g[0], 0.02f, 1e-8f);
    cr_expect(g[1] == 0.0f);
    free(g);
    qg_tensor_free(tp);
    qg_tensor_free(tn);
    qg_tensor_free(tdp);
    qg_tensor_free(tdn);
    qg_tensor_free(loss);
    qg_tensor_free(ws);
    qg_tensor_free(tnorm);
}

/* Central differences of the regulariser (smooth) in double. */
Test(bsq, regulariser_fd)
{
    enum { M = 7, N = 3 };
    float p[M * N], n[M * N], norms[N], dp[M * N] = {0}, dn[M * N] = {0};
    qg_test_fill(p, M * N, 0.0f, 1.5f, 11);
    qg_test_fill(n, M * N, 0.0f, 1.5f, 12);
    const float f = 0.3f;
    qg_ref_bsq_reg(M, N, p, n, f, norms, dp, dn);
    for (int j = 0; j < M * N; j += 4) {
        float keep = p[j], tmp[N];
        p[j] = keep + 1e-3f;
        double up = qg_ref_bsq_reg(M, N, p, n, f, tmp, NULL, NULL);
        p[j] = keep - 1e-3f;
        double dn_ = qg_ref_bsq_reg(M, N, p, n, f, tmp, NULL, NULL);
        p[j] = keep;
        double fd = (up - dn_) / ((double)(keep + 1e-3f) - (double)(keep - 1e-3f));
        cr_expect(fabs(fd - dp[j]) <= 1e-4 + 1e-3 * fabs(dp[j]), "p[%d]: fd %g analytic %g",
                  j, fd, dp[j]);
    }
}

/* ---- device vs reference ---- */

static void run_fwd_bwd(qg_ctx *ctx, int M, int N, uint32_t seed)
{
    size_t MN = (size_t)M * N;
    float *p = malloc(MN * sizeof *p), *n = malloc(MN * sizeof *n), *dw = malloc(M * sizeof *dw);
    float *w = malloc(M * sizeof *w), *dp = malloc(MN * sizeof *dp), *dn = malloc(MN * sizeof *dn);
    qg_test_fill(p, MN, -0.2f, 2.0f, seed);
    qg_test_fill(n, MN, -0.2f, 2.0f, seed + 1);
    qg_test_fill(dw, M, -1.0f, 1.0f, seed + 2);
    /* exact bits and exact ties of the rounding too */
    for (size_t j = 0; j < MN; j += 5)
        p[j] = (float)(j % 2), n[j] = 0.0f;
    const float s = 0.37f;
    int64_t sh[2] = {M, N}, wsh[1] = {M}, wsn[1] = {QG_BSQ_WS_NUMEL};
    qg_test_buf tp = qg_test_buf_new(ctx, 2, sh, p), tn = qg_test_buf_new(ctx, 2, sh, n);
    qg_test_buf tw = qg_test_buf_new(ctx, 1, wsh, NULL), tdw = qg_test_buf_new(ctx, 1, wsh, dw);
    qg_test_buf tdp = qg_test_buf_new(ctx, 2, sh, NULL), tdn = qg_test_buf_new(ctx, 2, sh, NULL);
    qg_tensor *ts = scalar(ctx, s), *ds = scalar(ctx, 5.0f), *ws = NULL;
    QG_EXPECT_OK(qg_tensor_new(ctx, 1, wsn, QG_DTYPE_F32, "ws", &ws));
    QG_EXPECT_OK(qg__bsq_fwd(ctx, tp.view, tn.view, ts, tw.view));
    QG_EXPECT_OK(qg__bsq_bwd(ctx, tp.view, tn.view, ts, tdw.view, tdp.view, tdn.view, ds, 0, ws));
    qg_ref_bsq_fwd(M, N, p, n, s, w);
    double want_ds;
    qg_ref_bsq_bwd(M, N, p, n, s, dw, dp, dn, &want_ds);
    float *gw = qg_test_buf_get(&tw, "w"), *gdp = qg_test_buf_get(&tdp, "dp"),
          *gdn = qg_test_buf_get(&tdn, "dn");
    cr_expect(qg_test_allclose("w", gw, w, M, 0, 0), "M %d N %d", M, N);
    cr_expect(qg_test_allclose("dp", gdp, dp, MN, 0, 0), "M %d N %d", M, N);
    cr_expect(qg_test_allclose("dn", gdn, dn, MN, 0, 0), "M %d N %d", M, N);
    float gds = read1(ds);
    cr_expect(fabs(gds - want_ds) <= 1e-5 + 1e-4 * fabs(want_ds), "ds %g want %g", gds,
              want_ds);
    /* accumulate into ds */
    QG_EXPECT_OK(qg__bsq_bwd(ctx, tp.view, tn.view, ts, tdw.view, tdp.view, tdn.view, ds, 1, ws));
    cr_expect(fabs(read1(ds) - 2 * want_ds) <= 2e-5 + 2e-4 * fabs(want_ds));
    /* the regulariser */
    float norms[QG_BSQ_MAX_BITS];
    memset(dp, 0, MN * sizeof *dp);
    memset(dn, 0, MN * sizeof *dn);
    double R = qg_ref_bsq_reg(M, N, p, n, 0.01f, norms, dp, dn);
    qg_tensor *loss = scalar(ctx, 1.0f), *tnorm = NULL;
    int64_t nsh[1] = {N};
    QG_EXPECT_OK(qg_tensor_new(ctx, 1, nsh, QG_DTYPE_F32, "norms", &tnorm));
    float *zeros = calloc(MN, sizeof *zeros);
    QG_EXPECT_OK(qg_tensor_write(tdp.view, zeros, MN * sizeof *zeros));
    QG_EXPECT_OK(qg_tensor_write(tdn.view, zeros, MN * sizeof *zeros));
    QG_EXPECT_OK(qg__bsq_reg(ctx, tp.view, tn.view, 0.01f, loss, tdp.view, tdn.view, tnorm, ws));
    float gl = read1(loss) - 1.0f;
    cr_expect(fabs(gl - R) <= 1e-5 + 1e-4 * fabs(R), "R %g want %g", gl, R);
    free(gdp);
    free(gdn);
    gdp = qg_test_buf_get(&tdp, "reg dp");
    gdn = qg_test_buf_get(&tdn, "reg dn");
    cr_expect(qg_test_allclose("reg dp", gdp, dp, MN, 1e-7f, 1e-4f));
    cr_expect(qg_test_allclose("reg dn", gdn, dn, MN, 1e-7f, 1e-4f));
    /* the clamp */
    QG_EXPECT_OK(qg__bsq_clamp(ctx, tp.view, 0.0f, 2.0f));
    float *gp = qg_test_buf_get(&tp, "clamped");
    for (size_t j = 0; j < MN; j++)
        cr_expect(gp[j] == fminf(fmaxf(p[j], 0.0f), 2.0f));
    free(gp);
    free(zeros);
    free(gw);
    free(gdp);
    free(gdn);
    qg_tensor_free(loss);
    qg_tensor_free(tnorm);
    qg_tensor_free(ts);
    qg_tensor_free(ds);
    qg_tensor_free(ws);
    qg_test_buf_free(&tp);
    qg_test_buf_free(&tn);
    qg_test_buf_free(&tw);
    qg_test_buf_free(&tdw);
    qg_test_buf_free(&tdp);
    qg_test_buf_free(&tdn);
    free(p);
    free(n);
    free(dw);
    free(w);
    free(dp);
    free(dn);
}

Test(bsq, kernels_vs_ref)
{
    qg_ctx *ctx = qg_test_ctx();
    static const long wgs[] = {64, 16, 256};
    for (int k = 0; k < 3; k++) {
        QG_EXPECT_OK(qg__program_override(ctx, "bsq", &wgs[k]));
        run_fwd_bwd(ctx, 1, 1, 21);
        run_fwd_bwd(ctx, 37, 4, 22);
        run_fwd_bwd(ctx, 16 * 3 * 3 * 3, 8, 23);
        run_fwd_bwd(ctx, 5000, 3, 24);
    }
}

Test(bsq, finetune_kernels_vs_ref)
{
    qg_ctx *ctx = qg_test_ctx();
    enum { M = 777 };
    float v[M], dw[M], w[M], dv[M];
    qg_test_fill(v, M, -1.2f, 1.2f, 31);
    qg_test_fill(dw, M, -1.0f, 1.0f, 32);
    int64_t sh[1] = {M}, wsn[1] = {QG_BSQ_WS_NUMEL};
    for (int N = 1; N <= 8; N += 3) {
        qg_test_buf tv = qg_test_buf_new(ctx, 1, sh, v), tw = qg_test_buf_new(ctx, 1, sh, NULL);
        qg_test_buf tdw = qg_test_buf_new(ctx, 1, sh, dw), tdv = qg_test_buf_new(ctx, 1, sh, NULL);
        qg_tensor *ts = scalar(ctx, 0.8f), *ds = scalar(ctx, 0.0f), *ws = NULL;
        QG_EXPECT_OK(qg_tensor_new(ctx, 1, wsn, QG_DTYPE_F32, "ws", &ws));
        QG_EXPECT_OK(qg__bsq_ft_fwd(ctx, tv.view, N, ts, tw.view));
        QG_EXPECT_OK(qg__bsq_ft_bwd(ctx, tv.view, N, ts, tdw.view, tdv.view, ds, 0, ws));
        double want_ds;
        qg_ref_bsq_ft_fwd(M, N, v, 0.8f, w);
        qg_ref_bsq_ft_bwd(M, N, v, 0.8f, dw, dv, &want_ds);
        float *gw = qg_test_buf_get(&tw, "w"), *gdv = qg_test_buf_get(&tdv, "dv");
        cr_expect(qg_test_allclose("ft w", gw, w, M, 0, 0), "N %d", N);
        cr_expect(qg_test_allclose("ft dv", gdv, dv, M, 0, 0), "N %d", N);
        float g = read1(ds);
        cr_expect(fabs(g - want_ds) <= 1e-5 + 1e-4 * fabs(want_ds), "ds %g want %g", g, want_ds);
        free(gw);
        free(gdv);
        qg_tensor_free(ts);
        qg_tensor_free(ds);
        qg_tensor_free(ws);
        qg_test_buf_free(&tv);
        qg_test_buf_free(&tw);
        qg_test_buf_free(&tdw);
        qg_test_buf_free(&tdv);
    }
}

Test(bsq, bad_arguments_named)
{
    qg_ctx *ctx = qg_test_ctx();
    int64_t a[2] = {3, 4}, b[2] = {3, 5}, one[1] = {1}, w3[1] = {3};
    qg_tensor *p = NULL, *n = NULL, *s = NULL, *w = NULL;
    QG_EXPECT_OK(qg_tensor_new(ctx, 2, a, QG_DTYPE_F32, "pw", &p));
    QG_EXPECT_OK(qg_tensor_new(ctx, 2, b, QG_DTYPE_F32, "nw", &n));
    QG_EXPECT_OK(qg_tensor_new(ctx, 1, one, QG_DTYPE_F32, "s", &s));
    QG_EXPECT_OK(qg_tensor_new(ctx, 1, w3, QG_DTYPE_F32, "w", &w));
    cr_expect_eq(qg__bsq_fwd(ctx, p, n, s, w), QG_ERR_SHAPE);
    cr_expect(strstr(qg_last_error(), "'pw'") && strstr(qg_last_error(), "'nw'"), "%s",
              qg_last_error());
    qg_tensor_free(p);
    qg_tensor_free(n);
    qg_tensor_free(s);
    qg_tensor_free(w);
}

Test(bsq, code_nonzero)
{
    /* exact bits: the same as the planes' own shares */
    const float p[8] = {0, 1, 1, 0, 0, 0, 1, 0}, n[8] = {0};
    double a[4], b[4];
    qg__bsq_nonzero(p, n, 2, 4, a);
    qg__bsq_code_nonzero(p, n, 2, 4, b);
    for (int i = 0; i < 4; i++)
        cr_expect(a[i] == b[i], "plane %d: %g vs %g", i, a[i], b[i]);
    /* continuous: [0.4, 1.2, 0, 0.9] is code 9 = 1001; -1.0 clips to 1111 */
    const float q[8] = {0.4f, 1.2f, 0, 0.9f, 0, 0, 0, 0}, r[8] = {0, 0, 0, 0, 2, 2, 2, 2};
    qg__bsq_code_nonzero(q, r, 2, 4, b);
    cr_expect(b[0] == 100.0 && b[1] == 50.0 && b[2] == 50.0 && b[3] == 100.0);
}

/* ---- PyTorch golden: one training step of a BitConv2d ---- */

static int close_to(const char *label, const float *got, const float *want, size_t n, float atol,
                    float rtol)
{
    return qg_test_allclose(label, got, want, n, atol, rtol);
}

/* tests/tools/gen_bsq_golden.py: the effective weights, the conv, the
 * planes' and scale's gradients (conv term and regulariser), and the SGD
 * step with the clamp, each recomputed here from the golden's inputs with
 * the device kernels (bit planes) and the C references (conv, SGD). */
Test(bsq, golden_bitconv_step)
{
    qg_ctx *ctx = qg_test_ctx();
    json_t *g = qg_test_golden("bsq_bitconv_step");
    int N = qg_test_json_int(g, "N"), cout = qg_test_json_int(g, "cout"),
        cin = qg_test_json_int(g, "cin"), k = qg_test_json_int(g, "k"),
        stride = qg_test_json_int(g, "stride"), pad = qg_test_json_int(g, "pad"),
        nb = qg_test_json_int(g, "batch"), h = qg_test_json_int(g, "h"),
        w = qg_test_json_int(g, "w");
    size_t cnt;
    float *x = qg_test_json_floats(g, "x", &cnt), *p = qg_test_json_floats(g, "p", &cnt),
          *n = qg_test_json_floats(g, "n", &cnt), *s = qg_test_json_floats(g, "s", &cnt),
          *gy = qg_test_json_floats(g, "gy", &cnt), *weff = qg_test_json_floats(g, "weff", &cnt),
          *y = qg_test_json_floats(g, "y", &cnt), *dweff = qg_test_json_floats(g, "dweff", &cnt),
          *dp = qg_test_json_floats(g, "dp", &cnt), *dn = qg_test_json_floats(g, "dn", &cnt),
          *ds = qg_test_json_floats(g, "ds", &cnt), *p1 = qg_test_json_floats(g, "p1", &cnt),
          *n1 = qg_test_json_floats(g, "n1", &cnt), *s1 = qg_test_json_floats(g, "s1", &cnt);
    size_t M = (size_t)cout * cin * k * k, MN = M * (size_t)N;
    double lr = json_real_value(json_object_get(g, "lr")),
           mom = json_real_value(json_object_get(g, "momentum")),
           wd = json_real_value(json_object_get(g, "wd")),
           decay = json_real_value(json_object_get(g, "decay")),
           tp = json_real_value(json_object_get(g, "tp"));
    int64_t psh[5] = {cout, cin, k, k, N}, wsh[4] = {cout, cin, k, k}, one[1] = {1},
            wsn[1] = {QG_BSQ_WS_NUMEL}, nsh[1] = {N};
    qg_tensor *tp_ = qg_test_tensor(ctx, 5, psh, p), *tn = qg_test_tensor(ctx, 5, psh, n),
              *ts = qg_test_tensor(ctx, 1, one, s), *tw = qg_test_tensor(ctx, 4, wsh, weff),
              *tdw = qg_test_tensor(ctx, 4, wsh, dweff), *tdp = qg_test_tensor(ctx, 5, psh, p),
              *tdn = qg_test_tensor(ctx, 5, psh, p), *tds = scalar(ctx, 0), *loss = scalar(ctx, 0),
              *ws = NULL, *norms = NULL;
    QG_EXPECT_OK(qg_tensor_new(ctx, 1, wsn, QG_DTYPE_F32, "ws", &ws));
    QG_EXPECT_OK(qg_tensor_new(ctx, 1, nsh, QG_DTYPE_F32, "norms", &norms));
    /* forward: the effective weights, then the conv (C reference) */
    QG_EXPECT_OK(qg__bsq_fwd(ctx, tp_, tn, ts, tw));
    float *gw = qg_test_read(tw);
    cr_expect(close_to("weff", gw, weff, M, 1e-7f, 1e-6f));
    qg_conv_desc d;
    QG_EXPECT_OK(qg__conv_desc_init(ctx, &d, nb, cin, h, w, cout, k, k, stride, pad, 1));
    size_t ny = (size_t)nb * cout * d.P * d.Q;
    float *yc = malloc(ny * sizeof *yc), *dwc = malloc(M * sizeof *dwc);
    qg_ref_conv2d_fwd(&d, x, gw, NULL, yc);
    cr_expect(close_to("y", yc, y, ny, 1e-5f, 1e-5f));
    qg_ref_conv2d_bwd_weight(&d, x, gy, dwc, NULL);
    cr_expect(close_to("dweff", dwc, dweff, M, 1e-5f, 1e-5f));
    /* backward: the planes and the scale, then the regulariser */
    QG_EXPECT_OK(qg__bsq_bwd(ctx, tp_, tn, ts, tdw, tdp, tdn, tds, 0, ws));
    float factor = (float)(decay / tp * (double)M * N);
    QG_EXPECT_OK(qg__bsq_reg(ctx, tp_, tn, factor, loss, tdp, tdn, norms, ws));
    float *gdp = qg_test_read(tdp), *gdn = qg_test_read(tdn);
    cr_expect(close_to("dp", gdp, dp, MN, 1e-6f, 1e-5f));
    cr_expect(close_to("dn", gdn, dn, MN, 1e-6f, 1e-5f));
    float gds = read1(tds);
    cr_expect(fabsf(gds - ds[0]) <= 1e-5f + 1e-5f * fabsf(ds[0]), "ds %g want %g", gds, ds[0]);
    double reg = json_real_value(json_object_get(g, "reg"));
    cr_expect(fabs(read1(loss) - decay / tp * reg) <= 1e-6 * (1 + fabs(decay / tp * reg)));
    /* the SGD step (first step: the momentum buffer is the gradient), then
     * the clamp on the device */
    float *bp = calloc(MN, sizeof *bp), *bn = calloc(MN, sizeof *bn), bs = 0;
    qg_ref_sgd_step(MN, p, gdp, bp, (float)lr, (float)mom, (float)wd, 0, 1, 1.0f);
    qg_ref_sgd_step(MN, n, gdn, bn, (float)lr, (float)mom, (float)wd, 0, 1, 1.0f);
    qg_ref_sgd_step(1, s, &gds, &bs, (float)lr, (float)mom, (float)wd, 0, 1, 1.0f);
    QG_EXPECT_OK(qg_tensor_write(tp_, p, MN * sizeof *p));
    QG_EXPECT_OK(qg_tensor_write(tn, n, MN * sizeof *n));
    QG_EXPECT_OK(qg__bsq_clamp(ctx, tp_, 0.0f, 2.0f));
    QG_EXPECT_OK(qg__bsq_clamp(ctx, tn, 0.0f, 2.0f));
    float *gp1 = qg_test_read(tp_), *gn1 = qg_test_read(tn);
    cr_expect(close_to("p after step", gp1, p1, MN, 1e-6f, 1e-5f));
    cr_expect(close_to("n after step", gn1, n1, MN, 1e-6f, 1e-5f));
    cr_expect(fabsf(s[0] - s1[0]) <= 1e-6f, "s %g want %g", s[0], s1[0]);
    /* the clamp did something: some planes were pushed below 0 */
    int clamped = 0;
    for (size_t j = 0; j < MN; j++)
        clamped += p[j] < 0.0f && gp1[j] == 0.0f;
    cr_expect_gt(clamped, 0);
    free(x); free(p); free(n); free(s); free(gy); free(weff); free(y); free(dweff);
    free(dp); free(dn); free(ds); free(p1); free(n1); free(s1); free(gw); free(yc); free(dwc);
    free(gdp); free(gdn); free(bp); free(bn); free(gp1); free(gn1);
    qg_tensor_free(tp_); qg_tensor_free(tn); qg_tensor_free(ts); qg_tensor_free(tw);
    qg_tensor_free(tdw); qg_tensor_free(tdp); qg_tensor_free(tdn); qg_tensor_free(tds);
    qg_tensor_free(loss); qg_tensor_free(ws); qg_tensor_free(norms);
    json_decref(g);
}
