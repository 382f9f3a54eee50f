/* bench/bench_gconv.c: grouped 3x3 convolutions, the base path of Channel
 * Gating's CG ResNet-20 (--cg --pt P --group: conv1 of each block as a
 * P-group conv), on three paths in alternating runs so that load from
 * other processes hits all of them alike:
 *   direct  the grouped conv on the direct kernels (what a plan picks)
 *   gemm    the same grouped conv on im2col + GEMM (the old path, forced
 *           with qg_conv_opts.force_gemm)
 *   dense   the ungrouped conv of the same shape on the direct kernels
 *           (what CG computed before with masked weights)
 * One line per shape and pass (fwd; bwd = both gradients in one call as
 * training runs them): min and median ms of each path over --runs and
 * the ratios of the minima gemm/direct and dense/direct. Kernel
 * parameters come from the tuning database as in training.
 *
 * usage: bench/bench_gconv [--batch N] [--groups G] [--runs N] [--no-gemm]
 *                          [--device N|NAME] */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qgate.h"
#include "bench_util.h"
#include "cl/ctx.h"
#include "ops/conv.h"

typedef struct shape {
    const char *what;
    int c, k, stride, hw; /* input channels, output channels, stride, input H = W */
    int count;            /* CG layers of this shape in CG ResNet-20 */
} shape;

static const shape shapes[] = {
    {"stage1 16-16", 16, 16, 1, 32, 3},
    {"stage2 s2 16-32", 16, 32, 2, 32, 1},
    {"stage2 32-32", 32, 32, 1, 16, 2},
    {"stage3 s2 32-64", 32, 64, 2, 16, 1},
    {"stage3 64-64", 64, 64, 1, 8, 2},
};

enum { P_DIRECT, P_GEMM, P_DENSE, NPATH };
static const char *path_names[NPATH] = {"direct", "gemm", "dense"};

typedef struct path {
    qg_conv_plan *plan;
    qg_tensor *w, *dw, *ws;
} path;

int main(int argc, char **argv)
{
    bench_prog = "bench_gconv";
    qg_ctx_opts o = {0};
    int batch = 128, runs = 5, groups = 4, gemm = 1;
    for (int i = 1; i < argc; i++) {
        if (bench_common_opt(argc, argv, &i, &o, &batch, &runs))
            continue;
        if (strcmp(argv[i], "--groups") == 0 && i + 1 < argc)
            groups = atoi(argv[++i]);
        else if (strcmp(argv[i], "--no-gemm") == 0)
            gemm = 0;
        else {
            fprintf(stderr, "usage: bench_gconv [--batch N] [--groups G] [--runs N] "
                            "[--no-gemm] [--device N|NAME]\n");
            return 2;
        }
    }
    if (batch < 1 || runs < 1 || groups < 2 || 16 % groups) {
        fprintf(stderr, "bench_gconv: --batch and --runs must be positive, --groups 2, 4, 8 "
                        "or 16\n");
        return 2;
    }
    qg_ctx *ctx = bench_ctx(&o);
    printf("device: %s (driver %s), batch %d, %d groups, min/median of %d alternating runs\n",
           ctx->info.name, ctx->info.driver, batch, groups, runs);
    printf("%-16s %-4s %17s %17s %17s %8s %8s\n", "shape", "pass", "direct min/med",
           "gemm min/med", "dense min/med", "gemm/dir", "dense/dir");
    double *t = malloc((size_t)NPATH * runs * sizeof *t);
    double step[NPATH] = {0};
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        const shape *s = &shapes[si];
        qg_conv_desc dg, dd;
        if (qg__conv_desc_init(ctx, &dg, batch, s->c, s->hw, s->hw, s->k, 3, 3, s->stride, 1,
                               groups) != QG_OK ||
            qg__conv_desc_init(ctx, &dd, batch, s->c, s->hw, s->hw, s->k, 3, 3, s->stride, 1,
                               1) != QG_OK)
            bench_die(s->what);
        path pa[NPATH] = {{0}};
        for (int p = 0; p < NPATH; p++) {
            if (p == P_GEMM && !gemm)
                continue;
            qg_conv_opts co = {.force_gemm = p == P_GEMM};
            const qg_conv_desc *d = p == P_DENSE ? &dd : &dg;
            if (qg__conv_plan_new(ctx, d, &co, &pa[p].plan) != QG_OK)
                bench_die(s->what);
            int64_t wsz[4] = {s->k, s->c / d->groups, 3, 3};
            int64_t wss[1] = {(int64_t)qg__conv_plan_ws_floats(pa[p].plan)};
            pa[p].w = bench_tensor(ctx, 4, wsz, "w", 0.0f);
            pa[p].dw = bench_tensor(ctx, 4, wsz, "dw", 0.0f);
            pa[p].ws = bench_tensor(ctx, 1, wss, "ws", 0.0f);
        }
        int64_t xs[4] = {batch, s->c, s->hw, s->hw}, ys[4] = {batch, s->k, dg.P, dg.Q};
        qg_tensor *x = bench_tensor(ctx, 4, xs, "x", 0.0f);
        qg_tensor *y = bench_tensor(ctx, 4, ys, "y", 0.0f);
        qg_tensor *dx = bench_tensor(ctx, 4, xs, "dx", 0.0f);
        static const char *passes[2] = {"fwd", "bwd"};
        for (int pass = 0; pass < 2; pass++) {
            for (int r = -1; r < runs; r++) {
                for (int p = 0; p < NPATH; p++) {
                    if (!pa[p].plan)
                        continue;
                    double t0 = bench_now();
                    qg_status st =
                        pass == 0 ? qg__conv_enqueue_fwd(pa[p].plan, x, pa[p].w, NULL, y,
                                                         pa[p].ws, NULL)
                                  : qg__conv_enqueue_bwd(pa[p].plan, x, y, pa[p].w, dx, 0,
                                                         pa[p].dw, NULL, 0, pa[p].ws, NULL);
                    if (st != QG_OK || qg_ctx_finish(ctx) != QG_OK)
                        bench_die(passes[pass]);
                    if (r >= 0) /* the first call builds and warms up */
                        t[p * runs + r] = (bench_now() - t0) * 1e3;
                }
            }
            double mn[NPATH] = {0}, md[NPATH] = {0};
            for (int p = 0; p < NPATH; p++) {
                if (!pa[p].plan)
                    continue;
                qsort(t + p * runs, (size_t)runs, sizeof *t, bench_cmp);
                mn[p] = t[p * runs];
                md[p] = t[p * runs + runs / 2];
                step[p] += s->count * mn[p];
            }
            printf("%-16s %-4s %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f\n", s->what,
                   passes[pass], mn[P_DIRECT], md[P_DIRECT], mn[P_GEMM], md[P_GEMM],
                   mn[P_DENSE], md[P_DENSE], mn[P_GEMM] / mn[P_DIRECT],
                   mn[P_DENSE] / mn[P_DIRECT]);
        }
        for (int p = 0; p < NPATH; p++) {
            qg_tensor_free(pa[p].w);
            qg_tensor_free(pa[p].dw);
            qg_tensor_free(pa[p].ws);
            qg__conv_plan_free(pa[p].plan);
        }
        qg_tensor_free(x);
        qg_tensor_free(y);
        qg_tensor_free(dx);
    }
    free(t);
    printf("CG ResNet-20 base-path convs of a training step (fwd + bwd minima weighted by "
           "count):");
    for (int p = 0; p < NPATH; p++)
        if (p != P_GEMM || gemm)
            printf(" %s %.1f ms", path_names[p], step[p]);
    printf("\n");
    qg_ctx_free(ctx);
    return 0;
}
