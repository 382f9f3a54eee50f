/* src/ops/conv.c: 2-D convolution and linear layers as GEMMs (CLBlast via
 * src/gemm/gemm.c) around the lowering kernels of cl/im2col.cl, and direct
 * 3x3 convolutions (cl/conv_direct.cl). C twins:
 * src/ref/ref_conv.c; tests: tests/test_conv.c.
 *
 * Convolutions run over chunks of `nb` images, nb as large as the
 * caller's workspace allows (capped at N). Per chunk the workspace holds
 * col[C*R*S][nb*P*Q] and t[K][nb*P*Q] (see cl/im2col.cl for the layouts),
 * so every step is one GEMM batched over the groups:
 *   forward      t_g    = W_g  col_g          then t -> y (NCHW) + bias
 *   backward x   col_g  = W_g^T dyT_g         then col2im -> dx
 *   backward w   dW_g  += dyT_g col_g^T       (images reduce inside the GEMM)
 * where dyT is dy moved to [K][nb*P*Q]. 1x1 convolutions with stride 1
 * and no padding skip the lowering in forward and backward-data: x[n] is
 * already group g's column matrix, so the GEMMs read x and write y (or dx)
 * in place.
 *
 * Ungrouped 3x3 convolutions with stride 1 or 2 and pad <= 2 (ResNet's
 * layers) skip all of that for the direct kernels of cl/conv_direct.cl,
 * about 10x faster on a CPU device: the workspace then holds zero-padded
 * copies of the input planes (and the repacked weights, and the weight
 * gradient's per-chunk partial sums). The GEMM path's per-image need stays
 * the documented requirement; the direct path usually needs less and
 * falls back to the GEMM path when one image's planes do not fit. */
#include "config.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>

#include "core/error.h"
#include "cl/ctx.h"
#include "gemm/gemm.h"
#include "ops/conv.h"
#include "tensor/tensor_impl.h"

/* Default workspace: enough for chunks of up to this many floats. */
#define QG_CONV_WS_TARGET ((size_t)16 << 20)

qg_status qg__conv_desc_init(qg_ctx *ctx, qg_conv_desc *d, int N, int C, int H, int W, int K,
                             int R, int S, int stride, int pad, int groups)
{
    if (N < 1 || C < 1 || H < 1 || W < 1 || K < 1 || R < 1 || S < 1 || stride < 1 || pad < 0 ||
        groups < 1)
        return qg__error(ctx, QG_ERR_SHAPE, "conv2d: invalid shape N=%d C=%d H=%d W=%d K=%d "
                         "R=%d S=%d stride=%d pad=%d groups=%d", N, C, H, W, K, R, S, stride,
                         pad, groups);
    if (C % groups != 0 || K % groups != 0)
        return qg__error(ctx, QG_ERR_SHAPE, "conv2d: channels in (%d) and out (%d) must both "
                         "be divisible by groups (%d)", C, K, groups);
    if (H + 2 * pad < R || W + 2 * pad < S)
        return qg__error(ctx, QG_ERR_SHAPE, "conv2d: kernel %dx%d does not fit the padded input "
                         "%dx%d (pad %d)", R, S, H + 2 * pad, W + 2 * pad, pad);
    int P = (H + 2 * pad - R) / stride + 1, Q = (W + 2 * pad - S) / stride + 1;
    /* Kernels index with int; every tensor and one image's column matrix
     * must stay below 2^31 elements. */
    int64_t big = INT_MAX;
    if ((int64_t)N * C * H * W > big || (int64_t)N * K * P * Q > big ||
        (int64_t)K * (C / groups) * R * S > big ||
        ((int64_t)C * R * S + K) * P * Q > big)
        return qg__error(ctx, QG_ERR_SHAPE, "conv2d: shape N=%d C=%d H=%d W=%d K=%d R=%d S=%d "
                         "has more than 2^31 elements in one tensor", N, C, H, W, K, R, S);
    *d = (qg_conv_desc){.N = N, .C = C, .H = H, .W = W, .K = K, .R = R, .S = S,
                        .stride = stride, .pad = pad, .groups = groups, .P = P, .Q = Q};
    return QG_OK;
}

/* Workspace floats one image needs: col plus the CN-ordered output/grad. */
static size_t per_image(const qg_conv_desc *d)
{
    return ((size_t)d->C * d->R * d->S + (size_t)d->K) * (size_t)d->P * d->Q;
}

static size_t direct_ws_bound(const qg_conv_desc *d);

size_t qg__conv_workspace_floats(const qg_conv_desc *d)
{
    size_t per = per_image(d);
    size_t nb = QG_CONV_WS_TARGET / per;
    if (nb < 1)
        nb = 1;
    if (nb > (size_t)d->N)
        nb = (size_t)d->N;
    /* Shapes the direct kernels take need the GEMM path's room for one
     * image only (its contract), not its batch-wide target. */
    size_t direct = direct_ws_bound(d);
    if (direct)
        return per > direct ? per : direct;
    return nb * per;
}

static int is_pointwise(const qg_conv_desc *d)
{
    return d->R == 1 && d->S == 1 && d->stride == 1 && d->pad == 0;
}

static qg_status check_t(qg_ctx *ctx, const char *op, const char *what, const qg_tensor *t,
                         size_t numel)
{
    if (!t)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: tensor %s is NULL", op, what);
    if (t->dtype != QG_DTYPE_F32)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: %s '%s' must be F32, not %s", op, what,
                         t->name, qg_dtype_name(t->dtype));
    if (qg_tensor_numel(t) != numel)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: %s '%s' has %zu elements, expected %zu", op,
                         what, t->name, qg_tensor_numel(t), numel);
    return QG_OK;
}

/* Images per chunk: as many as fit the workspace, at most N. */
static qg_status chunk_images(qg_ctx *ctx, const char *op, const qg_conv_desc *d,
                              const qg_tensor *ws, int *nb)
{
    size_t per = per_image(d);
    if (!ws)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: workspace is NULL (need %zu floats)", op,
                         per);
    if (ws->dtype != QG_DTYPE_F32)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: workspace '%s' must be F32", op,
                         ws->name);
    size_t have = qg_tensor_numel(ws);
    if (have < per)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: workspace '%s' has %zu floats, one image "
                         "needs %zu (see qg__conv_workspace_floats)", op, ws->name, have, per);
    size_t n = have / per;
    if (n > (size_t)INT_MAX / per)
        n = (size_t)INT_MAX / per;
    *nb = n < (size_t)d->N ? (int)n : d->N;
    return QG_OK;
}

static qg_status check_desc(qg_ctx *ctx, const char *op, const qg_conv_desc *d)
{
    if (!d || d->groups < 1 || d->P < 1 || d->Q < 1 || d->C % d->groups || d->K % d->groups)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: descriptor not set up by "
                         "qg__conv_desc_init", op);
    return QG_OK;
}

static qg_status get(qg_ctx *ctx, qg_kernel_id kernel, qg_kargs *a, size_t *wg)
{
    return qg__kargs_get(ctx, kernel, a, wg);
}

/* Binds tensor t starting `extra` elements into it. */
static void karg_at(qg_kargs *a, const qg_tensor *t, size_t extra)
{
    qg__karg_mem(a, t->mem);
    qg__karg_int(a, (int)(t->offset + extra));
}

static qg_status launch2d(qg_kargs *a, size_t g0, size_t g1, size_t wg)
{
    size_t g[2] = {g0, g1}, l[2] = {wg, 1};
    return qg__kargs_launch(a, 2, g, l);
}

static qg_gemm_operand opnd(const qg_tensor *t, size_t extra, size_t ld)
{
    return (qg_gemm_operand){.mem = t->mem, .offset = t->offset + extra, .ld = ld};
}

/* col[C*R*S][nb*PQ] from images n0..n0+nb-1 of x. */
static qg_status im2col(qg_ctx *ctx, const qg_conv_desc *d, const qg_tensor *x, int n0, int nb,
                        const qg_tensor *ws)
{
    qg_kargs a;
    size_t wg;
    qg_status st = get(ctx, QG_K_IM2COL_IM2COL, &a, &wg);
    if (st != QG_OK)
        return st;
    karg_at(&a, x, (size_t)n0 * d->C * d->H * d->W);
    qg__karg_int(&a, d->C);
    qg__karg_int(&a, d->H);
    qg__karg_int(&a, d->W);
    qg__karg_int(&a, d->R);
    qg__karg_int(&a, d->S);
    qg__karg_int(&a, d->stride);
    qg__karg_int(&a, d->pad);
    qg__karg_int(&a, d->P);
    qg__karg_int(&a, d->Q);
    qg__karg_int(&a, nb);
    karg_at(&a, ws, 0);
    return launch2d(&a, (size_t)nb * d->P * d->Q, (size_t)d->C * d->R * d->S, wg);
}

/* dst [K][nb*PQ] (at dst_extra in ws) from images n0.. of src [N][K][PQ]. */
static qg_status nchw_to_cn(qg_ctx *ctx, const qg_tensor *src, int n0, int nb, int K, int PQ,
                            const qg_tensor *ws, size_t dst_extra)
{
    qg_kargs a;
    size_t wg;
    qg_status st = get(ctx, QG_K_IM2COL_NCHW_TO_CN, &a, &wg);
    if (st != QG_OK)
        return st;
    karg_at(&a, src, (size_t)n0 * K * PQ);
    qg__karg_int(&a, K);
    qg__karg_int(&a, PQ);
    qg__karg_int(&a, nb);
    karg_at(&a, ws, dst_extra);
    return launch2d(&a, (size_t)PQ, (size_t)nb * K, wg);
}

/* y[n][k][pq] += bias[k] over the whole of y ([N][K][PQ]). */
static qg_status bias_add(qg_ctx *ctx, qg_tensor *y, const qg_tensor *bias, int K, int PQ)
{
    qg_kargs a;
    size_t wg;
    qg_status st = get(ctx, QG_K_IM2COL_BIAS_ADD, &a, &wg);
    if (st != QG_OK)
        return st;
    size_t n = qg_tensor_numel(y);
    qg__karg_tensor(&a, y);
    qg__karg_tensor(&a, bias);
    qg__karg_int(&a, K);
    qg__karg_int(&a, PQ);
    qg__karg_int(&a, (int)n);
    return qg__kargs_launch(&a, 1, &n, &wg);
}

/* The N x G GEMMs of a pointwise conv, C[n,g] = op(A[g]) op(B[n,g]) +
 * beta C[n,g]; one batched call per image or per group, whichever gives
 * fewer calls (A, the weight, has stride 0 across images). */
static qg_status pointwise_gemms(qg_ctx *ctx, const qg_conv_desc *d, int trans_a, size_t M,
                                 size_t Nc, size_t Kc, qg_gemm_operand A, size_t sa_g,
                                 qg_gemm_operand B, size_t sb_n, size_t sb_g, float beta,
                                 qg_gemm_operand C, size_t sc_n, size_t sc_g)
{
    qg_status st = QG_OK;
    if (d->groups >= d->N) {
        for (int n = 0; n < d->N && st == QG_OK; n++) {
            qg_gemm_operand b = B, c = C;
            b.offset += n * sb_n;
            c.offset += n * sc_n;
            st = qg__gemm_batched(ctx, trans_a, 0, M, Nc, Kc, 1.0f, A, sa_g, b, sb_g, beta, c,
                                  sc_g, (size_t)d->groups);
        }
    } else {
        for (int g = 0; g < d->groups && st == QG_OK; g++) {
            qg_gemm_operand a = A, b = B, c = C;
            a.offset += g * sa_g;
            b.offset += g * sb_g;
            c.offset += g * sc_g;
            st = qg__gemm_batched(ctx, trans_a, 0, M, Nc, Kc, 1.0f, a, 0, b, sb_n, beta, c,
                                  sc_n, (size_t)d->N);
        }
    }
    return st;
}

/* ---- direct path (cl/conv_direct.cl) ---- */

/* Parameters of program conv_direct, in its registry order, and the
 * variant they resolved to (NULL in a sizing-only set). */
typedef struct dparams {
    long WG, VW, JT, KT, WKT, WN;
    qg_variant *v;
} dparams;

/* The set tuned for d's shape class when there is one (qgate tune
 * --shapes FILE), else the program-wide one. */
static qg_status direct_params(qg_ctx *ctx, const qg_conv_desc *d, dparams *p)
{
    qg_variant *var;
    char shape[QG_CONV_SHAPE_CLASS_MAX];
    qg__conv_shape_class(d, shape, sizeof shape);
    qg_status st = qg__variant_shape(ctx, QG_PROG_CONV_DIRECT, shape, &var);
    if (st != QG_OK)
        return st;
    const long *v = var->values;
    *p = (dparams){v[QG_DIRECT_WG], v[QG_DIRECT_VW], v[QG_DIRECT_JT], v[QG_DIRECT_KT],
                   v[QG_DIRECT_WKT], v[QG_DIRECT_WN], var};
    return QG_OK;
}

/* The direct kernels cover ungrouped 3x3 convolutions with stride 1 or 2
 * and pad <= 2 (backward data pads dy by 2 - pad); everything else takes
 * im2col + GEMM. */
static int use_direct(const qg_conv_desc *d)
{
    return d->groups == 1 && d->R == 3 && d->S == 3 && (d->stride == 1 || d->stride == 2) &&
           d->pad <= 2;
}

/* Geometry of the prepared planes of one stride-1 pass: T x T taps over
 * planes of row stride Wd, J computed positions (multiple of `jm`), plane
 * length L covering every tap of every position (whole rows), plus QV, the
 * vector slots per output row when the forward kernel runs in slot mode
 * (0: flat mode; see qg_conv_direct_fwd). The slot reads of a row end at
 * most VW - 1 past it, inside the zero rows that close the plane. */
typedef struct dgeom {
    int T, Hd, Wd, J, L, QV;
    int ph;     /* phase planes of a stride-2 3x3 conv, read tap by tap */
} dgeom;

static dgeom direct_geom(int T, int Po, int Qo, int jm, int vw)
{
    dgeom g = {.T = T, .Hd = Po + T - 1, .Wd = Qo + T - 1};
    g.J = (int)qg__round_up((size_t)Po * g.Wd, (size_t)jm);
    size_t need = (size_t)g.J + (size_t)(T - 1) * g.Wd + (size_t)(T - 1);
    size_t hw = (size_t)g.Hd * g.Wd + (size_t)vw;
    g.L = (int)qg__round_up(need > hw ? need : hw, (size_t)g.Wd); /* whole rows */
    return g;
}

/* Slot mode computes ceil(Qo/VW)*VW columns per row and stores whole
 * vectors; flat mode computes J positions and stores lane by lane, which
 * costs about as much as a quarter of the positions again (measured on
 * PoCL). Slots win unless they waste much more of the vector width. */
static int direct_slots(const dgeom *g, int Po, int Qo, int vw)
{
    double slot = (double)Po * qg__round_up((size_t)Qo, (size_t)vw);
    double flat = 1.25 * g->J;
    return slot <= flat ? (Qo + vw - 1) / vw : 0;
}

/* Images per chunk when `fixed` floats are reserved and each image needs
 * `per`; 0 when not even one fits. */
static int direct_nb(const qg_conv_desc *d, const qg_tensor *ws, size_t fixed, size_t per)
{
    if (!ws || ws->dtype != QG_DTYPE_F32)
        return 0;
    size_t have = qg_tensor_numel(ws);
    if (have < fixed + per)
        return 0;
    if (per == 0) /* the planes live elsewhere (kept for the backward) */
        return d->N;
    size_t n = (have - fixed) / per;
    if (n > (size_t)INT_MAX / per)
        n = (size_t)INT_MAX / per;
    return n < (size_t)d->N ? (int)n : d->N;
}

/* Images per weight-gradient partial: at least WN, and enough that an
 * item sums about as many positions as WN images of a 32x32 map give it
 * (small maps otherwise make items too short to pay for their launch). */
static int direct_wn(const dparams *p, int J, int nb)
{
    long wn = (4L * 34 * 32 + J - 1) / J;
    if (wn < p->WN)
        wn = p->WN;
    return wn < nb ? (int)wn : (nb > 0 ? nb : 1);
}

/* Built from the p its caller looked up (a lookup per launch could mix
 * sets within one conv, and the geometry follows p). */
static qg_status dget(qg_ctx *ctx, const dparams *p, qg_kernel_id kernel, qg_kargs *a)
{
    QG_ASSERT(p->v);
    return qg__kargs_variant(ctx, p->v, kernel, a);
}

/* The TxT variant of a kernel that comes as 3x3 and 2x2 (QG_K_COUNT,
 * which dget refuses, for other T). */
static qg_kernel_id by_tile(int T, qg_kernel_id k3, qg_kernel_id k2)
{
    return T == 3 ? k3 : T == 2 ? k2 : QG_K_COUNT;
}

/* A forward's input quantizer, applied while its planes are prepared: the
 * table of qg_conv_direct_qtable (32 floats at 0 of t) and the levels L =
 * 2^bits - 1 (at most QG_QT_MAX); L = 0: none. */
#define QG_QT_MAX 15 /* as cl/conv_direct.cl */
typedef struct dquant {
    cl_mem t;
    int L;
} dquant;

/* Planes dst (at dst_extra in ws) from images n0..n0+nb-1 of src [N][Cs][Hs][Ws], rounded
 * by q when q->L > 0; see qg_conv_direct_prep for mul, div and the offsets. */
static qg_status dprep_q(qg_ctx *ctx, const dparams *p, const qg_tensor *src, int n0, int nb,
                         int Cs, int Hs, int Ws, int PH, int mul, int div, int off,
                         const dgeom *g, int Hd, const qg_tensor *ws, size_t dst_extra,
                         dquant q)
{
    qg_kargs a;
    qg_status st = dget(ctx, p, QG_K_CONV_DIRECT_PREP, &a);
    if (st != QG_OK)
        return st;
    int planes = nb * Cs * PH * PH;
    karg_at(&a, src, (size_t)n0 * Cs * Hs * Ws);
    qg__karg_int(&a, Hs);
    qg__karg_int(&a, Ws);
    qg__karg_int(&a, PH);
    qg__karg_int(&a, mul);
    qg__karg_int(&a, div);
    qg__karg_int(&a, off);
    qg__karg_int(&a, off);
    qg__karg_int(&a, Hd);
    qg__karg_int(&a, g->Wd);
    qg__karg_int(&a, g->L / g->Wd);
    qg__karg_int(&a, planes);
    karg_at(&a, ws, dst_extra);
    if (q.L > 0) {
        qg__karg_mem(&a, q.t);
        qg__karg_int(&a, 0);
    } else {
        karg_at(&a, ws, 0); /* not read */
    }
    qg__karg_int(&a, q.L);
    size_t gl = (size_t)planes, l = 1;
    return qg__kargs_launch(&a, 1, &gl, &l);
}

static qg_status dprep(qg_ctx *ctx, const dparams *p, const qg_tensor *src, int n0, int nb,
                       int Cs, int Hs, int Ws, int PH, int mul, int div, int off,
                       const dgeom *g, int Hd, const qg_tensor *ws, size_t dst_extra)
{
    return dprep_q(ctx, p, src, n0, nb, Cs, Hs, Ws, PH, mul, div, off, g, Hd, ws, dst_extra,
                   (dquant){0, 0});
}

/* The forward kernels' last arguments: the output (at out_extra) and the
 * optional mask and addend of its epilogue, both in the output's layout
 * and offset (bound to the output, and ignored, when NULL). */
static void karg_out(qg_kargs *a, const qg_tensor *out, size_t out_extra,
                     const qg_tensor *mask, const qg_tensor *add)
{
    karg_at(a, out, out_extra);
    karg_at(a, mask ? mask : out, mask ? out_extra : 0);
    qg__karg_int(a, mask != NULL);
    karg_at(a, add ? add : out, add ? out_extra : 0);
    qg__karg_int(a, add != NULL);
}

/* wp [Kp/KT][Ci][T][T][KT] (trans: [Ci][T][T][Kp]) at offset 0 of ws; see
 * qg_conv_direct_wprep. */
static qg_status dwprep_t(qg_ctx *ctx, const dparams *p, const qg_conv_desc *d,
                          const qg_tensor *w, int T, int flip, int Kp, int Ci, int trans,
                          const qg_tensor *ws)
{
    qg_kargs a;
    qg_status st = dget(ctx, p, QG_K_CONV_DIRECT_WPREP, &a);
    if (st != QG_OK)
        return st;
    qg__karg_tensor(&a, w);
    qg__karg_int(&a, d->K);
    qg__karg_int(&a, d->C);
    qg__karg_int(&a, d->R);
    qg__karg_int(&a, d->S);
    qg__karg_int(&a, 1); /* stride-2 forwards read phase planes tap by tap */
    qg__karg_int(&a, T);
    qg__karg_int(&a, T);
    qg__karg_int(&a, flip);
    qg__karg_int(&a, Kp);
    qg__karg_int(&a, Ci);
    qg__karg_int(&a, trans);
    karg_at(&a, ws, 0);
    size_t l = 64, n = qg__round_up((size_t)Kp * Ci, l);
    return qg__kargs_launch(&a, 1, &n, &l);
}

static qg_status dwprep(qg_ctx *ctx, const dparams *p, const qg_conv_desc *d,
                        const qg_tensor *w, int T, int flip, int Kp, int Ci, const qg_tensor *ws)
{
    return dwprep_t(ctx, p, d, w, T, flip, Kp, Ci, 0, ws);
}

/* Output channels per fwd_kv item (KVN vectors of 16 in the .cl). */
#define QG_KV_CH 32

/* out[n0..][Ko][Po][Qo] (=/+=, + bias, ReLU) by qg_conv_direct_fwd_kv_TxT
 * (T = g->T) from plain padded planes (geometry g, read at `stride`) at
 * xp_extra in ws and wk [Ci][T][T][Kp] at 0. */
static qg_status dfwd_kv(qg_ctx *ctx, const dparams *p, const dgeom *g, int Ci, int stride,
                         int nb, const qg_tensor *ws, const qg_tensor *xs, size_t xp_extra, int Kp,
                         const qg_tensor *bias, int Ko, int Po, int Qo, int accumulate, int relu,
                         const qg_tensor *out, size_t out_extra, const qg_tensor *mask,
                         const qg_tensor *add)
{
    qg_kargs a;
    qg_kernel_id name = by_tile(g->T, QG_K_CONV_DIRECT_FWD_KV_3X3, QG_K_CONV_DIRECT_FWD_KV_2X2);
    qg_status st = dget(ctx, p, name, &a);
    if (st != QG_OK)
        return st;
    karg_at(&a, xs, xp_extra);
    qg__karg_int(&a, Ci);
    qg__karg_int(&a, g->L);
    qg__karg_int(&a, g->Wd);
    qg__karg_int(&a, stride);
    karg_at(&a, ws, 0);
    qg__karg_int(&a, Kp);
    qg__karg_tensor(&a, bias ? bias : ws); /* not read without bias */
    qg__karg_int(&a, bias != NULL);
    qg__karg_int(&a, Ko);
    qg__karg_int(&a, Po);
    qg__karg_int(&a, Qo);
    qg__karg_int(&a, accumulate != 0);
    qg__karg_int(&a, relu != 0);
    karg_out(&a, out, out_extra, mask, add);
    size_t gl[3] = {((size_t)Po * Qo + 7) / 8, (size_t)Kp / QG_KV_CH, (size_t)nb};
    size_t l[3] = {(size_t)p->WG, 1, 1};
    return qg__kargs_launch(&a, 3, gl, l);
}

/* The channel-vectorised forward takes 3x3 convs on maps at most 8
 * wide, where a 16-lane position vector is mostly padding (ResNet-20's
 * 8x8 stage and its stride-2 entry: measured 1.3-1.6x faster there, but
 * slower on 16x16 outputs, so not beyond). */
static int use_kv(const qg_conv_desc *d)
{
    return d->R == 3 && d->S == 3 && d->Q <= 8;
}

/* Plain padded planes (whole rows) of the input for fwd_kv; *Kp the
 * output channels padded to its tile. */
static dgeom kv_geom(const qg_conv_desc *d, int *Kp)
{
    dgeom g = {.T = 3, .Hd = d->H + 2 * d->pad, .Wd = d->W + 2 * d->pad};
    g.L = g.Hd * g.Wd;
    *Kp = (int)qg__round_up((size_t)d->K, QG_KV_CH);
    return g;
}

/* out[n0..][Ko][Po][Qo] (=/+=, + bias) from the planes at xp_extra in ws and
 * the weights at 0. */
static qg_status dfwd(qg_ctx *ctx, const dparams *p, const dgeom *g, int Ci, int nb,
                      const qg_tensor *ws, const qg_tensor *xs, size_t xp_extra,
                      const qg_tensor *bias, int Ko,
                      int Po, int Qo, int accumulate, int relu, const qg_tensor *out,
                      size_t out_extra, const qg_tensor *mask, const qg_tensor *add)
{
    qg_kargs a;
    qg_kernel_id name;
    if (g->ph)
        name = QG_K_CONV_DIRECT_FWD_S2_3X3;
    else
        name = by_tile(g->T, QG_K_CONV_DIRECT_FWD_3X3, QG_K_CONV_DIRECT_FWD_2X2);
    qg_status st = dget(ctx, p, name, &a);
    if (st != QG_OK)
        return st;
    karg_at(&a, xs, xp_extra);
    qg__karg_int(&a, Ci);
    qg__karg_int(&a, g->L);
    qg__karg_int(&a, g->Wd);
    qg__karg_int(&a, g->J);
    karg_at(&a, ws, 0);
    qg__karg_tensor(&a, bias ? bias : ws); /* not read without bias */
    qg__karg_int(&a, bias != NULL);
    qg__karg_int(&a, Ko);
    qg__karg_int(&a, Po);
    qg__karg_int(&a, Qo);
    qg__karg_int(&a, accumulate != 0);
    qg__karg_int(&a, g->QV);
    qg__karg_int(&a, relu != 0);
    karg_out(&a, out, out_extra, mask, add);
    size_t items = g->QV ? ((size_t)Po * g->QV + (size_t)p->JT - 1) / (size_t)p->JT
                         : (size_t)g->J / (size_t)(p->VW * p->JT);
    size_t gl[3] = {items,
                    qg__round_up((size_t)Ko, (size_t)p->KT) / (size_t)p->KT, (size_t)nb};
    size_t l[3] = {(size_t)p->WG, 1, 1};
    return qg__kargs_launch(&a, 3, gl, l);
}

/* Where direct_bwd keeps what in its workspace, for all N images; ok = 0
 * when the shape has no shared-dy form. */
typedef struct bwd_layout {
    int ok, s2, kv, kvw, Kt, T, Ci, TD, Kp, dKo, Hp, Wp, wn, nchunks;
    dgeom gw, gy;
    size_t dy_off, part1, o_ph, o_dy, o_x, o_part, o_dyt, total;
} bwd_layout;

static bwd_layout direct_bwd_layout(const qg_conv_desc *d, const dparams *p, int want_dx,
                                    int want_dw)
{
    bwd_layout b = {0};
    b.s2 = d->stride == 2 && d->pad == 1 && d->R == 3 && d->S == 3;
    int s1 = d->stride == 1 && d->R == d->S && d->R - 1 == 2 * d->pad;
    if (!s1 && !b.s2)
        return b;
    const int N = d->N, VW = (int)p->VW, stv = d->stride;
    b.T = (d->R + stv - 1) / stv;
    b.Ci = d->C * stv * stv;
    b.Hp = (d->H + 1) / 2;
    b.Wp = (d->W + 1) / 2;
    b.gw = direct_geom(b.T, d->P, d->Q, VW, VW);
    b.gw.ph = b.s2;
    dgeom gd = b.s2 ? direct_geom(2, b.Hp, b.Wp, (int)(p->VW * p->JT), VW)
                    : direct_geom(d->R, d->H, d->W, (int)(p->VW * p->JT), VW);
    b.dKo = b.s2 ? 4 * d->C : d->C;
    gd.QV = direct_slots(&gd, b.s2 ? b.Hp : d->H, b.s2 ? b.Wp : d->W, VW);
    if (gd.Wd != b.gw.Wd || (b.s2 && (b.Hp != d->P || b.Wp != d->Q)))
        return b;
    b.dy_off = b.s2 ? 0 : (size_t)d->pad * (gd.Wd + 1);
    size_t need = b.dy_off + (size_t)b.gw.J;
    b.gy = gd; /* the shared dy planes: long enough for both readers */
    if ((size_t)b.gy.L < need)
        b.gy.L = (int)qg__round_up(need, (size_t)b.gy.Wd);
    b.TD = b.s2 ? 2 : d->R;
    /* channel-vectorised data gradient: 3x3 on narrow maps, or the stride-2
     * phases (2x2) when they are that narrow */
    b.kv = b.s2 ? b.Wp <= 8 : use_kv(d);
    b.Kp = (int)qg__round_up((size_t)b.dKo, b.kv ? QG_KV_CH : (size_t)p->KT);
    b.wn = direct_wn(p, b.gw.J, N);
    b.nchunks = (N + b.wn - 1) / b.wn;
    b.part1 = (size_t)d->K * d->C * d->R * d->S;
    b.o_ph = qg__round_up((size_t)b.Kp * d->K * b.TD * b.TD, 16);
    b.o_dy = b.o_ph + (b.s2 && want_dx ? qg__round_up((size_t)N * b.dKo * b.Hp * b.Wp, 16) : 0);
    b.o_x = b.o_dy + qg__round_up((size_t)N * d->K * b.gy.L, 16);
    b.o_part = b.o_x + (want_dw ? qg__round_up((size_t)N * b.Ci * b.gw.L, 16) : 0);
    b.o_dyt = b.o_part + (want_dw ? qg__round_up((size_t)b.nchunks * b.part1, 16) : 0);
    /* channel-vectorised weight gradient on the same narrow output maps,
     * from dy transposed to channels-innermost */
    b.kvw = want_dw && use_kv(d);
    b.Kt = (int)qg__round_up((size_t)d->K, QG_KV_CH);
    b.total = b.o_dyt + (b.kvw ? (size_t)N * d->P * d->Q * b.Kt : 0);
    b.ok = 1;
    return b;
}

/* The forward's input planes kept for the backward's weight gradient:
 * both read the same planes (same phases, row stride and rows) and differ
 * only in the zero rows that close a plane, so a kept plane takes the
 * longer of the two. The plane length, or 0 where the two passes read
 * different planes (the channel-vectorised forward at stride 2 reads
 * plain planes, the weight gradient phase planes) or the backward has no
 * shared-dy form. */
static int keep_plane(const qg_conv_desc *d, const dparams *p)
{
    if (!use_direct(d))
        return 0;
    bwd_layout b = direct_bwd_layout(d, p, 1, 1);
    if (!b.ok)
        return 0;
    dgeom g;
    if (use_kv(d)) {
        int Kp;
        if (d->stride != 1)
            return 0;
        g = kv_geom(d, &Kp);
    } else {
        int T = (d->R + d->stride - 1) / d->stride;
        g = direct_geom(T, d->P, d->Q, (int)(p->VW * p->JT), (int)p->VW);
    }
    if (g.Wd != b.gw.Wd || g.Hd != b.gw.Hd)
        return 0;
    return g.L > b.gw.L ? g.L : b.gw.L;
}

static size_t keep_floats(const qg_conv_desc *d, int L)
{
    return L ? (size_t)d->N * d->C * d->stride * d->stride * (size_t)L : 0;
}

qg_status qg__conv_keep_floats(qg_ctx *ctx, const qg_conv_desc *d, size_t *n)
{
    dparams p;
    *n = 0;
    qg_status st = use_direct(d) ? direct_params(ctx, d, &p) : QG_OK;
    if (st == QG_OK && use_direct(d))
        *n = keep_floats(d, keep_plane(d, &p));
    return st;
}

/* Forward: returns QG_OK with *done = 0 when the workspace cannot hold one
 * image's planes (the caller then takes the GEMM path). */
/* What a forward may keep across calls: x's planes for the backward
 * (keep) and the weights in the kernels' layout (wprep; prepared unless
 * wprep_ready). NULL members: the workspace serves. */
typedef struct fwd_cache {
    const qg_tensor *keep, *wprep;
    int wprep_ready;
    dquant q;   /* x's quantizer, applied in the preparation */
} fwd_cache;

/* The forward kernels' weight layout: floats and output channels padded to
 * the tile (Kp), for the channel-vectorised (kv) or the position kernels. */
static size_t fwd_wsz(const qg_conv_desc *d, const dparams *p, int *Kp)
{
    if (use_kv(d)) {
        kv_geom(d, Kp);
        return qg__round_up((size_t)*Kp * d->C * 9, 16);
    }
    int stv = d->stride, T = (d->R + stv - 1) / stv;
    int Tw = stv == 2 ? d->R : T, Cw = stv == 2 ? d->C : d->C * stv * stv;
    *Kp = (int)qg__round_up((size_t)d->K, (size_t)p->KT);
    return qg__round_up((size_t)*Kp * Cw * Tw * Tw, 16);
}

qg_status qg__conv_wprep_floats(qg_ctx *ctx, const qg_conv_desc *d, size_t *n)
{
    dparams p;
    int Kp;
    *n = 0;
    qg_status st = use_direct(d) ? direct_params(ctx, d, &p) : QG_OK;
    if (st == QG_OK && use_direct(d))
        *n = fwd_wsz(d, &p, &Kp);
    return st;
}

static qg_status direct_fwd(qg_ctx *ctx, const qg_conv_desc *d, const qg_tensor *x,
                            const qg_tensor *w, const qg_tensor *bias, qg_tensor *y,
                            qg_tensor *ws, int accumulate, const qg_tensor *add, int relu,
                            const fwd_cache *fc, int *done)
{
    dparams p;
    qg_status st = direct_params(ctx, d, &p);
    if (st != QG_OK)
        return st;
    const qg_tensor *keep = fc ? fc->keep : NULL;
    int Lk = keep_plane(d, &p);
    if (!keep || qg_tensor_numel(keep) < keep_floats(d, Lk))
        Lk = 0;
    int Kp;
    size_t wsz = fwd_wsz(d, &p, &Kp);
    /* the prepared weights: in the caller's buffer when it has one */
    const qg_tensor *wt = fc && fc->wprep && qg_tensor_numel(fc->wprep) >= wsz ? fc->wprep : ws;
    int wready = wt != ws && fc->wprep_ready;
    dquant q = fc ? fc->q : (dquant){0, 0};
    if (use_kv(d)) {
        dgeom g = kv_geom(d, &Kp);
        size_t per = (size_t)d->C * g.L;
        int nb = direct_nb(d, ws, wsz, Lk ? 0 : per);
        *done = 0;
        if (nb < 1)
            return QG_OK;
        size_t PQ = (size_t)d->P * d->Q;
        if (!wready)
            QG_TRY(dwprep_t(ctx, &p, d, w, 3, 0, Kp, d->C, 1, wt));
        if (Lk) {
            g.L = Lk;
            QG_TRY(dprep_q(ctx, &p, x, 0, d->N, d->C, d->H, d->W, 1, 1, 1, d->pad, &g, g.Hd,
                           keep, 0, q));
            QG_TRY(dfwd_kv(ctx, &p, &g, d->C, d->stride, d->N, wt, keep, 0, Kp, bias, d->K,
                           d->P, d->Q, accumulate, relu, y, 0, NULL, add));
            *done = 1;
            return QG_OK;
        }
        for (int n0 = 0; n0 < d->N; n0 += nb) {
            int cnt = d->N - n0 < nb ? d->N - n0 : nb;
            QG_TRY(dprep_q(ctx, &p, x, n0, cnt, d->C, d->H, d->W, 1, 1, 1, d->pad, &g, g.Hd,
                           ws, wsz, q));
            QG_TRY(dfwd_kv(ctx, &p, &g, d->C, d->stride, cnt, wt, ws, wsz, Kp, bias, d->K, d->P,
                           d->Q, accumulate, relu, y, (size_t)n0 * d->K * PQ, NULL, add));
        }
        *done = 1;
        return QG_OK;
    }
    /* stride 2: the 3x3 kernel over the four phase planes of each channel
     * (planes of a 2x2 tile's geometry) */
    int stv = d->stride, T = (d->R + stv - 1) / stv, Ci = d->C * stv * stv;
    dgeom g = direct_geom(T, d->P, d->Q, (int)(p.VW * p.JT), (int)p.VW);
    g.QV = direct_slots(&g, d->P, d->Q, (int)p.VW);
    g.ph = stv == 2;
    int Tw = g.ph ? d->R : T, Cw = g.ph ? d->C : Ci;
    size_t per = (size_t)Ci * g.L;
    int nb = direct_nb(d, ws, wsz, Lk ? 0 : per);
    *done = 0;
    if (nb < 1)
        return QG_OK;
    size_t PQ = (size_t)d->P * d->Q;
    if (!wready)
        QG_TRY(dwprep(ctx, &p, d, w, Tw, 0, Kp, Cw, wt));
    if (Lk) {
        g.L = Lk;
        QG_TRY(dprep_q(ctx, &p, x, 0, d->N, d->C, d->H, d->W, stv, stv, 1, d->pad, &g, g.Hd,
                       keep, 0, q));
        QG_TRY(dfwd(ctx, &p, &g, Cw, d->N, wt, keep, 0, bias, d->K, d->P, d->Q, accumulate, relu,
                    y, 0, NULL, add));
        *done = 1;
        return QG_OK;
    }
    for (int n0 = 0; n0 < d->N; n0 += nb) {
        int cnt = d->N - n0 < nb ? d->N - n0 : nb;
        QG_TRY(dprep_q(ctx, &p, x, n0, cnt, d->C, d->H, d->W, stv, stv, 1, d->pad, &g, g.Hd,
                       ws, wsz, q));
        QG_TRY(dfwd(ctx, &p, &g, Cw, cnt, wt, ws, wsz, bias, d->K, d->P, d->Q, accumulate, relu, y,
                    (size_t)n0 * d->K * PQ, NULL, add));
    }
    *done = 1;
    return QG_OK;
fail:
    return st;
}

static qg_status direct_bwd_data(qg_ctx *ctx, const qg_conv_desc *d, const qg_tensor *dy,
                                 const qg_tensor *w, qg_tensor *dx, qg_tensor *ws,
                                 int accumulate, int *done)
{
    dparams p;
    qg_status st = direct_params(ctx, d, &p);
    if (st != QG_OK)
        return st;
    /* dy dilated by the stride and padded by R-1-pad, flipped weights */
    dgeom g = direct_geom(d->R, d->H, d->W, (int)(p.VW * p.JT), (int)p.VW);
    g.QV = direct_slots(&g, d->H, d->W, (int)p.VW);
    int Kp = (int)qg__round_up((size_t)d->C, (size_t)p.KT);
    size_t wsz = qg__round_up((size_t)Kp * d->K * d->R * d->S, 16), per = (size_t)d->K * g.L;
    int nb = direct_nb(d, ws, wsz, per);
    *done = 0;
    if (nb < 1)
        return QG_OK;
    size_t HW = (size_t)d->H * d->W;
    QG_TRY(dwprep(ctx, &p, d, w, d->R, 1, Kp, d->K, ws));
    for (int n0 = 0; n0 < d->N; n0 += nb) {
        int cnt = d->N - n0 < nb ? d->N - n0 : nb;
        QG_TRY(dprep(ctx, &p, dy, n0, cnt, d->K, d->P, d->Q, 1, 1, d->stride, d->R - 1 - d->pad,
                     &g, g.Hd, ws, wsz));
        QG_TRY(dfwd(ctx, &p, &g, d->K, cnt, ws, ws, wsz, NULL, d->C, d->H, d->W, accumulate, 0, dx,
                    (size_t)n0 * d->C * HW, NULL, NULL));
    }
    *done = 1;
    return QG_OK;
fail:
    return st;
}

static qg_status bias_grad(qg_ctx *ctx, const qg_tensor *dy, int N, int K, int PQ,
                           qg_tensor *db, int accumulate);

/* dw (=|+=) the fixed-order sum of nchunks partials [chunk][K][C*st*st]
 * [T][T] at part_extra (qg_conv_direct_wgrad_sum), then 0 where wmask (w's
 * shape, or NULL) is 0. */
static qg_status dwsum(qg_ctx *ctx, const qg_conv_desc *d, const dparams *p,
                       const qg_tensor *ws, size_t part_extra, int nchunks, int st, int T,
                       int accumulate, qg_tensor *dw, const qg_tensor *wmask)
{
    qg_kargs a;
    qg_status s = dget(ctx, p, QG_K_CONV_DIRECT_WGRAD_SUM, &a);
    if (s != QG_OK)
        return s;
    karg_at(&a, ws, part_extra);
    qg__karg_int(&a, nchunks);
    qg__karg_int(&a, d->K);
    qg__karg_int(&a, d->C);
    qg__karg_int(&a, d->R);
    qg__karg_int(&a, d->S);
    qg__karg_int(&a, st);
    qg__karg_int(&a, T);
    qg__karg_int(&a, T);
    qg__karg_int(&a, accumulate != 0);
    qg__karg_tensor(&a, dw);
    qg__karg_tensor(&a, wmask ? wmask : dw);
    qg__karg_int(&a, wmask != NULL);
    size_t n = (size_t)d->K * d->C * d->R * d->S, l1 = 64;
    return qg__kargs_launch(&a, 1, &n, &l1);
}

/* dw (=|+= when accumulate) from the x planes (xp_extra in ws, geometry g)
 * and the dy planes (dyp_extra, plane length Ly) of nb images: per-chunk
 * partials at part_extra (wn images each), then their fixed-order sum. */
static qg_status dwgrad(qg_ctx *ctx, const qg_conv_desc *d, const dparams *p, const dgeom *g,
                        int T, int Ci, int nb, int wn, const qg_tensor *ws,
                        const qg_tensor *xs, size_t xp_extra, size_t dyp_extra, int Ly,
                        size_t part_extra, int accumulate,
                        qg_tensor *dw, const qg_tensor *wmask)
{
    qg_kernel_id name;
    qg_kargs a;
    int nchunks = (nb + wn - 1) / wn;
    /* g->ph: Ci = 4C phase planes read as C channels of 3x3 taps */
    int Ck = g->ph ? d->C : Ci, Tk = g->ph ? d->R : T, stk = g->ph ? 1 : d->stride;
    /* stride-1 3x3: the row walk over column strips */
    int QB = (d->Q + (int)p->VW - 1) / (int)p->VW;
    int rows = !g->ph && T == 3 && d->stride == 1;
    if (g->ph)
        name = QG_K_CONV_DIRECT_WGRAD_S2_3X3;
    else if (rows)
        name = QG_K_CONV_DIRECT_WGRAD_ROWS_3X3;
    else if (T == 3)
        name = QG_K_CONV_DIRECT_WGRAD_3X3;
    else
        return qg__error(ctx, QG_ERR_UNSUPPORTED, "conv_direct: no %dx%d wgrad kernel", T, T);
    qg_status st = dget(ctx, p, name, &a);
    if (st != QG_OK)
        return st;
    karg_at(&a, xs, xp_extra);
    qg__karg_int(&a, Ck);
    qg__karg_int(&a, g->L);
    qg__karg_int(&a, g->Wd);
    karg_at(&a, ws, dyp_extra);
    qg__karg_int(&a, d->K);
    qg__karg_int(&a, Ly);
    qg__karg_int(&a, g->J);
    qg__karg_int(&a, nb);
    qg__karg_int(&a, wn);
    karg_at(&a, ws, part_extra);
    if (rows) {
        qg__karg_int(&a, d->P);
        qg__karg_int(&a, QB);
        qg__karg_int(&a, d->Q);
    }
    size_t kt = rows && p->WKT > 2 ? 2 : (size_t)p->WKT; /* RKT of the .cl */
    size_t gl[3] = {(size_t)Ck, qg__round_up((size_t)d->K, kt) / kt, (size_t)nchunks};
    size_t l[3] = {(size_t)p->WG, 1, 1};
    if ((st = qg__kargs_launch(&a, 3, gl, l)) != QG_OK)
        return st;
    return dwsum(ctx, d, p, ws, part_extra, nchunks, stk, Tk, accumulate, dw, wmask);
}

/* dw (=|+=) the weight gradient of a 3x3 conv on a narrow map by the
 * channel-vectorised kernel: dy transposed to channels-innermost at
 * dyt_extra, partials from the x planes (xp_extra, geometry g; phase
 * planes when g->ph) at part_extra, then their sum. */
static qg_status dwgrad_kv(qg_ctx *ctx, const qg_conv_desc *d, const dparams *p, const dgeom *g,
                           const qg_tensor *dy, int nb, int wn, const qg_tensor *ws,
                           const qg_tensor *xs, size_t xp_extra, size_t dyt_extra, int Kt,
                           size_t part_extra,
                           int accumulate, qg_tensor *dw, const qg_tensor *wmask)
{
    qg_kargs a;
    int PQ = d->P * d->Q, nchunks = (nb + wn - 1) / wn;
    qg_status st = dget(ctx, p, QG_K_CONV_DIRECT_PREP_T, &a);
    if (st != QG_OK)
        return st;
    qg__karg_tensor(&a, dy);
    qg__karg_int(&a, d->K);
    qg__karg_int(&a, PQ);
    qg__karg_int(&a, Kt);
    qg__karg_int(&a, nb * PQ);
    karg_at(&a, ws, dyt_extra);
    size_t n = (size_t)nb * PQ, l = 16;
    if ((st = qg__kargs_launch(&a, 1, &n, &l)) != QG_OK)
        return st;
    if ((st = dget(ctx, p, g->ph ? QG_K_CONV_DIRECT_WGRAD_KV_S2 : QG_K_CONV_DIRECT_WGRAD_KV,
                    &a)) != QG_OK)
        return st;
    karg_at(&a, xs, xp_extra);
    qg__karg_int(&a, d->C);
    qg__karg_int(&a, g->L);
    qg__karg_int(&a, g->Wd);
    karg_at(&a, ws, dyt_extra);
    qg__karg_int(&a, Kt);
    qg__karg_int(&a, d->K);
    qg__karg_int(&a, d->P);
    qg__karg_int(&a, d->Q);
    qg__karg_int(&a, nb);
    qg__karg_int(&a, wn);
    karg_at(&a, ws, part_extra);
    size_t gl[3] = {(size_t)d->C, (size_t)Kt / QG_KV_CH, (size_t)nchunks};
    size_t lw[3] = {(size_t)p->WG, 1, 1};
    if ((st = qg__kargs_launch(&a, 3, gl, lw)) != QG_OK)
        return st;
    return dwsum(ctx, d, p, ws, part_extra, nchunks, 1, 3, accumulate, dw, wmask);
}

static qg_status direct_bwd_weight(qg_ctx *ctx, const qg_conv_desc *d, const qg_tensor *x,
                                   const qg_tensor *dy, qg_tensor *dw, qg_tensor *dbias,
                                   qg_tensor *ws, int accumulate, int *done)
{
    dparams p;
    qg_status st = direct_params(ctx, d, &p);
    if (st != QG_OK)
        return st;
    int stv = d->stride, T = (d->R + stv - 1) / stv, Ci = d->C * stv * stv;
    dgeom g = direct_geom(T, d->P, d->Q, (int)p.VW, (int)p.VW);
    g.ph = stv == 2;
    int Ly = g.L;
    size_t part1 = (size_t)d->K * d->C * d->R * d->S; /* one chunk's partials */
    size_t per = (size_t)Ci * g.L + (size_t)d->K * Ly + part1;
    int nb = direct_nb(d, ws, 0, per);
    *done = 0;
    if (nb < 1)
        return QG_OK;
    /* partials first, then the x planes, then the dy planes */
    int wn = direct_wn(&p, g.J, nb);
    int max_chunks = (nb + wn - 1) / wn;
    size_t xp_extra = qg__round_up(part1 * max_chunks, 16);
    size_t dyp_extra = xp_extra + (size_t)nb * Ci * g.L;
    for (int n0 = 0; n0 < d->N; n0 += nb) {
        int cnt = d->N - n0 < nb ? d->N - n0 : nb;
        QG_TRY(dprep(ctx, &p, x, n0, cnt, d->C, d->H, d->W, stv, stv, 1, d->pad, &g, g.Hd, ws,
                     xp_extra));
        QG_TRY(dprep(ctx, &p, dy, n0, cnt, d->K, d->P, d->Q, 1, 1, 1, 0, &g, d->P, ws,
                     dyp_extra));
        QG_TRY(dwgrad(ctx, d, &p, &g, T, Ci, cnt, wn, ws, ws, xp_extra, dyp_extra, g.L, 0,
                      n0 > 0 || accumulate, dw, NULL));
    }
    if (dbias)
        QG_TRY(bias_grad(ctx, dy, d->N, d->K, d->P * d->Q, dbias, accumulate));
    *done = 1;
    return QG_OK;
fail:
    return st;
}

/* dx (+)= the phases ph [nb][4C][Hp][Wp] of a stride-2 data gradient put
 * back in place (qg_conv_direct_unphase). */
static qg_status dunphase(qg_ctx *ctx, const dparams *p, const qg_conv_desc *d, const qg_tensor *ws,
                          size_t ph_extra, int Hp, int Wp, int nb, qg_tensor *dx, int accumulate,
                          const qg_tensor *mask)
{
    qg_kargs a;
    qg_status st = dget(ctx, p, QG_K_CONV_DIRECT_UNPHASE, &a);
    if (st != QG_OK)
        return st;
    int rows = nb * d->C * d->H;
    karg_at(&a, ws, ph_extra);
    qg__karg_int(&a, d->C);
    qg__karg_int(&a, d->H);
    qg__karg_int(&a, d->W);
    qg__karg_int(&a, Hp);
    qg__karg_int(&a, Wp);
    qg__karg_int(&a, rows);
    qg__karg_int(&a, accumulate != 0);
    qg__karg_tensor(&a, dx);
    qg__karg_tensor(&a, mask ? mask : dx);
    qg__karg_int(&a, mask != NULL);
    size_t gl = (size_t)rows, l = 16;
    return qg__kargs_launch(&a, 1, &gl, &l);
}

/* Workspace floats the direct kernels want for the whole batch under any
 * valid parameters (the widest tiles): the forward planes and the shared-dy
 * backward, so neither falls back to slower paths for want of room; when
 * that passes 4x the usual target, one image's forward planes (the rest
 * then runs in chunks). 0 for shapes the direct kernels do not take. */
static size_t direct_ws_bound(const qg_conv_desc *d)
{
    if (!use_direct(d))
        return 0;
    const dparams wp = {.WG = 8, .VW = 16, .JT = 4, .KT = 8, .WKT = 3, .WN = 1};
    int stv = d->stride, T = (d->R + stv - 1) / stv, Ci = d->C * stv * stv;
    dgeom g = direct_geom(T, d->P, d->Q, (int)(wp.VW * wp.JT), (int)wp.VW);
    size_t wsz = qg__round_up(qg__round_up((size_t)d->K, 8) * Ci * T * T, 16);
    size_t one = wsz + (size_t)Ci * g.L, all = wsz + (size_t)d->N * Ci * g.L;
    if (use_kv(d)) {
        int Kp;
        dgeom gk = kv_geom(d, &Kp);
        size_t kw = qg__round_up((size_t)Kp * d->C * 9, 16), per = (size_t)d->C * gk.L;
        if (kw + per > one)
            one = kw + per;
        if (kw + (size_t)d->N * per > all)
            all = kw + (size_t)d->N * per;
    }
    bwd_layout b = direct_bwd_layout(d, &wp, 1, 1);
    if (b.ok && b.total > all)
        all = b.total;
    return all <= 4 * QG_CONV_WS_TARGET ? all : one;
}

/* Backward through the direct kernels, all N images at once, with one dy
 * preparation serving both passes. The data gradient of a "same" stride-1
 * conv (pad = (R-1)/2) reads dy padded by pad in planes of row stride
 * W + R - 1 = Q + R - 1, which is the weight gradient's row stride, so the
 * weight gradient reads the same planes pad rows and columns in. A 3x3
 * stride-2 conv with pad 1 takes its data gradient by output phases: dx
 * at (2i+a, 2j+b) is a 2x2 stride-1 conv of dy (unpadded, one zero row
 * and column after) with a subset of the weights, 4C "channels" in one
 * launch, then put in place; those dy planes are the weight gradient's as
 * they are. The phases do 16 taps' work for the 9 useful ones, where the
 * dilated-dy form did 36. dx or dw may be NULL. With keep, the weight
 * gradient reads x's planes as the forward kept them there instead of
 * preparing them. *done = 0 when the shape or the workspace does not allow
 * it (the caller runs the passes alone). */
static qg_status direct_bwd(qg_ctx *ctx, const qg_conv_desc *d, const qg_tensor *x,
                            const qg_tensor *dy, const qg_tensor *w, qg_tensor *dx, int acc_dx,
                            const qg_tensor *mask, qg_tensor *dw, qg_tensor *dbias, int acc_dw,
                            const qg_tensor *wmask, qg_tensor *ws, const qg_tensor *keep,
                            int *done)
{
    dparams p;
    *done = 0;
    qg_status st = direct_params(ctx, d, &p);
    if (st != QG_OK)
        return st;
    if (!ws || ws->dtype != QG_DTYPE_F32)
        return QG_OK;
    bwd_layout b = direct_bwd_layout(d, &p, dx != NULL, dw != NULL);
    if (!b.ok || b.total > qg_tensor_numel(ws) || b.total > (size_t)INT_MAX)
        return QG_OK;
    const int N = d->N, stv = d->stride, s2 = b.s2, T = b.T, Ci = b.Ci, TD = b.TD;
    const int Kp = b.Kp, dKo = b.dKo, Hp = b.Hp, Wp = b.Wp, wn = b.wn;
    dgeom gw = b.gw, gy = b.gy;
    const size_t dy_off = b.dy_off, o_ph = b.o_ph, o_dy = b.o_dy, o_x = b.o_x;
    const size_t o_part = b.o_part;

    if (s2)
        QG_TRY(dprep(ctx, &p, dy, 0, N, d->K, d->P, d->Q, 1, 1, 1, 0, &gy, d->P, ws, o_dy));
    else if (dx || !b.kvw) /* (the channel-vectorised wgrad reads dy itself) */
        QG_TRY(dprep(ctx, &p, dy, 0, N, d->K, d->P, d->Q, 1, 1, 1, d->R - 1 - d->pad, &gy, gy.Hd,
                     ws, o_dy));
    if (dx) {
        QG_TRY(dwprep_t(ctx, &p, d, w, TD, s2 ? 2 : 1, Kp, d->K, b.kv, ws));
        gy.T = TD;
        if (b.kv && s2) {
            QG_TRY(dfwd_kv(ctx, &p, &gy, d->K, 1, N, ws, ws, o_dy, Kp, NULL, dKo, Hp, Wp, 0, 0, ws,
                           o_ph, NULL, NULL));
            QG_TRY(dunphase(ctx, &p, d, ws, o_ph, Hp, Wp, N, dx, acc_dx, mask));
        } else if (b.kv) {
            QG_TRY(dfwd_kv(ctx, &p, &gy, d->K, 1, N, ws, ws, o_dy, Kp, NULL, d->C, d->H, d->W,
                           acc_dx, 0, dx, 0, mask, NULL));
        } else if (s2) {
            QG_TRY(dfwd(ctx, &p, &gy, d->K, N, ws, ws, o_dy, NULL, dKo, Hp, Wp, 0, 0, ws, o_ph,
                        NULL, NULL));
            QG_TRY(dunphase(ctx, &p, d, ws, o_ph, Hp, Wp, N, dx, acc_dx, mask));
        } else {
            QG_TRY(dfwd(ctx, &p, &gy, d->K, N, ws, ws, o_dy, NULL, d->C, d->H, d->W, acc_dx, 0, dx,
                        0, mask, NULL));
        }
    }
    if (dw) {
        /* x's planes as the forward left them in keep, or prepared here */
        int Lk = keep ? keep_plane(d, &p) : 0;
        const qg_tensor *xs = ws;
        size_t xo = o_x;
        if (Lk && qg_tensor_numel(keep) >= keep_floats(d, Lk)) {
            gw.L = Lk;
            xs = keep;
            xo = 0;
        } else {
            QG_TRY(dprep(ctx, &p, x, 0, N, d->C, d->H, d->W, stv, stv, 1, d->pad, &gw, gw.Hd, ws,
                         o_x));
        }
        if (b.kvw)
            QG_TRY(dwgrad_kv(ctx, d, &p, &gw, dy, N, wn, ws, xs, xo, b.o_dyt, b.Kt, o_part,
                             acc_dw, dw, wmask));
        else
            QG_TRY(dwgrad(ctx, d, &p, &gw, T, Ci, N, wn, ws, xs, xo, o_dy + dy_off, gy.L, o_part,
                          acc_dw, dw, wmask));
        if (dbias)
            QG_TRY(bias_grad(ctx, dy, d->N, d->K, d->P * d->Q, dbias, acc_dw));
    }
    *done = 1;
    return QG_OK;
fail:
    return st;
}

qg_status qg__conv2d_fwd(qg_ctx *ctx, const qg_conv_desc *d, const qg_tensor *x,
                         const qg_tensor *w, const qg_tensor *bias, qg_tensor *y,
                         qg_tensor *ws)
{
    return qg__conv2d_fwd_keep(ctx, d, x, w, bias, y, ws, NULL);
}

qg_status qg__conv2d_fwd_keep(qg_ctx *ctx, const qg_conv_desc *d, const qg_tensor *x,
                              const qg_tensor *w, const qg_tensor *bias, qg_tensor *y,
                              qg_tensor *ws, qg_tensor *keep)
{
    static const char op[] = "conv2d_fwd";
    qg_status st = check_desc(ctx, op, d);
    if (st != QG_OK)
        return st;
    const size_t G = (size_t)d->groups, Cg = (size_t)d->C / G, Kg = (size_t)d->K / G;
    const size_t PQ = (size_t)d->P * d->Q, CRSg = Cg * d->R * d->S, CRS = CRSg * G;
    const size_t K = (size_t)d->K, HW = (size_t)d->H * d->W, C = (size_t)d->C;
    QG_TRY(check_t(ctx, op, "x", x, (size_t)d->N * C * HW));
    QG_TRY(check_t(ctx, op, "w", w, K * CRSg));
    QG_TRY(check_t(ctx, op, "y", y, (size_t)d->N * K * PQ));
    if (bias)
        QG_TRY(check_t(ctx, op, "bias", bias, K));
    qg_kargs a;
    size_t wg;

    if (use_direct(d)) {
        /* same workspace contract as the GEMM path */
        int done = 0, nb_gemm = 0;
        QG_TRY(chunk_images(ctx, op, d, ws, &nb_gemm));
        fwd_cache fc = {.keep = keep};
        QG_TRY(direct_fwd(ctx, d, x, w, bias, y, ws, 0, NULL, 0, &fc, &done));
        if (done)
            return QG_OK;
    }
    if (is_pointwise(d)) {
        /* y[n] group g = W_g x[n] group g, straight into y. */
        QG_TRY(pointwise_gemms(ctx, d, 0, Kg, PQ, Cg, opnd(w, 0, Cg), Kg * Cg, opnd(x, 0, HW),
                               C * HW, Cg * HW, 0.0f, opnd(y, 0, PQ), K * PQ, Kg * PQ));
        return bias ? bias_add(ctx, y, bias, d->K, (int)PQ) : QG_OK;
    }

    int nb = 0;
    QG_TRY(chunk_images(ctx, op, d, ws, &nb));
    for (int n0 = 0; n0 < d->N; n0 += nb) {
        int cnt = d->N - n0 < nb ? d->N - n0 : nb;
        size_t cols = (size_t)cnt * PQ, t_extra = CRS * cols;
        QG_TRY(im2col(ctx, d, x, n0, cnt, ws));
        QG_TRY(qg__gemm_batched(ctx, 0, 0, Kg, cols, CRSg, 1.0f, opnd(w, 0, CRSg), Kg * CRSg,
                                opnd(ws, 0, cols), CRSg * cols, 0.0f, opnd(ws, t_extra, cols),
                                Kg * cols, G));
        QG_TRY(get(ctx, QG_K_IM2COL_CN_TO_NCHW, &a, &wg));
        karg_at(&a, ws, t_extra);
        qg__karg_tensor(&a, bias ? bias : ws); /* not read without bias */
        qg__karg_int(&a, bias != NULL);
        qg__karg_int(&a, d->K);
        qg__karg_int(&a, (int)PQ);
        qg__karg_int(&a, cnt);
        karg_at(&a, y, (size_t)n0 * K * PQ);
        QG_TRY(launch2d(&a, PQ, (size_t)cnt * K, wg));
    }
    return QG_OK;
fail:
    return st;
}

qg_status qg__conv2d_fwd_quant(qg_ctx *ctx, const qg_conv_desc *d, const qg_tensor *x,
                               const qg_tensor *s, int bits, const qg_tensor *w, qg_tensor *y,
                               qg_tensor *ws, qg_tensor *keep)
{
    static const char op[] = "conv2d_fwd_quant";
    qg_status st = check_desc(ctx, op, d);
    if (st != QG_OK)
        return st;
    if (bits < 2 || bits > 16)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: %d bits (2..16)", op, bits);
    int L = (1 << bits) - 1;
    if (!use_direct(d) || L > QG_QT_MAX)
        return QG_ERR_UNSUPPORTED;
    QG_TRY(check_t(ctx, op, "x", x, (size_t)d->N * d->C * d->H * d->W));
    QG_TRY(check_t(ctx, op, "scale", s, 1));
    QG_TRY(check_t(ctx, op, "w", w, (size_t)d->K * d->C * d->R * d->S));
    QG_TRY(check_t(ctx, op, "y", y, (size_t)d->N * d->K * d->P * d->Q));
    int done = 0, nb_gemm = 0;
    QG_TRY(chunk_images(ctx, op, d, ws, &nb_gemm));
    dparams p;
    qg_kargs a;
    cl_mem t;
    QG_TRY(direct_params(ctx, d, &p));
    QG_TRY(qg__ctx_scratch(ctx, 32 * sizeof(float), &t));
    QG_TRY(dget(ctx, &p, QG_K_CONV_DIRECT_QTABLE, &a));
    qg__karg_tensor(&a, s);
    qg__karg_int(&a, L);
    qg__karg_mem(&a, t);
    qg__karg_int(&a, 0);
    size_t one = 1;
    QG_TRY(qg__kargs_launch(&a, 1, &one, &one));
    fwd_cache fc = {.keep = keep, .q = {t, L}};
    QG_TRY(direct_fwd(ctx, d, x, w, NULL, y, ws, 0, NULL, 0, &fc, &done));
    return done ? QG_OK : QG_ERR_UNSUPPORTED;
fail:
    return st;
}

int qg__conv2d_fwd_fusable(const qg_conv_desc *d)
{
    return use_direct(d);
}

qg_status qg__conv2d_fwd_fused(qg_ctx *ctx, const qg_conv_desc *d, const qg_tensor *x,
                               const qg_tensor *w, const qg_tensor *bias, qg_tensor *y,
                               qg_tensor *ws, int accumulate, const qg_tensor *res, int relu)
{
    return qg__conv2d_fwd_fused_wprep(ctx, d, x, w, bias, y, ws, accumulate, res, relu, NULL,
                                      0);
}

qg_status qg__conv2d_fwd_fused_wprep(qg_ctx *ctx, const qg_conv_desc *d, const qg_tensor *x,
                                     const qg_tensor *w, const qg_tensor *bias, qg_tensor *y,
                                     qg_tensor *ws, int accumulate, const qg_tensor *res,
                                     int relu, qg_tensor *wprep, int wprep_ready)
{
    static const char op[] = "conv2d_fwd_fused";
    qg_status st = check_desc(ctx, op, d);
    if (st != QG_OK)
        return st;
    if (!use_direct(d))
        return qg__error(ctx, QG_ERR_UNSUPPORTED, "%s: %dx%d stride-%d conv with %d groups has "
                         "no fused epilogue", op, d->R, d->S, d->stride, d->groups);
    QG_TRY(check_t(ctx, op, "x", x, (size_t)d->N * d->C * d->H * d->W));
    QG_TRY(check_t(ctx, op, "w", w, (size_t)d->K * d->C * d->R * d->S));
    QG_TRY(check_t(ctx, op, "y", y, (size_t)d->N * d->K * d->P * d->Q));
    if (bias)
        QG_TRY(check_t(ctx, op, "bias", bias, (size_t)d->K));
    if (res)
        QG_TRY(check_t(ctx, op, "res", res, (size_t)d->N * d->K * d->P * d->Q));
    int done = 0;
    fwd_cache fc = {.wprep = wprep, .wprep_ready = wprep_ready};
    QG_TRY(direct_fwd(ctx, d, x, w, bias, y, ws, accumulate, res, relu, &fc, &done));
    if (!done)
        return qg__error(ctx, QG_ERR_UNSUPPORTED, "%s: workspace '%s' cannot hold one image's "
                         "planes", op, ws ? ws->name : "(none)");
    return QG_OK;
fail:
    return st;
}

qg_status qg__conv2d_bwd_data(qg_ctx *ctx, const qg_conv_desc *d, const qg_tensor *dy,
                              const qg_tensor *w, qg_tensor *dx, qg_tensor *ws, int accumulate)
{
    static const char op[] = "conv2d_bwd_data";
    qg_status st = check_desc(ctx, op, d);
    if (st != QG_OK)
        return st;
    const size_t G = (size_t)d->groups, Cg = (size_t)d->C / G, Kg = (size_t)d->K / G;
    const size_t PQ = (size_t)d->P * d->Q, CRSg = Cg * d->R * d->S, CRS = CRSg * G;
    const size_t K = (size_t)d->K, HW = (size_t)d->H * d->W, C = (size_t)d->C;
    QG_TRY(check_t(ctx, op, "dy", dy, (size_t)d->N * K * PQ));
    QG_TRY(check_t(ctx, op, "w", w, K * CRSg));
    QG_TRY(check_t(ctx, op, "dx", dx, (size_t)d->N * C * HW));

    if (use_direct(d)) {
        /* same workspace contract as the GEMM path */
        int done = 0, nb_gemm = 0;
        QG_TRY(chunk_images(ctx, op, d, ws, &nb_gemm));
        QG_TRY(direct_bwd(ctx, d, NULL, dy, w, dx, accumulate, NULL, NULL, NULL, 0, NULL, ws,
                          NULL, &done));
        if (!done)
            QG_TRY(direct_bwd_data(ctx, d, dy, w, dx, ws, accumulate, &done));
        if (done)
            return QG_OK;
    }
    if (is_pointwise(d)) {
        /* dx[n] group g (+)= W_g^T dy[n] group g, straight into dx. */
        return pointwise_gemms(ctx, d, 1, Cg, HW, Kg, opnd(w, 0, Cg), Kg * Cg,
                               opnd(dy, 0, PQ), K * PQ, Kg * PQ, accumulate ? 1.0f : 0.0f,
                               opnd(dx, 0, HW), C * HW, Cg * HW);
    }

    int nb = 0;
    QG_TRY(chunk_images(ctx, op, d, ws, &nb));
    qg_kargs a;
    size_t wg;
    for (int n0 = 0; n0 < d->N; n0 += nb) {
        int cnt = d->N - n0 < nb ? d->N - n0 : nb;
        size_t cols = (size_t)cnt * PQ, t_extra = CRS * cols;
        QG_TRY(nchw_to_cn(ctx, dy, n0, cnt, d->K, (int)PQ, ws, t_extra));
        QG_TRY(qg__gemm_batched(ctx, 1, 0, CRSg, cols, Kg, 1.0f, opnd(w, 0, CRSg), Kg * CRSg,
                                opnd(ws, t_extra, cols), Kg * cols, 0.0f, opnd(ws, 0, cols),
                                CRSg * cols, G));
        QG_TRY(get(ctx, QG_K_IM2COL_COL2IM, &a, &wg));
        karg_at(&a, ws, 0);
        qg__karg_int(&a, d->C);
        qg__karg_int(&a, d->H);
        qg__karg_int(&a, d->W);
        qg__karg_int(&a, d->R);
        qg__karg_int(&a, d->S);
        qg__karg_int(&a, d->stride);
        qg__karg_int(&a, d->pad);
        qg__karg_int(&a, d->P);
        qg__karg_int(&a, d->Q);
        qg__karg_int(&a, cnt);
        karg_at(&a, dx, (size_t)n0 * C * HW);
        qg__karg_int(&a, accumulate != 0);
        QG_TRY(launch2d(&a, HW, (size_t)cnt * C, wg));
    }
    return QG_OK;
fail:
    return st;
}

/* db[k] (+)= sum over n, pq of dy[n][k][pq]. */
static qg_status bias_grad(qg_ctx *ctx, const qg_tensor *dy, int N, int K, int PQ,
                           qg_tensor *db, int accumulate)
{
    qg_kargs a;
    size_t wg;
    qg_status st = get(ctx, QG_K_IM2COL_BIAS_GRAD, &a, &wg);
    if (st != QG_OK)
        return st;
    qg__karg_tensor(&a, dy);
    qg__karg_int(&a, N);
    qg__karg_int(&a, K);
    qg__karg_int(&a, PQ);
    qg__karg_tensor(&a, db);
    qg__karg_int(&a, accumulate != 0);
    size_t g = (size_t)K * wg;
    return qg__kargs_launch(&a, 1, &g, &wg);
}

qg_status qg__conv2d_bwd_weight(qg_ctx *ctx, const qg_conv_desc *d, const qg_tensor *x,
                                const qg_tensor *dy, qg_tensor *dw, qg_tensor *dbias,
                                qg_tensor *ws, int accumulate)
{
    static const char op[] = "conv2d_bwd_weight";
    qg_status st = check_desc(ctx, op, d);
    if (st != QG_OK)
        return st;
    const size_t G = (size_t)d->groups, Cg = (size_t)d->C / G, Kg = (size_t)d->K / G;
    const size_t PQ = (size_t)d->P * d->Q, CRSg = Cg * d->R * d->S, CRS = CRSg * G;
    const size_t K = (size_t)d->K, HW = (size_t)d->H * d->W, C = (size_t)d->C;
    QG_TRY(check_t(ctx, op, "x", x, (size_t)d->N * C * HW));
    QG_TRY(check_t(ctx, op, "dy", dy, (size_t)d->N * K * PQ));
    QG_TRY(check_t(ctx, op, "dw", dw, K * CRSg));
    if (dbias)
        QG_TRY(check_t(ctx, op, "dbias", dbias, K));

    if (use_direct(d)) {
        /* same workspace contract as the GEMM path */
        int done = 0, nb_gemm = 0;
        QG_TRY(chunk_images(ctx, op, d, ws, &nb_gemm));
        /* the whole-batch form first (it has the channel-vectorised kernel
         * for narrow maps), then image chunks */
        QG_TRY(direct_bwd(ctx, d, x, dy, NULL, NULL, 0, NULL, dw, dbias, accumulate, NULL, ws,
                          NULL, &done));
        if (!done)
            QG_TRY(direct_bwd_weight(ctx, d, x, dy, dw, dbias, ws, accumulate, &done));
        if (done)
            return QG_OK;
    }
    int nb = 0;
    QG_TRY(chunk_images(ctx, op, d, ws, &nb));
    for (int n0 = 0; n0 < d->N; n0 += nb) {
        int cnt = d->N - n0 < nb ? d->N - n0 : nb;
        size_t cols = (size_t)cnt * PQ, t_extra = CRS * cols;
        float beta = n0 > 0 || accumulate ? 1.0f : 0.0f;
        QG_TRY(im2col(ctx, d, x, n0, cnt, ws));
        QG_TRY(nchw_to_cn(ctx, dy, n0, cnt, d->K, (int)PQ, ws, t_extra));
        QG_TRY(qg__gemm_batched(ctx, 0, 1, Kg, CRSg, cols, 1.0f, opnd(ws, t_extra, cols),
                                Kg * cols, opnd(ws, 0, cols), CRSg * cols, beta,
                                opnd(dw, 0, CRSg), Kg * CRSg, G));
    }
    if (dbias)
        QG_TRY(bias_grad(ctx, dy, d->N, d->K, (int)PQ, dbias, accumulate));
    return QG_OK;
fail:
    return st;
}

qg_status qg__conv2d_bwd(qg_ctx *ctx, const qg_conv_desc *d, const qg_tensor *x,
                         const qg_tensor *dy, const qg_tensor *w, qg_tensor *dx, int acc_dx,
                         qg_tensor *dw, qg_tensor *dbias, int acc_dw, qg_tensor *ws)
{
    return qg__conv2d_bwd_kept(ctx, d, x, dy, w, dx, acc_dx, dw, dbias, acc_dw, ws, NULL);
}

qg_status qg__conv2d_bwd_kept(qg_ctx *ctx, const qg_conv_desc *d, const qg_tensor *x,
                              const qg_tensor *dy, const qg_tensor *w, qg_tensor *dx, int acc_dx,
                              qg_tensor *dw, qg_tensor *dbias, int acc_dw, qg_tensor *ws,
                              const qg_tensor *keep)
{
    static const char op[] = "conv2d_bwd";
    qg_status st = check_desc(ctx, op, d);
    if (st != QG_OK)
        return st;
    if (dx && dw && use_direct(d)) {
        const size_t PQ = (size_t)d->P * d->Q, HW = (size_t)d->H * d->W;
        int done = 0, nb_gemm = 0;
        QG_TRY(check_t(ctx, op, "x", x, (size_t)d->N * d->C * HW));
        QG_TRY(check_t(ctx, op, "dy", dy, (size_t)d->N * d->K * PQ));
        QG_TRY(check_t(ctx, op, "w", w, (size_t)d->K * d->C * d->R * d->S));
        QG_TRY(check_t(ctx, op, "dx", dx, (size_t)d->N * d->C * HW));
        QG_TRY(check_t(ctx, op, "dw", dw, (size_t)d->K * d->C * d->R * d->S));
        if (dbias)
            QG_TRY(check_t(ctx, op, "dbias", dbias, (size_t)d->K));
        QG_TRY(chunk_images(ctx, op, d, ws, &nb_gemm));
        QG_TRY(direct_bwd(ctx, d, x, dy, w, dx, acc_dx, NULL, dw, dbias, acc_dw, NULL, ws, keep,
                          &done));
        if (done)
            return QG_OK;
    }
    if (dx)
        QG_TRY(qg__conv2d_bwd_data(ctx, d, dy, w, dx, ws, acc_dx));
    if (dw)
        QG_TRY(qg__conv2d_bwd_weight(ctx, d, x, dy, dw, dbias, ws, acc_dw));
    return QG_OK;
fail:
    return st;
}

qg_status qg__conv2d_bwd_masked(qg_ctx *ctx, const qg_conv_desc *d, const qg_tensor *x,
                                const qg_tensor *dy, const qg_tensor *w, qg_tensor *dx,
                                int acc_dx, const qg_tensor *mask, qg_tensor *dw,
                                int acc_dw, const qg_tensor *wmask, qg_tensor *ws,
                                const qg_tensor *keep)
{
    static const char op[] = "conv2d_bwd_masked";
    qg_status st = check_desc(ctx, op, d);
    if (st != QG_OK)
        return st;
    const size_t HW = (size_t)d->H * d->W, PQ = (size_t)d->P * d->Q;
    int done = 0;
    if (use_direct(d)) {
        QG_TRY(check_t(ctx, op, "x", x, (size_t)d->N * d->C * HW));
        QG_TRY(check_t(ctx, op, "dy", dy, (size_t)d->N * d->K * PQ));
        QG_TRY(check_t(ctx, op, "w", w, (size_t)d->K * d->C * d->R * d->S));
        QG_TRY(check_t(ctx, op, "dx", dx, (size_t)d->N * d->C * HW));
        if (mask)
            QG_TRY(check_t(ctx, op, "mask", mask, (size_t)d->N * d->C * HW));
        QG_TRY(check_t(ctx, op, "dw", dw, (size_t)d->K * d->C * d->R * d->S));
        if (wmask)
            QG_TRY(check_t(ctx, op, "wmask", wmask, (size_t)d->K * d->C * d->R * d->S));
        QG_TRY(direct_bwd(ctx, d, x, dy, w, dx, acc_dx, mask, dw, NULL, acc_dw, wmask, ws, keep,
                          &done));
    }
    if (!done)
        return qg__error(ctx, QG_ERR_UNSUPPORTED, "%s: this %dx%d stride-%d conv or workspace "
                         "'%s' takes a path without the mask epilogue", op, d->R, d->S,
                         d->stride, ws ? ws->name : "(none)");
    return QG_OK;
fail:
    return st;
}

static qg_status check_linear(qg_ctx *ctx, const char *op, int N, int I, int O)
{
    if (N < 1 || I < 1 || O < 1 || (int64_t)N * I > INT_MAX || (int64_t)N * O > INT_MAX ||
        (int64_t)O * I > INT_MAX)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: invalid shape N=%d I=%d O=%d", op, N, I, O);
    return QG_OK;
}

qg_status qg__linear_fwd(qg_ctx *ctx, int N, int I, int O, const qg_tensor *x,
                         const qg_tensor *w, const qg_tensor *b, qg_tensor *y)
{
    static const char op[] = "linear_fwd";
    qg_status st;
    QG_TRY(check_linear(ctx, op, N, I, O));
    QG_TRY(check_t(ctx, op, "x", x, (size_t)N * I));
    QG_TRY(check_t(ctx, op, "w", w, (size_t)O * I));
    QG_TRY(check_t(ctx, op, "y", y, (size_t)N * O));
    if (b)
        QG_TRY(check_t(ctx, op, "b", b, (size_t)O));
    QG_TRY(qg__gemm(ctx, 0, 1, (size_t)N, (size_t)O, (size_t)I, 1.0f, opnd(x, 0, I),
                    opnd(w, 0, I), 0.0f, opnd(y, 0, O)));
    if (b)
        QG_TRY(bias_add(ctx, y, b, O, 1));
    return QG_OK;
fail:
    return st;
}

qg_status qg__linear_bwd(qg_ctx *ctx, int N, int I, int O, const qg_tensor *x,
                         const qg_tensor *w, const qg_tensor *dy, qg_tensor *dx, qg_tensor *dw,
                         qg_tensor *db, int accumulate)
{
    static const char op[] = "linear_bwd";
    qg_status st;
    QG_TRY(check_linear(ctx, op, N, I, O));
    QG_TRY(check_t(ctx, op, "x", x, (size_t)N * I));
    QG_TRY(check_t(ctx, op, "w", w, (size_t)O * I));
    QG_TRY(check_t(ctx, op, "dy", dy, (size_t)N * O));
    QG_TRY(check_t(ctx, op, "dw", dw, (size_t)O * I));
    if (dx)
        QG_TRY(check_t(ctx, op, "dx", dx, (size_t)N * I));
    if (db)
        QG_TRY(check_t(ctx, op, "db", db, (size_t)O));
    if (dx)
        QG_TRY(qg__gemm(ctx, 0, 0, (size_t)N, (size_t)I, (size_t)O, 1.0f, opnd(dy, 0, O),
                        opnd(w, 0, I), 0.0f, opnd(dx, 0, I)));
    QG_TRY(qg__gemm(ctx, 1, 0, (size_t)O, (size_t)I, (size_t)N, 1.0f, opnd(dy, 0, O),
                    opnd(x, 0, I), accumulate ? 1.0f : 0.0f, opnd(dw, 0, I)));
    if (db)
        QG_TRY(bias_grad(ctx, dy, N, O, 1, db, accumulate));
    return QG_OK;
fail:
    return st;
}
