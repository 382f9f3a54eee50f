/* src/ref/ref_bsq.c: plain-C oracles for cl/bsq.cl (see ref_bsq.h). */
#include "config.h"

#include <math.h>

#include "quant/bsq.h"
#include "ref/ref_bsq.h"

void qg_ref_bsq_fwd(size_t M, int N, const float *p, const float *n, float s, float *w)
{
    for (size_t i = 0; i < M; i++)
        w[i] = qg__bsq_value(p + i * (size_t)N, n + i * (size_t)N, N) * s;
}

void qg_ref_bsq_bwd(size_t M, int N, const float *p, const float *n, float s, const float *dw,
                    float *dp, float *dn, double *ds)
{
    double acc = 0.0;
    for (size_t i = 0; i < M; i++) {
        size_t o = i * (size_t)N;
        acc += (double)qg__bsq_value(p + o, n + o, N) * dw[i];
        float gs = dw[i] * s;
        for (int b = 0; b < N; b++) {
            float d = gs * qg__bsq_e(N, b);
            dp[o + b] = d;
            dn[o + b] = -d;
        }
    }
    *ds = acc;
}

double qg_ref_bsq_reg(size_t M, int N, const float *p, const float *n, float factor,
                      float *norms, float *dp, float *dn)
{
    double r = 0.0;
    for (int b = 0; b < N; b++) {
        double t = 0.0;
        for (size_t i = 0; i < M; i++) {
            double a = p[i * (size_t)N + b], c = n[i * (size_t)N + b];
            t += a * a + c * c;
        }
        norms[b] = (float)sqrt(t + 1e-8);
        r += norms[b];
    }
    if (dp)
        for (size_t j = 0; j < M * (size_t)N; j++) {
            float nb = norms[j % (size_t)N];
            dp[j] += factor * p[j] / nb;
            dn[j] += factor * n[j] / nb;
        }
    return (double)factor * r;
}

void qg_ref_bsq_ft_fwd(size_t M, int N, const float *v, float s, float *w)
{
    for (size_t i = 0; i < M; i++)
        w[i] = qg__bsq_ste(v[i], N) * s;
}

void qg_ref_bsq_ft_bwd(size_t M, int N, const float *v, float s, const float *dw, float *dv,
                       double *ds)
{
    double acc = 0.0;
    for (size_t i = 0; i < M; i++) {
        acc += (double)qg__bsq_ste(v[i], N) * dw[i];
        dv[i] = dw[i] * s;
    }
    *ds = acc;
}
