/* src/ref/ref_chan.c: C oracles for cl/chan.cl (see ref_chan.h). */
#include "config.h"

#include <stddef.h>

#include "ref/ref_chan.h"

static void put(float *d, float v, int accumulate)
{
    *d = accumulate ? *d + v : v;
}

void qg_ref_chan_shuffle(int N, int C, int HW, int groups, const float *x, float *y,
                         int accumulate)
{
    int per = C / groups;
    for (int n = 0; n < N; n++)
        for (int o = 0; o < C; o++) {
            int src = (o % groups) * per + o / groups;
            for (int p = 0; p < HW; p++)
                put(&y[((size_t)n * C + o) * HW + p], x[((size_t)n * C + src) * HW + p],
                    accumulate);
        }
}

void qg_ref_chan_concat(int N, int Ca, int Cb, int HW, const float *a, const float *b,
                        float *y, int accumulate)
{
    int C = Ca + Cb;
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int p = 0; p < HW; p++)
                put(&y[((size_t)n * C + c) * HW + p],
                    c < Ca ? a[((size_t)n * Ca + c) * HW + p]
                           : b[((size_t)n * Cb + c - Ca) * HW + p],
                    accumulate);
}

void qg_ref_chan_split(int N, int Ca, int Cb, int HW, const float *x, float *a, float *b,
                       int accumulate)
{
    int C = Ca + Cb;
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int p = 0; p < HW; p++) {
                float v = x[((size_t)n * C + c) * HW + p];
                if (c < Ca)
                    put(&a[((size_t)n * Ca + c) * HW + p], v, accumulate);
                else
                    put(&b[((size_t)n * Cb + c - Ca) * HW + p], v, accumulate);
            }
}
