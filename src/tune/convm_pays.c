/* src/tune/convm_pays.c: where skipping stops paying, measured per device
 * and shape class (`qgate tune --shapes FILE`; contract in tune/cases.h).
 *
 * A gated layer chooses between its dense conv and the output-masked one
 * of src/ops/conv_masked.h. The masked forward costs fixed passes (mask
 * walk, zeros, layouts) plus an amount per listed work unit (tile or
 * output); the dense conv costs the same whatever the gate says. Where
 * the two lines cross differs from device to device: on one AVX2 PoCL
 * machine skipping paid up to about 80% of the tiles, on an AVX-512 one
 * the dense kernels were faster even at 40% of the outputs
 * (docs/gate_skipping.md). So this times, on this device, the dense
 * forward and the masked forward with 0%, 10%, ..., 100% of the output
 * channels on (whole channels: the listed share is then exact for both
 * forms, read back as the layer reads it) and stores the largest share
 * at which the masked one is still no slower as the PAY of the shape
 * class, which qg__convm_pays and qg__convm_keeps_paying then follow.
 * Only the forward is timed: it decides, and the layers' masked weight
 * gradient was faster than the dense one wherever measured. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "cl/tunedb.h"
#include "ops/conv.h"
#include "ops/conv_masked.h"
#include "tune/cases.h"

#define STEPS 10 /* shares 0, 1/STEPS, ..., 1 */

typedef struct pays_state {
    qg_conv_desc d;
    qg_conv_plan *plan;
    qg_convm *cm;
    qg_tensor *x, *w, *y, *ws, *mask;
    float *hmask;
} pays_state;

static void pays_release(pays_state *s)
{
    qg__conv_plan_free(s->plan);
    qg__convm_free(s->cm);
    qg_tensor *ts[] = {s->x, s->w, s->y, s->ws, s->mask};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++)
        qg_tensor_free(ts[i]);
    free(s->hmask);
}

static qg_status run_dense(qg_ctx *ctx, void *state)
{
    pays_state *s = state;
    (void)ctx;
    return qg__conv_enqueue_fwd(s->plan, s->x, s->w, NULL, s->y, s->ws, NULL);
}

static qg_status run_masked(qg_ctx *ctx, void *state)
{
    pays_state *s = state;
    (void)ctx;
    return qg__convm_fwd(s->cm, s->x, s->w, s->mask, s->y);
}

/* The first `on` output channels of every image on, the others off. */
static qg_status set_mask(pays_state *s, int on)
{
    const qg_conv_desc *d = &s->d;
    size_t PQ = (size_t)d->P * d->Q, n = (size_t)d->N * d->K * PQ;
    for (size_t i = 0; i < n; i++)
        s->hmask[i] = (int)(i / PQ % (size_t)d->K) < on ? 1.0f : 0.0f;
    return qg_tensor_write(s->mask, s->hmask, n * sizeof *s->hmask);
}

static qg_status prepare(qg_ctx *ctx, const qg_tune_conv_shape *sh, pays_state *s)
{
    qg_status st = QG_OK;
    float *hx = NULL, *hw = NULL;
    qg_conv_desc *d = &s->d;
    QG_TRY(qg__conv_desc_init(ctx, d, sh->n, sh->c, sh->h, sh->w, sh->k, 3, 3, sh->stride,
                              sh->pad, 1));
    QG_TRY(qg__conv_plan_new(ctx, d, NULL, &s->plan));
    QG_TRY(qg__convm_new(ctx, d, &s->cm));
    int64_t xs[4] = {d->N, d->C, d->H, d->W}, wsh[4] = {d->K, d->C, 3, 3};
    int64_t ys[4] = {d->N, d->K, d->P, d->Q};
    int64_t wss[1] = {(int64_t)qg__conv_plan_ws_floats(s->plan)};
    if (wss[0] < 1)
        wss[0] = 1;
    QG_TRY(qg__tune_tensor(ctx, 4, xs, "x", 31, 1.0f, &hx, &s->x));
    QG_TRY(qg__tune_tensor(ctx, 4, wsh, "w", 32, 0.1f, &hw, &s->w));
    QG_TRY(qg__tune_tensor(ctx, 4, ys, "y", 0, 0, NULL, &s->y));
    QG_TRY(qg__tune_tensor(ctx, 4, ys, "mask", 0, 0, NULL, &s->mask));
    QG_TRY(qg__tune_tensor(ctx, 1, wss, "ws", 0, 0, NULL, &s->ws));
    s->hmask = malloc(qg_tensor_numel(s->y) * sizeof *s->hmask);
    if (!s->hmask)
        st = qg__error(ctx, QG_ERR_NOMEM, "out of memory for a %zu-value mask",
                       qg_tensor_numel(s->y));
fail:
    free(hx);
    free(hw);
    return st;
}

int qg__tune_pays_crossing(const double *share, const double *ms, int n, double dense_ms)
{
    if (n < 1 || ms[0] > dense_ms)
        return 0;
    for (int j = 1; j < n; j++) {
        if (ms[j] <= dense_ms)
            continue;
        /* linear between the last share that paid and the first that did
         * not; a lower crossing percent is the safe side of rounding */
        double t = (dense_ms - ms[j - 1]) / (ms[j] - ms[j - 1]);
        double at = share[j - 1] + t * (share[j] - share[j - 1]);
        int pct = (int)floor(100.0 * at);
        return pct < 1 ? 1 : pct > 100 ? 100 : pct;
    }
    return 100;
}

qg_status qg__tune_convm_pays(qg_ctx *ctx, const qg_tune_conv_shape *sh, int runs, int dry_run,
                              FILE *log, int *pay)
{
    qg_status st = QG_OK;
    pays_state s = {0};
    *pay = -1;
    QG_TRY(prepare(ctx, sh, &s));
    char cls[QG_CONV_SHAPE_CLASS_MAX];
    qg__conv_shape_class(&s.d, cls, sizeof cls);
    qg_tune_case dense = {.program = "conv_direct", .shape = cls, .run = run_dense};
    qg_tune_case masked = {.program = "conv_masked", .shape = cls, .run = run_masked};
    qg_tune_timing td, tm;
    double share[STEPS + 1], ms[STEPS + 1];
    /* dense timed around the masked sweep, the lower median kept: a
     * burst of load during one of them then errs toward the dense side */
    QG_TRY(qg__tune_time_case(ctx, &dense, &s, runs, &td));
    double dense_ms = td.median_ms;
    for (int j = 0; j <= STEPS; j++) {
        long listed = 0, total = 1;
        QG_TRY(set_mask(&s, (int)lround((double)j * s.d.K / STEPS)));
        QG_TRY(qg__tune_time_case(ctx, &masked, &s, runs, &tm));
        QG_TRY(qg__convm_tiles(s.cm, &listed, &total));
        share[j] = (double)listed / (double)total;
        ms[j] = tm.median_ms;
    }
    QG_TRY(qg__tune_time_case(ctx, &dense, &s, runs, &td));
    if (td.median_ms < dense_ms)
        dense_ms = td.median_ms;
    *pay = qg__tune_pays_crossing(share, ms, STEPS + 1, dense_ms);
    const char *form = qg__convm_gathers(s.cm) ? "outputs" : "tiles";
    fprintf(log, "conv_masked %s (%s): dense forward %.3f ms; masked %.3f ms with none on, "
            "%.3f ms at %.0f%%, %.3f ms at 100%% of %s: skipping pays up to %d%% -> PAY %d%s\n",
            cls, form, dense_ms, ms[0], ms[STEPS / 2], 100.0 * share[STEPS / 2], ms[STEPS],
            form, *pay, *pay, *pay == 0 ? " (dense kept)" : "");
    fflush(log);
    if (!dry_run) {
        long v[QG_MAX_TUNABLES];
        int nv = 0;
        QG_TRY(qg__program_params_shape(ctx, "conv_masked", cls, v, &nv));
        v[QG_MASKED_PAY] = *pay;
        /* time_ms: the masked forward with every output on; default_ms:
         * the dense forward it is weighed against */
        QG_TRY(qg__tunedb_store(ctx, "conv_masked", cls, v, ms[STEPS], dense_ms));
    }
fail:
    pays_release(&s);
    return st;
}

qg_status qg__tune_convm_pays_builtin(qg_ctx *ctx, int runs, int dry_run, FILE *log)
{
    /* ResNet-20's gated 3x3 convs (a block's first conv: CG's conditional
     * path, PG's LSB conv) on 28x28 (Fashion-MNIST) and 32x32 (CIFAR) */
    static const int sizes[2] = {28, 32};
    static const int rows[5][4] = {/* c, k, map divisor, stride */
                                   {16, 16, 1, 1}, {16, 32, 1, 2}, {32, 32, 2, 1},
                                   {32, 64, 2, 2}, {64, 64, 4, 1}};
    qg_status st = QG_OK;
    for (int i = 0; i < 2 && st == QG_OK; i++)
        for (int j = 0; j < 5 && st == QG_OK; j++) {
            int h = sizes[i] / rows[j][2], pay;
            qg_tune_conv_shape sh = {.n = 128, .c = rows[j][0], .k = rows[j][1], .h = h,
                                     .w = h, .r = 3, .stride = rows[j][3], .pad = 1};
            st = qg__tune_convm_pays(ctx, &sh, runs, dry_run, log, &pay);
        }
    return st;
}
