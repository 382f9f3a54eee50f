/* src/method/m_pg.c: precision gating (docs/methods.md §2, §3): each
 * residual block's first conv is a PGConv2d whose MSB pass predicts which
 * outputs get the LSB update; a gating loss pulls the thresholds toward
 * the target. Two semantics, --pg-style:
 *   pytorch (default): dnn-gating's (quantized weights, whole-tensor
 *     activation scale with eps, loss sigma*||delta - g||, --spbp);
 *   tf: the original TensorFlow code's (float weights, per-sample scale
 *     without eps, loss sigma*sum (g - delta)^2/2, thresholds clipped to
 *     [-20, 20] after every step -- the post_step hook here -- and the
 *     PACT alpha gradient over x >= alpha), reporting the percent of
 *     outputs computed in full precision.
 * The node: src/model/nodes_quant.c (its loss term is registered with the
 * model there); reporting: src/method/gating.c. */
#include "config.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "method/gating.h"
#include "method/m_pg.h"
#include "method/method.h"
#include "method/params.h"
#include "quant/quant.h"

static const qg_mopt opts[] = {
    {"pred_bits", "pb", 0, QG_MOPT_INT, offsetof(qg_pg_params, pred_bits), 4, 1, 15,
     "N         prediction (MSB) bits, 1 <= N < --abits (also --trunc-bits,\n"
     "                               --t)",
     "trunc_bits|t"},
    {"gtar", NULL, 0, QG_MOPT_FLOAT, offsetof(qg_pg_params, gtar), 0, -100, 100,
     "X         gating target for the thresholds (default 0; the PG script uses 1;\n"
     "                               also --g)", "g"},
    {"sigma", "sg", 0, QG_MOPT_FLOAT, offsetof(qg_pg_params, sigma), 0.001, 0, 100,
     "X         gating loss coefficient (default 0.001): X*||delta-g||; with\n"
     "                               --pg-style tf X*sum (g-delta)^2/2"},
    {"spbp", NULL, 0, QG_MOPT_FLAG, offsetof(qg_pg_params, spbp), 0, 0, 1,
     "          sparse back-prop: gate gradients only where updated (pytorch style)"},
    {"pg_style", NULL, 0, QG_MOPT_CHOICE, offsetof(qg_pg_params, style), QG_PG_PYTORCH,
     QG_PG_PYTORCH, QG_PG_TF,
     "S         pytorch (dnn-gating; default) | tf (the original TensorFlow code:\n"
     "                               float weights, per-sample activation scales, squared\n"
     "                               loss, delta clipped to [-20, 20], PACT's alpha gradient\n"
     "                               over x >= alpha, depthwise inputs quantized)",
     NULL, "pytorch|tf"},
};

static int check(qg_method_cfg *mc, char *why, size_t cap)
{
    const qg_pg_params *p = qg__method_params(mc, QG_METHOD_PG);
    if (!qg__method_given(mc, QG_METHOD_PG, "pred_bits")) {
        snprintf(why, cap, "--pg needs --pb N (prediction bits, fewer than --abits)");
        return 0;
    }
    if (p->style == QG_PG_TF && p->spbp) {
        snprintf(why, cap, "--spbp is not part of --pg-style tf (the TensorFlow code has no "
                 "sparse back-prop)");
        return 0;
    }
    /* (checkpoint metadata carries the default 8, which is harmless) */
    const qg_quant_params *q = qg__method_params(mc, QG_METHOD_QUANT);
    if (p->style == QG_PG_TF && qg__method_given(mc, QG_METHOD_QUANT, "wbits") && q &&
        q->wbits != 8) {
        snprintf(why, cap, "--pg-style tf keeps the weights in full precision: drop -w/--wbits "
                 "%d", q->wbits);
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
    snprintf(buf, cap, "pb%d%s%s", p->pred_bits, p->spbp ? " spbp" : "",
             p->style == QG_PG_TF ? " tf" : "");
}

int qg__pg_node_cfg(const qg_method_cfg *mc, qg_pg_cfg *out)
{
    const qg_quant_params *q = qg__method_params(mc, QG_METHOD_QUANT);
    const qg_pg_params *pg = qg__method_params(mc, QG_METHOD_PG);
    *out = (qg_pg_cfg){0};
    if (q) {
        out->wbits = q->wbits;
        out->abits = q->abits;
    }
    if (pg) {
        out->pred_bits = pg->pred_bits;
        out->gtar = pg->gtar;
        out->sigma = pg->sigma;
        out->spbp = pg->spbp;
        out->style = pg->style;
    }
    return q || pg;
}

static int is_tf(const qg_method_cfg *mc)
{
    const qg_pg_params *p = qg__method_params(mc, QG_METHOD_PG);
    return p && p->style == QG_PG_TF;
}

int qg__pg_pact_mode(const qg_method_cfg *mc)
{
    return is_tf(mc) ? QG_PACT_TF : QG_PACT_PG;
}

static int ainput(const qg_method_cfg *mc, qg_layer_role role)
{
    if (role != QG_ROLE_DEPTHWISE || !is_tf(mc))
        return 0;
    return ((const qg_quant_params *)qg__method_params(mc, QG_METHOD_QUANT))->abits;
}

static qg_status post_step(qg_model *m, const qg_method_cfg *mc)
{
    return is_tf(mc) ? qg__pgconv_clip_thresholds(m) : QG_OK;
}

/* The reference's "percent": outputs computed in full precision over all
 * outputs of the gated layers. */
static qg_status metrics(qg_model *m, const qg_method_cfg *mc, const char *prefix,
                         const qg_metric_sink *sink)
{
    qg_status st = qg__gating_metrics(m, mc, prefix, sink);
    long long total = 0, on = 0;
    int k = 0;
    if (st != QG_OK || !is_tf(mc))
        return st;
    QG_TRY(qg__model_gate_stats(m, &total, &on, &k, NULL, NULL, NULL));
    if (k && total) {
        char key[64];
        snprintf(key, sizeof key, "%sfp_percent", prefix);
        sink->scalar(sink->user, key, 100.0 * (double)on / (double)total);
    }
fail:
    return st;
}

static void progress(qg_model *m, const qg_method_cfg *mc, char *buf, size_t cap)
{
    qg__gating_progress(m, mc, buf, cap);
    long long total = 0, on = 0;
    int k = 0;
    size_t len = strlen(buf);
    if (is_tf(mc) && len + 1 < cap &&
        qg__model_gate_stats(m, &total, &on, &k, NULL, NULL, NULL) == QG_OK && k && total)
        snprintf(buf + len, cap - len, "%sfull precision %.1f%%", len ? " " : "",
                 100.0 * (double)on / (double)total);
}

const qg_method_desc qg__method_pg = {
    .name = "pg",
    .summary = "precision gating: each block's conv1 is a PGConv2d (implies -w/-a)",
    .help = "  PG with the TensorFlow semantics (docs/methods.md §3), the original tool's\n"
            "  recipe a 6, t 4, g 0, pact (--a 6 --t 4 --g 0 also parse):\n"
            "    --pg --pg-style tf --abits 6 --trunc-bits 4 --gtar 0 --pact\n"
            "    --schedule poly --wd 4e-5 --no-wd-bn\n",
    .opts = opts, .nopts = sizeof opts / sizeof *opts,
    .params_size = sizeof(qg_pg_params),
    .check = check, .describe = describe,
    .ainput = ainput,
    .post_step = post_step,
    .metrics = metrics, .reset_metrics = qg__gating_reset,
    .progress = progress,
};
