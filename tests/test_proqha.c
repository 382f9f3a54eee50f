/* tests/test_proqha.c: ProQHA (docs/methods.md §8): the candidate score
 * kernel against its closed form (oracle PQ-S1 = spec T8.15) and its C
 * reference, the per-quantizer bit widths (slots, checkpoint round trip),
 * the two cost formulas on a tiny model (oracle PQ-C1 = T8.14), the
 * DoReFa weight quantizer and PACT quantizer node inside a model against
 * the C references, the pre-activation ResNet-20's quantizers, and a
 * deterministic search on a tiny model. The quantizer kernels' own oracles
 * (values, gradients, the 0.5 gradients at x = 0 and x = alpha) are in
 * tests/test_quant.c (oracle_t8_8_pact_quant, oracle_t8_9_dorefa). */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/support.h"
#include "method/method.h"
#include "model/graph.h"
#include "model/nodes.h"
#include "model/nodes_pq.h"
#include "model/qbits.h"
#include "quant/quant.h"
#include "ref/ref_quant.h"
#include "tensor/tensor_impl.h"
#include "train/search.h"
#include "train/trainer.h"

/* lr^2 (1-b2) g^2 / (sqrt(1-b2)|g| + eps), in double */
static double closed_form(double g, double lr, double b2, double eps)
{
    return lr * lr * (1 - b2) * g * g / (sqrt(1 - b2) * fabs(g) + eps);
}

static double device_score(qg_ctx *ctx, const float *g, size_t n, float scale, int with_ws)
{
    int64_t sh[1] = {(int64_t)n}, one[1] = {1}, wsn[1] = {QG_QUANT_WS_NUMEL};
    qg_tensor *t = qg_test_tensor(ctx, 1, sh, g);
    float zero = 0;
    qg_tensor *s = qg_test_tensor(ctx, 1, one, &zero);
    qg_tensor *ws = NULL;
    if (with_ws)
        cr_assert_eq(qg_tensor_new(ctx, 1, wsn, QG_DTYPE_F32, "ws", &ws), QG_OK);
    cr_assert_eq(qg__pq_score(ctx, t, scale, 1e-3f, 0.9f, 0.999f, 1e-7f, s, ws), QG_OK, "%s",
                 qg_last_error());
    float v;
    cr_assert_eq(qg_tensor_read(s, &v, sizeof v), QG_OK);
    qg_tensor_free(t);
    qg_tensor_free(s);
    qg_tensor_free(ws);
    return v;
}

Test(proqha, score_oracle_t8_15)
{
    qg_ctx *ctx = qg_test_ctx();
    const float g[1] = {0.01f};
    double want = closed_form(0.01, 1e-3, 0.999, 1e-7);
    cr_expect(fabs(want - 3.1613e-10) < 1e-14, "closed form %.6g", want);
    double r = qg_ref_pq_score(1, g, 1.0f, 1e-3f, 0.9f, 0.999f, 1e-7f);
    cr_expect(fabs(r - want) <= 1e-5 * want, "ref %.9g vs closed form %.9g", r, want);
    double d = device_score(ctx, g, 1, 1.0f, 0);
    cr_expect(fabs(d - want) <= 1e-5 * want, "device %.9g vs closed form %.9g", d, want);
    /* the clip scale multiplies g first: g = 0.02 * 0.5 is the same element */
    const float g2[1] = {0.02f};
    d = device_score(ctx, g2, 1, 0.5f, 0);
    cr_expect(fabs(d - want) <= 1e-5 * want, "scaled %.9g vs %.9g", d, want);
}

Test(proqha, score_many_elements)
{
    qg_ctx *ctx = qg_test_ctx();
    enum { N = 5000 };
    float *g = malloc(N * sizeof *g);
    qg_test_fill(g, N, -0.05f, 0.05f, 21);
    g[7] = 0.0f; /* a zero gradient adds nothing */
    double want = 0, l1 = 0;
    for (int i = 0; i < N; i++) {
        want += closed_form(g[i] * 0.7f, 1e-3, 0.999, 1e-7);
        l1 += fabs(g[i] * 0.7f);
    }
    double r = qg_ref_pq_score(N, g, 0.7f, 1e-3f, 0.9f, 0.999f, 1e-7f);
    cr_expect(fabs(r - want) <= 1e-5 * want, "ref %.9g vs closed form %.9g", r, want);
    for (int ws = 0; ws < 2; ws++) {
        double d = device_score(ctx, g, N, 0.7f, ws);
        cr_expect(fabs(d - want) <= 1e-5 * want, "device (ws %d) %.9g vs %.9g", ws, d, want);
    }
    /* about lr^2 sqrt(1-b2) ||g||_1 when |g| >> eps/sqrt(1-b2) */
    double approx = 1e-6 * sqrt(0.001) * l1;
    cr_expect(fabs(want - approx) <= 0.01 * approx, "%.6g vs approx %.6g", want, approx);
    free(g);
}

/* A tiny model: input 100x2x2 -> 1x1 conv A (10 outputs, 1000 weights) ->
 * PACT quantizer -> 1x1 conv B (300 outputs, 3000 weights) -> GAP. */
static qg_model *tiny(qg_ctx *ctx, int wa, int wb, int abits)
{
    qg_model *m;
    qg_rng rng = {7};
    cr_assert_eq(qg__model_new(ctx, "tiny", 100, 2, 2, 300, &m), QG_OK);
    int x = qg__node_conv_wq(m, "a", 0, 10, 1, 1, 0, 1, 0, &qg__wquant_dorefa, &wa, &rng);
    cr_assert(x >= 0, "%s", qg_last_error());
    x = qg__node_pact_quant(m, "act", x, abits);
    cr_assert(x >= 0, "%s", qg_last_error());
    x = qg__node_conv_wq(m, "b", x, 300, 1, 1, 0, 1, 0, &qg__wquant_dorefa, &wb, &rng);
    cr_assert(x >= 0, "%s", qg_last_error());
    x = qg__node_gap(m, "gap", x);
    cr_assert(x >= 0, "%s", qg_last_error());
    return m;
}

Test(proqha, cost_oracle_t8_14)
{
    qg_ctx *ctx = qg_test_ctx();
    qg_model *m = tiny(ctx, 4, 2, 3);
    cr_assert_eq(qg__qbits_count(m), 3);
    cr_expect_str_eq(qg__qbits_at(m, 0)->name, "a");
    cr_expect_eq(qg__qbits_at(m, 0)->numel, 1000);
    cr_expect_eq(qg__qbits_at(m, 1)->kind, QG_QB_ACT);
    cr_expect_eq(qg__qbits_at(m, 2)->numel, 3000);
    cr_expect_eq(qg__qbits_input_slot(m, 0), -1, "conv a reads the float input");
    cr_expect_eq(qg__qbits_input_slot(m, 2), 1, "conv b reads the PACT output");
    double w, b;
    cr_assert_eq(qg__qbits_cost(m, NULL, &w, &b), QG_OK, "%s", qg_last_error());
    cr_expect(fabs(w - 0.078125) < 1e-12, "weight memory %.9g", w);
    /* MACs per sample: a 10*4*100 = 4000 (k_a 32), b 300*4*10 = 12000 (k_a 3) */
    double bw = (4.0 * 32 * 4000 + 2.0 * 3 * 12000) / (1024.0 * 16000);
    cr_expect(fabs(b - bw) < 1e-12, "bitops %.9g vs %.9g", b, bw);
    /* explicit bits, and uniform 5-bit weights: 5/32 */
    int bits[3] = {5, 8, 5};
    cr_assert_eq(qg__qbits_cost(m, bits, &w, &b), QG_OK);
    cr_expect(fabs(w - 0.15625) < 1e-12, "W5 %.9g", w);
    cr_expect(fabs(b - (5.0 * 32 * 4000 + 5.0 * 8 * 12000) / (1024.0 * 16000)) < 1e-12);
    /* float everywhere: cost 1 */
    cr_assert_eq(qg__qbits_set_all(m, -1, 32), QG_OK);
    cr_assert_eq(qg__qbits_cost(m, NULL, &w, &b), QG_OK);
    cr_expect(w == 1.0 && b == 1.0, "float %g %g", w, b);
    cr_expect_neq(qg__qbits_set(m, 0, 17), QG_OK, "17 bits is refused");
    cr_expect_neq(qg__qbits_set(m, 0, 0), QG_OK, "0 bits is refused");
    qg__model_free(m);
}

/* The DoReFa weights and PACT quantizer inside a model match the C
 * references, and change at once when a slot's bits change. */
Test(proqha, model_forward_matches_references)
{
    qg_ctx *ctx = qg_test_ctx();
    qg_model *m = tiny(ctx, 3, 2, 2);
    cr_assert_eq(qg__model_setup(m, 1), QG_OK, "%s", qg_last_error());
    float x[400];
    qg_test_fill(x, 400, -1, 1, 3);
    cr_assert_eq(qg_tensor_write(qg__model_input(m), x, sizeof x), QG_OK);
    m->active = 1;
    for (int round = 0; round < 2; round++) {
        if (round == 1) {
            cr_assert_eq(qg__qbits_set(m, 0, 32), QG_OK); /* conv a float */
            cr_assert_eq(qg__qbits_set(m, 1, 4), QG_OK);
        }
        cr_assert_eq(qg__model_forward(m, 1), QG_OK, "%s", qg_last_error());
        /* conv a on the host */
        qg_param *wa = qg__model_find_param(m, "a.weight"), *al = qg__model_find_param(m, "act.alpha");
        cr_assert(wa && al);
        float w[1000], wq[1000], aux, alpha, h[40], hq[40];
        cr_assert_eq(qg_tensor_read(wa->value, w, sizeof w), QG_OK);
        cr_assert_eq(qg_tensor_read(al->value, &alpha, sizeof alpha), QG_OK);
        cr_expect_eq(alpha, 10.0f, "alpha starts at 10");
        int ka = qg__qbits_get(m, 0);
        if (ka == 32)
            memcpy(wq, w, sizeof w);
        else
            qg_ref_dorefa_fwd(1000, w, ka, &aux, wq);
        for (int o = 0; o < 10; o++)
            for (int p = 0; p < 4; p++) {
                double s = 0;
                for (int c = 0; c < 100; c++)
                    s += (double)wq[o * 100 + c] * x[c * 4 + p];
                h[o * 4 + p] = (float)s;
            }
        qg_ref_pact_quant_fwd(40, h, alpha, qg__qbits_get(m, 1), hq);
        float *got = qg_test_read(qg__act(m, m->nodes[1].out)->value);
        /* the conv sums in another order: compare before quantization
         * where a code could flip, so allow one quantization step */
        float step = alpha / (float)((1 << qg__qbits_get(m, 1)) - 1);
        cr_expect(qg_test_allclose("pact quant output", got, hq, 40, step * 1.001f, 0),
                  "round %d", round);
        int exact = 0;
        for (int i = 0; i < 40; i++)
            exact += got[i] == hq[i];
        cr_expect(exact >= 36, "round %d: %d of 40 codes equal", round, exact);
        free(got);
    }
    qg__model_free(m);
}

Test(proqha, bits_survive_checkpoint)
{
    qg_ctx *ctx = qg_test_ctx();
    qg_model *m = tiny(ctx, 4, 2, 3);
    cr_assert_eq(qg__qbits_set(m, 0, 6), QG_OK);
    cr_assert_eq(qg__qbits_set(m, 1, 32), QG_OK);
    const char *path = qg_test_tmp_path("proqha", "bits.st");
    cr_assert_eq(qg_model_save(m, path), QG_OK, "%s", qg_last_error());
    qg_model *m2 = tiny(ctx, 8, 8, 8);
    cr_assert_eq(qg_model_load(m2, path), QG_OK, "%s", qg_last_error());
    cr_expect_eq(qg__qbits_get(m2, 0), 6);
    cr_expect_eq(qg__qbits_get(m2, 1), 32);
    cr_expect_eq(qg__qbits_get(m2, 2), 2);
    remove(path);
    qg__model_free(m);
    qg__model_free(m2);
}

Test(proqha, resnet20_quantizers)
{
    qg_ctx *ctx = qg_test_ctx();
    qg_model *m;
    cr_assert_eq(qg__model_build(ctx, "resnet20", 'A', 1, 28, 28, 10, 1,
                                 qg_test_methods("proqha wbits=5 abits=4"), &m),
                 QG_OK, "%s", qg_last_error());
    cr_assert_eq(qg__qbits_count(m), 36);
    size_t wq = 0;
    int nw = 0;
    for (int i = 0; i < 36; i++) {
        const qg_qslot *s = qg__qbits_at(m, i);
        cr_expect_eq(s->bits, s->kind == QG_QB_WEIGHT ? 5 : 4, "%s", s->name);
        if (s->kind == QG_QB_WEIGHT) {
            wq += s->numel;
            nw++;
            cr_expect(qg__qbits_input_slot(m, i) >= 0, "%s has an activation quantizer",
                      s->name);
        }
    }
    cr_expect_eq(nw, 18);
    /* every block conv, not the stem (144) or the classifier (640) */
    cr_expect_eq(wq, 268048u - 144u - 640u);
    cr_expect_null(qg__model_find_param(m, "conv1.kbits"), "the stem stays float");
    double w, b;
    cr_assert_eq(qg__qbits_cost(m, NULL, &w, &b), QG_OK);
    cr_expect(fabs(w - 5.0 / 32) < 1e-12, "W5 cost %.9g", w);
    cr_expect(fabs(b - 20.0 / 1024) < 1e-12, "W5A4 bitops %.9g", b);
    qg__model_free(m);
    /* PACT, PG and CG do not combine with it */
    qg_method_cfg mc;
    cr_expect_neq(qg_test_methods_try("proqha pact", &mc), QG_OK);
}

/* A whole search on ResNet-8, twice with the same seed: the same choices,
 * scores and costs; the cost goes down; the checkpoints hold the bits. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "%s", path);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return strdup(buf);
}

/* A 1-epoch --proqha W4A4 ResNet-8 start checkpoint on `ntrain` images. */
static void train_start(const char *path, size_t ntrain, size_t ntest)
{
    qg_train_cfg tc;
    qg_test_tiny_train_cfg(&tc);
    tc.methods = qg_test_methods("proqha wbits=4 abits=4");
    tc.epochs = 1;
    tc.limit_train = ntrain;
    tc.limit_test = ntest;
    tc.optim.kind = QG_OPTIM_ADAM;
    tc.optim.lr = 1e-3f;
    tc.checkpoint_path = path;
    cr_assert_eq(qg_train_run(&tc), QG_OK, "%s", qg_last_error());
}

/* A search from `start` with 1-epoch fine-tuning (Adam 1e-3, clip 5). */
static void search_cfg(qg_search_cfg *c, const char *start, size_t ntrain, size_t ntest)
{
    qg__search_cfg_defaults(c);
    qg_test_tiny_train_cfg(&c->train);
    c->train.epochs = 1;
    c->train.limit_train = ntrain;
    c->train.limit_test = ntest;
    c->train.optim = (qg_optim_cfg){.kind = QG_OPTIM_ADAM, .lr = 1e-3f, .beta1 = 0.9f,
                                    .beta2 = 0.999f, .eps = 1e-7f, .clip_norm = 5.0f,
                                    .decay_kinds = QG_DECAY_ALL};
    c->init_path = start;
}

Test(proqha, search_deterministic, .timeout = 900)
{
    /* qg_test_tmp_path's buffers rotate: keep copies */
    char start[512], ckpt[512], mp[512];
    snprintf(start, sizeof start, "%s", qg_test_tmp_path("proqha", "start.st"));
    train_start(start, 96, 64);
    char *runs[2];
    for (int r = 0; r < 2; r++) {
        qg_search_cfg c;
        search_cfg(&c, start, 96, 64);
        c.train.sched.kind = QG_SCHED_COSINE;
        c.steps = 2;
        c.lambda = 3;
        c.cand_test = 64;
        c.budget = 0;
        char name[32];
        /* the same checkpoint name both times: the logs name it */
        snprintf(name, sizeof name, "run.st");
        snprintf(ckpt, sizeof ckpt, "%s", qg_test_tmp_path("proqha", name));
        c.checkpoint_path = ckpt;
        snprintf(name, sizeof name, "run%d.jsonl", r);
        snprintf(mp, sizeof mp, "%s", qg_test_tmp_path("proqha", name));
        remove(mp);
        c.metrics_path = mp;
        cr_assert_eq(qg__search_run(&c), QG_OK, "%s", qg_last_error());
        runs[r] = slurp(mp);
        remove(mp);
        /* the result checkpoint rebuilds with the step-2 bits */
        qg_ctx *ctx = qg_test_ctx();
        qg_model *m;
        cr_assert_eq(qg__model_build(ctx, "resnet8", 'A', 1, 28, 28, 10, 1,
                                     qg_test_methods("proqha"), &m), QG_OK);
        cr_assert_eq(qg_model_load(m, c.checkpoint_path), QG_OK, "%s", qg_last_error());
        int lowered = 0;
        for (int i = 0; i < qg__qbits_count(m); i++) {
            cr_expect(qg__qbits_get(m, i) >= 2 && qg__qbits_get(m, i) <= 4);
            lowered += qg__qbits_get(m, i) < 4;
        }
        /* 12 quantizers, 6 lowered per step (some twice) */
        cr_expect(lowered >= 6 && lowered <= 12, "%d lowered", lowered);
        qg__model_free(m);
        char sp[1024];
        qg__search_step_path(c.checkpoint_path, 1, sp, sizeof sp);
        FILE *f = fopen(sp, "rb");
        cr_expect(f != NULL, "step checkpoint %s", sp);
        if (f)
            fclose(f);
        remove(sp);
        qg__search_step_path(c.checkpoint_path, 2, sp, sizeof sp);
        remove(sp);
        remove(c.checkpoint_path);
    }
    /* the fine-tuning's test accuracy may differ in the last bits between
     * runs only if the device were nondeterministic; the whole log must match */
    cr_expect_str_eq(runs[0], runs[1]);
    /* 1 names line + 2 steps x (3 candidates + 1 step line) */
    int lines = 0;
    for (char *p = runs[0]; *p; p++)
        lines += *p == '\n';
    cr_expect_eq(lines, 9, "%s", runs[0]);
    cr_expect(strstr(runs[0], "\"step\": 2, \"kbits\"") != NULL, "%s", runs[0]);
    free(runs[0]);
    free(runs[1]);
    remove(start);
}

/* --lower weights: no candidate touches an activation quantizer, and
 * floor(ratio * weight slots) weight quantizers are lowered per candidate. */
Test(proqha, search_lowers_weights_only, .timeout = 600)
{
    char start[512], ckpt[512], mp[512];
    snprintf(start, sizeof start, "%s", qg_test_tmp_path("proqha", "wstart.st"));
    snprintf(ckpt, sizeof ckpt, "%s", qg_test_tmp_path("proqha", "wrun.st"));
    snprintf(mp, sizeof mp, "%s", qg_test_tmp_path("proqha", "wrun.jsonl"));
    train_start(start, 64, 32);
    qg_search_cfg c;
    search_cfg(&c, start, 64, 32);
    c.checkpoint_path = ckpt;
    remove(mp);
    c.metrics_path = mp;
    c.steps = 1;
    c.lambda = 3;
    c.cand_test = 0;
    c.weights_only = 1;
    cr_assert_eq(qg__search_run(&c), QG_OK, "%s", qg_last_error());

    qg_ctx *ctx = qg_test_ctx();
    qg_model *m;
    cr_assert_eq(qg__model_build(ctx, "resnet8", 'A', 1, 28, 28, 10, 1,
                                 qg_test_methods("proqha"), &m), QG_OK);
    cr_assert_eq(qg_model_load(m, ckpt), QG_OK, "%s", qg_last_error());
    int nq = qg__qbits_count(m), nw = 0, lowered = 0;
    for (int i = 0; i < nq; i++) {
        const qg_qslot *q = qg__qbits_at(m, i);
        if (q->kind == QG_QB_ACT) {
            cr_expect_eq(q->bits, 4, "activation quantizer %s lowered", q->name);
        } else {
            nw++;
            lowered += q->bits == 3;
            cr_expect(q->bits == 3 || q->bits == 4, "%s: %d bits", q->name, q->bits);
        }
    }
    cr_assert(nw > 0 && nw < nq, "%d weight quantizers of %d", nw, nq);
    cr_expect_eq(lowered, nw / 2, "%d of %d weight quantizers lowered", lowered, nw);
    /* every candidate line too: its activation entries stay at 4 */
    char *log = slurp(mp);
    int cands = 0;
    for (char *p = strstr(log, "\"kbits\": ["); p; p = strstr(p + 1, "\"kbits\": [")) {
        char *q = p + strlen("\"kbits\": [");
        for (int i = 0; i < nq; i++) {
            long b = strtol(q, &q, 10);
            if (qg__qbits_at(m, i)->kind == QG_QB_ACT)
                cr_expect_eq(b, 4, "line %d, quantizer %d", cands, i);
            while (*q == ',' || *q == ' ')
                q++;
        }
        cands++;
    }
    cr_expect_eq(cands, 4, "3 candidates and a step line, got %d kbits lists", cands);
    free(log);
    qg__model_free(m);
    char sp[1024];
    qg__search_step_path(ckpt, 1, sp, sizeof sp);
    remove(sp);
    remove(ckpt);
    remove(mp);
    remove(start);
}

Test(proqha, step_paths)
{
    char b[256];
    qg__search_step_path("out/s.st", 3, b, sizeof b);
    cr_expect_str_eq(b, "out/s.step3.st");
    qg__search_step_path("out.d/s", 1, b, sizeof b);
    cr_expect_str_eq(b, "out.d/s.step1");
}

/* ProQHA's ImageNet ResNet-18: 16 DoReFa block convs and 16 PACT
 * quantizers in the reference's order (weight, act, weight, act per
 * block); stem, downsample convs and FC float. Then --kbits by name and
 * prefix, later items winning, and its errors. */
Test(proqha, resnet18_quantizers_and_kbits)
{
    qg_ctx *ctx = qg_test_ctx();
    qg_model *m;
    cr_assert_eq(qg__model_build(ctx, "resnet18", 0, 3, 32, 32, 10, 1,
                                 qg_test_methods("proqha wbits=5 abits=4"), &m),
                 QG_OK, "%s", qg_last_error());
    cr_assert_eq(qg__qbits_count(m), 32);
    static const char *first[4] = {"layer1.0.conv1", "layer1.0.act1", "layer1.0.conv2",
                                   "layer1.0.act2"};
    for (int i = 0; i < 4; i++) {
        const qg_qslot *s = qg__qbits_at(m, i);
        cr_expect_str_eq(s->name, first[i]);
        cr_expect_eq(s->kind, i % 2 ? QG_QB_ACT : QG_QB_WEIGHT, "%s", s->name);
    }
    size_t wq = 0;
    for (int i = 0; i < 32; i++)
        if (qg__qbits_at(m, i)->kind == QG_QB_WEIGHT)
            wq += qg__qbits_at(m, i)->numel;
    /* the 3x3 block convs of stages 64/128/256/512, first convs of stages
     * 2-4 from the previous width: no stem, downsample or fc weights */
    cr_expect_eq(wq, 147456u + 516096u + 2064384u + 8257536u);
    cr_expect_null(qg__model_find_param(m, "conv1.kbits"), "the stem stays float");
    cr_expect_null(qg__model_find_param(m, "layer2.0.downsample.0.kbits"));
    cr_expect_null(qg__model_find_param(m, "fc.kbits"));
    /* layer1.0.conv1 reads the float max-pool output, conv2 act1 */
    cr_expect_eq(qg__qbits_input_slot(m, 0), -1);
    cr_expect_eq(qg__qbits_input_slot(m, 2), 1);

    int n = -1;
    cr_assert_eq(qg__qbits_apply_spec(m, "layer1.*=3,layer1.0.act1=6", &n), QG_OK, "%s",
                 qg_last_error());
    cr_expect_eq(n, 9, "8 slots under layer1 and one again");
    cr_expect_eq(qg__qbits_get(m, 0), 3);
    cr_expect_eq(qg__qbits_get(m, 1), 6);
    cr_expect_eq(qg__qbits_get(m, 7), 3);
    cr_expect_eq(qg__qbits_get(m, 8), 5, "layer2 untouched");
    float kb = 0;
    cr_assert_eq(qg_tensor_read(qg__model_find_param(m, "layer1.0.act1.kbits")->value, &kb,
                                sizeof kb), QG_OK);
    cr_expect_eq(kb, 6.0f, "the checkpointed buffer follows");
    /* the log line of a run after --kbits: the spans and both costs */
    char sum[192], want[192];
    double w, b;
    cr_assert_eq(qg__qbits_summary(m, sum, sizeof sum), QG_OK);
    cr_assert_eq(qg__qbits_cost(m, NULL, &w, &b), QG_OK);
    snprintf(want, sizeof want, "weights 3-5 bits, activations 3-6 bits; weight memory %.6f, "
             "bit operations %.6f", w, b);
    cr_expect_str_eq(sum, want);
    cr_expect(w > 3.0 / 32 && w < 5.0 / 32, "weight memory %g", w);
    static const char *bad[] = {"nosuch=4", "layer1.0.conv1=17", "=4", "layer1.0.conv1",
                                "layer1.0.conv1=4x", "layer9.*=4", ",", "layer1.0.conv1=0"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_expect_neq(qg__qbits_apply_spec(m, bad[i], NULL), QG_OK, "'%s' accepted", bad[i]);
    qg__model_free(m);
    /* no slots: a float model refuses --kbits */
    cr_assert_eq(qg__model_build(ctx, "resnet20", 'A', 1, 28, 28, 10, 1, NULL, &m), QG_OK);
    cr_expect_neq(qg__qbits_apply_spec(m, "conv1=4", NULL), QG_OK);
    strcpy(sum, "x");
    cr_expect_eq(qg__qbits_summary(m, sum, sizeof sum), QG_OK);
    cr_expect_str_eq(sum, "", "a model without quantizer slots has no summary");
    qg__model_free(m);
    /* and ShuffleNet is not one of ProQHA's networks */
    cr_expect_neq(qg__model_build(ctx, "shufflenet_v2_x0_5", 0, 3, 32, 32, 10, 1,
                                  qg_test_methods("proqha"), &m), QG_OK);
}
