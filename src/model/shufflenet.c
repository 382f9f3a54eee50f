/* src/model/shufflenet.c: torchvision's ShuffleNet V2 0.5x (see
 * imagenet.h). A block of stride 2 runs two branches on its whole input,
 *   branch1: dw3x3/s2 -> BN -> 1x1 -> BN-ReLU
 *   branch2: 1x1 -> BN-ReLU -> dw3x3/s2 -> BN -> 1x1 -> BN-ReLU,
 * a block of stride 1 keeps the first half of its input channels and runs
 * branch2 on the second half; the join interleaves [shortcut, branch2]
 * channel by channel (torchvision's channel_shuffle(cat(.), 2)). With PACT
 * on, every BN-ReLU is a BN-PACT with its own alpha and one more PACT clips
 * the joined tensor (the TensorFlow original's --pact). */
#include "config.h"

#include <stdio.h>

#include "core/error.h"
#include "method/method.h"
#include "model/build.h"
#include "model/imagenet.h"
#include "model/nodes.h"
#include "model/nodes_quant.h"
#include "model/nodes_shuffle.h"

/* torchvision's stages_out_channels for width 0.5 */
static const int widths[5] = {24, 48, 96, 192, 1024};
static const int repeats[3] = {4, 8, 4};

static int bn_act(qg_model *m, const qg_build *b, const char *bn, int x, int act)
{
    char a[112];
    snprintf(a, sizeof a, "%s.upper_bound", bn);
    return qg__build_bn_act(m, b, bn, x, -1, act, a);
}

static int dwconv(qg_model *m, qg_build *b, const char *name, int x, int stride)
{
    const void *wq_cfg;
    const qg_wquant_ops *wq = qg__methods_wquant(&b->mc, QG_ROLE_BLOCK, &wq_cfg);
    /* PG-TF quantizes the depthwise convs' input only */
    x = qg__methods_quant_input(m, &b->mc, QG_ROLE_DEPTHWISE, name, x);
    return x >= 0 ? qg__node_dwconv(m, name, x, stride, 1, wq, wq_cfg, &b->rng) : x;
}

/* The layers of `pre`.{0..6} (branch2), or of `pre`.{0..3} (branch1: dw,
 * BN, 1x1, BN-ReLU). */
static int branch2(qg_model *m, qg_build *b, const char *pre, int x, int bf, int stride)
{
    char n[96];
    snprintf(n, sizeof n, "%s.0", pre);
    x = qg__build_conv(m, b, QG_ROLE_BLOCK, 1, n, x, bf, 1, 1, 0);
    snprintf(n, sizeof n, "%s.1", pre);
    if (x >= 0)
        x = bn_act(m, b, n, x, 1);
    snprintf(n, sizeof n, "%s.3", pre);
    if (x >= 0)
        x = dwconv(m, b, n, x, stride);
    snprintf(n, sizeof n, "%s.4", pre);
    if (x >= 0)
        x = bn_act(m, b, n, x, 0);
    snprintf(n, sizeof n, "%s.5", pre);
    if (x >= 0)
        x = qg__build_conv(m, b, QG_ROLE_BLOCK, 1, n, x, bf, 1, 1, 0);
    snprintf(n, sizeof n, "%s.6", pre);
    return x >= 0 ? bn_act(m, b, n, x, 1) : x;
}

static int branch1(qg_model *m, qg_build *b, const char *pre, int x, int bf, int stride)
{
    char n[96];
    snprintf(n, sizeof n, "%s.0", pre);
    x = dwconv(m, b, n, x, stride);
    snprintf(n, sizeof n, "%s.1", pre);
    if (x >= 0)
        x = bn_act(m, b, n, x, 0);
    snprintf(n, sizeof n, "%s.2", pre);
    if (x >= 0)
        x = qg__build_conv(m, b, QG_ROLE_BLOCK, 1, n, x, bf, 1, 1, 0);
    snprintf(n, sizeof n, "%s.3", pre);
    return x >= 0 ? bn_act(m, b, n, x, 1) : x;
}

static int block(qg_model *m, qg_build *b, const char *name, int x, int oup, int stride)
{
    char n[96];
    int bf = oup / 2, sc, h;
    if (stride > 1) {
        snprintf(n, sizeof n, "%s.branch1", name);
        sc = branch1(m, b, n, x, bf, stride);
        snprintf(n, sizeof n, "%s.branch2", name);
        h = sc >= 0 ? branch2(m, b, n, x, bf, stride) : -1;
        snprintf(n, sizeof n, "%s.join", name);
        x = h >= 0 ? qg__node_shuffle_join(m, n, sc, 0, h) : -1;
    } else {
        snprintf(n, sizeof n, "%s.split", name);
        h = qg__node_chan_slice(m, n, x, bf, bf);
        snprintf(n, sizeof n, "%s.branch2", name);
        if (h >= 0)
            h = branch2(m, b, n, h, bf, 1);
        snprintf(n, sizeof n, "%s.join", name);
        x = h >= 0 ? qg__node_shuffle_join(m, n, x, 0, h) : -1;
    }
    if (x >= 0 && b->pact) {
        char a[112];
        snprintf(n, sizeof n, "%s.pact", name);
        snprintf(a, sizeof a, "%s.pact.upper_bound", name);
        x = qg__node_pact_mode(m, n, x, a, b->pact_mode);
    }
    return x;
}

qg_status qg__model_shufflenet_v2(qg_ctx *ctx, const qg_imagenet_opts *o, qg_model **out)
{
    *out = NULL;
    qg_build b;
    qg_status st = qg__build_init(ctx, &b, o->methods, o->seed);
    if (st != QG_OK)
        return st;
    if (qg__method_on(&b.mc, QG_METHOD_PROQHA))
        return qg__error(ctx, QG_ERR_INVALID_ARG, "--proqha builds its own networks: the "
                         "pre-activation CIFAR ResNets and resnet18, not shufflenet_v2_x0_5");
    if (b.cg && (b.cgc.partitions < 1 || 24 % b.cgc.partitions))
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%d partitions must divide the channel "
                         "counts of the gated convs (24, 48, 96)", b.cgc.partitions);
    if (b.cg && qg__cg_cfg_check(ctx, "channel gating", 24, 24, &b.cgc) != QG_OK)
        return QG_ERR_INVALID_ARG;
    if (o->in_h < 32 || o->in_w < 32)
        return qg__error(ctx, QG_ERR_SHAPE, "shufflenet_v2_x0_5 needs inputs of at least "
                         "32x32, not %dx%d", o->in_h, o->in_w);
    qg_model *m = NULL;
    if ((st = qg__model_new(ctx, "shufflenet_v2_x0_5", o->in_c, o->in_h, o->in_w, o->classes,
                            &m)) != QG_OK)
        return st;
    int x = qg__build_conv(m, &b, QG_ROLE_STEM, 0, "conv1.0", 0, widths[0], 3, 2, 1);
    if (x >= 0)
        x = bn_act(m, &b, "conv1.1", x, 1);
    if (x >= 0)
        x = qg__node_maxpool(m, "maxpool", x, 3, 2, 1);
    for (int s = 0; s < 3 && x >= 0; s++)
        for (int k = 0; k < repeats[s] && x >= 0; k++) {
            char name[32];
            snprintf(name, sizeof name, "stage%d.%d", s + 2, k);
            x = block(m, &b, name, x, widths[s + 1], k == 0 ? 2 : 1);
        }
    /* conv5 is part of the head: float like the stem in the original */
    if (x >= 0)
        x = qg__build_conv(m, &b, QG_ROLE_CLASSIFIER, 0, "conv5.0", x, widths[4], 1, 1, 0);
    if (x >= 0)
        x = bn_act(m, &b, "conv5.1", x, 1);
    if (x >= 0)
        x = qg__node_gap(m, "avgpool", x);
    if (x >= 0)
        x = qg__build_linear(m, &b, "fc", x, o->classes);
    if (x >= 0)
        st = qg__build_finish(m, &b);
    if (x < 0 || st != QG_OK) {
        st = st != QG_OK ? st : QG_ERR_NOMEM;
        if (qg_ctx_last_error(ctx)[0] == 0)
            qg__error(ctx, st, "building shufflenet_v2_x0_5 failed");
        qg__model_free(m);
        return st;
    }
    *out = m;
    return QG_OK;
}
