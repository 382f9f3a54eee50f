/* src/train/bench.c: timed training/inference steps on synthetic data
 * (see bench.h). The timing covers what a real step does on the device:
 * forward, loss, backward, optimizer; the input upload is excluded
 * because the loader overlaps it with compute in real runs. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/rng.h"
#include "cl/ctx.h"
#include "model/nodes.h"
#include "method/method.h"
#include "ops/layers.h"
#include "model/safetensors.h"
#include "tensor/tensor_impl.h"
#include "train/bench.h"
#include "train/checkpoint.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Per gated layer: its density r from the gate counters, the relative
 * cost its FLOP accounting gives at r (so 1 - cost is the share of its
 * dense MACs the gate turns off), and its time per step (forward +
 * backward, from the profile) with skipping (tg) and with dense gating
 * (td); realised = 1 - tg/td, its share of the theoretical 1 - cost. */
static qg_status print_gated_layers(qg_model *m, const double *tg, const double *td, int steps)
{
    qg_status st = QG_OK;
    double full, eff, *cost = calloc((size_t)m->nnodes + 1, sizeof *cost);
    long long *nt = calloc((size_t)m->nnodes + 1, sizeof *nt);
    long long *no = calloc((size_t)m->nnodes + 1, sizeof *no);
    const char **names = calloc((size_t)m->nnodes + 1, sizeof *names);
    int ncost = 0, ng = 0;
    long long total, on;
    if (!cost || !nt || !no || !names) {
        st = qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
        goto fail;
    }
    QG_TRY(qg__model_gate_stats(m, &total, &on, &ng, names, nt, no));
    QG_TRY(qg__model_gate_flops(m, &full, &eff, &ncost, cost));
    printf("%-20s %7s %7s %7s %10s %10s %9s %9s %7s\n", "gated layer", "density", "tiles",
           "FLOPx", "ms dense", "ms gated", "saved", "theory", "share");
    double sd = 0, sg = 0;
    /* j: gated nodes (gate_counts, in the stats' order); c: those with a
     * FLOP cost (gated_cost, in the cost's order); PG has none */
    for (int i = 0, j = 0, c = 0; i < m->nnodes && j < ng; i++) {
        const qg_node *n = &m->nodes[i];
        if (!n->ops->gate_counts)
            continue;
        double r = nt[j] ? (double)no[j] / (double)nt[j] : 0;
        int has_cost = n->ops->gated_cost && c < ncost;
        double lc = has_cost ? cost[c++] : 0, theory = has_cost ? 1.0 - lc : 0;
        double d = td[i] * 1e3 / steps, g = tg[i] * 1e3 / steps;
        double saved = d > 0 ? 1.0 - g / d : 0;
        sd += d;
        sg += g;
        long long done = 0, all = 0;
        if (n->ops->skip_tiles)
            QG_TRY(n->ops->skip_tiles((qg_node *)n, m, &done, &all));
        char tiles[16] = "dense", fx[16] = "-", th[16] = "-", sh[16] = "-";
        if (all)
            snprintf(tiles, sizeof tiles, "%.1f%%", 100.0 * (double)done / (double)all);
        if (has_cost && lc > 0) {
            snprintf(fx, sizeof fx, "%.2fx", 1.0 / lc);
            snprintf(th, sizeof th, "%.1f%%", 100 * theory);
            if (theory > 0)
                snprintf(sh, sizeof sh, "%.0f%%", 100 * saved / theory);
        }
        printf("%-20s %6.1f%% %7s %7s %10.2f %10.2f %8.1f%% %9s %7s\n", n->name, 100 * r,
               tiles, fx, d, g, 100 * saved, th, sh);
        j++;
    }
    char mfx[16] = "-";
    if (ncost && eff > 0)
        snprintf(mfx, sizeof mfx, "%.2fx", full / eff);
    printf("%-20s %6.1f%% %7s %7s %10.2f %10.2f %8.1f%%\n", "all gated layers",
           total ? 100.0 * (double)on / (double)total : 0, "", mfx, sd, sg,
           sd > 0 ? 100 * (1 - sg / sd) : 0);
fail:
    free(cost);
    free(nt);
    free(no);
    free(names);
    return st;
}

static qg_status load_init(qg_model *m, const char *path)
{
    qg_st_file *f = NULL;
    int loaded = 0, kept = 0;
    qg_status st = qg__safetensors_read(path, &f);
    if (st == QG_OK)
        st = qg__checkpoint_init(m, f, path, &loaded, &kept, NULL, 0);
    qg__safetensors_free(f);
    return st;
}

qg_status qg__bench_train(const qg_bench_cfg *cfg, qg_bench_result *out)
{
    qg_status st = QG_OK;
    qg_ctx *ctx = NULL;
    qg_model *m = NULL;
    qg_tensor *labels = NULL, *ls = NULL, *cor = NULL, *aux = NULL;
    double *times = NULL, *times_d = NULL, *pg = NULL, *pd = NULL, *snap = NULL;
    float *x = NULL;
    memset(out, 0, sizeof *out);

    qg_ctx_opts co = {.device = cfg->device, .verbose = cfg->verbose};
    QG_TRY(qg_ctx_new(&co, &ctx));
    QG_TRY(qg__model_build(ctx, cfg->model, cfg->shortcut, cfg->in_c, cfg->in_h, cfg->in_w,
                           cfg->classes, 1, cfg->methods, &m));
    if (cfg->init)
        QG_TRY(load_init(m, cfg->init));
    m->dense_gates = cfg->dense_gates;
    QG_TRY(qg__model_setup(m, cfg->batch));
    if (cfg->profile || cfg->compare_dense)
        QG_TRY(qg__model_profile_enable(m));
    qg_optim_cfg oc = {.kind = QG_OPTIM_SGD, .lr = 0.01f, .momentum = 0.9f,
                       .weight_decay = 1e-4f, .decay_kinds = QG_DECAY_ALL};
    if (!cfg->eval)
        QG_TRY(qg__optim_ensure_state(m, &oc));

    size_t nx = qg_tensor_numel(qg__model_input(m));
    x = malloc(nx * sizeof *x);
    int32_t *lab = malloc((size_t)cfg->batch * sizeof *lab);
    if (!x || !lab) {
        free(lab);
        st = qg__error(ctx, QG_ERR_NOMEM, "out of memory");
        goto fail;
    }
    qg_rng rng = {7};
    for (size_t i = 0; i < nx; i++)
        x[i] = (float)qg__rng_normal(&rng);
    for (int i = 0; i < cfg->batch; i++)
        lab[i] = (int32_t)(qg__rng_u64(&rng) % (uint64_t)cfg->classes);
    int64_t bs[1] = {cfg->batch}, one[1] = {1};
    st = qg_tensor_new(ctx, 1, bs, QG_DTYPE_I32, "labels", &labels);
    if (st == QG_OK)
        st = qg_tensor_write(labels, lab, (size_t)cfg->batch * sizeof *lab);
    free(lab);
    if (st != QG_OK)
        goto fail;
    QG_TRY(qg_tensor_new(ctx, 1, one, QG_DTYPE_F32, "loss", &ls));
    QG_TRY(qg_tensor_new(ctx, 1, one, QG_DTYPE_I32, "correct", &cor));
    QG_TRY(qg_tensor_new(ctx, 1, one, QG_DTYPE_F32, "aux_loss", &aux));
    QG_TRY(qg_tensor_write(qg__model_input(m), x, nx * sizeof *x));

    int total = cfg->warmup + cfg->steps;
    times = calloc((size_t)(cfg->steps > 0 ? cfg->steps : 1), sizeof *times);
    times_d = calloc((size_t)(cfg->steps > 0 ? cfg->steps : 1), sizeof *times_d);
    pg = calloc((size_t)m->nnodes + 1, sizeof *pg);
    pd = calloc((size_t)m->nnodes + 1, sizeof *pd);
    snap = calloc((size_t)m->nnodes + 1, sizeof *snap);
    if (!times || !times_d || !pg || !pd || !snap) {
        st = qg__error(ctx, QG_ERR_NOMEM, "out of memory");
        goto fail;
    }
    double t_all = 0, t_all_d = 0;
    /* inference times an evaluation pass: parameters fixed throughout */
    qg__model_freeze(m, cfg->eval);
    QG_TRY(qg__model_gate_reset(m));
    for (int s2 = 0; s2 < (cfg->compare_dense ? 2 : 1) * total; s2++) {
        /* with compare_dense: even steps skip, odd ones compute densely */
        int dense = cfg->compare_dense ? s2 % 2 : cfg->dense_gates;
        int s = cfg->compare_dense ? s2 / 2 : s2;
        m->dense_gates = dense;
        for (int i = 0; i < m->nnodes && m->prof_fwd; i++)
            snap[i] = m->prof_fwd[i] + m->prof_bwd[i];
        double t0 = now_s();
        QG_TRY(qg__model_forward(m, !cfg->eval));
        QG_TRY(qg__softmax_ce(ctx, qg__model_logits(m), labels, 1.0f / cfg->batch, ls, cor,
                              cfg->eval ? NULL : qg__model_logits_grad(m)));
        if (!cfg->eval) {
            QG_TRY(qg__model_backward(m));
            QG_TRY(qg__model_aux_loss(m, aux)); /* gating loss and its gradient (PG) */
            QG_TRY(qg__methods_grad_hook(m, cfg->methods));
            QG_TRY(qg__optim_step(m, &oc, 0.01f, s + 1));
            QG_TRY(qg__methods_post_step(m, cfg->methods));
        }
        QG_TRY(qg_ctx_finish(ctx));
        double dt = now_s() - t0;
        if (s >= cfg->warmup) {
            if (cfg->compare_dense && dense) {
                times_d[s - cfg->warmup] = dt;
                t_all_d += dt;
            } else {
                times[s - cfg->warmup] = dt;
                t_all += dt;
            }
            for (int i = 0; i < m->nnodes && m->prof_fwd; i++)
                (dense ? pd : pg)[i] += m->prof_fwd[i] + m->prof_bwd[i] - snap[i];
        }
    }
    qsort(times, (size_t)cfg->steps, sizeof *times, cmp_double);
    out->ms_per_step_min = times[0] * 1e3;
    out->ms_per_step_median = times[cfg->steps / 2] * 1e3;
    out->img_per_s = cfg->steps * (double)cfg->batch / t_all;
    if (cfg->compare_dense) {
        qsort(times_d, (size_t)cfg->steps, sizeof *times_d, cmp_double);
        out->ms_per_step_median_dense = times_d[cfg->steps / 2] * 1e3;
        out->img_per_s_dense = cfg->steps * (double)cfg->batch / t_all_d;
        QG_TRY(print_gated_layers(m, pg, pd, cfg->steps));
    }
    /* every buffer qgate created on the device, at its peak: the arena,
     * node buffers (kept planes, quantized copies), workspace, parameters,
     * optimizer state (CLBlast's own temporaries not included) */
    out->device_bytes = (double)ctx->mem_peak;
    for (int i = 0; i < m->nnodes; i++)
        out->macs_per_image += qg__node_macs(m, &m->nodes[i]);
    if (cfg->profile) {
        /* Aggregate by node type: where a step's time goes. */
        printf("%-14s %10s %10s  (ms per step, summed over nodes of the type)\n", "node",
               "forward", "backward");
        for (int i = 0; i < m->nnodes; i++) {
            const char *type = m->nodes[i].ops->type;
            int first = 1;
            for (int j = 0; j < i; j++)
                if (strcmp(m->nodes[j].ops->type, type) == 0)
                    first = 0;
            if (!first)
                continue;
            double f = 0, b = 0;
            for (int j = i; j < m->nnodes; j++)
                if (strcmp(m->nodes[j].ops->type, type) == 0) {
                    f += m->prof_fwd[j];
                    b += m->prof_bwd[j];
                }
            printf("%-14s %10.2f %10.2f\n", type, f * 1e3 / total, b * 1e3 / total);
        }
    }
fail:
    if (st != QG_OK && ctx && qg_ctx_last_error(ctx)[0] == 0)
        qg__error(ctx, st, "%s", qg_last_error());
    free(times);
    free(times_d);
    free(pg);
    free(pd);
    free(snap);
    free(x);
    qg_tensor_free(labels);
    qg_tensor_free(ls);
    qg_tensor_free(cor);
    qg_tensor_free(aux);
    qg__model_free(m);
    qg_ctx_free(ctx);
    return st;
}
