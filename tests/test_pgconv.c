/* tests/test_pgconv.c: the PGConv2d node (src/model/nodes_quant.c)
 * against PyTorch goldens (tests/tools/gen_pg_golden.py, committed in
 * tests/data/golden/): forward output, input / weight / threshold
 * gradients, with and without sparse back-prop, stride 1 and 2, odd
 * shapes. Tolerance atol 2e-4 + rtol 1e-3: convolutions sum in another
 * order than oneDNN; gate decisions are chosen (by the generator) at
 * least 1e-3 away from the sigmoid's 0.5 edge, so none can flip. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/support.h"
#include "model/nodes_quant.h"

TestSuite(pgconv, .fini = qg_test_ctx_free);

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
