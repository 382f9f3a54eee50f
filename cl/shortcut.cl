/* cl/shortcut.cl: option-A residual shortcut of the CIFAR ResNets (He et
 * al.; docs/methods.md §2.6, ResNet-20): subsample x by `stride` in both
 * spatial dimensions and zero-pad the channels, pad_c = (K - C)/2 on each
 * side. Launchers: src/ops/shortcut.c; C twins: src/ref/ref_layers.c
 * (qg_ref_shortcut_a_*); tests: tests/test_pool.c.
 *
 * Layout: x, dx [N][C][H][W]; y, dy [N][K][P][Q], P = ceil(H/stride),
 * Q = ceil(W/stride).
 *   fwd: y[n,k,p,q] (+)= x[n, k - pad_c, p*stride, q*stride] for
 *        pad_c <= k < pad_c + C, else 0 (nothing to add when accumulating).
 *   bwd: dx[n,c,h,w] (+)= dy[n, c + pad_c, h/stride, w/stride] when h and w
 *        are multiples of stride, else 0.
 *
 * Tunables:
 *   WG   work-group size (power of two) the host launches with.
 *   ROW  0: one item per element (GPU-friendly); 1: one item per row of
 *        the output (fwd: Q values, bwd: W values), so the index
 *        arithmetic's integer divisions run once per row instead of once
 *        per element (they dominate on CPUs, which lack vector division);
 *        2: one item per plane of the output, walking it with strides and
 *        no division at all; an accumulating backward then visits only
 *        the positions the subsample took (the others add 0). */
#ifndef WG
#define WG 64
#endif
#ifndef ROW
#define ROW 0
#endif
#if ROW < 0 || ROW > 2
#error "ROW must be 0, 1 or 2"
#endif

/* Items: N*K*P*Q (ROW 0), N*K*P (ROW 1) or N*K (ROW 2). */
__kernel void qg_shortcut_a_fwd(QG_T(const float, x), int N, int C, int H, int W, int K, int P,
                                int Q, int stride, int pad_c, QG_T(float, y), int accumulate)
{
    int i = get_global_id(0);
#if ROW == 2
    if (i >= N * K)
        return;
    int k = i % K, n = i / K, c = k - pad_c;
    __global float *yp = QG_P(y) + (size_t)i * P * Q;
    if (c < 0 || c >= C) {
        if (!accumulate)
            for (int j = 0; j < P * Q; j++)
                yp[j] = 0.0f;
        return;
    }
    __global const float *xp = QG_P(x) + (size_t)(n * C + c) * H * W;
    for (int p = 0; p < P; p++, yp += Q, xp += stride * W)
        for (int q = 0; q < Q; q++)
            yp[q] = accumulate ? yp[q] + xp[q * stride] : xp[q * stride];
#else
#if ROW
    if (i >= N * K * P)
        return;
    int p = i % P, k = (i / P) % K, n = i / (K * P), q0 = 0, q1 = Q;
#else
    if (i >= N * K * P * Q)
        return;
    int q0 = i % Q, q1 = q0 + 1, p = (i / Q) % P, k = (i / (P * Q)) % K, n = i / (K * P * Q);
#endif
    int c = k - pad_c, inside = c >= 0 && c < C;
    __global float *yr = QG_P(y) + ((n * K + k) * P + p) * Q;
    __global const float *xr = QG_P(x) + ((n * C + (inside ? c : 0)) * H + p * stride) * W;
    for (int q = q0; q < q1; q++) {
        float v = inside ? xr[q * stride] : 0.0f;
        yr[q] = accumulate ? yr[q] + v : v;
    }
#endif
}

/* Items: N*C*H*W (ROW 0), N*C*H (ROW 1) or N*C (ROW 2). */
__kernel void qg_shortcut_a_bwd(QG_T(const float, dy), int N, int C, int H, int W, int K, int P,
                                int Q, int stride, int pad_c, QG_T(float, dx), int accumulate)
{
    int i = get_global_id(0);
#if ROW == 2
    if (i >= N * C)
        return;
    int c = i % C, n = i / C;
    __global float *xp = QG_P(dx) + (size_t)i * H * W;
    __global const float *yp = QG_P(dy) + (size_t)(n * K + c + pad_c) * P * Q;
    if (!accumulate)
        for (int j = 0; j < H * W; j++)
            xp[j] = 0.0f;
    for (int h = 0; h < H; h += stride, xp += stride * W, yp += Q)
        for (int q = 0; q < Q; q++)
            xp[q * stride] += yp[q];
#else
#if ROW
    if (i >= N * C * H)
        return;
    int h = i % H, c = (i / H) % C, n = i / (C * H), w0 = 0, w1 = W;
#else
    if (i >= N * C * H * W)
        return;
    int w0 = i % W, w1 = w0 + 1, h = (i / W) % H, c = (i / (H * W)) % C, n = i / (C * H * W);
#endif
    int hit = h % stride == 0;
    __global float *xr = QG_P(dx) + ((n * C + c) * H + h) * W;
    __global const float *yr = QG_P(dy) + ((n * K + c + pad_c) * P + h / stride) * Q;
    for (int w = w0; w < w1; w++) {
        float v = hit && w % stride == 0 ? yr[w / stride] : 0.0f;
        xr[w] = accumulate ? xr[w] + v : v;
    }
#endif
}
