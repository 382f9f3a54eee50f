/* cl/dwconv.cl: depthwise 3x3 convolution (one filter per channel, as in
 * MobileNet / ShuffleNet), forward, data gradient and weight (+ bias)
 * gradient. Launchers: src/ops/dwconv.c; C twin: src/ref/ref_dwconv.c;
 * tests: tests/test_dwconv.c; bandwidth: bench/bench_dwconv.c.
 *
 * Layout: x, dx [N][C][H][W]; y, dy [N][C][P][Q]; w, dw [C][3][3];
 * bias, db [C]. P = (H + 2*pad - 3)/stride + 1, Q likewise.
 *   y[n,c,p,q]  = bias[c] + sum_{i,j<3} w[c,i,j] * x[n,c,p*s-pad+i, q*s-pad+j]
 *   dx[n,c,h,v] = sum over (i,j) with (h+pad-i) % s == 0, (v+pad-j) % s == 0
 *                 of w[c,i,j] * dy[n,c,(h+pad-i)/s,(v+pad-j)/s] (in range)
 *   dw[c,i,j]   = sum_{n,p,q} dy[n,c,p,q] * x[n,c,p*s-pad+i, q*s-pad+j]
 *   db[c]       = sum_{n,p,q} dy[n,c,p,q]
 * Out-of-range x are zero padding. At stride 1 the data gradient is the
 * forward pass over dy with the filter turned 180 degrees and padding
 * 2 - pad, which the host launches as qg_dw_fwd with flipw = 1; the
 * gathering qg_dw_bwd_data serves the other strides.
 *
 * Tunables:
 *   WG   work-group size of fwd and dgrad (power of two).
 *   QT   ROW 0: outputs of one row per work-item (fwd: y, dgrad: dx),
 *        1..8; ROW 1: whole planes (fwd) or rows (strided dgrad) per
 *        work-item, 1..64.
 *   ROW  0: 2-D launch, an item per QT outputs of a row (suits GPUs);
 *        1: 1-D launch, an item per QT whole planes (fwd) or input rows
 *        (strided dgrad), with the window's bounds checks hoisted out of
 *        the inner loop (suits CPU devices: PoCL spends tens of ns per
 *        work-item and per row set-up, so items must be big).
 *   WWG  wgrad work-group size (power of two, >= 16): one group per
 *        channel, its items over the N*P output rows, then 10 sums reduced
 *        in local memory in a fixed order (deterministic). */
#ifndef WG
#define WG 64
#endif
#ifndef QT
#define QT 1
#endif
#ifndef WWG
#define WWG 64
#endif
#ifndef ROW
#define ROW 0
#endif
#if QT < 1 || (QT > 8 && !ROW) || QT > 64
#error "QT must be in 1..8 (ROW 0) or 1..64 (ROW 1)"
#endif
#if (WWG & (WWG - 1)) != 0 || WWG < 16
#error "WWG must be a power of two >= 16 (items 0..9 write the sums)"
#endif

/* Loads x[v] of a row, or 0 outside [0, W). */
#define XAT(row, v, W) ((v) >= 0 && (v) < (W) ? (row)[v] : 0.0f)

#if !ROW

/* x[v] of a row of W as a clamped load times an in-range mask: no
 * branch, so neighbouring items vectorise on CPU compilers. */
#define XM(row, v, W) ((row)[clamp((v), 0, (W) - 1)] * (float)((v) >= 0 && (v) < (W)))

/* 2-D launch: dimension 0 = blocks of QT outputs along q (global 0 =
 * ceil(Q/QT) rounded up to the work-group), dimension 1 = the output row
 * r = (n*C + c)*P + p (global 1 = N*C*P). Rows outside the image read a
 * valid row with zero weights; columns are clamped and masked. */
__kernel void qg_dw_fwd(QG_T(const float, x), QG_T(const float, w), QG_T(const float, bias),
                        int has_bias, int C, int H, int W, int P, int Q, int stride, int pad,
                        int flipw, int accumulate, int rows, QG_T(float, y))
{
    int q0 = get_global_id(0) * QT, r = get_global_id(1);
    int p = r % P, nc = r / P, c = nc % C;
    __global const float *wc = QG_P(w) + c * 9;
    __global const float *xp = QG_P(x) + (size_t)nc * H * W;
    int h0 = p * stride - pad;
    /* Row weights, zero for rows outside the image (read row 0 instead). */
    float m0 = h0 >= 0 && h0 < H, m1 = h0 + 1 >= 0 && h0 + 1 < H, m2 = h0 + 2 < H;
    __global const float *r0 = xp + (m0 != 0.0f ? h0 : 0) * W;
    __global const float *r1 = xp + (m1 != 0.0f ? h0 + 1 : 0) * W;
    __global const float *r2 = xp + (m2 != 0.0f ? h0 + 2 : 0) * W;
    float k0 = wc[flipw ? 8 : 0] * m0, k1 = wc[flipw ? 7 : 1] * m0, k2 = wc[flipw ? 6 : 2] * m0;
    float k3 = wc[flipw ? 5 : 3] * m1, k4 = wc[4] * m1, k5 = wc[flipw ? 3 : 5] * m1;
    float k6 = wc[flipw ? 2 : 6] * m2, k7 = wc[flipw ? 1 : 7] * m2, k8 = wc[flipw ? 0 : 8] * m2;
    float b = has_bias ? QG_P(bias)[c] : 0.0f;
    __global float *yp = QG_P(y) + (size_t)r * Q;
    for (int t = 0; t < QT; t++) {
        int q = q0 + t, v = q * stride - pad;
        float acc = b + k0 * XM(r0, v, W) + k1 * XM(r0, v + 1, W) + k2 * XM(r0, v + 2, W) +
                    k3 * XM(r1, v, W) + k4 * XM(r1, v + 1, W) + k5 * XM(r1, v + 2, W) +
                    k6 * XM(r2, v, W) + k7 * XM(r2, v + 1, W) + k8 * XM(r2, v + 2, W);
        if (q < Q)
            yp[q] = accumulate ? yp[q] + acc : acc;
    }
}

/* Strides above 1 (stride 1 runs qg_dw_fwd, see the banner). 2-D launch:
 * dimension 0 = blocks of QT along the input row (global 0 = ceil(W/QT)
 * rounded up), dimension 1 = the input row (n*C + c)*H + h. */
__kernel void qg_dw_bwd_data(QG_T(const float, dy), QG_T(const float, w), int C, int H, int W,
                             int P, int Q, int stride, int pad, int accumulate, int rows,
                             QG_T(float, dx))
{
    int v0 = get_global_id(0) * QT, r = get_global_id(1);
    if (v0 >= W)
        return;
    int h = r % H, nc = r / H, c = nc % C;
    __global const float *wc = QG_P(w) + c * 9;
    __global const float *gp = QG_P(dy) + (size_t)nc * P * Q;
    __global float *dp = QG_P(dx) + (size_t)r * W;
    float acc[QT];
    for (int t = 0; t < QT; t++)
        acc[t] = 0.0f;
    for (int i = 0; i < 3; i++) {
        int ph = h + pad - i;
        if (ph < 0 || ph % stride)
            continue;
        int p = ph / stride;
        if (p >= P)
            continue;
        __global const float *row = gp + p * Q;
        for (int t = 0; t < QT; t++) {
            int v = v0 + t;
            for (int j = 0; j < 3; j++) {
                int qv = v + pad - j;
                if (qv < 0 || qv % stride)
                    continue;
                int q = qv / stride;
                if (q < Q)
                    acc[t] += wc[i * 3 + j] * row[q];
            }
        }
    }
    for (int t = 0; t < QT; t++)
        if (v0 + t < W) {
            int o = v0 + t;
            dp[o] = accumulate ? dp[o] + acc[t] : acc[t];
        }
}

#else /* ROW */

/* One output row: y[q] (+)= b + sum of the nine products, with rows
 * r0..r2 (weights already zero for rows outside the image). Columns
 * qa <= q < qb have their whole window inside [0, W); the interior loop
 * has no bounds checks so the compiler can vectorise it. */
static void dw_row(__global const float *r0, __global const float *r1,
                   __global const float *r2, float k0, float k1, float k2, float k3, float k4,
                   float k5, float k6, float k7, float k8, float b, int W, int Q, int stride,
                   int pad, int qa, int qb, int accumulate, __global float *yp)
{
    for (int q = 0; q < Q; q++) {
        if (q == qa && qa < qb) {
            if (stride == 1) {
                /* four outputs at a time in vector lanes (each lane sums in
                 * the scalar order, so the results are the same), then the
                 * rest */
                __global const float *a0 = r0 - pad, *a1 = r1 - pad, *a2 = r2 - pad;
                int u = qa;
                for (; u + 4 <= qb; u += 4) {
                    float4 acc = b + k0 * vload4(0, a0 + u) + k1 * vload4(0, a0 + u + 1) +
                                 k2 * vload4(0, a0 + u + 2) + k3 * vload4(0, a1 + u) +
                                 k4 * vload4(0, a1 + u + 1) + k5 * vload4(0, a1 + u + 2) +
                                 k6 * vload4(0, a2 + u) + k7 * vload4(0, a2 + u + 1) +
                                 k8 * vload4(0, a2 + u + 2);
                    vstore4(accumulate ? vload4(0, yp + u) + acc : acc, 0, yp + u);
                }
                for (; u < qb; u++) {
                    float acc = b + k0 * a0[u] + k1 * a0[u + 1] + k2 * a0[u + 2] +
                                k3 * a1[u] + k4 * a1[u + 1] + k5 * a1[u + 2] + k6 * a2[u] +
                                k7 * a2[u + 1] + k8 * a2[u + 2];
                    yp[u] = accumulate ? yp[u] + acc : acc;
                }
            } else {
                for (int u = qa; u < qb; u++) {
                    int v = u * stride - pad;
                    float acc = b + k0 * r0[v] + k1 * r0[v + 1] + k2 * r0[v + 2] + k3 * r1[v] +
                                k4 * r1[v + 1] + k5 * r1[v + 2] + k6 * r2[v] + k7 * r2[v + 1] +
                                k8 * r2[v + 2];
                    yp[u] = accumulate ? yp[u] + acc : acc;
                }
            }
            q = qb - 1;
            continue;
        }
        int v = q * stride - pad;
        float acc = b + k0 * XAT(r0, v, W) + k1 * XAT(r0, v + 1, W) + k2 * XAT(r0, v + 2, W) +
                    k3 * XAT(r1, v, W) + k4 * XAT(r1, v + 1, W) + k5 * XAT(r1, v + 2, W) +
                    k6 * XAT(r2, v, W) + k7 * XAT(r2, v + 1, W) + k8 * XAT(r2, v + 2, W);
        yp[q] = accumulate ? yp[q] + acc : acc;
    }
}

/* 1-D launch: one item per QT planes nc = n*C + c (global =
 * ceil(N*C / QT); rows = N*C*P). Rows of x outside the image read row 0
 * with zero weights. */
__kernel void qg_dw_fwd(QG_T(const float, x), QG_T(const float, w), QG_T(const float, bias),
                        int has_bias, int C, int H, int W, int P, int Q, int stride, int pad,
                        int flipw, int accumulate, int rows, QG_T(float, y))
{
    int planes = rows / P;
    /* Columns q with the whole window inside: qa <= q < qb. */
    int qa = (pad + stride - 1) / stride, qb = (W - 3 + pad) / stride + 1;
    qb = min(qb, Q);
    qa = min(qa, qb);
    for (int pp = 0; pp < QT; pp++) {
        int nc = get_global_id(0) * QT + pp;
        if (nc >= planes)
            return;
        int c = nc % C;
        __global const float *wc = QG_P(w) + c * 9;
        float w0 = wc[flipw ? 8 : 0], w1 = wc[flipw ? 7 : 1], w2 = wc[flipw ? 6 : 2];
        float w3 = wc[flipw ? 5 : 3], w4 = wc[4], w5 = wc[flipw ? 3 : 5];
        float w6 = wc[flipw ? 2 : 6], w7 = wc[flipw ? 1 : 7], w8 = wc[flipw ? 0 : 8];
        float b = has_bias ? QG_P(bias)[c] : 0.0f;
        __global const float *xp = QG_P(x) + (size_t)nc * H * W;
        __global float *yp = QG_P(y) + (size_t)nc * P * Q;
        for (int p = 0; p < P; p++) {
            int h0 = p * stride - pad;
            float m0 = h0 >= 0 && h0 < H, m1 = h0 + 1 >= 0 && h0 + 1 < H,
                  m2 = h0 + 2 >= 0 && h0 + 2 < H;
            __global const float *r0 = xp + (m0 != 0.0f ? h0 : 0) * W;
            __global const float *r1 = xp + (m1 != 0.0f ? h0 + 1 : 0) * W;
            __global const float *r2 = xp + (m2 != 0.0f ? h0 + 2 : 0) * W;
            dw_row(r0, r1, r2, w0 * m0, w1 * m0, w2 * m0, w3 * m1, w4 * m1, w5 * m1, w6 * m2,
                   w7 * m2, w8 * m2, b, W, Q, stride, pad, qa, qb, accumulate, yp + p * Q);
        }
    }
}

/* Strides above 1. 1-D launch: one item per QT input rows r = (n*C + c)*H
 * + h (global = ceil(N*C*H / QT)); the item owns its dx row, clears (or keeps) it, then
 * adds w[i][j] * dy[p][q] at v = q*stride - pad + j for each dy row p
 * whose window row i lands on h. */
__kernel void qg_dw_bwd_data(QG_T(const float, dy), QG_T(const float, w), int C, int H, int W,
                             int P, int Q, int stride, int pad, int accumulate, int rows,
                             QG_T(float, dx))
{
  for (int rr = 0; rr < QT; rr++) {
    int r = get_global_id(0) * QT + rr;
    if (r >= rows)
        return;
    int h = r % H, nc = r / H, c = nc % C;
    __global const float *wc = QG_P(w) + c * 9;
    __global const float *gp = QG_P(dy) + (size_t)nc * P * Q;
    __global float *dp = QG_P(dx) + (size_t)r * W;
    if (!accumulate)
        for (int v = 0; v < W; v++)
            dp[v] = 0.0f;
    for (int i = 0; i < 3; i++) {
        int ph = h + pad - i;
        if (ph < 0 || ph % stride)
            continue;
        int p = ph / stride;
        if (p >= P)
            continue;
        __global const float *g = gp + p * Q;
        float k0 = wc[3 * i], k1 = wc[3 * i + 1], k2 = wc[3 * i + 2];
        for (int q = 0; q < Q; q++) {
            int v = q * stride - pad;
            float gv = g[q];
            if (v >= 0 && v + 2 < W) {
                dp[v] += k0 * gv;
                dp[v + 1] += k1 * gv;
                dp[v + 2] += k2 * gv;
            } else {
                if (v >= 0 && v < W)
                    dp[v] += k0 * gv;
                if (v + 1 >= 0 && v + 1 < W)
                    dp[v + 1] += k1 * gv;
                if (v + 2 >= 0 && v + 2 < W)
                    dp[v + 2] += k2 * gv;
            }
        }
    }
  }
}

#endif /* ROW */

/* One work-group of WWG items per channel: global = C*WWG, local = WWG.
 * Item l takes output rows (n, p) l, l + WWG, ... and walks each row. */
__kernel __attribute__((reqd_work_group_size(WWG, 1, 1)))
void qg_dw_bwd_weight(QG_T(const float, x), QG_T(const float, dy), int N, int C, int H, int W,
                      int P, int Q, int stride, int pad, int has_bias, int accumulate,
                      QG_T(float, dw), QG_T(float, db))
{
    __local float red[10][WWG];
    int c = get_group_id(0), l = get_local_id(0);
    float s[10];
    for (int k = 0; k < 10; k++)
        s[k] = 0.0f;
    int qa = (pad + stride - 1) / stride, qb = (W - 3 + pad) / stride + 1;
    qb = min(qb, Q);
    qa = min(qa, qb);
    for (int rr = l; rr < N * P; rr += WWG) {
        int n = rr / P, p = rr % P;
        __global const float *g = QG_P(dy) + ((size_t)(n * C + c) * P + p) * Q;
        __global const float *xp = QG_P(x) + (size_t)(n * C + c) * H * W;
        for (int i = 0; i < 3; i++) {
            int h = p * stride - pad + i;
            if (h < 0 || h >= H)
                continue;
            __global const float *row = xp + h * W;
            float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f;
            /* Edge columns checked, the interior [qa, qb) not. */
            for (int q = 0; q < qa; q++) {
                float gv = g[q];
                int v0 = q * stride - pad;
                a0 += gv * XAT(row, v0, W);
                a1 += gv * XAT(row, v0 + 1, W);
                a2 += gv * XAT(row, v0 + 2, W);
            }
            if (stride == 1) {
                /* four columns at a time in vector lanes (a CPU compiler
                 * keeps a scalar sum in order, so it would not vectorise
                 * this loop itself), then the rest */
                __global const float *r = row - pad;
                float4 v0 = 0.0f, v1 = 0.0f, v2 = 0.0f;
                int q = qa;
                for (; q + 4 <= qb; q += 4) {
                    float4 gv = vload4(0, g + q);
                    v0 += gv * vload4(0, r + q);
                    v1 += gv * vload4(0, r + q + 1);
                    v2 += gv * vload4(0, r + q + 2);
                }
                a0 += (v0.x + v0.y) + (v0.z + v0.w);
                a1 += (v1.x + v1.y) + (v1.z + v1.w);
                a2 += (v2.x + v2.y) + (v2.z + v2.w);
                for (; q < qb; q++) {
                    float gv = g[q];
                    a0 += gv * r[q];
                    a1 += gv * r[q + 1];
                    a2 += gv * r[q + 2];
                }
            } else {
                for (int q = qa; q < qb; q++) {
                    float gv = g[q];
                    int v0 = q * stride - pad;
                    a0 += gv * row[v0];
                    a1 += gv * row[v0 + 1];
                    a2 += gv * row[v0 + 2];
                }
            }
            for (int q = max(qb, qa); q < Q; q++) {
                float gv = g[q];
                int v0 = q * stride - pad;
                a0 += gv * XAT(row, v0, W);
                a1 += gv * XAT(row, v0 + 1, W);
                a2 += gv * XAT(row, v0 + 2, W);
            }
            s[3 * i] += a0;
            s[3 * i + 1] += a1;
            s[3 * i + 2] += a2;
        }
        if (has_bias) {
            float gs = 0.0f;
            for (int q = 0; q < Q; q++)
                gs += g[q];
            s[9] += gs;
        }
    }
    for (int k = 0; k < 10; k++)
        red[k][l] = s[k];
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int span = WWG / 2; span > 0; span >>= 1) {
        if (l < span)
            for (int k = 0; k < 10; k++)
                red[k][l] += red[k][l + span];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (l < 9) {
        __global float *d = QG_P(dw) + c * 9 + l;
        *d = accumulate ? *d + red[l][0] : red[l][0];
    } else if (l == 9 && has_bias) {
        __global float *d = QG_P(db) + c;
        *d = accumulate ? *d + red[9][0] : red[9][0];
    }
}
