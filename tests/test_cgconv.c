/* tests/test_cgconv.c: the CGConv2d node (src/model/nodes_cg.c) against
 * PyTorch goldens (tests/tools/gen_cg_golden.py, committed in
 * tests/data/golden/): training-mode output, gate count, batch-norm
 * running statistics, input / weight / threshold gradients and an
 * eval-mode output, for block-diagonal and first-channels masks, with and
 * without sparse back-prop, stride 1 and 2, and channel shuffle. Then the
 * CG gating loss (oracle GATE-L1) through the node, and the CG ResNet-20 and
 * its post-activated variant: state-dict names, a training step, the gate
 * counters and the FLOP accounting.
 *
 * Tolerances: atol 2e-4 + rtol 1e-3 on outputs and gradients (the
 * convolutions sum in another order than oneDNN, and qgate computes
 * Y = Yp + Yc instead of a separate dense conv); 1e-5 + 1e-4 on running
 * statistics. Gate decisions are placed by the generator at least 1e-3
 * (in alpha*(BN(Yp) - delta)) away from the edge, so none can flip, and
 * the counts are compared exactly. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support/support.h"
#include "cg/cg.h"
#include "cl/ctx.h"
#include "model/nodes.h"
#include "model/nodes_cg.h"
#include "model/resnet.h"
#include "method/method.h"
#include "model/safetensors.h"
#include "ops/conv_masked.h"
#include "ops/layers.h"
#include "train/trainer.h"

TestSuite(cgconv, .fini = qg_test_ctx_free);

/* Golden fields (tests/support). */
#define array qg_test_json_floats
#define geti qg_test_json_int

/* Writes golden array `key` into parameter `name` (sizes must agree). */
static void load_param(qg_model *m, json_t *g, const char *name, const char *key)
{
    size_t n;
    float *v = array(g, key, &n);
    qg_param *p = qg__model_find_param(m, name);
    cr_assert_not_null(p, "no parameter %s", name);
    cr_assert_eq(qg_tensor_numel(p->value), n, "%s: %zu elements, golden %zu", name,
                 qg_tensor_numel(p->value), n);
    QG_EXPECT_OK(qg_tensor_write(p->value, v, n * sizeof *v));
    free(v);
}

/* Compares tensor t with golden array `key`. */
static void expect_close(const qg_tensor *t, json_t *g, const char *key, float atol, float rtol,
                         const char *name)
{
    size_t n;
    float *want = array(g, key, &n), *got = qg_test_read(t);
    cr_assert_eq(qg_tensor_numel(t), n, "%s %s: %zu elements, golden %zu", name, key,
                 qg_tensor_numel(t), n);
    char lab[96];
    snprintf(lab, sizeof lab, "%s %s", name, key);
    cr_expect(qg_test_allclose(lab, got, want, n, atol, rtol), "%s", lab);
    free(want);
    free(got);
}

static void run_golden(const char *name)
{
    json_t *g = qg_test_golden(name);
    qg_ctx *ctx = qg_test_ctx();
    int N = geti(g, "N"), C = geti(g, "C"), K = geti(g, "K"), H = geti(g, "H"), W = geti(g, "W");
    qg_cg_cfg cfg = {.partitions = geti(g, "partitions"), .group = geti(g, "group"),
                     .shuffle = geti(g, "shuffle"), .spbp = geti(g, "spbp"),
                     .alpha = (float)json_number_value(json_object_get(g, "alpha")),
                     .coef = 0.0f};
    qg_model *m;
    QG_EXPECT_OK(qg__model_new(ctx, "cgconv", C, H, W, K, &m));
    qg_rng rng = {1};
    int out = qg__node_cgconv(m, "conv", 0, K, geti(g, "R"), geti(g, "stride"), geti(g, "pad"),
                              &cfg, &rng);
    cr_assert_geq(out, 0, "%s", qg_last_error());
    QG_EXPECT_OK(qg__model_setup(m, N));

    /* The mask the node built is the reference's. */
    expect_close(qg__model_find_param(m, "conv.mask")->value, g, "mask", 0, 0, name);
    load_param(m, g, "conv.weight", "w");
    load_param(m, g, "conv.threshold", "delta");
    load_param(m, g, "conv.bn.running_mean", "running_mean_in");
    load_param(m, g, "conv.bn.running_var", "running_var_in");
    size_t nx;
    float *x = array(g, "x", &nx);
    QG_EXPECT_OK(qg_tensor_write(qg__model_input(m), x, nx * sizeof *x));
    free(x);

    QG_EXPECT_OK(qg__model_gate_reset(m));
    QG_EXPECT_OK(qg__model_forward(m, 1));
    expect_close(qg__model_logits(m), g, "y", 2e-4f, 1e-3f, name);
    expect_close(qg__model_find_param(m, "conv.bn.running_mean")->value, g, "running_mean",
                 1e-5f, 1e-4f, name);
    expect_close(qg__model_find_param(m, "conv.bn.running_var")->value, g, "running_var",
                 1e-5f, 1e-4f, name);
    long long total, on;
    QG_EXPECT_OK(qg__model_gate_stats(m, &total, &on, NULL, NULL, NULL, NULL));
    cr_expect_eq(total, (long long)qg_tensor_numel(qg__model_logits(m)));
    cr_expect_eq(on, (long long)geti(g, "num_full"), "%s: %lld gated on, golden %d", name, on,
                 geti(g, "num_full"));

    size_t ndy;
    float *dy = array(g, "dy", &ndy);
    QG_EXPECT_OK(qg_tensor_write(qg__model_logits_grad(m), dy, ndy * sizeof *dy));
    free(dy);
    QG_EXPECT_OK(qg__model_backward(m));
    expect_close(m->acts[0].grad, g, "dx", 2e-4f, 1e-3f, name);
    expect_close(qg__model_find_param(m, "conv.weight")->grad, g, "dw", 2e-4f, 1e-3f, name);
    expect_close(qg__model_find_param(m, "conv.threshold")->grad, g, "ddelta", 2e-4f, 1e-3f,
                 name);

    /* Eval mode: running statistics, counters accumulate over batches. */
    QG_EXPECT_OK(qg__model_gate_reset(m));
    QG_EXPECT_OK(qg__model_forward(m, 0));
    expect_close(qg__model_logits(m), g, "y_eval", 2e-4f, 1e-3f, name);
    QG_EXPECT_OK(qg__model_forward(m, 0));
    QG_EXPECT_OK(qg__model_gate_stats(m, &total, &on, NULL, NULL, NULL, NULL));
    cr_expect_eq(total, 2 * (long long)qg_tensor_numel(qg__model_logits(m)));
    cr_expect_eq(on, 2LL * geti(g, "num_full_eval"), "%s eval: %lld gated on, golden 2 x %d",
                 name, on, geti(g, "num_full_eval"));
    /* A partial batch counts only the samples that hold data. */
    QG_EXPECT_OK(qg__model_gate_reset(m));
    m->active = 1;
    QG_EXPECT_OK(qg__model_forward(m, 0));
    QG_EXPECT_OK(qg__model_gate_stats(m, &total, &on, NULL, NULL, NULL, NULL));
    cr_expect_eq(total, (long long)qg_tensor_numel(qg__model_logits(m)) / N);
    cr_expect(on <= total);

    qg__model_free(m);
    json_decref(g);
}

/* The goldens again with the conditional path skipped where the gate is
 * off (src/ops/conv_masked.h; forced on these small maps): the same
 * tolerances against PyTorch. The eval passes always skip; the training
 * pass skips with sparse back-prop (spbp goldens) and stays dense
 * without. */
static void run_golden_skipping(const char *name)
{
    qg__convm_pay_always(1);
    run_golden(name);
    qg__convm_pay_always(0);
}

Test(cgconv, golden_group_dense_skipping) { run_golden_skipping("cgconv_group_dense"); }
Test(cgconv, golden_group_spbp_skipping) { run_golden_skipping("cgconv_group_spbp"); }
Test(cgconv, golden_first_spbp_stride2_skipping)
{
    run_golden_skipping("cgconv_first_spbp_s2");
}
Test(cgconv, golden_shuffle_spbp_stride2_skipping)
{
    run_golden_skipping("cgconv_shuffle_spbp_s2");
}

Test(cgconv, golden_group_dense) { run_golden("cgconv_group_dense"); }
Test(cgconv, golden_group_spbp) { run_golden("cgconv_group_spbp"); }
Test(cgconv, golden_first_channels_dense) { run_golden("cgconv_first_dense"); }
Test(cgconv, golden_first_channels_spbp_stride2) { run_golden("cgconv_first_spbp_s2"); }
Test(cgconv, golden_shuffle_spbp_stride2) { run_golden("cgconv_shuffle_spbp_s2"); }

/* GATE-L1, CG: 4 channels, delta = 0 (the -gi 0.0 init), target 1, factor
 * 1e-4: loss 1e-4 * 4 = 0.0004, d/d delta_c = 2e-4 * (0 - 1) = -2e-4. */
Test(cgconv, oracle_t8_6_gating_loss_through_the_node)
{
    qg_ctx *ctx = qg_test_ctx();
    qg_model *m;
    QG_EXPECT_OK(qg__model_new(ctx, "cg", 4, 3, 3, 4, &m));
    qg_cg_cfg cfg = {.partitions = 2, .group = 1, .alpha = 2.0f, .ginit = 0.0f, .gtar = 1.0f,
                     .coef = QG_CG_LOSS_COEF};
    qg_rng rng = {7};
    cr_assert_geq(qg__node_cgconv(m, "c", 0, 4, 3, 1, 1, &cfg, &rng), 0, "%s", qg_last_error());
    QG_EXPECT_OK(qg__model_setup(m, 2));
    float x[2 * 4 * 9];
    qg_test_fill(x, 2 * 4 * 9, -1, 1, 9);
    QG_EXPECT_OK(qg_tensor_write(qg__model_input(m), x, sizeof x));
    QG_EXPECT_OK(qg__model_forward(m, 1));
    QG_EXPECT_OK(qg_tensor_zero(qg__model_logits_grad(m)));
    QG_EXPECT_OK(qg__model_backward(m));
    int64_t one[1] = {1};
    qg_tensor *loss = qg_test_tensor(ctx, 1, one, NULL);
    QG_EXPECT_OK(qg__model_aux_loss(m, loss));
    float l, *gd = qg_test_read(qg__model_find_param(m, "c.threshold")->grad);
    QG_EXPECT_OK(qg_tensor_read(loss, &l, sizeof l));
    cr_expect(fabsf(l - 0.0004f) <= 1e-9f, "loss %.9g", l);
    const float want[4] = {-2e-4f, -2e-4f, -2e-4f, -2e-4f};
    cr_expect(qg_test_allclose("GATE-L1 CG grad", gd, want, 4, 1e-10f, 1e-6f));
    free(gd);
    qg_tensor_free(loss);
    qg__model_free(m);
}

/* ---- the base path as a p-group conv ---- */

/* One CG node on [N, C, H, W] with the given config, weights from seed 5
 * (the same for both base-path forms), input and output gradient set. */
static qg_model *cg_one(qg_ctx *ctx, int N, int C, int H, int W, int K, int stride,
                        const qg_cg_cfg *cfg, const float *x, size_t nx)
{
    qg_model *m;
    QG_EXPECT_OK(qg__model_new(ctx, "cg", C, H, W, K, &m));
    qg_rng rng = {5};
    cr_assert_geq(qg__node_cgconv(m, "c", 0, K, 3, stride, 1, cfg, &rng), 0, "%s",
                  qg_last_error());
    QG_EXPECT_OK(qg__model_setup(m, N));
    QG_EXPECT_OK(qg_tensor_write(qg__model_input(m), x, nx * sizeof *x));
    return m;
}

static void expect_same(const char *what, const qg_tensor *a, const qg_tensor *b)
{
    size_t n = qg_tensor_numel(a);
    cr_assert_eq(n, qg_tensor_numel(b), "%s: sizes", what);
    float *u = qg_test_read(a), *v = qg_test_read(b);
    cr_expect(qg_test_allclose(what, u, v, n, 1e-5f, 1e-4f), "%s", what);
    free(u);
    free(v);
}

/* With the block-diagonal mask the base path runs as a p-group conv on
 * the compact weights, with the first-channels mask as a conv over the
 * first C/p channels; cfg.dense_base keeps the reference's dense conv
 * with masked full-size weights. Both give the same outputs, gate counts,
 * running statistics and input / weight / threshold gradients (atol 1e-5
 * + rtol 1e-4: the compact conv sums the same products without the
 * masked zeros, in another order), in training and in eval mode, at
 * stride 1 and 2 and with the channel shuffle. */
Test(cgconv, grouped_base_path_equals_the_dense_masked_one)
{
    qg_ctx *ctx = qg_test_ctx();
    static const struct {
        int N, C, H, W, K, stride, p, shuffle, group;
    } cases[] = {
        {3, 16, 10, 9, 16, 1, 4, 0, 1},
        {2, 16, 9, 9, 32, 2, 4, 0, 1},
        {2, 8, 7, 6, 8, 1, 2, 1, 1},
        /* first C/p channels: a conv over that slice */
        {3, 16, 10, 9, 16, 1, 4, 0, 0},
        {2, 12, 9, 7, 10, 2, 3, 0, 0},
        {2, 8, 7, 6, 8, 1, 2, 1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int N = cases[i].N, C = cases[i].C, H = cases[i].H, W = cases[i].W, K = cases[i].K;
        size_t nx = (size_t)N * C * H * W;
        float *x = malloc(nx * sizeof *x);
        qg_test_fill(x, nx, -1, 1, 11 + (uint32_t)i);
        qg_cg_cfg cfg = {.partitions = cases[i].p, .group = cases[i].group,
                         .shuffle = cases[i].shuffle,
                         .spbp = 1, .alpha = 2.0f, .ginit = 0.0f, .gtar = 1.0f, .coef = 0.0f};
        qg_model *mg = cg_one(ctx, N, C, H, W, K, cases[i].stride, &cfg, x, nx);
        cfg.dense_base = 1;
        qg_model *md = cg_one(ctx, N, C, H, W, K, cases[i].stride, &cfg, x, nx);
        expect_same("initial weights", qg__model_find_param(mg, "c.weight")->value,
                    qg__model_find_param(md, "c.weight")->value);
        char l[64];
        for (int train = 1; train >= 0; train--) {
            QG_EXPECT_OK(qg__model_gate_reset(mg));
            QG_EXPECT_OK(qg__model_gate_reset(md));
            QG_EXPECT_OK(qg__model_forward(mg, train));
            QG_EXPECT_OK(qg__model_forward(md, train));
            snprintf(l, sizeof l, "case %zu %s out", i, train ? "train" : "eval");
            expect_same(l, qg__model_logits(mg), qg__model_logits(md));
            long long tg, og, td, od;
            QG_EXPECT_OK(qg__model_gate_stats(mg, &tg, &og, NULL, NULL, NULL, NULL));
            QG_EXPECT_OK(qg__model_gate_stats(md, &td, &od, NULL, NULL, NULL, NULL));
            cr_expect(tg == td && og == od && og > 0 && og < tg, "%s: gated on %lld/%lld vs "
                      "%lld/%lld", l, og, tg, od, td);
            if (!train)
                continue;
            snprintf(l, sizeof l, "case %zu running mean", i);
            expect_same(l, qg__model_find_param(mg, "c.bn.running_mean")->value,
                        qg__model_find_param(md, "c.bn.running_mean")->value);
            size_t ny = qg_tensor_numel(qg__model_logits(mg));
            float *dy = malloc(ny * sizeof *dy);
            qg_test_fill(dy, ny, -1, 1, 21 + (uint32_t)i);
            QG_EXPECT_OK(qg_tensor_write(qg__model_logits_grad(mg), dy, ny * sizeof *dy));
            QG_EXPECT_OK(qg_tensor_write(qg__model_logits_grad(md), dy, ny * sizeof *dy));
            free(dy);
            QG_EXPECT_OK(qg__model_backward(mg));
            QG_EXPECT_OK(qg__model_backward(md));
            snprintf(l, sizeof l, "case %zu dx", i);
            expect_same(l, mg->acts[0].grad, md->acts[0].grad);
            snprintf(l, sizeof l, "case %zu dw", i);
            expect_same(l, qg__model_find_param(mg, "c.weight")->grad,
                        qg__model_find_param(md, "c.weight")->grad);
            snprintf(l, sizeof l, "case %zu ddelta", i);
            expect_same(l, qg__model_find_param(mg, "c.threshold")->grad,
                        qg__model_find_param(md, "c.threshold")->grad);
        }
        qg__model_free(mg);
        qg__model_free(md);
        free(x);
    }
}

/* ---- CG ResNet-20 ---- */

static qg_model *cg_resnet(int postact, int p, int group, int shuffle)
{
    qg_model *m = NULL;
    char spec[128];
    snprintf(spec, sizeof spec, "cg partitions=%d cg_group=%d cg_shuffle=%d postact=%d spbp "
             "alpha=2 gtar=1", p, group, shuffle, postact);
    qg_resnet_opts o = {.depth = 20, .shortcut = 'A', .in_c = 1, .in_h = 12, .in_w = 12,
                        .classes = 10, .seed = 5, .methods = qg_test_methods(spec)};
    QG_EXPECT_OK(qg__model_resnet_cifar(qg_test_ctx(), &o, &m));
    return m;
}

static int count_nodes(qg_model *m, const char *type)
{
    int k = 0;
    for (int i = 0; i < m->nnodes; i++)
        k += strcmp(m->nodes[i].ops->type, type) == 0;
    return k;
}

/* One SGD-free step on a random batch; returns the loss; checks the gate
 * counters and the FLOP accounting against the counters. */
static void one_step(qg_model *m, int p, int ncg)
{
    qg_ctx *ctx = qg_test_ctx();
    enum { B = 8 };
    QG_EXPECT_OK(qg__model_setup(m, B));
    size_t nx = qg_tensor_numel(qg__model_input(m));
    float *x = malloc(nx * sizeof *x);
    qg_test_fill(x, nx, -1, 2, 3);
    QG_EXPECT_OK(qg_tensor_write(qg__model_input(m), x, nx * sizeof *x));
    free(x);
    int32_t lab[B] = {0, 1, 2, 3, 4, 5, 6, 7};
    int64_t sb[1] = {B}, s1[1] = {1};
    qg_tensor *labels, *ls, *cor, *aux = qg_test_tensor(ctx, 1, s1, NULL);
    QG_EXPECT_OK(qg_tensor_new(ctx, 1, sb, QG_DTYPE_I32, "labels", &labels));
    QG_EXPECT_OK(qg_tensor_write(labels, lab, sizeof lab));
    QG_EXPECT_OK(qg_tensor_new(ctx, 1, s1, QG_DTYPE_F32, "loss", &ls));
    QG_EXPECT_OK(qg_tensor_new(ctx, 1, s1, QG_DTYPE_I32, "correct", &cor));
    QG_EXPECT_OK(qg__model_gate_reset(m));
    QG_EXPECT_OK(qg__model_forward(m, 1));
    QG_EXPECT_OK(qg__softmax_ce(ctx, qg__model_logits(m), labels, 1.0f / B, ls, cor,
                                qg__model_logits_grad(m)));
    QG_EXPECT_OK(qg__model_backward(m));
    QG_EXPECT_OK(qg__model_aux_loss(m, aux));
    float l, a;
    QG_EXPECT_OK(qg_tensor_read(ls, &l, sizeof l));
    QG_EXPECT_OK(qg_tensor_read(aux, &a, sizeof a));
    cr_expect(isfinite(l) && l > 0, "loss %g", l);
    /* thresholds start at 0, target 1: 1e-4 * (sum of channels) */
    double channels = 0;
    for (int i = 0; i < m->nparams; i++)
        if (strstr(m->params[i]->name, ".threshold"))
            channels += (double)qg_tensor_numel(m->params[i]->value);
    cr_expect(fabs(a - 1e-4 * channels) <= 1e-7, "aux loss %g for %g channels", a, channels);

    long long total, on, nt[64], no[64];
    const char *names[64];
    int k;
    QG_EXPECT_OK(qg__model_gate_stats(m, &total, &on, &k, names, nt, no));
    cr_expect_eq(k, ncg);
    cr_expect(on > 0 && on < total, "gated on %lld of %lld", on, total);
    double full, eff, cost[64];
    int ncost;
    QG_EXPECT_OK(qg__model_gate_flops(m, &full, &eff, &ncost, cost));
    cr_expect_eq(ncost, ncg);
    double want_eff = full;
    for (int i = 0, j = 0; i < m->nnodes; i++) {
        if (strcmp(m->nodes[i].ops->type, "cgconv2d"))
            continue;
        double f = qg__node_macs(m, &m->nodes[i]);
        double r = (double)no[j] / (double)nt[j];
        cr_expect(fabs(cost[j] - (1.0 / p + (1.0 - 1.0 / p) * r)) < 1e-12, "%s cost %g",
                  names[j], cost[j]);
        want_eff -= f * (1.0 - cost[j]);
        j++;
    }
    cr_expect(fabs(eff - want_eff) <= 1e-9 * full, "effective %g want %g", eff, want_eff);
    cr_expect(eff < full && eff > full / p * 0.5, "effective %g of %g", eff, full);
    /* The dense ResNet-20 on 12x12 inputs: 3x3 convs 16/32/64 plus the
     * stem and the classifier, independent of gating. */
    double dense = 1 * 16 * 9 * 144.0 + 6 * 16 * 16 * 9 * 144.0 + 16 * 32 * 9 * 36.0 +
                   5 * 32 * 32 * 9 * 36.0 + 32 * 64 * 9 * 9.0 + 5 * 64 * 64 * 9 * 9.0 + 640;
    cr_expect(fabs(full - dense) < 0.5, "dense MACs %.0f want %.0f", full, dense);
    qg_tensor_free(labels);
    qg_tensor_free(ls);
    qg_tensor_free(cor);
    qg_tensor_free(aux);
}

Test(cgconv, resnet20_cg_names_step_and_counters)
{
    qg_model *m = cg_resnet(0, 4, 1, 0);
    cr_expect_eq(count_nodes(m, "cgconv2d"), 9);
    cr_expect_eq(count_nodes(m, "conv2d"), 10, "stem + 9 plain conv2");
    const char *want[] = {"layer1.0.conv1.weight", "layer1.0.conv1.mask",
                          "layer1.0.conv1.threshold", "layer1.0.conv1.bn.running_mean",
                          "layer1.0.conv1.bn.running_var", "layer3.2.conv1.threshold",
                          "layer2.0.conv2.weight", "linear.bias"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        cr_expect_not_null(qg__model_find_param(m, want[i]), "missing %s", want[i]);
    cr_expect_null(qg__model_find_param(m, "layer1.0.conv2.threshold"));
    qg_param *t = qg__model_find_param(m, "layer2.0.conv1.threshold");
    cr_expect(qg_tensor_ndim(t->value) == 4 && qg_tensor_dim(t->value, 0) == 1 &&
              qg_tensor_dim(t->value, 1) == 32 && qg_tensor_dim(t->value, 2) == 1 &&
              qg_tensor_dim(t->value, 3) == 1, "threshold is [1,32,1,1]");
    cr_expect_eq(t->kind, QG_PARAM_GATE);
    cr_expect_eq(qg__model_find_param(m, "layer2.0.conv1.mask")->kind, QG_PARAM_BUFFER);
    /* Trainable parameters: ResNet-20's 269,722 (for 3 input channels; 1
     * here: 269,434) plus one threshold per CG output channel. */
    cr_expect_eq(qg__model_param_count(m), 269434 + 3 * 16 + 3 * 32 + 3 * 64);
    /* layer2.0.conv1 (16 -> 32, p 4): block j of 8 outputs sees inputs
     * 4j..4j+3. */
    float *mk = qg_test_read(qg__model_find_param(m, "layer2.0.conv1.mask")->value);
    for (int c = 0; c < 16; c++)
        cr_expect_eq(mk[((9 * 16) + c) * 9 + 4], c >= 4 && c < 8 ? 1.0f : 0.0f,
                     "output 9 (block 1) and input %d", c);
    free(mk);
    one_step(m, 4, 9);
    qg__model_free(m);
}

Test(cgconv, resnet20_postact_gates_both_convs)
{
    qg_model *m = cg_resnet(1, 2, 1, 1);
    cr_expect_eq(count_nodes(m, "cgconv2d"), 18);
    cr_expect_eq(count_nodes(m, "conv2d"), 1, "only the stem is a plain conv");
    cr_expect_not_null(qg__model_find_param(m, "layer3.1.conv2.threshold"));
    /* Post-activation: every block ends with its residual add (no ReLU
     * after it), and each bn2 is followed by a ReLU (BN and ReLU run as
     * one fused node, like the stem's and every bn1's). */
    int adds_last = 0, relus = count_nodes(m, "batchnorm2d+act");
    cr_expect_eq(count_nodes(m, "relu"), 0);
    for (int i = 0; i + 1 < m->nnodes; i++)
        if (strcmp(m->nodes[i].ops->type, "residual") == 0)
            adds_last += strcmp(m->nodes[i + 1].ops->type, "relu") != 0 &&
                         strcmp(m->nodes[i + 1].ops->type, "batchnorm2d+act") != 0;
    cr_expect_eq(adds_last, 9);
    cr_expect_eq(relus, 1 + 2 * 9);
    one_step(m, 2, 18);
    qg__model_free(m);
}

/* Forward (train and eval) and backward of a model on one batch: the
 * logits, every parameter's gradient, the gate counts of both passes. */
typedef struct step_out {
    float *logits, *grads, *eval_logits;
    size_t nl, ng;
    long long on, on_eval;
} step_out;

static step_out run_step(qg_model *m, int dense_gates)
{
    enum { B = 8 };
    step_out o = {0};
    m->dense_gates = dense_gates;
    QG_EXPECT_OK(qg__model_setup(m, B));
    size_t nx = qg_tensor_numel(qg__model_input(m));
    float *x = malloc(nx * sizeof *x);
    qg_test_fill(x, nx, -1, 2, 3);
    QG_EXPECT_OK(qg_tensor_write(qg__model_input(m), x, nx * sizeof *x));
    free(x);
    QG_EXPECT_OK(qg__model_gate_reset(m));
    QG_EXPECT_OK(qg__model_forward(m, 1));
    o.logits = qg_test_read(qg__model_logits(m));
    o.nl = qg_tensor_numel(qg__model_logits(m));
    long long total;
    QG_EXPECT_OK(qg__model_gate_stats(m, &total, &o.on, NULL, NULL, NULL, NULL));
    float *dl = malloc(o.nl * sizeof *dl);
    qg_test_fill(dl, o.nl, -1, 1, 4);
    QG_EXPECT_OK(qg_tensor_write(qg__model_logits_grad(m), dl, o.nl * sizeof *dl));
    free(dl);
    QG_EXPECT_OK(qg__model_backward(m));
    for (int i = 0; i < m->nparams; i++)
        if (m->params[i]->grad)
            o.ng += qg_tensor_numel(m->params[i]->grad);
    o.grads = malloc(o.ng * sizeof *o.grads);
    for (int i = 0, at = 0; i < m->nparams; i++) {
        if (!m->params[i]->grad)
            continue;
        float *g = qg_test_read(m->params[i]->grad);
        size_t n = qg_tensor_numel(m->params[i]->grad);
        memcpy(o.grads + at, g, n * sizeof *g);
        at += (int)n;
        free(g);
    }
    QG_EXPECT_OK(qg__model_gate_reset(m));
    QG_EXPECT_OK(qg__model_forward(m, 0));
    o.eval_logits = qg_test_read(qg__model_logits(m));
    QG_EXPECT_OK(qg__model_gate_stats(m, &total, &o.on_eval, NULL, NULL, NULL, NULL));
    return o;
}

/* Skipping the conditional path gives the dense-gates model's outputs,
 * gradients and gate counts (ResNet-20 with CG at p = 4, sparse
 * back-prop: the training pass skips too). The tiles sum each output in
 * the dense direct kernel's order, the gather and both weight gradients
 * group the same products differently: 1e-5 + 1e-4 relative. */
static void skipping_equals_dense(long mode)
{
    qg_ctx *ctx = qg_test_ctx();
    long v[QG_MAX_TUNABLES];
    int nv = 0;
    QG_EXPECT_OK(qg__program_params(ctx, "conv_masked", v, &nv));
    v[QG_MASKED_MODE] = mode;
    QG_EXPECT_OK(qg__program_override(ctx, "conv_masked", v));
    qg__convm_pay_always(1);
    qg_model *a = cg_resnet(0, 4, 1, 0), *b = cg_resnet(0, 4, 1, 0);
    step_out d = run_step(a, 1), s = run_step(b, 0);
    qg__convm_pay_always(0);
    /* tiles computed since the eval pass's reset: none with dense gating;
     * with skipping, some of every CG layer's, and fewer than all of some */
    long long fewer = 0;
    for (int i = 0; i < a->nnodes; i++) {
        if (!a->nodes[i].ops->skip_tiles)
            continue;
        long long dc, dt, sc, stt;
        QG_EXPECT_OK(a->nodes[i].ops->skip_tiles(&a->nodes[i], a, &dc, &dt));
        QG_EXPECT_OK(b->nodes[i].ops->skip_tiles(&b->nodes[i], b, &sc, &stt));
        cr_expect(dc == 0 && dt == 0, "%s dense: %lld of %lld tiles", a->nodes[i].name, dc, dt);
        cr_expect(stt > 0 && sc > 0 && sc <= stt, "%s: %lld of %lld tiles", b->nodes[i].name,
                  sc, stt);
        fewer += sc < stt;
    }
    cr_expect(fewer > 0, "no layer skipped a tile");
    cr_expect_eq(d.on, s.on, "gated on: dense %lld, skipping %lld", d.on, s.on);
    cr_expect_eq(d.on_eval, s.on_eval, "eval gated on: dense %lld, skipping %lld", d.on_eval,
                 s.on_eval);
    cr_expect(d.on > 0 && d.on_eval > 0, "the gates must open");
    cr_expect(qg_test_allclose("logits", s.logits, d.logits, d.nl, 1e-5f, 1e-4f));
    cr_expect(qg_test_allclose("eval logits", s.eval_logits, d.eval_logits, d.nl, 1e-5f, 1e-4f));
    cr_assert_eq(s.ng, d.ng);
    cr_expect(qg_test_allclose("gradients", s.grads, d.grads, d.ng, 1e-5f, 1e-4f));
    step_out *os[2] = {&d, &s};
    for (int i = 0; i < 2; i++) {
        free(os[i]->logits);
        free(os[i]->grads);
        free(os[i]->eval_logits);
    }
    qg__model_free(a);
    qg__model_free(b);
    QG_EXPECT_OK(qg__program_override(ctx, "conv_masked", NULL));
}

/* in the default forms (tiles on the wide maps, the gather on the narrow),
 * all in tiles, all in the per-output gather */
Test(cgconv, resnet20_skipping_equals_dense_gates) { skipping_equals_dense(2); }
Test(cgconv, resnet20_skipping_equals_dense_gates_tiles) { skipping_equals_dense(0); }
Test(cgconv, resnet20_skipping_equals_dense_gates_gather) { skipping_equals_dense(1); }

/* The measured rule: a 16x16 layer takes the skipping path, measures the
 * tiles its first forward computed, and with about half its outputs on
 * (thresholds at 0) nearly all tiles hold one; with 16 partitions the
 * skipped zero weights are a sixteenth of a tile's work, so skipping does
 * not pay and it holds the dense path for the next forwards, with the
 * same outputs. (At 4 partitions the zero quarter alone pays for it.) */
Test(cgconv, dense_path_held_where_the_tiles_are_full)
{
    qg_ctx *ctx = qg_test_ctx();
    qg_cg_cfg cfg = {.partitions = 16, .group = 0, .spbp = 1, .alpha = 2.0f};
    qg_model *m;
    QG_EXPECT_OK(qg__model_new(ctx, "cgconv", 16, 16, 16, 16, &m));
    qg_rng rng = {1};
    cr_assert_geq(qg__node_cgconv(m, "conv", 0, 16, 3, 1, 1, &cfg, &rng), 0, "%s",
                  qg_last_error());
    QG_EXPECT_OK(qg__model_setup(m, 4));
    size_t nx = qg_tensor_numel(qg__model_input(m));
    float *x = malloc(nx * sizeof *x);
    qg_test_fill(x, nx, -1, 1, 9);
    QG_EXPECT_OK(qg_tensor_write(qg__model_input(m), x, nx * sizeof *x));
    free(x);
    qg_node *n = NULL;
    for (int i = 0; i < m->nnodes; i++)
        if (m->nodes[i].ops->skip_tiles)
            n = &m->nodes[i];
    cr_assert_not_null(n);
    long long done1, all1, done2, all2;
    QG_EXPECT_OK(qg__model_gate_reset(m));
    QG_EXPECT_OK(qg__model_forward(m, 0));
    float *y1 = qg_test_read(qg__model_logits(m));
    QG_EXPECT_OK(n->ops->skip_tiles(n, m, &done1, &all1));
    cr_expect(all1 > 0 && done1 > QG_CONVM_MAX_TILES * all1, "first forward: %lld of %lld",
              done1, all1);
    QG_EXPECT_OK(qg__model_forward(m, 0));
    float *y2 = qg_test_read(qg__model_logits(m));
    QG_EXPECT_OK(n->ops->skip_tiles(n, m, &done2, &all2));
    cr_expect(done2 == done1 && all2 == all1, "the second forward skipped: %lld of %lld",
              done2, all2);
    cr_expect(qg_test_allclose("held dense", y2, y1, qg_tensor_numel(qg__model_logits(m)),
                               1e-5f, 1e-5f));
    free(y1);
    free(y2);
    qg__model_free(m);
}

Test(cgconv, nonsense_configurations_are_refused)
{
    qg_ctx *ctx = qg_test_ctx();
    qg_model *m = NULL;
    qg_method_cfg mc;
    /* partitions that do not divide the ResNet's channels */
    cr_expect_eq(qg_test_methods_try("cg partitions=3 cg_group", &mc), QG_ERR_INVALID_ARG,
                 "3 partitions of 16 channels");
    cr_expect_neq(strstr(qg_last_error(), "must divide"), NULL, "%s", qg_last_error());
    qg_resnet_opts o = {.depth = 20, .shortcut = 'A', .in_c = 1, .in_h = 8, .in_w = 8,
                        .classes = 10, .methods = &mc};
    /* the builder refuses it too (a configuration made without the check) */
    qg__method_cfg_init(&mc);
    QG_EXPECT_OK(qg_method_cfg_enable(&mc, "cg", 1));
    QG_EXPECT_OK(qg_method_cfg_set(&mc, "partitions", "3"));
    cr_expect_eq(qg__model_resnet_cifar(ctx, &o, &m), QG_ERR_INVALID_ARG);
    cr_expect_null(m);
    cr_expect_eq(qg_test_methods_try("cg pg pred_bits=2", &mc), QG_ERR_INVALID_ARG);
    cr_expect_eq(qg_test_methods_try("postact", &mc), QG_ERR_INVALID_ARG);
    cr_expect_neq(strstr(qg_last_error(), "--postact only applies with --cg"), NULL, "%s",
                  qg_last_error());
    cr_expect_eq(qg_test_methods_try("cg alpha=0", &mc), QG_ERR_INVALID_ARG);
    cr_expect_eq(qg_test_methods_try("cg wbits=4", &mc), QG_ERR_INVALID_ARG);
}

/* ---- training, checkpoint, eval ---- */

static void tiny_cg_cfg(qg_train_cfg *c)
{
    qg_test_tiny_train_cfg(c);
    c->methods = qg_test_methods("cg partitions=4 cg_group spbp gtar=1");
}

/* The value of "key": in a metrics line (-1 when absent). */
static double json_field(const char *line, const char *key)
{
    char k[96];
    snprintf(k, sizeof k, "\"%s\": ", key);
    const char *p = strstr(line, k);
    return p ? atof(p + strlen(k)) : -1;
}

Test(cgconv, train_checkpoint_eval_and_metrics)
{
    qg_train_cfg c;
    tiny_cg_cfg(&c);
    char *ckpt = qg_test_tmp_path("cg", "cg.safetensors");
    char *metrics = qg_test_tmp_path("cg", "cg.jsonl");
    c.checkpoint_path = ckpt;
    c.metrics_path = metrics;
    QG_EXPECT_OK(qg_train_run(&c));

    FILE *f = fopen(metrics, "r");
    cr_assert_not_null(f);
    static char line[8192];
    int lines = 0;
    double acc = -1, spars = -1, red = -1;
    while (fgets(line, sizeof line, f)) {
        lines++;
        acc = json_field(line, "test_acc");
        spars = json_field(line, "sparsity");
        red = json_field(line, "flop_reduction");
        cr_expect(json_field(line, "train_sparsity") >= 0, "%s", line);
        cr_expect(json_field(line, "train_flop_reduction") >= 1, "%s", line);
        cr_expect_neq(strstr(line, "\"sparsity_layers\": {\"layer1.0.conv1\": "), NULL, "%s",
                      line);
        cr_expect_neq(strstr(line, "\"flop_reduction_layers\": {\"layer1.0.conv1\": "), NULL,
                      "%s", line);
        cr_expect_neq(strstr(line, "\"layer3.0.conv1\""), NULL, "%s", line);
    }
    fclose(f);
    cr_expect_eq(lines, 2);
    cr_expect(spars > 0 && spars < 1, "sparsity %f", spars);
    /* The model-level reduction lies between none and the CG layers' best
     * case (base path only, 1/4 of their MACs, the rest at full cost). */
    cr_expect(red > 1 && red < 4, "flop_reduction %f", red);

    /* The checkpoint has the reference's names and no optimizer state for
     * the mask buffer; eval rebuilds the CG model from its metadata and
     * reproduces the last epoch's test accuracy. */
    qg_st_file *st;
    QG_EXPECT_OK(qg__safetensors_read(ckpt, &st));
    const char *names[] = {"layer1.0.conv1.weight", "layer1.0.conv1.mask",
                           "layer1.0.conv1.threshold", "layer1.0.conv1.bn.running_mean",
                           "layer1.0.conv1.bn.running_var",
                           "optimizer.layer1.0.conv1.threshold.state0"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        cr_expect_not_null(qg__safetensors_get(st, names[i]), "missing %s", names[i]);
    cr_expect_null(qg__safetensors_get(st, "optimizer.layer1.0.conv1.mask.state0"));
    cr_expect_str_eq(qg__safetensors_meta(st, "cg"), "1");
    cr_expect_str_eq(qg__safetensors_meta(st, "partitions"), "4");
    qg__safetensors_free(st);
    tiny_cg_cfg(&c);
    c.methods = NULL; /* eval must take the method from the checkpoint */
    c.data = NULL;
    qg_eval_result er;
    QG_EXPECT_OK(qg_eval_run(&c, ckpt, &er));
    double eacc = er.acc;
    qg_eval_result_free(&er);
    cr_expect_float_eq(eacc, acc, 1e-6, "eval %f vs training's %f", eacc, acc);
    cr_expect_gt(eacc, 0.2, "accuracy %f: the CG model did not learn", eacc);

    /* Resuming with other method flags is refused, not half-loaded. */
    tiny_cg_cfg(&c);
    c.methods = NULL;
    c.resume_path = ckpt;
    cr_expect_eq(qg_train_run(&c), QG_ERR_INVALID_ARG);
    cr_expect_neq(strstr(qg_last_error(), "cg pt4"), NULL, "%s", qg_last_error());
    tiny_cg_cfg(&c);
    c.methods = qg_test_methods("cg partitions=2 cg_group spbp gtar=1");
    c.resume_path = ckpt;
    cr_expect_eq(qg_train_run(&c), QG_ERR_INVALID_ARG);
    cr_expect_neq(strstr(qg_last_error(), "pt2"), NULL, "%s", qg_last_error());
    unlink(ckpt);
    unlink(metrics);
}
