/* src/quant/bsq.c: launchers for cl/bsq.cl and BSQ's host steps (contract
 * in src/quant/bsq.h). C twins of the kernels: src/ref/ref_bsq.c; tests:
 * tests/test_bsq.c. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "core/error.h"
#include "cl/ctx.h"
#include "quant/bsq.h"
#include "tensor/tensor_impl.h"

#define MAX_GROUPS 64
_Static_assert(MAX_GROUPS * QG_BSQ_MAX_BITS <= QG_BSQ_WS_NUMEL, "workspace too small");

static size_t groups_for(size_t n, size_t wg)
{
    size_t g = (n + wg - 1) / wg;
    if (g > MAX_GROUPS)
        g = MAX_GROUPS;
    return g ? g : 1;
}

/* p and n: equal shapes, F32, last axis N in 0..QG_BSQ_MAX_BITS; *M the
 * values, *N the planes. */
static qg_status planes(qg_ctx *ctx, const char *op, const qg_tensor *p, const qg_tensor *n,
                        size_t *M, int *N)
{
    if (!p || !n || p->dtype != QG_DTYPE_F32 || n->dtype != QG_DTYPE_F32 || p->ndim < 1 ||
        p->ndim != n->ndim)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: planes must be two F32 tensors of one "
                         "shape", op);
    for (int d = 0; d < p->ndim; d++)
        if (p->shape[d] != n->shape[d])
            return qg__error(ctx, QG_ERR_SHAPE, "%s: planes '%s' and '%s' differ in dim %d "
                             "(%lld vs %lld)", op, p->name, n->name, d,
                             (long long)p->shape[d], (long long)n->shape[d]);
    *N = (int)p->shape[p->ndim - 1];
    if (*N < 0 || *N > QG_BSQ_MAX_BITS)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: '%s' has %d bit planes; 0..%d allowed",
                         op, p->name, *N, QG_BSQ_MAX_BITS);
    size_t tot = qg_tensor_numel(p);
    if (tot > (size_t)0x7fffffff)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: %zu elements exceed int indexing", op, tot);
    *M = *N ? tot / (size_t)*N : 0;
    return QG_OK;
}

static qg_status need_ws(qg_ctx *ctx, const char *op, const qg_tensor *ws)
{
    if (!ws || ws->dtype != QG_DTYPE_F32 || qg_tensor_numel(ws) < QG_BSQ_WS_NUMEL)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: workspace must be F32 with at least %d "
                         "elements", op, QG_BSQ_WS_NUMEL);
    return QG_OK;
}

static qg_status launch1(qg_kargs *a, size_t n, size_t wg)
{
    size_t g = n ? n : 1;
    return qg__kargs_launch(a, 1, &g, &wg);
}

/* ds (+)= sum of `groups` partials in ws. */
static qg_status sum_partials(qg_ctx *ctx, qg_tensor *ws, size_t groups, qg_tensor *ds,
                              int accumulate)
{
    qg_kargs a;
    size_t wg;
    qg_status st = qg__kargs_get(ctx, QG_K_BSQ_SUM, &a, &wg);
    if (st != QG_OK)
        return st;
    qg__karg_tensor(&a, ws);
    qg__karg_int(&a, (int)groups);
    qg__karg_tensor(&a, ds);
    qg__karg_int(&a, accumulate);
    size_t g = 1, l = 1;
    return qg__kargs_launch(&a, 1, &g, &l);
}

qg_status qg__bsq_fwd(qg_ctx *ctx, const qg_tensor *p, const qg_tensor *n, const qg_tensor *s,
                      qg_tensor *w)
{
    const char *op = "bsq_fwd";
    size_t M;
    int N;
    qg_status st = planes(ctx, op, p, n, &M, &N);
    if (st == QG_OK)
        st = qg__tensor_need(ctx, op, "scale", s, 1, QG_DTYPE_F32);
    if (st == QG_OK)
        st = qg__tensor_need(ctx, op, "w", w, M, QG_DTYPE_F32);
    if (st != QG_OK || M == 0)
        return st;
    qg_kargs a;
    size_t wg;
    if ((st = qg__kargs_get(ctx, QG_K_BSQ_FWD, &a, &wg)) != QG_OK)
        return st;
    qg__karg_tensor(&a, p);
    qg__karg_tensor(&a, n);
    qg__karg_tensor(&a, s);
    qg__karg_tensor(&a, w);
    qg__karg_int(&a, (int)M);
    qg__karg_int(&a, N);
    return launch1(&a, M, wg);
}

qg_status qg__bsq_bwd(qg_ctx *ctx, const qg_tensor *p, const qg_tensor *n, const qg_tensor *s,
                      const qg_tensor *dw, qg_tensor *dp, qg_tensor *dn, qg_tensor *ds,
                      int accumulate_ds, qg_tensor *ws)
{
    const char *op = "bsq_bwd";
    size_t M;
    int N;
    qg_status st = planes(ctx, op, p, n, &M, &N);
    if (st == QG_OK)
        st = qg__tensor_need(ctx, op, "scale", s, 1, QG_DTYPE_F32);
    if (st == QG_OK)
        st = qg__tensor_need(ctx, op, "dw", dw, M, QG_DTYPE_F32);
    if (st == QG_OK)
        st = qg__tensor_need(ctx, op, "dp", dp, M * (size_t)N, QG_DTYPE_F32);
    if (st == QG_OK)
        st = qg__tensor_need(ctx, op, "dn", dn, M * (size_t)N, QG_DTYPE_F32);
    if (st == QG_OK && ds)
        st = qg__tensor_need(ctx, op, "ds", ds, 1, QG_DTYPE_F32);
    if (st == QG_OK)
        st = need_ws(ctx, op, ws);
    if (st != QG_OK)
        return st;
    if (M == 0)
        return ds && !accumulate_ds ? qg_tensor_zero(ds) : QG_OK;
    qg_kargs a;
    size_t wg;
    if ((st = qg__kargs_get(ctx, QG_K_BSQ_BWD, &a, &wg)) != QG_OK)
        return st;
    size_t groups = groups_for(M, wg);
    qg__karg_tensor(&a, p);
    qg__karg_tensor(&a, n);
    qg__karg_tensor(&a, s);
    qg__karg_tensor(&a, dw);
    qg__karg_tensor(&a, dp);
    qg__karg_tensor(&a, dn);
    qg__karg_tensor(&a, ws);
    qg__karg_int(&a, (int)M);
    qg__karg_int(&a, N);
    size_t g = groups * wg;
    if ((st = qg__kargs_launch(&a, 1, &g, &wg)) != QG_OK)
        return st;
    return ds ? sum_partials(ctx, ws, groups, ds, accumulate_ds) : QG_OK;
}

qg_status qg__bsq_reg(qg_ctx *ctx, const qg_tensor *p, const qg_tensor *n, float factor,
                      qg_tensor *loss, qg_tensor *dp, qg_tensor *dn, qg_tensor *norms,
                      qg_tensor *ws)
{
    const char *op = "bsq_reg";
    size_t M;
    int N;
    qg_status st = planes(ctx, op, p, n, &M, &N);
    if (st == QG_OK)
        st = qg__tensor_need(ctx, op, "loss", loss, 1, QG_DTYPE_F32);
    if (st == QG_OK && (!norms || norms->dtype != QG_DTYPE_F32 ||
                        qg_tensor_numel(norms) < (size_t)N))
        st = qg__error(ctx, QG_ERR_INVALID_ARG, "%s: norms must be F32 with at least %d "
                       "elements", op, N);
    if (st == QG_OK && dp)
        st = qg__tensor_need(ctx, op, "dp", dp, M * (size_t)N, QG_DTYPE_F32);
    if (st == QG_OK && dn)
        st = qg__tensor_need(ctx, op, "dn", dn, M * (size_t)N, QG_DTYPE_F32);
    if (st == QG_OK && (!dp) != (!dn))
        st = qg__error(ctx, QG_ERR_INVALID_ARG, "%s: give both plane gradients or neither", op);
    if (st == QG_OK)
        st = need_ws(ctx, op, ws);
    if (st != QG_OK || N == 0)
        return st;
    qg_kargs a;
    size_t wg;
    if ((st = qg__kargs_get(ctx, QG_K_BSQ_REG_PART, &a, &wg)) != QG_OK)
        return st;
    size_t groups = groups_for(M, wg);
    qg__karg_tensor(&a, p);
    qg__karg_tensor(&a, n);
    qg__karg_int(&a, (int)M);
    qg__karg_int(&a, N);
    qg__karg_tensor(&a, ws);
    size_t g[2] = {groups * wg, (size_t)N}, l[2] = {wg, 1};
    if ((st = qg__kargs_launch(&a, 2, g, l)) != QG_OK)
        return st;
    if ((st = qg__kargs_get(ctx, QG_K_BSQ_REG_NORMS, &a, &wg)) != QG_OK)
        return st;
    qg__karg_tensor(&a, ws);
    qg__karg_int(&a, (int)groups);
    qg__karg_int(&a, N);
    qg__karg_float(&a, factor);
    qg__karg_tensor(&a, norms);
    qg__karg_tensor(&a, loss);
    size_t one = 1;
    if ((st = qg__kargs_launch(&a, 1, &one, &one)) != QG_OK || !dp)
        return st;
    if ((st = qg__kargs_get(ctx, QG_K_BSQ_REG_GRAD, &a, &wg)) != QG_OK)
        return st;
    qg__karg_tensor(&a, p);
    qg__karg_tensor(&a, n);
    qg__karg_tensor(&a, norms);
    qg__karg_tensor(&a, dp);
    qg__karg_tensor(&a, dn);
    qg__karg_int(&a, (int)(M * (size_t)N));
    qg__karg_int(&a, N);
    qg__karg_float(&a, factor);
    return launch1(&a, M * (size_t)N, wg);
}

qg_status qg__bsq_clamp(qg_ctx *ctx, qg_tensor *x, float lo, float hi)
{
    size_t cnt = qg_tensor_numel(x);
    qg_status st = qg__tensor_need(ctx, "bsq_clamp", "x", x, cnt, QG_DTYPE_F32);
    if (st != QG_OK || cnt == 0)
        return st;
    qg_kargs a;
    size_t wg;
    if ((st = qg__kargs_get(ctx, QG_K_BSQ_CLAMP, &a, &wg)) != QG_OK)
        return st;
    qg__karg_tensor(&a, x);
    qg__karg_int(&a, (int)cnt);
    qg__karg_float(&a, lo);
    qg__karg_float(&a, hi);
    return launch1(&a, cnt, wg);
}

static qg_status ft_check(qg_ctx *ctx, const char *op, const qg_tensor *v, int N,
                          const qg_tensor *s, size_t *M)
{
    *M = v ? qg_tensor_numel(v) : 0;
    qg_status st = qg__tensor_need(ctx, op, "v", v, *M, QG_DTYPE_F32);
    if (st == QG_OK)
        st = qg__tensor_need(ctx, op, "scale", s, 1, QG_DTYPE_F32);
    if (st == QG_OK && (N < 0 || N > QG_BSQ_MAX_BITS))
        st = qg__error(ctx, QG_ERR_INVALID_ARG, "%s: %d bits; 0..%d allowed", op, N,
                       QG_BSQ_MAX_BITS);
    if (st == QG_OK && *M > (size_t)0x7fffffff)
        st = qg__error(ctx, QG_ERR_SHAPE, "%s: %zu elements exceed int indexing", op, *M);
    return st;
}

qg_status qg__bsq_ft_fwd(qg_ctx *ctx, const qg_tensor *v, int N, const qg_tensor *s,
                         qg_tensor *w)
{
    const char *op = "bsq_ft_fwd";
    size_t M;
    qg_status st = ft_check(ctx, op, v, N, s, &M);
    if (st == QG_OK)
        st = qg__tensor_need(ctx, op, "w", w, M, QG_DTYPE_F32);
    if (st != QG_OK || M == 0)
        return st;
    qg_kargs a;
    size_t wg;
    if ((st = qg__kargs_get(ctx, QG_K_BSQ_FT_FWD, &a, &wg)) != QG_OK)
        return st;
    qg__karg_tensor(&a, v);
    qg__karg_tensor(&a, s);
    qg__karg_tensor(&a, w);
    qg__karg_int(&a, (int)M);
    qg__karg_int(&a, N);
    return launch1(&a, M, wg);
}

qg_status qg__bsq_ft_bwd(qg_ctx *ctx, const qg_tensor *v, int N, const qg_tensor *s,
                         const qg_tensor *dw, qg_tensor *dv, qg_tensor *ds, int accumulate_ds,
                         qg_tensor *ws)
{
    const char *op = "bsq_ft_bwd";
    size_t M;
    qg_status st = ft_check(ctx, op, v, N, s, &M);
    if (st == QG_OK)
        st = qg__tensor_need(ctx, op, "dw", dw, M, QG_DTYPE_F32);
    if (st == QG_OK)
        st = qg__tensor_need(ctx, op, "dv", dv, M, QG_DTYPE_F32);
    if (st == QG_OK && ds)
        st = qg__tensor_need(ctx, op, "ds", ds, 1, QG_DTYPE_F32);
    if (st == QG_OK)
        st = need_ws(ctx, op, ws);
    if (st != QG_OK)
        return st;
    if (M == 0)
        return ds && !accumulate_ds ? qg_tensor_zero(ds) : QG_OK;
    qg_kargs a;
    size_t wg;
    if ((st = qg__kargs_get(ctx, QG_K_BSQ_FT_BWD, &a, &wg)) != QG_OK)
        return st;
    size_t groups = groups_for(M, wg);
    qg__karg_tensor(&a, v);
    qg__karg_tensor(&a, s);
    qg__karg_tensor(&a, dw);
    qg__karg_tensor(&a, dv);
    qg__karg_tensor(&a, ws);
    qg__karg_int(&a, (int)M);
    qg__karg_int(&a, N);
    size_t g = groups * wg;
    if ((st = qg__kargs_launch(&a, 1, &g, &wg)) != QG_OK)
        return st;
    return ds ? sum_partials(ctx, ws, groups, ds, accumulate_ds) : QG_OK;
}

/* ---- host ---------------------------------------------------------------- */

static float levels(int N)
{
    return (float)((1L << N) - 1);
}

float qg__bsq_e(int N, int b)
{
    return (float)(1L << (N - 1 - b)) / levels(N);
}

float qg__bsq_ste(float v, int N)
{
    if (N == 0)
        return 0.0f;
    float L = levels(N);
    float c = fminf(fmaxf(v, -1.0f), 1.0f);
    float sg = c > 0.0f ? 1.0f : (c < 0.0f ? -1.0f : 0.0f);
    return rintf(fabsf(c) * L) / L * sg;
}

/* The continuous sum_b (p_b - n_b) e_b, in the kernels' order. */
static float what(const float *p, const float *n, int N)
{
    float v = 0.0f;
    for (int b = 0; b < N; b++)
        v += (p[b] - n[b]) * qg__bsq_e(N, b);
    return v;
}

float qg__bsq_value(const float *p, const float *n, int N)
{
    return N == 0 ? 0.0f : qg__bsq_ste(what(p, n, N), N);
}

static void peel(long R, int N, float *bits)
{
    for (int b = 0; b < N; b++) {
        long w = 1L << (N - 1 - b);
        long bit = R / w;
        bits[b] = (float)bit;
        R -= bit * w;
    }
}

void qg__bsq_from_float(const float *w, size_t M, int N, float S, float *p, float *n)
{
    float L = levels(N);
    for (size_t i = 0; i < M; i++) {
        long rp = 0, rn = 0;
        if (S != 0.0f) {
            rp = (long)rintf(fmaxf(w[i], 0.0f) * L / S);
            rn = (long)rintf(fmaxf(-w[i], 0.0f) * L / S);
        }
        /* |w| <= S by construction; a larger w (another scale) is clipped */
        if (rp > (long)L)
            rp = (long)L;
        if (rn > (long)L)
            rn = (long)L;
        peel(rp, N, p + i * (size_t)N);
        peel(rn, N, n + i * (size_t)N);
    }
}

int qg__bsq_requant(const float *p, const float *n, size_t M, int N, int maxbit, float *s,
                    float *pout, float *nout)
{
    float L = levels(N);
    long rmax = 0;
    /* first pass: the largest code decides whether the precision grows */
    for (size_t i = 0; i < M; i++) {
        float v = what(p + i * (size_t)N, n + i * (size_t)N, N);
        long rp = (long)rintf(fmaxf(v, 0.0f) * L), rn = (long)rintf(fmaxf(-v, 0.0f) * L);
        if (rp > rmax)
            rmax = rp;
        if (rn > rmax)
            rmax = rn;
    }
    int N2 = N;
    if (N < maxbit && rmax > (long)L) {
        N2 = N + 1;
        *s = *s * levels(N2) / L;
    }
    long cap = (1L << N2) - 1;
    for (size_t i = 0; i < M; i++) {
        float v = what(p + i * (size_t)N, n + i * (size_t)N, N);
        long rp = (long)rintf(fmaxf(v, 0.0f) * L), rn = (long)rintf(fmaxf(-v, 0.0f) * L);
        if (rp > cap)
            rp = cap;
        if (rn > cap)
            rn = cap;
        peel(rp, N2, pout + i * (size_t)N2);
        peel(rn, N2, nout + i * (size_t)N2);
    }
    return N2;
}

static double plane_nz(const float *p, const float *n, size_t M, int N, int b)
{
    size_t c = 0;
    for (size_t i = 0; i < M; i++)
        c += p[i * (size_t)N + b] - n[i * (size_t)N + b] != 0.0f;
    return M ? 100.0 * (double)c / (double)M : 0.0;
}

void qg__bsq_nonzero(const float *p, const float *n, size_t M, int N, double *nz)
{
    for (int b = 0; b < N; b++)
        nz[b] = plane_nz(p, n, M, N, b);
}

void qg__bsq_code_nonzero(const float *p, const float *n, size_t M, int N, double *nz)
{
    long cnt[QG_BSQ_MAX_BITS + 1] = {0};
    float L = levels(N);
    for (size_t i = 0; i < M; i++) {
        float v = fminf(fabsf(what(p + i * (size_t)N, n + i * (size_t)N, N)), 1.0f);
        long R = (long)rintf(v * L);
        for (int b = 0; b < N && b <= QG_BSQ_MAX_BITS; b++)
            cnt[b] += (R >> (N - 1 - b)) & 1;
    }
    for (int b = 0; b < N && b <= QG_BSQ_MAX_BITS; b++)
        nz[b] = M ? 100.0 * (double)cnt[b] / (double)M : 0.0;
}

/* Removes plane b of [M][N] in place (rows shrink to N-1). */
static void drop_plane(float *x, size_t M, int N, int b)
{
    size_t o = 0;
    for (size_t i = 0; i < M; i++)
        for (int k = 0; k < N; k++)
            if (k != b)
                x[o++] = x[i * (size_t)N + k];
}

int qg__bsq_prune(const float *p, const float *n, size_t M, int N, float thre, float *s,
                  float *pout, float *nout)
{
    int N0 = N;
    memmove(pout, p, M * (size_t)N * sizeof *p);
    memmove(nout, n, M * (size_t)N * sizeof *n);
    /* MSB side */
    while (N > 1) {
        double nz = plane_nz(pout, nout, M, N, 0);
        if (nz == 0.0) {
            /* nothing to fold */
        } else if (nz < thre) {
            for (size_t i = 0; i < M; i++)
                for (int b = 1; b < N; b++) {
                    float *pp = pout + i * (size_t)N, *np = nout + i * (size_t)N;
                    pp[b] = fminf(pp[b] + pp[0], 1.0f);
                    np[b] = fminf(np[b] + np[0], 1.0f);
                }
        } else {
            break;
        }
        drop_plane(pout, M, N, 0);
        drop_plane(nout, M, N, 0);
        N--;
    }
    /* LSB side */
    while (N > 1 && plane_nz(pout, nout, M, N, N - 1) <= thre) {
        drop_plane(pout, M, N, N - 1);
        drop_plane(nout, M, N, N - 1);
        N--;
        *s = *s * 2.0f;
    }
    *s = *s * levels(N) / levels(N0);
    return N;
}
