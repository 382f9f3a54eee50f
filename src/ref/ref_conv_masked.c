/* src/ref/ref_conv_masked.c: plain-C oracles of the output-masked conv
 * (see ref_conv_masked.h). */
#include "config.h"

#include <math.h>
#include <stddef.h>

#include "ref/ref_conv_masked.h"

void qg_ref_conv_masked_fwd(const qg_conv_desc *d, const float *x, const float *w,
                            const float *mask, float *y)
{
    for (int n = 0; n < d->N; n++)
        for (int k = 0; k < d->K; k++)
            for (int p = 0; p < d->P; p++)
                for (int q = 0; q < d->Q; q++) {
                    size_t o = (((size_t)n * d->K + k) * d->P + p) * d->Q + q;
                    float acc = 0.0f;
                    for (int c = 0; c < d->C; c++)
                        for (int r = 0; r < d->R; r++)
                            for (int s = 0; s < d->S; s++) {
                                int h = p * d->stride - d->pad + r;
                                int v = q * d->stride - d->pad + s;
                                float xv = h >= 0 && h < d->H && v >= 0 && v < d->W
                                               ? x[(((size_t)n * d->C + c) * d->H + h) * d->W +
                                                   v]
                                               : 0.0f;
                                acc = fmaf(w[(((size_t)k * d->C + c) * d->R + r) * d->S + s],
                                           xv, acc);
                            }
                    y[o] = mask[o] != 0.0f ? acc : 0.0f;
                }
}

void qg_ref_conv_masked_bwd_weight(const qg_conv_desc *d, const float *x, const float *dy,
                                   const float *mask, float *dw)
{
    for (int k = 0; k < d->K; k++)
        for (int c = 0; c < d->C; c++)
            for (int r = 0; r < d->R; r++)
                for (int s = 0; s < d->S; s++) {
                    double acc = 0;
                    for (int n = 0; n < d->N; n++)
                        for (int p = 0; p < d->P; p++)
                            for (int q = 0; q < d->Q; q++) {
                                size_t o = (((size_t)n * d->K + k) * d->P + p) * d->Q + q;
                                int h = p * d->stride - d->pad + r;
                                int v = q * d->stride - d->pad + s;
                                if (mask[o] == 0.0f || h < 0 || h >= d->H || v < 0 ||
                                    v >= d->W)
                                    continue;
                                acc += (double)dy[o] *
                                       x[(((size_t)n * d->C + c) * d->H + h) * d->W + v];
                            }
                    dw[(((size_t)k * d->C + c) * d->R + r) * d->S + s] = (float)acc;
                }
}
