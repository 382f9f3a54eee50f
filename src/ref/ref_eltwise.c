/* src/ref/ref_eltwise.c: plain-C oracles for cl/eltwise.cl and cl/reduce.cl. */
#include "config.h"

#include <math.h>

#include "ref/ref_eltwise.h"

void qg_ref_eltwise_axpby(size_t n, float a, const float *x, float b, float *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] = b == 0.0f ? a * x[i] : a * x[i] + b * y[i];
}

void qg_ref_eltwise_add(size_t n, const float *a, const float *b, float *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] + b[i];
}

void qg_ref_eltwise_mul(size_t n, const float *a, const float *b, float *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] * b[i];
}

void qg_ref_relu_fwd(size_t n, const float *x, float *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void qg_ref_relu_bwd(size_t n, const float *x, const float *dy, float *dx, int accumulate)
{
    for (size_t i = 0; i < n; i++) {
        float g = x[i] > 0.0f ? dy[i] : 0.0f;
        dx[i] = accumulate ? dx[i] + g : g;
    }
}

float qg_ref_reduce_sum(size_t n, const float *x)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += x[i];
    return (float)s;
}

float qg_ref_reduce_absmax(size_t n, const float *x)
{
    float m = 0.0f;
    for (size_t i = 0; i < n; i++)
        m = fmaxf(m, fabsf(x[i]));
    return m;
}

size_t qg_ref_reduce_nonfinite(size_t n, const float *x)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += !isfinite(x[i]);
    return c;
}

void qg_ref_reduce_channel_stats(int N, int C, int HW, const float *x, float *sum,
                                 float *sumsq)
{
    for (int c = 0; c < C; c++) {
        double s = 0, q = 0;
        for (int n = 0; n < N; n++)
            for (int p = 0; p < HW; p++) {
                double v = x[((size_t)n * C + c) * HW + p];
                s += v;
                q += v * v;
            }
        sum[c] = (float)s;
        sumsq[c] = (float)q;
    }
}

void qg_ref_dropout_params(float p, uint32_t *thresh, float *scale)
{
    double t = floor((double)p * 4294967296.0);
    *thresh = t >= 4294967295.0 ? 4294967295u : (uint32_t)(t > 0 ? t : 0);
    *scale = 1.0f / (1.0f - p);
}

static uint32_t dropout_mix(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

int qg_ref_dropout_keep(uint32_t i, uint64_t key, uint32_t thresh)
{
    uint32_t h = dropout_mix(dropout_mix(i ^ (uint32_t)key) ^ (uint32_t)(key >> 32));
    return h >= thresh;
}

void qg_ref_dropout_fwd(size_t n, float p, uint64_t key, const float *x, float *y)
{
    uint32_t t;
    float s;
    qg_ref_dropout_params(p, &t, &s);
    for (size_t i = 0; i < n; i++)
        y[i] = qg_ref_dropout_keep((uint32_t)i, key, t) ? x[i] * s : 0.0f;
}

void qg_ref_dropout_bwd(size_t n, float p, uint64_t key, const float *dy, float *dx,
                        int accumulate)
{
    uint32_t t;
    float s;
    qg_ref_dropout_params(p, &t, &s);
    for (size_t i = 0; i < n; i++) {
        float g = qg_ref_dropout_keep((uint32_t)i, key, t) ? dy[i] * s : 0.0f;
        dx[i] = accumulate ? dx[i] + g : g;
    }
}
