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
 *   WG  work-group size (power of two) the host launches with. */
#ifndef WG
#define WG 64
#endif

/* One item per output element: global = N*K*P*Q. */
__kernel void qg_shortcut_a_fwd(QG_T(const float, x), int N, int C, int H, int W, int K, int P,
                                int Q, int stride, int pad_c, QG_T(float, y), int accumulate)
{
    int i = get_global_id(0);
    if (i >= N * K * P * Q)
        return;
    int q = i % Q, p = (i / Q) % P, k = (i / (P * Q)) % K, n = i / (K * P * Q);
    int c = k - pad_c;
    float v = 0.0f;
    if (c >= 0 && c < C)
        v = QG_P(x)[((n * C + c) * H + p * stride) * W + q * stride];
    QG_P(y)[i] = accumulate ? QG_P(y)[i] + v : v;
}

/* One item per input element: global = N*C*H*W. */
__kernel void qg_shortcut_a_bwd(QG_T(const float, dy), int N, int C, int H, int W, int K, int P,
                                int Q, int stride, int pad_c, QG_T(float, dx), int accumulate)
{
    int i = get_global_id(0);
    if (i >= N * C * H * W)
        return;
    int w = i % W, h = (i / W) % H, c = (i / (H * W)) % C, n = i / (C * H * W);
    float v = 0.0f;
    if (h % stride == 0 && w % stride == 0)
        v = QG_P(dy)[((n * K + c + pad_c) * P + h / stride) * Q + w / stride];
    QG_P(dx)[i] = accumulate ? QG_P(dx)[i] + v : v;
}
