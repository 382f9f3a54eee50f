/* cl/conv_masked.cl: an output-masked ("output-sparse") 3x3 convolution:
 * y = conv(x, w) computed only on the tiles of y where an output mask is
 * on, for gated layers whose gate per output is known before the conv
 * runs (Channel Gating's conditional path). Host side:
 * src/ops/conv_masked.c (contract in src/ops/conv_masked.h); C twin:
 * src/ref/ref_conv_masked.c; tests: tests/test_conv_masked.c.
 *
 * A tile is KT output channels x one output row x VW consecutive columns
 * of one image. The list pass walks each (image, channel block) and
 * writes the indices of its tiles with any mask value on, in order, into
 * that block's segment of the list (so the work and its order never
 * depend on scheduling), and zeros into the tiles with none. The forward
 * then computes the listed tiles only, from zero-padded input planes
 * (qg_conv_masked_prep) and the weights in the tile's layout
 * (qg_conv_masked_wprep), and stores a tile's values where the mask is on
 * and zero where it is off. Weights known to be zero in blocks (zci > 0,
 * see qm_zero_range: the base block CG's conditional path zeroes) are
 * skipped: their products add exact zeros. The weight gradient of both
 * forms is the gather's (below).
 *
 * Per output the sum runs over (c, r, s) in that order, with fma, as the
 * dense direct kernel's; results equal the dense masked conv to float
 * rounding of a different summation grouping (tests state the tolerance).
 *
 * Layouts: x [N][C][H][W], w [K][C][3][3], y and mask [N][K][P][Q];
 * planes xp [N][C][Hd][Wd] (Hd = H + 2 pad, Wd covers the widest read);
 * weights wp [KB][C][9][KT] (KB = ceil(K/KT), zero past K); list
 * [N*KB][TPB] (TPB = P*QB tiles of a block, QB = ceil(Q/VW)); count
 * [N*KB] listed tiles per block, then at [N*KB] their total.
 *
 * Tunables:
 *   WG  local size of the forward and weight-gradient launches (1..8).
 *   VW  tile width and vector width, 8 or 16.
 *   KT  output channels per tile, 1, 2, 4 or 8.
 *   SP  items per (image, channel block) in the forward: each takes every
 *       SP-th listed tile (1, 2, 4, 8); more parallelism for small N.
 *   MODE 0: the tiles above; 1: the per-output gather below; 2: the
 *       gather on maps under 12 wide, else tiles (the host picks the
 *       kernels; both are built).
 *   GV  gather: channel vector width, 4 or 8.
 *
 * The per-output gather (qg_conv_masked_g*) computes each output whose
 * mask is on by itself, so its work follows the gate's density exactly
 * where the tiles follow the density of tiles holding any output on
 * (which fine-grained gates keep near 100%). x is laid out channels last
 * with zero padding, xh [N][Hd][Wd][Cp] (Cp = C rounded up to GV), and w
 * as wg [K][9][Cp], so an output is 9 dot products of Cp contiguous
 * values; one item per output row loads a position's input patch once
 * for up to four output channels on at it. Per output the sum runs over
 * (r, s) and then over c in GV lanes, so it differs from the tiles' and
 * the C twin's order by float rounding. The weight gradient walks dy's
 * non-zero values (zero outside the mask) per (k, GV channels), with the
 * same layouts. */
#ifndef WG
#define WG 1
#endif
#ifndef VW
#define VW 16
#endif
#ifndef KT
#define KT 4
#endif
#ifndef SP
#define SP 1
#endif
#ifndef GV
#define GV 8
#endif
#if GV != 4 && GV != 8
#error "GV must be 4 or 8"
#endif
#if VW != 8 && VW != 16
#error "VW must be 8 or 16"
#endif
#if KT != 1 && KT != 2 && KT != 4 && KT != 8
#error "KT must be 1, 2, 4 or 8"
#endif

#define QM_CAT_(a, b) a##b
#define QM_CAT(a, b) QM_CAT_(a, b)
#define vec QM_CAT(float, VW)
#define vload_v QM_CAT(vload, VW)
#define vstore_v QM_CAT(vstore, VW)
/* VW values of a plane row from column c, every st-th (st 1 or 2). */
static inline vec qm_load(__global const float *p, int st)
{
    if (st == 1)
        return vload_v(0, p);
#if VW == 16
    return (vec)(vload16(0, p).even, vload16(0, p + 16).even);
#else
    return vload16(0, p).even;
#endif
}

/* xp[plane][i][j] = x[plane][i - pad][j - pad] inside x, 0 elsewhere;
 * one item per plane row (range planes*Hd). */
__kernel void qg_conv_masked_prep(QG_T(const float, x), int H, int W, int pad, int Hd, int Wd,
                                  int rows, QG_T(float, xp))
{
    int row = get_global_id(0);
    if (row >= rows)
        return;
    int pl = row / Hd, i = row - pl * Hd;
    int h = i - pad;
    __global float *d = QG_P(xp) + (size_t)row * Wd;
    if (h < 0 || h >= H) {
        for (int j = 0; j < Wd; j++)
            d[j] = 0.0f;
        return;
    }
    __global const float *s = QG_P(x) + ((size_t)pl * H + h) * W;
    for (int j = 0; j < Wd; j++) {
        int c = j - pad;
        d[j] = c >= 0 && c < W ? s[c] : 0.0f;
    }
}

/* wp[kb][c][t][kt] = w[kb*KT + kt][c][t] (0 past K); one item per (kb, c,
 * t): range KB*C*9. */
__kernel void qg_conv_masked_wprep(QG_T(const float, w), int K, int C, int total,
                                   QG_T(float, wp))
{
    int i = get_global_id(0);
    if (i >= total)
        return;
    int t = i % 9, c = (i / 9) % C, kb = i / (9 * C);
    for (int kt = 0; kt < KT; kt++) {
        int k = kb * KT + kt;
        QG_P(wp)[(size_t)i * KT + kt] = k < K ? QG_P(w)[((size_t)k * C + c) * 9 + t] : 0.0f;
    }
}

/* Input channels [*zs, *ze) whose weights are zero for every output
 * channel of tile block kb (empty: *zs = *ze = -1): with zci > 0, output
 * k's zero block is input channels [j*zci, (j+1)*zci), j = k/zco when
 * zgroup, else j = 0 (Channel Gating's base block, whose weights the
 * conditional path has zeroed); a block of KT channels spanning two
 * output blocks has none in common. */
static inline void qm_zero_range(int kb, int K, int zci, int zco, int zgroup, int *zs, int *ze)
{
    *zs = *ze = -1;
    if (zci <= 0)
        return;
    int k0 = kb * KT, k1 = min(k0 + KT, K) - 1;
    int j0 = zgroup ? k0 / zco : 0, j1 = zgroup ? k1 / zco : 0;
    if (j0 == j1) {
        *zs = j0 * zci;
        *ze = *zs + zci;
    }
}

/* One item per (image n, channel block kb) = blk (range N*KB): lists the
 * block's tiles with any mask value on, in tile order, and zeros y on the
 * others; count[blk] = listed tiles, count[N*KB] += them (zeroed by the
 * host every forward), stats[0] += them (zeroed at the statistics'
 * reset). */
__kernel void qg_conv_masked_list(QG_T(const float, mask), int K, int P, int Q, int KB,
                                  int nblk, QG_T(int, list), QG_T(int, count), QG_T(float, y),
                                  QG_T(int, stats))
{
    int blk = get_global_id(0);
    if (blk >= nblk)
        return;
    int kb = blk % KB, n = blk / KB;
    int QB = (Q + VW - 1) / VW, TPB = P * QB;
    int k0 = kb * KT, k1 = min(k0 + KT, K);
    size_t PQ = (size_t)P * Q;
    __global const float *mb = QG_P(mask) + ((size_t)n * K) * PQ;
    __global float *yb = QG_P(y) + ((size_t)n * K) * PQ;
    __global int *lst = QG_P(list) + (size_t)blk * TPB;
    int cnt = 0;
    for (int t = 0; t < TPB; t++) {
        int p = t / QB, q0 = (t - p * QB) * VW;
        int q1 = min(q0 + VW, Q);
        int on = 0;
        for (int k = k0; k < k1 && !on; k++) {
            __global const float *m = mb + k * PQ + p * Q;
            for (int q = q0; q < q1; q++)
                on |= m[q] != 0.0f;
        }
        if (on) {
            lst[cnt++] = t;
        } else {
            for (int k = k0; k < k1; k++) {
                __global float *d = yb + k * PQ + p * Q;
                for (int q = q0; q < q1; q++)
                    d[q] = 0.0f;
            }
        }
    }
    QG_P(count)[blk] = cnt;
    if (cnt) {
        atomic_add((volatile __global int *)QG_P(count) + nblk, cnt);
        atomic_add((volatile __global int *)QG_P(stats), cnt);
    }
}

/* The listed tiles: item (blk, sp) computes tiles sp, sp+SP, ... of block
 * blk's list; y = conv where mask is on, 0 where off. Range
 * (N*KB, SP). */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_conv_masked_fwd(QG_T(const float, xp), int C, int Hd, int Wd, int st,
                        QG_T(const float, wp), int K, int P, int Q, int KB, int nblk,
                        QG_T(const int, list), QG_T(const int, count),
                        QG_T(const float, mask), QG_T(float, y), int zci, int zco, int zgroup)
{
    int blk = get_global_id(0), sp = get_global_id(1);
    if (blk >= nblk)
        return;
    int kb = blk % KB, n = blk / KB;
    int QB = (Q + VW - 1) / VW, TPB = P * QB;
    int cnt = QG_P(count)[blk];
    size_t PQ = (size_t)P * Q, L = (size_t)Hd * Wd;
    __global const int *lst = QG_P(list) + (size_t)blk * TPB;
    __global const float *xn = QG_P(xp) + (size_t)n * C * L;
    __global const float *wk = QG_P(wp) + (size_t)kb * C * 9 * KT;
    int zs, ze;
    qm_zero_range(kb, K, zci, zco, zgroup, &zs, &ze);
    for (int i = sp; i < cnt; i += SP) {
        int t = lst[i];
        int p = t / QB, q0 = (t - p * QB) * VW;
        vec acc[KT];
        for (int kt = 0; kt < KT; kt++)
            acc[kt] = (vec)0.0f;
        __global const float *x0 = xn + (size_t)(p * st) * Wd + q0 * st;
        for (int c = 0; c < C; c++) {
            if (c == zs) { /* the tile's zero weights: their products add nothing */
                c = ze - 1;
                continue;
            }
            __global const float *xb = x0 + c * L;
            __global const float *wb = wk + c * 9 * KT;
            _Pragma("unroll") for (int r = 0; r < 3; r++) {
                _Pragma("unroll") for (int s = 0; s < 3; s++) {
                    vec xv = qm_load(xb + r * Wd + s, st);
                    _Pragma("unroll") for (int kt = 0; kt < KT; kt++)
                        acc[kt] = fma((vec)wb[(r * 3 + s) * KT + kt], xv, acc[kt]);
                }
            }
        }
        for (int kt = 0; kt < KT; kt++) {
            int k = kb * KT + kt;
            if (k >= K)
                break;
            size_t at = ((size_t)n * K + k) * PQ + (size_t)p * Q + q0;
            __global float *d = QG_P(y) + at;
            __global const float *m = QG_P(mask) + at;
            if (q0 + VW <= Q) {
                vstore_v(select((vec)0.0f, acc[kt], isnotequal(vload_v(0, m), (vec)0.0f)), 0,
                         d);
            } else {
                float v[VW];
                vstore_v(acc[kt], 0, v);
                for (int l = 0; l < Q - q0; l++)
                    d[l] = m[l] != 0.0f ? v[l] : 0.0f;
            }
        }
    }
}

/* ---- the per-output gather (MODE 1) ---- */

#define gvec QM_CAT(float, GV)
#define vload_g QM_CAT(vload, GV)
#define vstore_g QM_CAT(vstore, GV)

static inline float qm_ghsum(gvec v)
{
#if GV == 8
    float4 h = v.lo + v.hi;
#else
    float4 h = v;
#endif
    return (h.x + h.y) + (h.z + h.w);
}

/* xh[n][i][j][c] = x[n][c][i - pad][j - pad] inside x and c < C, else 0;
 * one item per (n, i): range N*Hd. */
__kernel void qg_conv_masked_gprep(QG_T(const float, x), int C, int H, int W, int pad, int Hd,
                                   int Wd, int Cp, int rows, QG_T(float, xh))
{
    int row = get_global_id(0);
    if (row >= rows)
        return;
    int n = row / Hd, h = row - n * Hd - pad;
    __global float *d = QG_P(xh) + (size_t)row * Wd * Cp;
    size_t HW = (size_t)H * W;
    __global const float *s = QG_P(x) + (size_t)n * C * HW + (size_t)h * W;
    for (int j = 0; j < Wd; j++) {
        int v = j - pad;
        int in = h >= 0 && h < H && v >= 0 && v < W;
        for (int c = 0; c < Cp; c++)
            d[j * Cp + c] = in && c < C ? s[c * HW + v] : 0.0f;
    }
}

/* wg[k][t][c] = w[k][c][t] (0 for c >= C); one item per (k, t): range K*9. */
__kernel void qg_conv_masked_gwprep(QG_T(const float, w), int C, int Cp, int total,
                                    QG_T(float, wg))
{
    int i = get_global_id(0);
    if (i >= total)
        return;
    int k = i / 9, t = i - k * 9;
    __global float *d = QG_P(wg) + (size_t)i * Cp;
    for (int c = 0; c < Cp; c++)
        d[c] = c < C ? QG_P(w)[((size_t)k * C + c) * 9 + t] : 0.0f;
}

/* Channels [*zs, *ze) whose weights are zero for every one of the sorted
 * output channels k0 <= .. <= k1, when that range is whole GV vectors
 * (else none: -1), as qm_zero_range for tiles. */
static inline void qm_gzero(int k0, int k1, int zci, int zco, int zgroup, int *zs, int *ze)
{
    *zs = *ze = -1;
    if (zci <= 0 || zci % GV)
        return;
    int j0 = zgroup ? k0 / zco : 0, j1 = zgroup ? k1 / zco : 0;
    if (j0 == j1) {
        *zs = j0 * zci;
        *ze = *zs + zci;
    }
}

/* out[i] = the output of channel ks[i] at the position whose input patch
 * starts at xs, for NK = 4, 2 or 1 channels sharing each patch load;
 * channels [zs, ze) skipped (zero weights). Accumulators are named
 * values, not arrays (PoCL kept indexed ones on the stack), and rotate
 * every step, so that 8 (NK 4, 2) or 4 (NK 1) fma chains are in flight:
 * with one chain per output a step waited on the previous one's latency. */
#define QM_GLOOP(BODY)                                                                        \
    for (int t = 0; t < 9; t++) {                                                             \
        int xo = ((t / 3) * Wd + t % 3) * Cp, wo = t * Cp;                                    \
        for (int c = 0; c < Cp; c += GV) {                                                    \
            if (c == zs) {                                                                    \
                c = ze - GV;                                                                  \
                continue;                                                                     \
            }                                                                                 \
            gvec xv = vload_g(0, xs + xo + c);                                                \
            BODY                                                                              \
        }                                                                                     \
    }

static inline void qm_gdot4(__global const float *xs, __global const float *wg, const int *ks,
                            int Cp, int Wd, int zs, int ze, float *out)
{
    __global const float *w0 = wg + (size_t)ks[0] * 9 * Cp, *w1 = wg + (size_t)ks[1] * 9 * Cp;
    __global const float *w2 = wg + (size_t)ks[2] * 9 * Cp, *w3 = wg + (size_t)ks[3] * 9 * Cp;
    gvec a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0, u;
    QM_GLOOP(u = fma(vload_g(0, w0 + wo + c), xv, a0); a0 = b0; b0 = u;
             u = fma(vload_g(0, w1 + wo + c), xv, a1); a1 = b1; b1 = u;
             u = fma(vload_g(0, w2 + wo + c), xv, a2); a2 = b2; b2 = u;
             u = fma(vload_g(0, w3 + wo + c), xv, a3); a3 = b3; b3 = u;)
    out[0] = qm_ghsum(a0 + b0);
    out[1] = qm_ghsum(a1 + b1);
    out[2] = qm_ghsum(a2 + b2);
    out[3] = qm_ghsum(a3 + b3);
}

static inline void qm_gdot2(__global const float *xs, __global const float *wg, const int *ks,
                            int Cp, int Wd, int zs, int ze, float *out)
{
    __global const float *w0 = wg + (size_t)ks[0] * 9 * Cp, *w1 = wg + (size_t)ks[1] * 9 * Cp;
    gvec a0 = 0, a1 = 0, b0 = 0, b1 = 0, c0 = 0, c1 = 0, d0 = 0, d1 = 0, u;
    QM_GLOOP(u = fma(vload_g(0, w0 + wo + c), xv, a0); a0 = b0; b0 = c0; c0 = d0; d0 = u;
             u = fma(vload_g(0, w1 + wo + c), xv, a1); a1 = b1; b1 = c1; c1 = d1; d1 = u;)
    out[0] = qm_ghsum((a0 + b0) + (c0 + d0));
    out[1] = qm_ghsum((a1 + b1) + (c1 + d1));
}

static inline void qm_gdot1(__global const float *xs, __global const float *wg, const int *ks,
                            int Cp, int Wd, int zs, int ze, float *out)
{
    __global const float *w0 = wg + (size_t)ks[0] * 9 * Cp;
    gvec a0 = 0, b0 = 0, c0 = 0, d0 = 0, u;
    QM_GLOOP(u = fma(vload_g(0, w0 + wo + c), xv, a0); a0 = b0; b0 = c0; c0 = d0; d0 = u;)
    out[0] = qm_ghsum((a0 + b0) + (c0 + d0));
}

/* Stores the outputs of channels ks[0..nk) (nk <= 4) at offset o of y
 * (channel stride PQ), computed from the patch at xs. */
static inline void qm_gstore(__global const float *xs, __global const float *wg, const int *ks,
                             int nk, int Cp, int Wd, int zci, int zco, int zgroup,
                             __global float *y, size_t o, size_t PQ)
{
    float v[4];
    int zs, ze, i = 0;
    while (i < nk) {
        int m = nk - i >= 4 ? 4 : nk - i >= 2 ? 2 : 1;
        qm_gzero(ks[i], ks[i + m - 1], zci, zco, zgroup, &zs, &ze);
        if (m == 4)
            qm_gdot4(xs, wg, ks + i, Cp, Wd, zs, ze, v);
        else if (m == 2)
            qm_gdot2(xs, wg, ks + i, Cp, Wd, zs, ze, v);
        else
            qm_gdot1(xs, wg, ks + i, Cp, Wd, zs, ze, v);
        for (int j = 0; j < m; j++)
            y[ks[i + j] * PQ + o] = v[j];
        i += m;
    }
}

/* y = mask != 0 ? conv : 0, one item per output row (n, p): range N*P.
 * count[0] += the outputs computed (zeroed by the host every forward),
 * stats[0] += them (zeroed at the statistics' reset). */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_conv_masked_gfwd(QG_T(const float, xh), int Cp, int Hd, int Wd, int st,
                         QG_T(const float, wg), int K, int P, int Q, int rows,
                         QG_T(const float, mask), QG_T(float, y), int zci, int zco, int zgroup,
                         QG_T(int, count), QG_T(int, stats))
{
    int row = get_global_id(0);
    if (row >= rows)
        return;
    int n = row / P, p = row - n * P;
    size_t PQ = (size_t)P * Q, o0 = (size_t)n * K * PQ + (size_t)p * Q;
    __global const float *m = QG_P(mask) + o0;
    __global float *yr = QG_P(y) + o0;
    __global const float *xr = QG_P(xh) + ((size_t)n * Hd + p * st) * Wd * Cp;
    int on = 0;
    for (int q = 0; q < Q; q++) {
        __global const float *xs = xr + (size_t)q * st * Cp;
        int ks[4], g = 0;
        for (int k = 0; k < K; k++) {
            if (m[k * PQ + q] != 0.0f) {
                ks[g++] = k;
                if (g == 4) {
                    qm_gstore(xs, QG_P(wg), ks, 4, Cp, Wd, zci, zco, zgroup, yr, q, PQ);
                    on += 4;
                    g = 0;
                }
            } else {
                yr[k * PQ + q] = 0.0f;
            }
        }
        if (g) {
            qm_gstore(xs, QG_P(wg), ks, g, Cp, Wd, zci, zco, zgroup, yr, q, PQ);
            on += g;
        }
    }
    if (on) {
        atomic_add((volatile __global int *)QG_P(count), on);
        atomic_add((volatile __global int *)QG_P(stats), on);
    }
}

/* Weight-gradient partials from dy's non-zero values: item (k, cv, chunk)
 * sums, over the images of its chunk (wn each), dy[n][k][p][q] times the
 * patch of channels [cv*GV, cv*GV + GV) at (p, q), into
 * part[chunk][k][t][c] (zeros where k's weights are declared zero). Range
 * (K, Cp/GV, nchunks). */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_conv_masked_gwgrad(QG_T(const float, xh), int Cp, int Hd, int Wd, int st,
                           QG_T(const float, dy), int K, int P, int Q, int N, int wn,
                           QG_T(float, part), int zci, int zco, int zgroup)
{
    int k = get_global_id(0), c0 = get_global_id(1) * GV, chunk = get_global_id(2);
    int n0 = chunk * wn;
    if (k >= K || c0 >= Cp || n0 >= N)
        return;
    __global float *o = QG_P(part) + (((size_t)chunk * K + k) * 9) * Cp + c0;
    int j = zgroup && zco > 0 ? k / zco : 0;
    if (zci > 0 && c0 + GV > j * zci && c0 < (j + 1) * zci && zci % GV == 0) {
        for (int t = 0; t < 9; t++)
            vstore_g((gvec)0.0f, 0, o + t * Cp);
        return;
    }
    int n1 = min(n0 + wn, N);
    size_t PQ = (size_t)P * Q;
    gvec acc[9];
    for (int t = 0; t < 9; t++)
        acc[t] = (gvec)0.0f;
    for (int n = n0; n < n1; n++) {
        __global const float *d = QG_P(dy) + ((size_t)n * K + k) * PQ;
        __global const float *xn = QG_P(xh) + (size_t)n * Hd * Wd * Cp + c0;
        for (int p = 0; p < P; p++) {
            for (int q = 0; q < Q; q++) {
                float g = d[p * Q + q];
                if (g == 0.0f)
                    continue;
                __global const float *xs = xn + ((size_t)(p * st) * Wd + q * st) * Cp;
                gvec gv = (gvec)g;
                _Pragma("unroll") for (int t = 0; t < 9; t++)
                    acc[t] = fma(gv, vload_g(0, xs + ((t / 3) * Wd + t % 3) * Cp), acc[t]);
            }
        }
    }
    for (int t = 0; t < 9; t++)
        vstore_g(acc[t], 0, o + t * Cp);
}

/* dw[k][c][t] (= or += when accumulate) = the sum over the nchunks
 * partials, in chunk order, of part[chunk][k][t][c]; 0 on declared zero
 * blocks. Range K*C*9. */
__kernel void qg_conv_masked_gwsum(QG_T(const float, part), int nchunks, int K, int C, int Cp,
                                   int accumulate, int zci, int zco, int zgroup,
                                   QG_T(float, dw))
{
    int i = get_global_id(0);
    if (i >= K * C * 9)
        return;
    int t = i % 9, c = (i / 9) % C, k = i / (9 * C);
    int j = zgroup && zco > 0 ? k / zco : 0;
    float v = 0.0f;
    if (!(zci > 0 && c >= j * zci && c < (j + 1) * zci)) {
        size_t at = ((size_t)k * 9 + t) * Cp + c, step = (size_t)K * 9 * Cp;
        for (int ch = 0; ch < nchunks; ch++)
            v += QG_P(part)[ch * step + at];
    }
    __global float *d = QG_P(dw) + i;
    *d = accumulate ? *d + v : v;
}

/* ---- the data gradient of a masked dy (both forms) ----
 * dx = the transposed conv of dy, from dy's non-zero values only: a
 * compaction pass lists, per output position, the channels whose dy is
 * non-zero and their values; then one item per input row gathers, for
 * each input position and tap, the listed channels of the output position
 * that tap reaches, GV input channels at a time, from the weights laid
 * out as wt [9][K][Cp]. */

/* Per output position o = (n, p, q): cnt[o] channels k with dy != 0, in
 * order, in kl[o*K ..] and their values in gv[o*K ..]. One item per
 * (n, p): range N*P. */
__kernel void qg_conv_masked_dcompact(QG_T(const float, dy), int K, int P, int Q, int rows,
                                      QG_T(int, kl), QG_T(float, gv), QG_T(int, cnt))
{
    int row = get_global_id(0);
    if (row >= rows)
        return;
    int n = row / P, p = row - n * P;
    size_t PQ = (size_t)P * Q;
    __global const float *d = QG_P(dy) + (size_t)n * K * PQ + (size_t)p * Q;
    for (int q = 0; q < Q; q++) {
        size_t o = (size_t)row * Q + q;
        __global int *ko = QG_P(kl) + o * K;
        __global float *go = QG_P(gv) + o * K;
        int m = 0;
        for (int k = 0; k < K; k++) {
            float g = d[k * PQ + q];
            if (g != 0.0f) {
                ko[m] = k;
                go[m] = g;
                m++;
            }
        }
        QG_P(cnt)[o] = m;
    }
}

/* wt[t][k][c] = w[k][c][t] (0 for c >= C); one item per (t, k): range 9*K. */
__kernel void qg_conv_masked_dwprep(QG_T(const float, w), int K, int C, int Cp, int total,
                                    QG_T(float, wt))
{
    int i = get_global_id(0);
    if (i >= total)
        return;
    int t = i / K, k = i - t * K;
    __global float *d = QG_P(wt) + (size_t)i * Cp;
    for (int c = 0; c < Cp; c++)
        d[c] = c < C ? QG_P(w)[((size_t)k * C + c) * 9 + t] : 0.0f;
}

/* The dx of GV*NV channels from c0 at input position (h, w): the sum
 * over taps reaching an output position and its listed channels k of
 * dy * wt[t][k][c0 ..]; NV named accumulators share each dy value. */
#define QM_DGATHER(NV, BODY)                                                                  \
    for (int r = 0; r < 3; r++) {                                                             \
        int pp = h + pad - r;                                                                 \
        if (pp < 0 || pp % st || pp / st >= P)                                                \
            continue;                                                                         \
        for (int s = 0; s < 3; s++) {                                                         \
            int qq = w + pad - s;                                                             \
            if (qq < 0 || qq % st || qq / st >= Q)                                            \
                continue;                                                                     \
            size_t o = ((size_t)n * P + pp / st) * Q + qq / st;                               \
            int m = QG_P(cnt)[o];                                                             \
            __global const int *ko = QG_P(kl) + o * K;                                        \
            __global const float *go = QG_P(gv) + o * K;                                      \
            __global const float *wtt = QG_P(wt) + (size_t)(r * 3 + s) * K * Cp + c0;         \
            for (int i = 0; i < m; i++) {                                                     \
                int k = ko[i];                                                                \
                if (zskip) {                                                                  \
                    int j = zgroup ? k / zco : 0;                                             \
                    if (c0 >= j * zci && c0 < (j + 1) * zci)                                  \
                        continue;                                                             \
                }                                                                             \
                gvec g = (gvec)go[i];                                                         \
                __global const float *wk = wtt + (size_t)k * Cp;                              \
                BODY                                                                          \
            }                                                                                 \
        }                                                                                     \
    }

/* dx[n][c][h][w] (= or += when accumulate) = sum over taps t = (r, s)
 * reaching an output position (p, q) and its listed channels k of
 * dy[n][k][p][q] * w[k][c][t]. Channels go GV*4 at a time (GV*2 when
 * Cp is 2 GV), so that each dy value loaded feeds 4 (2) fma; a declared
 * zero block is skipped where it covers the whole group (zci a multiple
 * of the group's channels, aligned). One item per input row (n, h):
 * range N*H. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_conv_masked_dgrad(QG_T(const int, kl), QG_T(const float, gv), QG_T(const int, cnt),
                          QG_T(const float, wt), int C, int Cp, int H, int W, int K, int P, int Q,
                          int st, int pad, int rows, int accumulate, int zci, int zco,
                          int zgroup, QG_T(float, dx))
{
    int row = get_global_id(0);
    if (row >= rows)
        return;
    int n = row / H, h = row - n * H;
    size_t HW = (size_t)H * W;
    int nv = Cp % (4 * GV) == 0 ? 4 : Cp % (2 * GV) == 0 ? 2 : 1, cw = nv * GV;
    int zskip = zci > 0 && zci % cw == 0;
    for (int w = 0; w < W; w++) {
        for (int c0 = 0; c0 < Cp; c0 += cw) {
            gvec a0 = 0, a1 = 0, a2 = 0, a3 = 0;
            if (nv == 4) {
                QM_DGATHER(4, a0 = fma(g, vload_g(0, wk), a0);
                           a1 = fma(g, vload_g(1, wk), a1);
                           a2 = fma(g, vload_g(2, wk), a2);
                           a3 = fma(g, vload_g(3, wk), a3);)
            } else if (nv == 2) {
                QM_DGATHER(2, a0 = fma(g, vload_g(0, wk), a0);
                           a1 = fma(g, vload_g(1, wk), a1);)
            } else {
                QM_DGATHER(1, a0 = fma(g, vload_g(0, wk), a0);)
            }
            float v[4 * GV];
            vstore_g(a0, 0, v);
            vstore_g(a1, 1, v);
            vstore_g(a2, 2, v);
            vstore_g(a3, 3, v);
            for (int l = 0; l < cw && c0 + l < C; l++) {
                __global float *d = QG_P(dx) + ((size_t)n * C + c0 + l) * HW + (size_t)h * W + w;
                *d = accumulate ? *d + v[l] : v[l];
            }
        }
    }
}
