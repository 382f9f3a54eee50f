/* src/ref/ref_pool_same.c: see ref_pool_same.h. */
#include "config.h"

#include <math.h>
#include <stddef.h>

#include "ref/ref_pool_same.h"

void qg_ref_maxpool_same_fwd(int NC, int H, int W, int k, int stride, const float *x, float *y,
                             int32_t *argmax)
{
    int P = (H + stride - 1) / stride, Q = (W + stride - 1) / stride;
    int th = (P - 1) * stride + k - H, tw = (Q - 1) * stride + k - W;
    int ph = th > 0 ? th / 2 : 0, pw = tw > 0 ? tw / 2 : 0;
    for (int nc = 0; nc < NC; nc++)
        for (int p = 0; p < P; p++)
            for (int q = 0; q < Q; q++) {
                const float *plane = x + (size_t)nc * H * W;
                float m = -INFINITY;
                int am = -1, stop = 0;
                for (int r = 0; r < k && !stop; r++)
                    for (int s = 0; s < k; s++) {
                        int h = p * stride - ph + r, w = q * stride - pw + s;
                        if (h < 0 || h >= H || w < 0 || w >= W)
                            continue;
                        float v = plane[h * W + w];
                        if (am < 0 || v > m || isnan(v)) {
                            m = v;
                            am = h * W + w;
                            if (isnan(v)) {
                                stop = 1;
                                break;
                            }
                        }
                    }
                y[((size_t)nc * P + p) * Q + q] = m;
                argmax[((size_t)nc * P + p) * Q + q] = am;
            }
}
