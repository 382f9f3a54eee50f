/* tests/test_pgconv.c: the PGConv2d node (src/model/nodes_quant.c)
 * against PyTorch goldens (tests/tools/gen_pg_golden.py, committed in
 * tests/data/golden/): forward output, input / weight / threshold
 * gradients, with and without sparse back-prop, stride 1 and 2, odd
 * shapes. Tolerance atol 2e-4 + rtol 1e-3: convolutions sum in another
 * order than oneDNN; gate decisions are chosen (by the generator) at
 * least 1e-3 away from the sigmoid's 0.5 edge, so none can flip. At the
 * end, the QuantizedConv2d node against the host references. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/support.h"
#include "model/nodes_quant.h"
#include "model/resnet.h"
#include "ops/conv_masked.h"
#include "ops/conv.h"
#include "quant/quant.h"
#include "ref/ref_conv.h"
#include "ref/ref_quant.h"

TestSuite(pgconv, .fini = qg_test_ctx_free);
TestSuite(qconv, .fini = qg_test_ctx_free);

/* Golden fields (tests/support). */
#define array qg_test_json_floats
#define geti qg_test_json_int

static void run_golden(const char *name)
{
    json_t *g = qg_test_golden(name);
    qg_ctx *ctx = qg_test_ctx();
    int N = geti(g, "N"), C = geti(g, "C"), K = geti(g, "K"), H = geti(g, "H"), W = geti(g, "W");
    qg_pg_cfg cfg = {.wbits = geti(g, "wbits"), .abits = geti(g, "abits"),
                     .pred_bits = geti(g, "pred_bits"), .spbp = geti(g, "spbp")};
    qg_model *m;
    QG_EXPECT_OK(qg__model_new(ctx, "pgconv", C, H, W, K, &m));
    qg_rng rng = {1};
    int out = qg__node_pgconv(m, "conv", 0, K, geti(g, "R"), geti(g, "stride"), geti(g, "pad"),
                              &cfg, &rng);
    cr_assert_geq(out, 0, "%s", qg_last_error());
    QG_EXPECT_OK(qg__model_setup(m, N));

    size_t nx, nw, nd, ndy, ny;
    float *x = array(g, "x", &nx), *w = array(g, "w", &nw), *delta = array(g, "delta", &nd);
    float *dy = array(g, "dy", &ndy), *y = array(g, "y", &ny);
    qg_param *pw = qg__model_find_param(m, "conv.weight");
    qg_param *pd = qg__model_find_param(m, "conv.threshold");
    cr_assert_not_null(pw);
    cr_assert_not_null(pd);
    QG_EXPECT_OK(qg_tensor_write(pw->value, w, nw * sizeof *w));
    QG_EXPECT_OK(qg_tensor_write(pd->value, delta, nd * sizeof *delta));
    QG_EXPECT_OK(qg_tensor_write(qg__model_input(m), x, nx * sizeof *x));
    QG_EXPECT_OK(qg__model_forward(m, 1));
    float *gy = qg_test_read(qg__model_logits(m));
    cr_assert_eq(qg_tensor_numel(qg__model_logits(m)), ny);
    cr_expect(qg_test_allclose("pgconv y", gy, y, ny, 2e-4f, 1e-3f), "%s forward", name);

    QG_EXPECT_OK(qg_tensor_write(qg__model_logits_grad(m), dy, ndy * sizeof *dy));
    QG_EXPECT_OK(qg__model_backward(m));
    size_t n1, n2, n3;
    float *dx = array(g, "dx", &n1), *dw = array(g, "dw", &n2), *dd = array(g, "ddelta", &n3);
    float *gdx = qg_test_read(m->acts[0].grad), *gdw = qg_test_read(pw->grad);
    float *gdd = qg_test_read(pd->grad);
    cr_expect(qg_test_allclose("pgconv dx", gdx, dx, n1, 2e-4f, 1e-3f), "%s", name);
    cr_expect(qg_test_allclose("pgconv dw", gdw, dw, n2, 2e-4f, 1e-3f), "%s", name);
    cr_expect(qg_test_allclose("pgconv ddelta", gdd, dd, n3, 2e-4f, 1e-3f), "%s", name);

    /* Counters: every output is counted; the ones gated on are those
     * where y differs from the prediction alone, which the golden's
     * threshold placement keeps strictly between none and all. */
    long long total, on;
    QG_EXPECT_OK(qg__model_gate_stats(m, &total, &on, NULL, NULL, NULL, NULL));
    cr_expect_eq(total, (long long)ny);
    cr_expect(on > 0 && on < total, "gated-on count %lld of %lld", on, total);

    free(x); free(w); free(delta); free(dy); free(y); free(dx); free(dw); free(dd);
    free(gy); free(gdx); free(gdw); free(gdd);
    qg__model_free(m);
    json_decref(g);
}

Test(pgconv, golden_stride1_dense) { run_golden("pgconv_s1_dense"); }
Test(pgconv, golden_stride1_spbp) { run_golden("pgconv_s1_spbp"); }
Test(pgconv, golden_stride2_dense) { run_golden("pgconv_s2_dense"); }
Test(pgconv, golden_stride2_spbp) { run_golden("pgconv_s2_spbp"); }

/* The QuantizedConv2d node against the host references, training and
 * eval forward and the training backward: y = conv(q_a(x), q_w(w)), dx =
 * the data gradient where x != 0 (the STE), dw = q_w's STE of the weight
 * gradient on q_a(x). At 3 bits the conv rounds x itself while preparing
 * it (no quantized copy; where it keeps its planes, the weight gradient
 * reads them); at 8 bits, and in training at the narrow stride-2 shape
 * that keeps nothing, the node quantizes into a copy first. Both must
 * give the reference within the conv tolerance. */
static void run_qconv_case(int N, int C, int H, int W, int K, int stride, int abits,
                           uint32_t seed)
{
    qg_ctx *ctx = qg_test_ctx();
    qg_pg_cfg cfg = {.wbits = 8, .abits = abits};
    qg_model *m;
    QG_EXPECT_OK(qg__model_new(ctx, "qconv", C, H, W, K, &m));
    qg_rng rng = {seed};
    int out = qg__node_qconv(m, "conv", 0, K, 3, stride, 1, &cfg, &rng);
    cr_assert_geq(out, 0, "%s", qg_last_error());
    QG_EXPECT_OK(qg__model_setup(m, N));
    qg_conv_desc d;
    QG_EXPECT_OK(qg__conv_desc_init(ctx, &d, N, C, H, W, K, 3, 3, stride, 1, 1));
    size_t nx = (size_t)N * C * H * W, nw = (size_t)K * C * 9, ny = (size_t)N * K * d.P * d.Q;
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *dy = malloc(ny * 4);
    qg_test_fill(x, nx, -1, 1, seed);
    qg_test_fill(w, nw, -0.5f, 0.5f, seed + 1);
    qg_test_fill(dy, ny, -1, 1, seed + 2);
    for (size_t i = 0; i < nx; i += 5)
        x[i] = 0.0f; /* where the STE blocks */
    float *xq = malloc(nx * 4), *wq = malloc(nw * 4), *y = malloc(ny * 4), *dx = malloc(nx * 4);
    float *dw = malloc(nw * 4), *db = malloc((size_t)K * 4), sx, sw;
    qg_ref_quant_fwd(nx, N, x, abits, QG_QSCALE_PG, &sx, xq);
    qg_ref_quant_fwd(nw, K, w, 8, QG_QSCALE_PG, &sw, wq);
    qg_ref_conv2d_fwd(&d, xq, wq, NULL, y);
    qg_ref_conv2d_bwd_data(&d, dy, wq, dx);
    for (size_t i = 0; i < nx; i++)
        dx[i] = x[i] != 0.0f ? dx[i] : 0.0f;
    qg_ref_conv2d_bwd_weight(&d, xq, dy, dw, db);
    qg_ref_quant_ste_bwd(nw, w, dw, dw, qg__quant_ste(8), 0);
    qg_param *pw = qg__model_find_param(m, "conv.weight");
    cr_assert_not_null(pw);
    QG_EXPECT_OK(qg_tensor_write(pw->value, w, nw * 4));
    QG_EXPECT_OK(qg_tensor_write(qg__model_input(m), x, nx * 4));
    char l[96];
    for (int train = 0; train < 2; train++) {
        QG_EXPECT_OK(qg__model_forward(m, train));
        float *gy = qg_test_read(qg__model_logits(m));
        snprintf(l, sizeof l, "qconv y (%s, %d bits, stride %d)", train ? "train" : "eval",
                 abits, stride);
        cr_expect(qg_test_allclose(l, gy, y, ny, 1e-4f, 1e-4f), "%s", l);
        free(gy);
    }
    QG_EXPECT_OK(qg_tensor_write(qg__model_logits_grad(m), dy, ny * 4));
    QG_EXPECT_OK(qg__model_backward(m));
    float *gdx = qg_test_read(m->acts[0].grad), *gdw = qg_test_read(pw->grad);
    snprintf(l, sizeof l, "qconv dx (%d bits, stride %d)", abits, stride);
    cr_expect(qg_test_allclose(l, gdx, dx, nx, 1e-4f, 1e-4f), "%s", l);
    snprintf(l, sizeof l, "qconv dw (%d bits, stride %d)", abits, stride);
    cr_expect(qg_test_allclose(l, gdw, dw, nw, 1e-4f, 1e-4f), "%s", l);
    /* Evaluation passes (frozen parameters) quantize the weights once per
     * pass: two batches of one pass, then a pass after the weights were
     * halved, which must see them. */
    for (int pass = 0; pass < 2; pass++) {
        if (pass) {
            for (size_t i = 0; i < nw; i++)
                w[i] *= 0.5f;
            QG_EXPECT_OK(qg_tensor_write(pw->value, w, nw * 4));
            qg_ref_quant_fwd(nw, K, w, 8, QG_QSCALE_PG, &sw, wq);
            qg_ref_conv2d_fwd(&d, xq, wq, NULL, y);
        }
        qg__model_freeze(m, 1);
        for (int batch = 0; batch < 2; batch++) {
            QG_EXPECT_OK(qg__model_forward(m, 0));
            float *gy = qg_test_read(qg__model_logits(m));
            snprintf(l, sizeof l, "qconv frozen eval y (pass %d batch %d, %d bits, stride %d)",
                     pass, batch, abits, stride);
            cr_expect(qg_test_allclose(l, gy, y, ny, 1e-4f, 1e-4f), "%s", l);
            free(gy);
        }
        qg__model_freeze(m, 0);
    }
    float *all[] = {x, w, dy, xq, wq, y, dx, dw, db, gdx, gdw};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        free(all[i]);
    qg__model_free(m);
}

Test(qconv, matches_reference_s1_fused) { run_qconv_case(2, 3, 6, 20, 5, 1, 3, 41); }
Test(qconv, matches_reference_s1_copy) { run_qconv_case(2, 3, 6, 20, 5, 1, 8, 42); }
Test(qconv, matches_reference_s2_wide_fused) { run_qconv_case(2, 4, 12, 18, 6, 2, 3, 43); }
Test(qconv, matches_reference_s2_narrow_keeps_nothing) { run_qconv_case(2, 4, 8, 6, 5, 2, 3, 44); }

/* Inference with the LSB conv skipped where the gate is off
 * (docs/gate_skipping.md; forced on these small maps) gives the logits and
 * gate counts of dense gating: a PG ResNet-20 (-w 8 -a 3 --pb 2 --pg) on a
 * random batch, thresholds at 0.1 so both gates states occur. */
Test(pgconv, resnet20_inference_skipping_equals_dense_gates)
{
    qg_ctx *ctx = qg_test_ctx();
    const qg_method_cfg *mc = qg_test_methods("pg wbits=8 abits=3 pred_bits=2");
    qg_resnet_opts o = {.depth = 20, .shortcut = 'A', .in_c = 1, .in_h = 12, .in_w = 12,
                        .classes = 10, .seed = 5, .methods = mc};
    qg_model *ms[2];
    float *logits[2];
    long long on[2], total;
    qg__convm_pay_always(1);
    for (int k = 0; k < 2; k++) {
        QG_EXPECT_OK(qg__model_resnet_cifar(ctx, &o, &ms[k]));
        qg_model *m = ms[k];
        m->dense_gates = k;
        QG_EXPECT_OK(qg__model_setup(m, 4));
        for (int i = 0; i < m->nparams; i++)
            if (strstr(m->params[i]->name, ".threshold")) {
                size_t n = qg_tensor_numel(m->params[i]->value);
                float *v = malloc(n * sizeof *v);
                for (size_t j = 0; j < n; j++)
                    v[j] = 0.1f;
                QG_EXPECT_OK(qg_tensor_write(m->params[i]->value, v, n * sizeof *v));
                free(v);
            }
        size_t nx = qg_tensor_numel(qg__model_input(m));
        float *x = malloc(nx * sizeof *x);
        qg_test_fill(x, nx, -1, 2, 3);
        QG_EXPECT_OK(qg_tensor_write(qg__model_input(m), x, nx * sizeof *x));
        free(x);
        QG_EXPECT_OK(qg__model_gate_reset(m));
        QG_EXPECT_OK(qg__model_forward(m, 0));
        logits[k] = qg_test_read(qg__model_logits(m));
        QG_EXPECT_OK(qg__model_gate_stats(m, &total, &on[k], NULL, NULL, NULL, NULL));
        long long done = 0, all = 0;
        for (int i = 0; i < m->nnodes; i++) {
            long long d1, a1;
            if (!m->nodes[i].ops->skip_tiles)
                continue;
            QG_EXPECT_OK(m->nodes[i].ops->skip_tiles(&m->nodes[i], m, &d1, &a1));
            done += d1;
            all += a1;
        }
        if (k == 0)
            cr_expect(all > 0 && done < all, "skipping: %lld of %lld tiles", done, all);
        else
            cr_expect(all == 0, "dense gating listed %lld tiles", all);
    }
    qg__convm_pay_always(0);
    cr_expect(on[0] > 0 && on[0] < total, "gated on %lld of %lld", on[0], total);
    cr_expect_eq(on[0], on[1]);
    cr_expect(qg_test_allclose("pg logits", logits[0], logits[1],
                               qg_tensor_numel(qg__model_logits(ms[0])), 1e-5f, 1e-4f));
    for (int k = 0; k < 2; k++) {
        free(logits[k]);
        qg__model_free(ms[k]);
    }
}
