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
#include "tensor/tensor_impl.h"
#include "train/bench.h"

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

qg_status qg__bench_train(const qg_bench_cfg *cfg, qg_bench_result *out)
{
    qg_status st = QG_OK;
    qg_ctx *ctx = NULL;
    qg_model *m = NULL;
    qg_tensor *labels = NULL, *ls = NULL, *cor = NULL, *aux = NULL;
    double *times = NULL;
    float *x = NULL;
    memset(out, 0, sizeof *out);

    qg_ctx_opts co = {.device = cfg->device, .verbose = cfg->verbose};
    QG_TRY(qg_ctx_new(&co, &ctx));
    QG_TRY(qg__model_build(ctx, cfg->model, cfg->shortcut, cfg->in_c, cfg->in_h, cfg->in_w,
                           cfg->classes, 1, cfg->methods, &m));
    m->dense_gates = cfg->dense_gates;
    QG_TRY(qg__model_setup(m, cfg->batch));
    if (cfg->profile)
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
    if (!times) {
        st = qg__error(ctx, QG_ERR_NOMEM, "out of memory");
        goto fail;
    }
    double t_all = 0;
    /* inference times an evaluation pass: parameters fixed throughout */
    qg__model_freeze(m, cfg->eval);
    for (int s = 0; s < total; s++) {
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
            times[s - cfg->warmup] = dt;
            t_all += dt;
        }
    }
    qsort(times, (size_t)cfg->steps, sizeof *times, cmp_double);
    out->ms_per_step_min = times[0] * 1e3;
    out->ms_per_step_median = times[cfg->steps / 2] * 1e3;
    out->img_per_s = cfg->steps * (double)cfg->batch / t_all;
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
    free(x);
    qg_tensor_free(labels);
    qg_tensor_free(ls);
    qg_tensor_free(cor);
    qg_tensor_free(aux);
    qg__model_free(m);
    qg_ctx_free(ctx);
    return st;
}
