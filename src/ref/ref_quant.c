/* src/ref/ref_quant.c: plain-C oracles for cl/quant.cl (contract:
 * src/quant/quant.h; tests: tests/test_quant.c). Math:
 * docs/methods.md §2.2-2.5, §3.2-3.3, §5.3-5.5. Each expression is
 * written in the reference implementation's order (noted where it is not
 * obvious) so float results match it bit for bit. */
#include "config.h"

#include <math.h>

#include "ref/ref_quant.h"

float qg_ref_rint(float v)
{
    /* rintf honours the current rounding mode, which is to-nearest-even
     * unless a program changed it; nearbyintf would be the same. */
    return rintf(v);
}

static float sign_of(float v)
{
    return v > 0.0f ? 1.0f : (v < 0.0f ? -1.0f : 0.0f);
}

static float levels(int bits)
{
    return (float)((1L << bits) - 1);
}

void qg_ref_quant_scale(size_t n, size_t nsamples, const float *x, qg_qscale mode, float *s)
{
    size_t nseg = mode == QG_QSCALE_TF_SAMPLE ? nsamples : 1;
    size_t len = nseg ? n / nseg : 0;
    for (size_t g = 0; g < nseg; g++) {
        float m = 0.0f;
        for (size_t i = 0; i < len; i++)
            m = fmaxf(m, fabsf(x[g * len + i]));
        /* torch: max(...) + 1e-7 with the scalar taken as float32 */
        s[g] = mode == QG_QSCALE_PG ? m + QG_QUANT_EPS : m;
    }
}

void qg_ref_quant_apply(size_t n, size_t nseg, const float *x, const float *s, int bits,
                        int msb_bits, float *full, float *msb, float *lsb, int32_t *codes)
{
    size_t len = n / nseg;
    float L = levels(bits);
    float p = (float)(1L << (bits - msb_bits > 0 ? bits - msb_bits : 0));
    for (size_t i = 0; i < n; i++) {
        float v = x[i], sc = s[i / len], sgn = sign_of(v);
        /* TorchRoundToBits: clamp(|x|/s, 0, 1), round(a*L)/L, *s, *sign */
        float a = fminf(fmaxf(fabsf(v) / sc, 0.0f), 1.0f);
        float q = qg_ref_rint(a * L);
        float f = q / L * sc * sgn;
        /* TorchTruncate: floor(q/2^k), *2^k, /L, *s, *sign */
        float m = floorf(q / p) * p / L * sc * sgn;
        if (full)
            full[i] = f;
        if (msb)
            msb[i] = m;
        if (lsb)
            lsb[i] = f - m;
        if (codes)
            codes[i] = (int32_t)q * (int32_t)sgn;
    }
}

void qg_ref_quant_fwd(size_t n, size_t nsamples, const float *x, int bits, qg_qscale mode,
                      float *s, float *y)
{
    if (bits >= 2) {
        qg_ref_quant_scale(n, nsamples, x, mode, s);
        qg_ref_quant_apply(n, mode == QG_QSCALE_TF_SAMPLE ? nsamples : 1, x, s, bits, bits, y,
                           NULL, NULL, NULL);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        if (bits == 1) {
            /* TorchBinarize: clamp, (x+1)/2, round, *2 - 1 */
            float c = fminf(fmaxf(v, -1.0f), 1.0f);
            v = qg_ref_rint((c + 1.0f) / 2.0f) * 2.0f - 1.0f;
        }
        y[i] = v;
    }
}

void qg_ref_quant_ste_bwd(size_t n, const float *x, const float *dy, float *dx, qg_ste mode,
                          int accumulate)
{
    for (size_t i = 0; i < n; i++) {
        float g = (mode != QG_STE_NONZERO || x[i] != 0.0f) ? dy[i] : 0.0f;
        dx[i] = accumulate ? dx[i] + g : g;
    }
}

void qg_ref_dorefa_fwd(size_t n, const float *w, int bits, float *aux, float *wq)
{
    if (bits >= 32) {
        for (size_t i = 0; i < n; i++)
            wq[i] = w[i];
        return;
    }
    if (bits == 1) {
        double s = 0;
        for (size_t i = 0; i < n; i++)
            s += fabsf(w[i]);
        float e = (float)(s / (double)n);
        *aux = e;
        /* uniform_q(x/E)*E with uniform_q = sign for k == 1 */
        for (size_t i = 0; i < n; i++)
            wq[i] = sign_of(w[i] / e) * e;
        return;
    }
    float M = 0.0f, L = levels(bits);
    for (size_t i = 0; i < n; i++)
        M = fmaxf(M, fabsf(tanhf(w[i])));
    *aux = M;
    for (size_t i = 0; i < n; i++) {
        /* weight/2/max|weight| + 0.5, then 2*(round(u*n)/n) - 1 */
        float u = tanhf(w[i]) / 2.0f / M + 0.5f;
        wq[i] = 2.0f * (qg_ref_rint(u * L) / L) - 1.0f;
    }
}

void qg_ref_dorefa_bwd(size_t n, const float *w, int bits, float aux, const float *dwq,
                       float *dw, qg_dorefa_grad mode, int accumulate)
{
    float M = aux;
    double S = 0, ties = 0;
    int max_path = mode == QG_DOREFA_GRAD_AUTOGRAD && bits >= 2 && bits < 32;
    if (max_path)
        for (size_t i = 0; i < n; i++) {
            float t = tanhf(w[i]);
            S += (double)dwq[i] * t;
            ties += fabsf(t) == M;
        }
    for (size_t i = 0; i < n; i++) {
        float g;
        if (bits == 1 || bits >= 32) {
            g = dwq[i];
        } else {
            float t = tanhf(w[i]);
            float gt = dwq[i] / M;
            if (max_path && fabsf(t) == M)
                gt = gt + (float)(-S / ((double)M * M)) * sign_of(t) / (float)ties;
            g = gt * (1.0f - t * t);
        }
        dw[i] = accumulate ? dw[i] + g : g;
    }
}

void qg_ref_pact_fwd(size_t n, const float *x, float alpha, float *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] = fminf(fmaxf(x[i], 0.0f), alpha);
}

void qg_ref_pact_bwd(size_t n, const float *x, float alpha, const float *dy, float *dx,
                     float *dalpha, qg_pact_mode mode, int accumulate)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        int pass = (mode == QG_PACT_TF ? v > 0.0f : v >= 0.0f) && v <= alpha;
        float g = pass ? dy[i] : 0.0f;
        dx[i] = accumulate ? dx[i] + g : g;
        if (mode == QG_PACT_PG ? v > alpha : v >= alpha)
            s += dy[i];
    }
    *dalpha += (float)s;
}

void qg_ref_pact_quant_fwd(size_t n, const float *x, float alpha, int bits, float *y)
{
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        /* 0.5 * (|x| - |x - a| + a) */
        float r = 0.5f * (fabsf(v) - fabsf(v - alpha) + alpha);
        if (bits < 32) {
            float L = levels(bits);
            /* round(y*L/a) * a / L */
            r = qg_ref_rint(r * L / alpha) * alpha / L;
        }
        y[i] = r;
    }
}

void qg_ref_pact_quant_bwd(size_t n, const float *x, float alpha, int bits, const float *dy,
                           float *dx, float *dalpha, int accumulate)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float dydx = 0.5f * (sign_of(v) - sign_of(v - alpha));
        float dyda = 0.5f * (sign_of(v - alpha) + 1.0f);
        if (bits < 32) {
            float L = levels(bits);
            float y = 0.5f * (fabsf(v) - fabsf(v - alpha) + alpha);
            float w = y * L / alpha;
            dyda = (qg_ref_rint(w) - w) / L + dyda;
        }
        float g = dy[i] * dydx;
        dx[i] = accumulate ? dx[i] + g : g;
        s += (double)dy[i] * dyda;
    }
    *dalpha += (float)s;
}

static float gate_sigmoid(float o, float d, float slope)
{
    float z = slope * (o - d);
    return 1.0f / (1.0f + expf(-z));
}

int qg_ref_pg_gate_elem(float o, float delta, float slope, int spbp, float *s,
                        float *dmask_ddelta)
{
    float sv = gate_sigmoid(o, delta, slope);
    if (s)
        *s = sv;
    if (dmask_ddelta)
        *dmask_ddelta = (spbp && sv < 0.5f) ? 0.0f : -(1.0f - sv) * sv * slope;
    return sv > 0.5f;
}

void qg_ref_pg_gate_fwd(int N, int C, int HW, const float *o_msb, const float *delta,
                        const float *o_lsb, float slope, float *y, int32_t *count)
{
    size_t n = (size_t)N * C * HW;
    int32_t ones = 0;
    for (size_t i = 0; i < n; i++) {
        float s = gate_sigmoid(o_msb[i], delta[(i / HW) % C], slope);
        float m = s > 0.5f ? 1.0f : 0.0f;
        y[i] = o_msb[i] + m * o_lsb[i];
        ones += s > 0.5f;
    }
    *count += ones;
}

void qg_ref_pg_gate_bwd(int N, int C, int HW, const float *o_msb, const float *delta,
                        const float *o_lsb, const float *dy, float slope, int spbp,
                        float *d_msb, float *d_lsb, float *delta_grad)
{
    for (int c = 0; c < C; c++) {
        double sum = 0;
        for (int nn = 0; nn < N; nn++)
            for (int p = 0; p < HW; p++) {
                size_t i = ((size_t)nn * C + c) * HW + p;
                float s = gate_sigmoid(o_msb[i], delta[c], slope);
                float gs = dy[i] * o_lsb[i];
                if (spbp && s < 0.5f)
                    gs = 0.0f;
                /* sigmoid_backward: grad*(1-y)*y, then the slope's mul */
                float g = gs * (1.0f - s) * s * slope;
                d_msb[i] = dy[i] + g;
                if (d_lsb)
                    d_lsb[i] = (s > 0.5f ? 1.0f : 0.0f) * dy[i];
                sum += g;
            }
        delta_grad[c] += (float)-sum;
    }
}

void qg_ref_pgtf_gate_fwd(int N, int C, int HW, const float *h_hb, const float *delta,
                          const float *h_full, float *y, int32_t *count)
{
    size_t n = (size_t)N * C * HW;
    int32_t ones = 0;
    for (size_t i = 0; i < n; i++) {
        float m = h_hb[i] > delta[(i / HW) % C] ? 1.0f : 0.0f;
        y[i] = h_hb[i] + m * (h_full[i] - h_hb[i]);
        ones += (int32_t)m;
    }
    *count += ones;
}

void qg_ref_pgtf_gate_bwd(int N, int C, int HW, const float *h_hb, const float *delta,
                          const float *h_full, const float *dy, float slope, float *d_hb,
                          float *d_full, float *delta_grad)
{
    for (int c = 0; c < C; c++) {
        double sum = 0;
        for (int nn = 0; nn < N; nn++)
            for (int p = 0; p < HW; p++) {
                size_t i = ((size_t)nn * C + c) * HW + p;
                float s = gate_sigmoid(h_hb[i], delta[c], slope);
                float m = h_hb[i] > delta[c] ? 1.0f : 0.0f;
                /* dL/dmask, SigmoidGrad (dy*s*(1-s)), then the slope's mul */
                float g = dy[i] * (h_full[i] - h_hb[i]) * s * (1.0f - s) * slope;
                d_hb[i] = (dy[i] - m * dy[i]) + g;
                d_full[i] = m * dy[i];
                sum += g;
            }
        delta_grad[c] += (float)-sum;
    }
}

void qg_ref_quant_clip(size_t n, float *x, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = fminf(fmaxf(x[i], lo), hi);
}

float qg_ref_gate_loss(size_t C, const float *delta, float target, float coef,
                       qg_gate_loss kind, float *delta_grad)
{
    double sq = 0;
    for (size_t c = 0; c < C; c++) {
        double e = (double)delta[c] - target;
        sq += e * e;
    }
    double norm = sqrt(sq), loss;
    if (kind == QG_GATE_LOSS_PG)
        loss = coef * norm;
    else
        loss = kind == QG_GATE_LOSS_TF ? coef * sq / 2 : coef * sq;
    if (delta_grad)
        for (size_t c = 0; c < C; c++) {
            double e = (double)delta[c] - target, g;
            if (kind == QG_GATE_LOSS_PG)
                g = norm > 0 ? coef * e / norm : 0;
            else
                g = kind == QG_GATE_LOSS_TF ? coef * e : 2 * coef * e;
            delta_grad[c] += (float)g;
        }
    return (float)loss;
}

double qg_ref_pq_score(size_t n, const float *grad, float scale, float lr, float beta1,
                       float beta2, float eps)
{
    float step = lr * sqrtf(1.0f - beta2) / (1.0f - beta1);
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        float g = grad[i] * scale;
        float m = (1.0f - beta1) * g;
        float v = (1.0f - beta2) * g * g;
        float d = sqrtf(v) + eps;
        float delta = step * m / d;
        s += (double)(d * delta * delta);
    }
    return s;
}
