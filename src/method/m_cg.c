/* src/method/m_cg.c: channel gating (dnn-gating's CGConv2d; docs/methods.md
 * §4): a base path over 1/N of the input channels decides per output
 * whether the rest is computed; gating loss coef*sum (delta - g)^2. The
 * node: src/model/nodes_cg.c; reporting (sparsity, FLOP reduction):
 * src/method/gating.c. */
#include "config.h"

#include <stddef.h>
#include <stdio.h>

#include "method/gating.h"
#include "method/method.h"
#include "method/params.h"
#include "model/nodes_cg.h"

static const qg_mopt opts[] = {
    {"partitions", "pt", 0, QG_MOPT_INT, offsetof(qg_cg_params, partitions), 4, 2, 16,
     "N         partitions: the base path sees 1/N of the channels; N in 2, 4, 8, 16"},
    {"cg_group", "group", 0, QG_MOPT_FLAG, offsetof(qg_cg_params, group), 0, 0, 1,
     "          block-diagonal base path (a group conv; the scripts use it)"},
    {"cg_shuffle", "shuffle", 0, QG_MOPT_FLAG, offsetof(qg_cg_params, shuffle), 0, 0, 1,
     "          channel shuffle (N groups) before both paths"},
    {"ginit", "gi", 0, QG_MOPT_FLOAT, offsetof(qg_cg_params, ginit), 0, -100, 100,
     "X         initial threshold (default 0.0)"},
    {"alpha", NULL, 0, QG_MOPT_FLOAT, offsetof(qg_cg_params, alpha), 2.0, 1e-6, 1000,
     "X         slope of the gate's sigmoid surrogate gradient (default 2.0)"},
    {"postact", NULL, 0, QG_MOPT_FLAG, offsetof(qg_cg_params, postact), 0, 0, 1,
     "          post-activated blocks: both convs gated, no ReLU after the add"},
    {"gtar", NULL, 0, QG_MOPT_FLOAT, offsetof(qg_cg_params, gtar), 0, -100, 100,
     "X         gating target (default 0; the scripts: 1.0, or 0.6 with --postact)"},
    {"sigma", "sg", 0, QG_MOPT_FLOAT, offsetof(qg_cg_params, sigma), QG_CG_LOSS_COEF, 0, 100,
     "X         gating loss coefficient: X*sum (delta-g)^2 (default 1e-4, the\n"
     "                               factor the CG reference hard-codes)"},
    {"spbp", NULL, 0, QG_MOPT_FLAG, offsetof(qg_cg_params, spbp), 0, 0, 1,
     "          sparse back-prop: gate gradients only where updated"},
};

static int check(qg_method_cfg *mc, char *why, size_t cap)
{
    const qg_cg_params *p = qg__method_params(mc, QG_METHOD_CG);
    if (qg__method_on(mc, QG_METHOD_PG)) {
        snprintf(why, cap, "--cg and --pg are different gating methods; pick one");
        return 0;
    }
    if (qg__method_on(mc, QG_METHOD_QUANT) || qg__method_on(mc, QG_METHOD_PACT)) {
        snprintf(why, cap, "--cg trains the full-precision ResNet with ReLUs; -w, -a and "
                 "--pact do not apply");
        return 0;
    }
    if (16 % p->partitions) {
        snprintf(why, cap, "--pt %d must divide the channel counts of the gated convs (16, 32, "
                 "64) and be at least 2: use 2, 4, 8 or 16", p->partitions);
        return 0;
    }
    return 1;
}

static void describe(const qg_method_cfg *mc, char *buf, size_t cap)
{
    const qg_cg_params *p = qg__method_params(mc, QG_METHOD_CG);
    snprintf(buf, cap, "pt%d%s%s%s%s", p->partitions, p->group ? " group" : "",
             p->shuffle ? " shuffle" : "", p->postact ? " postact" : "", p->spbp ? " spbp" : "");
}

const qg_method_desc qg__method_cg = {
    .name = "cg",
    .summary = "channel gating: each block's conv1 is a CGConv2d (full-precision ResNet)",
    .help = "  reference recipes (dnn-gating scripts/train_cg*.sh), both with --group --spbp:\n"
            "    --cg --pt 4 --gtar 1\n"
            "    --cg --postact --pt 2 --gtar 0.6 --lr 0.08 --wd 3e-4\n"
            "  --cg implies the reference's weight decay: only on conv and linear weights\n"
            "  (not BN, biases, thresholds)\n",
    .opts = opts, .nopts = sizeof opts / sizeof *opts,
    .params_size = sizeof(qg_cg_params),
    .check = check, .describe = describe,
    .metrics = qg__gating_metrics, .reset_metrics = qg__gating_reset,
    .progress = qg__gating_progress,
    .decay_kinds = 1u << QG_PARAM_WEIGHT,
};
