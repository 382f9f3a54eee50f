/* cl/pool.cl: max, average and global-average pooling, forward and
 * backward. Launchers: src/ops/pool.c; C twins: src/ref/ref_layers.c
 * (qg_ref_maxpool_*, qg_ref_avgpool_*, qg_ref_gap_*); tests:
 * tests/test_pool.c.
 *
 * Layout: x, dx [NC][H][W]; y, dy, argmax [NC][P][Q] with NC = N*C planes,
 * P = (H + 2*pad - k)/stride + 1 (floor, PyTorch ceil_mode=False) and the
 * same for Q. The window of output (p, q) starts at input row
 * p*stride - pad and column q*stride - pad.
 *
 *   max: y = max over the in-bounds window (padding never wins; a NaN wins
 *        as in PyTorch); argmax = h*W + w of the first maximum in row-major
 *        window order; backward routes dy to that element.
 *   avg: y = sum over the in-bounds window / (k*k) (count_include_pad);
 *        with pad <= k/2 no window reaches past the padded border, so the
 *        divisor is always k*k.
 *   gap: y[nc] = mean of the plane; dx = dy[nc] / HW.
 *
 * Max-pool backward has no window geometry (only argmax), and OpenCL 1.2
 * has no float atomics, so one work-item owns each plane and scatters in
 * output order: deterministic and identical to the C reference.
 *
 * Tunables:
 *   WG  work-group size (power of two) the host launches with. */
#ifndef WG
#define WG 64
#endif

/* One item per output element: global = NC*P*Q. */
/* Output element i of a max pool whose windows start pad_h rows above and
 * pad_w columns left of p*stride, q*stride (both kernels below): the max
 * (NaN wins, as torch's max_pool2d) and its index in the plane. */
static void max_window(__global const float *x, int i, int H, int W, int P, int Q, int k,
                       int stride, int pad_h, int pad_w, __global float *y,
                       __global int *argmax)
{
    int q = i % Q, p = (i / Q) % P, nc = i / (P * Q);
    __global const float *plane = x + nc * H * W;
    int h0 = p * stride - pad_h, w0 = q * stride - pad_w;
    float m = -INFINITY;
    int am = -1;
    for (int h = max(h0, 0); h < min(h0 + k, H); h++)
        for (int w = max(w0, 0); w < min(w0 + k, W); w++) {
            float v = plane[h * W + w];
            if (am < 0 || v > m || isnan(v)) {
                m = v;
                am = h * W + w;
                if (isnan(v))
                    goto done;
            }
        }
done:
    y[i] = m;
    argmax[i] = am;
}

__kernel void qg_pool_max_fwd(QG_T(const float, x), int NC, int H, int W, int P, int Q, int k,
                              int stride, int pad, QG_T(float, y), QG_T(int, argmax))
{
    int i = get_global_id(0);
    if (i < NC * P * Q)
        max_window(QG_P(x), i, H, W, P, Q, k, stride, pad, pad, QG_P(y), QG_P(argmax));
}

/* dx = 0 before the scatter: global = NC*H*W. */
__kernel void qg_pool_zero(QG_T(float, dx), int n)
{
    int i = get_global_id(0);
    if (i < n)
        QG_P(dx)[i] = 0.0f;
}

/* One item per plane (global = NC): dx[argmax] += dy in output order. */
__kernel void qg_pool_max_bwd(QG_T(const float, dy), QG_T(const int, argmax), int NC, int PQ,
                              int HW, QG_T(float, dx))
{
    int nc = get_global_id(0);
    if (nc >= NC)
        return;
    __global const float *g = QG_P(dy) + nc * PQ;
    __global const int *a = QG_P(argmax) + nc * PQ;
    __global float *d = QG_P(dx) + nc * HW;
    for (int j = 0; j < PQ; j++) {
        int at = a[j];
        if (at >= 0 && at < HW)
            d[at] += g[j];
    }
}

/* One item per output element: global = NC*P*Q. */
__kernel void qg_pool_avg_fwd(QG_T(const float, x), int NC, int H, int W, int P, int Q, int k,
                              int stride, int pad, QG_T(float, y))
{
    int i = get_global_id(0);
    if (i >= NC * P * Q)
        return;
    int q = i % Q, p = (i / Q) % P, nc = i / (P * Q);
    __global const float *plane = QG_P(x) + nc * H * W;
    int h0 = p * stride - pad, w0 = q * stride - pad;
    float s = 0.0f;
    for (int h = max(h0, 0); h < min(h0 + k, H); h++)
        for (int w = max(w0, 0); w < min(w0 + k, W); w++)
            s += plane[h * W + w];
    QG_P(y)[i] = s / (float)(k * k);
}

/* One item per input element (global = NC*H*W) gathering the outputs
 * whose window covers it: p in [ceil((h+pad-k+1)/stride), (h+pad)/stride]. */
__kernel void qg_pool_avg_bwd(QG_T(const float, dy), int NC, int H, int W, int P, int Q, int k,
                              int stride, int pad, QG_T(float, dx))
{
    int i = get_global_id(0);
    if (i >= NC * H * W)
        return;
    int w = i % W, h = (i / W) % H, nc = i / (H * W);
    __global const float *g = QG_P(dy) + nc * P * Q;
    int p0 = h + pad < k ? 0 : (h + pad - k) / stride + 1;
    int p1 = min((h + pad) / stride + 1, P);
    int q0 = w + pad < k ? 0 : (w + pad - k) / stride + 1;
    int q1 = min((w + pad) / stride + 1, Q);
    float s = 0.0f;
    for (int p = p0; p < p1; p++)
        for (int q = q0; q < q1; q++)
            s += g[p * Q + q];
    QG_P(dx)[i] = s / (float)(k * k);
}

/* One item per plane: global = NC. */
__kernel void qg_pool_gap_fwd(QG_T(const float, x), int NC, int HW, QG_T(float, y))
{
    int nc = get_global_id(0);
    if (nc >= NC)
        return;
    __global const float *plane = QG_P(x) + nc * HW;
    float s = 0.0f;
    for (int j = 0; j < HW; j++)
        s += plane[j];
    QG_P(y)[nc] = s / (float)HW;
}

/* One item per input element: global = NC*HW. */
__kernel void qg_pool_gap_bwd(QG_T(const float, dy), int NC, int HW, QG_T(float, dx))
{
    int i = get_global_id(0);
    if (i < NC * HW)
        QG_P(dx)[i] = QG_P(dy)[i / HW] / (float)HW;
}

/* Max pool with TensorFlow 'SAME' padding: P = ceil(H/stride), and the
 * window of (p, q) starts at row p*stride - pad_h, column q*stride - pad_w
 * with pad_h = max((P-1)*stride + k - H, 0) / 2 (the smaller half on top;
 * the rest falls past the bottom edge) and pad_w likewise. Otherwise as
 * qg_pool_max_fwd, whose backward (qg_pool_max_bwd via argmax) serves it.
 * One item per output element: global = NC*P*Q. */
__kernel void qg_pool_max_same_fwd(QG_T(const float, x), int NC, int H, int W, int P, int Q,
                                   int k, int stride, int pad_h, int pad_w, QG_T(float, y),
                                   QG_T(int, argmax))
{
    int i = get_global_id(0);
    if (i < NC * P * Q)
        max_window(QG_P(x), i, H, W, P, Q, k, stride, pad_h, pad_w, QG_P(y), QG_P(argmax));
}
