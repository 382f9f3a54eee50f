/* cl/shortcut.cl: option-A residual shortcut of the CIFAR ResNets (He et
 * al.; spec/algorithms.md, ResNet-20): subsample x by `stride` in both
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
 *   WG  work-group size (power of two) the host launches with (items are
 *       rows). */
#ifndef WG
#define WG 64
#endif

/* One item per output row (n, k, p): global = N*K*P. Rows, not elements:
 * per-element items spend more on index division than on the copy. */
__kernel void qg_shortcut_a_fwd(QG_T(const float, x), int N, int C, int H, int W, int K, int P,
                                int Q, int stride, int pad_c, QG_T(float, y), int accumulate)
{
    int row = get_global_id(0);
    if (row >= N * K * P)
        return;
    int p = row % P, nk = row / P;
    int k = nk % K, n = nk / K;
    int c = k - pad_c;
    __global float *yr = QG_P(y) + (size_t)row * Q;
    if (c < 0 || c >= C) {
        if (!accumulate)
            for (int q = 0; q < Q; q++)
                yr[q] = 0.0f;
        return;
    }
    __global const float *xr = QG_P(x) + ((size_t)(n * C + c) * H + p * stride) * W;
    for (int q = 0; q < Q; q++)
        yr[q] = accumulate ? yr[q] + xr[q * stride] : xr[q * stride];
}

/* One item per input row (n, c, h): global = N*C*H. */
__kernel void qg_shortcut_a_bwd(QG_T(const float, dy), int N, int C, int H, int W, int K, int P,
                                int Q, int stride, int pad_c, QG_T(float, dx), int accumulate)
{
    int row = get_global_id(0);
    if (row >= N * C * H)
        return;
    int h = row % H, nc = row / H;
    int c = nc % C, n = nc / C;
    __global float *xr = QG_P(dx) + (size_t)row * W;
    if (h % stride != 0) {
        if (!accumulate)
            for (int w = 0; w < W; w++)
                xr[w] = 0.0f;
        return;
    }
    __global const float *dr = QG_P(dy) + ((size_t)(n * K + c + pad_c) * P + h / stride) * Q;
    for (int w = 0; w < W; w++) {
        float v = w % stride == 0 ? dr[w / stride] : 0.0f;
        xr[w] = accumulate ? xr[w] + v : v;
    }
}
