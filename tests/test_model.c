/* tests/test_model.c: the ResNet builder, whole-model gradients against
 * finite differences of the device forward pass, optimizer schedules,
 * and end-to-end training, checkpoint, resume and eval on a slice of
 * Fashion-MNIST. */
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support/support.h"
#include "cl/ctx.h"
#include "model/nodes.h"
#include "model/resnet.h"
#include "model/safetensors.h"
#include "ops/layers.h"
#include "train/optim.h"
#include "tensor/tensor_impl.h"
#include "train/trainer.h"

TestSuite(model, .fini = qg_test_ctx_free);

Test(model, resnet20_has_pytorch_names_and_counts)
{
    qg_ctx *ctx = qg_test_ctx();
    qg_model *m;
    qg_resnet_opts o = {.depth = 20, .shortcut = 'A', .in_c = 3, .in_h = 32, .in_w = 32,
                        .classes = 10, .seed = 1};
    QG_EXPECT_OK(qg__model_resnet_cifar(ctx, &o, &m));
    /* Counts from the PyTorch model (Idelbayev's resnet20): 269,722
     * trainable parameters, 97 state-dict entries without
     * num_batches_tracked. */
    cr_expect_eq(qg__model_param_count(m), 269722);
    cr_expect_eq(m->nparams, 97);
    cr_expect_str_eq(m->params[0]->name, "conv1.weight");
    cr_expect_not_null(qg__model_find_param(m, "bn1.running_var"));
    cr_expect_not_null(qg__model_find_param(m, "layer1.0.conv1.weight"));
    cr_expect_not_null(qg__model_find_param(m, "layer3.2.bn2.bias"));
    cr_expect_not_null(qg__model_find_param(m, "linear.weight"));
    cr_expect_null(qg__model_find_param(m, "layer2.0.shortcut.0.weight"));
    /* 40.55 M multiply-adds per image (the speed issue's count), and the
     * same for the quantized and PG graphs, whose convs are other nodes. */
    for (int v = 0; v < 3; v++) {
        if (v) {
            qg__model_free(m);
            o.methods = qg_test_methods(v == 1 ? "pact wbits=8 abits=3"
                                               : "pg pact wbits=8 abits=3 pred_bits=2");
            QG_EXPECT_OK(qg__model_resnet_cifar(ctx, &o, &m));
        }
        double macs = 0;
        for (int i = 0; i < m->nnodes; i++)
            macs += qg__node_macs(m, &m->nodes[i]);
        cr_expect(fabs(macs - 40.55e6) < 0.01e6, "variant %d: %.0f MACs/image", v, macs);
    }
    qg__model_free(m);

    o.shortcut = 'B';
    QG_EXPECT_OK(qg__model_resnet_cifar(ctx, &o, &m));
    cr_expect_not_null(qg__model_find_param(m, "layer2.0.shortcut.0.weight"));
    cr_expect_not_null(qg__model_find_param(m, "layer3.0.shortcut.1.running_mean"));
    qg__model_free(m);

    o.depth = 21;
    cr_expect_eq(qg__model_resnet_cifar(ctx, &o, &m), QG_ERR_INVALID_ARG);
}

static float device_loss(qg_ctx *ctx, qg_model *m, qg_tensor *labels, qg_tensor *ls,
                         qg_tensor *cor, qg_tensor *dlogits)
{
    QG_EXPECT_OK(qg__model_forward(m, 1));
    QG_EXPECT_OK(qg__softmax_ce(ctx, qg__model_logits(m), labels, 1.0f / m->batch, ls, cor,
                                dlogits));
    float l;
    QG_EXPECT_OK(qg_tensor_read(ls, &l, sizeof l));
    return l / m->batch;
}

/* Backward of the whole graph (conv, BN in train mode, ReLU, option A
 * and B shortcuts, pooling, linear) against central differences of the
 * device forward pass (float32, so the tolerance is loose:
 * |fd - g| <= 1e-3 + 3e-2 |g|). */
static void gradcheck(char shortcut)
{
    qg_ctx *ctx = qg_test_ctx();
    qg_model *m;
    qg_resnet_opts o = {.depth = 8, .shortcut = shortcut, .in_c = 2, .in_h = 7, .in_w = 5,
                        .classes = 4, .seed = 3};
    QG_EXPECT_OK(qg__model_resnet_cifar(ctx, &o, &m));
    QG_EXPECT_OK(qg__model_setup(m, 3));
    size_t nx = qg_tensor_numel(qg__model_input(m));
    float *x = malloc(nx * sizeof *x);
    qg_test_fill(x, nx, -1, 1, 11);
    QG_EXPECT_OK(qg_tensor_write(qg__model_input(m), x, nx * sizeof *x));
    int32_t lab[3] = {0, 3, 1};
    int64_t s3[1] = {3}, s1[1] = {1};
    qg_tensor *labels, *ls, *cor;
    QG_EXPECT_OK(qg_tensor_new(ctx, 1, s3, QG_DTYPE_I32, "labels", &labels));
    QG_EXPECT_OK(qg_tensor_write(labels, lab, sizeof lab));
    QG_EXPECT_OK(qg_tensor_new(ctx, 1, s1, QG_DTYPE_F32, "loss", &ls));
    QG_EXPECT_OK(qg_tensor_new(ctx, 1, s1, QG_DTYPE_I32, "correct", &cor));

    device_loss(ctx, m, labels, ls, cor, qg__model_logits_grad(m));
    QG_EXPECT_OK(qg__model_backward(m));

    const char *names[] = {"conv1.weight", "bn1.weight", "layer1.0.conv2.weight",
                           "layer2.0.bn1.bias", "layer3.0.conv1.weight", "linear.weight",
                           "linear.bias", shortcut == 'B' ? "layer2.0.shortcut.0.weight"
                                                          : "layer3.0.bn2.weight"};
    int bad = 0, checked = 0;
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        qg_param *p = qg__model_find_param(m, names[k]);
        cr_assert_not_null(p, "%s", names[k]);
        float *w = qg_test_read(p->value), *g = qg_test_read(p->grad);
        size_t n = qg_tensor_numel(p->value);
        for (int t = 0; t < 3; t++) {
            size_t i = (size_t)(t * 7919 + 13) % n;
            /* Tiny maps and a batch of 3 make the loss kinky (ReLU, BN over
             * a dozen values), so one step size can land on a kink: the
             * entry passes when a central difference at any of three step
             * sizes agrees. A wrong gradient disagrees at all of them. */
            float w0 = w[i];
            double fd = 0, best = INFINITY;
            static const float steps[3] = {4e-3f, 1e-3f, 2.5e-4f};
            for (int h = 0; h < 3; h++) {
                float eps = steps[h];
                w[i] = w0 + eps;
                QG_EXPECT_OK(qg_tensor_write(p->value, w, n * sizeof *w));
                float lp = device_loss(ctx, m, labels, ls, cor, NULL);
                w[i] = w0 - eps;
                QG_EXPECT_OK(qg_tensor_write(p->value, w, n * sizeof *w));
                float lm = device_loss(ctx, m, labels, ls, cor, NULL);
                double d = ((double)lp - lm) / (2 * eps);
                if (fabs(d - g[i]) < best) {
                    best = fabs(d - g[i]);
                    fd = d;
                }
            }
            w[i] = w0;
            QG_EXPECT_OK(qg_tensor_write(p->value, w, n * sizeof *w));
            checked++;
            if (fabs(fd - g[i]) > 1e-3 + 3e-2 * fabs(g[i])) {
                bad++;
                fprintf(stderr, "gradcheck %c %s[%zu]: analytic %.6g, finite difference %.6g\n",
                        shortcut, names[k], i, g[i], fd);
            }
        }
        free(w);
        free(g);
    }
    /* A ReLU kink inside the step can spoil a difference; allow two of 24. */
    cr_expect_leq(bad, 2, "%d of %d gradient entries disagree", bad, checked);
    free(x);
    qg_tensor_free(labels);
    qg_tensor_free(ls);
    qg_tensor_free(cor);
    qg__model_free(m);
}

/* The gradient plan (grad_plan.c), checked from the graph itself: two
 * gradients may overlap in the arena only if no node's backward can touch
 * both (a node touches the gradients of its inputs and its output; the
 * input's gradient is read after backward, the logits' written before
 * it). And the sharing must pay: ResNet-20's gradients in at most a
 * quarter of the floats one buffer each would take. */
static void node_range(const qg_model *m, int a, int *lo, int *hi)
{
    *lo = a == 0 ? -1 : m->nnodes;
    *hi = a == m->nacts - 1 ? m->nnodes : -1;
    for (int k = 0; k < m->nnodes; k++) {
        const qg_node *n = &m->nodes[k];
        if (n->out == a || n->in[0] == a || n->in[1] == a) {
            *lo = k < *lo ? k : *lo;
            *hi = k > *hi ? k : *hi;
        }
    }
}

Test(model, gradients_share_memory_only_when_never_live_together)
{
    qg_ctx *ctx = qg_test_ctx();
    for (int variant = 0; variant < 2; variant++) {
        qg_model *m;
        qg_resnet_opts o = {.depth = 20, .shortcut = variant ? 'B' : 'A', .in_c = 3,
                            .in_h = 32, .in_w = 32, .classes = 10, .seed = 1};
        QG_EXPECT_OK(qg__model_resnet_cifar(ctx, &o, &m));
        QG_EXPECT_OK(qg__model_setup(m, 2));
        size_t sum = 0, lo_off = SIZE_MAX, hi_end = 0;
        int clashes = 0;
        for (int i = 0; i < m->nacts; i++) {
            const qg_tensor *gi = m->acts[i].grad;
            size_t ni = qg_tensor_numel(gi);
            sum += ni;
            lo_off = gi->offset < lo_off ? gi->offset : lo_off;
            hi_end = gi->offset + ni > hi_end ? gi->offset + ni : hi_end;
            int ilo, ihi;
            node_range(m, i, &ilo, &ihi);
            for (int j = 0; j < i; j++) {
                const qg_tensor *gj = m->acts[j].grad;
                int jlo, jhi;
                node_range(m, j, &jlo, &jhi);
                int overlap = gi->offset < gj->offset + qg_tensor_numel(gj) &&
                              gj->offset < gi->offset + ni;
                if (overlap && ilo <= jhi && jlo <= ihi) {
                    clashes++;
                    cr_log_error("variant %c: gradients of activations %d and %d overlap "
                                 "but are both live at nodes %d..%d", o.shortcut, i, j,
                                 ilo > jlo ? ilo : jlo, ihi < jhi ? ihi : jhi);
                }
            }
        }
        cr_expect_eq(clashes, 0);
        cr_expect_leq((hi_end - lo_off) * 4, sum, "variant %c: gradients take %zu of %zu floats",
                      o.shortcut, hi_end - lo_off, sum);
        qg__model_free(m);
    }
}

Test(model, gradients_match_finite_differences_option_a) { gradcheck('A'); }
Test(model, gradients_match_finite_differences_option_b) { gradcheck('B'); }

/* Logits and every parameter gradient of a training step of the quantized
 * PACT ResNet (option-A shortcuts: the fused backward rewrites the padded
 * shortcut in place) with PACT fused into the batch norms, against the
 * graph with PACT as separate nodes. alpha = 0.8 clips about a fifth of
 * the activations, so the alpha gradients are far from 0. Every BN's
 * channel 0 has gamma = beta = 0, so its pre-activation is exactly 0 (or
 * the residual, often 0): there the fused graph's BN applies the quantized
 * reader's STE (y != 0) where it is that activation's only reader, and
 * must not where the shortcut reads it too. Same kernels and summation
 * order apart from the fusion: 1e-5 relative. */
Test(model, fused_pact_matches_separate_pact_nodes)
{
    qg_ctx *ctx = qg_test_ctx();
    qg_resnet_opts o = {.depth = 8, .shortcut = 'A', .in_c = 2, .in_h = 7, .in_w = 5,
                        .classes = 4, .seed = 5,
                        .methods = qg_test_methods("pact wbits=8 abits=4")};
    qg_model *ms[2];
    float *logits[2];
    int32_t lab[3] = {2, 0, 3};
    int64_t s3[1] = {3}, s1[1] = {1};
    qg_tensor *labels, *ls, *cor;
    QG_EXPECT_OK(qg_tensor_new(ctx, 1, s3, QG_DTYPE_I32, "labels", &labels));
    QG_EXPECT_OK(qg_tensor_write(labels, lab, sizeof lab));
    QG_EXPECT_OK(qg_tensor_new(ctx, 1, s1, QG_DTYPE_F32, "loss", &ls));
    QG_EXPECT_OK(qg_tensor_new(ctx, 1, s1, QG_DTYPE_I32, "correct", &cor));
    for (int k = 0; k < 2; k++) {
        o.pact_unfused = k;
        QG_EXPECT_OK(qg__model_resnet_cifar(ctx, &o, &ms[k]));
        QG_EXPECT_OK(qg__model_setup(ms[k], 3));
        qg_model *m = ms[k];
        for (int i = 0; i < m->nparams; i++) {
            qg_param *pa = m->params[i];
            if (pa->kind == QG_PARAM_CLIP)
                QG_EXPECT_OK(qg__param_init_const(pa, 0.8f));
            if (pa->kind == QG_PARAM_BN) {
                /* channel 0's gamma and beta 0: z = 0 (+ the residual) exactly */
                float *v = qg_test_read(pa->value);
                v[0] = 0.0f;
                QG_EXPECT_OK(qg_tensor_write(pa->value, v, qg_tensor_numel(pa->value) * 4));
                free(v);
            }
        }
        size_t nx = qg_tensor_numel(qg__model_input(m));
        float *x = malloc(nx * sizeof *x);
        qg_test_fill(x, nx, -1, 1, 21);
        QG_EXPECT_OK(qg_tensor_write(qg__model_input(m), x, nx * sizeof *x));
        free(x);
        device_loss(ctx, m, labels, ls, cor, qg__model_logits_grad(m));
        QG_EXPECT_OK(qg__model_backward(m));
        logits[k] = qg_test_read(qg__model_logits(m));
    }
    cr_expect_eq(ms[0]->nnodes + 4 * 2 - 1, ms[1]->nnodes, "a PACT node per activation");
    size_t nl = qg_tensor_numel(qg__model_logits(ms[0]));
    cr_expect(qg_test_allclose("logits", logits[0], logits[1], nl, 1e-6f, 1e-5f));
    cr_expect_eq(ms[0]->nparams, ms[1]->nparams);
    int alphas = 0;
    for (int i = 0; i < ms[0]->nparams && i < ms[1]->nparams; i++) {
        qg_param *a = ms[0]->params[i], *b = ms[1]->params[i];
        cr_assert_str_eq(a->name, b->name);
        if (!a->grad)
            continue;          /* running statistics */
        float *ga = qg_test_read(a->grad), *gb = qg_test_read(b->grad);
        size_t n = qg_tensor_numel(a->grad);
        cr_expect(qg_test_allclose(a->name, ga, gb, n, 1e-6f, 1e-5f), "grad %s", a->name);
        if (a->kind == QG_PARAM_CLIP) {
            alphas++;
            cr_expect(fabsf(gb[0]) > 1e-3f, "%s: dalpha %g is ~0, the check is empty",
                      a->name, gb[0]);
        }
        free(ga);
        free(gb);
    }
    cr_expect_eq(alphas, 4, "stem + 3 blocks have an alpha each");
    for (int k = 0; k < 2; k++) {
        free(logits[k]);
        qg__model_free(ms[k]);
    }
    qg_tensor_free(labels);
    qg_tensor_free(ls);
    qg_tensor_free(cor);
}

/* Eval forward with each conv+BN(+residual+ReLU) folded into one conv
 * equals the node-by-node eval forward, after a few training steps have
 * moved the BN statistics off their initial values. Option A and B,
 * 32x32 and odd 7x5 maps; |folded - unfolded| <= 1e-4 + 1e-4*|unfolded|. */
static void eval_fold_case(char shortcut, int h, int w, uint32_t seed)
{
    qg_ctx *ctx = qg_test_ctx();
    qg_model *m;
    qg_resnet_opts o = {.depth = 8, .shortcut = shortcut, .in_c = 3, .in_h = h, .in_w = w,
                        .classes = 5, .seed = seed};
    QG_EXPECT_OK(qg__model_resnet_cifar(ctx, &o, &m));
    QG_EXPECT_OK(qg__model_setup(m, 4));
    /* ResNet-8: the stem and both convs of 3 blocks (3x3) fold; option B's
     * 1x1 shortcut convs take the GEMM path and stay apart, and so do the
     * second convs of its two downsampling blocks, whose residual (the
     * shortcut's output) is computed after them. */
    int folds = shortcut == 'B' ? 5 : 7;
    cr_expect_eq(m->eval_folds, folds, "option %c: %d convs linked to their BN", shortcut,
                 m->eval_folds);
    size_t nx = qg_tensor_numel(qg__model_input(m));
    float *x = malloc(nx * sizeof *x);
    qg_test_fill(x, nx, -1, 1, seed);
    QG_EXPECT_OK(qg_tensor_write(qg__model_input(m), x, nx * sizeof *x));
    int32_t lab[4] = {0, 3, 1, 4};
    int64_t s4[1] = {4}, s1[1] = {1};
    qg_tensor *labels, *ls, *cor;
    QG_EXPECT_OK(qg_tensor_new(ctx, 1, s4, QG_DTYPE_I32, "labels", &labels));
    QG_EXPECT_OK(qg_tensor_write(labels, lab, sizeof lab));
    QG_EXPECT_OK(qg_tensor_new(ctx, 1, s1, QG_DTYPE_F32, "loss", &ls));
    QG_EXPECT_OK(qg_tensor_new(ctx, 1, s1, QG_DTYPE_I32, "correct", &cor));
    qg_optim_cfg oc = {.kind = QG_OPTIM_SGD, .lr = 0.05f, .momentum = 0.9f,
                       .weight_decay = 1e-4f, .decay_kinds = QG_DECAY_ALL};
    QG_EXPECT_OK(qg__optim_ensure_state(m, &oc));
    for (int step = 0; step < 3; step++) {
        device_loss(ctx, m, labels, ls, cor, qg__model_logits_grad(m));
        QG_EXPECT_OK(qg__model_backward(m));
        QG_EXPECT_OK(qg__optim_step(m, &oc, 0.05f, step + 1));
    }
    m->no_eval_fold = 1;
    QG_EXPECT_OK(qg__model_forward(m, 0));
    float *want = qg_test_read(qg__model_logits(m));
    m->no_eval_fold = 0;
    /* Poison the logits so a fold that skipped a layer cannot pass. */
    size_t nl = qg_tensor_numel(qg__model_logits(m));
    float *nan = malloc(nl * sizeof *nan);
    for (size_t i = 0; i < nl; i++)
        nan[i] = NAN;
    QG_EXPECT_OK(qg_tensor_write(qg__model_logits(m), nan, nl * sizeof *nan));
    QG_EXPECT_OK(qg__model_forward(m, 0));
    float *got = qg_test_read(qg__model_logits(m));
    char l[64];
    snprintf(l, sizeof l, "eval fold %c %dx%d", shortcut, h, w);
    cr_expect(qg_test_allclose(l, got, want, nl, 1e-4f, 1e-4f), "%s", l);
    /* The logits depend on the input: not a constant the fold produced. */
    double spread = 0;
    for (size_t i = 1; i < nl; i++)
        spread = fmax(spread, fabs(want[i] - want[0]));
    cr_expect_gt(spread, 1e-3, "%s: degenerate logits", l);
    /* Frozen parameters: the second batch of a pass reuses the first one's
     * folded, prepared weights; a training step ends the promise, and the
     * next frozen pass folds the new weights. Each is compared with the
     * node-by-node eval of the same input. */
    for (int round = 0; round < 3; round++) {
        if (round == 2) {
            device_loss(ctx, m, labels, ls, cor, qg__model_logits_grad(m));
            QG_EXPECT_OK(qg__model_backward(m));
            QG_EXPECT_OK(qg__optim_step(m, &oc, 0.05f, 4));
        }
        qg__model_freeze(m, 1);
        QG_EXPECT_OK(qg__model_forward(m, 0)); /* the pass's first batch */
        qg_test_fill(x, nx, -1, 1, seed + 100 + (uint32_t)round);
        QG_EXPECT_OK(qg_tensor_write(qg__model_input(m), x, nx * sizeof *x));
        QG_EXPECT_OK(qg__model_forward(m, 0));
        float *g2 = qg_test_read(qg__model_logits(m));
        qg__model_freeze(m, 0);
        m->no_eval_fold = 1;
        QG_EXPECT_OK(qg__model_forward(m, 0));
        float *w2 = qg_test_read(qg__model_logits(m));
        m->no_eval_fold = 0;
        snprintf(l, sizeof l, "frozen eval fold %c %dx%d round %d", shortcut, h, w, round);
        cr_expect(qg_test_allclose(l, g2, w2, nl, 1e-4f, 1e-4f), "%s", l);
        free(g2);
        free(w2);
    }
    free(x);
    free(want);
    free(got);
    free(nan);
    qg_tensor_free(labels);
    qg_tensor_free(ls);
    qg_tensor_free(cor);
    qg__model_free(m);
}

Test(model, eval_fold_matches_node_by_node_eval)
{
    eval_fold_case('A', 32, 32, 21);
    eval_fold_case('B', 32, 32, 22);
    eval_fold_case('A', 7, 5, 23);
}

Test(model, schedules_follow_pytorch)
{
    qg_schedule s = {.kind = QG_SCHED_MULTISTEP, .gamma = 0.1f, .epochs = 200};
    cr_assert(qg__schedule_parse_milestones(&s, "100,150"));
    cr_expect_float_eq(qg__schedule_lr(&s, 0.1f, 99, 0), 0.1f, 1e-9);
    cr_expect_float_eq(qg__schedule_lr(&s, 0.1f, 100, 0), 0.01f, 1e-9);
    cr_expect_float_eq(qg__schedule_lr(&s, 0.1f, 150, 0), 0.001f, 1e-9);
    cr_expect_not(qg__schedule_parse_milestones(&s, "10,x"));
    qg_schedule c = {.kind = QG_SCHED_COSINE, .epochs = 10};
    cr_expect_float_eq(qg__schedule_lr(&c, 0.1f, 0, 0), 0.1f, 1e-7);
    cr_expect_float_eq(qg__schedule_lr(&c, 0.1f, 5, 0), 0.05f, 1e-7);
    qg_schedule p = {.kind = QG_SCHED_POLY, .epochs = 2, .steps_per_epoch = 10, .power = 1,
                     .end_lr = 1e-5f};
    /* PG-TF: linear from 0.5 to 1e-5; halfway is the mean. */
    cr_expect_float_eq(qg__schedule_lr(&p, 0.5f, 1, 0), (0.5f + 1e-5f) / 2, 1e-6);
}

#define tiny_cfg qg_test_tiny_train_cfg

static float *read_param(const char *path, const char *name, size_t *n)
{
    qg_st_file *f;
    QG_EXPECT_OK(qg__safetensors_read(path, &f));
    const qg_st_tensor *t = qg__safetensors_get(f, name);
    cr_assert_not_null(t, "%s lacks %s", path, name);
    size_t k = 1;
    for (int d = 0; d < t->ndim; d++)
        k *= (size_t)t->shape[d];
    float *v = malloc(k * sizeof *v);
    memcpy(v, t->data, k * sizeof *v);
    qg__safetensors_free(f);
    *n = k;
    return v;
}

Test(model, train_checkpoint_resume_and_eval_agree)
{
    qg_train_cfg c;
    tiny_cfg(&c);
    char *full = qg_test_tmp_path("model", "full.safetensors");
    char *half = qg_test_tmp_path("model", "half.safetensors");
    char *metrics = qg_test_tmp_path("model", "metrics.jsonl");
    c.checkpoint_path = full;
    c.metrics_path = metrics;
    QG_EXPECT_OK(qg_train_run(&c));

    /* One epoch, then resume for the second: same weights bit for bit,
     * because shuffling, augmentation and init depend only on the seed. */
    tiny_cfg(&c);
    c.epochs = 1;
    c.checkpoint_path = half;
    QG_EXPECT_OK(qg_train_run(&c));
    tiny_cfg(&c);
    c.resume_path = half;
    c.checkpoint_path = half;
    QG_EXPECT_OK(qg_train_run(&c));
    size_t n1, n2;
    float *a = read_param(full, "layer2.0.conv1.weight", &n1);
    float *b = read_param(half, "layer2.0.conv1.weight", &n2);
    cr_assert_eq(n1, n2);
    cr_expect(qg_test_allclose("resumed weights", b, a, n1, 0, 0));
    free(a);
    free(b);

    /* Metrics: one JSON line per epoch with the documented keys. */
    FILE *f = fopen(metrics, "r");
    cr_assert_not_null(f);
    char line[1024];
    int lines = 0;
    double last_acc = -1;
    while (fgets(line, sizeof line, f)) {
        lines++;
        cr_expect_neq(strstr(line, "\"train_loss\""), NULL);
        cr_expect_neq(strstr(line, "\"img_per_s\""), NULL);
        const char *p = strstr(line, "\"test_acc\": ");
        cr_assert_not_null(p);
        last_acc = atof(p + 12);
    }
    fclose(f);
    cr_expect_eq(lines, 2);

    /* eval on the checkpoint reproduces the last epoch's test accuracy. */
    tiny_cfg(&c);
    c.data = NULL;
    qg_eval_result er;
    QG_EXPECT_OK(qg_eval_run(&c, full, &er));
    double acc = er.acc;
    qg_eval_result_free(&er);
    cr_expect_float_eq(acc, last_acc, 1e-6, "eval %f vs training's %f", acc, last_acc);
    /* Two epochs on 192 images beat chance (10%) clearly. */
    cr_expect_gt(acc, 0.2, "accuracy %f: the model did not learn", acc);
}

Test(model, eval_rejects_a_bad_checkpoint)
{
    char *p = qg_test_tmp_path("model", "bad.safetensors");
    FILE *f = fopen(p, "wb");
    fputs("not a checkpoint", f);
    fclose(f);
    qg_train_cfg c;
    tiny_cfg(&c);
    qg_eval_result er;
    cr_expect_neq(qg_eval_run(&c, p, &er), QG_OK);
    cr_expect_neq(strstr(qg_last_error(), p), NULL, "error does not name the file: %s",
                  qg_last_error());
}

/* The value after `key` in the last line of a metrics file (-1: none). */
static double metric_of(const char *path, const char *key)
{
    char line[8192], last[8192] = "";
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "no metrics file %s", path);
    while (fgets(line, sizeof line, f))
        memcpy(last, line, sizeof last);
    fclose(f);
    const char *p = strstr(last, key);
    return p ? strtod(p + strlen(key), NULL) : -1;
}

Test(model, interrupt_writes_checkpoint_and_resume_matches)
{
    qg_train_cfg c;
    char *ref = qg_test_tmp_path("model", "ref.safetensors");
    char *intr = qg_test_tmp_path("model", "intr.safetensors");
    char *mref = qg_test_tmp_path("model", "ref.jsonl");
    char *mres = qg_test_tmp_path("model", "resumed.jsonl");
    unlink(mres);
    tiny_cfg(&c);
    c.epochs = 1;
    c.checkpoint_path = ref;
    c.metrics_path = mref;
    QG_EXPECT_OK(qg_train_run(&c));

    /* A stop request (what SIGINT sets) finishes the batch, writes a
     * checkpoint and reports QG_ERR_INTERRUPTED. */
    volatile sig_atomic_t stop = 1;
    tiny_cfg(&c);
    c.epochs = 1;
    c.checkpoint_path = intr;
    c.stop = &stop;
    cr_assert_eq(qg_train_run(&c), QG_ERR_INTERRUPTED);
    qg_st_file *f;
    QG_EXPECT_OK(qg__safetensors_read(intr, &f));
    cr_expect_str_eq(qg__safetensors_meta(f, "batch_in_epoch"), "1");
    cr_expect_str_eq(qg__safetensors_meta(f, "epoch"), "0");
    qg__safetensors_free(f);

    /* Issue 23.3: a resume that would change which images the rest of
     * the epoch sees is refused, saying what differs. */
    tiny_cfg(&c);
    c.epochs = 1;
    c.resume_path = intr;
    c.batch = 16;
    cr_expect_eq(qg_train_run(&c), QG_ERR_INVALID_ARG);
    cr_expect_neq(strstr(qg_last_error(), "stopped inside an epoch at --batch 32; resuming "
                         "with --batch 16"), NULL, "%s", qg_last_error());
    tiny_cfg(&c);
    c.epochs = 1;
    c.resume_path = intr;
    c.keep_last = 1;
    cr_expect_eq(qg_train_run(&c), QG_ERR_INVALID_ARG);
    cr_expect_neq(strstr(qg_last_error(), "without --keep-last; this run has it"), NULL, "%s",
                  qg_last_error());

    /* Resuming mid-epoch skips the batch already done: same weights. */
    tiny_cfg(&c);
    c.epochs = 1;
    c.resume_path = intr;
    c.checkpoint_path = intr;
    c.metrics_path = mres;
    QG_EXPECT_OK(qg_train_run(&c));
    /* Issue 23.10: the resumed epoch's training loss and accuracy cover
     * the whole epoch (the interrupted part's sums travel in the
     * checkpoint), not only the batches after the resume. */
    const char *keys[] = {"\"train_loss\":", "\"train_acc\":"};
    for (int k = 0; k < 2; k++) {
        double want = metric_of(mref, keys[k]), got = metric_of(mres, keys[k]);
        cr_expect_eq(got, want, "%s %.6f after the resume, %.6f uninterrupted", keys[k], got,
                     want);
    }
    unlink(mref);
    unlink(mres);
    size_t n1, n2;
    float *a = read_param(ref, "layer3.0.conv2.weight", &n1);
    float *b = read_param(intr, "layer3.0.conv2.weight", &n2);
    cr_assert_eq(n1, n2);
    cr_expect(qg_test_allclose("interrupted+resumed weights", b, a, n1, 0, 0));
    free(a);
    free(b);
}

Test(model, gradient_norm_and_clipping_scale)
{
    qg_ctx *ctx = qg_test_ctx();
    qg_model *m;
    qg_resnet_opts o = {.depth = 8, .shortcut = 'A', .in_c = 1, .in_h = 5, .in_w = 5,
                        .classes = 3, .seed = 2};
    QG_EXPECT_OK(qg__model_resnet_cifar(ctx, &o, &m));
    /* Known gradients: parameter i gets the constant 0.01*(i+1). */
    double ss = 0;
    for (int i = 0; i < m->nparams; i++) {
        qg_param *p = m->params[i];
        if (!p->grad)
            continue;
        size_t n = qg_tensor_numel(p->grad);
        float *g = malloc(n * sizeof *g);
        for (size_t k = 0; k < n; k++)
            g[k] = 0.01f * (float)(i + 1);
        ss += (double)n * g[0] * g[0];
        QG_EXPECT_OK(qg_tensor_write(p->grad, g, n * sizeof *g));
        free(g);
    }
    float norm;
    QG_EXPECT_OK(qg__optim_grad_norm(m, &norm));
    cr_expect_float_eq(norm, sqrt(ss), 1e-4 * sqrt(ss), "norm %g vs %g", norm, sqrt(ss));
    /* A clipped SGD step (no momentum, no decay) moves each weight by
     * lr * g * clip/norm: check one element of the first parameter. */
    qg_tensor *e0;
    int64_t one[1] = {1};
    QG_EXPECT_OK(qg_tensor_view(m->params[0]->value, 0, 1, one, &e0));
    float w0;
    QG_EXPECT_OK(qg_tensor_read(e0, &w0, sizeof w0));
    qg_optim_cfg cfg = {.kind = QG_OPTIM_SGD, .lr = 1.0f, .clip_norm = norm / 4};
    QG_EXPECT_OK(qg__optim_step(m, &cfg, 1.0f, 1));
    float w1;
    QG_EXPECT_OK(qg_tensor_read(e0, &w1, sizeof w1));
    cr_expect_float_eq(w0 - w1, 0.01f * 0.25f, 1e-6, "step %g", w0 - w1);
    qg_tensor_free(e0);
    qg__model_free(m);
}
