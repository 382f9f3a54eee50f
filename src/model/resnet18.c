/* src/model/resnet18.c: torchvision's ResNet-18 (see imagenet.h), and the
 * dispatch over the ImageNet-style builders. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "method/m_proqha.h"
#include "model/build.h"
#include "model/imagenet.h"
#include "model/nodes.h"
#include "model/nodes_pq.h"
#include "model/nodes_shuffle.h"

int qg__model_imagenet_known(const char *arch)
{
    return arch && (!strcmp(arch, "resnet18") || !strcmp(arch, "shufflenet_v2_x0_5"));
}

qg_status qg__model_imagenet(qg_ctx *ctx, const qg_imagenet_opts *o, qg_model **out)
{
    *out = NULL;
    if (o->arch && !strcmp(o->arch, "resnet18"))
        return qg__model_resnet18(ctx, o, out);
    if (o->arch && !strcmp(o->arch, "shufflenet_v2_x0_5"))
        return qg__model_shufflenet_v2(ctx, o, out);
    return qg__error(ctx, QG_ERR_INVALID_ARG, "unknown model '%s'", o->arch ? o->arch : "");
}

/* Under --proqha the block of ProQHA's ImageNet ResNet-18
 * (OriQuantBasicBlock): conv1 -> bn1 -> PACTq -> conv2 -> bn2 (+ shortcut)
 * -> PACTq, the two block convs with the method's DoReFa weights. Each
 * PACTq (layerS.K.act1/act2) and each block conv is a bit-width slot: 16
 * + 16 = 32 quantizers, in the reference's order (weight, act, weight,
 * act). The stem, the downsample convs and the FC stay float (their roles
 * get no quantizer from the method) and outside the cost. */
static int pq_tail(qg_model *m, int abits, const char *name, const char *bn, const char *act,
                   int h, int res)
{
    char n[96];
    snprintf(n, sizeof n, "%s.%s", name, bn);
    h = qg__node_bn_act(m, n, h, res, 1, 0);
    snprintf(n, sizeof n, "%s.%s", name, act);
    return h >= 0 ? qg__node_pact_quant(m, n, h, abits) : h;
}

/* BasicBlock: relu(bn2(conv2(relu(bn1(conv1 x)))) + shortcut), the
 * shortcut a 1x1 conv + BN (downsample.0/.1) when the shape changes. The
 * downsample is built first so that the eval-mode fold of conv2 finds the
 * residual ready. PACT: one alpha per block. */
static int basic_block(qg_model *m, qg_build *b, const char *name, int x, int planes,
                       int stride)
{
    char n[96], a[96];
    int cin = (int)qg__act(m, x)->shape[1];
    int sc = x;
    snprintf(a, sizeof a, "%s.relu.upper_bound", name);
    if (stride != 1 || cin != planes) {
        snprintf(n, sizeof n, "%s.downsample.0", name);
        sc = qg__build_conv(m, b, QG_ROLE_SHORTCUT, 0, n, x, planes, 1, stride, 0);
        snprintf(n, sizeof n, "%s.downsample.1", name);
        if (sc >= 0)
            sc = qg__node_bn(m, n, sc);
        if (sc < 0)
            return -1;
    }
    snprintf(n, sizeof n, "%s.conv1", name);
    int h = qg__build_conv(m, b, QG_ROLE_BLOCK, 1, n, x, planes, 3, stride, 1);
    const qg_proqha_params *pq = qg__method_params(&b->mc, QG_METHOD_PROQHA);
    if (pq) {
        int abits = qg__proqha_abits(pq);
        if (h >= 0)
            h = pq_tail(m, abits, name, "bn1", "act1", h, -1);
        snprintf(n, sizeof n, "%s.conv2", name);
        if (h >= 0)
            h = qg__build_conv(m, b, QG_ROLE_BLOCK, 0, n, h, planes, 3, 1, 1);
        return h >= 0 ? pq_tail(m, abits, name, "bn2", "act2", h, sc) : h;
    }
    snprintf(n, sizeof n, "%s.bn1", name);
    if (h >= 0)
        h = qg__build_bn_act(m, b, n, h, -1, 1, a);
    snprintf(n, sizeof n, "%s.conv2", name);
    if (h >= 0)
        h = qg__build_conv(m, b, QG_ROLE_BLOCK, 0, n, h, planes, 3, 1, 1);
    snprintf(n, sizeof n, "%s.bn2", name);
    return h >= 0 ? qg__build_bn_act(m, b, n, h, sc, 1, a) : h;
}

qg_status qg__model_resnet18(qg_ctx *ctx, const qg_imagenet_opts *o, qg_model **out)
{
    *out = NULL;
    qg_build b;
    qg_status st = qg__build_init(ctx, &b, o->methods, o->seed);
    if (st != QG_OK)
        return st;
    /* PG gates both convs of a block (as the CIFAR ResNet); CG the first */
    if (b.cg && (b.cgc.partitions < 1 || 64 % b.cgc.partitions))
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%d partitions must divide the channel "
                         "counts of the gated convs (64, 128, 256, 512)", b.cgc.partitions);
    if (b.cg && qg__cg_cfg_check(ctx, "channel gating", 64, 64, &b.cgc) != QG_OK)
        return QG_ERR_INVALID_ARG;
    if (o->in_h < 32 || o->in_w < 32)
        return qg__error(ctx, QG_ERR_SHAPE, "resnet18 needs inputs of at least 32x32, not "
                         "%dx%d", o->in_h, o->in_w);
    qg_model *m = NULL;
    if ((st = qg__model_new(ctx, "resnet18", o->in_c, o->in_h, o->in_w, o->classes, &m)) !=
        QG_OK)
        return st;
    int x = qg__build_conv(m, &b, QG_ROLE_STEM, 0, "conv1", 0, 64, 7, 2, 3);
    if (x >= 0)
        x = qg__build_bn_act(m, &b, "bn1", x, -1, 1, "relu.upper_bound");
    if (x >= 0)
        x = qg__node_maxpool(m, "maxpool", x, 3, 2, 1);
    static const int planes[4] = {64, 128, 256, 512};
    for (int s = 0; s < 4 && x >= 0; s++)
        for (int k = 0; k < 2 && x >= 0; k++) {
            char name[32];
            snprintf(name, sizeof name, "layer%d.%d", s + 1, k);
            x = basic_block(m, &b, name, x, planes[s], (s > 0 && k == 0) ? 2 : 1);
        }
    if (x >= 0)
        x = qg__node_gap(m, "avgpool", x);
    if (x >= 0)
        x = qg__build_linear(m, &b, "fc", x, o->classes);
    if (x >= 0)
        st = qg__build_finish(m, &b);
    if (x < 0 || st != QG_OK) {
        st = st != QG_OK ? st : QG_ERR_NOMEM;
        if (qg_ctx_last_error(ctx)[0] == 0)
            qg__error(ctx, st, "building resnet18 failed");
        qg__model_free(m);
        return st;
    }
    *out = m;
    return QG_OK;
}
