/* src/method/m_quant.c: uniform quantization of the block convs' weights
 * and inputs (sign-magnitude, whole-tensor max scale, as the quantized
 * ResNet of dnn-gating; docs/methods.md §5.2). `-w N` / `-a N` turn it on;
 * precision gating turns it on too (its convs are quantized). The nodes:
 * src/model/nodes_quant.c; the weight quantizer: src/model/wquant.c. */
#include "config.h"

#include <stddef.h>
#include <stdio.h>

#include "method/method.h"
#include "method/params.h"
#include "model/nodes_quant.h"

static const qg_mopt opts[] = {
    {"wbits", NULL, 'w', QG_MOPT_INT, offsetof(qg_quant_params, wbits), 8, 2, 16,
     "N         weight bits of the block convs (2..16; default 8)"},
    {"abits", NULL, 'a', QG_MOPT_INT, offsetof(qg_quant_params, abits), 8, 2, 16,
     "N         activation bits of the block convs (2..16; default 8; also --a)",
     "a"},
};

static void describe(const qg_method_cfg *mc, char *buf, size_t cap)
{
    const qg_quant_params *q = qg__method_params(mc, QG_METHOD_QUANT);
    const qg_pg_params *pg = qg__method_params(mc, QG_METHOD_PG);
    if (pg && pg->style == QG_PG_TF) /* float weights (m_pg.c) */
        snprintf(buf, cap, "a%d", q->abits);
    else
        snprintf(buf, cap, "w%d a%d", q->wbits, q->abits);
}

const qg_method_desc qg__method_quant = {
    .name = "quant",
    .summary = "uniform quantization of the block convs (on with -w/-a or --quant)",
    .help = "                               (-w/-a alone train the quantized ResNet without gating)\n",
    .opts = opts, .nopts = sizeof opts / sizeof *opts,
    .params_size = sizeof(qg_quant_params),
    .describe = describe,
    .auto_enable = 1,
};
