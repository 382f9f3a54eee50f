/* src/ref/ref_psgd.c: C twins of cl/psgd.cl (see ref_psgd.h). */
#include "config.h"

#include <math.h>

#include "ref/ref_psgd.h"
#include "ref/ref_quant.h"

static float levels(int bits)
{
    return (float)((1 << (bits - 1)) - 1);
}

float qg_ref_psgd_q(float w, float delta, int bits)
{
    if (!(delta > 0.0f))
        return 0.0f;
    float lv = levels(bits);
    float v = w / delta;
    v = v < -lv ? -lv : (v > lv ? lv : v);
    return qg_ref_rint(v) * delta;
}

void qg_ref_psgd_range(size_t n, const float *w, int bits, float *state, float *wq)
{
    float mn = INFINITY, mx = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        mn = fminf(mn, w[i]);
        mx = fmaxf(mx, w[i]);
    }
    float cmin = fminf(0.0f, mn), cmax = fmaxf(0.0f, mx);
    float xmin = cmin, xmax = cmax;
    if (state[3] != 0.0f) {
        float pmin = state[0] != 0.0f ? state[0] : cmin;
        float pmax = state[1] != 0.0f ? state[1] : cmax;
        xmin = 0.1f * cmin + 0.9f * pmin;
        xmax = 0.1f * cmax + 0.9f * pmax;
    }
    float d = fmaxf(fabsf(xmin), xmax) / levels(bits);
    state[0] = xmin;
    state[1] = xmax;
    state[2] = d;
    state[3] = 1.0f;
    for (size_t i = 0; wq && i < n; i++)
        wq[i] = qg_ref_psgd_q(w[i], d, bits);
}

void qg_ref_psgd_scale(size_t n, const float *w, float *g, int bits, float lambda,
                       const float *state)
{
    for (size_t i = 0; i < n; i++)
        g[i] = (g[i] * fabsf(w[i] - qg_ref_psgd_q(w[i], state[2], bits))) * lambda;
}

float qg_ref_psgd_act_delta(int C, const float *gamma, const float *beta, float n, int bits,
                            float *clip)
{
    float mx = 0.0f;
    for (int c = 0; c < C; c++) {
        float v = beta[c] + n * gamma[c];
        if (c == 0 || v > mx)
            mx = v;
    }
    *clip = mx;
    return (float)((double)mx / (double)((1 << bits) - 1));
}

void qg_ref_psgd_act_quant(size_t n, float *x, int bits, float delta)
{
    float top = (float)((1 << bits) - 1);
    for (size_t i = 0; i < n; i++) {
        if (!(delta > 0.0f)) {
            x[i] = 0.0f;
            continue;
        }
        float v = x[i] / delta;
        v = v < 0.0f ? 0.0f : (v > top ? top : v);
        x[i] = rintf(v) * delta;
    }
}
