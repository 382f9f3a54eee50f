/* src/method/m_proqha.c: ProQHA (docs/methods.md §8): DoReFa weights and
 * PACT-quantized activations with one bit width per quantizer, on the
 * pre-activation ResNet (src/model/resnet_preact.c), plus the cost
 * metrics. `--proqha --wbits 8 --abits 8` trains the uniform starting
 * model; `qgate search` (src/train/search.c) lowers the bits. The bit
 * widths live in the model (src/model/qbits.h) and in its checkpoints. */
#include "config.h"

#include <stddef.h>
#include <stdio.h>

#include "method/m_proqha.h"
#include "method/method.h"
#include "model/nodes_pq.h"
#include "model/qbits.h"

static const qg_mopt opts[] = {
    {"wbits", NULL, 'w', QG_MOPT_INT, offsetof(qg_proqha_params, wbits), 8, 2, 16,
     "N         starting bits of every weight quantizer (2..16; default 8)"},
    {"abits", NULL, 'a', QG_MOPT_INT, offsetof(qg_proqha_params, abits), 8, 2, 16,
     "N         starting bits of every activation quantizer (2..16; default 8)"},
    {"pq_float", NULL, 0, QG_MOPT_FLAG, offsetof(qg_proqha_params, pq_float), 0, 0, 1,
     "          every quantizer at 32 bits (the float baseline of the same network)"},
};

static int check(qg_method_cfg *mc, char *why, size_t cap)
{
    static const qg_method_id other[] = {QG_METHOD_PACT, QG_METHOD_PG, QG_METHOD_CG};
    static const char *names[] = {"--pact", "--pg", "--cg"};
    for (size_t i = 0; i < sizeof other / sizeof *other; i++)
        if (qg__method_on(mc, other[i])) {
            snprintf(why, cap, "--proqha brings its own PACT quantizers and network; it does "
                     "not combine with %s", names[i]);
            return 0;
        }
    /* -w/-a also turn the uniform quantization method on; with --proqha
     * they are this method's starting bits instead. */
    mc->enabled &= ~(1u << QG_METHOD_QUANT);
    return 1;
}

static void describe(const qg_method_cfg *mc, char *buf, size_t cap)
{
    const qg_proqha_params *p = qg__method_params(mc, QG_METHOD_PROQHA);
    if (p->pq_float)
        snprintf(buf, cap, "float");
    else
        snprintf(buf, cap, "w%d a%d", p->wbits, p->abits);
}

static const qg_wquant_ops *wquant(const qg_method_cfg *mc, qg_layer_role role,
                                   const void **wq_cfg)
{
    static const int k32 = 32;
    const qg_proqha_params *p = qg__method_params(mc, QG_METHOD_PROQHA);
    if (role != QG_ROLE_BLOCK)
        return NULL; /* stem, classifier and shortcut convs stay float */
    *wq_cfg = p->pq_float ? &k32 : &p->wbits;
    return &qg__wquant_dorefa;
}

/* The costs and every quantizer's bits ("kbits_layers"; weights under the
 * layer's name, activations under the PACT node's). */
static qg_status metrics(qg_model *m, const qg_method_cfg *mc, const char *prefix,
                         const qg_metric_sink *sink)
{
    (void)mc;
    if (!qg__qbits_count(m) || *prefix)
        return QG_OK;
    double wmem, bitops;
    qg_status st = qg__qbits_cost(m, NULL, &wmem, &bitops);
    if (st != QG_OK)
        return st;
    sink->scalar(sink->user, "cost", wmem);
    sink->scalar(sink->user, "cost_bitops", bitops);
    for (int i = 0; i < qg__qbits_count(m); i++) {
        const qg_qslot *s = qg__qbits_at(m, i);
        sink->layer(sink->user, s->kind == QG_QB_WEIGHT ? "wbits_layers" : "abits_layers",
                    s->name, s->bits);
    }
    return QG_OK;
}

static void progress(qg_model *m, const qg_method_cfg *mc, char *buf, size_t cap)
{
    double wmem, bitops;
    (void)mc;
    if (qg__qbits_count(m) && qg__qbits_cost(m, NULL, &wmem, &bitops) == QG_OK)
        snprintf(buf, cap, "cost %.4f", wmem);
    else if (cap)
        buf[0] = 0;
}

const qg_method_desc qg__method_proqha = {
    .name = "proqha",
    .summary = "ProQHA: DoReFa weights, PACT activations, bits per quantizer (then qgate search)",
    .opts = opts, .nopts = sizeof opts / sizeof *opts,
    .params_size = sizeof(qg_proqha_params),
    .check = check, .describe = describe, .wquant = wquant,
    .metrics = metrics, .progress = progress,
};
