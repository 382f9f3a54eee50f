/* src/model/build.c: method-aware layer helpers of the model builders
 * (see build.h). */
#include "config.h"

#include <stdio.h>

#include "core/error.h"
#include "method/m_pg.h"
#include "quant/quant.h"
#include "method/params.h"
#include "model/build.h"
#include "model/nodes.h"

qg_status qg__build_init(qg_ctx *ctx, qg_build *b, const qg_method_cfg *methods,
                         uint64_t seed)
{
    *b = (qg_build){.rng = {seed * 0x2545F4914F6CDD1DULL + 1}};
    if (methods) {
        b->mc = *methods;
        if (qg__method_cfg_finish(&b->mc) != QG_OK)
            return qg__error(ctx, QG_ERR_INVALID_ARG, "%s", qg_last_error());
    } else {
        qg__method_cfg_init(&b->mc);
    }
    const qg_quant_params *q = qg__method_params(&b->mc, QG_METHOD_QUANT);
    const qg_pg_params *pg = qg__method_params(&b->mc, QG_METHOD_PG);
    const qg_cg_params *cg = qg__method_params(&b->mc, QG_METHOD_CG);
    b->quant = q != NULL;
    b->pg = pg != NULL;
    b->cg = cg != NULL;
    b->pact = qg__method_on(&b->mc, QG_METHOD_PACT);
    (void)q;
    (void)pg;
    /* the same node settings as the CIFAR ResNets (style, bits, target) */
    qg__pg_node_cfg(&b->mc, &b->pgc);
    b->pact_mode = qg__pg_pact_mode(&b->mc);
    if (cg) {
        if (cg->postact)
            return qg__error(ctx, QG_ERR_INVALID_ARG, "--postact applies to the CIFAR ResNets "
                             "only");
        b->cgc = (qg_cg_cfg){.partitions = cg->partitions, .group = cg->group,
                             .shuffle = cg->shuffle, .spbp = cg->spbp, .ginit = cg->ginit,
                             .alpha = cg->alpha, .gtar = cg->gtar, .coef = cg->sigma};
    }
    return QG_OK;
}

int qg__build_conv(qg_model *m, qg_build *b, qg_layer_role role, int gated, const char *name,
                   int x, int cout, int k, int stride, int pad)
{
    if (gated && b->cg)
        return qg__node_cgconv(m, name, x, cout, k, stride, pad, &b->cgc, &b->rng);
    if (gated && b->pg)
        return qg__node_pgconv(m, name, x, cout, k, stride, pad, &b->pgc, &b->rng);
    if (role == QG_ROLE_BLOCK && (b->quant || b->pg))
        return qg__node_qconv(m, name, x, cout, k, stride, pad, &b->pgc, &b->rng);
    const void *wq_cfg;
    const qg_wquant_ops *wq = qg__methods_wquant(&b->mc, role, &wq_cfg);
    return qg__node_conv_wq(m, name, x, cout, k, stride, pad, 1, 0, wq, wq_cfg, &b->rng);
}

int qg__build_linear(qg_model *m, qg_build *b, const char *name, int x, int out_features)
{
    const void *wq_cfg;
    const qg_wquant_ops *wq = qg__methods_wquant(&b->mc, QG_ROLE_CLASSIFIER, &wq_cfg);
    return qg__node_linear_wq(m, name, x, out_features, wq, wq_cfg, &b->rng);
}

int qg__build_bn_act(qg_model *m, const qg_build *b, const char *bn_name, int x, int res,
                     int act, const char *alpha_name)
{
    if (act && b->pact && b->pact_mode == QG_PACT_PG) /* the fused node: PyTorch's bounds */
        return qg__node_bn_pact(m, bn_name, x, res, 1, alpha_name);
    if (!act || !b->pact)
        return qg__node_bn_act(m, bn_name, x, res, 1, act);
    char n[112];
    snprintf(n, sizeof n, "%s.pact", bn_name);
    x = qg__node_bn_act(m, bn_name, x, res, 1, 0);
    return x >= 0 ? qg__node_pact_mode(m, n, x, alpha_name, b->pact_mode) : x;
}

qg_status qg__build_finish(qg_model *m, const qg_build *b)
{
    if (qg_method_cfg_copy(&b->mc, &m->methods) != QG_OK)
        return qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
    return qg__methods_model_ready(m, &b->mc);
}
