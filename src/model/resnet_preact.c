/* src/model/resnet_preact.c: the pre-activation CIFAR ResNet of ProQHA
 * (its models/cifar10/quant/resnet20.py; docs/methods.md §8.3), built when
 * --proqha is on. Per block:
 *     a1 = PACTq(bn1(x));  h = conv1(a1);  a2 = PACTq(bn2(h));
 *     out = conv2(a2) + shortcut(a1)
 * with the option-A shortcut (identity, or stride-2 subsampling and zero
 * channels) taken from the activated input a1. The block convs get their
 * weight quantizer from the methods' wquant hook (ProQHA: DoReFa, one
 * bit-width slot each); each PACTq is a bit-width slot too, so a
 * ResNet-20 has 9 blocks x 4 = 36 quantizers. The 3x3 stem conv, the
 * final batch norm + ReLU and the classifier stay float and outside the
 * cost (no slots). Parameter names follow the CIFAR ResNet's (conv1,
 * layer1.0.conv1, ..., linear) plus layerS.K.bn1/bn2, layerS.K.act1/act2
 * (.alpha, .kbits), layerS.K.conv1.kbits and the final bn. */
#include "config.h"

#include <stdio.h>

#include "core/error.h"
#include "method/m_proqha.h"
#include "method/method.h"
#include "model/nodes.h"
#include "model/nodes_pq.h"
#include "model/resnet.h"

static int conv_role(qg_model *m, const qg_method_cfg *mc, qg_layer_role role, const char *n,
                     int x, int cout, int k, int stride, int pad, qg_rng *rng)
{
    const void *wq_cfg = NULL;
    const qg_wquant_ops *wq = qg__methods_wquant(mc, role, &wq_cfg);
    return qg__node_conv_wq(m, n, x, cout, k, stride, pad, 1, 0, wq, wq_cfg, rng);
}

static int block(qg_model *m, const qg_method_cfg *mc, int abits, const char *name, int x,
                 int planes, int stride, qg_rng *rng)
{
    char n[96];
    snprintf(n, sizeof n, "%s.bn1", name);
    int a1 = qg__node_bn(m, n, x);
    snprintf(n, sizeof n, "%s.act1", name);
    if (a1 >= 0)
        a1 = qg__node_pact_quant(m, n, a1, abits);
    snprintf(n, sizeof n, "%s.conv1", name);
    int h = a1 >= 0 ? conv_role(m, mc, QG_ROLE_BLOCK, n, a1, planes, 3, stride, 1, rng) : -1;
    snprintf(n, sizeof n, "%s.bn2", name);
    if (h >= 0)
        h = qg__node_bn(m, n, h);
    snprintf(n, sizeof n, "%s.act2", name);
    if (h >= 0)
        h = qg__node_pact_quant(m, n, h, abits);
    snprintf(n, sizeof n, "%s.conv2", name);
    if (h >= 0)
        h = conv_role(m, mc, QG_ROLE_BLOCK, n, h, planes, 3, 1, 1, rng);
    snprintf(n, sizeof n, "%s.add", name);
    return h >= 0 ? qg__node_residual(m, n, h, a1, stride) : -1;
}

qg_status qg__model_resnet_preact(qg_ctx *ctx, const qg_resnet_opts *o, const qg_method_cfg *mc,
                                  qg_model **out)
{
    qg_model *m = NULL;
    *out = NULL;
    const qg_proqha_params *pq = qg__method_params(mc, QG_METHOD_PROQHA);
    if (!pq)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "the pre-activation ResNet needs --proqha");
    if (o->shortcut != 'A')
        return qg__error(ctx, QG_ERR_INVALID_ARG, "the pre-activation ResNet (--proqha) has "
                         "option-A shortcuts only, not '%c'", o->shortcut);
    char arch[32];
    snprintf(arch, sizeof arch, "resnet%d", o->depth);
    qg_status st = qg__model_new(ctx, arch, o->in_c, o->in_h, o->in_w, o->classes, &m);
    if (st != QG_OK)
        return st;
    m->shortcut = o->shortcut;
    if (qg_method_cfg_copy(mc, &m->methods) != QG_OK) {
        qg__model_free(m);
        return qg__error(ctx, QG_ERR_NOMEM, "out of memory");
    }
    qg_rng rng = {o->seed * 0x2545F4914F6CDD1DULL + 1};
    int blocks = (o->depth - 2) / 6, abits = qg__proqha_abits(pq);
    int x = conv_role(m, mc, QG_ROLE_STEM, "conv1", 0, 16, 3, 1, 1, &rng);
    static const int planes[3] = {16, 32, 64};
    for (int s = 0; s < 3 && x >= 0; s++)
        for (int k = 0; k < blocks && x >= 0; k++) {
            char name[32];
            snprintf(name, sizeof name, "layer%d.%d", s + 1, k);
            x = block(m, mc, abits, name, x, planes[s], (s > 0 && k == 0) ? 2 : 1, &rng);
        }
    if (x >= 0)
        x = qg__node_bn_act(m, "bn", x, -1, 1, 1);
    if (x >= 0)
        x = qg__node_gap(m, "avgpool", x);
    if (x >= 0) {
        const void *wq_cfg = NULL;
        const qg_wquant_ops *wq = qg__methods_wquant(mc, QG_ROLE_CLASSIFIER, &wq_cfg);
        x = qg__node_linear_wq(m, "linear", x, o->classes, wq, wq_cfg, &rng);
    }
    if (x >= 0)
        st = qg__methods_model_ready(m, mc);
    if (x < 0 || st != QG_OK) {
        st = st != QG_OK ? st : QG_ERR_NOMEM;
        if (qg_ctx_last_error(ctx)[0] == 0)
            qg__error(ctx, st, "building the pre-activation %s failed", arch);
        qg__model_free(m);
        return st;
    }
    *out = m;
    return QG_OK;
}
