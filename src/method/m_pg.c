/* src/method/m_pg.c: precision gating with the semantics of the PyTorch
 * reference (dnn-gating; docs/methods.md §2): each residual block's first
 * conv is a PGConv2d whose MSB pass predicts which outputs get the LSB
 * update; a gating loss sigma*||delta - g|| pulls the thresholds toward
 * the target. The node: src/model/nodes_quant.c (its loss term is
 * registered with the model there); reporting: src/method/gating.c. */
#include "config.h"

#include <stddef.h>
#include <stdio.h>

#include "method/gating.h"
#include "method/method.h"
#include "method/params.h"

static const qg_mopt opts[] = {
    {"pred_bits", "pb", 0, QG_MOPT_INT, offsetof(qg_pg_params, pred_bits), 4, 1, 15,
     "N         prediction (MSB) bits, 1 <= N < --abits"},
    {"gtar", NULL, 0, QG_MOPT_FLOAT, offsetof(qg_pg_params, gtar), 0, -100, 100,
     "X         gating target for the thresholds (default 0; the PG script uses 1)"},
    {"sigma", "sg", 0, QG_MOPT_FLOAT, offsetof(qg_pg_params, sigma), 0.001, 0, 100,
     "X         gating loss coefficient: X*||delta-g|| (default 0.001)"},
    {"spbp", NULL, 0, QG_MOPT_FLAG, offsetof(qg_pg_params, spbp), 0, 0, 1,
     "          sparse back-prop: gate gradients only where updated"},
};

static int check(qg_method_cfg *mc, char *why, size_t cap)
{
    const qg_pg_params *p = qg__method_params(mc, QG_METHOD_PG);
    if (!qg__method_given(mc, QG_METHOD_PG, "pred_bits")) {
        snprintf(why, cap, "--pg needs --pb N (prediction bits, fewer than --abits)");
        return 0;
    }
    /* PG's convs are quantized: the quantization method comes with it. */
    mc->enabled |= 1u << QG_METHOD_QUANT;
    int abits = ((const qg_quant_params *)qg__method_params(mc, QG_METHOD_QUANT))->abits;
    if (p->pred_bits >= abits) {
        snprintf(why, cap, "--pb %d must be smaller than --abits %d (the MSB part of a %d-bit "
                 "activation)", p->pred_bits, abits, abits);
        return 0;
    }
    return 1;
}

static void describe(const qg_method_cfg *mc, char *buf, size_t cap)
{
    const qg_pg_params *p = qg__method_params(mc, QG_METHOD_PG);
    snprintf(buf, cap, "pb%d%s", p->pred_bits, p->spbp ? " spbp" : "");
}

const qg_method_desc qg__method_pg = {
    .name = "pg",
    .summary = "precision gating: each block's conv1 is a PGConv2d (implies -w/-a)",
    .opts = opts, .nopts = sizeof opts / sizeof *opts,
    .params_size = sizeof(qg_pg_params),
    .check = check, .describe = describe,
    .metrics = qg__gating_metrics, .reset_metrics = qg__gating_reset,
    .progress = qg__gating_progress,
};
