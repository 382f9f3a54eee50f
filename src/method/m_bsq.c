/* src/method/m_bsq.c: BSQ, bit-level sparsity quantization (docs/methods.md
 * §7). The stem, block convs and classifier (weights and bias) hold their
 * weights as bit planes (the weight quantizer src/model/wquant_bsq.c); a
 * bit-level group Lasso (an auxiliary loss) drives whole planes to zero;
 * after every step the planes are clamped to [0, 2]; every --prune-int
 * epochs and after the last one the planes are re-quantized to exact bits
 * and all-zero MSB/LSB planes dropped, and the optimizer state is zeroed
 * (the reference rebuilds its optimizer). With --bsq-finetune the
 * precision is fixed and a float weight_hat per layer is trained instead. */
#include "config.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "method/method.h"
#include "method/params.h"
#include "model/wquant_bsq.h"
#include "quant/bsq.h"

static const qg_mopt opts[] = {
    {"decay", NULL, 0, QG_MOPT_FLOAT, offsetof(qg_bsq_params, decay), 0.01, 0, 100,
     "X         BSQ: group-Lasso coefficient (alpha; default 0.01), divided by the\n"
     "                               quantized parameter count"},
    {"prune_int", NULL, 0, QG_MOPT_INT, offsetof(qg_bsq_params, prune_int), 100, 1, 100000,
     "N         BSQ: re-quantize and adjust precisions every N epochs (default 100)"},
    {"thre", NULL, 0, QG_MOPT_FLOAT, offsetof(qg_bsq_params, thre), 0, 0, 100,
     "X         BSQ: drop LSB planes with at most X% non-zero bits (default 0)"},
    {"nbits", NULL, 0, QG_MOPT_INT, offsetof(qg_bsq_params, cfg.nbits), 8, 1, 16,
     "N         BSQ: precision of a fresh layer and the re-quantization's cap (default 8)"},
    {"act_bits", NULL, 0, QG_MOPT_INT, offsetof(qg_bsq_params, act_bits), 0, 0, 16,
     "N         BSQ: quantize the block activations to N bits (2..16; 0 = float,\n"
     "                               the default); ReLU6 above 3 bits, PACT (alpha 10) else"},
    {"bsq_finetune", NULL, 0, QG_MOPT_FLAG, offsetof(qg_bsq_params, cfg.finetune), 0, 0, 1,
     "          BSQ finetune: precisions fixed, float weights trained (with --init)"},
};

static const qg_bsq_params *params(const qg_method_cfg *mc)
{
    return qg__method_params(mc, QG_METHOD_BSQ);
}

static int check(qg_method_cfg *mc, char *why, size_t cap)
{
    if (qg__method_on(mc, QG_METHOD_QUANT) || qg__method_on(mc, QG_METHOD_PG) ||
        qg__method_on(mc, QG_METHOD_CG)) {
        snprintf(why, cap, "--bsq quantizes the layers itself; drop -w/-a, --pg and --cg");
        return 0;
    }
    const qg_bsq_params *p = params(mc);
    if (p->act_bits == 1) {
        snprintf(why, cap, "--act-bits takes 2..16 (or 0 for float activations), not 1");
        return 0;
    }
    /* the reference's activation at 3 bits or fewer is PACT */
    if (p->act_bits && p->act_bits <= 3)
        mc->enabled |= 1u << QG_METHOD_PACT;
    /* --decay, --prune-int and --thre do not apply to --bsq-finetune (the
     * precisions are fixed, no regulariser): ignored there */
    return 1;
}

static void describe(const qg_method_cfg *mc, char *buf, size_t cap)
{
    const qg_bsq_params *p = params(mc);
    if (p->cfg.finetune)
        snprintf(buf, cap, "finetune");
    else
        snprintf(buf, cap, "decay %g, every %d epochs, thre %g, %d bits", p->decay,
                 p->prune_int, p->thre, p->cfg.nbits);
    if (p->act_bits) {
        size_t l = strlen(buf);
        snprintf(buf + l, cap - l, ", activations %d bits", p->act_bits);
    }
}

static const qg_wquant_ops *wquant(const qg_method_cfg *mc, qg_layer_role role,
                                   const void **wq_cfg)
{
    if (role == QG_ROLE_SHORTCUT)
        return NULL; /* the option-B shortcut stays float (not counted) */
    *wq_cfg = &params(mc)->cfg;
    return &qg__wquant_bsq;
}

/* Quantized values (weights and biases) and their bits, over the layers. */
static void totals(qg_model *m, double *values, double *bits)
{
    *values = *bits = 0;
    for (int i = 0; i < m->nwquants; i++) {
        qg_bsq_layer *l = qg__bsq_layer(m->wquants[i]);
        for (int k = 0; l && k < l->nsets; k++) {
            *values += (double)l->set[k].M;
            *bits += (double)l->set[k].M * qg__bsq_set_bits(&l->set[k]);
        }
    }
}

/* decay/TP * sum over sets of (M*N) * sum_b ||plane b||. */
static qg_status group_lasso(qg_node *node, qg_model *m, void *user, qg_tensor *loss)
{
    (void)node;
    (void)user;
    const qg_bsq_params *p = params(m->methods);
    double tp, tb;
    totals(m, &tp, &tb);
    if (!p || p->decay == 0 || tp == 0)
        return QG_OK;
    for (int i = 0; i < m->nwquants; i++) {
        qg_bsq_layer *l = qg__bsq_layer(m->wquants[i]);
        for (int k = 0; l && k < l->nsets; k++) {
            qg_bsq_set *s = &l->set[k];
            float factor =
                (float)((double)p->decay / tp * (double)s->M * qg__bsq_set_bits(s));
            qg_status st = qg__bsq_reg(m->ctx, s->p->value, s->n->value, factor, loss,
                                       s->p->grad, s->n->grad, l->norms, l->ws);
            if (st != QG_OK)
                return st;
        }
    }
    return QG_OK;
}

static qg_status model_ready(qg_model *m, const qg_method_cfg *mc)
{
    const qg_bsq_params *p = params(mc);
    if (p->act_bits && p->act_bits <= 3) {
        /* the reference's PACT starts at alpha = 10 */
        for (int i = 0; i < m->nparams; i++)
            if (m->params[i]->kind == QG_PARAM_CLIP) {
                float ten = 10.0f;
                qg_status st = qg_tensor_write(m->params[i]->value, &ten, sizeof ten);
                if (st != QG_OK)
                    return st;
            }
    }
    if (p->cfg.finetune || p->decay == 0)
        return QG_OK;
    return qg__model_add_aux_loss(m, "bsq_group_lasso", group_lasso, -1, NULL);
}

/* The reference clamps the planes to [0, 2] after each step (finetune:
 * the float weights to [-1, 1]). It also clamps the float shortcut conv,
 * its BN and PACT's alpha; qgate clamps only what BSQ quantizes. */
static qg_status post_step(qg_model *m, const qg_method_cfg *mc)
{
    int ft = params(mc)->cfg.finetune;
    for (int i = 0; i < m->nwquants; i++) {
        qg_bsq_layer *l = qg__bsq_layer(m->wquants[i]);
        for (int k = 0; l && k < l->nsets; k++) {
            qg_bsq_set *s = &l->set[k];
            qg_status st = ft ? qg__bsq_clamp(m->ctx, s->hat->value, -1.0f, 1.0f)
                              : qg__bsq_clamp(m->ctx, s->p->value, 0.0f, 2.0f);
            if (st == QG_OK && !ft)
                st = qg__bsq_clamp(m->ctx, s->n->value, 0.0f, 2.0f);
            if (st != QG_OK)
                return st;
        }
    }
    return QG_OK;
}

static qg_status requant_all(qg_model *m, const qg_bsq_params *p)
{
    for (int i = 0; i < m->nwquants; i++) {
        qg_bsq_layer *l = qg__bsq_layer(m->wquants[i]);
        if (!l)
            continue;
        qg_status st = qg__bsq_layer_requant(m, l, p->cfg.nbits, 1, p->thre);
        if (st != QG_OK)
            return st;
    }
    /* the parameter set changed: start the optimizer afresh, as the
     * reference builds a new one */
    return qg__model_reset_optim_state(m);
}

static qg_status epoch_begin(qg_model *m, const qg_method_cfg *mc, int epoch)
{
    const qg_bsq_params *p = params(mc);
    if (p->cfg.finetune) {
        for (int i = 0; i < m->nwquants; i++) {
            qg_bsq_layer *l = qg__bsq_layer(m->wquants[i]);
            qg_status st = l ? qg__bsq_layer_ft_prepare(m, l) : QG_OK;
            if (st != QG_OK)
                return st;
        }
        return QG_OK;
    }
    return epoch % p->prune_int == 0 ? requant_all(m, p) : QG_OK;
}

static qg_status epoch_end(qg_model *m, const qg_method_cfg *mc, int epoch)
{
    const qg_bsq_params *p = params(mc);
    if (p->cfg.finetune) {
        /* the planes follow the trained floats, so every checkpoint holds
         * the model both as bits and as float weights (L.weight) */
        for (int i = 0; i < m->nwquants; i++) {
            qg_bsq_layer *l = qg__bsq_layer(m->wquants[i]);
            qg_status st = l ? qg__bsq_layer_ft_to_bits(m, l) : QG_OK;
            if (st != QG_OK)
                return st;
        }
        return QG_OK;
    }
    return m->run_epochs > 0 && epoch == m->run_epochs - 1 ? requant_all(m, p) : QG_OK;
}

static qg_status metrics(qg_model *m, const qg_method_cfg *mc, const char *prefix,
                         const qg_metric_sink *sink)
{
    (void)mc;
    char key[64];
    double tp, tb;
    totals(m, &tp, &tb);
    if (tp == 0)
        return QG_OK;
    snprintf(key, sizeof key, "%scompression", prefix);
    sink->scalar(sink->user, key, 32.0 * tp / (tb > 0 ? tb : 1));
    snprintf(key, sizeof key, "%savg_bits", prefix);
    sink->scalar(sink->user, key, tb / tp);
    if (prefix[0])
        return QG_OK; /* per-layer values once per epoch, with the test phase */
    for (int i = 0; i < m->nwquants; i++) {
        qg_bsq_layer *l = qg__bsq_layer(m->wquants[i]);
        for (int k = 0; l && k < l->nsets; k++) {
            double nz[QG_BSQ_MAX_BITS + 1];
            int N = qg__bsq_set_bits(&l->set[k]);
            qg_status st = qg__bsq_layer_nonzero(l, k, nz);
            if (st != QG_OK)
                return st;
            const char *what = k ? "bias" : "weight";
            snprintf(key, sizeof key, "bits_%s", what);
            sink->layer(sink->user, key, l->name, N);
            for (int b = 0; b < N; b++) {
                snprintf(key, sizeof key, "nonzero_%s_b%d", what, b);
                sink->layer(sink->user, key, l->name, nz[b] / 100.0);
            }
        }
    }
    return QG_OK;
}

static void progress(qg_model *m, const qg_method_cfg *mc, char *buf, size_t cap)
{
    (void)mc;
    double tp, tb;
    totals(m, &tp, &tb);
    if (tp == 0 || tb == 0)
        snprintf(buf, cap, "%s", "");
    else
        snprintf(buf, cap, "compression %.2fx avg_bits %.2f", 32.0 * tp / tb, tb / tp);
}

const qg_method_desc qg__method_bsq = {
    .name = "bsq",
    .summary = "BSQ: bit-plane weights, bit-level group Lasso, per-layer precision",
    .help = "                               (start from `qgate convert FLOAT.safetensors "
            "--bits 8`\n                               with --init; finetune with "
            "--bsq-finetune --init)\n",
    .opts = opts, .nopts = sizeof opts / sizeof *opts,
    .params_size = sizeof(qg_bsq_params),
    .auto_enable = 1,
    .check = check, .describe = describe, .wquant = wquant, .model_ready = model_ready,
    .post_step = post_step, .epoch_begin = epoch_begin, .epoch_end = epoch_end,
    .metrics = metrics, .progress = progress,
};
