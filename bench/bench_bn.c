/* bench/bench_bn.c: the batch norms of a CIFAR ResNet-20 training step as
 * the model runs them (bn + ReLU, and bn + residual add + ReLU), forward
 * (batch statistics) and backward, one line per shape and pass: min and
 * median ms over --runs and the rate in GB/s of the bytes each pass must
 * move at least (every input read once, every output written once). With
 * --cold a 64 MiB buffer is rewritten before each run, so the operands
 * come from memory as they do inside a training step rather than from a
 * cache the previous run warmed. The last line weights each shape by how
 * often ResNet-20 has it: the batch-norm time of one training step.
 *
 * usage: bench/bench_bn [--batch N] [--runs N] [--cold] [--device N|NAME] */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qgate.h"
#include "bench_util.h"
#include "cl/ctx.h"
#include "ops/layers.h"

typedef struct shape {
    const char *what;
    int c, hw;  /* channels, H = W */
    int res;    /* 1: bn2 with the block's residual */
    int count;  /* batch norms of this kind in ResNet-20 */
} shape;

static const shape shapes[] = {
    {"stage1 16x32x32", 16, 32, 0, 4}, {"stage1 16x32x32 +res", 16, 32, 1, 3},
    {"stage2 32x16x16", 32, 16, 0, 3}, {"stage2 32x16x16 +res", 32, 16, 1, 3},
    {"stage3 64x8x8", 64, 8, 0, 3},    {"stage3 64x8x8 +res", 64, 8, 1, 3},
};

int main(int argc, char **argv)
{
    bench_prog = "bench_bn";
    qg_ctx_opts o = {0};
    int batch = 128, runs = 20, cold = 0;
    for (int i = 1; i < argc; i++) {
        if (bench_common_opt(argc, argv, &i, &o, &batch, &runs))
            continue;
        if (strcmp(argv[i], "--cold") == 0)
            cold = 1;
        else {
            fprintf(stderr, "usage: bench_bn [--batch N] [--runs N] [--cold] [--device N|NAME]\n");
            return 2;
        }
    }
    if (batch < 1 || runs < 1) {
        fprintf(stderr, "bench_bn: --batch and --runs must be positive\n");
        return 2;
    }
    qg_ctx *ctx = bench_ctx(&o);
    printf("device: %s (driver %s), batch %d, %s operands, min/median of %d runs\n",
           ctx->info.name, ctx->info.driver, batch, cold ? "cold" : "warm", runs);
    printf("%-22s %-4s %9s %9s %8s\n", "shape", "pass", "min ms", "med ms", "GB/s");
    /* rewritten before each cold run: larger than the last-level caches */
    size_t flush_n = (size_t)16 << 20;
    int64_t fs[1] = {(int64_t)flush_n};
    qg_tensor *flush = cold ? bench_tensor(ctx, 1, fs, "flush", 0.0f) : NULL;
    float *flush_h = cold ? calloc(flush_n, sizeof(float)) : NULL;
    if (cold && !flush_h)
        bench_die("out of memory");
    double *t = malloc((size_t)runs * sizeof *t);
    double step_ms = 0;
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        const shape *s = &shapes[si];
        int64_t xs[4] = {batch, s->c, s->hw, s->hw}, cs[1] = {s->c};
        qg_tensor *x = bench_tensor(ctx, 4, xs, "x", 0.3f);
        qg_tensor *y = bench_tensor(ctx, 4, xs, "y", 0.0f);
        qg_tensor *dy = bench_tensor(ctx, 4, xs, "dy", 0.0f);
        qg_tensor *dx = bench_tensor(ctx, 4, xs, "dx", 0.0f);
        qg_tensor *res = s->res ? bench_tensor(ctx, 4, xs, "res", 0.1f) : NULL;
        qg_tensor *dres = s->res ? bench_tensor(ctx, 4, xs, "dres", 0.0f) : NULL;
        qg_tensor *gamma = bench_tensor(ctx, 1, cs, "gamma", 1.0f);
        qg_tensor *beta = bench_tensor(ctx, 1, cs, "beta", 0.0f);
        qg_tensor *rm = bench_tensor(ctx, 1, cs, "rm", 0.0f);
        qg_tensor *rv = bench_tensor(ctx, 1, cs, "rv", 1.0f);
        qg_tensor *sm = bench_tensor(ctx, 1, cs, "sm", 0.0f);
        qg_tensor *si_ = bench_tensor(ctx, 1, cs, "si", 0.0f);
        qg_tensor *dg = bench_tensor(ctx, 1, cs, "dg", 0.0f);
        qg_tensor *db = bench_tensor(ctx, 1, cs, "db", 0.0f);
        double mb = (double)qg_tensor_numel(x) * sizeof(float) * 1e-6;
        for (int pass = 0; pass < 2; pass++) {
            for (int r = -1; r < runs; r++) {
                if (cold && (qg_tensor_write(flush, flush_h, flush_n * sizeof(float)) != QG_OK ||
                             qg_ctx_finish(ctx) != QG_OK))
                    bench_die("flushing the caches");
                double t0 = bench_now();
                qg_status st =
                    pass == 0 ? qg__bn_act_fwd_train(ctx, x, gamma, beta, rm, rv, 0.1f, 1e-5f, res,
                                                     QG_BN_RELU, NULL, y, sm, si_, NULL, 0.0f)
                              : qg__bn_act_bwd(ctx, x, y, dy, gamma, sm, si_, QG_BN_RELU, dx, dg,
                                               db, 0, dres, 0, NULL);
                if (st != QG_OK || qg_ctx_finish(ctx) != QG_OK)
                    bench_die(pass ? "backward" : "forward");
                if (r >= 0) /* the first call builds and warms up */
                    t[r] = (bench_now() - t0) * 1e3;
            }
            qsort(t, (size_t)runs, sizeof *t, bench_cmp);
            /* fwd: x (+ res) in, y out; bwd: x, y, dy in, dx (+ dres) out */
            double bytes = mb * (pass == 0 ? 2 + s->res : 4 + s->res);
            printf("%-22s %-4s %9.3f %9.3f %8.1f\n", s->what, pass ? "bwd" : "fwd", t[0],
                   t[runs / 2], bytes / t[0]);
            step_ms += s->count * t[runs / 2];
        }
        qg_tensor *ts[] = {x, y, dy, dx, res, dres, gamma, beta, rm, rv, sm, si_, dg, db};
        for (size_t i = 0; i < sizeof ts / sizeof *ts; i++)
            qg_tensor_free(ts[i]);
    }
    printf("ResNet-20 training step, batch norms (medians, weighted by count): %.2f ms\n",
           step_ms);
    free(t);
    free(flush_h);
    qg_tensor_free(flush);
    qg_ctx_free(ctx);
    return 0;
}
