/* tests/test_cg.c: cl/cg.cl (via src/cg/cg.c) against src/ref/ref_cg.c,
 * and the CG oracle CG-G1 (docs/methods.md §4.8) on the
 * reference and on the device: gate value and surrogate gradient, the
 * masks for 16 -> 16 channels at p = 4, and the derived cost.
 *
 * Random tensors run under the default work-group size and two others, at
 * odd shapes; inputs and outputs are views inside larger buffers whose
 * margins hold a sentinel, checked untouched afterwards, and overwritten
 * outputs start as NaN. Tolerances, device vs reference:
 *   - weight split and its backward, shuffle, gate output, dYp, dYc:
 *     exact (the same IEEE operations on both sides; outputs whose gate
 *     input lies within 1e-6 of the sigmoid edge would be exempt, and the
 *     data is checked to hold none);
 *   - g (through device exp vs expf): 1e-6 + 1e-5*|want|;
 *   - threshold gradients (different summation order, float vs double):
 *     1e-5 + 1e-4*|want|. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/support.h"
#include "cg/cg.h"
#include "cl/ctx.h"
#include "ref/ref_cg.h"
#include "ref/ref_quant.h"

TestSuite(cg, .fini = qg_test_ctx_free);

static const long wgs[] = {64, 16, 256};

/* (WG, VW): the GPU default and two with vectors of 16 and 4 (the odd
 * maps below leave partial vectors at every plane's end). */
static void set_wg(qg_ctx *ctx, long wg)
{
    long v[2] = {wg, wg == 64 ? 1 : wg == 16 ? 16 : 4};
    QG_EXPECT_OK(qg__program_override(ctx, "cg", v));
}

static int same(const char *label, const float *got, const float *want, size_t n)
{
    return qg_test_allclose(label, got, want, n, 0, 0);
}

static float *rand_data(size_t n, float lo, float hi, uint32_t seed)
{
    float *v = malloc(n * sizeof *v);
    qg_test_fill(v, n, lo, hi, seed);
    return v;
}

/* ---- oracle CG-G1 ---- */

Test(cg, oracle_t8_5_gate_masks_and_cost)
{
    /* alpha 2, delta 1.0, BN(Yp) = 0.3: s = sigmoid(-1.4) = 0.1978161,
     * d = 0, dd/ddelta = -2 s(1-s) = -0.3173698 (0 with spbp). */
    float s, dd;
    cr_expect_eq(qg_ref_pg_gate_elem(0.3f, 1.0f, 2.0f, 0, &s, &dd), 0);
    cr_expect(fabsf(s - 0.1978161f) <= 1e-7f, "s = %.9g", s);
    cr_expect(fabsf(dd + 0.3173698f) <= 1e-7f, "dd/ddelta = %.9g", dd);
    cr_expect_eq(qg_ref_pg_gate_elem(0.3f, 1.0f, 2.0f, 1, NULL, &dd), 0);
    cr_expect_eq(dd, 0.0f, "spbp zeroes the gradient where s < 0.5");

    /* Device: one element, Yp = 0.75, Yc = 0.5 (so Y = 1.25), dOut = 1. */
    qg_ctx *ctx = qg_test_ctx();
    int64_t sh[4] = {1, 1, 1, 1}, one[1] = {1};
    const float z = 0.3f, de = 1.0f, yp = 0.75f, yc = 0.5f, dout = 1.0f;
    qg_test_buf bz = qg_test_buf_new(ctx, 4, sh, &z), bd = qg_test_buf_new(ctx, 1, one, &de);
    qg_test_buf bp = qg_test_buf_new(ctx, 4, sh, &yp), bc = qg_test_buf_new(ctx, 4, sh, &yc);
    qg_test_buf bo = qg_test_buf_new(ctx, 4, sh, NULL), bg = qg_test_buf_new(ctx, 4, sh, &dout);
    qg_tensor *count = qg_test_i32_tensor(ctx, 1, 3);
    QG_EXPECT_OK(qg__cg_gate_fwd(ctx, bz.view, bd.view, bp.view, bc.view, 2.0f, bo.view,
                                 count, 1));
    float *out = qg_test_buf_get(&bo, "CG-G1 out");
    cr_expect_eq(out[0], 0.75f, "gate off: out = Yp, got %.9g", out[0]);
    int32_t *cnt = qg_test_read_i32(count);
    cr_expect_eq(cnt[0], 3, "no output gated on: the count stays 3, got %d", cnt[0]);
    free(out);
    free(cnt);
    for (int spbp = 0; spbp < 2; spbp++) {
        const float zero = 0.0f;
        qg_test_buf gz = qg_test_buf_new(ctx, 4, sh, NULL), dyp = qg_test_buf_new(ctx, 4, sh, NULL);
        qg_test_buf dyc = qg_test_buf_new(ctx, 4, sh, NULL);
        qg_test_buf ddl = qg_test_buf_new(ctx, 1, one, &zero);
        QG_EXPECT_OK(qg__cg_gate_bwd(ctx, bz.view, bd.view, bc.view, bg.view, 2.0f, spbp,
                                     gz.view, dyp.view, dyc.view, ddl.view));
        float *g = qg_test_buf_get(&gz, "g"), *gp = qg_test_buf_get(&dyp, "dYp");
        float *gc = qg_test_buf_get(&dyc, "dYc"), *gd = qg_test_buf_get(&ddl, "ddelta");
        /* dL/dd = dOut*(Y - Yp) = 0.5; ddelta = 0.5 * -0.3173698 */
        float want_dd = spbp ? 0.0f : -0.5f * 0.3173698f;
        cr_expect(fabsf(gd[0] - want_dd) <= 1e-7f, "spbp %d: ddelta %.9g want %.9g", spbp,
                  gd[0], want_dd);
        cr_expect(fabsf(g[0] + want_dd) <= 1e-7f, "spbp %d: dZ %.9g", spbp, g[0]);
        cr_expect_eq(gp[0], 1.0f, "dYp = dOut (before the BN term)");
        cr_expect_eq(gc[0], 0.0f, "gate off: no gradient into the conditional path");
        free(g);
        free(gp);
        free(gc);
        free(gd);
        qg_test_buf_free(&gz);
        qg_test_buf_free(&dyp);
        qg_test_buf_free(&dyc);
        qg_test_buf_free(&ddl);
    }
    qg_tensor_free(count);
    qg_test_buf *bs[] = {&bz, &bd, &bp, &bc, &bo, &bg};
    for (size_t i = 0; i < sizeof bs / sizeof *bs; i++)
        qg_test_buf_free(bs[i]);

    /* Masks, Cin = Cout = 16, p = 4, 3x3. */
    float *m = malloc(16 * 16 * 9 * sizeof *m);
    for (int group = 0; group < 2; group++) {
        qg__cg_mask_fill(16, 16, 9, 4, group, m);
        int bad = 0;
        for (int o = 0; o < 16; o++)
            for (int c = 0; c < 16; c++) {
                int want = group ? (o / 4 == c / 4) : (c < 4);
                for (int kk = 0; kk < 9; kk++)
                    bad += m[(o * 16 + c) * 9 + kk] != (want ? 1.0f : 0.0f);
            }
        cr_expect_eq(bad, 0, "group %d: %d mask entries wrong", group, bad);
    }
    free(m);
    /* 20% of outputs gated on: 0.25 + 0.75*0.2 = 0.40, 2.5x fewer FLOPs. */
    double cost = qg__cg_cost(16, 4, 0.2);
    cr_expect(fabs(cost - 0.40) < 1e-12, "cost %.15g", cost);
    cr_expect(fabs(1.0 / cost - 2.5) < 1e-12);
    cr_expect(fabs(qg__cg_cost(16, 4, 0.0) - 0.25) < 1e-12);
    cr_expect(fabs(qg__cg_cost(32, 2, 1.0) - 1.0) < 1e-12);
}

/* ---- weight split ---- */

Test(cg, random_weight_split_matches_reference)
{
    qg_ctx *ctx = qg_test_ctx();
    /* The block-diagonal mask with compact base weights (a p-group conv)
     * and with full-shape ones (what the node uses), and the
     * first-channels mask. */
    const struct {
        int K, C, R, p, group, compact;
    } cases[] = {{4, 8, 3, 4, 1, 1}, {6, 3, 3, 3, 1, 1}, {16, 8, 1, 2, 1, 1}, {8, 16, 3, 4, 1, 0},
                 {6, 6, 3, 3, 1, 0}, {5, 7, 3, 3, 0, 0}, {8, 16, 3, 4, 0, 0},
                 /* first channels, compact: a conv over the first C/p */
                 {5, 8, 3, 4, 0, 2}, {8, 16, 3, 4, 0, 2}, {7, 6, 1, 3, 0, 2}};
    for (size_t w = 0; w < 3; w++) {
        set_wg(ctx, wgs[w]);
        for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
            int K = cases[ci].K, C = cases[ci].C, KK = cases[ci].R * cases[ci].R;
            int p = cases[ci].p, group = cases[ci].group, compact = cases[ci].compact;
            int Cb = qg__cg_base_channels(C, p, compact);
            size_t n = (size_t)K * C * KK, nb = (size_t)K * Cb * KK;
            float *wv = rand_data(n, -1, 1, 3 + (uint32_t)ci), *m = malloc(n * 4);
            qg__cg_mask_fill(K, C, KK, p, group, m);
            float *rb = malloc(nb * 4), *rc = malloc(n * 4), *rdw = malloc(n * 4);
            float *dwb = rand_data(nb, -1, 1, 5 + (uint32_t)ci);
            float *dwc = rand_data(n, -1, 1, 7 + (uint32_t)ci);
            qg_ref_cg_weights_fwd(K, C, KK, p, compact, wv, m, rb, rc);
            qg_ref_cg_weights_bwd(K, C, KK, p, compact, m, dwb, dwc, rdw);
            /* The split loses nothing: base + conditional = w where the
             * mask is 0 or 1, and the block sum matches the mask. */
            double msum = 0;
            for (size_t i = 0; i < n; i++)
                msum += m[i];
            cr_expect_eq((size_t)msum, (size_t)K * (C / p) * KK, "case %zu mask size", ci);
            int64_t sw[4] = {K, C, cases[ci].R, cases[ci].R}, sb[4] = {K, Cb, cases[ci].R,
                                                                          cases[ci].R};
            qg_test_buf bw = qg_test_buf_new(ctx, 4, sw, wv), bm = qg_test_buf_new(ctx, 4, sw, m);
            qg_test_buf bb = qg_test_buf_new(ctx, 4, sb, NULL);
            qg_test_buf bc = qg_test_buf_new(ctx, 4, sw, NULL);
            qg_test_buf gb = qg_test_buf_new(ctx, 4, sb, dwb);
            qg_test_buf gc = qg_test_buf_new(ctx, 4, sw, dwc);
            qg_test_buf gw = qg_test_buf_new(ctx, 4, sw, NULL);
            QG_EXPECT_OK(qg__cg_weights_fwd(ctx, bw.view, bm.view, p, compact, bb.view,
                                            bc.view));
            QG_EXPECT_OK(qg__cg_weights_bwd(ctx, bm.view, gb.view, gc.view, p, compact,
                                            gw.view));
            char lab[96];
            snprintf(lab, sizeof lab, "weights WG=%ld case %zu", wgs[w], ci);
            float *ob = qg_test_buf_get(&bb, lab), *oc = qg_test_buf_get(&bc, lab);
            float *odw = qg_test_buf_get(&gw, lab);
            cr_expect(same(lab, ob, rb, nb), "%s base", lab);
            cr_expect(same(lab, oc, rc, n), "%s conditional", lab);
            cr_expect(same(lab, odw, rdw, n), "%s dw", lab);
            size_t split_bad = 0;
            for (size_t i = 0; i < n; i++) {
                /* w*m + w*(1-m) == w exactly for m in {0, 1} */
                size_t o = i / ((size_t)C * KK), c = i / KK % C, kk = i % KK;
                size_t first = compact == QG_CG_COMPACT_BLOCKS ? o / (K / p) * Cb : 0;
                float base = (c >= first && c < first + Cb)
                                 ? rb[(o * Cb + c - first) * KK + kk] : 0.0f;
                split_bad += base + rc[i] != wv[i];
            }
            cr_expect_eq(split_bad, 0, "%s: base + conditional != w at %zu places", lab,
                         split_bad);
            free(ob); free(oc); free(odw);
            free(wv); free(m); free(rb); free(rc); free(rdw); free(dwb); free(dwc);
            qg_test_buf *bs[] = {&bw, &bm, &bb, &bc, &gb, &gc, &gw};
            for (size_t i = 0; i < sizeof bs / sizeof *bs; i++)
                qg_test_buf_free(bs[i]);
        }
    }
}

/* ---- gate ---- */

/* The mask of the outputs whose conditional path the skipping CG layer
 * computes: equal to the oracle, and covering every output the gate turns
 * on and every one sparse back-prop keeps, including values placed right
 * at the gate's edge (s == 0.5 exactly, and a few ulps either side). */
Test(cg, gate_mask_covers_the_gate)
{
    qg_ctx *ctx = qg_test_ctx();
    const float alpha = 2.0f;
    int N = 3, C = 5, H = 7, W = 6, HW = H * W;
    size_t n = (size_t)N * C * HW;
    int64_t sh[4] = {N, C, H, W}, sc[1] = {C};
    float *z = rand_data(n, -2, 2, 31), *de = rand_data((size_t)C, -0.5f, 0.5f, 37);
    for (size_t i = 0; i < n; i += 7) /* at the edge: z - delta of 0 and a few ulps */
        z[i] = nextafterf(de[(i / HW) % C], (i / 7) % 3 == 0 ? -INFINITY : INFINITY);
    for (size_t i = 3; i < n; i += 11)
        z[i] = de[(i / HW) % C];
    float *want = malloc(n * sizeof *want);
    qg_ref_cg_gate_mask(N, C, HW, z, de, alpha, want);
    size_t on = 0;
    for (size_t i = 0; i < n; i++) {
        float s;
        int d = qg_ref_pg_gate_elem(z[i], de[(i / HW) % C], alpha, 1, &s, NULL);
        cr_expect(want[i] != 0.0f || (!d && s < 0.5f), "element %zu: s %.9g outside the mask",
                  i, s);
        on += want[i] != 0.0f;
    }
    cr_expect(on > 0 && on < n, "the data must open and close gates (%zu of %zu)", on, n);
    for (size_t w = 0; w < 3; w++) {
        set_wg(ctx, wgs[w]);
        qg_test_buf bz = qg_test_buf_new(ctx, 4, sh, z), bd = qg_test_buf_new(ctx, 1, sc, de);
        qg_test_buf bm = qg_test_buf_new(ctx, 4, sh, NULL);
        QG_EXPECT_OK(qg__cg_gate_mask(ctx, bz.view, bd.view, alpha, bm.view));
        float *got = qg_test_buf_get(&bm, "gate mask");
        cr_expect(same("gate mask", got, want, n));
        free(got);
        qg_test_buf_free(&bz);
        qg_test_buf_free(&bd);
        qg_test_buf_free(&bm);
    }
    set_wg(ctx, wgs[0]);
    cr_expect_eq(qg__cg_gate_mask(ctx, NULL, NULL, alpha, NULL), QG_ERR_SHAPE);
    free(z);
    free(de);
    free(want);
}

Test(cg, random_gate_matches_reference)
{
    qg_ctx *ctx = qg_test_ctx();
    const float alpha = 2.0f;
    const int shapes[][4] = {{3, 5, 7, 5}, {2, 16, 3, 3}, {1, 3, 9, 7}, {5, 16, 8, 8}};
    for (size_t w = 0; w < 3; w++) {
        set_wg(ctx, wgs[w]);
        for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
            int N = shapes[si][0], C = shapes[si][1], HW = shapes[si][2] * shapes[si][3];
            size_t n = (size_t)N * C * HW;
            int64_t sh[4] = {N, C, shapes[si][2], shapes[si][3]}, sc[1] = {C};
            float *z = rand_data(n, -2, 2, 11 + (uint32_t)si);
            float *yp = rand_data(n, -1, 1, 13 + (uint32_t)si);
            float *yc = rand_data(n, -1, 1, 17 + (uint32_t)si);
            float *dout = rand_data(n, -1, 1, 19 + (uint32_t)si);
            float *de = rand_data((size_t)C, -0.5f, 0.5f, 23 + (uint32_t)si);
            size_t near = 0;
            for (size_t i = 0; i < n; i++)
                near += fabsf(alpha * (z[i] - de[(i / HW) % C])) < 1e-6f;
            cr_assert_eq(near, 0, "test data too close to the gate edge");
            float *rout = malloc(n * 4), *rg = malloc(n * 4), *rp = malloc(n * 4);
            float *rc = malloc(n * 4), *rd = calloc((size_t)C, 4);
            int32_t rcount = 0;
            qg_ref_cg_gate_fwd(N, C, HW, z, de, yp, yc, alpha, rout, &rcount);
            cr_expect(rcount > 0 && (size_t)rcount < n, "the data must open and close gates");
            qg_test_buf bz = qg_test_buf_new(ctx, 4, sh, z), bd = qg_test_buf_new(ctx, 1, sc, de);
            qg_test_buf bp = qg_test_buf_new(ctx, 4, sh, yp), bc = qg_test_buf_new(ctx, 4, sh, yc);
            qg_test_buf bo = qg_test_buf_new(ctx, 4, sh, NULL);
            qg_test_buf bdo = qg_test_buf_new(ctx, 4, sh, dout);
            qg_tensor *count = qg_test_i32_tensor(ctx, 1, 0);
            QG_EXPECT_OK(qg__cg_gate_fwd(ctx, bz.view, bd.view, bp.view, bc.view, alpha,
                                         bo.view, count, N));
            char lab[80];
            snprintf(lab, sizeof lab, "gate WG=%ld shape %zu", wgs[w], si);
            float *go = qg_test_buf_get(&bo, lab);
            int32_t *gcnt = qg_test_read_i32(count);
            cr_expect_eq(gcnt[0], rcount, "%s count %d vs %d", lab, gcnt[0], rcount);
            cr_expect(same(lab, go, rout, n), "%s out", lab);
            free(go);
            free(gcnt);
            /* A partial batch: only the first N-1 samples are counted. */
            int32_t rhead = 0;
            qg_ref_cg_gate_fwd(N - 1, C, HW, z, de, yp, yc, alpha, rout, &rhead);
            QG_EXPECT_OK(qg_tensor_zero(count));
            QG_EXPECT_OK(qg__cg_gate_fwd(ctx, bz.view, bd.view, bp.view, bc.view, alpha,
                                         bo.view, count, N - 1));
            gcnt = qg_test_read_i32(count);
            cr_expect_eq(gcnt[0], rhead, "%s count of %d samples: %d vs %d", lab, N - 1,
                         gcnt[0], rhead);
            free(gcnt);
            for (int spbp = 0; spbp < 2; spbp++) {
                memset(rd, 0, (size_t)C * 4);
                rd[0] = 0.5f; /* "+=": starts from a non-zero value */
                qg_ref_cg_gate_bwd(N, C, HW, z, de, yc, dout, alpha, spbp, rg, rp, rc, rd);
                float *dd0 = calloc((size_t)C, 4);
                dd0[0] = 0.5f;
                qg_test_buf gg = qg_test_buf_new(ctx, 4, sh, NULL);
                qg_test_buf gp = qg_test_buf_new(ctx, 4, sh, NULL);
                qg_test_buf gc = qg_test_buf_new(ctx, 4, sh, NULL);
                qg_test_buf gd = qg_test_buf_new(ctx, 1, sc, dd0);
                QG_EXPECT_OK(qg__cg_gate_bwd(ctx, bz.view, bd.view, bc.view, bdo.view, alpha,
                                             spbp, gg.view, gp.view, gc.view, gd.view));
                float *og = qg_test_buf_get(&gg, lab), *op = qg_test_buf_get(&gp, lab);
                float *oc = qg_test_buf_get(&gc, lab), *od = qg_test_buf_get(&gd, lab);
                cr_expect(qg_test_allclose(lab, og, rg, n, 1e-6f, 1e-5f), "%s g spbp %d", lab,
                          spbp);
                cr_expect(same(lab, op, rp, n), "%s dYp", lab);
                cr_expect(same(lab, oc, rc, n), "%s dYc", lab);
                cr_expect(qg_test_allclose(lab, od, rd, (size_t)C, 1e-5f, 1e-4f),
                          "%s ddelta spbp %d", lab, spbp);
                if (spbp) {
                    /* SparseGreaterThan: no gradient where s < 0.5 */
                    size_t leak = 0;
                    for (size_t i = 0; i < n; i++)
                        leak += z[i] < de[(i / HW) % C] && og[i] != 0.0f;
                    cr_expect_eq(leak, 0, "%s: %zu gradients where the gate is off", lab, leak);
                }
                free(og); free(op); free(oc); free(od); free(dd0);
                qg_test_buf_free(&gg);
                qg_test_buf_free(&gp);
                qg_test_buf_free(&gc);
                qg_test_buf_free(&gd);
            }
            qg_tensor_free(count);
            free(z); free(yp); free(yc); free(dout); free(de);
            free(rout); free(rg); free(rp); free(rc); free(rd);
            qg_test_buf *bs[] = {&bz, &bd, &bp, &bc, &bo, &bdo};
            for (size_t i = 0; i < sizeof bs / sizeof *bs; i++)
                qg_test_buf_free(bs[i]);
        }
    }
}

/* ---- channel shuffle ---- */

Test(cg, random_shuffle_matches_reference_and_inverts)
{
    qg_ctx *ctx = qg_test_ctx();
    const int cases[][5] = {{2, 16, 3, 5, 4}, {3, 6, 7, 1, 2}, {1, 12, 5, 5, 3}, {2, 8, 4, 4, 8}};
    for (size_t w = 0; w < 3; w++) {
        set_wg(ctx, wgs[w]);
        for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
            int N = cases[ci][0], C = cases[ci][1], HW = cases[ci][2] * cases[ci][3];
            int groups = cases[ci][4];
            size_t n = (size_t)N * C * HW;
            int64_t sh[4] = {N, C, cases[ci][2], cases[ci][3]};
            float *x = rand_data(n, -1, 1, 29 + (uint32_t)ci), *ry = malloc(n * 4);
            float *base = rand_data(n, -1, 1, 31 + (uint32_t)ci), *racc = malloc(n * 4);
            qg_ref_cg_shuffle(N, C, HW, groups, x, ry, 0);
            memcpy(racc, base, n * 4);
            qg_ref_cg_shuffle(N, C, HW, C / groups, ry, racc, 1);
            /* The reference itself: channel o of y is channel
             * (o % g)*(C/g) + o/g of x (torch's view-transpose-view). */
            int perm_bad = 0;
            for (int o = 0; o < C; o++)
                perm_bad += ry[(size_t)o * HW] != x[(size_t)((o % groups) * (C / groups) +
                                                             o / groups) * HW];
            cr_expect_eq(perm_bad, 0);
            qg_test_buf bx = qg_test_buf_new(ctx, 4, sh, x), by = qg_test_buf_new(ctx, 4, sh, NULL);
            qg_test_buf bz = qg_test_buf_new(ctx, 4, sh, base);
            QG_EXPECT_OK(qg__cg_shuffle(ctx, bx.view, groups, by.view, 0));
            QG_EXPECT_OK(qg__cg_shuffle(ctx, by.view, C / groups, bz.view, 1));
            char lab[80];
            snprintf(lab, sizeof lab, "shuffle WG=%ld case %zu", wgs[w], ci);
            float *gy = qg_test_buf_get(&by, lab), *gz = qg_test_buf_get(&bz, lab);
            cr_expect(same(lab, gy, ry, n), "%s forward", lab);
            cr_expect(same(lab, gz, racc, n), "%s backward (accumulate)", lab);
            size_t inv_bad = 0;
            for (size_t i = 0; i < n; i++)
                inv_bad += gz[i] != base[i] + x[i];
            cr_expect_eq(inv_bad, 0, "%s: the backward is not the inverse permutation", lab);
            free(gy); free(gz); free(x); free(ry); free(base); free(racc);
            qg_test_buf_free(&bx);
            qg_test_buf_free(&by);
            qg_test_buf_free(&bz);
        }
    }
}

/* ---- invalid arguments ---- */

Test(cg, bad_arguments_are_errors)
{
    qg_ctx *ctx = qg_test_ctx();
    int64_t sw[4] = {6, 4, 3, 3}, sb[4] = {6, 1, 3, 3}, sx[4] = {2, 6, 3, 3}, s1[1] = {6};
    qg_tensor *w = qg_test_tensor(ctx, 4, sw, NULL), *m = qg_test_tensor(ctx, 4, sw, NULL);
    qg_tensor *wb = qg_test_tensor(ctx, 4, sb, NULL), *wc = qg_test_tensor(ctx, 4, sw, NULL);
    qg_tensor *x = qg_test_tensor(ctx, 4, sx, NULL), *y = qg_test_tensor(ctx, 4, sx, NULL);
    qg_tensor *d = qg_test_tensor(ctx, 1, s1, NULL), *cnt = qg_test_i32_tensor(ctx, 1, 0);
    /* 4 input channels do not split into 3 groups */
    cr_expect_eq(qg__cg_weights_fwd(ctx, w, m, 3, 1, wb, wc), QG_ERR_INVALID_ARG);
    cr_expect_neq(strstr(qg_last_error(), "partitions"), NULL, "%s", qg_last_error());
    /* p = 2 with group needs base weights [6,2,3,3], not [6,1,3,3] */
    cr_expect_eq(qg__cg_weights_fwd(ctx, w, m, 2, 1, wb, wc), QG_ERR_SHAPE);
    cr_expect_eq(qg__cg_shuffle(ctx, x, 4, y, 0), QG_ERR_INVALID_ARG);
    cr_expect_eq(qg__cg_gate_fwd(ctx, x, d, x, y, 2.0f, y, d, 2), QG_ERR_INVALID_ARG,
                 "an F32 counter must be refused");
    cr_expect_eq(qg__cg_gate_fwd(ctx, x, wb, x, y, 2.0f, y, cnt, 2), QG_ERR_SHAPE,
                 "delta must have C elements");
    cr_expect_eq(qg__cg_gate_fwd(ctx, x, d, x, y, 2.0f, y, cnt, 3), QG_ERR_INVALID_ARG,
                 "3 samples of a batch of 2");
    cr_expect_eq(qg__cg_gate_bwd(ctx, w, d, x, x, 2.0f, 0, x, x, x, d), QG_ERR_SHAPE);
    qg_tensor *ts[] = {w, m, wb, wc, x, y, d, cnt};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++)
        qg_tensor_free(ts[i]);
}
