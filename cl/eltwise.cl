/* cl/eltwise.cl: elementwise kernels. C twins: src/ref/ref_eltwise.c;
 * tests: tests/test_eltwise.c.
 *
 * Tunables:
 *   WG  work-group size (1..1024, power of two), the local size the host
 *       launches with; kernels themselves are size-agnostic. */
#ifndef WG
#define WG 64
#endif

/* y[i] = v */
__kernel void qg_eltwise_fill(QG_T(float, y), float v, int n)
{
    int i = get_global_id(0);
    if (i < n)
        QG_P(y)[i] = v;
}

/* y[i] = a * x[i] + b * y[i]; b == 0 overwrites y without reading it, so a
 * NaN already in y does not propagate. */
__kernel void qg_eltwise_axpby(float a, QG_T(const float, x), float b, QG_T(float, y), int n)
{
    int i = get_global_id(0);
    if (i >= n)
        return;
    float r = a * QG_P(x)[i];
    QG_P(y)[i] = b == 0.0f ? r : r + b * QG_P(y)[i];
}

/* y[i] = a[i] + b[i] */
__kernel void qg_eltwise_add(QG_T(const float, a), QG_T(const float, b), QG_T(float, y), int n)
{
    int i = get_global_id(0);
    if (i < n)
        QG_P(y)[i] = QG_P(a)[i] + QG_P(b)[i];
}

/* y[i] = a[i] * b[i] */
__kernel void qg_eltwise_mul(QG_T(const float, a), QG_T(const float, b), QG_T(float, y), int n)
{
    int i = get_global_id(0);
    if (i < n)
        QG_P(y)[i] = QG_P(a)[i] * QG_P(b)[i];
}

/* y = max(x, 0) */
__kernel void qg_eltwise_relu_fwd(QG_T(const float, x), QG_T(float, y), int n)
{
    int i = get_global_id(0);
    if (i < n)
        QG_P(y)[i] = fmax(QG_P(x)[i], 0.0f);
}

/* dx = dy where x > 0 (PyTorch's convention: zero gradient at x == 0).
 * accumulate != 0 adds into dx instead of overwriting it. */
__kernel void qg_eltwise_relu_bwd(QG_T(const float, x), QG_T(const float, dy),
                                  QG_T(float, dx), int n, int accumulate)
{
    int i = get_global_id(0);
    if (i >= n)
        return;
    float g = QG_P(x)[i] > 0.0f ? QG_P(dy)[i] : 0.0f;
    QG_P(dx)[i] = accumulate ? QG_P(dx)[i] + g : g;
}

/* Dropout (docs/methods.md, VGG16-bn): element i is kept when
 * qg_dropout_hash(i, key) >= thresh (thresh = p * 2^32, so P(drop) = p) and
 * then scaled by scale = 1/(1-p); dropped elements are 0. The hash of the
 * element index and the 64-bit key of the forward (two 32-bit halves) is
 * two rounds of a 32-bit integer finaliser, so the backward recomputes the
 * forward's mask instead of storing it. C twin: qg_ref_dropout_keep. */
inline uint qg_dropout_mix(uint x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

inline uint qg_dropout_hash(uint i, uint key_lo, uint key_hi)
{
    return qg_dropout_mix(qg_dropout_mix(i ^ key_lo) ^ key_hi);
}

/* y = keep(i) ? x * scale : 0 */
__kernel void qg_eltwise_dropout_fwd(QG_T(const float, x), QG_T(float, y), int n, uint key_lo,
                                     uint key_hi, uint thresh, float scale)
{
    int i = get_global_id(0);
    if (i >= n)
        return;
    QG_P(y)[i] = qg_dropout_hash((uint)i, key_lo, key_hi) >= thresh ? QG_P(x)[i] * scale : 0.0f;
}

/* dx (=|+=) keep(i) ? dy * scale : 0, the mask of the forward with the
 * same key */
__kernel void qg_eltwise_dropout_bwd(QG_T(const float, dy), QG_T(float, dx), int n,
                                     uint key_lo, uint key_hi, uint thresh, float scale,
                                     int accumulate)
{
    int i = get_global_id(0);
    if (i >= n)
        return;
    float g = qg_dropout_hash((uint)i, key_lo, key_hi) >= thresh ? QG_P(dy)[i] * scale : 0.0f;
    QG_P(dx)[i] = accumulate ? QG_P(dx)[i] + g : g;
}
