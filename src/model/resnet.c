/* src/model/resnet.c: CIFAR ResNet builder (see resnet.h). */
#include "config.h"

#include <stdio.h>

#include "core/error.h"
#include "model/nodes.h"
#include "model/nodes_quant.h"
#include "model/resnet.h"
#include "method/m_pg.h"
#include "model/wquant_bsq.h"
#include "method/method.h"
#include "method/params.h"
#include "quant/quant.h"

/* What the methods ask of this builder, resolved once from the method
 * configuration: the node-level configurations of the gated and quantized
 * convs, and the weight quantizers of the float layers by role. */
typedef struct build {
    const qg_resnet_opts *o;
    const qg_method_cfg *mc;  /* the completed configuration */
    int quant, pg, pact, cg, postact;
    int pact_mode;            /* qg_pact_mode: PG-TF's boundaries with --pg-style tf */
    int bsq_abits;            /* BSQ's activation quantizer after block activations */
    qg_pg_cfg pgc;
    qg_cg_cfg cgc;
} build;

static void resolve(const qg_resnet_opts *o, const qg_method_cfg *mc, build *b)
{
    const qg_quant_params *q = qg__method_params(mc, QG_METHOD_QUANT);
    const qg_pg_params *pg = qg__method_params(mc, QG_METHOD_PG);
    const qg_cg_params *cg = qg__method_params(mc, QG_METHOD_CG);
    *b = (build){.o = o, .mc = mc, .quant = q != NULL, .pg = pg != NULL, .cg = cg != NULL,
                 .pact = qg__method_on(mc, QG_METHOD_PACT)};
    qg__pg_node_cfg(mc, &b->pgc);
    b->pact_mode = qg__pg_pact_mode(mc);
    const qg_bsq_params *bq = qg__method_params(mc, QG_METHOD_BSQ);
    if (bq)
        b->bsq_abits = bq->act_bits;
    if (cg) {
        b->postact = cg->postact;
        b->cgc = (qg_cg_cfg){.partitions = cg->partitions, .group = cg->group,
                             .shuffle = cg->shuffle, .spbp = cg->spbp, .ginit = cg->ginit,
                             .alpha = cg->alpha, .gtar = cg->gtar, .coef = cg->sigma};
    }
}

/* A float conv or linear layer of the given role, with the weight
 * quantizer a method gives that role (none: float weights). */
static int role_conv(qg_model *m, const build *b, qg_layer_role role, const char *n, int x,
                     int cout, int k, int stride, int pad, qg_rng *rng)
{
    const void *wq_cfg;
    const qg_wquant_ops *wq = qg__methods_wquant(b->mc, role, &wq_cfg);
    return qg__node_conv_wq(m, n, x, cout, k, stride, pad, 1, 0, wq, wq_cfg, rng);
}

/* Batch norm [+ residual] then the activation, as one fused node: the
 * ReLU, or PACT's clip with the block's shared alpha (the stem's own). */
static int bn_activation(qg_model *m, const build *o, const char *bn_name, int x,
                         int res, int stride, const char *block)
{
    char a[112];
    if (!o->pact)
        return qg__node_bn_act(m, bn_name, x, res, stride, 1);
    snprintf(a, sizeof a, "%s%srelu.upper_bound", block, *block ? "." : "");
    /* (the fused node has PyTorch's boundaries only) */
    if (!o->o->pact_unfused && o->pact_mode == QG_PACT_PG)
        return qg__node_bn_pact(m, bn_name, x, res, stride, a);
    char n[112];
    snprintf(n, sizeof n, "%s.pact", bn_name);
    x = qg__node_bn_act(m, bn_name, x, res, stride, 0);
    return x >= 0 ? qg__node_pact_mode(m, n, x, a, o->pact_mode) : x;
}

/* BSQ's Q_a after a block's activation (ReLU6 unless PACT clips). */
static int block_qact(qg_model *m, const build *o, const char *bn_name, int x)
{
    if (!o->bsq_abits || x < 0)
        return x;
    char n[112];
    snprintf(n, sizeof n, "%s.qact", bn_name);
    return qg__node_bsq_qact(m, n, x, o->bsq_abits, o->pact ? 0.0f : 6.0f);
}

static int block_conv(qg_model *m, const build *o, const char *n, int x, int planes,
                      int stride, int gated, qg_rng *rng)
{
    if (o->cg && gated)
        return qg__node_cgconv(m, n, x, planes, 3, stride, 1, &o->cgc, rng);
    if (o->pg && gated)
        return qg__node_pgconv(m, n, x, planes, 3, stride, 1, &o->pgc, rng);
    if (o->quant || o->pg)
        return qg__node_qconv(m, n, x, planes, 3, stride, 1, &o->pgc, rng);
    return role_conv(m, o, QG_ROLE_BLOCK, n, x, planes, 3, stride, 1, rng);
}

static int basic_block(qg_model *m, const build *o, const char *name, int x,
                       int planes, int stride, char shortcut, qg_rng *rng)
{
    char n[96];
    int cin = (int)qg__act(m, x)->shape[1];
    snprintf(n, sizeof n, "%s.conv1", name);
    int h = block_conv(m, o, n, x, planes, stride, 1, rng);
    snprintf(n, sizeof n, "%s.bn1", name);
    if (h >= 0)
        h = block_qact(m, o, n, bn_activation(m, o, n, h, -1, 1, name));
    snprintf(n, sizeof n, "%s.conv2", name);
    if (h >= 0)
        h = block_conv(m, o, n, h, planes, 1, o->postact, rng);
    int sc = x;
    if (h >= 0 && shortcut == 'B' && (stride != 1 || cin != planes)) {
        snprintf(n, sizeof n, "%s.shortcut.0", name);
        sc = role_conv(m, o, QG_ROLE_SHORTCUT, n, x, planes, 1, stride, 0, rng);
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
    return h >= 0 ? block_qact(m, o, n, bn_activation(m, o, n, h, sc, stride, name)) : h;
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
    /* a completed copy: derived values (PG turns quantization on) set */
    qg_method_cfg mc;
    if (o->methods) {
        mc = *o->methods;
        if (qg__method_cfg_finish(&mc) != QG_OK)
            return qg__error(ctx, QG_ERR_INVALID_ARG, "%s", qg_last_error());
    } else {
        qg__method_cfg_init(&mc);
    }
    if (qg__method_on(&mc, QG_METHOD_PROQHA))
        return qg__model_resnet_preact(ctx, o, &mc, out);
    build b;
    resolve(o, &mc, &b);
    if (b.cg && (b.cgc.partitions < 1 || 16 % b.cgc.partitions))
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%d partitions must divide the channel "
                         "counts of the gated convs (16, 32, 64)", b.cgc.partitions);
    if (b.cg && qg__cg_cfg_check(ctx, "channel gating", 16, 16, &b.cgc) != QG_OK)
        return QG_ERR_INVALID_ARG;
    char arch[32];
    snprintf(arch, sizeof arch, "resnet%d", o->depth);
    qg_status st = qg__model_new(ctx, arch, o->in_c, o->in_h, o->in_w, o->classes, &m);
    if (st != QG_OK)
        return st;
    m->shortcut = o->shortcut;
    if (qg_method_cfg_copy(&mc, &m->methods) != QG_OK) {
        qg__model_free(m);
        return qg__error(ctx, QG_ERR_NOMEM, "out of memory");
    }
    qg_rng rng = {o->seed * 0x2545F4914F6CDD1DULL + 1};
    int blocks = (o->depth - 2) / 6;
    int x = role_conv(m, &b, QG_ROLE_STEM, "conv1", 0, 16, 3, 1, 1, &rng);
    if (x >= 0)
        x = bn_activation(m, &b, "bn1", x, -1, 1, "");
    static const int planes[3] = {16, 32, 64};
    for (int s = 0; s < 3 && x >= 0; s++)
        for (int k = 0; k < blocks && x >= 0; k++) {
            char name[32];
            snprintf(name, sizeof name, "layer%d.%d", s + 1, k);
            x = basic_block(m, &b, name, x, planes[s], (s > 0 && k == 0) ? 2 : 1, o->shortcut,
                            &rng);
        }
    if (x >= 0)
        x = qg__node_gap(m, "avgpool", x);
    if (x >= 0) {
        const void *wq_cfg;
        const qg_wquant_ops *wq = qg__methods_wquant(&mc, QG_ROLE_CLASSIFIER, &wq_cfg);
        x = qg__node_linear_wq(m, "linear", x, o->classes, wq, wq_cfg, &rng);
    }
    if (x >= 0)
        st = qg__methods_model_ready(m, &mc);
    if (x < 0 || st != QG_OK) {
        st = st != QG_OK ? st : QG_ERR_NOMEM;
        if (qg_ctx_last_error(ctx)[0] == 0)
            qg__error(ctx, st, "building %s failed", arch);
        qg__model_free(m);
        return st;
    }
    *out = m;
    return QG_OK;
}
