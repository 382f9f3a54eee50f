/* bench/bench_dwconv.c: the depthwise 3x3 convolutions of a ShuffleNet v2
 * (1x, 224x224 input) forward, data gradient and weight gradient, against
 * a measured copy bandwidth on the same device. One line per shape and
 * pass: min and median ms over --runs, and GB/s of the bytes the pass
 * must move at least (x and y, or dy and dx, or x and dy, each once; the
 * weights are negligible), with the share of the copy rate. The copy rate
 * is the best of clEnqueueCopyBuffer and qg__chan_copy (cl/chan.cl, each
 * EPI) on the largest activation: read once, written once.
 *
 * --cpu times with the process's CPU clock instead of the wall clock (see
 * bench_cpu_now): on a loaded machine the CPU seconds a pass costs stay
 * comparable between runs where its wall time does not; GB/s then means
 * bytes per CPU second (PoCL's two worker threads together), and the copy
 * rate is measured the same way.
 *
 * usage: bench/bench_dwconv [--batch N] [--runs N] [--wg N] [--qt N] [--wwg N]
 *                           [--row 0|1] [--cpu] [--device N|NAME] */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qgate.h"
#include "bench_util.h"
#include "cl/ctx.h"
#include "ops/chan.h"
#include "ops/dwconv.h"
#include "tensor/tensor_impl.h"

typedef struct shape {
    const char *what;
    int c, hw, stride;
} shape;

static const shape shapes[] = {
    {"stage2 down 58x56x56 s2", 58, 56, 2}, {"stage2 116x28x28", 116, 28, 1},
    {"stage3 down 116x28x28 s2", 116, 28, 2}, {"stage3 232x14x14", 232, 14, 1},
    {"stage4 464x7x7", 464, 7, 1},
};

enum { FWD, DGRAD, WGRAD, COPY, CLCOPY };

static double (*clock_now)(void) = bench_now;

static double run(qg_ctx *ctx, int pass, qg_tensor *x, qg_tensor *w, qg_tensor *y,
                  qg_tensor *dx, qg_tensor *dw, int stride, int runs, double *median)
{
    double *t = malloc((size_t)runs * sizeof *t);
    for (int r = -1; r < runs; r++) {
        double t0 = clock_now();
        qg_status st = pass == FWD     ? qg__dwconv_fwd(ctx, x, w, NULL, stride, 1, y)
                       : pass == DGRAD ? qg__dwconv_bwd_data(ctx, y, w, stride, 1, dx, 0)
                       : pass == WGRAD ? qg__dwconv_bwd_weight(ctx, x, y, stride, 1, dw, NULL, 0)
                       : pass == COPY  ? qg__chan_copy(ctx, x, 0, 1, dx, 0, 1,
                                                       (int)qg_tensor_dim(x, 1), 0)
                       : clEnqueueCopyBuffer(ctx->queue, x->mem, dx->mem, x->offset * 4,
                                             dx->offset * 4, qg_tensor_numel(x) * 4, 0, NULL,
                                             NULL) == CL_SUCCESS ? QG_OK : QG_ERR_CL;
        if (st != QG_OK || qg_ctx_finish(ctx) != QG_OK)
            bench_die("running");
        if (r >= 0)
            t[r] = clock_now() - t0;
    }
    qsort(t, (size_t)runs, sizeof *t, bench_cmp);
    double m = t[0];
    *median = t[runs / 2];
    free(t);
    return m;
}

int main(int argc, char **argv)
{
    bench_prog = "bench_dwconv";
    qg_ctx_opts o = {0};
    int batch = 32, runs = 10;
    long qt = 0, wwg = 0, row = -1, wg = 0;
    for (int i = 1; i < argc; i++) {
        if (bench_common_opt(argc, argv, &i, &o, &batch, &runs))
            continue;
        if (strcmp(argv[i], "--qt") == 0 && i + 1 < argc)
            qt = atol(argv[++i]);
        else if (strcmp(argv[i], "--wwg") == 0 && i + 1 < argc)
            wwg = atol(argv[++i]);
        else if (strcmp(argv[i], "--row") == 0 && i + 1 < argc)
            row = atol(argv[++i]);
        else if (strcmp(argv[i], "--wg") == 0 && i + 1 < argc)
            wg = atol(argv[++i]);
        else if (strcmp(argv[i], "--cpu") == 0)
            clock_now = bench_cpu_now;
        else {
            fprintf(stderr, "usage: bench_dwconv [--batch N] [--runs N] [--wg N] [--qt N] "
                    "[--wwg N] [--row 0|1] [--cpu] [--device N|NAME]\n");
            return 2;
        }
    }
    if (batch < 1 || runs < 1) {
        fprintf(stderr, "bench_dwconv: --batch and --runs must be positive\n");
        return 2;
    }
    qg_ctx *ctx = bench_ctx(&o);
    long v[QG_MAX_TUNABLES];
    int nv;
    if (qg__program_params(ctx, "dwconv", v, &nv) != QG_OK)
        bench_die("reading parameters");
    if (qt)
        v[1] = qt;
    if (wwg)
        v[2] = wwg;
    if (row >= 0)
        v[3] = row;
    if (wg)
        v[0] = wg;
    if ((qt || wwg || row >= 0 || wg) && qg__program_override(ctx, "dwconv", v) != QG_OK)
        bench_die("setting parameters");
    printf("device: %s; batch %d; dwconv WG=%ld QT=%ld WWG=%ld ROW=%ld; %s clock\n",
           qg_ctx_device(ctx)->name, batch, v[0], v[1], v[2], v[3],
           clock_now == bench_now ? "wall" : "process CPU");

    /* Copy bandwidth: the largest activation, best EPI. */
    int64_t sc[4] = {batch, 58, 56, 56};
    qg_tensor *cx = bench_tensor(ctx, 4, sc, "cx", 0), *cy = bench_tensor(ctx, 4, sc, "cy", 0);
    double copy_gbs = 0, cmed;
    double cm = run(ctx, CLCOPY, cx, NULL, NULL, cy, NULL, 1, runs, &cmed);
    copy_gbs = 2.0 * qg_tensor_numel(cx) * 4 / cm / 1e9;
    printf("clEnqueueCopyBuffer %zu floats: min %.3f ms, %.2f GB/s\n", qg_tensor_numel(cx),
           cm * 1e3, copy_gbs);
    static const long epis[] = {1, 2, 4, 8};
    for (int e = 0; e < 4; e++) {
        long cv[2] = {64, epis[e]};
        if (qg__program_override(ctx, "chan", cv) != QG_OK)
            bench_die("chan parameters");
        double med, m = run(ctx, COPY, cx, NULL, NULL, cy, NULL, 1, runs, &med);
        double gbs = 2.0 * qg_tensor_numel(cx) * 4 / m / 1e9;
        printf("copy %zu floats EPI=%ld: min %.3f ms, %.2f GB/s\n", qg_tensor_numel(cx),
               epis[e], m * 1e3, gbs);
        if (gbs > copy_gbs)
            copy_gbs = gbs;
    }
    qg_tensor_free(cx);
    qg_tensor_free(cy);

    static const char *names[] = {"fwd", "dgrad", "wgrad"};
    double tot_bytes = 0, tot_s = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const shape *sh = &shapes[s];
        int P = qg__dwconv_out(sh->hw, sh->stride, 1);
        int64_t sx[4] = {batch, sh->c, sh->hw, sh->hw}, sy[4] = {batch, sh->c, P, P},
                sw[4] = {sh->c, 1, 3, 3};
        qg_tensor *x = bench_tensor(ctx, 4, sx, "x", 0), *dx = bench_tensor(ctx, 4, sx, "dx", 0);
        qg_tensor *y = bench_tensor(ctx, 4, sy, "y", 0), *w = bench_tensor(ctx, 4, sw, "w", 0);
        qg_tensor *dw = bench_tensor(ctx, 4, sw, "dw", 0);
        double bytes = (double)(qg_tensor_numel(x) + qg_tensor_numel(y)) * 4;
        for (int pass = FWD; pass <= WGRAD; pass++) {
            double med, m = run(ctx, pass, x, w, y, dx, dw, sh->stride, runs, &med);
            double gbs = bytes / m / 1e9;
            printf("%-26s %-5s min %7.3f ms  median %7.3f ms  %6.2f GB/s  %3.0f%% of copy\n",
                   sh->what, names[pass], m * 1e3, med * 1e3, gbs, 100 * gbs / copy_gbs);
            tot_bytes += bytes;
            tot_s += m;
        }
        qg_tensor_free(x), qg_tensor_free(dx), qg_tensor_free(y), qg_tensor_free(w);
        qg_tensor_free(dw);
    }
    printf("all shapes and passes: %.2f GB/s = %.0f%% of the copy rate %.2f GB/s\n",
           tot_bytes / tot_s / 1e9, 100 * tot_bytes / tot_s / 1e9 / copy_gbs, copy_gbs);
    qg_ctx_free(ctx);
    return 0;
}
