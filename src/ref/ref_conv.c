/* src/ref/ref_conv.c: plain-C oracles for src/ops/conv.c (cl/im2col.cl +
 * GEMM); tests: tests/test_conv.c. Direct loops over the definition in
 * src/ops/conv.h, written without the im2col lowering so that they check
 * it rather than repeat it: backward-data walks the output positions p, q
 * and derives the tap r, s, where the device walks the taps. */
#include "config.h"

#include "ref/ref_conv.h"

/* x[n][c][h][w], 0 in the padding. */
static double at(const qg_conv_desc *d, const float *x, int n, int c, int h, int w)
{
    if (h < 0 || h >= d->H || w < 0 || w >= d->W)
        return 0.0;
    return x[(((size_t)n * d->C + c) * d->H + h) * d->W + w];
}

void qg_ref_conv2d_fwd(const qg_conv_desc *d, const float *x, const float *w,
                       const float *bias, float *y)
{
    int Cg = d->C / d->groups, Kg = d->K / d->groups;
    for (int n = 0; n < d->N; n++)
        for (int k = 0; k < d->K; k++) {
            int c0 = k / Kg * Cg;
            for (int p = 0; p < d->P; p++)
                for (int q = 0; q < d->Q; q++) {
                    double s = bias ? bias[k] : 0.0;
                    for (int c = 0; c < Cg; c++)
                        for (int r = 0; r < d->R; r++)
                            for (int t = 0; t < d->S; t++)
                                s += (double)w[(((size_t)k * Cg + c) * d->R + r) * d->S + t] *
                                     at(d, x, n, c0 + c, p * d->stride - d->pad + r,
                                        q * d->stride - d->pad + t);
                    y[(((size_t)n * d->K + k) * d->P + p) * d->Q + q] = (float)s;
                }
        }
}

void qg_ref_conv2d_bwd_data(const qg_conv_desc *d, const float *dy, const float *w, float *dx)
{
    int Cg = d->C / d->groups, Kg = d->K / d->groups;
    for (int n = 0; n < d->N; n++)
        for (int c = 0; c < d->C; c++) {
            int k0 = c / Cg * Kg, cc = c % Cg;
            for (int h = 0; h < d->H; h++)
                for (int v = 0; v < d->W; v++) {
                    double s = 0.0;
                    for (int k = k0; k < k0 + Kg; k++)
                        for (int p = 0; p < d->P; p++) {
                            int r = h - p * d->stride + d->pad;
                            if (r < 0 || r >= d->R)
                                continue;
                            for (int q = 0; q < d->Q; q++) {
                                int t = v - q * d->stride + d->pad;
                                if (t < 0 || t >= d->S)
                                    continue;
                                s += (double)dy[(((size_t)n * d->K + k) * d->P + p) * d->Q + q] *
                                     w[(((size_t)k * Cg + cc) * d->R + r) * d->S + t];
                            }
                        }
                    dx[(((size_t)n * d->C + c) * d->H + h) * d->W + v] = (float)s;
                }
        }
}

void qg_ref_conv2d_bwd_weight(const qg_conv_desc *d, const float *x, const float *dy,
                              float *dw, float *dbias)
{
    int Cg = d->C / d->groups, Kg = d->K / d->groups;
    for (int k = 0; k < d->K; k++) {
        int c0 = k / Kg * Cg;
        for (int c = 0; c < Cg; c++)
            for (int r = 0; r < d->R; r++)
                for (int t = 0; t < d->S; t++) {
                    double s = 0.0;
                    for (int n = 0; n < d->N; n++)
                        for (int p = 0; p < d->P; p++)
                            for (int q = 0; q < d->Q; q++)
                                s += (double)dy[(((size_t)n * d->K + k) * d->P + p) * d->Q + q] *
                                     at(d, x, n, c0 + c, p * d->stride - d->pad + r,
                                        q * d->stride - d->pad + t);
                    dw[(((size_t)k * Cg + c) * d->R + r) * d->S + t] = (float)s;
                }
        if (dbias) {
            double s = 0.0;
            for (int n = 0; n < d->N; n++)
                for (size_t i = 0; i < (size_t)d->P * d->Q; i++)
                    s += dy[((size_t)n * d->K + k) * d->P * d->Q + i];
            dbias[k] = (float)s;
        }
    }
}

void qg_ref_linear_fwd(int N, int I, int O, const float *x, const float *w, const float *b,
                       float *y)
{
    for (int n = 0; n < N; n++)
        for (int o = 0; o < O; o++) {
            double s = b ? b[o] : 0.0;
            for (int i = 0; i < I; i++)
                s += (double)x[(size_t)n * I + i] * w[(size_t)o * I + i];
            y[(size_t)n * O + o] = (float)s;
        }
}

void qg_ref_linear_bwd(int N, int I, int O, const float *x, const float *w, const float *dy,
                       float *dx, float *dw, float *db)
{
    if (dx)
        for (int n = 0; n < N; n++)
            for (int i = 0; i < I; i++) {
                double s = 0.0;
                for (int o = 0; o < O; o++)
                    s += (double)dy[(size_t)n * O + o] * w[(size_t)o * I + i];
                dx[(size_t)n * I + i] = (float)s;
            }
    for (int o = 0; o < O; o++) {
        for (int i = 0; i < I; i++) {
            double s = 0.0;
            for (int n = 0; n < N; n++)
                s += (double)dy[(size_t)n * O + o] * x[(size_t)n * I + i];
            dw[(size_t)o * I + i] = (float)s;
        }
        if (db) {
            double s = 0.0;
            for (int n = 0; n < N; n++)
                s += dy[(size_t)n * O + o];
            db[o] = (float)s;
        }
    }
}
