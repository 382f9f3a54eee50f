/* src/method/gating.c: gating metrics (see gating.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "method/gating.h"

/* Gate counters of the gated layers and the FLOP accounting (dense MACs /
 * effective MACs, per layer and for the model with the non-gated layers
 * at full cost). Reads the device counters. */
typedef struct gate_report {
    int k;                      /* gated layers */
    long long total, on;
    const char **names;
    long long *nt, *no;
    int ncost;                  /* layers with a FLOP cost (== k, or 0) */
    double full, eff;           /* MACs per image, dense and effective */
    double *cost;               /* per layer: effective / dense */
} gate_report;

static void report_free(gate_report *r)
{
    free(r->names);
    free(r->nt);
    free(r->no);
    free(r->cost);
    memset(r, 0, sizeof *r);
}

static qg_status report_get(qg_model *m, gate_report *r)
{
    qg_status st = QG_OK;
    size_t n = (size_t)(m->nnodes > 0 ? m->nnodes : 1);
    memset(r, 0, sizeof *r);
    r->names = calloc(n, sizeof *r->names);
    r->nt = calloc(n, sizeof *r->nt);
    r->no = calloc(n, sizeof *r->no);
    r->cost = calloc(n, sizeof *r->cost);
    if (!r->names || !r->nt || !r->no || !r->cost) {
        st = qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
        goto fail;
    }
    QG_TRY(qg__model_gate_stats(m, &r->total, &r->on, &r->k, r->names, r->nt, r->no));
    QG_TRY(qg__model_gate_flops(m, &r->full, &r->eff, &r->ncost, r->cost));
    if (r->ncost != r->k)
        r->ncost = 0;
    return QG_OK;
fail:
    report_free(r);
    return st;
}

static double sparsity(long long total, long long on)
{
    return total ? 1.0 - (double)on / (double)total : 0.0;
}

static double reduction(double full, double eff)
{
    return eff > 0 ? full / eff : 1.0;
}

qg_status qg__gating_metrics(qg_model *m, const qg_method_cfg *mc, const char *prefix,
                             const qg_metric_sink *sink)
{
    gate_report r;
    char key[64];
    qg_status st = report_get(m, &r);
    if (st != QG_OK || !r.k)
        goto done;
    snprintf(key, sizeof key, "%ssparsity", prefix);
    sink->scalar(sink->user, key, sparsity(r.total, r.on));
    if (r.ncost) {
        snprintf(key, sizeof key, "%sflop_reduction", prefix);
        sink->scalar(sink->user, key, reduction(r.full, r.eff));
    }
    if (prefix[0])
        goto done;
    for (int i = 0; i < r.k; i++)
        sink->layer(sink->user, "sparsity_layers", r.names[i], sparsity(r.nt[i], r.no[i]));
    if (r.ncost) {
        for (int i = 0; i < r.k; i++)
            sink->layer(sink->user, "flop_reduction_layers", r.names[i], 1.0 / r.cost[i]);
        sink->scalar(sink->user, "macs_dense", r.full);
        sink->scalar(sink->user, "macs_effective", r.eff);
    }
    /* layers that skip work: the share of their tiles computed */
    for (int i = 0; i < m->nnodes && st == QG_OK; i++) {
        qg_node *n = &m->nodes[i];
        long long done = 0, all = 0;
        if (n->ops->skip_tiles && (st = n->ops->skip_tiles(n, m, &done, &all)) == QG_OK && all)
            sink->layer(sink->user, "tiles_computed_layers", n->name,
                        (double)done / (double)all);
    }
done:
    report_free(&r);
    return st;
}

void qg__gating_progress(qg_model *m, const qg_method_cfg *mc, char *buf, size_t cap)
{
    gate_report r;
    buf[0] = 0;
    if (report_get(m, &r) != QG_OK)
        return;
    if (r.k) {
        int len = snprintf(buf, cap, "sparsity %.1f%%", 100 * sparsity(r.total, r.on));
        if (r.ncost && len > 0 && (size_t)len < cap)
            snprintf(buf + len, cap - (size_t)len, " FLOPs /%.2f", reduction(r.full, r.eff));
    }
    report_free(&r);
}

qg_status qg__gating_reset(qg_model *m, const qg_method_cfg *mc)
{
    return qg__model_gate_reset(m);
}
