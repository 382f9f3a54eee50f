/* cl/im2col.cl: lowering of 2-D convolution to GEMM (im2col, col2im) and
 * the small layout and bias kernels around the GEMMs of conv and linear.
 * Host side: src/ops/conv_gemm.c, src/ops/linear.c; C twins:
 * src/ref/ref_conv.c; tests: tests/test_conv.c.
 *
 * Layouts. A chunk of nb images x[nb][C][H][W] lowers to the column matrix
 * col[C*R*S][nb*P*Q]: row (c*R + r)*S + s, column n*P*Q + p*Q + q holds
 * x[n][c][p*stride - pad + r][q*stride - pad + s], 0 outside the image.
 * Putting the images side by side along the columns makes one GEMM cover
 * the whole chunk (and lets the weight gradient reduce over the images
 * inside the GEMM). Groups need no case of their own: group g's rows are
 * the contiguous block [g*(C/groups)*R*S, (g+1)*(C/groups)*R*S). GEMM
 * results in this "CN" order, t[K][nb*P*Q], move to NCHW with
 * cn_to_nchw, and NCHW gradients move to CN with nchw_to_cn.
 *
 * Tunables:
 *   WG  work-group size along dimension 0, power of two in 1..1024. Every
 *       kernel guards its indices, so any valid value gives the same
 *       result (bias_grad's tree changes only the summation order). */
#ifndef WG
#define WG 64
#endif
#if (WG & (WG - 1)) != 0 || WG < 1 || WG > 1024
#error "WG must be a power of two in 1..1024"
#endif

/* col[C*R*S][nb*P*Q] from x[nb][C][H][W]. Range (nb*P*Q, C*R*S): adjacent
 * items write adjacent columns. */
__kernel void qg_im2col_im2col(QG_T(const float, x), int C, int H, int W, int R, int S,
                               int stride, int pad, int P, int Q, int nb, QG_T(float, col))
{
    int j = get_global_id(0);
    int row = get_global_id(1);
    int PQ = P * Q;
    if (j >= nb * PQ || row >= C * R * S)
        return;
    int n = j / PQ, pq = j - n * PQ;
    int p = pq / Q, q = pq - p * Q;
    int t = row / S, s = row - t * S;
    int c = t / R, r = t - c * R;
    int h = p * stride - pad + r, w = q * stride - pad + s;
    float v = 0.0f;
    if (h >= 0 && h < H && w >= 0 && w < W)
        v = QG_P(x)[((n * C + c) * H + h) * W + w];
    QG_P(col)[row * (nb * PQ) + j] = v;
}

/* dx[n][c][h][w] (= or += when accumulate) the sum of every col entry
 * that im2col copied from x[n][c][h][w]. Each item gathers its own pixel's
 * taps, so no two items write the same element and no atomics are needed.
 * Range (H*W, nb*C): adjacent items write adjacent pixels. */
__kernel void qg_im2col_col2im(QG_T(const float, col), int C, int H, int W, int R, int S,
                               int stride, int pad, int P, int Q, int nb, QG_T(float, dx),
                               int accumulate)
{
    int hw = get_global_id(0);
    int nc = get_global_id(1);
    if (hw >= H * W || nc >= nb * C)
        return;
    int n = nc / C, c = nc - n * C;
    int h = hw / W, w = hw - h * W;
    int PQ = P * Q, ld = nb * PQ;
    __global const float *base = QG_P(col) + n * PQ;
    float acc = 0.0f;
    for (int r = 0; r < R; r++) {
        int tp = h + pad - r;
        if (tp < 0)
            break;
        if (tp % stride != 0 || tp / stride >= P)
            continue;
        int p = tp / stride;
        for (int s = 0; s < S; s++) {
            int tq = w + pad - s;
            if (tq < 0)
                break;
            if (tq % stride != 0 || tq / stride >= Q)
                continue;
            acc += base[((c * R + r) * S + s) * ld + p * Q + tq / stride];
        }
    }
    __global float *o = QG_P(dx) + nc * H * W + hw;
    *o = accumulate ? *o + acc : acc;
}

/* dst[k][n*PQ + pq] = src[n][k][pq] for n < nb. Range (PQ, nb*K). */
__kernel void qg_im2col_nchw_to_cn(QG_T(const float, src), int K, int PQ, int nb,
                                   QG_T(float, dst))
{
    int pq = get_global_id(0);
    int nk = get_global_id(1);
    if (pq >= PQ || nk >= nb * K)
        return;
    int n = nk / K, k = nk - n * K;
    QG_P(dst)[(k * nb + n) * PQ + pq] = QG_P(src)[nk * PQ + pq];
}

/* dst[n][k][pq] = src[k][n*PQ + pq] (+ bias[k] when has_bias; bias is
 * not read otherwise). Range (PQ, nb*K). */
__kernel void qg_im2col_cn_to_nchw(QG_T(const float, src), QG_T(const float, bias),
                                   int has_bias, int K, int PQ, int nb, QG_T(float, dst))
{
    int pq = get_global_id(0);
    int nk = get_global_id(1);
    if (pq >= PQ || nk >= nb * K)
        return;
    int n = nk / K, k = nk - n * K;
    float v = QG_P(src)[(k * nb + n) * PQ + pq];
    QG_P(dst)[nk * PQ + pq] = has_bias ? v + QG_P(bias)[k] : v;
}

/* y[n][k][pq] += bias[k] over the n*K*PQ elements (linear: PQ = 1). */
__kernel void qg_im2col_bias_add(QG_T(float, y), QG_T(const float, bias), int K, int PQ, int n)
{
    int i = get_global_id(0);
    if (i < n)
        QG_P(y)[i] += QG_P(bias)[(i / PQ) % K];
}

/* db[k] (= or += when accumulate) sum over n, pq of dy[n][k][pq]. One
 * work-group per channel, global = K*WG; the partial sums combine through
 * a local-memory tree. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_im2col_bias_grad(QG_T(const float, dy), int N, int K, int PQ, QG_T(float, db),
                         int accumulate)
{
    __local float acc[WG];
    int k = get_group_id(0);
    int l = get_local_id(0);
    float s = 0.0f;
    for (int i = l; i < N * PQ; i += WG) {
        int n = i / PQ, pq = i - n * PQ;
        s += QG_P(dy)[(n * K + k) * PQ + pq];
    }
    acc[l] = s;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int w = WG / 2; w > 0; w >>= 1) {
        if (l < w)
            acc[l] += acc[l + w];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (l == 0)
        QG_P(db)[k] = accumulate ? QG_P(db)[k] + acc[0] : acc[0];
}
