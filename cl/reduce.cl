/* cl/reduce.cl: reductions. C twins: src/ref/ref_reduce.c; tests:
 * tests/test_reduce.c.
 *
 * Each work-group of WG items reduces one segment: the whole tensor
 * (sum, absmax: one group), or one channel of an NCHW tensor (channel
 * statistics: one group per channel). Partial results combine through a
 * local-memory tree, so the summation order differs from the sequential C
 * reference; tests allow a relative error for that.
 *
 * Tunables:
 *   WG  work-group size, power of two in 1..1024 (checked below). */
#ifndef WG
#define WG 64
#endif
#if (WG & (WG - 1)) != 0 || WG < 1 || WG > 1024
#error "WG must be a power of two in 1..1024"
#endif

/* out[0] = sum(x[0..n)); launch with global = local = WG. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_reduce_sum(QG_T(const float, x), int n, QG_T(float, out))
{
    __local float acc[WG];
    int l = get_local_id(0);
    float s = 0.0f;
    for (int i = l; i < n; i += WG)
        s += QG_P(x)[i];
    acc[l] = s;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int w = WG / 2; w > 0; w >>= 1) {
        if (l < w)
            acc[l] += acc[l + w];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (l == 0)
        QG_P(out)[0] = acc[0];
}

/* out[0] = max(|x|) (0 for n == 0); launch with global = local = WG. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_reduce_absmax(QG_T(const float, x), int n, QG_T(float, out))
{
    __local float acc[WG];
    int l = get_local_id(0);
    float m = 0.0f;
    for (int i = l; i < n; i += WG)
        m = fmax(m, fabs(QG_P(x)[i]));
    acc[l] = m;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int w = WG / 2; w > 0; w >>= 1) {
        if (l < w)
            acc[l] = fmax(acc[l], acc[l + w]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (l == 0)
        QG_P(out)[0] = acc[0];
}

/* out[0] = the number of NaN and Inf values of x[0..n) (as a float; exact
 * up to 2^24). The exponent bits decide, so the count cannot be folded
 * away by a compiler assuming finite math. Launch with
 * global = local = WG. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_reduce_nonfinite(QG_T(const float, x), int n, QG_T(float, out))
{
    __local int acc[WG];
    int l = get_local_id(0);
    int c = 0;
    for (int i = l; i < n; i += WG)
        c += (as_uint(QG_P(x)[i]) & 0x7f800000u) == 0x7f800000u;
    acc[l] = c;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int w = WG / 2; w > 0; w >>= 1) {
        if (l < w)
            acc[l] += acc[l + w];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (l == 0)
        QG_P(out)[0] = (float)acc[0];
}

/* Per-channel sum and sum of squares of an NCHW tensor x[N][C][HW]:
 * sum[c], sumsq[c]. One work-group per channel: global = C*WG. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_reduce_channel_stats(QG_T(const float, x), int N, int C, int HW,
                             QG_T(float, sum), QG_T(float, sumsq))
{
    __local float a1[WG];
    __local float a2[WG];
    int c = get_group_id(0);
    int l = get_local_id(0);
    float s = 0.0f, q = 0.0f;
    int total = N * HW;
    for (int i = l; i < total; i += WG) {
        int n = i / HW, p = i - n * HW;
        float v = QG_P(x)[(n * C + c) * HW + p];
        s += v;
        q += v * v;
    }
    a1[l] = s;
    a2[l] = q;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int w = WG / 2; w > 0; w >>= 1) {
        if (l < w) {
            a1[l] += a1[l + w];
            a2[l] += a2[l + w];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (l == 0) {
        QG_P(sum)[c] = a1[0];
        QG_P(sumsq)[c] = a2[0];
    }
}
