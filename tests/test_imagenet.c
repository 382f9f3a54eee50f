/* tests/test_imagenet.c: the ImageNet-style builders (resnet18,
 * shufflenet_v2_x0_5; src/model/imagenet.h) and their node types
 * (src/model/nodes_shuffle.h): torchvision's parameter counts and names,
 * where the methods put their layers, forward/backward on tiny inputs,
 * whole-model gradients against finite differences, and the slice / join
 * nodes against host arithmetic, partial gradient writes included.
 * Logits against torchvision itself: tests/tools/check_torchvision.py. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/support.h"
#include "model/imagenet.h"
#include "model/nodes.h"
#include "core/rng.h"
#include "model/nodes_shuffle.h"
#include "ops/layers.h"
#include "tensor/tensor_impl.h"

TestSuite(imagenet, .fini = qg_test_ctx_free);

static qg_model *build(const char *arch, int size, int classes, const char *methods)
{
    qg_model *m = NULL;
    qg_imagenet_opts o = {.arch = arch, .in_c = 3, .in_h = size, .in_w = size,
                          .classes = classes, .seed = 5,
                          .methods = methods ? qg_test_methods(methods) : NULL};
    QG_EXPECT_OK(qg__model_imagenet(qg_test_ctx(), &o, &m));
    cr_assert_not_null(m);
    return m;
}

static int count_type(const qg_model *m, const char *type)
{
    int n = 0;
    for (int i = 0; i < m->nnodes; i++)
        n += !strcmp(m->nodes[i].ops->type, type);
    return n;
}

static const char *type_of(const qg_model *m, const char *name)
{
    for (int i = 0; i < m->nnodes; i++)
        if (!strcmp(m->nodes[i].name, name))
            return m->nodes[i].ops->type;
    return "";
}

Test(imagenet, torchvision_parameter_counts_and_names)
{
    /* torchvision 0.14: shufflenet_v2_x0_5() 1,366,792 parameters, 282
     * state-dict entries without num_batches_tracked; resnet18() 11,689,512
     * and 102. */
    qg_model *m = build("shufflenet_v2_x0_5", 224, 1000, NULL);
    cr_expect_eq(qg__model_param_count(m), 1366792);
    cr_expect_eq(m->nparams, 282);
    static const char *sn[] = {"conv1.0.weight", "conv1.1.running_var",
                               "stage2.0.branch1.0.weight", "stage2.0.branch1.3.bias",
                               "stage2.1.branch2.3.weight", "stage3.7.branch2.6.weight",
                               "stage4.3.branch2.5.weight", "conv5.0.weight",
                               "conv5.1.running_mean", "fc.weight", "fc.bias"};
    for (size_t i = 0; i < sizeof sn / sizeof *sn; i++)
        cr_expect_not_null(qg__model_find_param(m, sn[i]), "%s", sn[i]);
    cr_expect_null(qg__model_find_param(m, "stage2.1.branch1.0.weight"));
    cr_expect_eq(qg__model_find_param(m, "stage3.0.branch1.0.weight")->value->shape[0], 48);
    /* 40.6 M multiply-adds per 224x224 image without the pools (the
     * paper's 41 M) */
    double macs = 0;
    for (int i = 0; i < m->nnodes; i++)
        macs += qg__node_macs(m, &m->nodes[i]);
    cr_expect(macs > 40e6 && macs < 42e6, "%.0f MACs", macs);
    qg__model_free(m);

    m = build("resnet18", 224, 1000, NULL);
    cr_expect_eq(qg__model_param_count(m), 11689512);
    cr_expect_eq(m->nparams, 102);
    static const char *rn[] = {"conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight",
                               "layer2.0.downsample.0.weight", "layer4.1.bn2.bias",
                               "layer4.0.downsample.1.running_var", "fc.bias"};
    for (size_t i = 0; i < sizeof rn / sizeof *rn; i++)
        cr_expect_not_null(qg__model_find_param(m, rn[i]), "%s", rn[i]);
    cr_expect_null(qg__model_find_param(m, "layer1.0.downsample.0.weight"));
    macs = 0;
    for (int i = 0; i < m->nnodes; i++)
        macs += qg__node_macs(m, &m->nodes[i]);
    cr_expect(fabs(macs - 1.814e9) < 0.01e9, "%.0f MACs", macs);
    qg__model_free(m);

    /* any class count; inputs too small for the strides are refused */
    m = build("shufflenet_v2_x0_5", 32, 3, NULL);
    cr_expect_eq(qg__model_find_param(m, "fc.weight")->value->shape[0], 3);
    qg__model_free(m);
    qg_imagenet_opts o = {.arch = "resnet18", .in_c = 3, .in_h = 16, .in_w = 16, .classes = 2};
    cr_expect_eq(qg__model_imagenet(qg_test_ctx(), &o, &m), QG_ERR_SHAPE);
    o.arch = "shufflenet_v2_x1_0";
    cr_expect_eq(qg__model_imagenet(qg_test_ctx(), &o, &m), QG_ERR_INVALID_ARG);
    cr_expect_not(qg__model_imagenet_known("resnet20"));
    /* the public API and `--model` reach the builders by name */
    qg_model_opts po = {.arch = "shufflenet_v2_x0_5", .in_c = 3, .in_h = 40, .in_w = 48,
                        .classes = 7};
    QG_EXPECT_OK(qg_model_new(qg_test_ctx(), &po, &m));
    cr_expect_eq(qg_model_param_count(m), 1366792 - 1025 * (1000 - 7));
    cr_expect_str_eq(m->arch, "shufflenet_v2_x0_5");
    qg_model_free(m);
}

Test(imagenet, methods_choose_the_layers)
{
    /* PG gates the 35 1x1 convs inside ShuffleNet's blocks; the stem and
     * conv5 stay float convs, the depthwise convs float. */
    qg_model *m = build("shufflenet_v2_x0_5", 32, 4, "pg wbits=8 abits=6 pred_bits=4");
    cr_expect_eq(count_type(m, "pgconv2d"), 35);
    cr_expect_eq(count_type(m, "qconv2d"), 0);
    cr_expect_eq(count_type(m, "conv2d"), 2);
    cr_expect_eq(count_type(m, "dwconv3x3"), 3 * 2 + 13);
    cr_expect_str_eq(type_of(m, "stage2.0.branch1.2"), "pgconv2d");
    cr_expect_str_eq(type_of(m, "conv5.0"), "conv2d");
    qg__model_free(m);
    /* quantization alone: the same 35 as quantized convs */
    m = build("shufflenet_v2_x0_5", 32, 4, "quant wbits=4 abits=4");
    cr_expect_eq(count_type(m, "qconv2d"), 35);
    qg__model_free(m);
    /* PACT: every BN-ReLU clips with its own alpha, and each join */
    m = build("shufflenet_v2_x0_5", 32, 4, "pact");
    cr_expect_eq(count_type(m, "pact"), 16);
    cr_expect_not_null(qg__model_find_param(m, "stage2.0.pact.upper_bound"));
    cr_expect_not_null(qg__model_find_param(m, "stage2.0.branch2.1.upper_bound"));
    qg__model_free(m);

    /* PG with the TensorFlow semantics (its recipe: a 6, t 4, pact): the
     * same 35 gated convs, each depthwise conv's input quantized by its
     * own node, and PACT as separate clips with the TF boundaries (the
     * fused BN-PACT node has PyTorch's) */
    m = build("shufflenet_v2_x0_5", 32, 4, "pg pg_style=tf abits=6 pred_bits=4 pact");
    cr_expect_eq(count_type(m, "pgconv2d"), 35);
    cr_expect_eq(count_type(m, "aquant"), 3 * 2 + 13);
    /* 16 joins, and the stem's, conv5's, 2 per block and the 3
     * downsampling blocks' branch1 BN-ReLUs: 16 + 1 + 1 + 32 + 3 */
    cr_expect_eq(count_type(m, "pact"), 53, "%d", count_type(m, "pact"));
    cr_expect_str_eq(type_of(m, "stage2.0.branch2.3.aquant"), "aquant");
    qg__model_free(m);

    /* ResNet-18, quantized: the 16 block convs; stem, downsample and fc
     * float. PG gates conv1 of each block (as the CIFAR ResNet). */
    m = build("resnet18", 32, 4, "quant wbits=4 abits=4");
    cr_expect_eq(count_type(m, "qconv2d"), 16);
    cr_expect_str_eq(type_of(m, "conv1"), "conv2d");
    cr_expect_str_eq(type_of(m, "layer3.0.downsample.0"), "conv2d");
    cr_expect_str_eq(type_of(m, "fc"), "linear");
    qg__model_free(m);
    m = build("resnet18", 32, 4, "pg wbits=8 abits=6 pred_bits=4");
    cr_expect_eq(count_type(m, "pgconv2d"), 8);
    cr_expect_str_eq(type_of(m, "layer2.1.conv1"), "pgconv2d");
    cr_expect_str_eq(type_of(m, "layer2.1.conv2"), "qconv2d");
    qg__model_free(m);
}

/* Forward in both modes and backward on a batch of 2 tiny images: the
 * logits' shape, finite values, and gradients reaching the first layer. */
static void tiny_step(const char *arch, const char *first)
{
    qg_ctx *ctx = qg_test_ctx();
    qg_model *m = build(arch, 32, 3, NULL);
    QG_EXPECT_OK(qg__model_setup(m, 2));
    qg_tensor *lg = qg__model_logits(m);
    cr_expect_eq(lg->ndim, 2);
    cr_expect_eq(lg->shape[0], 2);
    cr_expect_eq(lg->shape[1], 3);
    size_t nx = qg_tensor_numel(qg__model_input(m));
    float *x = malloc(nx * sizeof *x);
    qg_test_fill(x, nx, -1, 1, 3);
    QG_EXPECT_OK(qg_tensor_write(qg__model_input(m), x, nx * sizeof *x));
    int32_t lab[2] = {0, 2};
    int64_t s2[1] = {2}, s1[1] = {1};
    qg_tensor *labels, *ls, *cor;
    QG_EXPECT_OK(qg_tensor_new(ctx, 1, s2, QG_DTYPE_I32, "labels", &labels));
    QG_EXPECT_OK(qg_tensor_write(labels, lab, sizeof lab));
    QG_EXPECT_OK(qg_tensor_new(ctx, 1, s1, QG_DTYPE_F32, "loss", &ls));
    QG_EXPECT_OK(qg_tensor_new(ctx, 1, s1, QG_DTYPE_I32, "correct", &cor));
    for (int train = 0; train < 2; train++) {
        QG_EXPECT_OK(qg__model_forward(m, train));
        float *l = qg_test_read(lg);
        for (int i = 0; i < 6; i++)
            cr_expect(isfinite(l[i]), "%s train=%d logit %d = %g", arch, train, i, l[i]);
        free(l);
    }
    QG_EXPECT_OK(qg__softmax_ce(ctx, lg, labels, 0.5f, ls, cor, qg__model_logits_grad(m)));
    QG_EXPECT_OK(qg__model_backward(m));
    qg_param *p = qg__model_find_param(m, first);
    cr_assert_not_null(p);
    float *g = qg_test_read(p->grad);
    double norm = 0;
    for (size_t i = 0; i < qg_tensor_numel(p->grad); i++)
        norm += (double)g[i] * g[i];
    cr_expect(isfinite(norm) && norm > 0, "%s: |grad %s|^2 = %g", arch, first, norm);
    free(g);
    free(x);
    qg_tensor_free(labels);
    qg_tensor_free(ls);
    qg_tensor_free(cor);
    qg__model_free(m);
}

Test(imagenet, shufflenet_tiny_forward_backward) { tiny_step("shufflenet_v2_x0_5", "conv1.0.weight"); }
Test(imagenet, resnet18_tiny_forward_backward) { tiny_step("resnet18", "conv1.weight"); }

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

/* The new node types inside a small graph, x -> relu -> dwconv 3x3/s1 ->
 * bn -> slice(second half) -> join(first half of the bn output, slice)
 * -> dwconv 3x3/s2 -> max pool 3x3/s2 pad 1 -> global average pool ->
 * linear, batch 3: the analytic gradients of every parameter tensor (3
 * entries each) and of the input against central differences of the
 * device forward, as tests/test_model.c does for the CIFAR ResNet: an
 * entry passes when one of three step sizes agrees within 1e-3 + 3e-2
 * |g|; one of 18 may sit on a kink (ReLU, max-pool switch). Whole
 * networks are compared with torchvision's gradients instead
 * (tests/tools/check_torchvision.py): ShuffleNet's dozens of ReLUs and
 * tiny late maps put kinks inside any step size that float32 resolves. */
Test(imagenet, new_nodes_gradients_match_finite_differences)
{
    qg_ctx *ctx = qg_test_ctx();
    qg_model *m;
    qg_rng rng = {99};
    QG_EXPECT_OK(qg__model_new(ctx, "node-gradcheck", 4, 9, 8, 3, &m));
    int x = qg__node_relu(m, "relu", 0);
    int d1 = qg__node_dwconv(m, "dw1", x, 1, 1, NULL, NULL, &rng);
    int b1 = d1 >= 0 ? qg__node_bn(m, "bn", d1) : -1;
    int s = b1 >= 0 ? qg__node_chan_slice(m, "split", b1, 2, 2) : -1;
    int j = s >= 0 ? qg__node_shuffle_join(m, "join", b1, 0, s) : -1;
    int d2 = j >= 0 ? qg__node_dwconv(m, "dw2", j, 2, 1, NULL, NULL, &rng) : -1;
    int mp = d2 >= 0 ? qg__node_maxpool(m, "pool", d2, 3, 2, 1) : -1;
    int g = mp >= 0 ? qg__node_gap(m, "gap", mp) : -1;
    int y = g >= 0 ? qg__node_linear(m, "fc", g, 3, &rng) : -1;
    cr_assert(y > 0, "%s", qg_last_error());
    cr_expect_eq(qg__act(m, d2)->shape[2], 5);
    cr_expect_eq(qg__act(m, mp)->shape[2], 3);
    cr_expect_eq(qg__act(m, mp)->shape[3], 2);
    QG_EXPECT_OK(qg__model_setup(m, 3));
    size_t nx = qg_tensor_numel(qg__model_input(m));
    float *xin = malloc(nx * sizeof *xin);
    qg_test_fill(xin, nx, -0.5f, 1, 17);
    QG_EXPECT_OK(qg_tensor_write(qg__model_input(m), xin, nx * sizeof *xin));
    int32_t lab[3] = {0, 2, 1};
    int64_t s3[1] = {3}, s1[1] = {1};
    qg_tensor *labels, *ls, *cor;
    QG_EXPECT_OK(qg_tensor_new(ctx, 1, s3, QG_DTYPE_I32, "labels", &labels));
    QG_EXPECT_OK(qg_tensor_write(labels, lab, sizeof lab));
    QG_EXPECT_OK(qg_tensor_new(ctx, 1, s1, QG_DTYPE_F32, "loss", &ls));
    QG_EXPECT_OK(qg_tensor_new(ctx, 1, s1, QG_DTYPE_I32, "correct", &cor));
    device_loss(ctx, m, labels, ls, cor, qg__model_logits_grad(m));
    QG_EXPECT_OK(qg__model_backward(m));
    /* the ReLU's output gradient: d loss / d x where x > 0 */
    float *gx = qg_test_read(qg__act(m, x)->grad);

    static const char *names[] = {"dw1.weight", "bn.weight", "bn.bias", "dw2.weight",
                                  "fc.weight", NULL};
    int bad = 0, checked = 0;
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        /* the last round perturbs the input itself */
        qg_param *p = names[k] ? qg__model_find_param(m, names[k]) : NULL;
        cr_assert(!names[k] || p, "%s", names[k]);
        qg_tensor *t = p ? p->value : qg__model_input(m);
        float *w = qg_test_read(t), *gr = p ? qg_test_read(p->grad) : gx;
        size_t n = qg_tensor_numel(t);
        for (int e = 0; e < 3; e++) {
            size_t i = (size_t)(e * 97 + 5) % n;
            while (!p && w[i] <= 0.05f) /* the input: away from the ReLU's kink */
                i = (i + 1) % n;
            float w0 = w[i];
            double fd = 0, best = INFINITY;
            static const float steps[3] = {4e-3f, 1e-3f, 2.5e-4f};
            for (int h = 0; h < 3; h++) {
                w[i] = w0 + steps[h];
                QG_EXPECT_OK(qg_tensor_write(t, w, n * sizeof *w));
                float lp = device_loss(ctx, m, labels, ls, cor, NULL);
                w[i] = w0 - steps[h];
                QG_EXPECT_OK(qg_tensor_write(t, w, n * sizeof *w));
                float lm = device_loss(ctx, m, labels, ls, cor, NULL);
                double d = ((double)lp - lm) / (2 * steps[h]);
                if (fabs(d - gr[i]) < best) {
                    best = fabs(d - gr[i]);
                    fd = d;
                }
            }
            w[i] = w0;
            QG_EXPECT_OK(qg_tensor_write(t, w, n * sizeof *w));
            checked++;
            if (fabs(fd - gr[i]) > 1e-3 + 3e-2 * fabs(gr[i])) {
                bad++;
                fprintf(stderr, "gradcheck %s[%zu]: analytic %.6g, finite difference %.6g\n",
                        names[k] ? names[k] : "input", i, gr[i], fd);
            }
        }
        free(w);
        if (p)
            free(gr);
    }
    cr_expect_leq(bad, 1, "%d of %d gradient entries disagree", bad, checked);
    free(gx);
    free(xin);
    qg_tensor_free(labels);
    qg_tensor_free(ls);
    qg_tensor_free(cor);
    qg__model_free(m);
}

/* A hand-made graph: input x [2,6,3,2] -> s = slice(x, 3, 3) -> j1 =
 * join(x, 0, s) (x gives its first half) -> j2 = join(j1's first 3
 * channels' slice, relu-free) ... kept small: y = join(x, 0, slice(x, 3,
 * 3)) interleaves x's halves, so y[:, 2i] = x[:, i], y[:, 2i+1] =
 * x[:, 3+i], and the gradient of x is dy unshuffled -- written by two
 * nodes, each covering half of x's channels (the partial writes). x must
 * not be the network input (which gets no gradient): a ReLU on the input
 * gives it an activation of its own. */
Test(imagenet, slice_and_join_forward_and_partial_gradients)
{
    qg_ctx *ctx = qg_test_ctx();
    qg_model *m;
    QG_EXPECT_OK(qg__model_new(ctx, "join-test", 6, 3, 2, 36, &m));
    int x = qg__node_relu(m, "relu", 0);
    int s = qg__node_chan_slice(m, "split", x, 3, 3);
    int y = qg__node_shuffle_join(m, "join", x, 0, s);
    cr_assert(x > 0 && s > 0 && y > 0);
    cr_expect_eq(qg__act(m, y)->shape[1], 6);
    /* a second join of two whole 3-channel maps takes the one-pass kernels */
    int a = qg__node_chan_slice(m, "a", y, 0, 3), b = qg__node_chan_slice(m, "b", y, 3, 3);
    int z = qg__node_shuffle_join(m, "join2", a, 0, b);
    cr_assert(z > 0);
    QG_EXPECT_OK(qg__model_setup(m, 2));
    enum { NX = 2 * 6 * 3 * 2, HW = 6 };
    float xin[NX], want_y[NX], want_z[NX];
    qg_test_fill(xin, NX, 0.1f, 1, 23); /* positive: the ReLU passes everything */
    for (int n = 0; n < 2; n++)
        for (int c = 0; c < 6; c++)
            for (int i = 0; i < HW; i++) {
                int src = c % 2 ? 3 + c / 2 : c / 2;
                want_y[(n * 6 + c) * HW + i] = xin[(n * 6 + src) * HW + i];
            }
    for (int n = 0; n < 2; n++)
        for (int c = 0; c < 6; c++)
            for (int i = 0; i < HW; i++) {
                int src = c % 2 ? 3 + c / 2 : c / 2;
                want_z[(n * 6 + c) * HW + i] = want_y[(n * 6 + src) * HW + i];
            }
    QG_EXPECT_OK(qg_tensor_write(qg__model_input(m), xin, sizeof xin));
    QG_EXPECT_OK(qg__model_forward(m, 1));
    float *gy = qg_test_read(qg__act(m, y)->value), *gz = qg_test_read(qg__act(m, z)->value);
    cr_expect(qg_test_allclose("join forward", gy, want_y, NX, 0, 0));
    cr_expect(qg_test_allclose("join2 forward", gz, want_z, NX, 0, 0));
    free(gy);
    free(gz);
    /* backward from dz: d(input) is dz pushed back through both joins,
     * i.e. (the two shuffles being a permutation P twice) dx = P^T P^T dz;
     * with the ReLU passing, the input's gradient equals dx. Checked
     * through the forward map: dx[src(src(c))] = dz[c]. */
    float dz[NX], want_dx[NX];
    qg_test_fill(dz, NX, -1, 1, 29);
    for (int n = 0; n < 2; n++)
        for (int c = 0; c < 6; c++)
            for (int i = 0; i < HW; i++) {
                int s1c = c % 2 ? 3 + c / 2 : c / 2;
                int s2c = s1c % 2 ? 3 + s1c / 2 : s1c / 2;
                want_dx[(n * 6 + s2c) * HW + i] = dz[(n * 6 + c) * HW + i];
            }
    /* make z the "logits" end: backward starts from the last activation's
     * gradient, which is z's here */
    cr_assert_eq(z, m->nacts - 1);
    QG_EXPECT_OK(qg_tensor_write(qg__act(m, z)->grad, dz, sizeof dz));
    QG_EXPECT_OK(qg__model_backward(m));
    float *dx = qg_test_read(qg__act(m, x)->grad);
    cr_expect(qg_test_allclose("dx through two joins", dx, want_dx, NX, 1e-6f, 0));
    free(dx);
    qg__model_free(m);
}
