/* cl/cg.cl: Channel Gating (CG, docs/methods.md §4): the
 * weight split into base and conditional paths, the gate with its combine,
 * the gate's backward and the channel shuffle. Host side: src/cg/cg.c
 * (contract in src/cg/cg.h); C twins: src/ref/ref_cg.c; tests:
 * tests/test_cg.c (kernels) and tests/test_cgconv.c (the node).
 *
 * Decomposition. The reference computes Yp = conv(X, W*M) and the full
 * Y = conv(X, W) and returns Y*d + Yp*(1-d). Here the conditional path
 * Yc = conv(X, W*(1-M)) = Y - Yp is computed instead, so
 *     out = Yp + d*Yc,   d = sigmoid(alpha*(Z - delta_c)) > 0.5,
 * Z the affine-free batch norm of Yp (computed by cl/bn.cl). Backward:
 *     dL/dd = dOut*Yc (the reference's dOut*Y - dOut*Yp),
 *     g     = ((dL/dd * (1-s)) * s) * alpha, 0 where s < 0.5 when spbp,
 *     dZ = g, ddelta_c = -sum g, dYp = dOut (+ BN backward of g, added by
 *     the host), dYc = d*dOut.
 *
 * Layouts: activations [N][C][H][W]; weights [K][C][R][S] with KK = R*S;
 * base weights [K][Cb][R][S], Cb = C (first-channels mask, full shape) or
 * C/p (block-diagonal mask: the compact weights of a p-group conv).
 *
 * Tunables:
 *   WG  work-group size, power of two in 1..1024.
 *   VW  values per item step in the gate kernels, and vector width (1, 4,
 *       8, 16): CPUs want 16, GPUs 1. Lanes compute the scalar expression,
 *       so only the sums' order depends on it. */
#pragma OPENCL FP_CONTRACT OFF

#ifndef WG
#define WG 64
#endif
#if (WG & (WG - 1)) != 0 || WG < 1 || WG > 1024
#error "WG must be a power of two in 1..1024"
#endif
#ifndef VW
#define VW 1
#endif
#if VW == 1
#define vec float
#define VLOAD(p) (*(p))
#define VSTORE(v, p) (*(p) = (v))
#elif VW == 4 || VW == 8 || VW == 16
#define CG_CAT_(a, b) a##b
#define CG_CAT(a, b) CG_CAT_(a, b)
#define vec CG_CAT(float, VW)
#define VLOAD(p) CG_CAT(vload, VW)(0, (p))
#define VSTORE(v, p) CG_CAT(vstore, VW)((v), 0, (p))
#else
#error "VW must be 1, 4, 8 or 16"
#endif

/* Sum of a vector's lanes (through a private array: any width). */
static inline float qg_cg_vsum(vec v)
{
    float t[VW];
    VSTORE(v, t);
    float s = 0.0f;
    for (int i = 0; i < VW; i++)
        s += t[i];
    return s;
}

/* First input channel of output o's base block: 0 for full-shape base
 * weights (Cb == C), else block (o / co) of Cb channels. */
static inline int qg_cg_base_first(int o, int C, int Cb, int co)
{
    return Cb == C ? 0 : (o / co) * Cb;
}

/* One item per full weight element (global = K*C*KK):
 *   wc[i] = w[i]*(1-m[i]);  wb[o, c - first(o), kk] = w[i]*m[i] when c is
 *   in output o's base block (every wb element is written exactly once). */
__kernel void qg_cg_weights_fwd(QG_T(const float, w), QG_T(const float, m), QG_T(float, wb),
                                QG_T(float, wc), int K, int C, int KK, int Cb, int co)
{
    int i = get_global_id(0);
    if (i >= K * C * KK)
        return;
    int kk = i % KK, c = (i / KK) % C, o = i / (KK * C);
    float wv = QG_P(w)[i], mv = QG_P(m)[i];
    QG_P(wc)[i] = wv * (1.0f - mv);
    int cb = c - qg_cg_base_first(o, C, Cb, co);
    if (cb >= 0 && cb < Cb)
        QG_P(wb)[(o * Cb + cb) * KK + kk] = wv * mv;
}

/* dw[i] = (1-m[i])*dwc[i] + m[i]*dwb[o, c - first(o), kk] (the second term
 * only inside the base block; outside it the mask is 0 by construction). */
__kernel void qg_cg_weights_bwd(QG_T(const float, m), QG_T(const float, dwb),
                                QG_T(const float, dwc), QG_T(float, dw), int K, int C, int KK,
                                int Cb, int co)
{
    int i = get_global_id(0);
    if (i >= K * C * KK)
        return;
    int kk = i % KK, c = (i / KK) % C, o = i / (KK * C);
    float mv = QG_P(m)[i];
    float g = (1.0f - mv) * QG_P(dwc)[i];
    int cb = c - qg_cg_base_first(o, C, Cb, co);
    if (cb >= 0 && cb < Cb)
        g = g + mv * QG_P(dwb)[(o * Cb + cb) * KK + kk];
    QG_P(dw)[i] = g;
}

/* Tree sum of acc[0..WG) (every item of the group calls); returns it. */
static inline float qg_cg_local_sum(__local float *acc, int l)
{
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int w = WG / 2; w > 0; w >>= 1) {
        if (l < w)
            acc[l] += acc[l + w];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    return acc[0];
}

/* sigmoid(alpha*(z - delta)) as torch: 1/(1+exp(-x)). */
static inline float qg_cg_sigmoid(float z, float delta, float alpha)
{
    float x = alpha * (z - delta);
    return 1.0f / (1.0f + exp(-x));
}

/* out = yp + d*yc, d = s > 0.5 (the reference's s - 0.5 > 0, the same
 * test in float); count[0] += number of d == 1 in the first ncount planes
 * (the samples holding data). Each group takes whole (n, c) planes,
 * grid-stride, so delta is read once per plane; one local reduction and
 * one atomic per group. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_cg_gate_fwd(QG_T(const float, z), QG_T(const float, delta), QG_T(const float, yp),
                    QG_T(const float, yc), QG_T(float, out), QG_T(int, count), int nplanes,
                    int ncount, int C, int HW, float alpha)
{
    __local float acc[WG];   /* a group's count, exact in float below 2^24 */
    int l = get_local_id(0);
    float on = 0.0f;
    vec onv = (vec)0.0f;
    for (int pl = get_group_id(0); pl < nplanes; pl += get_num_groups(0)) {
        float de = QG_P(delta)[pl % C];
        float counted = pl < ncount ? 1.0f : 0.0f;
        for (int p = l * VW; p < HW; p += WG * VW) {
            int i = pl * HW + p;
            if (p + VW <= HW) {
                vec x = alpha * (VLOAD(QG_P(z) + i) - de);
                vec s = 1.0f / (1.0f + exp(-x));
                vec d = select((vec)0.0f, (vec)1.0f, isgreater(s, (vec)0.5f));
                VSTORE(VLOAD(QG_P(yp) + i) + d * VLOAD(QG_P(yc) + i), QG_P(out) + i);
                onv += counted * d;
                continue;
            }
            for (int j = i; j < pl * HW + HW; j++) {
                float s = qg_cg_sigmoid(QG_P(z)[j], de, alpha);
                float d = s > 0.5f ? 1.0f : 0.0f;
                QG_P(out)[j] = QG_P(yp)[j] + d * QG_P(yc)[j];
                on += counted * d;
            }
        }
    }
    on += qg_cg_vsum(onv);
    acc[l] = on;
    int ones = (int)qg_cg_local_sum(acc, l);
    if (l == 0 && ones)
        atomic_add((volatile __global int *)QG_P(count), ones);
}

/* One group per channel c (global = C*WG). Writes g (the gradient of Z),
 * dyp = dout, dyc = d*dout, and ddelta[c] += -sum g. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_cg_gate_bwd(QG_T(const float, z), QG_T(const float, delta), QG_T(const float, yc),
                    QG_T(const float, dout), int N, int C, int HW, float alpha, int spbp,
                    QG_T(float, g), QG_T(float, dyp), QG_T(float, dyc), QG_T(float, ddelta))
{
    __local float acc[WG];
    int c = get_group_id(0);
    int l = get_local_id(0);
    float de = QG_P(delta)[c];
    float sum = 0.0f;
    vec sumv = (vec)0.0f;
    for (int nn = 0; nn < N; nn++)
        for (int p = l * VW; p < HW; p += WG * VW) {
            int i = (nn * C + c) * HW + p;
            if (p + VW <= HW) {
                vec x = alpha * (VLOAD(QG_P(z) + i) - de);
                vec s = 1.0f / (1.0f + exp(-x));
                vec dv = VLOAD(QG_P(dout) + i);
                vec gd = dv * VLOAD(QG_P(yc) + i);
                if (spbp)
                    gd = select(gd, (vec)0.0f, isless(s, (vec)0.5f));
                vec gv = gd * (1.0f - s) * s * alpha;
                VSTORE(gv, QG_P(g) + i);
                VSTORE(dv, QG_P(dyp) + i);
                VSTORE(select((vec)0.0f, (vec)1.0f, isgreater(s, (vec)0.5f)) * dv,
                       QG_P(dyc) + i);
                sumv += gv;
                continue;
            }
            for (int j = i; j < (nn * C + c) * HW + HW; j++) {
                float s = qg_cg_sigmoid(QG_P(z)[j], de, alpha);
                float dv = QG_P(dout)[j];
                float gd = dv * QG_P(yc)[j];
                if (spbp && s < 0.5f)
                    gd = 0.0f;
                float gv = gd * (1.0f - s) * s * alpha;
                QG_P(g)[j] = gv;
                QG_P(dyp)[j] = dv;
                QG_P(dyc)[j] = (s > 0.5f ? 1.0f : 0.0f) * dv;
                sum += gv;
            }
        }
    sum += qg_cg_vsum(sumv);
    acc[l] = sum;
    float tot = qg_cg_local_sum(acc, l);
    if (l == 0)
        QG_P(ddelta)[c] = QG_P(ddelta)[c] - tot;
}

/* The outputs whose conditional path may be needed: mask = 1 where
 * alpha*(z - delta_c) >= -QG_CG_MASK_MARGIN, else 0. A superset of the gate
 * (s > 0.5) and of the positions sparse back-prop keeps (s >= 0.5), by a
 * margin far above any sigmoid's rounding near 0.5, so the decision never
 * depends on exp's last ulp. Each group takes whole (n, c) planes,
 * grid-stride (as qg_cg_gate_fwd), VW values per step. */
#define QG_CG_MASK_MARGIN 1e-5f
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_cg_gate_mask(QG_T(const float, z), QG_T(const float, delta), int nplanes, int C, int HW,
                     float alpha, QG_T(float, mask))
{
    int l = get_local_id(0);
    for (int pl = get_group_id(0); pl < nplanes; pl += get_num_groups(0)) {
        float de = QG_P(delta)[pl % C];
        for (int p = l * VW; p < HW; p += WG * VW) {
            int i = pl * HW + p;
            if (p + VW <= HW) {
                vec x = alpha * (VLOAD(QG_P(z) + i) - de);
                VSTORE(select((vec)0.0f, (vec)1.0f, isgreaterequal(x, (vec)-QG_CG_MASK_MARGIN)),
                       QG_P(mask) + i);
                continue;
            }
            for (int j = i; j < pl * HW + HW; j++) {
                float x = alpha * (QG_P(z)[j] - de);
                QG_P(mask)[j] = x >= -QG_CG_MASK_MARGIN ? 1.0f : 0.0f;
            }
        }
    }
}

/* channel_shuffle(x, groups): y[n, o] (+)= x[n, (o % groups)*(C/groups) +
 * o/groups] per HW plane. The inverse permutation is the shuffle with
 * C/groups groups, which is the backward. global = N*C*HW. */
__kernel void qg_cg_shuffle(QG_T(const float, x), QG_T(float, y), int n, int C, int HW,
                            int groups, int accumulate)
{
    int i = get_global_id(0);
    if (i >= n)
        return;
    int p = i % HW, o = (i / HW) % C, nn = i / (HW * C);
    int src = (o % groups) * (C / groups) + o / groups;
    float v = QG_P(x)[(nn * C + src) * HW + p];
    QG_P(y)[i] = accumulate ? QG_P(y)[i] + v : v;
}
