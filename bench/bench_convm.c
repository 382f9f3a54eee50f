/* bench/bench_convm.c: the output-masked 3x3 conv (src/ops/conv_masked.h)
 * against the dense conv it replaces, on the conditional-path shapes of
 * CG ResNet-20 on 28x28 inputs (--cg --pt 4 --group: a quarter of the
 * weights zero, declared), at gate densities and patterns given on the
 * command line. Three paths in alternating runs, so that load from other
 * processes hits all alike:
 *   dense   the conv plan's forward / weight gradient (what --dense-gates runs)
 *   tiles   the masked conv, MODE 0 (tiles of KT channels x VW columns)
 *   gather  the masked conv, MODE 1 (one output at a time, channels last)
 * Passes: fwd, wgrd (weight gradient), dgrd (data gradient, one kernel for
 * both forms of the masked conv) of a dy masked like the output.
 * Per shape, density and pass: min and median ms of each path and the
 * ratios dense/tiles and dense/gather of the minima. The other tunables
 * come from the tuning database as in training.
 *
 * usage: bench/bench_convm [--batch N] [--runs N] [--density D[,D..]]
 *                          [--clustered] [--gv 4|8] [--device N|NAME]
 * --gv: the gather's channel vector width instead of the tuned one. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qgate.h"
#include "bench_util.h"
#include "cl/ctx.h"
#include "ops/conv.h"
#include "ops/conv_masked.h"

typedef struct shape {
    const char *what;
    int c, k, stride, hw;
} shape;

static const shape shapes[] = {
    {"stage1 16-16", 16, 16, 1, 28},
    {"stage2 32-32", 32, 32, 1, 14},
    {"stage3 64-64", 64, 64, 1, 7},
};

enum { P_DENSE, P_TILES, P_GATHER, NPATH };

/* 1 with probability dens per output, or (clustered) a rectangle of about
 * dens of each map, a fixed pseudo-random walk either way. */
static void fill_mask(float *m, int N, int K, int P, int Q, double dens, int clustered)
{
    uint32_t s = 12345;
    for (int nk = 0; nk < N * K; nk++) {
        float *mm = m + (size_t)nk * P * Q;
        int h = (int)ceil(sqrt(dens) * P), w = (int)ceil(sqrt(dens) * Q);
        s = s * 1664525u + 1013904223u;
        int p0 = (int)((s >> 8) % (unsigned)(P - h + 1));
        s = s * 1664525u + 1013904223u;
        int q0 = (int)((s >> 8) % (unsigned)(Q - w + 1));
        for (int p = 0; p < P; p++)
            for (int q = 0; q < Q; q++) {
                s = s * 1664525u + 1013904223u;
                int on = clustered ? p >= p0 && p < p0 + h && q >= q0 && q < q0 + w
                                   : (s >> 8) < dens * (1u << 24);
                mm[p * Q + q] = on ? 1.0f : 0.0f;
            }
    }
}

int main(int argc, char **argv)
{
    bench_prog = "bench_convm";
    qg_ctx_opts o = {0};
    int batch = 128, runs = 5, clustered = 0, gv = 0;
    const char *dens_arg = "0.4";
    for (int i = 1; i < argc; i++) {
        if (bench_common_opt(argc, argv, &i, &o, &batch, &runs))
            continue;
        if (strcmp(argv[i], "--density") == 0 && i + 1 < argc)
            dens_arg = argv[++i];
        else if (strcmp(argv[i], "--gv") == 0 && i + 1 < argc)
            gv = atoi(argv[++i]);
        else if (strcmp(argv[i], "--clustered") == 0)
            clustered = 1;
        else {
            fprintf(stderr, "usage: bench_convm [--batch N] [--runs N] [--density D[,D..]] "
                            "[--clustered] [--gv 4|8] [--device N|NAME]\n");
            return 2;
        }
    }
    if (batch < 1 || runs < 1) {
        fprintf(stderr, "bench_convm: --batch and --runs must be positive\n");
        return 2;
    }
    qg_ctx *ctx = bench_ctx(&o);
    printf("device: %s (driver %s), batch %d, %s gates, zero quarter declared, min/median of "
           "%d alternating runs (ms)\n",
           ctx->info.name, ctx->info.driver, batch, clustered ? "clustered" : "random", runs);
    printf("%-13s %5s %-4s %15s %15s %15s %8s %8s %7s\n", "shape", "dens", "pass",
           "dense min/med", "tiles min/med", "gather min/med", "d/tiles", "d/gather",
           "tiles%");
    double *t = malloc((size_t)NPATH * runs * sizeof *t);
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        const shape *s = &shapes[si];
        qg_conv_desc d;
        if (qg__conv_desc_init(ctx, &d, batch, s->c, s->hw, s->hw, s->k, 3, 3, s->stride, 1,
                               1) != QG_OK)
            bench_die(s->what);
        qg_conv_plan *plan;
        if (qg__conv_plan_new(ctx, &d, NULL, &plan) != QG_OK)
            bench_die(s->what);
        qg_convm *cm[NPATH] = {0};
        for (int p = P_TILES; p <= P_GATHER; p++) {
            long v[QG_MAX_TUNABLES];
            int nv = 0;
            if (qg__program_params(ctx, "conv_masked", v, &nv) != QG_OK)
                bench_die("conv_masked parameters");
            v[QG_MASKED_MODE] = p == P_GATHER;
            if (gv)
                v[QG_MASKED_GV] = gv;
            if (qg__program_override(ctx, "conv_masked", v) != QG_OK ||
                qg__convm_new(ctx, &d, &cm[p]) != QG_OK ||
                qg__convm_zero_blocks(cm[p], 4, 1) != QG_OK ||
                qg__program_override(ctx, "conv_masked", NULL) != QG_OK)
                bench_die("making the masked conv");
        }
        int64_t xs[4] = {batch, s->c, s->hw, s->hw}, ys[4] = {batch, s->k, d.P, d.Q};
        int64_t wsz[4] = {s->k, s->c, 3, 3};
        int64_t wss[1] = {(int64_t)qg__conv_plan_ws_floats(plan) + 1};
        qg_tensor *x = bench_tensor(ctx, 4, xs, "x", 0.0f);
        qg_tensor *dx = bench_tensor(ctx, 4, xs, "dx", 0.0f);
        qg_tensor *w = bench_tensor(ctx, 4, wsz, "w", 0.0f);
        qg_tensor *dw = bench_tensor(ctx, 4, wsz, "dw", 0.0f);
        qg_tensor *ws = bench_tensor(ctx, 1, wss, "ws", 0.0f);
        qg_tensor *y = bench_tensor(ctx, 4, ys, "y", 0.0f);
        qg_tensor *dy = bench_tensor(ctx, 4, ys, "dy", 0.0f);
        qg_tensor *mask = bench_tensor(ctx, 4, ys, "mask", 0.0f);
        size_t ny = qg_tensor_numel(y);
        float *hm = malloc(ny * sizeof *hm), *hdy = malloc(ny * sizeof *hdy);
        if (!hm || !hdy)
            bench_die("out of memory");
        for (const char *dp = dens_arg; dp && *dp;) {
            double dens = atof(dp);
            dp = strchr(dp, ',');
            dp = dp ? dp + 1 : NULL;
            fill_mask(hm, batch, s->k, d.P, d.Q, dens, clustered);
            for (size_t i = 0; i < ny; i++)
                hdy[i] = hm[i] != 0.0f ? 0.001f * (float)(i % 997) - 0.5f : 0.0f;
            if (qg_tensor_write(mask, hm, ny * sizeof *hm) != QG_OK ||
                qg_tensor_write(dy, hdy, ny * sizeof *hdy) != QG_OK)
                bench_die("writing the mask");
            double tiles_share = 0;
            static const char *passes[3] = {"fwd", "wgrd", "dgrd"};
            for (int pass = 0; pass < 3; pass++) {
                for (int r = -1; r < runs; r++) {
                    for (int p = 0; p < NPATH; p++) {
                        double t0 = bench_now();
                        qg_status st;
                        if (p == P_DENSE)
                            st = pass == 0   ? qg__conv_enqueue_fwd(plan, x, w, NULL, y, ws, NULL)
                                 : pass == 1 ? qg__conv_enqueue_bwd_weight(plan, x, dy, dw, NULL,
                                                                           ws, 0)
                                             : qg__conv_enqueue_bwd_data(plan, dy, w, dx, ws, 0);
                        else
                            st = pass == 0   ? qg__convm_fwd(cm[p], x, w, mask, y)
                                 : pass == 1 ? qg__convm_bwd_weight(cm[p], x, dy, dw, 0)
                                             : qg__convm_bwd_data(cm[p], dy, w, dx, 0);
                        if (st != QG_OK || qg_ctx_finish(ctx) != QG_OK)
                            bench_die(passes[pass]);
                        if (r >= 0) /* the first call builds and warms up */
                            t[p * runs + r] = (bench_now() - t0) * 1e3;
                    }
                }
                if (pass == 0) {
                    long listed, total;
                    if (qg__convm_tiles(cm[P_TILES], &listed, &total) != QG_OK)
                        bench_die("tiles");
                    tiles_share = 100.0 * listed / total;
                }
                double mn[NPATH], md[NPATH];
                for (int p = 0; p < NPATH; p++) {
                    qsort(t + p * runs, (size_t)runs, sizeof *t, bench_cmp);
                    mn[p] = t[p * runs];
                    md[p] = t[p * runs + runs / 2];
                }
                printf("%-13s %5.2f %-4s %7.2f %7.2f %7.2f %7.2f %7.2f %7.2f %8.2f %8.2f %6.1f\n",
                       s->what, dens, passes[pass], mn[P_DENSE], md[P_DENSE], mn[P_TILES],
                       md[P_TILES], mn[P_GATHER], md[P_GATHER], mn[P_DENSE] / mn[P_TILES],
                       mn[P_DENSE] / mn[P_GATHER], tiles_share);
            }
        }
        free(hm);
        free(hdy);
        for (int p = P_TILES; p <= P_GATHER; p++)
            qg__convm_free(cm[p]);
        qg__conv_plan_free(plan);
        qg_tensor_free(x), qg_tensor_free(dx), qg_tensor_free(w), qg_tensor_free(dw), qg_tensor_free(ws);
        qg_tensor_free(y), qg_tensor_free(dy), qg_tensor_free(mask);
    }
    free(t);
    qg_ctx_free(ctx);
    return 0;
}
