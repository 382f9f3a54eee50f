/* tests/test_vgg.c: VGG16-bn (src/model/vgg.h) and its dropout node
 * (src/model/nodes_dropout.c, cl/eltwise.cl qg_eltwise_dropout_*): the
 * kernels against their C twins, the builder's layout (PSG-pytorch's names,
 * parameter count, the 28x28 padding, PSGD's quantizers on every conv and
 * linear), one training step against PyTorch (tests/tools/vgg_torch.py gen,
 * committed as tests/data/golden/vgg_step.json), a strict load of a qgate
 * checkpoint into PyTorch, and a short train + eval on the CLI. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support/support.h"
#include "method/method.h"
#include "model/nodes.h"
#include "model/vgg.h"
#include "model/wquant.h"
#include "ops/eltwise.h"
#include "ops/layers.h"
#include "ref/ref_eltwise.h"
#include "tensor/tensor_impl.h"

TestSuite(vgg, .fini = qg_test_ctx_free);

/* ---- dropout kernels ------------------------------------------------------- */

/* Forward and backward (overwrite and accumulate) against the C twins at
 * odd sizes (partial work-groups), exactly: the same integer hash and one
 * float multiply. Outputs sit between sentinels. */
Test(vgg, dropout_kernels_match_reference)
{
    qg_ctx *ctx = qg_test_ctx();
    static const size_t sizes[] = {1, 33, 1000, 4099};
    static const float ps[] = {0.5f, 0.0f, 0.1f, 0.9f};
    static const uint64_t keys[] = {0x0123456789ABCDEFull, 42, 0xFFFFFFFF00000000ull};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
        for (size_t k = 0; k < 4; k++) {
            size_t n = sizes[s];
            float p = ps[k];
            uint64_t key = keys[(s + k) % 3];
            int64_t sh[1] = {(int64_t)n};
            float *x = malloc(n * 4), *d = malloc(n * 4), *want = malloc(n * 4);
            qg_test_fill(x, n, -2, 2, (uint32_t)(7 + s));
            qg_test_fill(d, n, -1, 1, (uint32_t)(9 + k));
            qg_tensor *tx = qg_test_tensor(ctx, 1, sh, x);
            qg_test_buf y = qg_test_buf_new(ctx, 1, sh, NULL);
            QG_EXPECT_OK(qg__dropout_fwd(ctx, tx, y.view, p, key));
            float *got = qg_test_buf_get(&y, "dropout_fwd");
            qg_ref_dropout_fwd(n, p, key, x, want);
            char label[96];
            snprintf(label, sizeof label, "dropout_fwd n=%zu p=%g", n, p);
            cr_expect(qg_test_allclose(label, got, want, n, 0, 0));
            free(got);
            /* backward: overwrite, then accumulate into the same gradient */
            qg_test_buf g = qg_test_buf_new(ctx, 1, sh, d);
            QG_EXPECT_OK(qg__dropout_bwd(ctx, tx, g.view, p, key, 0));
            QG_EXPECT_OK(qg__dropout_bwd(ctx, tx, g.view, p, key, 1));
            got = qg_test_buf_get(&g, "dropout_bwd");
            qg_ref_dropout_bwd(n, p, key, x, d, 0);
            qg_ref_dropout_bwd(n, p, key, x, d, 1);
            snprintf(label, sizeof label, "dropout_bwd n=%zu p=%g", n, p);
            cr_expect(qg_test_allclose(label, got, d, n, 0, 0));
            free(got);
            qg_test_buf_free(&y);
            qg_test_buf_free(&g);
            qg_tensor_free(tx);
            free(x), free(d), free(want);
        }
    cr_expect_eq(qg__dropout_fwd(ctx, NULL, NULL, 1.0f, 0), QG_ERR_INVALID_ARG);
}

/* The hash's statistics (C twin; the kernel equals it above): the kept
 * share is 1 - p within 4 standard deviations over 10^5 elements, two keys
 * give different masks, and p = 0 keeps everything with scale 1. */
Test(vgg, dropout_mask_statistics)
{
    const uint32_t n = 100000;
    static const float ps[] = {0.5f, 0.1f, 0.9f};
    for (int k = 0; k < 3; k++) {
        uint32_t t;
        float s;
        qg_ref_dropout_params(ps[k], &t, &s);
        cr_expect_float_eq(s, 1.0f / (1.0f - ps[k]), 0);
        long kept = 0, same = 0;
        for (uint32_t i = 0; i < n; i++) {
            int a = qg_ref_dropout_keep(i, 0x1234, t), b = qg_ref_dropout_keep(i, 0x1235, t);
            kept += a;
            same += a == b;
        }
        double want = (1.0 - ps[k]) * n, sd = sqrt(n * ps[k] * (1.0 - ps[k]));
        cr_expect(fabs(kept - want) < 4 * sd, "p=%g: kept %ld of %u", ps[k], kept, n);
        /* independent masks agree on p^2 + (1-p)^2 of the elements */
        double agree = (ps[k] * ps[k] + (1 - ps[k]) * (1 - ps[k])) * n;
        cr_expect(fabs(same - agree) < 6 * sqrt((double)n), "p=%g: masks agree on %ld", ps[k],
                  same);
    }
    uint32_t t;
    float s;
    qg_ref_dropout_params(0.0f, &t, &s);
    cr_expect_eq(t, 0u);
    cr_expect_float_eq(s, 1.0f, 0);
    qg_ref_dropout_params(0.5f, &t, &s);
    cr_expect_eq(t, 0x80000000u);
    cr_expect_float_eq(s, 2.0f, 0);
}

/* ---- the builder ----------------------------------------------------------- */

static qg_model *build(const char *arch, int c, int side, int classes, const char *methods)
{
    qg_model *m = NULL;
    qg_vgg_opts o = {.arch = arch, .in_c = c, .in_h = side, .in_w = side,
                     .classes = classes, .seed = 3,
                     .methods = methods ? qg_test_methods(methods) : NULL};
    QG_EXPECT_OK(qg__model_vgg(qg_test_ctx(), &o, &m));
    cr_assert_not_null(m, "%s", qg_last_error());
    return m;
}

static int count_type(const qg_model *m, const char *type)
{
    int n = 0;
    for (int i = 0; i < m->nnodes; i++)
        n += !strcmp(m->nodes[i].ops->type, type);
    return n;
}

/* PSG-pytorch's Vgg16_bn for 3x32x32 inputs and 100 classes: 34,011,172
 * parameters (torch's count of tests/tools/vgg_torch.py's model), 84
 * state-dict entries of which qgate has all but the 13 num_batches_tracked
 * counters, the reference's Sequential indices, 5 max pools, 2 dropouts. */
Test(vgg, reference_layout_names_and_parameter_count, .timeout = 120)
{
    qg_model *m = build("vgg16_bn", 3, 32, 100, NULL);
    cr_expect_eq(qg__model_param_count(m), 34011172u);
    cr_expect_eq(m->nparams, 84 - 13);
    static const char *names[] = {"features.0.weight", "features.1.running_var",
                                  "features.3.weight", "features.7.weight", "features.14.weight",
                                  "features.40.weight", "features.41.bias",
                                  "classifier.0.weight", "classifier.3.bias",
                                  "classifier.6.weight", "classifier.6.bias"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        cr_expect_not_null(qg__model_find_param(m, names[i]), "%s", names[i]);
    cr_expect_null(qg__model_find_param(m, "features.0.bias"), "convs have no bias");
    cr_expect_null(qg__model_find_param(m, "features.2.weight"));
    qg_param *w = qg__model_find_param(m, "classifier.0.weight");
    cr_expect_eq(w->value->shape[0], 4096);
    cr_expect_eq(w->value->shape[1], 512);
    w = qg__model_find_param(m, "classifier.6.weight");
    cr_expect_eq(w->value->shape[0], 100);
    cr_expect_eq(count_type(m, "maxpool"), 5);
    cr_expect_eq(count_type(m, "dropout"), 2);
    cr_expect_eq(count_type(m, "conv2d"), 13);
    cr_expect_eq(count_type(m, "linear"), 3);
    qg__model_free(m);
}

/* 28x28 inputs: the first conv pads by 3, so its output is 32x32 and the
 * features end at 1x1, as for the image zero-padded to 32x32; inputs that
 * fit no rule are refused with the shape named; other methods refused. */
Test(vgg, input_sizes_and_methods)
{
    qg_model *m = build("vgg16_bn_div64", 1, 28, 10, NULL);
    int conv0 = -1;
    for (int i = 0; i < m->nnodes && conv0 < 0; i++)
        if (!strcmp(m->nodes[i].name, "features.0"))
            conv0 = m->nodes[i].out;
    cr_assert_geq(conv0, 0);
    cr_expect_eq(qg__act(m, conv0)->shape[2], 32);
    cr_expect_eq(qg__act(m, conv0)->shape[3], 32);
    qg__model_free(m);
    m = build("vgg16_bn_div8", 3, 40, 7, NULL);
    qg__model_free(m);
    qg_model *bad = NULL;
    qg_vgg_opts o = {.arch = "vgg16_bn_div64", .in_c = 1, .in_h = 27, .in_w = 27,
                     .classes = 10};
    cr_expect_eq(qg__model_vgg(qg_test_ctx(), &o, &bad), QG_ERR_SHAPE);
    cr_expect(strstr(qg_last_error(), "27x27"), "%s", qg_last_error());
    o.in_h = o.in_w = 64;
    cr_expect_eq(qg__model_vgg(qg_test_ctx(), &o, &bad), QG_ERR_SHAPE);
    o.in_h = o.in_w = 32;
    o.methods = qg_test_methods("quant wbits=4 abits=4");
    cr_expect_eq(qg__model_vgg(qg_test_ctx(), &o, &bad), QG_ERR_INVALID_ARG);
    cr_expect(strstr(qg_last_error(), "--quant is not supported"), "%s", qg_last_error());
    cr_expect_null(bad);
    cr_expect(qg__model_vgg_known("vgg16_bn", NULL));
    int div = 0;
    cr_expect(qg__model_vgg_known("vgg16_bn_div16", &div));
    cr_expect_eq(div, 16);
    cr_expect_not(qg__model_vgg_known("vgg16_bn_div3", NULL));
    cr_expect_not(qg__model_vgg_known("vgg16_bn_div128", NULL));
    cr_expect_not(qg__model_vgg_known("vgg16", NULL));
}

/* PSGD puts its grid on every conv but the first and on both hidden
 * linears, weight and bias (16 quantizers); --first-last-quant adds the
 * first conv and the last linear with its bias (19), at 8 bits for -w 2. */
Test(vgg, psgd_quantizes_every_conv_and_linear)
{
    qg_model *m = build("vgg16_bn_div64", 3, 32, 10, "psgd wbits=4");
    cr_expect_eq(m->nwquants, 16);
    for (int i = 0; i < m->nwquants; i++) {
        cr_expect_eq(m->wquants[i]->ops, &qg__wquant_grid);
        cr_expect_neq(strcmp(m->wquants[i]->w->name, "features.0.weight"), 0);
        cr_expect_eq(strncmp(m->wquants[i]->w->name, "classifier.6", 12) != 0, 1);
    }
    qg__model_free(m);
    m = build("vgg16_bn_div64", 3, 32, 10, "psgd wbits=2 first_last_quant=1");
    cr_expect_eq(m->nwquants, 19);
    int names = 0;
    for (int i = 0; i < m->nwquants; i++)
        names += !strcmp(m->wquants[i]->w->name, "features.0.weight") ||
                 !strcmp(m->wquants[i]->w->name, "classifier.6.weight") ||
                 !strcmp(m->wquants[i]->w->name, "classifier.6.bias") ||
                 !strcmp(m->wquants[i]->w->name, "classifier.0.bias");
    cr_expect_eq(names, 4);
    qg__model_free(m);
}

/* ---- one step against PyTorch ---------------------------------------------- */

/* tests/tools/vgg_torch.py gen: vgg16_bn_div64 on two 1x28x28 images (the
 * padded first conv), LCG weights, the dropouts' masks of two fixed keys:
 * the training logits, every parameter's gradient (sampled) from a given
 * logits gradient, and the evaluation logits after that step (batch norm's
 * running statistics updated with momentum 0.1 and the unbiased variance).
 * Tolerances: logits 1e-5 + 1e-4 relative; gradients 1e-5 + 1e-3
 * relative (the sums run in other orders). */
Test(vgg, pytorch_golden_training_step, .timeout = 300)
{
    json_t *g = qg_test_golden("vgg_step");
    char arch[32];
    snprintf(arch, sizeof arch, "vgg16_bn_div%d", qg_test_json_int(g, "div"));
    int side = qg_test_json_int(g, "side"), batch = qg_test_json_int(g, "batch");
    qg_model *m = build(arch, qg_test_json_int(g, "in_c"), side, qg_test_json_int(g, "classes"),
                        NULL);
    json_t *ts = json_object_get(g, "tensors");
    cr_assert(json_is_array(ts));
    size_t nt = json_array_size(ts);
    int trainable = 0;
    for (int i = 0; i < m->nparams; i++)
        trainable += m->params[i]->grad != NULL;
    cr_expect_eq((int)nt, trainable, "golden %zu tensors, model %d trainable", nt, trainable);
    for (size_t i = 0; i < nt; i++) {
        json_t *t = json_array_get(ts, i);
        const char *name = json_string_value(json_object_get(t, "name"));
        qg_param *p = qg__model_find_param(m, name);
        cr_assert_not_null(p, "qgate has no parameter '%s' (PyTorch's name)", name);
        size_t n = (size_t)qg_test_json_num(t, "numel");
        cr_assert_eq(qg_tensor_numel(p->value), n, "%s: size", name);
        float *v = qg_test_lcg_values((int)qg_test_json_num(t, "seed"), n, 0.3, qg_test_json_num(t, "offset"));
        QG_EXPECT_OK(qg_tensor_write(p->value, v, n * 4));
        free(v);
    }
    json_t *keys = json_object_get(g, "keys");
    static const char *drops[2] = {"classifier.2", "classifier.5"};
    for (int k = 0; k < 2; k++) {
        json_t *kk = json_array_get(keys, (size_t)k);
        uint64_t lo = (uint64_t)json_integer_value(json_array_get(kk, 0));
        uint64_t hi = (uint64_t)json_integer_value(json_array_get(kk, 1));
        QG_EXPECT_OK(qg__node_dropout_hold(m, drops[k], lo | hi << 32));
    }
    size_t nx, nd, nl, ne;
    float *x = qg_test_json_floats(g, "x", &nx), *dl = qg_test_json_floats(g, "dlogits", &nd);
    float *want = qg_test_json_floats(g, "logits", &nl);
    float *want_eval = qg_test_json_floats(g, "logits_eval", &ne);
    QG_EXPECT_OK(qg__model_setup(m, batch));
    QG_EXPECT_OK(qg_tensor_write(qg__model_input(m), x, nx * 4));
    QG_EXPECT_OK(qg__model_forward(m, 1));
    float *lo = qg_test_read(qg__model_logits(m));
    cr_expect(qg_test_allclose("training logits vs PyTorch", lo, want, nl, 1e-5f, 1e-4f));
    QG_EXPECT_OK(qg_tensor_write(qg__model_logits_grad(m), dl, nd * 4));
    QG_EXPECT_OK(qg__model_backward(m));
    for (size_t i = 0; i < nt; i++) {
        json_t *t = json_array_get(ts, i);
        const char *name = json_string_value(json_object_get(t, "name"));
        qg_param *p = qg__model_find_param(m, name);
        float *got = qg_test_read(p->grad);
        json_t *idx = json_object_get(t, "index");
        size_t k;
        float *wg = qg_test_json_floats(t, "grad", &k);
        float *sel = malloc(k * 4);
        for (size_t j = 0; j < k; j++)
            sel[j] = got[json_integer_value(json_array_get(idx, j))];
        char label[128];
        snprintf(label, sizeof label, "%s gradient vs PyTorch", name);
        cr_expect(qg_test_allclose(label, sel, wg, k, 1e-5f, 1e-3f));
        free(got), free(wg), free(sel);
    }
    QG_EXPECT_OK(qg__model_forward(m, 0));
    float *le = qg_test_read(qg__model_logits(m));
    cr_expect(qg_test_allclose("evaluation logits vs PyTorch", le, want_eval, ne, 1e-5f, 1e-4f));
    free(x), free(dl), free(want), free(want_eval), free(lo), free(le);
    json_decref(g);
    qg__model_free(m);
}

/* A training forward draws a new mask each time (the node's own sequence)
 * and evaluation is the identity (the backward's mask: the PyTorch golden
 * above). Checked on the classifier's first dropout of a tiny model. */
Test(vgg, dropout_node_masks_per_forward)
{
    qg_model *m = build("vgg16_bn_div64", 3, 32, 5, NULL);
    QG_EXPECT_OK(qg__model_setup(m, 4));
    size_t nx = qg_tensor_numel(qg__model_input(m));
    float *x = malloc(nx * 4);
    qg_test_fill(x, nx, -1, 1, 5);
    QG_EXPECT_OK(qg_tensor_write(qg__model_input(m), x, nx * 4));
    int node = -1;
    for (int i = 0; i < m->nnodes; i++)
        if (!strcmp(m->nodes[i].name, "classifier.2"))
            node = i;
    cr_assert_geq(node, 0);
    qg_act *in = qg__act(m, m->nodes[node].in[0]), *out = qg__act(m, m->nodes[node].out);
    size_t n = qg_tensor_numel(in->value);
    float *y[2];
    for (int r = 0; r < 2; r++) {
        QG_EXPECT_OK(qg__model_forward(m, 1));
        float *a = qg_test_read(in->value);
        y[r] = qg_test_read(out->value);
        long pos = 0, kept = 0;
        for (size_t i = 0; i < n; i++) {
            cr_expect(y[r][i] == 0.0f || y[r][i] == 2.0f * a[i], "forward %d [%zu]", r, i);
            pos += a[i] > 0;
            kept += a[i] > 0 && y[r][i] != 0.0f;
        }
        cr_expect(pos > 20 && kept > pos / 5 && kept < pos - pos / 5,
                  "kept %ld of %ld positive inputs", kept, pos);
        free(a);
    }
    long differ = 0;
    for (size_t i = 0; i < n; i++)
        differ += (y[0][i] != 0.0f) != (y[1][i] != 0.0f);
    cr_expect_gt(differ, 0, "two training forwards used the same mask");
    QG_EXPECT_OK(qg__model_forward(m, 0));
    float *a = qg_test_read(in->value), *b = qg_test_read(out->value);
    cr_expect(qg_test_allclose("evaluation dropout is the identity", b, a, n, 0, 0));
    free(a), free(b), free(x), free(y[0]), free(y[1]);
    qg__model_free(m);
}

/* ---- checkpoints and the CLI ----------------------------------------------- */

static const char *torch_python(void)
{
    static const char *pythons[] = {"/usr/bin/python3", "python3"};
    for (int i = 0; i < 2; i++) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "%s -c 'import torch' >/dev/null 2>&1", pythons[i]);
        if (system(cmd) == 0)
            return pythons[i];
    }
    return NULL;
}

static const char *run_cli(const char *cmd, int want_rc)
{
    static char out[16384];
    char full[2048];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int rc = pclose(p);
    cr_expect_eq(WEXITSTATUS(rc), want_rc, "%s:\n%s", cmd, out);
    return out;
}

/* The CLI on a tiny run: train vgg16_bn_div16 on 64 Fashion-MNIST images
 * (28x28, padded) for one epoch with PSGD, --first-last-quant; its epoch
 * reports both accuracies; qgate eval prints the two precisions, with
 * -a/--abits the activation-quantized one; PyTorch
 * loads the checkpoint strictly (tests/tools/vgg_torch.py check; skipped
 * without python3-torch). */
Test(vgg, cli_train_eval_and_strict_load, .timeout = 600)
{
    char *ck = qg_test_tmp_path("vgg", "ck.safetensors");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "./qgate train --model vgg16_bn_div16 --epochs 1 --limit-train 64 "
             "--limit-test 32 --batch 32 --eval-batch 32 --lr 0.01 --psgd -w 4 "
             "--first-last-quant --no-progress --checkpoint %s", ck);
    const char *out = run_cli(cmd, 0);
    cr_expect(strstr(out, "epoch 1/1"), "%s", out);
    snprintf(cmd, sizeof cmd, "./qgate eval %s --limit-test 32", ck);
    out = run_cli(cmd, 0);
    cr_expect(strstr(out, "(vgg16_bn_div16, epoch 1)"), "%s", out);
    cr_expect(strstr(out, "Low Precision (W4):  Loss: ") && strstr(out, "Full Precision: "),
              "%s", out);
    /* activation quantization at evaluation (tests/test_psgd_act.c) */
    snprintf(cmd, sizeof cmd, "./qgate eval %s --limit-test 32 -a 4 --act-clip 5", ck);
    out = run_cli(cmd, 0);
    cr_expect(strstr(out, "Low Precision (W4A4, activation clip 5):  Loss: ") &&
              strstr(out, "Full Precision: "), "%s", out);
    snprintf(cmd, sizeof cmd, "./qgate eval %s --limit-test 32 --abits 8 --json", ck);
    out = run_cli(cmd, 0);
    cr_expect(strstr(out, "\"abits\":8,\"act_clip\":6.0"), "%s", out);
    snprintf(cmd, sizeof cmd, "./qgate eval %s --act-clip 5", ck);
    out = run_cli(cmd, 2);
    cr_expect(strstr(out, "--act-clip needs -a/--abits B"), "%s", out);
    snprintf(cmd, sizeof cmd, "./qgate train --model vgg16_bn_div64 --pact --epochs 1 "
             "--limit-train 8 --batch 8 --no-progress");
    out = run_cli(cmd, 1);
    cr_expect(strstr(out, "--pact is not supported"), "%s", out);
    const char *py = torch_python();
    const char *dir = getenv("QG_TEST_DATA") ? getenv("QG_TEST_DATA") : "tests/data";
    if (py) {
        snprintf(cmd, sizeof cmd, "%s %s/../tools/vgg_torch.py check %s", py, dir, ck);
        out = run_cli(cmd, 0);
        cr_expect(strstr(out, "loaded strictly"), "%s", out);
    } else {
        fprintf(stderr, "test_vgg: python3-torch is not installed: strict load not checked\n");
    }
    unlink(ck);
}
