/* src/ref/ref_dwconv.c: C oracles for cl/dwconv.cl (see ref_dwconv.h).
 * The data gradient scatters (the transpose of the forward as written),
 * where the kernel gathers, so the two are independent formulations. */
#include "config.h"

#include <stddef.h>
#include <stdlib.h>

#include "ref/ref_dwconv.h"

static int out_size(int H, int stride, int pad)
{
    return (H + 2 * pad - 3) / stride + 1;
}

void qg_ref_dwconv_fwd(int N, int C, int H, int W, int stride, int pad, const float *x,
                       const float *w, const float *bias, float *y)
{
    int P = out_size(H, stride, pad), Q = out_size(W, stride, pad);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            const float *xp = x + ((size_t)n * C + c) * H * W;
            for (int p = 0; p < P; p++)
                for (int q = 0; q < Q; q++) {
                    double s = bias ? bias[c] : 0.0;
                    for (int i = 0; i < 3; i++)
                        for (int j = 0; j < 3; j++) {
                            int h = p * stride - pad + i, v = q * stride - pad + j;
                            if (h >= 0 && h < H && v >= 0 && v < W)
                                s += (double)w[c * 9 + i * 3 + j] * xp[h * W + v];
                        }
                    y[(((size_t)n * C + c) * P + p) * Q + q] = (float)s;
                }
        }
}

void qg_ref_dwconv_bwd_data(int N, int C, int H, int W, int stride, int pad, const float *dy,
                            const float *w, float *dx, int accumulate)
{
    int P = out_size(H, stride, pad), Q = out_size(W, stride, pad);
    size_t n_x = (size_t)N * C * H * W;
    double *acc = calloc(n_x ? n_x : 1, sizeof *acc);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int p = 0; p < P; p++)
                for (int q = 0; q < Q; q++) {
                    double g = dy[(((size_t)n * C + c) * P + p) * Q + q];
                    for (int i = 0; i < 3; i++)
                        for (int j = 0; j < 3; j++) {
                            int h = p * stride - pad + i, v = q * stride - pad + j;
                            if (h >= 0 && h < H && v >= 0 && v < W)
                                acc[(((size_t)n * C + c) * H + h) * W + v] +=
                                    g * w[c * 9 + i * 3 + j];
                        }
                }
    for (size_t k = 0; k < n_x; k++)
        dx[k] = accumulate ? dx[k] + (float)acc[k] : (float)acc[k];
    free(acc);
}

void qg_ref_dwconv_bwd_weight(int N, int C, int H, int W, int stride, int pad, const float *x,
                              const float *dy, float *dw, float *db, int accumulate)
{
    int P = out_size(H, stride, pad), Q = out_size(W, stride, pad);
    for (int c = 0; c < C; c++) {
        double s[10] = {0};
        for (int n = 0; n < N; n++) {
            const float *xp = x + ((size_t)n * C + c) * H * W;
            for (int p = 0; p < P; p++)
                for (int q = 0; q < Q; q++) {
                    double g = dy[(((size_t)n * C + c) * P + p) * Q + q];
                    s[9] += g;
                    for (int i = 0; i < 3; i++)
                        for (int j = 0; j < 3; j++) {
                            int h = p * stride - pad + i, v = q * stride - pad + j;
                            if (h >= 0 && h < H && v >= 0 && v < W)
                                s[i * 3 + j] += g * xp[h * W + v];
                        }
                }
        }
        for (int k = 0; k < 9; k++)
            dw[c * 9 + k] = accumulate ? dw[c * 9 + k] + (float)s[k] : (float)s[k];
        if (db)
            db[c] = accumulate ? db[c] + (float)s[9] : (float)s[9];
    }
}
