/* src/method/m_psgd.c: PSGD, position-based scaled gradient (Kim et al.,
 * NeurIPS 2020; reference Jangho-Kim/PSG-pytorch; docs/methods.md §6).
 * Training keeps float weights but scales each weight's gradient by
 * lambda_s*|w - Q(w)|, its distance to a b-bit grid, so the weights settle
 * near grid points and the model keeps its accuracy when they are
 * quantized. Everything happens in the weight quantizer this method hands
 * to every conv and linear layer (src/model/wquant_grid.c): the grid's
 * running range in the forward, the scaling in the backward (before the
 * optimizer, which adds the weight decay unscaled), and the quantized
 * weights in low-precision evaluations. Reporting: the per-layer distance
 * of the weights to their grid. */
#include "config.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "method/method.h"
#include "method/params.h"

static const qg_mopt opts[] = {
    {"wbits", NULL, 'w', QG_MOPT_INT, offsetof(qg_psgd_params, wbits), 4, 2, 16,
     "N         bits of the PSGD grid (2..16; default 4)"},
    {"lambda_s", NULL, 0, QG_MOPT_FLOAT, offsetof(qg_psgd_params, lambda_s), 150, 0, 1e6,
     "X         gradient scale: g*X*|w - Q(w)| (default 150, the reference's at 4 bits)"},
    {"first_last_quant", NULL, 0, QG_MOPT_FLAG, offsetof(qg_psgd_params, first_last_quant), 0,
     0, 1, "          the stem conv and the classifier (+ bias) too, at 8 bits when -w < 4"},
};

static int check(qg_method_cfg *mc, char *why, size_t cap)
{
    qg_psgd_params *p = (qg_psgd_params *)mc->params[QG_METHOD_PSGD];
    if (qg__method_on(mc, QG_METHOD_QUANT) || qg__method_on(mc, QG_METHOD_PG)) {
        snprintf(why, cap, "--psgd trains float weights; it does not combine with quantized "
                 "training (--quant, -a/--abits, --pg)");
        return 0;
    }
    p->body = (qg_wquant_grid_cfg){.bits = p->wbits, .lambda_s = p->lambda_s};
    p->first_last = (qg_wquant_grid_cfg){.bits = p->wbits < 4 ? 8 : p->wbits,
                                         .lambda_s = p->lambda_s};
    return 1;
}

static void describe(const qg_method_cfg *mc, char *buf, size_t cap)
{
    const qg_psgd_params *p = qg__method_params(mc, QG_METHOD_PSGD);
    snprintf(buf, cap, "w%d lambda %g%s", p->wbits, p->lambda_s,
             p->first_last_quant ? " first-last" : "");
}

static const qg_wquant_ops *wquant(const qg_method_cfg *mc, qg_layer_role role,
                                   const void **wq_cfg)
{
    const qg_psgd_params *p = qg__method_params(mc, QG_METHOD_PSGD);
    if (role == QG_ROLE_STEM || role == QG_ROLE_CLASSIFIER) {
        if (!p->first_last_quant)
            return NULL;
        *wq_cfg = &p->first_last;
    } else {
        *wq_cfg = &p->body;
    }
    return &qg__wquant_grid;
}

#define HIST_BINS 10

/* Per layer: the mean distance of the weights to their grid (in grid
 * steps), the step, and a histogram of the positions between grid points;
 * test phase only (the weights are the same in both phases). */
static qg_status metrics(qg_model *m, const qg_method_cfg *mc, const char *prefix,
                         const qg_metric_sink *sink)
{
    (void)mc;
    if (prefix[0])
        return QG_OK;
    double total = 0, count = 0;
    for (int i = 0; i < m->nwquants; i++) {
        qg_wquant *q = m->wquants[i];
        if (q->ops != &qg__wquant_grid)
            continue;
        double dist, delta, hist[HIST_BINS];
        qg_status st = qg__wquant_grid_stats(q, &dist, &delta, HIST_BINS, hist);
        if (st != QG_OK)
            return st;
        char layer[96];
        snprintf(layer, sizeof layer, "%s", q->w->name);
        size_t len = strlen(layer);
        if (len > 7 && strcmp(layer + len - 7, ".weight") == 0)
            layer[len - 7] = 0;
        sink->layer(sink->user, "grid_dist_layers", layer, dist);
        sink->layer(sink->user, "grid_step_layers", layer, delta);
        for (int b = 0; b < HIST_BINS; b++) {
            char key[32];
            snprintf(key, sizeof key, "grid_pos_hist_%d", b);
            sink->layer(sink->user, key, layer, hist[b]);
        }
        double n = (double)qg_tensor_numel(q->w->value);
        total += dist * n;
        count += n;
    }
    if (count > 0)
        sink->scalar(sink->user, "grid_dist", total / count);
    return QG_OK;
}

const qg_method_desc qg__method_psgd = {
    .name = "psgd",
    .summary = "position-based scaled gradient: float weights pulled toward a -w bit grid",
    .help = "  reference recipe (PSG-pytorch, ResNet-32 W4): start from a float SGD model,\n"
            "    --init FLOAT.safetensors --psgd -w 4 --lambda-s 150 --first-last-quant\n"
            "    --lr 0.01 --schedule multistep --milestones E --shortcut B\n"
            "  (tens of epochs); in a run of a few epochs the weights only gather on\n"
            "  the grid with a larger step, e.g. --lr 0.1 and the cosine schedule\n"
            "  each epoch also evaluates with the grid's weights (test_acc_lp); with\n"
            "  --optimizer adam the reference multiplies the learning rate by\n"
            "  1e-2*lambda_s, which qgate does not: pass that --lr yourself\n",
    .opts = opts, .nopts = sizeof opts / sizeof *opts,
    .params_size = sizeof(qg_psgd_params),
    .check = check, .describe = describe, .wquant = wquant, .metrics = metrics,
    .lowp_eval = 1,
};
