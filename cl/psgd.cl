/* cl/psgd.cl: PSGD's weight grid (docs/methods.md §6): the running min/max
 * range of a weight tensor, its symmetric restricted-range quantization and
 * the position-based gradient scale. Launchers: src/quant/psgd.c; C twins:
 * src/ref/ref_psgd.c; tests: tests/test_psgd.c.
 *
 * The range state of one tensor is 4 floats: x_min, x_max, delta (the grid
 * step of the last update) and a "seen" flag (0 before the first update).
 * L = 2^(bits-1) - 1 is the largest code; Q(w) = delta*rint(clamp(w/delta,
 * -L, L)), and Q(w) = 0 when delta == 0 (an all-zero tensor). No
 * contraction into fused multiply-adds: the C twins round every step. */
#pragma OPENCL FP_CONTRACT OFF

static inline float psgd_q(float w, float delta, float lv)
{
    if (!(delta > 0.0f))
        return 0.0f;
    return rint(clamp(w / delta, -lv, lv)) * delta;
}

/* One work-group (global = local = WG): reduces min and max of w, updates
 * the running range (first call: x_min = min(0, min w), x_max = max(0, max
 * w); later: 0.1*current + 0.9*previous, where a previous value of exactly 0
 * counts as the current one, as the reference's `prev or cur`), sets delta
 * = max(|x_min|, x_max)/L and, when quant != 0, writes wq = Q(w) with the
 * new delta. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_psgd_range(QG_T(const float, w), int n, int bits, QG_T(float, state), int quant,
                   QG_T(float, wq))
{
    __local float mn[WG], mx[WG];
    __local float dsh;
    int l = get_local_id(0);
    __global const float *wp = QG_P(w);
    float a = INFINITY, b = -INFINITY;
    for (int i = l; i < n; i += WG) {
        float v = wp[i];
        a = fmin(a, v);
        b = fmax(b, v);
    }
    mn[l] = a;
    mx[l] = b;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = WG / 2; s > 0; s >>= 1) {
        if (l < s) {
            mn[l] = fmin(mn[l], mn[l + s]);
            mx[l] = fmax(mx[l], mx[l + s]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float lv = (float)((1 << (bits - 1)) - 1);
    if (l == 0) {
        __global float *st = QG_P(state);
        float cmin = fmin(0.0f, mn[0]), cmax = fmax(0.0f, mx[0]);
        float xmin = cmin, xmax = cmax;
        if (st[3] != 0.0f) {
            float pmin = st[0] != 0.0f ? st[0] : cmin;
            float pmax = st[1] != 0.0f ? st[1] : cmax;
            xmin = 0.1f * cmin + 0.9f * pmin;
            xmax = 0.1f * cmax + 0.9f * pmax;
        }
        float d = fmax(fabs(xmin), xmax) / lv;
        st[0] = xmin;
        st[1] = xmax;
        st[2] = d;
        st[3] = 1.0f;
        dsh = d;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if (!quant)
        return;
    float d = dsh;
    __global float *qp = QG_P(wq);
    for (int i = l; i < n; i += WG)
        qp[i] = psgd_q(wp[i], d, lv);
}

/* g = (g * |w - Q(w)|) * lambda with the delta of the last range update
 * (the reference's order of the two products). */
__kernel void qg_psgd_scale(QG_T(const float, w), QG_T(float, g), int n, int bits,
                            float lambda, QG_T(const float, state))
{
    int i = get_global_id(0);
    if (i >= n)
        return;
    float lv = (float)((1 << (bits - 1)) - 1);
    float d = QG_P(state)[2];
    float wi = QG_P(w)[i];
    __global float *gp = QG_P(g);
    gp[i] = (gp[i] * fabs(wi - psgd_q(wi, d, lv))) * lambda;
}

/* PSG-pytorch's activation quantizer at evaluation (ReLU_quant with a
 * fixed range [0, x_max]), in place: x = delta*rint(clamp(x/delta, 0,
 * 2^bits - 1)), the clamp at 0 being the ReLU; delta <= 0 (a clip at or
 * below 0) gives 0. delta comes from the host (qg_ref_psgd_act_delta). */
__kernel void qg_psgd_act_quant(QG_T(float, x), int n, int bits, float delta)
{
    int i = get_global_id(0);
    if (i >= n)
        return;
    __global float *xp = QG_P(x);
    if (!(delta > 0.0f)) {
        xp[i] = 0.0f;
        return;
    }
    float top = (float)((1 << bits) - 1);
    xp[i] = rint(clamp(xp[i] / delta, 0.0f, top)) * delta;
}
