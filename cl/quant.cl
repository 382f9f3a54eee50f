/* cl/quant.cl: quantizers (round-to-bits, truncate, binarize, DoReFa), PACT
 * (clip and ProQHA's quantizer) and the PG gate. Host side:
 * src/quant/quant.c (contract in src/quant/quant.h); C twins:
 * src/ref/ref_quant.c; tests: tests/test_quant.c. Math:
 * docs/methods.md §2.2-2.5, §3.2-3.3, §5.3-5.5.
 *
 * Bit-exactness: every float expression follows the reference's order of
 * operations, rounding is rint (half to even), and contraction into fma is
 * off, so results equal the C twin wherever +,-,*,/ are IEEE-rounded.
 *
 * Reductions: max |x| uses atomic_max on the bit patterns of non-negative
 * floats (ordered like the floats, so the result is exact and independent
 * of the order); counts use atomic_add on ints; float sums go through a
 * local-memory tree per group and, with several groups, a second pass over
 * the per-group partials, so they are deterministic for a given WG.
 *
 * Tunables:
 *   WG     work-group size, power of two in 1..1024.
 *   CHUNK  how the loops over many elements share them among work-items
 *          (reductions, PACT backward, the gate): 0 = interleaved (item k
 *          takes k, k + items, ...: coalesced loads on GPUs), 1 = one
 *          contiguous run per item (cache lines and prefetch stay with one
 *          item: much faster on CPU devices, e.g. PoCL). With CHUNK 1 the
 *          gate's forward also runs on a fixed number of groups instead of
 *          one item per element. The float sums' order depends on both.
 *   VW     elements per item step and vector width (1, 4, 8, 16): the
 *          elementwise kernels give each item VW consecutive elements, the
 *          loops walk chunks of VW; CPUs want 16 (one AVX-512 register),
 *          GPUs 1. Every lane computes the scalar expression, so results
 *          do not depend on VW (sums' order aside). */
#pragma OPENCL FP_CONTRACT OFF

#ifndef WG
#define WG 64
#endif
#if (WG & (WG - 1)) != 0 || WG < 1 || WG > 1024
#error "WG must be a power of two in 1..1024"
#endif
#ifndef CHUNK
#define CHUNK 0
#endif
#if CHUNK != 0 && CHUNK != 1
#error "CHUNK must be 0 or 1"
#endif

#ifndef VW
#define VW 1
#endif
#if VW == 1
#define vec float
#define ivec int
#define VLOAD(p) (*(p))
#define VSTORE(v, p) (*(p) = (v))
#define VCONVERT_INT(v) ((int)(v))
#define VSUM(v) (v)
#define VMAX(v) (v)
#define VSUMI(v) (v)
#elif VW == 4 || VW == 8 || VW == 16
#define QG_CAT_(a, b) a##b
#define QG_CAT(a, b) QG_CAT_(a, b)
#define vec QG_CAT(float, VW)
#define ivec QG_CAT(int, VW)
#define VLOAD(p) QG_CAT(vload, VW)(0, (p))
#define VSTORE(v, p) QG_CAT(vstore, VW)((v), 0, (p))
#define VCONVERT_INT(v) QG_CAT(convert_int, VW)(v)
/* Horizontal sum / max of a vector, through a private array (any width). */
static inline float qg_vsum(vec v)
{
    float t[VW];
    VSTORE(v, t);
    float s = 0.0f;
    for (int i = 0; i < VW; i++)
        s += t[i];
    return s;
}
static inline float qg_vmax(vec v)
{
    float t[VW];
    VSTORE(v, t);
    float m = t[0];
    for (int i = 1; i < VW; i++)
        m = fmax(m, t[i]);
    return m;
}
static inline int qg_vsumi(ivec v)
{
    int t[VW];
    QG_CAT(vstore, VW)(v, 0, t);
    int s = 0;
    for (int i = 0; i < VW; i++)
        s += t[i];
    return s;
}
#define VSUM(v) qg_vsum(v)
#define VMAX(v) qg_vmax(v)
#define VSUMI(v) qg_vsumi(v)
#else
#error "VW must be 1, 4, 8 or 16"
#endif

/* sign(v) as qg_sign lane by lane (0 for 0 and NaN, never -0). */
static inline vec qg_vsign(vec v)
{
    vec r = select((vec)0.0f, (vec)1.0f, isgreater(v, (vec)0.0f));
    return select(r, (vec)-1.0f, isless(v, (vec)0.0f));
}

/* for (i over the share of [0, n) of item `item` among `nitems` items) */
#if CHUNK
#define QG_SHARE(i, item, nitems, n)                                          \
    for (int i = (int)((long)(n) * (item) / (nitems)),                        \
             i##_end_ = (int)((long)(n) * ((item) + 1) / (nitems));           \
         i < i##_end_; i++)
#else
#define QG_SHARE(i, item, nitems, n) for (int i = (item); i < (n); i += (nitems))
#endif

/* Tree-reduces acc[0..WG) into acc[0]; every item of the group must call. */
#define QG_LOCAL_SUM(acc, l)                                  \
    do {                                                      \
        barrier(CLK_LOCAL_MEM_FENCE);                         \
        for (int w_ = WG / 2; w_ > 0; w_ >>= 1) {             \
            if ((l) < w_)                                     \
                (acc)[l] += (acc)[(l) + w_];                  \
            barrier(CLK_LOCAL_MEM_FENCE);                     \
        }                                                     \
    } while (0)

/* ---- scales ---- */

/* s[seg] = max(s[seg], max |f(x)| over segment seg), f = tanh if use_tanh
 * else identity; s must hold 0 (or a smaller max) beforehand. Segments are
 * consecutive runs of seg_len elements; dim 1 of the launch is the segment,
 * dim 0 covers it grid-stride with any number of groups of WG. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_quant_absmax(QG_T(const float, x), int seg_len, int use_tanh, QG_T(float, s))
{
    __local float acc[WG];
    int l = get_local_id(0);
    int seg = get_global_id(1);
    __global const float *xs = QG_P(x) + (size_t)seg * seg_len;
    float m = 0.0f;
    vec mv = (vec)0.0f;
    QG_SHARE(t, get_group_id(0) * WG + l, get_num_groups(0) * WG, (seg_len + VW - 1) / VW) {
        int i0 = t * VW;
        if (i0 + VW <= seg_len) {
            vec v = VLOAD(xs + i0);
            mv = fmax(mv, fabs(use_tanh ? tanh(v) : v));
        } else {
            for (int i = i0; i < seg_len; i++) {
                float v = xs[i];
                m = fmax(m, fabs(use_tanh ? tanh(v) : v));
            }
        }
    }
    m = fmax(m, VMAX(mv));
    acc[l] = m;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int w = WG / 2; w > 0; w >>= 1) {
        if (l < w)
            acc[l] = fmax(acc[l], acc[l + w]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (l == 0)
        atomic_max((volatile __global uint *)(QG_P(s) + seg), as_uint(acc[0]));
}

/* s[i] += eps (PG-PyTorch's 1e-7, added in float after the max). */
__kernel void qg_quant_scale_eps(QG_T(float, s), int nseg, float eps)
{
    int i = get_global_id(0);
    if (i < nseg)
        QG_P(s)[i] = QG_P(s)[i] + eps;
}

/* ---- round-to-bits / truncate ---- */

#define QG_OUT_FULL 1
#define QG_OUT_MSB 2
#define QG_OUT_LSB 4
#define QG_OUT_CODES 8

/* common.cl's qg_code on VW lanes. */
static inline vec qg_code_v(vec v, float sc, float L)
{
    return rint(fmin(fmax(fabs(v) / sc, 0.0f), 1.0f) * L);
}

/* docs/methods.md §2.2 / §3.2 with scale s[i / seg_len]; shift = bits - msb_bits.
 * A zero scale gives 0/0 = NaN, which fmax maps to 0 (code 0, output 0). */
/* One item per VW consecutive elements: global = ceil(n/VW). A run that
 * crosses a segment or the end takes the scalar path. */
__kernel void qg_quant_apply(QG_T(const float, x), int n, int seg_len, QG_T(const float, s),
                             int bits, int shift, int outs, QG_T(float, full),
                             QG_T(float, msb), QG_T(float, lsb), QG_T(int, codes))
{
    int i0 = get_global_id(0) * VW;
    if (i0 >= n)
        return;
    float L = (float)((1 << bits) - 1);
    float p = (float)(1 << shift);
    int seg = i0 / seg_len;
    if (VW > 1 && i0 + VW <= n && (i0 + VW - 1) / seg_len == seg) {
        float sc = QG_P(s)[seg];
        vec v = VLOAD(QG_P(x) + i0);
        vec sgn = qg_vsign(v);
        vec q = qg_code_v(v, sc, L);
        vec f = q / L * sc * sgn;
        if (outs & QG_OUT_FULL)
            VSTORE(f, QG_P(full) + i0);
        if (outs & (QG_OUT_MSB | QG_OUT_LSB)) {
            vec m = floor(q / p) * p / L * sc * sgn;
            if (outs & QG_OUT_MSB)
                VSTORE(m, QG_P(msb) + i0);
            if (outs & QG_OUT_LSB)
                VSTORE(f - m, QG_P(lsb) + i0);
        }
        if (outs & QG_OUT_CODES)
            VSTORE(VCONVERT_INT(q) * VCONVERT_INT(sgn), QG_P(codes) + i0);
        return;
    }
    for (int i = i0; i < min(i0 + VW, n); i++) {
        float v = QG_P(x)[i];
        float sc = QG_P(s)[i / seg_len];
        float sgn = qg_sign(v);
        float q = qg_code(v, sc, L);
        float f = q / L * sc * sgn;
        if (outs & QG_OUT_FULL)
            QG_P(full)[i] = f;
        if (outs & (QG_OUT_MSB | QG_OUT_LSB)) {
            float m = floor(q / p) * p / L * sc * sgn;
            if (outs & QG_OUT_MSB)
                QG_P(msb)[i] = m;
            if (outs & QG_OUT_LSB)
                QG_P(lsb)[i] = f - m;
        }
        if (outs & QG_OUT_CODES)
            QG_P(codes)[i] = (int)q * (int)sgn;
    }
}

/* A small tensor's PG quantization in one launch (a conv's weights, every
 * step): s[0] = max |x| + eps, then full = the rounding of qg_quant_apply
 * (msb 0, one segment) by that scale, which qg_quant_absmax,
 * qg_quant_scale_eps and qg_quant_apply give in three launches and a fill.
 * Same values bit for bit: the max is exact in any order and each element
 * is rounded by the same expressions. One work-group of WG: global = WG. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_quant_small_pg(QG_T(const float, x), int n, int bits, float eps, QG_T(float, s),
                       QG_T(float, full))
{
    __local float acc[WG];
    int l = get_local_id(0);
    __global const float *xp = QG_P(x);
    __global float *fp = QG_P(full);
    int items = (n + VW - 1) / VW;
    float m = 0.0f;
    vec mv = (vec)0.0f;
    QG_SHARE(t, l, WG, items) {
        int i0 = t * VW;
        if (i0 + VW <= n) {
            mv = fmax(mv, fabs(VLOAD(xp + i0)));
        } else {
            for (int i = i0; i < n; i++)
                m = fmax(m, fabs(xp[i]));
        }
    }
    acc[l] = fmax(m, VMAX(mv));
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int w = WG / 2; w > 0; w >>= 1) {
        if (l < w)
            acc[l] = fmax(acc[l], acc[l + w]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float sc = acc[0] + eps;
    if (l == 0)
        QG_P(s)[0] = sc;
    float L = (float)((1 << bits) - 1);
    QG_SHARE(t, l, WG, items) {
        int i0 = t * VW;
        if (i0 + VW <= n) {
            vec v = VLOAD(xp + i0);
            VSTORE(qg_code_v(v, sc, L) / L * sc * qg_vsign(v), fp + i0);
        } else {
            for (int i = i0; i < n; i++) {
                float v = xp[i];
                fp[i] = qg_code(v, sc, L) / L * sc * qg_sign(v);
            }
        }
    }
}

/* bits 0: y = x; bits 1: TorchBinarize / binarize (clamp, (x+1)/2, rint, 2y-1). */
__kernel void qg_quant_binarize(QG_T(const float, x), QG_T(float, y), int n, int bits)
{
    int i = get_global_id(0);
    if (i >= n)
        return;
    float v = QG_P(x)[i];
    if (bits == 1) {
        float c = fmin(fmax(v, -1.0f), 1.0f);
        v = rint((c + 1.0f) / 2.0f) * 2.0f - 1.0f;
    }
    QG_P(y)[i] = v;
}

/* dx (=|+=) dy, or dy only where x != 0 (nonzero). One item per VW
 * elements: global = ceil(n/VW). */
__kernel void qg_quant_ste_bwd(QG_T(const float, x), QG_T(const float, dy), QG_T(float, dx),
                               int n, int nonzero, int accumulate)
{
    int i0 = get_global_id(0) * VW;
    if (i0 >= n)
        return;
    if (i0 + VW <= n) {
        vec g = VLOAD(QG_P(dy) + i0);
        if (nonzero)
            g = select((vec)0.0f, g, isnotequal(VLOAD(QG_P(x) + i0), (vec)0.0f));
        if (accumulate)
            g = VLOAD(QG_P(dx) + i0) + g;
        VSTORE(g, QG_P(dx) + i0);
        return;
    }
    for (int i = i0; i < n; i++) {
        float g = (!nonzero || QG_P(x)[i] != 0.0f) ? QG_P(dy)[i] : 0.0f;
        QG_P(dx)[i] = accumulate ? QG_P(dx)[i] + g : g;
    }
}

/* ---- DoReFa weights (ProQHA) ---- */

/* aux[0] = mean |w|; one work-group of WG. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_quant_dorefa_mean(QG_T(const float, w), int n, QG_T(float, aux))
{
    __local float acc[WG];
    int l = get_local_id(0);
    float s = 0.0f;
    QG_SHARE(i, l, WG, n)
        s += fabs(QG_P(w)[i]);
    acc[l] = s;
    QG_LOCAL_SUM(acc, l);
    if (l == 0)
        QG_P(aux)[0] = acc[0] / (float)n;
}

__kernel void qg_quant_dorefa_fwd(QG_T(const float, w), int n, int bits, QG_T(const float, aux),
                                  QG_T(float, wq))
{
    int i = get_global_id(0);
    if (i >= n)
        return;
    float v = QG_P(w)[i];
    float r;
    if (bits >= 32) {
        r = v;
    } else if (bits == 1) {
        float e = QG_P(aux)[0];
        r = qg_sign(v / e) * e;
    } else {
        float L = (float)((1 << bits) - 1);
        float u = tanh(v) / 2.0f / QG_P(aux)[0] + 0.5f;
        r = 2.0f * (rint(u * L) / L) - 1.0f;
    }
    QG_P(wq)[i] = r;
}

/* Partials of the max path: part[g] = sum dwq*t, part[G+g] = count of
 * |t| == M, over this group's grid-stride share; launch G groups. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_quant_dorefa_bwd_partial(QG_T(const float, w), QG_T(const float, dwq), int n,
                                 QG_T(const float, aux), QG_T(float, part))
{
    __local float a1[WG];
    __local float a2[WG];
    int l = get_local_id(0);
    int G = get_num_groups(0);
    float M = QG_P(aux)[0];
    float s = 0.0f, c = 0.0f;
    QG_SHARE(i, get_group_id(0) * WG + l, G * WG, n) {
        float t = tanh(QG_P(w)[i]);
        s += QG_P(dwq)[i] * t;
        c += fabs(t) == M ? 1.0f : 0.0f;
    }
    a1[l] = s;
    a2[l] = c;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int w_ = WG / 2; w_ > 0; w_ >>= 1) {
        if (l < w_) {
            a1[l] += a1[l + w_];
            a2[l] += a2[l + w_];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (l == 0) {
        QG_P(part)[get_group_id(0)] = a1[0];
        QG_P(part)[G + get_group_id(0)] = a2[0];
    }
}

/* dw (=|+=) dwq/M*(1-t^2) (+ the max path when autograd: nparts > 0
 * partials from qg_quant_dorefa_bwd_partial). bits 1 and >= 32: dw = dwq. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_quant_dorefa_bwd(QG_T(const float, w), QG_T(const float, dwq), int n, int bits,
                         QG_T(const float, aux), QG_T(const float, part), int nparts,
                         QG_T(float, dw), int accumulate)
{
    __local float tot[2];
    int l = get_local_id(0);
    if (nparts > 0) {
        if (l == 0) {
            float s = 0.0f, c = 0.0f;
            for (int g = 0; g < nparts; g++) {
                s += QG_P(part)[g];
                c += QG_P(part)[nparts + g];
            }
            tot[0] = s;
            tot[1] = c;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    int i = get_global_id(0);
    if (i >= n)
        return;
    float d = QG_P(dwq)[i];
    float g;
    if (bits == 1 || bits >= 32) {
        g = d;
    } else {
        float M = QG_P(aux)[0];
        float t = tanh(QG_P(w)[i]);
        float gt = d / M;
        if (nparts > 0 && fabs(t) == M) {
            float gm = -tot[0] / (M * M);
            gt = gt + gm * qg_sign(t) / tot[1];
        }
        g = gt * (1.0f - t * t);
    }
    QG_P(dw)[i] = accumulate ? QG_P(dw)[i] + g : g;
}

/* ---- PACT ---- */

#define QG_PACT_PG 0
#define QG_PACT_TF 1
#define QG_PACT_BSQ 2

/* One item per VW elements: global = ceil(n/VW). */
__kernel void qg_quant_pact_fwd(QG_T(const float, x), QG_T(const float, alpha), QG_T(float, y),
                                int n)
{
    int i0 = get_global_id(0) * VW;
    if (i0 >= n)
        return;
    float a = QG_P(alpha)[0];
    if (i0 + VW <= n) {
        VSTORE(fmin(fmax(VLOAD(QG_P(x) + i0), 0.0f), a), QG_P(y) + i0);
        return;
    }
    for (int i = i0; i < n; i++)
        QG_P(y)[i] = fmin(fmax(QG_P(x)[i], 0.0f), a);
}

/* Ends a grid-stride backward: the group's sum of acc goes to part[group],
 * or is added to part[0] when direct (a single group writing dalpha). */
#define QG_GROUP_PARTIAL(acc, l, part, direct)                            \
    do {                                                                  \
        QG_LOCAL_SUM(acc, l);                                             \
        if ((l) == 0) {                                                   \
            if (direct)                                                   \
                QG_P(part)[0] = QG_P(part)[0] + (acc)[0];                 \
            else                                                          \
                QG_P(part)[get_group_id(0)] = (acc)[0];                   \
        }                                                                 \
    } while (0)

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_quant_pact_bwd(QG_T(const float, x), QG_T(const float, alpha), QG_T(const float, dy),
                       QG_T(float, dx), int n, int mode, int accumulate, QG_T(float, part),
                       int direct)
{
    __local float acc[WG];
    int l = get_local_id(0);
    float a = QG_P(alpha)[0];
    float s = 0.0f;
    vec sv = (vec)0.0f;
    QG_SHARE(t, get_group_id(0) * WG + l, get_num_groups(0) * WG, (n + VW - 1) / VW) {
        int i0 = t * VW;
        if (i0 + VW <= n) {
            vec v = VLOAD(QG_P(x) + i0), d = VLOAD(QG_P(dy) + i0);
            ivec lo = mode == QG_PACT_TF ? isgreater(v, (vec)0.0f)
                                         : isgreaterequal(v, (vec)0.0f);
            vec g = select((vec)0.0f, d, lo & islessequal(v, (vec)a));
            if (accumulate)
                g = VLOAD(QG_P(dx) + i0) + g;
            VSTORE(g, QG_P(dx) + i0);
            ivec up = mode == QG_PACT_PG ? isgreater(v, (vec)a) : isgreaterequal(v, (vec)a);
            sv += select((vec)0.0f, d, up);
        } else {
            for (int i = i0; i < n; i++) {
                float v = QG_P(x)[i], d = QG_P(dy)[i];
                int pass = (mode == QG_PACT_TF ? v > 0.0f : v >= 0.0f) && v <= a;
                float g = pass ? d : 0.0f;
                QG_P(dx)[i] = accumulate ? QG_P(dx)[i] + g : g;
                if (mode == QG_PACT_PG ? v > a : v >= a)
                    s += d;
            }
        }
    }
    s += VSUM(sv);
    acc[l] = s;
    QG_GROUP_PARTIAL(acc, l, part, direct);
}

/* out[0] += sum part[0..nparts); one work-group of WG. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_quant_partials_add(QG_T(const float, part), int nparts, QG_T(float, out))
{
    __local float acc[WG];
    int l = get_local_id(0);
    float s = 0.0f;
    for (int g = l; g < nparts; g += WG)
        s += QG_P(part)[g];
    acc[l] = s;
    QG_LOCAL_SUM(acc, l);
    if (l == 0)
        QG_P(out)[0] = QG_P(out)[0] + acc[0];
}

/* ProQHA's pact_quantize: y by the abs formula, then rounding (bits < 32). */
__kernel void qg_quant_pact_quant_fwd(QG_T(const float, x), QG_T(const float, alpha), int bits,
                                      QG_T(float, y), int n)
{
    int i = get_global_id(0);
    if (i >= n)
        return;
    float a = QG_P(alpha)[0];
    float v = QG_P(x)[i];
    float r = 0.5f * (fabs(v) - fabs(v - a) + a);
    if (bits < 32) {
        float L = (float)((1 << bits) - 1);
        r = rint(r * L / a) * a / L;
    }
    QG_P(y)[i] = r;
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_quant_pact_quant_bwd(QG_T(const float, x), QG_T(const float, alpha), int bits,
                             QG_T(const float, dy), QG_T(float, dx), int n, int accumulate,
                             QG_T(float, part), int direct)
{
    __local float acc[WG];
    int l = get_local_id(0);
    float a = QG_P(alpha)[0];
    float s = 0.0f;
    QG_SHARE(i, get_group_id(0) * WG + l, get_num_groups(0) * WG, n) {
        float v = QG_P(x)[i], d = QG_P(dy)[i];
        float dydx = 0.5f * (qg_sign(v) - qg_sign(v - a));
        float dyda = 0.5f * (qg_sign(v - a) + 1.0f);
        if (bits < 32) {
            float L = (float)((1 << bits) - 1);
            float y = 0.5f * (fabs(v) - fabs(v - a) + a);
            float w = y * L / a;
            dyda = (rint(w) - w) / L + dyda;
        }
        float g = d * dydx;
        QG_P(dx)[i] = accumulate ? QG_P(dx)[i] + g : g;
        s += d * dyda;
    }
    acc[l] = s;
    QG_GROUP_PARTIAL(acc, l, part, direct);
}

/* ---- ProQHA candidate score ----
 * The score of one Adam step from fresh state, as ProQHA's patched Adam
 * records it (the update of PyTorch's old Adam: eps added to the raw
 * sqrt(v), step lr*sqrt(1-b2)/(1-b1)), without writing the parameters:
 * g = scale*grad (the clipped gradient), m = (1-b1)g, v = (1-b2)g^2,
 * d = sqrt(v) + eps, delta = step*m/d, and the element adds d*delta^2.
 * Partials as qg_quant_pact_bwd's. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_quant_pq_score(QG_T(const float, grad), int n, float scale, float lr, float b1,
                       float b2, float eps, QG_T(float, part), int direct)
{
    __local float acc[WG];
    int l = get_local_id(0);
    float step = lr * sqrt(1.0f - b2) / (1.0f - b1);
    float s = 0.0f;
    QG_SHARE(i, get_group_id(0) * WG + l, get_num_groups(0) * WG, n) {
        float g = QG_P(grad)[i] * scale;
        float m = (1.0f - b1) * g;
        float v = (1.0f - b2) * g * g;
        float d = sqrt(v) + eps;
        float delta = step * m / d;
        s += d * delta * delta;
    }
    acc[l] = s;
    QG_GROUP_PARTIAL(acc, l, part, direct);
}

/* ---- PG gate ---- */

static inline float qg_gate_sigmoid(float o, float d, float slope)
{
    float z = slope * (o - d);
    return 1.0f / (1.0f + exp(-z));
}

/* Y = O_msb + mask*O_lsb; count[0] += number of mask ones. CHUNK 0: one
 * item per element; CHUNK 1: any number of groups share the elements. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_quant_pg_gate_fwd(QG_T(const float, om), QG_T(const float, delta), QG_T(const float, ol),
                          QG_T(float, y), QG_T(int, count), int n, int C, int HW, float slope)
{
    __local int acc[WG];
    int l = get_local_id(0);
    int ones = 0;
    ivec onesv = (ivec)0;
    QG_SHARE(t, get_global_id(0), get_global_size(0), (n + VW - 1) / VW) {
        int i0 = t * VW;
        int plane = i0 / HW;
        if (i0 + VW <= n && (i0 + VW - 1) / HW == plane) {
            vec o = VLOAD(QG_P(om) + i0);
            float dl = QG_P(delta)[plane % C];
            vec z = slope * (o - dl);
            vec sg = 1.0f / (1.0f + exp(-z));
            ivec on = isgreater(sg, (vec)0.5f);
            vec m = select((vec)0.0f, (vec)1.0f, on);
            VSTORE(o + m * VLOAD(QG_P(ol) + i0), QG_P(y) + i0);
            onesv -= on; /* true lanes are -1 (vectors) or 1 (VW 1) */
        } else {
            for (int i = i0; i < min(i0 + VW, n); i++) {
                float o = QG_P(om)[i];
                float sg = qg_gate_sigmoid(o, QG_P(delta)[(i / HW) % C], slope);
                float m = sg > 0.5f ? 1.0f : 0.0f;
                QG_P(y)[i] = o + m * QG_P(ol)[i];
                ones += (int)m;
            }
        }
    }
    ones += VW == 1 ? -VSUMI(onesv) : VSUMI(onesv);
    acc[l] = ones;
    QG_LOCAL_SUM(acc, l);
    if (l == 0 && acc[0])
        atomic_add((volatile __global int *)QG_P(count), acc[0]);
}

/* One group per channel c (global = C*WG): dO_msb, dO_lsb elementwise,
 * delta_grad[c] += -sum g. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_quant_pg_gate_bwd(QG_T(const float, om), QG_T(const float, delta),
                          QG_T(const float, ol), QG_T(const float, dy), int N, int C, int HW,
                          float slope, int spbp, QG_T(float, dmsb), QG_T(float, dlsb),
                          int has_dlsb, QG_T(float, ddelta))
{
    __local float acc[WG];
    int c = get_group_id(0);
    int l = get_local_id(0);
    float d = QG_P(delta)[c];
    float sum = 0.0f;
    vec sumv = (vec)0.0f;
    int cpp = (HW + VW - 1) / VW;
    QG_SHARE(t, l, WG, N * cpp) {
        int nn = t / cpp, p0 = (t - nn * cpp) * VW;
        int i0 = (nn * C + c) * HW + p0;
        if (p0 + VW <= HW) {
            vec o = VLOAD(QG_P(om) + i0), dyv = VLOAD(QG_P(dy) + i0);
            vec z = slope * (o - d);
            vec sg = 1.0f / (1.0f + exp(-z));
            vec gs = dyv * VLOAD(QG_P(ol) + i0);
            if (spbp)
                gs = select(gs, (vec)0.0f, isless(sg, (vec)0.5f));
            vec g = gs * (1.0f - sg) * sg * slope;
            VSTORE(dyv + g, QG_P(dmsb) + i0);
            if (has_dlsb)
                VSTORE(select((vec)0.0f, (vec)1.0f, isgreater(sg, (vec)0.5f)) * dyv,
                       QG_P(dlsb) + i0);
            sumv += g;
        } else {
            for (int i = i0; i < i0 + (HW - p0); i++) {
                float o = QG_P(om)[i], dyv = QG_P(dy)[i];
                float s = qg_gate_sigmoid(o, d, slope);
                float gs = dyv * QG_P(ol)[i];
                if (spbp && s < 0.5f)
                    gs = 0.0f;
                float g = gs * (1.0f - s) * s * slope;
                QG_P(dmsb)[i] = dyv + g;
                if (has_dlsb)
                    QG_P(dlsb)[i] = (s > 0.5f ? 1.0f : 0.0f) * dyv;
                sum += g;
            }
        }
    }
    sum += VSUM(sumv);
    acc[l] = sum;
    QG_LOCAL_SUM(acc, l);
    if (l == 0)
        QG_P(ddelta)[c] = QG_P(ddelta)[c] - acc[0];
}

/* ---- PG gate, TensorFlow semantics (docs/methods.md §3.4) ----
 * The reference keeps the two convolutions whole, h_hb = conv(X_msb, W) and
 * h_full = conv(X, W), and gates with a plain comparison (no sigmoid in
 * the forward pass):
 *   m = [h_hb > delta_c],  y = h_hb + m*(h_full - h_hb)
 * Each item takes VW consecutive elements through the scalar expression,
 * so results do not depend on VW. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_quant_pgtf_gate_fwd(QG_T(const float, hb), QG_T(const float, delta),
                            QG_T(const float, hf), QG_T(float, y), QG_T(int, count), int n,
                            int C, int HW)
{
    __local int acc[WG];
    int l = get_local_id(0);
    int ones = 0;
    QG_SHARE(t, get_global_id(0), get_global_size(0), (n + VW - 1) / VW) {
        int i0 = t * VW;
        for (int i = i0; i < min(i0 + VW, n); i++) {
            float o = QG_P(hb)[i];
            float m = o > QG_P(delta)[(i / HW) % C] ? 1.0f : 0.0f;
            QG_P(y)[i] = o + m * (QG_P(hf)[i] - o);
            ones += (int)m;
        }
    }
    acc[l] = ones;
    QG_LOCAL_SUM(acc, l);
    if (l == 0 && acc[0])
        atomic_add((volatile __global int *)QG_P(count), acc[0]);
}

/* One group per channel c (global = C*WG). The mask's gradient is the
 * sigmoid surrogate's, in TensorFlow's order (SigmoidGrad dy*s*(1-s),
 * then the slope's product):
 *   s = sigmoid(slope*(h_hb - delta_c)),  g = ((dY*(h_full - h_hb))*s*(1 - s))*slope
 *   d_hb = (dY - m*dY) + g,  d_full = m*dY,  delta_grad[c] += -sum g */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_quant_pgtf_gate_bwd(QG_T(const float, hb), QG_T(const float, delta),
                            QG_T(const float, hf), QG_T(const float, dy), int N, int C, int HW,
                            float slope, QG_T(float, dhb), QG_T(float, dhf),
                            QG_T(float, ddelta))
{
    __local float acc[WG];
    int c = get_group_id(0);
    int l = get_local_id(0);
    float d = QG_P(delta)[c];
    float sum = 0.0f;
    int cpp = (HW + VW - 1) / VW;
    QG_SHARE(t, l, WG, N * cpp) {
        int nn = t / cpp, p0 = (t - nn * cpp) * VW;
        int i0 = (nn * C + c) * HW + p0;
        for (int i = i0; i < i0 + min(VW, HW - p0); i++) {
            float o = QG_P(hb)[i], dyv = QG_P(dy)[i];
            float s = qg_gate_sigmoid(o, d, slope);
            float m = o > d ? 1.0f : 0.0f;
            float g = dyv * (QG_P(hf)[i] - o) * s * (1.0f - s) * slope;
            QG_P(dhb)[i] = (dyv - m * dyv) + g;
            QG_P(dhf)[i] = m * dyv;
            sum += g;
        }
    }
    acc[l] = sum;
    QG_LOCAL_SUM(acc, l);
    if (l == 0)
        QG_P(ddelta)[c] = QG_P(ddelta)[c] - acc[0];
}

/* x = min(max(x, lo), hi) in place (PG-TF's threshold constraint, after
 * each optimizer step). */
__kernel void qg_quant_clip(QG_T(float, x), int n, float lo, float hi)
{
    int i0 = get_global_id(0) * VW;
    for (int i = i0; i < min(i0 + VW, n); i++)
        QG_P(x)[i] = fmin(fmax(QG_P(x)[i], lo), hi);
}

/* ---- gating losses; one work-group of WG ---- */

#define QG_GATE_LOSS_PG 0
#define QG_GATE_LOSS_TF 1
#define QG_GATE_LOSS_CG 2

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_quant_gate_loss(QG_T(const float, delta), int C, float target, float coef, int kind,
                        QG_T(float, loss), QG_T(float, grad), int has_grad)
{
    __local float acc[WG];
    __local float norm;
    int l = get_local_id(0);
    float s = 0.0f;
    for (int c = l; c < C; c += WG) {
        float e = QG_P(delta)[c] - target;
        s += e * e;
    }
    acc[l] = s;
    QG_LOCAL_SUM(acc, l);
    if (l == 0) {
        float sq = acc[0];
        float r;
        if (kind == QG_GATE_LOSS_PG) {
            norm = sqrt(sq);
            r = coef * norm;
        } else {
            r = kind == QG_GATE_LOSS_TF ? coef * sq / 2.0f : coef * sq;
        }
        QG_P(loss)[0] = QG_P(loss)[0] + r;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if (!has_grad)
        return;
    for (int c = l; c < C; c += WG) {
        float e = QG_P(delta)[c] - target;
        float g;
        if (kind == QG_GATE_LOSS_PG)
            g = norm > 0.0f ? coef * e / norm : 0.0f;
        else
            g = kind == QG_GATE_LOSS_TF ? coef * e : 2.0f * coef * e;
        QG_P(grad)[c] = QG_P(grad)[c] + g;
    }
}
