/* bench/bench_conv.c: the convolutions of a CIFAR ResNet-20 training step,
 * one line per distinct shape and pass (forward, data gradient, weight
 * gradient, and bwd: both gradients in one call as training runs them):
 * min and median ms over --runs, GFLOP/s and, with --peak, the
 * fraction of the device's peak (bench/peak_flops measures it). The last
 * lines weight each shape by how often ResNet-20 has it and give the conv
 * time of one training step. Kernel parameters come from the tuning
 * database as in training.
 *
 * With --quant BITS, two more lines per shape: the quantized forward of a
 * training step as two passes (qg__quant_apply, then the conv keeping its
 * planes) and as one (qg__conv_enqueue_fwd_quant, rounding while it
 * prepares). Each shape's plan is made once, before its runs.
 *
 * usage: bench/bench_conv [--batch N] [--input CxHxW] [--runs N] [--peak GFLOPS]
 *                         [--quant BITS] [--device N|NAME] */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qgate.h"
#include "bench_util.h"
#include "cl/ctx.h"
#include "ops/conv.h"
#include "quant/quant.h"

typedef struct shape {
    const char *what;
    int c, k, stride, hdiv; /* input channels, output channels, stride, input H = H0/hdiv */
    int count;              /* convs of this shape in ResNet-20 */
} shape;

static const shape shapes[] = {
    {"stem 3x3", 0, 16, 1, 1, 1},
    {"stage1 3x3 16-16", 16, 16, 1, 1, 6},
    {"stage2 3x3 s2 16-32", 16, 32, 2, 1, 1},
    {"stage2 3x3 32-32", 32, 32, 1, 2, 5},
    {"stage3 3x3 s2 32-64", 32, 64, 2, 2, 1},
    {"stage3 3x3 64-64", 64, 64, 1, 4, 5},
};

/* The quantized forward as training runs it: "q2pass" quantizes x into a
 * copy, then the conv prepares (and keeps) its planes from the copy;
 * "q1pass" rounds while preparing. The scale pass precedes both and is
 * not timed. */
static void quant_passes(qg_ctx *ctx, const qg_conv_desc *d, const char *what, int bits,
                         int runs, const qg_tensor *x, const qg_tensor *w, qg_tensor *y,
                         qg_tensor *ws, double *t)
{
    qg_conv_plan *plan;
    qg_conv_opts co = {.quant_bits = bits};
    if (qg__conv_plan_new(ctx, d, &co, &plan) != QG_OK)
        bench_die("conv plan");
    unsigned caps = qg__conv_plan_caps(plan);
    size_t kf = qg__conv_plan_keep_floats(plan);
    int64_t one[1] = {1}, xs[4] = {d->N, d->C, d->H, d->W};
    int64_t ks[1] = {(int64_t)(kf ? kf : 1)};
    qg_tensor *s = bench_tensor(ctx, 1, one, "scale", 0.0f);
    qg_tensor *xq = bench_tensor(ctx, 4, xs, "xq", 0.0f);
    qg_tensor *keep = kf ? bench_tensor(ctx, 1, ks, "keep", 0.0f) : NULL;
    if (qg__quant_scale(ctx, x, QG_QSCALE_PG, s) != QG_OK)
        bench_die("quant_scale");
    static const char *names[2] = {"q2pass", "q1pass"};
    for (int fused = 0; fused < 2; fused++) {
        if (fused && !(caps & QG_CONV_CAP_FUSED_QUANT)) {
            printf("%-22s %-6s (not fused for this shape or bit width)\n", what, names[1]);
            break;
        }
        for (int r = -1; r < runs; r++) {
            double t0 = bench_now();
            qg_status st;
            if (fused) {
                st = qg__conv_enqueue_fwd_quant(plan, x, s, w, y, ws, keep);
            } else {
                st = qg__quant_apply(ctx, x, s, bits, 0, xq, NULL, NULL, NULL);
                if (st == QG_OK)
                    st = qg__conv_enqueue_fwd(plan, xq, w, NULL, y, ws, keep);
            }
            if (st != QG_OK || qg_ctx_finish(ctx) != QG_OK)
                bench_die(names[fused]);
            if (r >= 0)
                t[r] = (bench_now() - t0) * 1e3;
            if (r == runs - 1) {
                qsort(t, (size_t)runs, sizeof *t, bench_cmp);
                printf("%-22s %-6s %9.3f %9.3f\n", what, names[fused], t[0], t[runs / 2]);
            }
        }
    }
    /* the backward as training runs it, with and without the STE mask */
    static const char *bnames[2] = {"bwd", "bwdmsk"};
    int64_t ws4[4] = {d->K, d->C, d->R, d->S};
    qg_tensor *dx = bench_tensor(ctx, 4, xs, "dx", 0.0f);
    qg_tensor *dw = bench_tensor(ctx, 4, ws4, "dw", 0.0f);
    for (int masked = 0; masked < 2; masked++) {
        if (masked && !(caps & QG_CONV_CAP_MASKED_BWD)) {
            printf("%-22s %-6s (no masked backward for this shape)\n", what, bnames[1]);
            break;
        }
        for (int r = -1; r < runs; r++) {
            double t0 = bench_now();
            qg_status st = masked ? qg__conv_enqueue_bwd_masked(plan, x, y, w, dx, 0, x, dw, 0,
                                                                NULL, ws, keep)
                                  : qg__conv_enqueue_bwd(plan, x, y, w, dx, 0, dw, NULL, 0, ws,
                                                         keep);
            if (st != QG_OK || qg_ctx_finish(ctx) != QG_OK)
                bench_die(bnames[masked]);
            if (r >= 0)
                t[r] = (bench_now() - t0) * 1e3;
        }
        qsort(t, (size_t)runs, sizeof *t, bench_cmp);
        printf("%-22s %-6s %9.3f %9.3f\n", what, bnames[masked], t[0], t[runs / 2]);
    }
    qg_tensor_free(dx);
    qg_tensor_free(dw);
    qg_tensor_free(s);
    qg_tensor_free(xq);
    qg_tensor_free(keep);
    qg__conv_plan_free(plan);
}

int main(int argc, char **argv)
{
    bench_prog = "bench_conv";
    qg_ctx_opts o = {0};
    int batch = 128, runs = 10, in_c = 3, in_h = 32, in_w = 32, qbits = 0;
    double peak = 0;
    for (int i = 1; i < argc; i++) {
        if (bench_common_opt(argc, argv, &i, &o, &batch, &runs))
            continue;
        if (strcmp(argv[i], "--quant") == 0 && i + 1 < argc)
            qbits = atoi(argv[++i]);
        else if (strcmp(argv[i], "--peak") == 0 && i + 1 < argc)
            peak = atof(argv[++i]);
        else if (strcmp(argv[i], "--input") == 0 && i + 1 < argc &&
                 sscanf(argv[i + 1], "%dx%dx%d", &in_c, &in_h, &in_w) == 3)
            i++;
        else {
            fprintf(stderr, "usage: bench_conv [--batch N] [--input CxHxW] [--runs N] "
                            "[--peak GFLOPS] [--quant BITS] [--device N|NAME]\n");
            return 2;
        }
    }
    if (batch < 1 || runs < 1 || (qbits && (qbits < 2 || qbits > 16))) {
        fprintf(stderr, "bench_conv: --batch and --runs must be positive, --quant 2..16\n");
        return 2;
    }
    qg_ctx *ctx = bench_ctx(&o);
    printf("device: %s (driver %s), batch %d, input %dx%dx%d, min/median of %d runs\n",
           ctx->info.name, ctx->info.driver, batch, in_c, in_h, in_w, runs);
    printf("%-22s %-6s %9s %9s %9s %7s\n", "shape", "pass", "min ms", "med ms", "GFLOP/s",
           peak > 0 ? "%peak" : "");
    double step_ms = 0, step_flop = 0;
    double *t = malloc((size_t)runs * sizeof *t);
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        const shape *s = &shapes[si];
        int c = s->c ? s->c : in_c, h = in_h / s->hdiv, w = in_w / s->hdiv;
        qg_conv_desc d;
        qg_conv_plan *plan;
        if (qg__conv_desc_init(ctx, &d, batch, c, h, w, s->k, 3, 3, s->stride, 1, 1) != QG_OK ||
            qg__conv_plan_new(ctx, &d, NULL, &plan) != QG_OK)
            bench_die(s->what);
        int64_t xs[4] = {batch, c, h, w}, ys[4] = {batch, s->k, d.P, d.Q};
        int64_t wsz[4] = {s->k, c, 3, 3}, wss[1] = {(int64_t)qg__conv_plan_ws_floats(plan)};
        qg_tensor *x = bench_tensor(ctx, 4, xs, "x", 0.0f);
        qg_tensor *y = bench_tensor(ctx, 4, ys, "y", 0.0f);
        qg_tensor *dx = bench_tensor(ctx, 4, xs, "dx", 0.0f);
        qg_tensor *wt = bench_tensor(ctx, 4, wsz, "w", 0.0f);
        qg_tensor *dw = bench_tensor(ctx, 4, wsz, "dw", 0.0f);
        qg_tensor *ws = bench_tensor(ctx, 1, wss, "ws", 0.0f);
        double flop = 2.0 * batch * s->k * d.P * d.Q * c * 9;
        static const char *passes[4] = {"fwd", "dgrad", "wgrad", "bwd"};
        for (int pass = 0; pass < 4; pass++) {
            if (pass == 1 && s->c == 0)
                continue; /* the stem needs no input gradient */
            for (int r = -1; r < runs; r++) {
                double t0 = bench_now();
                qg_status st =
                    pass == 0   ? qg__conv_enqueue_fwd(plan, x, wt, NULL, y, ws, NULL)
                    : pass == 1 ? qg__conv_enqueue_bwd_data(plan, y, wt, dx, ws, 0)
                    : pass == 2 ? qg__conv_enqueue_bwd_weight(plan, x, y, dw, NULL, ws, 0)
                                : qg__conv_enqueue_bwd(plan, x, y, wt, s->c ? dx : NULL, 0, dw,
                                                       NULL, 0, ws, NULL);
                if (st != QG_OK || qg_ctx_finish(ctx) != QG_OK)
                    bench_die(passes[pass]);
                if (r >= 0) /* the first call builds and warms up */
                    t[r] = (bench_now() - t0) * 1e3;
            }
            qsort(t, (size_t)runs, sizeof *t, bench_cmp);
            /* bwd = both gradients (the stem's weight gradient only) */
            double f = pass == 3 ? (s->c ? 2 : 1) * flop : flop;
            double g = f / (t[0] * 1e-3) * 1e-9;
            printf("%-22s %-6s %9.3f %9.3f %9.1f", s->what, passes[pass], t[0], t[runs / 2], g);
            if (peak > 0)
                printf(" %6.1f%%", 100.0 * g / peak);
            printf("\n");
            if (pass == 0 || pass == 3) { /* a training step: forward + both gradients */
                step_ms += s->count * t[0];
                step_flop += s->count * f;
            }
        }
        if (qbits)
            quant_passes(ctx, &d, s->what, qbits, runs, x, wt, y, ws, t);
        qg_tensor *all[] = {x, y, dx, wt, dw, ws};
        for (int i = 0; i < 6; i++)
            qg_tensor_free(all[i]);
        qg__conv_plan_free(plan);
    }
    free(t);
    double g = step_flop / (step_ms * 1e-3) * 1e-9;
    printf("resnet20 training-step convs (fwd + bwd, min, weighted by count): %.1f ms, %.1f "
           "GFLOP/s", step_ms, g);
    if (peak > 0)
        printf(", %.1f%% of peak", 100.0 * g / peak);
    printf("\n");
    qg_ctx_free(ctx);
    return 0;
}
