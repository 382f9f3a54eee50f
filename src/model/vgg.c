/* src/model/vgg.c: VGG16-bn (see vgg.h). */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/build.h"
#include "model/nodes.h"
#include "model/nodes_shuffle.h"
#include "model/vgg.h"
#include "tensor/tensor_impl.h"

/* configuration D; 0 is a max pool */
static const int cfg_d[] = {64, 64, 0, 128, 128, 0, 256, 256, 256, 0,
                            512, 512, 512, 0, 512, 512, 512, 0};
#define HIDDEN 4096
#define DROPOUT_P 0.5f

int qg__model_vgg_known(const char *arch, int *div)
{
    static const char base[] = "vgg16_bn";
    if (!arch || strncmp(arch, base, sizeof base - 1) != 0)
        return 0;
    const char *r = arch + sizeof base - 1;
    int d = 1;
    if (*r) {
        if (strncmp(r, "_div", 4) != 0 || r[4] < '1' || r[4] > '9')
            return 0;
        char *end;
        long v = strtol(r + 4, &end, 10);
        if (*end || v < 2 || v > 64 || (v & (v - 1)))
            return 0;
        d = (int)v;
    }
    if (div)
        *div = d;
    return 1;
}

/* A linear layer with the weight quantizer a method gives `role`. */
static int role_linear(qg_model *m, qg_build *b, qg_layer_role role, const char *name, int x,
                       int out_features)
{
    const void *wq_cfg;
    const qg_wquant_ops *wq = qg__methods_wquant(&b->mc, role, &wq_cfg);
    return qg__node_linear_wq(m, name, x, out_features, wq, wq_cfg, &b->rng);
}

/* The first conv's padding for an input side: 1 for 32..63, more for a
 * smaller even side (the zero padding to 32); -1 when the side fits no rule. */
static int stem_pad(int side)
{
    if (side >= 32 && side <= 63)
        return 1;
    if (side >= 2 && side < 32 && side % 2 == 0)
        return 1 + (32 - side) / 2;
    return -1;
}

qg_status qg__model_vgg(qg_ctx *ctx, const qg_vgg_opts *o, qg_model **out)
{
    *out = NULL;
    int div;
    if (!qg__model_vgg_known(o->arch, &div))
        return qg__error(ctx, QG_ERR_INVALID_ARG, "unknown VGG model '%s' (vgg16_bn, "
                         "vgg16_bn_divN with N = 2, 4, ..., 64)", o->arch ? o->arch : "");
    qg_build b;
    qg_status st = qg__build_init(ctx, &b, o->methods, o->seed);
    if (st != QG_OK)
        return st;
    for (int id = 0; id < QG_METHOD_COUNT; id++)
        if (id != QG_METHOD_PSGD && qg__method_on(&b.mc, (qg_method_id)id))
            return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: --%s is not supported (full "
                             "precision or --psgd)", o->arch,
                             qg__method_desc((qg_method_id)id)->name);
    int ph = stem_pad(o->in_h), pw = stem_pad(o->in_w);
    if (ph < 0 || pw < 0 || (o->in_h < 32 && o->in_h != o->in_w) ||
        (o->in_w < 32 && o->in_h != o->in_w))
        return qg__error(ctx, QG_ERR_SHAPE, "%s: inputs of %dx%d: the five pools need 32..63 "
                         "pixels a side, or a square of an even side below 32 (padded to "
                         "32x32)", o->arch, o->in_h, o->in_w);
    qg_model *m = NULL;
    if ((st = qg__model_new(ctx, o->arch, o->in_c, o->in_h, o->in_w, o->classes, &m)) != QG_OK)
        return st;
    int x = 0, idx = 0;
    char n[32], bn[32];
    for (size_t i = 0; i < sizeof cfg_d / sizeof *cfg_d && x >= 0; i++) {
        snprintf(n, sizeof n, "features.%d", idx);
        if (cfg_d[i] == 0) {
            x = qg__node_maxpool(m, n, x, 2, 2, 0);
            idx++;
            continue;
        }
        snprintf(bn, sizeof bn, "features.%d", idx + 1);
        int first = idx == 0;
        x = qg__build_conv(m, &b, first ? QG_ROLE_STEM : QG_ROLE_BLOCK, 0, n, x,
                           cfg_d[i] / div, 3, 1, first ? ph : 1);
        if (x >= 0)
            x = qg__build_bn_act(m, &b, bn, x, -1, 1, "");
        idx += 3; /* conv, batch norm, ReLU */
    }
    int hidden = HIDDEN / div;
    if (x >= 0)
        x = role_linear(m, &b, QG_ROLE_BLOCK, "classifier.0", x, hidden);
    if (x >= 0)
        x = qg__node_relu(m, "classifier.1", x);
    if (x >= 0)
        x = qg__node_dropout(m, "classifier.2", x, DROPOUT_P, &b.rng);
    if (x >= 0)
        x = role_linear(m, &b, QG_ROLE_BLOCK, "classifier.3", x, hidden);
    if (x >= 0)
        x = qg__node_relu(m, "classifier.4", x);
    if (x >= 0)
        x = qg__node_dropout(m, "classifier.5", x, DROPOUT_P, &b.rng);
    if (x >= 0)
        x = qg__build_linear(m, &b, "classifier.6", x, o->classes);
    /* PyTorch's default initialisation, which the reference keeps: weights
     * of variance 1/(3*fan_in) (kaiming_uniform with a = sqrt(5)), here
     * normal; the biases already are uniform in +-1/sqrt(fan_in). The
     * builders' sqrt(2/fan_in) would make the classifier's three linears,
     * with no batch norm between them, start with logits too large. */
    for (int i = 0; x >= 0 && st == QG_OK && i < m->nparams; i++) {
        qg_param *p = m->params[i];
        if (p->kind != QG_PARAM_WEIGHT)
            continue;
        size_t fan_in = qg_tensor_numel(p->value) / (size_t)p->value->shape[0];
        st = qg__param_init_normal(p, 1.0 / sqrt(3.0 * (double)fan_in), &b.rng);
    }
    if (x >= 0 && st == QG_OK)
        st = qg__build_finish(m, &b);
    if (x < 0 || st != QG_OK) {
        st = st != QG_OK ? st : QG_ERR_NOMEM;
        if (qg_ctx_last_error(ctx)[0] == 0)
            qg__error(ctx, st, "building %s failed", o->arch);
        qg__model_free(m);
        return st;
    }
    *out = m;
    return QG_OK;
}
