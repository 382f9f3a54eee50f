/* src/model/resnet.c: CIFAR ResNet builder (see resnet.h). */
#include "config.h"

#include <stdio.h>

#include "core/error.h"
#include "model/nodes.h"
#include "model/nodes_quant.h"
#include "model/resnet.h"

/* Batch norm [+ residual] then the activation, as one fused node: the
 * ReLU, or PACT's clip with the block's shared alpha (the stem's own). */
static int bn_activation(qg_model *m, const qg_resnet_opts *o, const char *bn_name, int x,
                         int res, int stride, const char *block)
{
    char a[112];
    if (!o->pact)
        return qg__node_bn_act(m, bn_name, x, res, stride, 1);
    snprintf(a, sizeof a, "%s%srelu.upper_bound", block, *block ? "." : "");
    if (!o->pact_unfused)
        return qg__node_bn_pact(m, bn_name, x, res, stride, a);
    char n[112];
    snprintf(n, sizeof n, "%s.pact", bn_name);
    x = qg__node_bn_act(m, bn_name, x, res, stride, 0);
    return x >= 0 ? qg__node_pact(m, n, x, a) : x;
}

static int block_conv(qg_model *m, const qg_resnet_opts *o, const char *n, int x, int planes,
                      int stride, int gated, qg_rng *rng)
{
    if (o->cg && gated)
        return qg__node_cgconv(m, n, x, planes, 3, stride, 1, &o->cg_cfg, rng);
    if (o->pg && gated)
        return qg__node_pgconv(m, n, x, planes, 3, stride, 1, &o->cfg, rng);
    if (o->quant || o->pg)
        return qg__node_qconv(m, n, x, planes, 3, stride, 1, &o->cfg, rng);
    return qg__node_conv(m, n, x, planes, 3, stride, 1, 1, 0, rng);
}

static int basic_block(qg_model *m, const qg_resnet_opts *o, const char *name, int x,
                       int planes, int stride, char shortcut, qg_rng *rng)
{
    char n[96];
    int cin = (int)qg__act(m, x)->shape[1];
    snprintf(n, sizeof n, "%s.conv1", name);
    int h = block_conv(m, o, n, x, planes, stride, 1, rng);
    snprintf(n, sizeof n, "%s.bn1", name);
    if (h >= 0)
        h = bn_activation(m, o, n, h, -1, 1, name);
    snprintf(n, sizeof n, "%s.conv2", name);
    if (h >= 0)
        h = block_conv(m, o, n, h, planes, 1, o->postact, rng);
    int sc = x;
    if (h >= 0 && shortcut == 'B' && (stride != 1 || cin != planes)) {
        snprintf(n, sizeof n, "%s.shortcut.0", name);
        sc = qg__node_conv(m, n, x, planes, 1, stride, 0, 1, 0, rng);
        snprintf(n, sizeof n, "%s.shortcut.1", name);
        if (sc >= 0)
            sc = qg__node_bn(m, n, sc);
        if (sc < 0)
            return -1;
    }
    snprintf(n, sizeof n, "%s.bn2", name);
    if (o->postact) {
        /* Post-activated: relu(bn2(conv2)) + shortcut, no ReLU after the add. */
        if (h >= 0)
            h = bn_activation(m, o, n, h, -1, 1, name);
        snprintf(n, sizeof n, "%s.add", name);
        if (h >= 0)
            h = qg__node_residual(m, n, h, sc, stride);
        return h;
    }
    /* bn2, the residual add and the ReLU or PACT in one node. */
    return h >= 0 ? bn_activation(m, o, n, h, sc, stride, name) : h;
}

qg_status qg__model_resnet_cifar(qg_ctx *ctx, const qg_resnet_opts *o, qg_model **out)
{
    qg_model *m = NULL;
    *out = NULL;
    if (o->depth < 8 || (o->depth - 2) % 6 != 0)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "ResNet depth %d is not 6n+2 (20, 32, 44, "
                         "56, 110)", o->depth);
    if (o->shortcut != 'A' && o->shortcut != 'B')
        return qg__error(ctx, QG_ERR_INVALID_ARG, "shortcut option must be A or B, not '%c'",
                         o->shortcut);
    if (o->quant || o->pg) {
        const qg_pg_cfg *c = &o->cfg;
        if (c->wbits < 2 || c->wbits > 16 || c->abits < 2 || c->abits > 16)
            return qg__error(ctx, QG_ERR_INVALID_ARG, "bit widths must be in 2..16 (got -w %d "
                             "-a %d)", c->wbits, c->abits);
        if (o->pg && (c->pred_bits < 1 || c->pred_bits >= c->abits))
            return qg__error(ctx, QG_ERR_INVALID_ARG, "--pb %d: prediction bits must be at "
                             "least 1 and fewer than --abits %d", c->pred_bits, c->abits);
    }
    if (o->cg && (o->quant || o->pg || o->pact))
        return qg__error(ctx, QG_ERR_INVALID_ARG, "channel gating builds the full-precision "
                         "ResNet with ReLUs: it excludes quantization, PG and PACT");
    if (o->cg && (o->cg_cfg.partitions < 1 || 16 % o->cg_cfg.partitions))
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%d partitions must divide the channel "
                         "counts of the gated convs (16, 32, 64)", o->cg_cfg.partitions);
    if (o->cg && qg__cg_cfg_check(ctx, "channel gating", 16, 16, &o->cg_cfg) != QG_OK)
        return QG_ERR_INVALID_ARG;
    if (o->postact && !o->cg)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "the post-activated ResNet exists only as "
                         "the channel-gated model (postact needs cg)");
    char arch[32];
    snprintf(arch, sizeof arch, "resnet%d", o->depth);
    qg_status st = qg__model_new(ctx, arch, o->in_c, o->in_h, o->in_w, o->classes, &m);
    if (st != QG_OK)
        return st;
    qg_rng rng = {o->seed * 0x2545F4914F6CDD1DULL + 1};
    int blocks = (o->depth - 2) / 6;
    int x = qg__node_conv(m, "conv1", 0, 16, 3, 1, 1, 1, 0, &rng);
    if (x >= 0)
        x = bn_activation(m, o, "bn1", x, -1, 1, "");
    static const int planes[3] = {16, 32, 64};
    for (int s = 0; s < 3 && x >= 0; s++)
        for (int b = 0; b < blocks && x >= 0; b++) {
            char name[32];
            snprintf(name, sizeof name, "layer%d.%d", s + 1, b);
            x = basic_block(m, o, name, x, planes[s], (s > 0 && b == 0) ? 2 : 1, o->shortcut, &rng);
        }
    if (x >= 0)
        x = qg__node_gap(m, "avgpool", x);
    if (x >= 0)
        x = qg__node_linear(m, "linear", x, o->classes, &rng);
    if (x < 0) {
        st = QG_ERR_NOMEM;
        if (qg_ctx_last_error(ctx)[0] == 0)
            qg__error(ctx, st, "building %s failed", arch);
        qg__model_free(m);
        return st;
    }
    *out = m;
    return QG_OK;
}
