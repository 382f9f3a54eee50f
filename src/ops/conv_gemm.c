/* src/ops/conv_gemm.c: convolutions as GEMMs (CLBlast via src/gemm/gemm.c)
 * around the lowering kernels of cl/im2col.cl: every shape the direct
 * kernels do not take (grouped, 1x1, 5x5, pad > 2, ...), and the bias
 * passes the other paths and src/ops/linear.c share. Which pass runs here
 * is decided in src/ops/conv_plan.c. C twin: src/ref/ref_conv.c; tests:
 * tests/test_conv.c.
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
 * in place. */
#include "config.h"

#include <limits.h>

#include "core/error.h"
#include "ops/conv_impl.h"

/* Images per chunk: as many as fit the workspace (the plan checked that
 * one does), at most N. */
static int chunk_images(const qg_conv_desc *d, const qg_tensor *ws)
{
    size_t per = qg__conv_gemm_per_image(d);
    size_t n = qg_tensor_numel(ws) / per;
    if (n > (size_t)INT_MAX / per)
        n = (size_t)INT_MAX / per;
    QG_ASSERT(n >= 1);
    return n < (size_t)d->N ? (int)n : d->N;
}

static qg_status get(qg_ctx *ctx, qg_kernel_id kernel, qg_kargs *a, size_t *wg)
{
    return qg__kargs_get(ctx, kernel, a, wg);
}

static qg_status launch2d(qg_kargs *a, size_t g0, size_t g1, size_t wg)
{
    size_t g[2] = {g0, g1}, l[2] = {wg, 1};
    return qg__kargs_launch(a, 2, g, l);
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
    qg__conv_karg_at(&a, x, (size_t)n0 * d->C * d->H * d->W);
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
    qg__conv_karg_at(&a, ws, 0);
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
    qg__conv_karg_at(&a, src, (size_t)n0 * K * PQ);
    qg__karg_int(&a, K);
    qg__karg_int(&a, PQ);
    qg__karg_int(&a, nb);
    qg__conv_karg_at(&a, ws, dst_extra);
    return launch2d(&a, (size_t)PQ, (size_t)nb * K, wg);
}

qg_status qg__conv_bias_add(qg_ctx *ctx, qg_tensor *y, const qg_tensor *bias, int K, int PQ)
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


qg_status qg__conv_gemm_fwd(const qg_conv_plan *pl, const qg_tensor *x, const qg_tensor *w,
                            const qg_tensor *bias, qg_tensor *y, qg_tensor *ws)
{
    qg_ctx *ctx = pl->ctx;
    const qg_conv_desc *d = &pl->d;
    const size_t G = (size_t)d->groups, Cg = (size_t)d->C / G, Kg = (size_t)d->K / G;
    const size_t PQ = (size_t)d->P * d->Q, CRSg = Cg * d->R * d->S, CRS = CRSg * G;
    const size_t K = (size_t)d->K, HW = (size_t)d->H * d->W, C = (size_t)d->C;
    qg_status st = QG_OK;
    qg_kargs a;
    size_t wg;

    if (pl->fwd == QG_CONV_ROUTE_POINTWISE) {
        /* y[n] group g = W_g x[n] group g, straight into y. */
        QG_TRY(pointwise_gemms(ctx, d, 0, Kg, PQ, Cg, qg__conv_opnd(w, 0, Cg), Kg * Cg,
                               qg__conv_opnd(x, 0, HW), C * HW, Cg * HW, 0.0f,
                               qg__conv_opnd(y, 0, PQ), K * PQ, Kg * PQ));
        return bias ? qg__conv_bias_add(ctx, y, bias, d->K, (int)PQ) : QG_OK;
    }
    int nb = chunk_images(d, ws);
    for (int n0 = 0; n0 < d->N; n0 += nb) {
        int cnt = d->N - n0 < nb ? d->N - n0 : nb;
        size_t cols = (size_t)cnt * PQ, t_extra = CRS * cols;
        QG_TRY(im2col(ctx, d, x, n0, cnt, ws));
        QG_TRY(qg__gemm_batched(ctx, 0, 0, Kg, cols, CRSg, 1.0f, qg__conv_opnd(w, 0, CRSg),
                                Kg * CRSg, qg__conv_opnd(ws, 0, cols), CRSg * cols, 0.0f,
                                qg__conv_opnd(ws, t_extra, cols), Kg * cols, G));
        QG_TRY(get(ctx, QG_K_IM2COL_CN_TO_NCHW, &a, &wg));
        qg__conv_karg_at(&a, ws, t_extra);
        qg__karg_tensor(&a, bias ? bias : ws); /* not read without bias */
        qg__karg_int(&a, bias != NULL);
        qg__karg_int(&a, d->K);
        qg__karg_int(&a, (int)PQ);
        qg__karg_int(&a, cnt);
        qg__conv_karg_at(&a, y, (size_t)n0 * K * PQ);
        QG_TRY(launch2d(&a, PQ, (size_t)cnt * K, wg));
    }
    return QG_OK;
fail:
    return st;
}

qg_status qg__conv_gemm_bwd_data(const qg_conv_plan *pl, const qg_tensor *dy,
                                 const qg_tensor *w, qg_tensor *dx, qg_tensor *ws,
                                 int accumulate)
{
    qg_ctx *ctx = pl->ctx;
    const qg_conv_desc *d = &pl->d;
    const size_t G = (size_t)d->groups, Cg = (size_t)d->C / G, Kg = (size_t)d->K / G;
    const size_t PQ = (size_t)d->P * d->Q, CRSg = Cg * d->R * d->S, CRS = CRSg * G;
    const size_t K = (size_t)d->K, HW = (size_t)d->H * d->W, C = (size_t)d->C;
    qg_status st = QG_OK;

    if (pl->bwd_data == QG_CONV_ROUTE_POINTWISE) {
        /* dx[n] group g (+)= W_g^T dy[n] group g, straight into dx. */
        return pointwise_gemms(ctx, d, 1, Cg, HW, Kg, qg__conv_opnd(w, 0, Cg), Kg * Cg,
                               qg__conv_opnd(dy, 0, PQ), K * PQ, Kg * PQ, accumulate ? 1.0f : 0.0f,
                               qg__conv_opnd(dx, 0, HW), C * HW, Cg * HW);
    }
    int nb = chunk_images(d, ws);
    qg_kargs a;
    size_t wg;
    for (int n0 = 0; n0 < d->N; n0 += nb) {
        int cnt = d->N - n0 < nb ? d->N - n0 : nb;
        size_t cols = (size_t)cnt * PQ, t_extra = CRS * cols;
        QG_TRY(nchw_to_cn(ctx, dy, n0, cnt, d->K, (int)PQ, ws, t_extra));
        QG_TRY(qg__gemm_batched(ctx, 1, 0, CRSg, cols, Kg, 1.0f, qg__conv_opnd(w, 0, CRSg),
                                Kg * CRSg, qg__conv_opnd(ws, t_extra, cols), Kg * cols, 0.0f,
                                qg__conv_opnd(ws, 0, cols), CRSg * cols, G));
        QG_TRY(get(ctx, QG_K_IM2COL_COL2IM, &a, &wg));
        qg__conv_karg_at(&a, ws, 0);
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
        qg__conv_karg_at(&a, dx, (size_t)n0 * C * HW);
        qg__karg_int(&a, accumulate != 0);
        QG_TRY(launch2d(&a, HW, (size_t)cnt * C, wg));
    }
    return QG_OK;
fail:
    return st;
}

qg_status qg__conv_bias_grad(qg_ctx *ctx, const qg_tensor *dy, int N, int K, int PQ,
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

qg_status qg__conv_gemm_bwd_weight(const qg_conv_plan *pl, const qg_tensor *x,
                                   const qg_tensor *dy, qg_tensor *dw, qg_tensor *dbias,
                                   qg_tensor *ws, int accumulate)
{
    qg_ctx *ctx = pl->ctx;
    const qg_conv_desc *d = &pl->d;
    const size_t G = (size_t)d->groups, Cg = (size_t)d->C / G, Kg = (size_t)d->K / G;
    const size_t PQ = (size_t)d->P * d->Q, CRSg = Cg * d->R * d->S, CRS = CRSg * G;
    qg_status st = QG_OK;
    int nb = chunk_images(d, ws);
    for (int n0 = 0; n0 < d->N; n0 += nb) {
        int cnt = d->N - n0 < nb ? d->N - n0 : nb;
        size_t cols = (size_t)cnt * PQ, t_extra = CRS * cols;
        float beta = n0 > 0 || accumulate ? 1.0f : 0.0f;
        QG_TRY(im2col(ctx, d, x, n0, cnt, ws));
        QG_TRY(nchw_to_cn(ctx, dy, n0, cnt, d->K, (int)PQ, ws, t_extra));
        QG_TRY(qg__gemm_batched(ctx, 0, 1, Kg, CRSg, cols, 1.0f, qg__conv_opnd(ws, t_extra, cols),
                                Kg * cols, qg__conv_opnd(ws, 0, cols), CRSg * cols, beta,
                                qg__conv_opnd(dw, 0, CRSg), Kg * CRSg, G));
    }
    if (dbias)
        QG_TRY(qg__conv_bias_grad(ctx, dy, d->N, d->K, (int)PQ, dbias, accumulate));
    return QG_OK;
fail:
    return st;
}
