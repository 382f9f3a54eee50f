/* src/ref/ref_cg.c: C oracles of cl/cg.cl (see ref_cg.h). */
#include "config.h"

#include "ref/ref_cg.h"
#include "ref/ref_quant.h"

void qg_ref_cg_weights_fwd(int K, int C, int KK, int p, int compact, const float *w,
                           const float *m, float *wb, float *wc)
{
    int ci = compact ? C / p : C, co = K / p;
    for (size_t i = 0; i < (size_t)K * C * KK; i++)
        wc[i] = w[i] * (1.0f - m[i]);
    for (int o = 0; o < K; o++) {
        int first = compact == 1 ? o / co * ci : 0; /* 1: blocks, 2: first C/p channels */
        for (int c = 0; c < ci; c++)
            for (int kk = 0; kk < KK; kk++) {
                size_t src = ((size_t)o * C + first + c) * KK + kk;
                wb[((size_t)o * ci + c) * KK + kk] = w[src] * m[src];
            }
    }
}

void qg_ref_cg_weights_bwd(int K, int C, int KK, int p, int compact, const float *m,
                           const float *dwb, const float *dwc, float *dw)
{
    int ci = compact ? C / p : C, co = K / p;
    for (size_t i = 0; i < (size_t)K * C * KK; i++)
        dw[i] = (1.0f - m[i]) * dwc[i];
    for (int o = 0; o < K; o++) {
        int first = compact == 1 ? o / co * ci : 0; /* 1: blocks, 2: first C/p channels */
        for (int c = 0; c < ci; c++)
            for (int kk = 0; kk < KK; kk++) {
                size_t dst = ((size_t)o * C + first + c) * KK + kk;
                dw[dst] = dw[dst] + m[dst] * dwb[((size_t)o * ci + c) * KK + kk];
            }
    }
}

void qg_ref_cg_gate_fwd(int N, int C, int HW, const float *z, const float *delta,
                        const float *yp, const float *yc, float alpha, float *out,
                        int32_t *count)
{
    int32_t on = 0;
    for (size_t i = 0; i < (size_t)N * C * HW; i++) {
        int d = qg_ref_pg_gate_elem(z[i], delta[(i / HW) % C], alpha, 0, NULL, NULL);
        out[i] = yp[i] + (d ? 1.0f : 0.0f) * yc[i];
        on += d;
    }
    *count += on;
}

void qg_ref_cg_gate_mask(int N, int C, int HW, const float *z, const float *delta, float alpha,
                         float *mask)
{
    for (size_t i = 0; i < (size_t)N * C * HW; i++) {
        float x = alpha * (z[i] - delta[(i / HW) % C]);
        mask[i] = x >= -1e-5f ? 1.0f : 0.0f;
    }
}

void qg_ref_cg_gate_bwd(int N, int C, int HW, const float *z, const float *delta,
                        const float *yc, const float *dout, float alpha, int spbp, float *g,
                        float *dyp, float *dyc, float *ddelta)
{
    for (int c = 0; c < C; c++) {
        double sum = 0;
        for (int n = 0; n < N; n++)
            for (int p = 0; p < HW; p++) {
                size_t i = ((size_t)n * C + c) * HW + p;
                float s;
                int d = qg_ref_pg_gate_elem(z[i], delta[c], alpha, spbp, &s, NULL);
                float gd = dout[i] * yc[i];
                if (spbp && s < 0.5f)
                    gd = 0.0f;
                /* torch: sigmoid_backward grad*(1-s)*s, then the slope */
                g[i] = gd * (1.0f - s) * s * alpha;
                dyp[i] = dout[i];
                dyc[i] = (d ? 1.0f : 0.0f) * dout[i];
                sum += g[i];
            }
        ddelta[c] += (float)-sum;
    }
}

void qg_ref_cg_shuffle(int N, int C, int HW, int groups, const float *x, float *y,
                       int accumulate)
{
    int per = C / groups;
    for (int n = 0; n < N; n++)
        for (int o = 0; o < C; o++) {
            const float *src = x + ((size_t)n * C + (size_t)(o % groups) * per + o / groups) * HW;
            float *dst = y + ((size_t)n * C + o) * HW;
            for (int p = 0; p < HW; p++)
                dst[p] = accumulate ? dst[p] + src[p] : src[p];
        }
}
