/* cl/bn.cl: batch normalisation (PyTorch BatchNorm2d semantics), forward
 * in training and eval mode and backward, with an optional residual add
 * and ReLU fused behind it: z = bn(x) [+ res], y = relu(z) or z. Fusing
 * them saves two full passes over the activation in each direction (the
 * CIFAR ResNet's bn1 -> relu and bn2 -> add -> relu). The activation may
 * also be PACT's clip to [0, alpha] (docs/methods.md §5.3), which the backward pass
 * decides from the pre-activation z, recomputed from x and the saved
 * statistics: that is what PACT's own backward looks at (0 <= z <= alpha
 * passes, z > alpha feeds dalpha), and the output y alone cannot tell
 * z == alpha from z > alpha. Launchers:
 * src/ops/bn.c; C twins: src/ref/ref_layers.c (qg_ref_bn_*, composed with
 * the add and ReLU references in the tests); tests: tests/test_bn.c.
 *
 * Layout: x, y, res, dy, dx, dres are [N][C][HW] (HW = 1 for rank-2 [N, C]
 * input); gamma, beta, running and saved statistics are [C].
 *
 * Math (n = N*HW per channel):
 * act: 0 none, 1 ReLU, 2 PACT clip (alpha[0] is the clip level).
 *
 *   train: mean = sum x / n, var = sum (x - mean)^2 / n (biased), both
 *          from one pass of shifted sums: with k = x[0][c][0], m = sum (x-k)
 *          / n, var = sum (x-k)^2 / n - m^2, mean = k + m (k is a sample of
 *          the channel, so this keeps the accuracy of two passes where plain
 *          E[x^2] - mean^2 loses it to |mean| >> std),
 *          invstd = 1/sqrt(var + eps), z = (x - mean)*invstd*gamma + beta,
 *          running_mean = (1-m)*running_mean + m*mean,
 *          running_var  = (1-m)*running_var  + m*var*n/(n-1) (unbiased).
 *   eval:  the same normalisation with the running statistics.
 *   bwd:   g = dy * [y > 0] with the ReLU, dy * [0 <= z <= alpha] with
 *          PACT (and dalpha += sum dy * [z > alpha], summed per channel
 *          into part[c] and then by qg_bn_part_add), else dy; dres = g;
 *          xhat = (x - mean)*invstd, dbeta = sum g, dgamma = sum g*xhat,
 *          dx = gamma*invstd/n * (n*g - dbeta - xhat*dgamma).
 * The train and backward kernels give one work-group to each channel; the
 * channel's N planes are cut into chunks of VW values, item l takes chunks
 * l, l+WG, ... and the items' partial sums meet in a local-memory tree.
 * The summation order therefore differs from the double-precision C
 * reference; tests allow for that.
 *
 * With PARTS > 0 the host runs the partial-sums kernels at the end of
 * this file instead (the CPU default; see there).
 *
 * Tunables:
 *   WG     work-group size, power of two in 1..1024 (large on GPUs, where
 *          consecutive items then read consecutive chunks; small on CPUs).
 *   VW     values per chunk and vector width: 1, 4, 8 or 16.
 *   PARTS  read by the host only: 0 for the work-group-per-channel kernels,
 *          else the number of image ranges (at most N) of the partial sums. */
/* z = fma(x, a, b) [+ res] with a and b formed unfused, in forward and
 * again in backward: the PACT mask of the backward pass must see the very
 * z the forward pass clipped. */
#pragma OPENCL FP_CONTRACT OFF

#define BN_NONE 0
#define BN_RELU 1
#define BN_PACT 2
/* backward only: the ReLU (no residual) with its mask z > 0 recomputed
 * from x, so the pass reads two tensors instead of three */
#define BN_RELU_Z 3
/* backward only: PACT whose one reader passes gradient only where y != 0
 * (a quantizer's straight-through estimator): 0 < z <= alpha, and z >
 * alpha feeds dalpha only when alpha != 0 (there y = alpha). The reader's
 * masked store is then not needed. */
#define BN_PACT_NZ 4
#define BN_IS_PACT(act) ((act) == BN_PACT || (act) == BN_PACT_NZ)

#ifndef WG
#define WG 256
#endif
#ifndef VW
#define VW 1
#endif
#if (WG & (WG - 1)) != 0 || WG < 1 || WG > 1024
#error "WG must be a power of two in 1..1024"
#endif

#if VW == 1
#define vec float
#define VLOAD(p) (*(p))
#define VSTORE(v, p) (*(p) = (v))
#define VSUM(v) (v)
#define VMAXH(v) (v)
#elif VW == 4 || VW == 8 || VW == 16
#define BN_CAT_(a, b) a##b
#define BN_CAT(a, b) BN_CAT_(a, b)
#define vec BN_CAT(float, VW)
#define VLOAD(p) BN_CAT(vload, VW)(0, (p))
#define VSTORE(v, p) BN_CAT(vstore, VW)((v), 0, (p))
static inline float bn_hsum4(float4 v) { return (v.s0 + v.s1) + (v.s2 + v.s3); }
static inline float bn_hmax4(float4 v) { return fmax(fmax(v.s0, v.s1), fmax(v.s2, v.s3)); }
#if VW == 4
#define VSUM(v) bn_hsum4(v)
#define VMAXH(v) bn_hmax4(v)
#elif VW == 8
#define VSUM(v) bn_hsum4((v).lo + (v).hi)
#define VMAXH(v) bn_hmax4(fmax((v).lo, (v).hi))
#else
#define VSUM(v) bn_hsum4(((v).lo.lo + (v).lo.hi) + ((v).hi.lo + (v).hi.hi))
#define VMAXH(v) bn_hmax4(fmax(fmax((v).lo.lo, (v).lo.hi), fmax((v).hi.lo, (v).hi.hi)))
#endif
#else
#error "VW must be 1, 4, 8 or 16"
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

/* y = act(x*a + b (+ res)) over one chunk of len <= VW values at `at`; hi
 * is PACT's clip level. Returns |y| (a whole vector) or their max in every
 * lane (the rest), for a running max. */
static inline vec bn_apply(__global const float *xp, __global const float *rp,
                           __global float *yp, size_t at, int len, float a, float b,
                           int has_res, int act, float hi)
{
    if (len == VW) {
        vec v = fma(VLOAD(xp + at), (vec)a, (vec)b);
        if (has_res)
            v += VLOAD(rp + at);
        if (act != BN_NONE)
            v = fmax(v, (vec)0.0f);
        if (act == BN_PACT)
            v = fmin(v, (vec)hi);
        VSTORE(v, yp + at);
        return fabs(v);
    }
    float m = 0.0f;
    for (int i = 0; i < len; i++) {
        float v = fma(xp[at + i], a, b);
        if (has_res)
            v += rp[at + i];
        if (act != BN_NONE)
            v = fmax(v, 0.0f);
        if (act == BN_PACT)
            v = fmin(v, hi);
        yp[at + i] = v;
        m = fmax(m, fabs(v));
    }
    return (vec)m;
}

/* ymax[0] = max(ymax[0], max of vm + add) (ymax zeroed before the launch):
 * the quantizer's scale max |y| + eps with at most one atomic per item, as
 * float addition never reorders and the bit patterns of non-negative floats
 * order as the floats do. */
static inline void bn_ymax(__global float *ymax, int want, vec vm, float add)
{
    volatile __global uint *p = (volatile __global uint *)ymax;
    uint v = as_uint(VMAXH(vm) + add);
    /* (a plain read first: most items find the max already there, and
     * contended atomics cost PoCL's threads ~0.2 ms a batch norm) */
    if (want && v > *p)
        atomic_max(p, v);
}

/* Saved statistics of channel c and, when track, its running ones
 * (running_var from the unbiased variance, as PyTorch). */
static inline void bn_store_stats(__global float *smean, __global float *sinvstd,
                                  __global float *rmean, __global float *rvar, int c, float mean,
                                  float invstd, float var, int n, int track, float momentum)
{
    smean[c] = mean;
    sinvstd[c] = invstd;
    if (track) {
        float unbiased = var * ((float)n / (float)(n - 1));
        rmean[c] = (1.0f - momentum) * rmean[c] + momentum * mean;
        rvar[c] = (1.0f - momentum) * rvar[c] + momentum * unbiased;
    }
}

/* The chunks of channel c: chunk t covers plane t / cpp at offset
 * (t % cpp)*VW, `len` (<= VW) values. */
#define BN_CHUNKS_BEGIN(c)                                                              \
    for (int cpp = (HW + VW - 1) / VW, t = get_local_id(0); t < N * cpp; t += WG) {     \
        int nn = t / cpp, j = (t - nn * cpp) * VW;                                      \
        size_t at = ((size_t)nn * C + (c)) * HW + j;                                    \
        int len = min(VW, HW - j);
#define BN_CHUNKS_END }

/* One work-group per channel: global = C*WG. affine == 0 ignores gamma and
 * beta (bound to any buffer); track == 0 leaves the running stats alone;
 * has_res == 0 ignores res; act as in the banner (alpha read for PACT). */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_bn_fwd_train(QG_T(const float, x), int N, int C, int HW,
                     QG_T(const float, gamma), QG_T(const float, beta), int affine,
                     QG_T(float, rmean), QG_T(float, rvar), int track, float momentum,
                     float eps, QG_T(float, y), QG_T(float, smean), QG_T(float, sinvstd),
                     QG_T(const float, res), int has_res, int act, QG_T(const float, alpha),
                     QG_T(float, ymax), int want_ymax, float ymax_add)
{
    __local float acc[WG];
    int c = get_group_id(0);
    int l = get_local_id(0);
    int n = N * HW;
    __global const float *xp = QG_P(x);
    /* one pass: sums of x - k and its square, k = the channel's first value
     * (a sample of it, so the shifted sums do not cancel the way E[x^2] -
     * mean^2 does when |mean| >> std) */
    float k = xp[(size_t)c * HW];
    vec sv = (vec)0.0f, qv = (vec)0.0f;
    float s = 0.0f, q = 0.0f;
    BN_CHUNKS_BEGIN(c)
        if (len == VW) {
            vec d = VLOAD(xp + at) - k;
            sv += d;
            qv += d * d;
        } else {
            for (int i = 0; i < len; i++) {
                float d = xp[at + i] - k;
                s += d;
                q += d * d;
            }
        }
    BN_CHUNKS_END
    float ms = bn_group_sum(acc, s + VSUM(sv)) / (float)n;
    float var = fmax(bn_group_sum(acc, q + VSUM(qv)) / (float)n - ms * ms, 0.0f);
    float mean = k + ms;
    float invstd = 1.0f / sqrt(var + eps);
    float g = affine ? QG_P(gamma)[c] : 1.0f;
    float bt = affine ? QG_P(beta)[c] : 0.0f;
    float a = invstd * g, b = bt - mean * a;
    __global float *yp = QG_P(y);
    __global const float *rp = QG_P(res);
    float hi = act == BN_PACT ? QG_P(alpha)[0] : 0.0f;
    vec ym = (vec)0.0f;
    BN_CHUNKS_BEGIN(c)
        ym = fmax(ym, bn_apply(xp, rp, yp, at, len, a, b, has_res, act, hi));
    BN_CHUNKS_END
    bn_ymax(QG_P(ymax), want_ymax, ym, ymax_add);
    if (l == 0)
        bn_store_stats(QG_P(smean), QG_P(sinvstd), QG_P(rmean), QG_P(rvar), c, mean, invstd, var,
                       n, track, momentum);
}

/* Elementwise over the N*C planes cut into chunks of VW: global =
 * N*C*ceil(HW/VW) items. */
__kernel void qg_bn_fwd_eval(QG_T(const float, x), int C, int HW, int planes,
                             QG_T(const float, gamma), QG_T(const float, beta), int affine,
                             QG_T(const float, rmean), QG_T(const float, rvar), float eps,
                             QG_T(float, y), QG_T(const float, res), int has_res, int act,
                             QG_T(const float, alpha))
{
    int cpp = (HW + VW - 1) / VW;
    int t = get_global_id(0);
    if (t >= planes * cpp)
        return;
    int plane = t / cpp, j = (t - plane * cpp) * VW;
    int c = plane % C;
    size_t at = (size_t)plane * HW + j;
    int len = min(VW, HW - j);
    float invstd = 1.0f / sqrt(QG_P(rvar)[c] + eps);
    float g = affine ? QG_P(gamma)[c] : 1.0f;
    float bt = affine ? QG_P(beta)[c] : 0.0f;
    float a = invstd * g, b = bt - QG_P(rmean)[c] * a;
    __global const float *xp = QG_P(x), *rp = QG_P(res);
    __global float *yp = QG_P(y);
    bn_apply(xp, rp, yp, at, len, a, b, has_res, act, act == BN_PACT ? QG_P(alpha)[0] : 0.0f);
}

/* dy masked by the fused activation's derivative, for a chunk of VW
 * values at `at` (x values xv) and for one value: ReLU by y > 0; PACT by
 * 0 <= z <= hi with z = fma(x, a, b) [+ res] formed as in the forward
 * pass, adding dy over z > hi to *over (dalpha's share). */
static inline vec bn_mask_v(vec d, vec xv, __global const float *yp,
                            __global const float *rp, size_t at, int act, int has_res,
                            float a, float b, float hi, vec *over)
{
    if (act == BN_RELU)
        return select((vec)0.0f, d, isgreater(VLOAD(yp + at), (vec)0.0f));
    if (act == BN_RELU_Z)
        return select((vec)0.0f, d, isgreater(fma(xv, (vec)a, (vec)b), (vec)0.0f));
    if (!BN_IS_PACT(act))
        return d;
    vec z = fma(xv, (vec)a, (vec)b);
    if (has_res)
        z += VLOAD(rp + at);
    if (act == BN_PACT) {
        *over += select((vec)0.0f, d, isgreater(z, (vec)hi));
        return select((vec)0.0f, d, isgreaterequal(z, (vec)0.0f) & islessequal(z, (vec)hi));
    }
    if (hi != 0.0f)
        *over += select((vec)0.0f, d, isgreater(z, (vec)hi));
    return select((vec)0.0f, d, isgreater(z, (vec)0.0f) & islessequal(z, (vec)hi));
}

static inline float bn_mask_s(float d, __global const float *xp, __global const float *yp,
                              __global const float *rp, size_t i, int act, int has_res,
                              float a, float b, float hi, float *over)
{
    if (act == BN_RELU)
        return yp[i] > 0.0f ? d : 0.0f;
    if (act == BN_RELU_Z)
        return fma(xp[i], a, b) > 0.0f ? d : 0.0f;
    if (!BN_IS_PACT(act))
        return d;
    float z = fma(xp[i], a, b) + (has_res ? rp[i] : 0.0f);
    int nz = act == BN_PACT_NZ;
    *over += z > hi && (!nz || hi != 0.0f) ? d : 0.0f;
    return (nz ? z > 0.0f : z >= 0.0f) && z <= hi ? d : 0.0f;
}

/* Over a run of len <= VW values at `at` (a vector when len == VW):
 * bn_bwd_sums adds the masked dy to *s1, it times xhat to *s2 and PACT's
 * dy over z > alpha to *s3 (vector accumulators for full runs, scalar
 * ones for the rest); bn_bwd_dx writes dx = k*(n*d - sdy - xhat*sdyx)
 * (added to dx when accumulate) and, by res_mode, the masked dy to dres.
 * Both backward layouts run their loops through these two. */
static inline void bn_bwd_sums(__global const float *xp, __global const float *dyp,
                               __global const float *yp, __global const float *rp, size_t at,
                               int len, int act, int has_res, float mean, float invstd,
                               float a, float b, float hi, vec *s1v, vec *s2v, vec *s3v,
                               float *s1, float *s2, float *s3)
{
    if (len == VW) {
        vec xv = VLOAD(xp + at);
        vec d = bn_mask_v(VLOAD(dyp + at), xv, yp, rp, at, act, has_res, a, b, hi, s3v);
        *s1v += d;
        *s2v += d * ((xv - mean) * invstd);
        return;
    }
    for (int i = 0; i < len; i++) {
        float d = bn_mask_s(dyp[at + i], xp, yp, rp, at + i, act, has_res, a, b, hi, s3);
        *s1 += d;
        *s2 += d * ((xp[at + i] - mean) * invstd);
    }
}

static inline void bn_bwd_dx(__global const float *xp, __global const float *dyp,
                             __global const float *yp, __global const float *rp,
                             __global float *dxp, __global float *drp, size_t at, int len,
                             int act, int has_res, float mean, float invstd, float a, float b,
                             float hi, float k, float nf, float sdy, float sdyx, int accumulate,
                             int res_mode)
{
    if (len == VW) {
        vec xv = VLOAD(xp + at), unused = (vec)0.0f;
        vec d = bn_mask_v(VLOAD(dyp + at), xv, yp, rp, at, act, has_res, a, b, hi, &unused);
        vec xhat = (xv - mean) * invstd;
        vec v = k * (nf * d - sdy - xhat * sdyx);
        if (accumulate)
            v += VLOAD(dxp + at);
        VSTORE(v, dxp + at);
        if (res_mode == 2)
            d += VLOAD(drp + at);
        if (res_mode)
            VSTORE(d, drp + at);
        return;
    }
    for (int i = 0; i < len; i++) {
        float unused = 0.0f;
        float d = bn_mask_s(dyp[at + i], xp, yp, rp, at + i, act, has_res, a, b, hi, &unused);
        float xhat = (xp[at + i] - mean) * invstd;
        float v = k * (nf * d - sdy - xhat * sdyx);
        dxp[at + i] = accumulate ? dxp[at + i] + v : v;
        if (res_mode)
            drp[at + i] = res_mode == 2 ? drp[at + i] + d : d;
    }
}

/* The per-channel values of the backward passes: the saved statistics
 * and the forward pass's a and b (the same expressions, contraction off,
 * so a PACT mask sees the very z the forward pass clipped). */
#define BN_BWD_CHANNEL(c)                                                               \
    float mean = QG_P(smean)[c], invstd = QG_P(sinvstd)[c];                           \
    float g = affine ? QG_P(gamma)[c] : 1.0f;                                           \
    float a = invstd * g, b = (affine ? QG_P(beta)[c] : 0.0f) - mean * a;

/* One work-group per channel: global = C*WG. Both per-channel sums are
 * always formed (dx needs them even when affine == 0); they are stored
 * when want_dgamma / want_dbeta. accumulate adds into dx. act masks dy:
 * ReLU by y > 0 (y is the fused output); PACT by the recomputed z (beta,
 * res and has_res as in the forward pass), also writing the channel's
 * sum of dy over z > alpha to part[c]. res_mode 1 writes, 2 adds the
 * masked gradient into dres; 0 leaves dres alone. dres may be res (the
 * option-A shortcut buffer): each value is read before it is written. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_bn_bwd(QG_T(const float, x), QG_T(const float, dy), int N, int C, int HW,
               QG_T(const float, gamma), int affine, QG_T(const float, smean),
               QG_T(const float, sinvstd), QG_T(float, dx), int accumulate,
               QG_T(float, dgamma), int want_dgamma, QG_T(float, dbeta), int want_dbeta,
               QG_T(const float, y), int act, QG_T(float, dres), int res_mode,
               QG_T(const float, beta), QG_T(const float, res), int has_res,
               QG_T(const float, alpha), QG_T(float, part))
{
    __local float acc[WG];
    int c = get_group_id(0);
    int l = get_local_id(0);
    int n = N * HW;
    BN_BWD_CHANNEL(c)
    float hi = BN_IS_PACT(act) ? QG_P(alpha)[0] : 0.0f;
    __global const float *xp = QG_P(x), *dyp = QG_P(dy), *yp = QG_P(y), *rp = QG_P(res);
    vec s1v = (vec)0.0f, s2v = (vec)0.0f, s3v = (vec)0.0f;
    float s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    BN_CHUNKS_BEGIN(c)
        bn_bwd_sums(xp, dyp, yp, rp, at, len, act, has_res, mean, invstd, a, b, hi, &s1v, &s2v,
                    &s3v, &s1, &s2, &s3);
    BN_CHUNKS_END
    float sdy = bn_group_sum(acc, s1 + VSUM(s1v));
    float sdyx = bn_group_sum(acc, s2 + VSUM(s2v));
    float sda = BN_IS_PACT(act) ? bn_group_sum(acc, s3 + VSUM(s3v)) : 0.0f;
    if (l == 0) {
        if (want_dgamma)
            QG_P(dgamma)[c] = sdyx;
        if (want_dbeta)
            QG_P(dbeta)[c] = sdy;
        if (BN_IS_PACT(act))
            QG_P(part)[c] = sda;
    }
    float k = g * invstd / (float)n;
    __global float *dxp = QG_P(dx), *drp = QG_P(dres);
    BN_CHUNKS_BEGIN(c)
        bn_bwd_dx(xp, dyp, yp, rp, dxp, drp, at, len, act, has_res, mean, invstd, a, b, hi, k,
                  (float)n, sdy, sdyx, accumulate, res_mode);
    BN_CHUNKS_END
}

/* *out += part[0] + ... + part[n-1], summed in that order first (PACT's
 * dalpha from per-channel sums: the same value whichever kernel adds it). */
static inline void bn_add_parts(__global const float *part, int n, __global float *out)
{
    float s = 0.0f;
    for (int i = 0; i < n; i++)
        s += part[i];
    *out += s;
}

/* bn_add_parts by one item, after qg_bn_bwd. */
__kernel void qg_bn_part_add(QG_T(const float, part), int nparts, QG_T(float, out))
{
    if (get_global_id(0) == 0)
        bn_add_parts(QG_P(part), nparts, QG_P(out));
}

/* ---- The partial-sums path (host tunable PARTS > 0; CPU default) ----
 * The kernels above give each channel a work-group that walks the
 * channel's N planes, HW values each, C*HW apart: on a CPU one thread
 * then streams page-sized pieces from all over the tensor, which the
 * hardware prefetchers serve at a third of the memory's bandwidth once
 * the tensor has left the caches (bench/bench_bn --cold). Here each of
 * nparts items takes a contiguous range of whole images and adds the
 * sums of every channel into its own row of part[]; a per-channel item
 * sums the rows in part order (so the result does not depend on the
 * thread schedule); and the elementwise pass runs one item per plane,
 * consecutive planes being consecutive memory. Same math as above. */

/* part[(p*C + c)*2 + {0, 1}] = sums of x - k and (x - k)^2 over item p's
 * images of channel c, k = x[0][c][0]; the first item also copies the
 * C shifts k to part[nparts*C*2 + c] (qg_bn_apply may write y over x) and
 * zeroes ymax for qg_bn_apply's running max, when want_ymax (a fill
 * command less). Global = nparts items. */
__kernel void qg_bn_stats_part(QG_T(const float, x), int N, int C, int HW, int nparts,
                               QG_T(float, part), QG_T(float, ymax), int want_ymax)
{
    int p = get_global_id(0);
    if (p >= nparts)
        return;
    if (p == 0) {
        for (int c = 0; c < C; c++)
            QG_P(part)[(size_t)nparts * C * 2 + c] = QG_P(x)[(size_t)c * HW];
        if (want_ymax)
            QG_P(ymax)[0] = 0.0f;
    }
    __global const float *xp = QG_P(x);
    __global float *pp = QG_P(part) + (size_t)p * C * 2;
    for (int c = 0; c < 2 * C; c++)
        pp[c] = 0.0f;
    int n0 = p * N / nparts, n1 = (p + 1) * N / nparts;
    for (int nn = n0; nn < n1; nn++)
        for (int c = 0; c < C; c++) {
            __global const float *v = xp + ((size_t)nn * C + c) * HW;
            float k = xp[(size_t)c * HW];
            vec sv = (vec)0.0f, qv = (vec)0.0f;
            float s = 0.0f, q = 0.0f;
            int j = 0;
            for (; j + VW <= HW; j += VW) {
                vec d = VLOAD(v + j) - k;
                sv += d;
                qv += d * d;
            }
            for (; j < HW; j++) {
                float d = v[j] - k;
                s += d;
                q += d * d;
            }
            pp[2 * c] += s + VSUM(sv);
            pp[2 * c + 1] += q + VSUM(qv);
        }
}

/* Channel c's statistics from the parts, summed in part order (so every
 * item of qg_bn_apply that needs them forms the same bits), as
 * qg_bn_fwd_train forms them: the mean, 1/std, the biased variance and
 * the elementwise pass's coefficients y = act(x*a + b [+ res]). */
static inline void bn_part_stats(__global const float *part, int nparts, int N, int C, int HW,
                                 __global const float *gamma,
                                 __global const float *beta, int affine, float eps, int c,
                                 float *mean, float *invstd, float *var, float *a, float *b)
{
    float s = 0.0f, q = 0.0f;
    for (int p = 0; p < nparts; p++) {
        s += part[((size_t)p * C + c) * 2];
        q += part[((size_t)p * C + c) * 2 + 1];
    }
    int n = N * HW;
    float ms = s / (float)n;
    *var = fmax(q / (float)n - ms * ms, 0.0f);
    *mean = part[(size_t)nparts * C * 2 + c] + ms;
    *invstd = 1.0f / sqrt(*var + eps);
    float g = affine ? gamma[c] : 1.0f;
    float bt = affine ? beta[c] : 0.0f;
    *a = *invstd * g;
    *b = bt - *mean * *a;
}

/* y = act(x*a + b [+ res]), one item per plane (global = N*C items), a
 * and b from qg_bn_stats_part's sums; the items of the first image also
 * store their channel's statistics (a launch of its own for C items cost
 * ~35 us of PoCL dispatch). */
__kernel void qg_bn_apply(QG_T(const float, x), int N, int C, int HW, QG_T(const float, part),
                          int nparts, QG_T(const float, gamma), QG_T(const float, beta),
                          int affine, QG_T(float, rmean), QG_T(float, rvar), int track,
                          float momentum, float eps, QG_T(float, smean), QG_T(float, sinvstd),
                          QG_T(float, y), QG_T(const float, res), int has_res, int act,
                          QG_T(const float, alpha), QG_T(float, ymax), int want_ymax,
                          float ymax_add)
{
    int plane = get_global_id(0);
    if (plane >= N * C)
        return;
    int c = plane % C;
    float mean, invstd, var, a, b;
    bn_part_stats(QG_P(part), nparts, N, C, HW, QG_P(gamma), QG_P(beta), affine, eps, c,
                  &mean, &invstd, &var, &a, &b);
    if (plane < C)
        bn_store_stats(QG_P(smean), QG_P(sinvstd), QG_P(rmean), QG_P(rvar), c, mean, invstd, var,
                       N * HW, track, momentum);
    float hi = act == BN_PACT ? QG_P(alpha)[0] : 0.0f;
    size_t at = (size_t)plane * HW;
    __global const float *xp = QG_P(x), *rp = QG_P(res);
    __global float *yp = QG_P(y);
    vec ym = (vec)0.0f;
    for (int j = 0; j < HW; j += VW)
        ym = fmax(ym, bn_apply(xp, rp, yp, at + j, min(VW, HW - j), a, b, has_res, act, hi));
    bn_ymax(QG_P(ymax), want_ymax, ym, ymax_add);
}

/* part[(p*C + c)*3 + {0, 1, 2}] = sums over item p's images of channel c
 * of the masked dy, of it times xhat and (PACT) of dy over z > alpha.
 * Arguments as qg_bn_bwd's. Global = nparts items. */
__kernel void qg_bn_bwd_part(QG_T(const float, x), QG_T(const float, dy), int N, int C, int HW,
                             int nparts, QG_T(const float, gamma), int affine,
                             QG_T(const float, smean), QG_T(const float, sinvstd),
                             QG_T(const float, y), int act, QG_T(const float, beta),
                             QG_T(const float, res), int has_res, QG_T(const float, alpha),
                             QG_T(float, part))
{
    int p = get_global_id(0);
    if (p >= nparts)
        return;
    float hi = BN_IS_PACT(act) ? QG_P(alpha)[0] : 0.0f;
    __global const float *xp = QG_P(x), *dyp = QG_P(dy), *yp = QG_P(y), *rp = QG_P(res);
    __global float *pp = QG_P(part) + (size_t)p * C * 3;
    for (int c = 0; c < 3 * C; c++)
        pp[c] = 0.0f;
    int n0 = p * N / nparts, n1 = (p + 1) * N / nparts;
    for (int nn = n0; nn < n1; nn++)
        for (int c = 0; c < C; c++) {
            BN_BWD_CHANNEL(c)
            size_t at0 = ((size_t)nn * C + c) * HW;
            vec s1v = (vec)0.0f, s2v = (vec)0.0f, s3v = (vec)0.0f;
            float s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
            for (int j = 0; j < HW; j += VW)
                bn_bwd_sums(xp, dyp, yp, rp, at0 + j, min(VW, HW - j), act, has_res, mean,
                            invstd, a, b, hi, &s1v, &s2v, &s3v, &s1, &s2, &s3);
            pp[3 * c] += s1 + VSUM(s1v);
            pp[3 * c + 1] += s2 + VSUM(s2v);
            pp[3 * c + 2] += s3 + VSUM(s3v);
        }
}

/* Channel c's sums over the parts, in part order: of the masked dy, of it
 * times xhat and (PACT) of dy over z > alpha. */
static inline void bn_part_sums(__global const float *part, int nparts, int C, int c, float *s1,
                                float *s2, float *s3)
{
    *s1 = *s2 = *s3 = 0.0f;
    for (int p = 0; p < nparts; p++) {
        __global const float *pp = part + ((size_t)p * C + c) * 3;
        *s1 += pp[0];
        *s2 += pp[1];
        *s3 += pp[2];
    }
}

/* dx (and dres) as qg_bn_bwd writes them, one item per plane (global =
 * N*C items), from qg_bn_bwd_part's sums; the items of the first image
 * also write dgamma and dbeta (no launch of its own for C items).
 * want_dalpha: the first item adds the channels' PACT sums to dalpha in
 * channel order, as qg_bn_part_add does after qg_bn_bwd. */
__kernel void qg_bn_bwd_apply(QG_T(const float, x), QG_T(const float, dy), int N, int C,
                              int HW, QG_T(const float, gamma), int affine,
                              QG_T(const float, smean), QG_T(const float, sinvstd),
                              QG_T(const float, part), int nparts, QG_T(float, dgamma),
                              int want_dgamma, QG_T(float, dbeta), int want_dbeta,
                              QG_T(float, dx), int accumulate, QG_T(const float, y), int act,
                              QG_T(float, dres), int res_mode, QG_T(const float, beta),
                              QG_T(const float, res), int has_res, QG_T(const float, alpha),
                              QG_T(float, dalpha), int want_dalpha)
{
    int plane = get_global_id(0);
    if (plane >= N * C)
        return;
    float sdy, sdyx, s3;
    if (want_dalpha && plane == 0) {
        float s = 0.0f;
        for (int cc = 0; cc < C; cc++) {
            bn_part_sums(QG_P(part), nparts, C, cc, &sdy, &sdyx, &s3);
            s += s3;
        }
        QG_P(dalpha)[0] += s;
    }
    int c = plane % C;
    bn_part_sums(QG_P(part), nparts, C, c, &sdy, &sdyx, &s3);
    if (plane < C) {
        if (want_dgamma)
            QG_P(dgamma)[c] = sdyx;
        if (want_dbeta)
            QG_P(dbeta)[c] = sdy;
    }
    BN_BWD_CHANNEL(c)
    float hi = BN_IS_PACT(act) ? QG_P(alpha)[0] : 0.0f;
    int n = N * HW;
    float k = g * invstd / (float)n;
    __global const float *xp = QG_P(x), *dyp = QG_P(dy), *yp = QG_P(y), *rp = QG_P(res);
    __global float *dxp = QG_P(dx), *drp = QG_P(dres);
    size_t at0 = (size_t)plane * HW;
    for (int j = 0; j < HW; j += VW)
        bn_bwd_dx(xp, dyp, yp, rp, dxp, drp, at0 + j, min(VW, HW - j), act, has_res, mean,
                  invstd, a, b, hi, k, (float)n, sdy, sdyx, accumulate, res_mode);
}

/* Eval-mode batch norm folded into the convolution before it:
 * a = gamma*invstd (gamma = 1 when affine == 0), wf[k][i] = w[k][i]*a[k],
 * bf[k] = beta[k] + (b[k] - rmean[k])*a[k] (b = conv bias, 0 when has_b ==
 * 0). One item per weight element: global = K*per (per = C*R*S). */
__kernel void qg_bn_fold(QG_T(const float, w), int K, int per, QG_T(const float, b), int has_b,
                         QG_T(const float, gamma), QG_T(const float, beta), int affine,
                         QG_T(const float, rmean), QG_T(const float, rvar), float eps,
                         QG_T(float, wf), QG_T(float, bf))
{
    int i = get_global_id(0);
    if (i >= K * per)
        return;
    int k = i / per;
    float invstd = 1.0f / sqrt(QG_P(rvar)[k] + eps);
    float a = affine ? QG_P(gamma)[k] * invstd : invstd;
    QG_P(wf)[i] = QG_P(w)[i] * a;
    if (i - k * per == 0) {
        float bk = has_b ? QG_P(b)[k] : 0.0f;
        QG_P(bf)[k] = (affine ? QG_P(beta)[k] : 0.0f) + (bk - QG_P(rmean)[k]) * a;
    }
}
