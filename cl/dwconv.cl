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
 * Out-of-range x are zero padding.
 *
 * Tunables:
 *   WG   work-group size of fwd and dgrad (power of two).
 *   QT   outputs of one row per work-item (fwd: y, dgrad: dx), 1..8;
 *        neighbouring outputs share the x (dy) loads of their windows.
 *   WWG  wgrad work-group size (power of two): one group per channel
 *        walks all N*P*Q positions and reduces 10 sums in local memory,
 *        in a fixed order (deterministic). */
#ifndef WG
#define WG 64
#endif
#ifndef QT
#define QT 1
#endif
#ifndef WWG
#define WWG 64
#endif
#if QT < 1 || QT > 8
#error "QT must be in 1..8"
#endif
#if (WWG & (WWG - 1)) != 0 || WWG < 16
#error "WWG must be a power of two >= 16 (items 0..9 write the sums)"
#endif

/* global = N*C*P*ceil(Q/QT). */
__kernel void qg_dw_fwd(QG_T(const float, x), QG_T(const float, w), QG_T(const float, bias),
                        int has_bias, int C, int H, int W, int P, int Q, int stride, int pad,
                        int total, QG_T(float, y))
{
    int g = get_global_id(0);
    if (g >= total)
        return;
    int QB = (Q + QT - 1) / QT;
    int q0 = (g % QB) * QT, p = (g / QB) % P, nc = g / (QB * P), c = nc % C;
    __global const float *wc = QG_P(w) + c * 9;
    float w0 = wc[0], w1 = wc[1], w2 = wc[2], w3 = wc[3], w4 = wc[4], w5 = wc[5], w6 = wc[6],
          w7 = wc[7], w8 = wc[8];
    float b = has_bias ? QG_P(bias)[c] : 0.0f;
    __global const float *xp = QG_P(x) + (size_t)nc * H * W;
    __global float *yp = QG_P(y) + ((size_t)nc * P + p) * Q;
    int h0 = p * stride - pad;
    float acc[QT];
    for (int t = 0; t < QT; t++)
        acc[t] = b;
    for (int i = 0; i < 3; i++) {
        int h = h0 + i;
        if (h < 0 || h >= H)
            continue;
        float k0 = i == 0 ? w0 : i == 1 ? w3 : w6;
        float k1 = i == 0 ? w1 : i == 1 ? w4 : w7;
        float k2 = i == 0 ? w2 : i == 1 ? w5 : w8;
        __global const float *row = xp + h * W;
        for (int t = 0; t < QT; t++) {
            int v0 = (q0 + t) * stride - pad;
            float a = v0 >= 0 && v0 < W ? row[v0] : 0.0f;
            float m = v0 + 1 >= 0 && v0 + 1 < W ? row[v0 + 1] : 0.0f;
            float z = v0 + 2 >= 0 && v0 + 2 < W ? row[v0 + 2] : 0.0f;
            acc[t] += k0 * a + k1 * m + k2 * z;
        }
    }
    for (int t = 0; t < QT; t++)
        if (q0 + t < Q)
            yp[q0 + t] = acc[t];
}

/* global = N*C*H*ceil(W/QT). */
__kernel void qg_dw_bwd_data(QG_T(const float, dy), QG_T(const float, w), int C, int H, int W,
                             int P, int Q, int stride, int pad, int total, int accumulate,
                             QG_T(float, dx))
{
    int g = get_global_id(0);
    if (g >= total)
        return;
    int VB = (W + QT - 1) / QT;
    int v0 = (g % VB) * QT, h = (g / VB) % H, nc = g / (VB * H), c = nc % C;
    __global const float *wc = QG_P(w) + c * 9;
    __global const float *gp = QG_P(dy) + (size_t)nc * P * Q;
    __global float *dp = QG_P(dx) + ((size_t)nc * H + h) * W;
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

/* One work-group of WWG items per channel: global = C*WWG, local = WWG. */
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
    int PQ = P * Q, total = N * PQ;
    for (int idx = l; idx < total; idx += WWG) {
        int n = idx / PQ, r = idx % PQ, p = r / Q, q = r % Q;
        float gv = QG_P(dy)[((size_t)(n * C + c)) * PQ + r];
        __global const float *xp = QG_P(x) + (size_t)(n * C + c) * H * W;
        int h0 = p * stride - pad, v0 = q * stride - pad;
        for (int i = 0; i < 3; i++) {
            int h = h0 + i;
            if (h < 0 || h >= H)
                continue;
            for (int j = 0; j < 3; j++) {
                int v = v0 + j;
                if (v >= 0 && v < W)
                    s[i * 3 + j] += gv * xp[h * W + v];
            }
        }
        s[9] += gv;
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
