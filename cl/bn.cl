/* cl/bn.cl: batch normalisation (PyTorch BatchNorm2d semantics), forward
 * in training and eval mode and backward. Launchers: src/ops/bn.c; C twins:
 * src/ref/ref_layers.c (qg_ref_bn_*); tests: tests/test_bn.c.
 *
 * Layout: x, y, dy, dx are [N][C][HW] (HW = 1 for rank-2 [N, C] input);
 * gamma, beta, running and saved statistics are [C].
 *
 * Math (n = N*HW per channel):
 *   train: mean = sum x / n, var = sum (x - mean)^2 / n (biased, two
 *          passes: more accurate than E[x^2] - mean^2 when |mean| >> std),
 *          invstd = 1/sqrt(var + eps), y = (x - mean)*invstd*gamma + beta,
 *          running_mean = (1-m)*running_mean + m*mean,
 *          running_var  = (1-m)*running_var  + m*var*n/(n-1) (unbiased).
 *   eval:  the same normalisation with the running statistics.
 *   bwd:   xhat = (x - mean)*invstd, dbeta = sum dy, dgamma = sum dy*xhat,
 *          dx = gamma*invstd/n * (n*dy - dbeta - xhat*dgamma).
 * The train and backward kernels give one work-group to each channel and
 * reduce through a local-memory tree, so their summation order differs
 * from the double-precision C reference; tests allow for that.
 *
 * Tunables:
 *   WG  work-group size, power of two in 1..1024. */
#ifndef WG
#define WG 256
#endif
#if (WG & (WG - 1)) != 0 || WG < 1 || WG > 1024
#error "WG must be a power of two in 1..1024"
#endif

/* Sum of v over the work-group; every item gets the result. The trailing
 * barrier lets the caller reuse acc immediately. */
float bn_group_sum(__local float *acc, float v)
{
    int l = get_local_id(0);
    acc[l] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int w = WG / 2; w > 0; w >>= 1) {
        if (l < w)
            acc[l] += acc[l + w];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float r = acc[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}

/* One work-group per channel: global = C*WG. affine == 0 ignores gamma and
 * beta (bound to any buffer); track == 0 leaves the running stats alone. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_bn_fwd_train(QG_T(const float, x), int N, int C, int HW,
                     QG_T(const float, gamma), QG_T(const float, beta), int affine,
                     QG_T(float, rmean), QG_T(float, rvar), int track, float momentum,
                     float eps, QG_T(float, y), QG_T(float, smean), QG_T(float, sinvstd))
{
    __local float acc[WG];
    int c = get_group_id(0);
    int l = get_local_id(0);
    int n = N * HW;
    float s = 0.0f;
    for (int i = l; i < n; i += WG) {
        int b = i / HW, p = i - b * HW;
        s += QG_P(x)[(b * C + c) * HW + p];
    }
    float mean = bn_group_sum(acc, s) / (float)n;
    float q = 0.0f;
    for (int i = l; i < n; i += WG) {
        int b = i / HW, p = i - b * HW;
        float d = QG_P(x)[(b * C + c) * HW + p] - mean;
        q += d * d;
    }
    float var = bn_group_sum(acc, q) / (float)n;
    float invstd = 1.0f / sqrt(var + eps);
    float g = affine ? QG_P(gamma)[c] : 1.0f;
    float bt = affine ? QG_P(beta)[c] : 0.0f;
    for (int i = l; i < n; i += WG) {
        int b = i / HW, p = i - b * HW;
        int at = (b * C + c) * HW + p;
        QG_P(y)[at] = (QG_P(x)[at] - mean) * invstd * g + bt;
    }
    if (l == 0) {
        QG_P(smean)[c] = mean;
        QG_P(sinvstd)[c] = invstd;
        if (track) {
            float unbiased = var * ((float)n / (float)(n - 1));
            QG_P(rmean)[c] = (1.0f - momentum) * QG_P(rmean)[c] + momentum * mean;
            QG_P(rvar)[c] = (1.0f - momentum) * QG_P(rvar)[c] + momentum * unbiased;
        }
    }
}

/* Elementwise over total = N*C*HW items. */
__kernel void qg_bn_fwd_eval(QG_T(const float, x), int C, int HW, int total,
                             QG_T(const float, gamma), QG_T(const float, beta), int affine,
                             QG_T(const float, rmean), QG_T(const float, rvar), float eps,
                             QG_T(float, y))
{
    int i = get_global_id(0);
    if (i >= total)
        return;
    int c = (i / HW) % C;
    float invstd = 1.0f / sqrt(QG_P(rvar)[c] + eps);
    float g = affine ? QG_P(gamma)[c] : 1.0f;
    float bt = affine ? QG_P(beta)[c] : 0.0f;
    QG_P(y)[i] = (QG_P(x)[i] - QG_P(rmean)[c]) * invstd * g + bt;
}

/* One work-group per channel: global = C*WG. Both per-channel sums are
 * always formed (dx needs them even when affine == 0); they are stored
 * when want_dgamma / want_dbeta. accumulate adds into dx. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_bn_bwd(QG_T(const float, x), QG_T(const float, dy), int N, int C, int HW,
               QG_T(const float, gamma), int affine, QG_T(const float, smean),
               QG_T(const float, sinvstd), QG_T(float, dx), int accumulate,
               QG_T(float, dgamma), int want_dgamma, QG_T(float, dbeta), int want_dbeta)
{
    __local float acc[WG];
    int c = get_group_id(0);
    int l = get_local_id(0);
    int n = N * HW;
    float mean = QG_P(smean)[c];
    float invstd = QG_P(sinvstd)[c];
    float s1 = 0.0f, s2 = 0.0f;
    for (int i = l; i < n; i += WG) {
        int b = i / HW, p = i - b * HW;
        int at = (b * C + c) * HW + p;
        float d = QG_P(dy)[at];
        s1 += d;
        s2 += d * ((QG_P(x)[at] - mean) * invstd);
    }
    float sdy = bn_group_sum(acc, s1);
    float sdyx = bn_group_sum(acc, s2);
    if (l == 0) {
        if (want_dgamma)
            QG_P(dgamma)[c] = sdyx;
        if (want_dbeta)
            QG_P(dbeta)[c] = sdy;
    }
    float g = affine ? QG_P(gamma)[c] : 1.0f;
    float k = g * invstd / (float)n;
    for (int i = l; i < n; i += WG) {
        int b = i / HW, p = i - b * HW;
        int at = (b * C + c) * HW + p;
        float xhat = (QG_P(x)[at] - mean) * invstd;
        float v = k * ((float)n * QG_P(dy)[at] - sdy - xhat * sdyx);
        QG_P(dx)[at] = accumulate ? QG_P(dx)[at] + v : v;
    }
}
