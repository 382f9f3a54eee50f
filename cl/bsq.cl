/* cl/bsq.cl: BSQ's bit-plane weights (docs/methods.md §7). Host side:
 * src/quant/bsq.c (contract in src/quant/bsq.h); C twins: src/ref/ref_bsq.c;
 * tests: tests/test_bsq.c.
 *
 * A layer's weights are two plane tensors p, n of shape [M, N] (M weights,
 * the bit axis last, index 0 = MSB) and a one-element scale s:
 *   e_b   = 2^(N-1-b) / (2^N - 1)
 *   v     = sum_b (p_b - n_b) * e_b                (summed from the MSB)
 *   q     = rint(|clamp(v,-1,1)| * (2^N-1)) / (2^N-1) * sign(v)
 *   w     = q * s
 * The rounding's backward is the identity (no clip mask), so
 *   dp_b = (dw * s) * e_b,  dn_b = -dp_b,  ds = sum_i q_i * dw_i.
 * The regulariser (bit-level group Lasso) of one plane set is
 *   R = factor * sum_b sqrt(1e-8 + sum_i p_ib^2 + n_ib^2)
 * with factor = coefficient * M * N, and dR/dp_ib = factor * p_ib / norm_b.
 *
 * Float sums over many weights go through a local tree per group and then
 * a sequential pass over the group partials, so they are deterministic for
 * a given WG but ordered differently from a sequential C sum.
 *
 * Tunables:
 *   WG  work-group size, power of two in 1..1024. */
#pragma OPENCL FP_CONTRACT OFF

#ifndef WG
#define WG 64
#endif
#if (WG & (WG - 1)) != 0 || WG < 1 || WG > 1024
#error "WG must be a power of two in 1..1024"
#endif

/* e_b in float: both powers of two minus one are exact for N <= 24. */
static inline float bsq_e(int N, int b, float L)
{
    return (float)(1 << (N - 1 - b)) / L;
}

static inline float bsq_ste(float v, float L)
{
    float c = fmin(fmax(v, -1.0f), 1.0f);
    return rint(fabs(c) * L) / L * qg_sign(c);
}

/* The unscaled value q of weight i (0 for N == 0). */
static inline float bsq_value(__global const float *pp, __global const float *np, int N,
                              float L)
{
    if (N == 0)
        return 0.0f;
    float v = 0.0f;
    for (int b = 0; b < N; b++)
        v += (pp[b] - np[b]) * bsq_e(N, b, L);
    return bsq_ste(v, L);
}

static inline float bsq_group_sum(float acc, __local float *red)
{
    int lid = get_local_id(0);
    red[lid] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int h = WG / 2; h > 0; h >>= 1) {
        if (lid < h)
            red[lid] += red[lid + h];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    return red[0];
}

/* w[i] = q_i * s: the effective weights in one pass over the planes. */
__kernel void qg_bsq_fwd(QG_T(const float, p), QG_T(const float, n), QG_T(const float, s),
                         QG_T(float, w), int M, int N)
{
    int i = get_global_id(0);
    if (i >= M)
        return;
    float L = (float)((1 << N) - 1);
    size_t o = (size_t)i * N;
    QG_P(w)[i] = bsq_value(QG_P(p) + o, QG_P(n) + o, N, L) * QG_P(s)[0];
}

/* The planes' gradients (overwritten) and, per group, the partial sum of
 * q_i * dw_i for the scale's gradient (partial[group]). Grid-stride. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_bsq_bwd(QG_T(const float, p), QG_T(const float, n), QG_T(const float, s),
                QG_T(const float, dw), QG_T(float, dp), QG_T(float, dn),
                QG_T(float, partial), int M, int N)
{
    __local float red[WG];
    float L = (float)((1 << N) - 1), sc = QG_P(s)[0], acc = 0.0f;
    for (int i = get_global_id(0); i < M; i += get_global_size(0)) {
        size_t o = (size_t)i * N;
        float g = QG_P(dw)[i];
        acc += bsq_value(QG_P(p) + o, QG_P(n) + o, N, L) * g;
        float gs = g * sc;
        for (int b = 0; b < N; b++) {
            float d = gs * bsq_e(N, b, L);
            QG_P(dp)[o + b] = d;
            QG_P(dn)[o + b] = -d;
        }
    }
    float t = bsq_group_sum(acc, red);
    if (get_local_id(0) == 0)
        QG_P(partial)[get_group_id(0)] = t;
}

/* out[0] (+)= sum of partial[0..count), in order (one work-item). */
__kernel void qg_bsq_sum(QG_T(const float, partial), int count, QG_T(float, out),
                         int accumulate)
{
    if (get_global_id(0) != 0)
        return;
    float t = 0.0f;
    for (int g = 0; g < count; g++)
        t += QG_P(partial)[g];
    QG_P(out)[0] = accumulate ? QG_P(out)[0] + t : t;
}

/* Per plane b (dimension 1) and group g: partial[b*G + g] = the group's
 * share of sum_i p_ib^2 + n_ib^2. Grid-stride over dimension 0. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_bsq_reg_part(QG_T(const float, p), QG_T(const float, n), int M, int N,
                     QG_T(float, partial))
{
    __local float red[WG];
    int b = get_global_id(1);
    float acc = 0.0f;
    for (int i = get_global_id(0); i < M; i += get_global_size(0)) {
        float a = QG_P(p)[(size_t)i * N + b], c = QG_P(n)[(size_t)i * N + b];
        acc += a * a + c * c;
    }
    float t = bsq_group_sum(acc, red);
    if (get_local_id(0) == 0)
        QG_P(partial)[b * get_num_groups(0) + get_group_id(0)] = t;
}

/* norms[b] = sqrt(1e-8 + sum_g partial[b*G + g]); loss[0] += factor *
 * sum_b norms[b] (one work-item). */
__kernel void qg_bsq_reg_norms(QG_T(const float, partial), int G, int N, float factor,
                               QG_T(float, norms), QG_T(float, loss))
{
    if (get_global_id(0) != 0)
        return;
    float r = 0.0f;
    for (int b = 0; b < N; b++) {
        float t = 0.0f;
        for (int g = 0; g < G; g++)
            t += QG_P(partial)[b * G + g];
        float nb = sqrt(t + 1e-8f);
        QG_P(norms)[b] = nb;
        r += nb;
    }
    QG_P(loss)[0] += factor * r;
}

/* dp[i,b] += factor * p[i,b] / norms[b], dn likewise (element per item). */
__kernel void qg_bsq_reg_grad(QG_T(const float, p), QG_T(const float, n),
                              QG_T(const float, norms), QG_T(float, dp), QG_T(float, dn),
                              int MN, int N, float factor)
{
    int j = get_global_id(0);
    if (j >= MN)
        return;
    float nb = QG_P(norms)[j % N];
    QG_P(dp)[j] += factor * QG_P(p)[j] / nb;
    QG_P(dn)[j] += factor * QG_P(n)[j] / nb;
}

/* x = clamp(x, lo, hi) (the planes after each optimizer step). */
__kernel void qg_bsq_clamp(QG_T(float, x), int count, float lo, float hi)
{
    int i = get_global_id(0);
    if (i < count)
        QG_P(x)[i] = fmin(fmax(QG_P(x)[i], lo), hi);
}

/* Finetuning with the scheme fixed: w = bit_STE(v, N) * s from a float
 * tensor v (no planes). Backward: dv = dw * s (overwritten), and the
 * scale's partial sums as in qg_bsq_bwd. */
__kernel void qg_bsq_ft_fwd(QG_T(const float, v), QG_T(const float, s), QG_T(float, w), int M,
                            int N)
{
    int i = get_global_id(0);
    if (i >= M)
        return;
    float L = (float)((1 << N) - 1);
    QG_P(w)[i] = (N == 0 ? 0.0f : bsq_ste(QG_P(v)[i], L)) * QG_P(s)[0];
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_bsq_ft_bwd(QG_T(const float, v), QG_T(const float, s), QG_T(const float, dw),
                   QG_T(float, dv), QG_T(float, partial), int M, int N)
{
    __local float red[WG];
    float L = (float)((1 << N) - 1), sc = QG_P(s)[0], acc = 0.0f;
    for (int i = get_global_id(0); i < M; i += get_global_size(0)) {
        float g = QG_P(dw)[i];
        acc += (N == 0 ? 0.0f : bsq_ste(QG_P(v)[i], L)) * g;
        QG_P(dv)[i] = g * sc;
    }
    float t = bsq_group_sum(acc, red);
    if (get_local_id(0) == 0)
        QG_P(partial)[get_group_id(0)] = t;
}
