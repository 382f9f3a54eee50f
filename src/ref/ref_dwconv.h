/* src/ref/ref_dwconv.h: plain-C oracles for the depthwise 3x3 conv of
 * src/ops/dwconv.h (cl/dwconv.cl; math in its banner); sums in double.
 * tests: tests/test_dwconv.c. */
#ifndef QG_REF_DWCONV_H
#define QG_REF_DWCONV_H

/* bias, db may be NULL. */
void qg_ref_dwconv_fwd(int N, int C, int H, int W, int stride, int pad, const float *x,
                       const float *w, const float *bias, float *y);
void qg_ref_dwconv_bwd_data(int N, int C, int H, int W, int stride, int pad, const float *dy,
                            const float *w, float *dx, int accumulate);
void qg_ref_dwconv_bwd_weight(int N, int C, int H, int W, int stride, int pad, const float *x,
                              const float *dy, float *dw, float *db, int accumulate);

#endif
