/* src/ref/ref_conv.h: plain-C oracles for the convolution and linear ops
 * of src/ops/conv.c (cl/im2col.cl + GEMM); tests: tests/test_conv.c.
 * Layouts as in src/ops/conv.h. Sums run in double so the oracle is more
 * exact than any device summation order. */
#ifndef QG_REF_CONV_H
#define QG_REF_CONV_H

#include "ops/conv.h"

/* y = conv(x, w) + bias (bias may be NULL); y overwritten. */
void qg_ref_conv2d_fwd(const qg_conv_desc *d, const float *x, const float *w,
                       const float *bias, float *y);
/* dx = conv_transpose(dy, w); dx overwritten. */
void qg_ref_conv2d_bwd_data(const qg_conv_desc *d, const float *dy, const float *w, float *dx);
/* dw (and dbias when not NULL) from x and dy; overwritten. */
void qg_ref_conv2d_bwd_weight(const qg_conv_desc *d, const float *x, const float *dy,
                              float *dw, float *dbias);

/* y [N, O] = x [N, I] w^T ([O, I]) + b (b may be NULL). */
void qg_ref_linear_fwd(int N, int I, int O, const float *x, const float *w, const float *b,
                       float *y);
/* dx (may be NULL) = dy w; dw = dy^T x; db (may be NULL) = column sums of
 * dy; all overwritten. */
void qg_ref_linear_bwd(int N, int I, int O, const float *x, const float *w, const float *dy,
                       float *dx, float *dw, float *db);

#endif
