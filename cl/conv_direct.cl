/* cl/conv_direct.cl: direct 2-D convolution (forward, backward data,
 * backward weight) for small square kernels, written so that a CPU
 * compiler turns the inner loops into wide vector FMAs. Host side:
 * src/ops/conv_direct.c (src/ops/conv_plan.c picks this path or im2col +
 * GEMM); C twins:
 * src/ref/ref_conv.c; tests: tests/test_conv.c.
 *
 * Every pass is one stride-1 "valid" convolution over prepared planes.
 * qg_conv_direct_prep copies an NCHW tensor into planes of row stride Wd
 * (zero padding included, so the hot loops have no bounds checks):
 *   forward, stride 1:  X[i][j] = x[i - pad][j - pad]
 *   forward, stride 2:  four phase planes per channel, X_ab[i][j] =
 *                       x[2i + a - pad][2j + b - pad]; the 3x3 kernel
 *                       becomes a 2x2 one over 4C channels (missing taps 0)
 *   backward data:      dy dilated by the stride and padded by R-1-pad,
 *                       convolved with the flipped, transposed weights
 *   backward weight:    dy itself with row stride Wd (zeros past Q)
 * In a plane of row stride Wd the output at (p, q) is position j = p*Wd + q
 * and its tap (r, s) sits at j + r*Wd + s, so a run of VW consecutive j is
 * one unaligned vector load per tap whatever the row boundaries; lanes
 * with q >= Q are computed and dropped. qg_conv_direct_wprep lays the
 * weights out the same way, padded to a multiple of KT output channels.
 *
 * Tunables:
 *   WG   local size along dimension 0 (power of two, 1..8); items are
 *        independent, so any value gives the same result.
 *   VW   vector width along j, 8 or 16.
 *   JT   vectors along j per item in fwd (1..4): JT*VW outputs per channel.
 *   KT   output channels per item in fwd (1..8): KT*JT accumulators.
 *   WKT  output channels per item in wgrad (1..3): WKT*taps accumulators
 *        (the row-walk wgrad caps it at 2).
 *   WN   images per wgrad partial sum at least (1..16); the host raises
 *        it on small maps so an item has enough work to pay for itself
 *        (the kernel takes the count as its argument wn); partials are summed in a
 *        fixed order by wgrad_sum, so results are deterministic. */
#ifndef WG
#define WG 1
#endif
#ifndef VW
#define VW 16
#endif
#ifndef JT
#define JT 2
#endif
#ifndef KT
#define KT 8
#endif
#ifndef WKT
#define WKT 2
#endif
#ifndef WN
#define WN 4
#endif
#if VW != 8 && VW != 16
#error "VW must be 8 or 16"
#endif
#if JT < 1 || JT > 4 || KT < 1 || KT > 8 || WKT < 1 || WKT > 3 || WN < 1 || WN > 16
#error "JT in 1..4, KT in 1..8, WKT in 1..3, WN in 1..16"
#endif

#define QG_CAT_(a, b) a##b
#define QG_CAT(a, b) QG_CAT_(a, b)
#define vec QG_CAT(float, VW)
#define vload_v QG_CAT(vload, VW)
#define vstore_v QG_CAT(vstore, VW)
#define ivec QG_CAT(int, VW)
#if VW == 16
#define QG_LANES ((ivec)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
#else
#define QG_LANES ((ivec)(0, 1, 2, 3, 4, 5, 6, 7))
#endif

static inline float hsum8(float8 v)
{
    float4 a = v.lo + v.hi;
    float2 b = a.lo + a.hi;
    return b.lo + b.hi;
}

#if VW == 16
static inline float hsum(float16 v) { return hsum8(v.lo + v.hi); }
#else
static inline float hsum(float8 v) { return hsum8(v); }
#endif

/* Rounding to at most QG_QT_MAX levels without a division per element:
 * the level q(a) = rint(min(max(a/sc, 0), 1)*L) of a = |v| never falls as
 * a grows, so q(a) = #{k : a >= T[k]} with T[k-1] the least float whose
 * level reaches k, and the rounded value is V[q] * sign(v), V[q] = q/L*sc.
 * Found by bisection over float bit patterns with qg_quant_apply's own
 * operations (common.cl's qg_code), the table reproduces that pass bit for bit (NaN
 * where no float reaches k: a >= NaN never holds). Layout: T in t[0..15],
 * V in t[16..31]. One item. QG_QT_MAX is 2^QG_CONV_QUANT_BITS_MAX - 1
 * (src/ops/conv.h). */
#define QG_QT_MAX 15

__kernel void qg_conv_direct_qtable(QG_T(const float, s), int L, QG_T(float, t))
{
    if (get_global_id(0) != 0)
        return;
    float sc = QG_P(s)[0], Lf = (float)L;
    __global float *tp = QG_P(t);
    for (int k = 1; k <= 16; k++) {
        float T = NAN;
        if (k <= L && qg_code(INFINITY, sc, Lf) >= (float)k) {
            uint lo = 0, hi = 0x7f800000u;
            while (lo < hi) {
                uint mid = lo + (hi - lo) / 2;
                if (qg_code(as_float(mid), sc, Lf) >= (float)k)
                    hi = mid;
                else
                    lo = mid + 1;
            }
            T = as_float(lo);
        }
        tp[k - 1] = T;
        tp[16 + k - 1] = k - 1 <= L ? (float)(k - 1) / Lf * sc : 0.0f;
    }
}

/* qt_round below on W lanes (a select per level: PoCL lowers shuffle()
 * element by element) */
#define QT_ROUND_W(W)                                                                     \
    static inline float##W qt_round##W(float##W v, const float *T, const float *V, int L) \
    {                                                                                     \
        float##W a = fabs(v), r = (float##W)V[0];                                         \
        for (int k = 0; k < L; k++)                                                       \
            r = select(r, (float##W)V[k + 1], isgreaterequal(a, (float##W)T[k]));         \
        float##W sg = select((float##W)0.0f, (float##W)1.0f, isgreater(v, (float##W)0.0f)); \
        return r * select(sg, (float##W)-1.0f, isless(v, (float##W)0.0f));               \
    }
QT_ROUND_W(16)
QT_ROUND_W(8)
QT_ROUND_W(4)

static inline float qt_round(float v, const float *T, const float *V, int L)
{
    float a = fabs(v), r = V[0];
    for (int k = 0; k < L; k++)
        r = a >= T[k] ? V[k + 1] : r;
    return r * qg_sign(v);
}

/* dst[plane][i*Wd + j] for plane = (n*Cs + c)*PH*PH + a*PH + b, i < Lr,
 * j < Wd: with th = i*mul + a - off_h (tw alike), the source element
 * src[n][c][th/div][tw/div] when i < Hd, th and tw are non-negative
 * multiples of div and in range; 0 otherwise. qL in 1..QG_QT_MAX rounds
 * each source element to qL levels by the table qt of qg_conv_direct_qtable
 * on the way (a quantized conv's input then needs no quantized copy). One
 * item per plane (range nb*Cs*PH*PH): per-element items cost more in
 * scheduling and integer division than the copy itself. Without dilation
 * (div = 1) each row is zeros, a run of source elements, zeros. */
__kernel void qg_conv_direct_prep(QG_T(const float, src), int Hs, int Ws, int PH, int mul,
                                  int div, int off_h, int off_w, int Hd, int Wd, int Lr,
                                  int planes, QG_T(float, dst), QG_T(const float, qt), int qL)
{
    int plane = get_global_id(0);
    if (plane >= planes)
        return;
    int pp = PH * PH;
    int nc = plane / pp, ph = plane - nc * pp;
    int a = ph / PH, b = ph - a * PH;
    __global const float *sp = QG_P(src) + (size_t)nc * Hs * Ws;
    __global float *dp = QG_P(dst) + (size_t)plane * Lr * Wd;
    float T[16], V[16];
    for (int k = 0; k < 16 && qL; k++) {
        T[k] = QG_P(qt)[k];
        V[k] = QG_P(qt)[16 + k];
    }
#define QX(v) (qL ? qt_round((v), T, V, qL) : (v))
    /* columns j in [jlo, jhi) read tw = j*mul + b - off_w in [0, Ws) (div = 1) */
    int jlo = off_w - b > 0 ? (off_w - b + mul - 1) / mul : 0;
    int jhi = (Ws - 1 + off_w - b) / mul + 1;
    jhi = min(max(jhi, jlo), Wd);
    for (int i = 0; i < Lr; i++, dp += Wd) {
        int th = i * mul + a - off_h;
        /* (div 1 spelled out: an integer division per row showed in profiles) */
        int row = i < Hd && th >= 0 && (div == 1 ? th < Hs : th % div == 0 && th / div < Hs);
        if (!row) {
            for (int j = 0; j < Wd; j++)
                dp[j] = 0.0f;
        } else if (div == 1) {
            __global const float *sr = sp + th * Ws + b - off_w;
            for (int j = 0; j < jlo; j++)
                dp[j] = 0.0f;
            int j = jlo;
            if (qL) {
                /* in vectors where the row allows (PoCL leaves the loop
                 * scalar otherwise); stride 2 reads the odd element after
                 * the last, so only while that is in the row */
                int rest = Ws - (b - off_w); /* readable from sr in this row */
                if (mul == 1) {
                    for (; j + 16 <= jhi; j += 16)
                        vstore16(qt_round16(vload16(0, sr + j), T, V, qL), 0, dp + j);
                    for (; j + 8 <= jhi; j += 8)
                        vstore8(qt_round8(vload8(0, sr + j), T, V, qL), 0, dp + j);
                    for (; j + 4 <= jhi; j += 4)
                        vstore4(qt_round4(vload4(0, sr + j), T, V, qL), 0, dp + j);
                } else if (mul == 2) {
                    for (; j + 16 <= jhi && 2 * j + 32 <= rest; j += 16)
                        vstore16(qt_round16((float16)(vload16(0, sr + 2 * j).even,
                                                      vload16(0, sr + 2 * j + 16).even),
                                            T, V, qL), 0, dp + j);
                    for (; j + 8 <= jhi && 2 * j + 16 <= rest; j += 8)
                        vstore8(qt_round8(vload16(0, sr + 2 * j).even, T, V, qL), 0, dp + j);
                    for (; j + 4 <= jhi && 2 * j + 8 <= rest; j += 4)
                        vstore4(qt_round4(vload8(0, sr + 2 * j).even, T, V, qL), 0, dp + j);
                }
                /* (stride 2 leaves about a quarter of each row here: fours
                 * gathered into a vector, as the compare loop per element
                 * branches on every level) */
                for (; j + 4 <= jhi; j += 4)
                    vstore4(qt_round4((float4)(sr[j * mul], sr[(j + 1) * mul], sr[(j + 2) * mul],
                                               sr[(j + 3) * mul]),
                                      T, V, qL), 0, dp + j);
                for (; j < jhi; j++)
                    dp[j] = qt_round(sr[j * mul], T, V, qL);
            } else if (mul == 1) {
                for (; j < jhi; j++)
                    dp[j] = sr[j];
            } else {
                for (; j < jhi; j++)
                    dp[j] = sr[j * mul];
            }
            for (int j = jhi; j < Wd; j++)
                dp[j] = 0.0f;
        } else {
            __global const float *sr = sp + th / div * Ws;
            for (int j = 0; j < Wd; j++) {
                int tw = j * mul + b - off_w;
                dp[j] = tw >= 0 && tw % div == 0 && tw / div < Ws ? QX(sr[tw / div]) : 0.0f;
            }
        }
    }
#undef QX
}

/* Weights for the fwd kernel, dst[Kp/KT][Ci][TR][TS][KT] (an item's KT
 * output channels innermost, so each tap's KT weights sit at constant
 * offsets from one pointer: indexed per channel, PoCL kept 72 offsets on
 * the stack and loaded one per broadcast). flip = 0 (forward):
 * out channel ko < K, in channel ci = c*st*st + a*st + b, tap (r', s') ->
 * w[ko][c][r'*st + a][s'*st + b] (0 past R, S or K). flip = 1 (backward
 * data, st = 1): out channel ko < C, in channel ci = k, tap (r', s') ->
 * w[k][ko][R-1-r'][S-1-s']. flip = 2 (backward data of a stride-2 conv
 * with pad 1, by output phases): out channel ko = c*4 + a*2 + b < 4C (the
 * phase (a, b) of dx), in channel ci = k, tap (u, v) -> w[k][c][a+1-2u]
 * [b+1-2v] (0 outside the kernel): dx[2i+a][2j+b] = sum over k, u, v of
 * that weight times dy[i+u][j+v]. trans = 1 writes the same values in the
 * order [Ci][TR][TS][Kp] instead. Range (Kp*Ci, G) (an item writes its
 * taps): a grouped conv's group g reads its own K x C x R x S block of w
 * (K, C one group's) and writes its layout at g*wgs of dst. */
__kernel void qg_conv_direct_wprep(QG_T(const float, w), int K, int C, int R, int S, int st,
                                   int TR, int TS, int flip, int Kp, int Ci, int trans,
                                   QG_T(float, dst), int wgs)
{
    /* one item per (ko, ci) and its TR*TS taps: integer division per
     * value cost more than the copy */
    int idx = get_global_id(0);
    /* group g (dimension 1) of a grouped conv: its K x C x R x S block of
     * w, its own layout at g*wgs of dst (K and C are one group's) */
    int grp = get_global_id(1);
    if (idx >= Kp * Ci)
        return;
    int ci, ko;
    if (trans) { /* dst[Ci][TR][TS][Kp]: output channels innermost (fwd_kv) */
        ko = idx % Kp;
        ci = idx / Kp;
    } else {
        ci = idx % Ci;
        ko = idx / Ci;
    }
    int pp = st * st, c = ci / pp, ph = ci - c * pp;
    int a = ph / st, b = ph - a * st;
    __global const float *wp = QG_P(w) + (size_t)grp * K * C * R * S;
    __global float *dp = QG_P(dst) + (size_t)grp * wgs;
    for (int rr = 0; rr < TR; rr++) {
        for (int ss = 0; ss < TS; ss++) {
            int t = rr * TS + ss;
            float v = 0.0f;
            if (flip == 2) {
                int cc = ko / 4, pa = (ko / 2) % 2, pb = ko % 2;
                int r = pa + 1 - 2 * rr, s = pb + 1 - 2 * ss;
                if (cc < C && r >= 0 && r < R && s >= 0 && s < S)
                    v = wp[((ci * C + cc) * R + r) * S + s];
            } else if (flip) {
                if (ko < C)
                    v = wp[((ci * C + ko) * R + R - 1 - rr) * S + S - 1 - ss];
            } else {
                int r = rr * st + a, s = ss * st + b;
                if (ko < K && r < R && s < S)
                    v = wp[((ko * C + c) * R + r) * S + s];
            }
            size_t at = trans ? ((size_t)ci * TR * TS + t) * Kp + ko
                              : (((size_t)(ko / KT) * Ci + ci) * TR * TS + t) * KT + ko % KT;
            dp[at] = v;
        }
    }
}

/* dx[n][c][h][w] (= or += when accumulate) = ph[n][c*4 + (h%2)*2 + w%2]
 * [h/2][w/2], the phases of a stride-2 backward data pass (flip = 2 above)
 * put back in place, zero where mask is 0 when has_mask (a quantizer's
 * straight-through mask). One item per row of dx: range nb*C*H. */
__kernel void qg_conv_direct_unphase(QG_T(const float, ph), int C, int H, int W, int Hp,
                                     int Wp, int rows, int accumulate, QG_T(float, dx),
                                     QG_T(const float, mask), int has_mask)
{
    int row = get_global_id(0);
    if (row >= rows)
        return;
    int h = row % H, nc = row / H;
    int c = nc % C, n = nc / C;
    __global const float *p0 = QG_P(ph) + (((size_t)n * C + c) * 4 + (h % 2) * 2) * Hp * Wp +
                               (h / 2) * Wp;
    __global const float *p1 = p0 + Hp * Wp;
    __global float *d = QG_P(dx) + (size_t)row * W;
    __global const float *m = QG_P(mask) + (size_t)row * W;
    int w = 0;
    /* whole runs of 16 interleaved as vectors (element by element, PoCL
     * left this pass at a third of the memory's speed) */
    for (; w + 16 <= W; w += 16) {
        float8 a = vload8(0, p0 + w / 2), b = vload8(0, p1 + w / 2);
        float16 v = (float16)(a.s0, b.s0, a.s1, b.s1, a.s2, b.s2, a.s3, b.s3, a.s4, b.s4, a.s5,
                              b.s5, a.s6, b.s6, a.s7, b.s7);
        if (has_mask)
            v = select((float16)0.0f, v, isnotequal(vload16(0, m + w), (float16)0.0f));
        if (accumulate)
            v += vload16(0, d + w);
        vstore16(v, 0, d + w);
    }
    for (; w < W; w++) {
        float v = (w % 2 ? p1 : p0)[w / 2];
        if (has_mask && m[w] == 0.0f)
            v = 0.0f;
        d[w] = accumulate ? d[w] + v : v;
    }
}

/* y[n][k][p][q] (= or += when accumulate; + bias[k] when has_bias; then
 * clamped at 0 when relu: the eval-mode conv+BN+ReLU fold) the
 * TRxTS stride-1 convolution of planes xp[n][Ci][Lx] (row stride Wd) with
 * wp[Kp/KT][Ci][TR][TS][KT], for k < Ko, p < Po, q < Qo. An item computes KT
 * output channels at JT vectors of VW positions, in one of two modes:
 *   flat  (QV == 0): vector jt starts at j = (gid0*JT + jt)*VW of the
 *         plane, so vectors run across row ends and J (a multiple of
 *         VW*JT) positions are computed; outputs are written lane by lane.
 *         Little waste on narrow maps (Qo < VW).
 *   slots (QV  > 0): vector jt is slot v = gid0*JT + jt, row p = v / QV,
 *         columns q0 = (v % QV)*VW ..+VW, so a vector never leaves its row
 *         and is written with one vector store (lanes past Qo are dropped).
 *         No per-lane epilogue; best when Qo is a multiple of VW.
 * With has_mask, a value is zeroed where mask (y's layout) is 0 before it
 * is stored or added: a quantizer's straight-through mask on a data
 * gradient, fused into its store (fwd_kv and unphase do the same). With
 * has_add, add (y's layout) is added before the ReLU: the residual of the
 * eval-mode conv+BN+add+ReLU fold, read in place of a copy into y.
 * A grouped conv of G groups runs as G*nb images of one group's
 * channels (its planes and outputs are laid out so already): image n
 * takes the weights of group n % G at (n % G)*wgs of wp and its bias at
 * (n % G)*Ko (G = 1: an ungrouped conv).
 * Range (items, Kp/KT, nb) with items = J/(VW*JT) or ceil(Po*QV/JT). */
#define QG_CONV_FWD(NAME, TR, TS, PPC, TAP)                                                  \
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))                                    \
void NAME(QG_T(const float, xp), int Ci, int Lx, int Wd, int J,                             \
                                    QG_T(const float, wp), QG_T(const float, bias),         \
                                    int has_bias, int Ko, int Po, int Qo, int accumulate,   \
                                    int QV, int relu, QG_T(float, y),                       \
                                    QG_T(const float, mask), int has_mask,                  \
                                    QG_T(const float, add), int has_add, int G, int wgs)    \
{                                                                                           \
    int g0 = get_global_id(0);                                                              \
    int k0 = get_global_id(1) * KT;                                                         \
    int n = get_global_id(2);                                                               \
    int grp = n % G; /* a grouped conv's image n/G, group grp: its weights, bias */         \
    int base[JT], vp[JT], vq[JT];                                                           \
    if (QV > 0) {                                                                           \
        if (g0 * JT >= Po * QV || k0 >= Ko)                                                 \
            return;                                                                         \
        _Pragma("unroll") for (int jt = 0; jt < JT; jt++) {                                 \
            int v = g0 * JT + jt;                                                           \
            vp[jt] = v / QV;                                                                \
            vq[jt] = (v - vp[jt] * QV) * VW;                                                \
            base[jt] = vp[jt] < Po ? vp[jt] * Wd + vq[jt] : 0;                              \
        }                                                                                   \
    } else {                                                                                \
        if (g0 * (VW * JT) >= J || k0 >= Ko)                                                \
            return;                                                                         \
        _Pragma("unroll") for (int jt = 0; jt < JT; jt++)                                   \
            base[jt] = (g0 * JT + jt) * VW;                                                 \
    }                                                                                       \
    __global const float *xb = QG_P(xp) + (size_t)n * Ci * (PPC) * Lx;                      \
    __global const float *wb = QG_P(wp) + (size_t)grp * wgs + (size_t)k0 * Ci * (TR * TS);   \
    __global const float *bb = QG_P(bias) + (has_bias ? grp * Ko : 0);                       \
    vec acc[KT][JT];                                                                        \
    _Pragma("unroll") for (int kt = 0; kt < KT; kt++)                                       \
        _Pragma("unroll") for (int jt = 0; jt < JT; jt++)                                   \
            acc[kt][jt] = (vec)0.0f;                                                        \
    for (int ci = 0; ci < Ci; ci++) {                                                       \
        _Pragma("unroll") for (int r = 0; r < TR; r++) {                                    \
            _Pragma("unroll") for (int s = 0; s < TS; s++) {                                \
                vec xv[JT];                                                                 \
                _Pragma("unroll") for (int jt = 0; jt < JT; jt++)                           \
                    xv[jt] = vload_v(0, xb + base[jt] + TAP(r, s));                         \
                _Pragma("unroll") for (int kt = 0; kt < KT; kt++) {                         \
                    float wv = wb[(r * TS + s) * KT + kt];                                  \
                    _Pragma("unroll") for (int jt = 0; jt < JT; jt++)                       \
                        acc[kt][jt] = fma((vec)wv, xv[jt], acc[kt][jt]);                    \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
        xb += (PPC) * Lx;                                                                   \
        wb += TR * TS * KT;                                                                 \
    }                                                                                       \
    int PQ = Po * Qo;                                                                       \
    __global float *yb = QG_P(y) + (size_t)n * Ko * PQ;                                     \
    __global const float *mb = QG_P(mask) + (size_t)n * Ko * PQ;                            \
    __global const float *ab = QG_P(add) + (size_t)n * Ko * PQ;                             \
    if (QV > 0) {                                                                           \
        _Pragma("unroll") for (int kt = 0; kt < KT; kt++) {                                 \
            if (k0 + kt >= Ko)                                                              \
                break;                                                                      \
            float bv = has_bias ? bb[k0 + kt] : 0.0f;                                       \
            _Pragma("unroll") for (int jt = 0; jt < JT; jt++) {                             \
                if (vp[jt] >= Po)                                                           \
                    continue;                                                               \
                size_t at = (size_t)(k0 + kt) * PQ + vp[jt] * Qo + vq[jt];                  \
                __global float *d = yb + at;                                                \
                vec v = acc[kt][jt] + bv;                                                   \
                if (vq[jt] + VW <= Qo) {                                                    \
                    if (has_add)                                                            \
                        v += vload_v(0, ab + at);                                           \
                    if (has_mask)                                                           \
                        v = select((vec)0.0f, v, isnotequal(vload_v(0, mb + at), (vec)0.0f));\
                    if (accumulate)                                                         \
                        v += vload_v(0, d);                                                 \
                    if (relu)                                                               \
                        v = fmax(v, (vec)0.0f);                                             \
                    vstore_v(v, 0, d);                                                      \
                } else {                                                                    \
                    float t[VW];                                                            \
                    vstore_v(v, 0, t);                                                      \
                    for (int l = 0; l < Qo - vq[jt]; l++) {                                 \
                        float tl = has_mask && mb[at + l] == 0.0f ? 0.0f : t[l];            \
                        tl += has_add ? ab[at + l] : 0.0f;                                  \
                        float u = accumulate ? d[l] + tl : tl;                              \
                        d[l] = relu ? fmax(u, 0.0f) : u;                                    \
                    }                                                                       \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
        return;                                                                             \
    }                                                                                       \
    /* Flat: lane l of vector jt is position j0 + jt*VW + l; walk p, q along. */            \
    float out[KT][JT * VW];                                                                 \
    _Pragma("unroll") for (int kt = 0; kt < KT; kt++)                                       \
        _Pragma("unroll") for (int jt = 0; jt < JT; jt++)                                   \
            vstore_v(acc[kt][jt], 0, &out[kt][jt * VW]);                                    \
    int j0 = base[0];                                                                       \
    int p = j0 / Wd, q = j0 - p * Wd;                                                       \
    for (int l = 0; l < JT * VW && p < Po; l++) {                                           \
        if (q < Qo) {                                                                       \
            int o = p * Qo + q;                                                             \
            for (int kt = 0; kt < KT && k0 + kt < Ko; kt++) {                               \
                float v = out[kt][l];                                                       \
                if (has_bias)                                                               \
                    v += bb[k0 + kt];                                                       \
                if (has_mask && mb[(k0 + kt) * PQ + o] == 0.0f)                             \
                    v = 0.0f;                                                               \
                if (has_add)                                                                \
                    v += ab[(k0 + kt) * PQ + o];                                            \
                __global float *d = yb + (k0 + kt) * PQ + o;                                \
                v = accumulate ? *d + v : v;                                                \
                *d = relu ? fmax(v, 0.0f) : v;                                              \
            }                                                                               \
        }                                                                                   \
        if (++q == Wd) {                                                                    \
            q = 0;                                                                          \
            p++;                                                                            \
        }                                                                                   \
    }                                                                                       \
}

/* Where tap (r, s) of an output position sits in the prepared planes of
 * one input channel: one plane (stride 1), or the four phase planes of a
 * stride-2 conv, tap (r, s) in plane (r%2, s%2) at (r/2, s/2). */
#define QG_TAP_PLANE(r, s) ((r) * Wd + (s))
#define QG_TAP_PHASE(r, s) ((((r) & 1) * 2 + ((s) & 1)) * Lx + ((r) >> 1) * Wd + ((s) >> 1))

QG_CONV_FWD(qg_conv_direct_fwd_3x3, 3, 3, 1, QG_TAP_PLANE)
QG_CONV_FWD(qg_conv_direct_fwd_2x2, 2, 2, 1, QG_TAP_PLANE)
/* Stride-2 3x3 over phase planes: Ci channels of four planes each, weights
 * wp[Kp/KT][Ci][3][3][KT] as they are; 9 taps of work per channel where the 2x2
 * conv over the 4Ci phase channels does 16. */
QG_CONV_FWD(qg_conv_direct_fwd_s2_3x3, 3, 3, 4, QG_TAP_PHASE)

/* y[n][k][p][q] (as qg_conv_direct_fwd: =/+=, + bias, ReLU) of a TRxTS
 * convolution with stride st over plain padded planes xp[n][Ci][Lx] (row
 * stride Wd; output (p, q) reads rows p*st.., columns q*st..), vectorised
 * over output channels instead of positions: an item holds KVN vectors of
 * 16 channels at KPT consecutive output positions, and each tap costs KVN
 * weight loads (wk[Ci][TR][TS][Kp], channels innermost) and KPT broadcast
 * loads for KPT*KVN FMAs. The position kernels waste lanes where a row is
 * narrower than the vector (8x8 maps: 80 of 96 computed positions are
 * padding or past the row) and, at stride 2, taps (16 for 9 useful or
 * phase planes); here every lane is a real channel. Kp is a multiple of
 * 16*KVN. Range (ceil(Po*Qo/KPT), Kp/(16*KVN), nb). */
#define KVN 2
#define KPT 8 /* the whole-tile store below spells out float8 */
/* fwd_kv's accumulation over channels and taps, x of position pt at tap
 * (r, s) read from XAT (in scope: xb, wb, Ci, Lx, Kp, acc) */
#define QG_KV_LOOP(TR, TS, XAT)                                                             \
    for (int ci = 0; ci < Ci; ci++, xb += Lx, wb += (TR) * (TS) * Kp) {                     \
        _Pragma("unroll") for (int r = 0; r < (TR); r++) {                                  \
            _Pragma("unroll") for (int s = 0; s < (TS); s++) {                              \
                float16 wv[KVN];                                                            \
                _Pragma("unroll") for (int kv = 0; kv < KVN; kv++)                          \
                    wv[kv] = vload16(0, wb + (r * (TS) + s) * Kp + 16 * kv);                \
                _Pragma("unroll") for (int pt = 0; pt < KPT; pt++) {                        \
                    float xv = *(XAT);                                                      \
                    _Pragma("unroll") for (int kv = 0; kv < KVN; kv++)                      \
                        acc[pt][kv] = fma((float16)xv, wv[kv], acc[pt][kv]);                \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
    }
#define QG_CONV_FWD_KV(NAME, TR, TS)                                                        \
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))                                    \
void NAME(QG_T(const float, xp), int Ci, int Lx, int Wd, int st,                            \
                           QG_T(const float, wk), int Kp, QG_T(const float, bias), int has_bias,\
                           int Ko, int Po, int Qo, int accumulate, int relu, QG_T(float, y),\
                           QG_T(const float, mask), int has_mask,                           \
                           QG_T(const float, add), int has_add)                             \
{                                                                                           \
    int o0 = get_global_id(0) * KPT;                                                        \
    int k0 = get_global_id(1) * (16 * KVN);                                                 \
    int n = get_global_id(2);                                                               \
    int PQ = Po * Qo;                                                                       \
    if (o0 >= PQ || k0 >= Ko)                                                               \
        return;                                                                             \
    int base[KPT];                                                                          \
    _Pragma("unroll") for (int pt = 0; pt < KPT; pt++) {                                    \
        int o = min(o0 + pt, PQ - 1);                                                       \
        int p = o / Qo, q = o - p * Qo;                                                     \
        base[pt] = p * st * Wd + q * st;                                                    \
    }                                                                                       \
    __global const float *xb = QG_P(xp) + (size_t)n * Ci * Lx;                              \
    __global const float *wb = QG_P(wk) + k0;                                               \
    float16 acc[KPT][KVN];                                                                  \
    _Pragma("unroll") for (int pt = 0; pt < KPT; pt++)                                      \
        _Pragma("unroll") for (int kv = 0; kv < KVN; kv++)                                  \
            acc[pt][kv] = (float16)0.0f;                                                    \
    /* A tile inside one output row reads x at constant offsets pt*st from                  \
     * one pointer per tap row; spelled out per stride so the offsets are                   \
     * constants (per-position indices ended up on the stack, one extra                     \
     * load per broadcast). */                                                              \
    int q0 = o0 % Qo;                                                                       \
    if (q0 + KPT <= Qo && st == 1) {                                                        \
        QG_KV_LOOP(TR, TS, xb + base[0] + r * Wd + s + pt);                                 \
    } else if (q0 + KPT <= Qo && st == 2) {                                                 \
        QG_KV_LOOP(TR, TS, xb + base[0] + r * Wd + s + 2 * pt);                             \
    } else {                                                                                \
        QG_KV_LOOP(TR, TS, xb + base[pt] + r * Wd + s);                                     \
    }                                                                                       \
    __global float *yb = QG_P(y) + (size_t)n * Ko * PQ;                                     \
    if (o0 + KPT <= PQ && k0 + 16 * KVN <= Ko) {                                            \
        /* a full tile: each channel's KPT positions are contiguous in y */                 \
        _Pragma("unroll") for (int kv = 0; kv < KVN; kv++) {                                \
            float t[KPT][16];                                                               \
            _Pragma("unroll") for (int pt = 0; pt < KPT; pt++)                              \
                vstore16(acc[pt][kv], 0, t[pt]);                                            \
            _Pragma("unroll") for (int l = 0; l < 16; l++) {                                \
                int k = k0 + 16 * kv + l;                                                   \
                size_t at = (size_t)n * Ko * PQ + (size_t)k * PQ + o0;                      \
                float8 v = (float8)(t[0][l], t[1][l], t[2][l], t[3][l], t[4][l], t[5][l],   \
                                    t[6][l], t[7][l]);                                      \
                if (has_bias)                                                               \
                    v += QG_P(bias)[k];                                                     \
                if (has_mask)                                                               \
                    v = select((float8)0.0f, v,                                             \
                               isnotequal(vload8(0, QG_P(mask) + at), (float8)0.0f));       \
                if (has_add)                                                                \
                    v += vload8(0, QG_P(add) + at);                                         \
                if (accumulate)                                                             \
                    v += vload8(0, QG_P(y) + at);                                           \
                if (relu)                                                                   \
                    v = fmax(v, (float8)0.0f);                                              \
                vstore8(v, 0, QG_P(y) + at);                                                \
            }                                                                               \
        }                                                                                   \
        return;                                                                             \
    }                                                                                       \
    _Pragma("unroll") for (int pt = 0; pt < KPT; pt++) {                                    \
        int o = o0 + pt;                                                                    \
        if (o >= PQ)                                                                        \
            break;                                                                          \
        _Pragma("unroll") for (int kv = 0; kv < KVN; kv++) {                                \
            float t[16];                                                                    \
            vstore16(acc[pt][kv], 0, t);                                                    \
            for (int l = 0; l < 16; l++) {                                                  \
                int k = k0 + 16 * kv + l;                                                   \
                if (k >= Ko)                                                                \
                    break;                                                                  \
                __global float *d = yb + (size_t)k * PQ + o;                                \
                float v = t[l] + (has_bias ? QG_P(bias)[k] : 0.0f);                         \
                size_t at = (size_t)n * Ko * PQ + (size_t)k * PQ + o;                       \
                if (has_mask && QG_P(mask)[at] == 0.0f)                                     \
                    v = 0.0f;                                                               \
                if (has_add)                                                                \
                    v += QG_P(add)[at];                                                     \
                v = accumulate ? *d + v : v;                                                \
                *d = relu ? fmax(v, 0.0f) : v;                                              \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
}

QG_CONV_FWD_KV(qg_conv_direct_fwd_kv_3x3, 3, 3)
/* The stride-2 data gradient's output phases (2x2 taps). */
QG_CONV_FWD_KV(qg_conv_direct_fwd_kv_2x2, 2, 2)

/* part[chunk][k][ci][TR][TS] = sum over images n of the chunk (wn per
 * chunk, n < nb) and positions j < J of dyp[n][k][j] * xp[n][ci][j +
 * r*Wd + s]; dyp holds zeros past each row's Q and past P rows, so no
 * position outside the output contributes. Range (Ci, ceil(K/WKT),
 * nchunks). A grouped conv (G groups): Ci counts all input channels, K
 * one group's output channels; channel ci of group g = ci / (Ci/G) pairs
 * with dy planes g*K..g*K+K-1 of the G*K, and the partials are laid out
 * [chunk][G*K][Ci/G] as the grouped weights (G = 1: as above). */
#define QG_WGRAD_GROUP                                                                      \
    const int Cg = Ci / G, KG = K * G, gk = ci / Cg * K, cl = ci - ci / Cg * Cg
#define QG_CONV_WGRAD(NAME, TR, TS, PPC, TAP)                                                \
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))                                    \
void NAME(QG_T(const float, xp), int Ci, int Lx, int Wd,                                    \
                                      QG_T(const float, dyp), int K, int Ly, int J, int nb, \
                                      int wn, QG_T(float, part), int G)                     \
{                                                                                           \
    int ci = get_global_id(0);                                                              \
    int k0 = get_global_id(1) * WKT;                                                        \
    int chunk = get_global_id(2);                                                           \
    int n0 = chunk * wn;                                                                    \
    if (ci >= Ci || k0 >= K || n0 >= nb)                                                    \
        return;                                                                             \
    QG_WGRAD_GROUP;                                                                         \
    int n1 = min(n0 + wn, nb);                                                              \
    vec acc[WKT][TR * TS];                                                                  \
    _Pragma("unroll") for (int kt = 0; kt < WKT; kt++)                                      \
        _Pragma("unroll") for (int t = 0; t < TR * TS; t++)                                 \
            acc[kt][t] = (vec)0.0f;                                                         \
    for (int n = n0; n < n1; n++) {                                                         \
        __global const float *xb = QG_P(xp) + ((size_t)n * Ci + ci) * (PPC) * Lx;           \
        __global const float *db[WKT];                                                      \
        _Pragma("unroll") for (int kt = 0; kt < WKT; kt++)                                  \
            db[kt] = QG_P(dyp) + ((size_t)n * KG + gk + min(k0 + kt, K - 1)) * Ly;         \
        for (int j = 0; j < J; j += VW) {                                                   \
            vec dv[WKT];                                                                    \
            _Pragma("unroll") for (int kt = 0; kt < WKT; kt++)                              \
                dv[kt] = vload_v(0, db[kt] + j);                                            \
            _Pragma("unroll") for (int r = 0; r < TR; r++)                                  \
                _Pragma("unroll") for (int s = 0; s < TS; s++) {                            \
                    vec xv = vload_v(0, xb + j + TAP(r, s));                                \
                    _Pragma("unroll") for (int kt = 0; kt < WKT; kt++)                      \
                        acc[kt][r * TS + s] = fma(dv[kt], xv, acc[kt][r * TS + s]);         \
                }                                                                           \
        }                                                                                   \
    }                                                                                       \
    _Pragma("unroll") for (int kt = 0; kt < WKT; kt++) {                                    \
        if (k0 + kt < K) {                                                                  \
            __global float *o = QG_P(part) + (((size_t)chunk * KG + gk + k0 + kt) * Cg + cl) * \
                                (TR * TS);                                                  \
            _Pragma("unroll") for (int t = 0; t < TR * TS; t++)                             \
                o[t] = hsum(acc[kt][t]);                                                    \
        }                                                                                   \
    }                                                                                       \
}

QG_CONV_WGRAD(qg_conv_direct_wgrad_3x3, 3, 3, 1, QG_TAP_PLANE)
/* Stride-2 3x3 from phase planes: part[chunk][k][ci][3][3] directly. */
QG_CONV_WGRAD(qg_conv_direct_wgrad_s2_3x3, 3, 3, 4, QG_TAP_PHASE)

/* The same partials for a stride-1 3x3 conv, walking each column strip
 * of VW positions down the rows: row p's taps read x rows p, p+1, p+2,
 * and the next row reuses two of them from registers, so an output row
 * costs 3 x loads (and WKT dy loads) for 9*WKT FMAs where the flat walk
 * above loads all 9. Strip c0 = cb*VW covers columns c0..c0+VW-1 of one
 * row; lanes at columns >= Q are masked off (past the row's padding they
 * would read the next row's dy), and the reads stay inside the planes'
 * slack (QB*VW < Q + VW). It takes at most 2 output channels per item
 * (RKT): with 3, its 27 accumulators and 9 x rows spill (measured 1.6x
 * slower), while the flat walk wants 3. Range (Ci, ceil(K/RKT), nchunks). */
#define RKT (WKT < 2 ? WKT : 2)
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_conv_direct_wgrad_rows_3x3(QG_T(const float, xp), int Ci, int Lx, int Wd,
                                   QG_T(const float, dyp), int K, int Ly, int J, int nb,
                                   int wn, QG_T(float, part), int Po, int QB, int Q, int G)
{
    int ci = get_global_id(0);
    int k0 = get_global_id(1) * RKT;
    int chunk = get_global_id(2);
    int n0 = chunk * wn;
    if (ci >= Ci || k0 >= K || n0 >= nb)
        return;
    QG_WGRAD_GROUP;
    int n1 = min(n0 + wn, nb);
    vec acc[RKT][9];
    _Pragma("unroll") for (int kt = 0; kt < RKT; kt++)
        _Pragma("unroll") for (int t = 0; t < 9; t++)
            acc[kt][t] = (vec)0.0f;
    for (int n = n0; n < n1; n++) {
        __global const float *xb = QG_P(xp) + ((size_t)n * Ci + ci) * Lx;
        __global const float *db[RKT];
        _Pragma("unroll") for (int kt = 0; kt < RKT; kt++)
            db[kt] = QG_P(dyp) + ((size_t)n * KG + gk + min(k0 + kt, K - 1)) * Ly;
        for (int c0 = 0; c0 < QB * VW; c0 += VW) {
            ivec live = (c0 + QG_LANES) < (ivec)Q;
            vec x0[3], x1[3];
            _Pragma("unroll") for (int s = 0; s < 3; s++) {
                x0[s] = vload_v(0, xb + c0 + s);
                x1[s] = vload_v(0, xb + Wd + c0 + s);
            }
            for (int p = 0; p < Po; p++) {
                vec x2[3], dv[RKT];
                _Pragma("unroll") for (int s = 0; s < 3; s++)
                    x2[s] = vload_v(0, xb + (p + 2) * Wd + c0 + s);
                _Pragma("unroll") for (int kt = 0; kt < RKT; kt++)
                    dv[kt] = select((vec)0.0f, vload_v(0, db[kt] + p * Wd + c0), live);
                _Pragma("unroll") for (int kt = 0; kt < RKT; kt++)
                    _Pragma("unroll") for (int s = 0; s < 3; s++) {
                        acc[kt][s] = fma(dv[kt], x0[s], acc[kt][s]);
                        acc[kt][3 + s] = fma(dv[kt], x1[s], acc[kt][3 + s]);
                        acc[kt][6 + s] = fma(dv[kt], x2[s], acc[kt][6 + s]);
                    }
                _Pragma("unroll") for (int s = 0; s < 3; s++) {
                    x0[s] = x1[s];
                    x1[s] = x2[s];
                }
            }
        }
    }
    _Pragma("unroll") for (int kt = 0; kt < RKT; kt++) {
        if (k0 + kt < K) {
            __global float *o = QG_P(part) + (((size_t)chunk * KG + gk + k0 + kt) * Cg + cl) * 9;
            _Pragma("unroll") for (int t = 0; t < 9; t++)
                o[t] = hsum(acc[kt][t]);
        }
    }
}

/* dyt[n][o][k] = dy[n][k][o] for k < K, 0 for K <= k < Kp (o < PQ): the
 * channels-innermost dy that qg_conv_direct_wgrad_kv reads as vectors.
 * One item per (n, o): range nb*PQ. */
__kernel void qg_conv_direct_prep_t(QG_T(const float, dy), int K, int PQ, int Kp, int total,
                                    QG_T(float, dyt))
{
    int i = get_global_id(0);
    if (i >= total)
        return;
    int n = i / PQ, o = i - n * PQ;
    __global const float *s = QG_P(dy) + (size_t)n * K * PQ + o;
    __global float *d = QG_P(dyt) + (size_t)i * Kp;
    for (int k = 0; k < Kp; k++)
        d[k] = k < K ? s[(size_t)k * PQ] : 0.0f;
}

/* The weight-gradient partials of a 3x3 conv on narrow maps, vectorised
 * over 16*KVN output channels like fwd_kv: per output position KVN vector
 * loads of dyt (qg_conv_direct_prep_t) and 9 broadcast x loads feed 9*KVN
 * FMAs, with no lane spent on padding columns. Stride 1 reads plain padded
 * planes; stride 2 the four phase planes per channel (QG_TAP_PHASE, output
 * (p, q) at phase row p, column q). Writes part[chunk][k][ci][3][3] as
 * qg_conv_direct_wgrad_3x3. Range (Ci, Kp/(16*KVN), nchunks). */
#define QG_CONV_WGRAD_KV(NAME, PPC, TAP)                                                    \
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))                                    \
void NAME(QG_T(const float, xp), int Ci, int Lx, int Wd, QG_T(const float, dyt), int Kp,    \
          int K, int Po, int Qo, int nb, int wn, QG_T(float, part))                         \
{                                                                                           \
    int ci = get_global_id(0);                                                              \
    int k0 = get_global_id(1) * (16 * KVN);                                                 \
    int chunk = get_global_id(2);                                                           \
    int n0 = chunk * wn;                                                                    \
    if (ci >= Ci || k0 >= K || n0 >= nb)                                                    \
        return;                                                                             \
    int n1 = min(n0 + wn, nb);                                                              \
    int PQ = Po * Qo;                                                                       \
    float16 acc[9][KVN];                                                                    \
    _Pragma("unroll") for (int t = 0; t < 9; t++)                                           \
        _Pragma("unroll") for (int kv = 0; kv < KVN; kv++)                                  \
            acc[t][kv] = (float16)0.0f;                                                     \
    for (int n = n0; n < n1; n++) {                                                         \
        __global const float *xb = QG_P(xp) + ((size_t)n * Ci + ci) * (PPC) * Lx;           \
        __global const float *db = QG_P(dyt) + (size_t)n * PQ * Kp + k0;                    \
        for (int p = 0; p < Po; p++) {                                                      \
            __global const float *xr = xb + p * Wd;                                         \
            __global const float *dr = db + (size_t)p * Qo * Kp;                            \
            for (int q = 0; q < Qo; q++) {                                                  \
                float16 dv[KVN];                                                            \
                _Pragma("unroll") for (int kv = 0; kv < KVN; kv++)                          \
                    dv[kv] = vload16(0, dr + (size_t)q * Kp + 16 * kv);                     \
                _Pragma("unroll") for (int r = 0; r < 3; r++)                               \
                    _Pragma("unroll") for (int s = 0; s < 3; s++) {                         \
                        float xv = xr[q + TAP(r, s)];                                       \
                        _Pragma("unroll") for (int kv = 0; kv < KVN; kv++)                  \
                            acc[r * 3 + s][kv] = fma((float16)xv, dv[kv], acc[r * 3 + s][kv]);\
                    }                                                                       \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
    _Pragma("unroll") for (int t = 0; t < 9; t++)                                           \
        _Pragma("unroll") for (int kv = 0; kv < KVN; kv++) {                                \
            float v[16];                                                                    \
            vstore16(acc[t][kv], 0, v);                                                     \
            for (int l = 0; l < 16 && k0 + 16 * kv + l < K; l++)                            \
                QG_P(part)[(((size_t)chunk * K + k0 + 16 * kv + l) * Ci + ci) * 9 + t] = v[l];\
        }                                                                                   \
}

QG_CONV_WGRAD_KV(qg_conv_direct_wgrad_kv, 1, QG_TAP_PLANE)
QG_CONV_WGRAD_KV(qg_conv_direct_wgrad_kv_s2, 4, QG_TAP_PHASE)

/* dw[k][c][r][s] (= or += when accumulate) the sum over the nchunks
 * partials of part[chunk][k][ci][r/st][s/st] with ci = c*st*st +
 * (r%st)*st + s%st (the phase plane that held tap r, s), then 0 where
 * masked and wmask (K*C*R*S floats) is 0. Range K*C*R*S. */
__kernel void qg_conv_direct_wgrad_sum(QG_T(const float, part), int nchunks, int K, int C,
                                       int R, int S, int st, int TR, int TS,
                                       int accumulate, QG_T(float, dw),
                                       QG_T(const float, wmask), int masked)
{
    int idx = get_global_id(0);
    if (idx >= K * C * R * S)
        return;
    int s = idx % S, t = idx / S;
    int r = t % R;
    t /= R;
    int c = t % C, k = t / C;
    int Ci = C * st * st;
    int ci = c * st * st + (r % st) * st + s % st;
    int off = (k * Ci + ci) * TR * TS + (r / st) * TS + s / st;
    int step = K * Ci * TR * TS;
    float v = 0.0f;
    for (int ch = 0; ch < nchunks; ch++)
        v += QG_P(part)[ch * step + off];
    __global float *d = QG_P(dw) + idx;
    v = accumulate ? *d + v : v;
    /* a weight quantizer's STE (x != 0) on the way, where asked */
    *d = masked && QG_P(wmask)[idx] == 0.0f ? 0.0f : v;
}
