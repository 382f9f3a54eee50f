/* bench/bench_pq_score.c: ProQHA's candidate scoring (src/train/search.c)
 * timed on the pre-activation ResNet-20 (--proqha, W8A8 start) with a
 * synthetic batch: per candidate, random bit widths for half of the 36
 * quantizers, then forward + backward on the fixed batch, the gradient
 * norm and the score kernel over every gradient (qg__search_score). It
 * prints the candidates per second (min and median per-candidate time) and,
 * separately, the score kernels alone (what the device adds beyond one
 * training step's forward and backward).
 *
 * usage: bench/bench_pq_score [--batch N] [--runs N] [--hw 28|32] [--device N|NAME] */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qgate.h"
#include "cl/ctx.h"
#include "core/rng.h"
#include "method/method.h"
#include "model/qbits.h"
#include "quant/quant.h"
#include "tensor/tensor_impl.h"
#include "train/search.h"
#include "train/trainer.h"

#include <time.h>

static double bench_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int bench_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void bench_die(const char *what)
{
    fprintf(stderr, "bench_pq_score: %s: %s\n", what, qg_last_error());
    exit(1);
}

int main(int argc, char **argv)
{
    int batch = 128, runs = 10, hw = 28;
    const char *dev = NULL;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--batch") == 0)
            batch = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--runs") == 0)
            runs = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--hw") == 0)
            hw = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--device") == 0)
            dev = argv[++i];
        else {
            fprintf(stderr, "usage: bench/bench_pq_score [--batch N] [--runs N] [--hw 28|32] "
                    "[--device N|NAME]\n");
            return 2;
        }
    }
    if (batch < 1 || runs < 1 || hw < 8) {
        fprintf(stderr, "bench_pq_score: --batch, --runs must be >= 1 and --hw >= 8\n");
        return 2;
    }
    qg_ctx_opts o = {.device = dev};
    qg_ctx *ctx;
    if (qg_ctx_new(&o, &ctx) != QG_OK)
        bench_die("opening the device");
    int c = hw == 32 ? 3 : 1;
    qg_method_cfg *mc;
    if (qg_method_cfg_new(&mc) != QG_OK || qg_method_cfg_set(mc, "proqha", "1") != QG_OK ||
        qg_method_cfg_check(mc) != QG_OK)
        bench_die("method configuration");
    qg_model *m;
    if (qg__model_build(ctx, "resnet20", 'A', c, hw, hw, 10, 1, mc, &m) != QG_OK)
        bench_die("building the model");
    qg_optim_cfg oc = {.kind = QG_OPTIM_ADAM, .lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f,
                       .eps = 1e-7f, .clip_norm = 5.0f, .decay_kinds = QG_DECAY_ALL};
    qg_trainer *t;
    if (qg_trainer_new(m, &oc, batch, &t) != QG_OK)
        bench_die("trainer");
    size_t per = (size_t)c * hw * hw;
    float *img = malloc((size_t)batch * per * sizeof *img);
    int32_t *lab = malloc((size_t)batch * sizeof *lab);
    qg_rng rng = {12345};
    for (size_t i = 0; i < (size_t)batch * per; i++)
        img[i] = (float)qg__rng_normal(&rng);
    for (int i = 0; i < batch; i++)
        lab[i] = (int32_t)(qg__rng_u64(&rng) % 10);
    int64_t one[1] = {1}, wsn[1] = {QG_QUANT_WS_NUMEL};
    qg_tensor *score, *ws;
    if (qg_tensor_new(ctx, 1, one, QG_DTYPE_F32, "score", &score) != QG_OK ||
        qg_tensor_new(ctx, 1, wsn, QG_DTYPE_F32, "ws", &ws) != QG_OK)
        bench_die("scratch");
    int nq = qg__qbits_count(m);
    double *tc = malloc((size_t)runs * sizeof *tc), *tk = malloc((size_t)runs * sizeof *tk);
    for (int r = -2; r < runs; r++) { /* two warm-up candidates (kernel builds) */
        for (int i = 0; i < nq; i++)
            if (qg__qbits_set(m, i, qg__rng_uniform(&rng) < 0.5 ? 7 : 8) != QG_OK)
                bench_die("setting bits");
        double s, t0 = bench_now();
        if (qg__search_score(t, m, img, lab, batch, &oc, score, ws, &s) != QG_OK)
            bench_die("scoring");
        double t1 = bench_now();
        /* the score kernels alone, over the gradients just computed */
        if (qg_tensor_zero(score) != QG_OK)
            bench_die("zero");
        for (int i = 0; i < m->nparams; i++)
            if (m->params[i]->grad && m->params[i]->kind != QG_PARAM_BUFFER &&
                qg__pq_score(ctx, m->params[i]->grad, 1.0f, 1e-3f, 0.9f, 0.999f, 1e-7f, score,
                             ws) != QG_OK)
                bench_die("score kernel");
        float v;
        if (qg_tensor_read(score, &v, sizeof v) != QG_OK)
            bench_die("read");
        double t2 = bench_now();
        if (r >= 0) {
            tc[r] = t1 - t0;
            tk[r] = t2 - t1;
        }
    }
    qsort(tc, (size_t)runs, sizeof *tc, bench_cmp);
    qsort(tk, (size_t)runs, sizeof *tk, bench_cmp);
    const qg_device_info *d = qg_ctx_device(ctx);
    printf("device: %s\n", d->name);
    printf("pre-activation ResNet-20 (%dx%dx%d, %d quantizers, %zu parameters), batch %d, "
           "%d candidates\n", c, hw, hw, nq, qg_model_param_count(m), batch, runs);
    printf("candidate (fwd+bwd+norm+score): min %.1f ms, median %.1f ms -> %.2f candidates/s "
           "(median)\n", 1e3 * tc[0], 1e3 * tc[runs / 2], 1.0 / tc[runs / 2]);
    printf("score kernels alone:            min %.2f ms, median %.2f ms\n", 1e3 * tk[0],
           1e3 * tk[runs / 2]);
    free(tc);
    free(tk);
    free(img);
    free(lab);
    qg_tensor_free(score);
    qg_tensor_free(ws);
    qg_trainer_free(t);
    qg__model_free(m);
    qg_method_cfg_free(mc);
    qg_ctx_free(ctx);
    return 0;
}
