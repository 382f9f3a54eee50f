/* cl/optim.cl: optimizer steps following torch.optim (SGD with momentum,
 * nesterov and weight decay, dampening 0; Adam, amsgrad off) and the sum
 * of squares used for the global gradient norm. Launchers:
 * src/ops/optim.c; C twins: src/ref/ref_layers.c (qg_ref_sgd_step,
 * qg_ref_adam_step, qg_ref_sumsq); tests: tests/test_optim.c.
 *
 * All tensors are flat [n] float32; grad is read only. With
 * g = grad*grad_scale + wd*w (torch adds the decay to the gradient):
 *   SGD:  momentum != 0: buf = first ? g : momentum*buf + g;
 *         g = nesterov ? g + momentum*buf : buf;   w = w - lr*g.
 *   Adam: m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g;
 *         w = w - step_size * m / (sqrt(v)/bc2_sqrt + eps), with
 *         step_size = lr/(1 - b1^t) and bc2_sqrt = sqrt(1 - b2^t) formed on
 *         the host in double, as torch does in Python floats.
 *   sumsq: out[0] (+)= sum grad^2, one work-group, local-memory tree.
 *
 * Tunables:
 *   WG  work-group size, power of two in 1..1024. */
#ifndef WG
#define WG 256
#endif
#if (WG & (WG - 1)) != 0 || WG < 1 || WG > 1024
#error "WG must be a power of two in 1..1024"
#endif

/* SGD (torch.optim.SGD, see ops/layers.h) over up to four tensors in one
 * launch (a model has dozens of parameters, many tiny; a launch each cost
 * more than their update). Item i updates element i of tensor 0, then
 * i - n0 of tensor 1, and so on; n_t = 0 for unused slots. has_buf == 0
 * (momentum 0) ignores the buffers. Global = n0 + n1 + n2 + n3 (or more). */
#define QG_SGD_SLOT(t) QG_T(float, w##t), QG_T(const float, g##t), QG_T(float, b##t), int n##t, \
                       float wd##t
#define QG_SGD_PICK(t)                                                                    \
    if (i >= 0 && i < n##t) {                                                             \
        w = QG_P(w##t) + i;                                                               \
        g = QG_P(g##t) + i;                                                               \
        b = QG_P(b##t) + i;                                                               \
        wd = wd##t;                                                                       \
    }                                                                                     \
    i -= n##t;
__kernel void qg_optim_sgd4(QG_SGD_SLOT(0), QG_SGD_SLOT(1), QG_SGD_SLOT(2), QG_SGD_SLOT(3),
                            float lr, float momentum, int nesterov, int first, float grad_scale,
                            int has_buf)
{
    int i = get_global_id(0);
    __global float *w = 0, *b = 0;
    __global const float *g = 0;
    float wd = 0.0f;
    QG_SGD_PICK(0)
    QG_SGD_PICK(1)
    QG_SGD_PICK(2)
    QG_SGD_PICK(3)
    if (!w)
        return;
    float wi = *w;
    float gi = *g * grad_scale;
    if (wd != 0.0f)
        gi = gi + wd * wi;
    if (has_buf) {
        float bi = first ? gi : momentum * *b + gi;
        *b = bi;
        gi = nesterov ? gi + momentum * bi : bi;
    }
    *w = wi - lr * gi;
}

/* Elementwise, global = n. */
__kernel void qg_optim_adam(QG_T(float, w), QG_T(const float, grad), QG_T(float, m),
                            QG_T(float, v), int n, float step_size, float bc2_sqrt, float beta1,
                            float beta2, float eps, float wd, float grad_scale)
{
    int i = get_global_id(0);
    if (i >= n)
        return;
    float wi = QG_P(w)[i];
    float g = QG_P(grad)[i] * grad_scale;
    if (wd != 0.0f)
        g = g + wd * wi;
    float mi = beta1 * QG_P(m)[i] + (1.0f - beta1) * g;
    float vi = beta2 * QG_P(v)[i] + (1.0f - beta2) * g * g;
    QG_P(m)[i] = mi;
    QG_P(v)[i] = vi;
    QG_P(w)[i] = wi - step_size * (mi / (sqrt(vi) / bc2_sqrt + eps));
}

/* out[0] (+)= sum x^2 over n elements; global = local = WG. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_optim_sumsq(QG_T(const float, x), int n, QG_T(float, out), int accumulate)
{
    __local float acc[WG];
    int l = get_local_id(0);
    float s = 0.0f;
    for (int i = l; i < n; i += WG) {
        float v = QG_P(x)[i];
        s += v * v;
    }
    acc[l] = s;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int w = WG / 2; w > 0; w >>= 1) {
        if (l < w)
            acc[l] += acc[l + w];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (l == 0)
        QG_P(out)[0] = accumulate ? QG_P(out)[0] + acc[0] : acc[0];
}
