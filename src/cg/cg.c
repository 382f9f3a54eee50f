/* src/cg/cg.c: launchers for cl/cg.cl (contract in src/cg/cg.h). C twins:
 * src/ref/ref_cg.c; tests: tests/test_cg.c.
 *
 * Every launcher checks dtypes, shapes and element counts before it
 * enqueues, so a kernel never runs on mismatched tensors. */
#include "config.h"

#include <limits.h>

#include "core/error.h"
#include "cl/ctx.h"
#include "cg/cg.h"
#include "tensor/tensor_impl.h"

void qg__cg_mask_fill(int K, int C, int KK, int p, int group, float *m)
{
    int ci = C / p, co = K / p;
    for (int o = 0; o < K; o++)
        for (int c = 0; c < C; c++) {
            int on = group ? (o / co < p && c / ci == o / co) : c < ci;
            for (int kk = 0; kk < KK; kk++)
                m[((size_t)o * C + c) * KK + kk] = on ? 1.0f : 0.0f;
        }
}

/* Groups of the gate's grid-stride launch: enough for any device's
 * cores, few enough that each group's reduction is amortised over many
 * elements (a group's float count is exact below 2^24 elements). */
#define MAX_GROUPS 256

static qg_status get(qg_ctx *ctx, qg_kernel_id kernel, qg_kargs *a, size_t *wg)
{
    return qg__kargs_get(ctx, kernel, a, wg);
}

static qg_status launch1d(qg_kargs *a, size_t n, size_t wg)
{
    return qg__kargs_launch(a, 1, &n, &wg);
}

/* t is a rank-4 F32 tensor; its dims go to d[4]. */
static qg_status need4(qg_ctx *ctx, const char *op, const char *what, const qg_tensor *t,
                       int *d)
{
    if (!t || t->ndim != 4)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: %s must be a rank-4 tensor", op, what);
    if (qg_tensor_numel(t) > INT_MAX)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: %s '%s' exceeds the kernels' int indexing",
                         op, what, t->name);
    for (int i = 0; i < 4; i++)
        d[i] = (int)t->shape[i];
    return qg__tensor_need(ctx, op, what, t, qg_tensor_numel(t), QG_DTYPE_F32);
}

/* Shared checks of the weight kernels: w-shaped m (and `full`), p and
 * compact valid, base weights of [K][Cb][R][S]; sets K, C, KK, Cb, co. */
static qg_status weights_check(qg_ctx *ctx, const char *op, const qg_tensor *m,
                               const qg_tensor *full, const qg_tensor *base, int p, int compact,
                               int *K, int *C, int *KK, int *Cb, int *co)
{
    int d[4];
    qg_status st = need4(ctx, op, "mask", m, d);
    if (st != QG_OK)
        return st;
    *K = d[0];
    *C = d[1];
    *KK = d[2] * d[3];
    if (compact < 0 || compact > QG_CG_COMPACT_FIRST)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: compact form %d (0, blocks 1 or first "
                         "channels 2)", op, compact);
    if (p < 1 || p > *C || p > *K || (compact && *C % p) ||
        (compact == QG_CG_COMPACT_BLOCKS && *K % p))
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: %d partitions %s %d -> %d channels", op,
                         p, compact ? "must divide" : "exceed", *C, *K);
    *Cb = qg__cg_base_channels(*C, p, compact);
    /* (the kernels' first base channel of output o is o/co*Cb: co = K puts
     * every output's at 0, the first-channels form) */
    *co = compact == QG_CG_COMPACT_FIRST ? *K : *K / p;
    size_t n = qg_tensor_numel(m);
    st = qg__tensor_need(ctx, op, "full weight", full, n, QG_DTYPE_F32);
    if (st == QG_OK)
        st = qg__tensor_need(ctx, op, "base weight", base, (size_t)*K * *Cb * *KK, QG_DTYPE_F32);
    return st;
}

/* Both weight kernels take four weight tensors and the same five ints. */
static qg_status weights_launch(qg_ctx *ctx, qg_kernel_id kernel, const qg_tensor *const t[4],
                                int K, int C, int KK, int Cb, int co)
{
    qg_kargs a;
    size_t wg;
    qg_status st = get(ctx, kernel, &a, &wg);
    if (st != QG_OK)
        return st;
    for (int i = 0; i < 4; i++)
        qg__karg_tensor(&a, t[i]);
    int v[5] = {K, C, KK, Cb, co};
    for (int i = 0; i < 5; i++)
        qg__karg_int(&a, v[i]);
    return launch1d(&a, (size_t)K * C * KK, wg);
}

qg_status qg__cg_weights_fwd(qg_ctx *ctx, const qg_tensor *w, const qg_tensor *m, int p,
                             int compact, qg_tensor *wb, qg_tensor *wc)
{
    const char *op = "cg_weights_fwd";
    int K, C, KK, Cb, co;
    qg_status st = weights_check(ctx, op, m, w, wb, p, compact, &K, &C, &KK, &Cb, &co);
    if (st == QG_OK)
        st = qg__tensor_need(ctx, op, "conditional weight", wc, qg_tensor_numel(m),
                             QG_DTYPE_F32);
    const qg_tensor *t[4] = {w, m, wb, wc};
    return st == QG_OK ? weights_launch(ctx, QG_K_CG_WEIGHTS_FWD, t, K, C, KK, Cb, co) : st;
}

qg_status qg__cg_weights_bwd(qg_ctx *ctx, const qg_tensor *m, const qg_tensor *dwb,
                             const qg_tensor *dwc, int p, int compact, qg_tensor *dw)
{
    const char *op = "cg_weights_bwd";
    int K, C, KK, Cb, co;
    qg_status st = weights_check(ctx, op, m, dwc, dwb, p, compact, &K, &C, &KK, &Cb, &co);
    if (st == QG_OK)
        st = qg__tensor_need(ctx, op, "dw", dw, qg_tensor_numel(m), QG_DTYPE_F32);
    const qg_tensor *t[4] = {m, dwb, dwc, dw};
    return st == QG_OK ? weights_launch(ctx, QG_K_CG_WEIGHTS_BWD, t, K, C, KK, Cb, co) : st;
}

/* Checks of the gate kernels: `first` is rank 4, the others listed have
 * its element count, delta has C. */
static qg_status gate_check(qg_ctx *ctx, const char *op, const qg_tensor *first,
                            const qg_tensor *delta, const char **names,
                            const qg_tensor *const *ts, int nts, int *d)
{
    qg_status st = need4(ctx, op, names[0], first, d);
    size_t n = st == QG_OK ? qg_tensor_numel(first) : 0;
    if (st == QG_OK)
        st = qg__tensor_need(ctx, op, "delta", delta, (size_t)d[1], QG_DTYPE_F32);
    for (int i = 0; i < nts && st == QG_OK; i++)
        st = qg__tensor_need(ctx, op, names[i + 1], ts[i], n, QG_DTYPE_F32);
    return st;
}

qg_status qg__cg_gate_fwd(qg_ctx *ctx, const qg_tensor *z, const qg_tensor *delta,
                          const qg_tensor *yp, const qg_tensor *yc, float alpha,
                          qg_tensor *out, qg_tensor *count, int count_samples)
{
    const char *op = "cg_gate_fwd";
    const char *names[] = {"Z", "Yp", "Yc", "out"};
    const qg_tensor *ts[] = {yp, yc, out};
    int d[4];
    qg_status st = gate_check(ctx, op, z, delta, names, ts, 3, d);
    if (st == QG_OK)
        st = qg__tensor_need(ctx, op, "count", count, 1, QG_DTYPE_I32);
    if (st == QG_OK && (count_samples < 0 || count_samples > d[0]))
        st = qg__error(ctx, QG_ERR_INVALID_ARG, "%s: cannot count %d samples of %d", op,
                       count_samples, d[0]);
    size_t n = st == QG_OK ? qg_tensor_numel(z) : 0;
    qg_kargs a;
    size_t wg;
    if (st == QG_OK && n)
        st = get(ctx, QG_K_CG_GATE_FWD, &a, &wg);
    if (st != QG_OK || n == 0)
        return st;
    qg__karg_tensor(&a, z);
    qg__karg_tensor(&a, delta);
    qg__karg_tensor(&a, yp);
    qg__karg_tensor(&a, yc);
    qg__karg_tensor(&a, out);
    qg__karg_tensor(&a, count);
    size_t planes = (size_t)d[0] * (size_t)d[1];
    qg__karg_int(&a, (int)planes);
    qg__karg_int(&a, count_samples * d[1]);
    qg__karg_int(&a, d[1]);
    qg__karg_int(&a, d[2] * d[3]);
    qg__karg_float(&a, alpha);
    return launch1d(&a, (planes < MAX_GROUPS ? planes : MAX_GROUPS) * wg, wg);
}

qg_status qg__cg_gate_bwd(qg_ctx *ctx, const qg_tensor *z, const qg_tensor *delta,
                          const qg_tensor *yc, const qg_tensor *dout, float alpha, int spbp,
                          qg_tensor *g, qg_tensor *dyp, qg_tensor *dyc, qg_tensor *ddelta)
{
    const char *op = "cg_gate_bwd";
    const char *names[] = {"Z", "Yc", "dOut", "g", "dYp", "dYc"};
    const qg_tensor *ts[] = {yc, dout, g, dyp, dyc};
    int d[4];
    qg_status st = gate_check(ctx, op, z, delta, names, ts, 5, d);
    if (st == QG_OK)
        st = qg__tensor_need(ctx, op, "ddelta", ddelta, (size_t)d[1], QG_DTYPE_F32);
    qg_kargs a;
    size_t wg;
    if (st == QG_OK && d[1])
        st = get(ctx, QG_K_CG_GATE_BWD, &a, &wg);
    if (st != QG_OK || d[1] == 0)
        return st;
    qg__karg_tensor(&a, z);
    qg__karg_tensor(&a, delta);
    qg__karg_tensor(&a, yc);
    qg__karg_tensor(&a, dout);
    qg__karg_int(&a, d[0]);
    qg__karg_int(&a, d[1]);
    qg__karg_int(&a, d[2] * d[3]);
    qg__karg_float(&a, alpha);
    qg__karg_int(&a, spbp != 0);
    qg__karg_tensor(&a, g);
    qg__karg_tensor(&a, dyp);
    qg__karg_tensor(&a, dyc);
    qg__karg_tensor(&a, ddelta);
    size_t gl = (size_t)d[1] * wg;
    return qg__kargs_launch(&a, 1, &gl, &wg);
}

qg_status qg__cg_gate_mask(qg_ctx *ctx, const qg_tensor *z, const qg_tensor *delta, float alpha,
                           qg_tensor *mask)
{
    const char *op = "cg_gate_mask";
    const char *names[] = {"Z", "mask"};
    const qg_tensor *ts[] = {mask};
    int d[4];
    qg_status st = gate_check(ctx, op, z, delta, names, ts, 1, d);
    size_t n = st == QG_OK ? qg_tensor_numel(z) : 0;
    qg_kargs a;
    size_t wg;
    if (st == QG_OK && n)
        st = get(ctx, QG_K_CG_GATE_MASK, &a, &wg);
    if (st != QG_OK || n == 0)
        return st;
    size_t planes = (size_t)d[0] * (size_t)d[1];
    qg__karg_tensor(&a, z);
    qg__karg_tensor(&a, delta);
    qg__karg_int(&a, (int)planes);
    qg__karg_int(&a, d[1]);
    qg__karg_int(&a, d[2] * d[3]);
    qg__karg_float(&a, alpha);
    qg__karg_tensor(&a, mask);
    return launch1d(&a, (planes < MAX_GROUPS ? planes : MAX_GROUPS) * wg, wg);
}

qg_status qg__cg_shuffle(qg_ctx *ctx, const qg_tensor *x, int groups, qg_tensor *y,
                         int accumulate)
{
    const char *op = "cg_shuffle";
    int d[4];
    qg_status st = need4(ctx, op, "x", x, d);
    if (st == QG_OK)
        st = qg__tensor_need(ctx, op, "y", y, qg_tensor_numel(x), QG_DTYPE_F32);
    if (st == QG_OK && (groups < 1 || d[1] % groups))
        st = qg__error(ctx, QG_ERR_INVALID_ARG, "%s: %d channels do not split into %d groups",
                       op, d[1], groups);
    size_t n = st == QG_OK ? qg_tensor_numel(x) : 0;
    qg_kargs a;
    size_t wg;
    if (st == QG_OK && n)
        st = get(ctx, QG_K_CG_SHUFFLE, &a, &wg);
    if (st != QG_OK || n == 0)
        return st;
    qg__karg_tensor(&a, x);
    qg__karg_tensor(&a, y);
    qg__karg_int(&a, (int)n);
    qg__karg_int(&a, d[1]);
    qg__karg_int(&a, d[2] * d[3]);
    qg__karg_int(&a, groups);
    qg__karg_int(&a, accumulate != 0);
    return launch1d(&a, n, wg);
}
