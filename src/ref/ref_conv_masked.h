/* src/ref/ref_conv_masked.h: plain-C oracles of the output-masked 3x3
 * conv (src/ops/conv_masked.h, cl/conv_masked.cl); tests:
 * tests/test_conv_masked.c. Layouts as src/ops/conv.h; mask has y's
 * shape, non-zero = on. */
#ifndef QG_REF_CONV_MASKED_H
#define QG_REF_CONV_MASKED_H

#include "ops/conv.h"

/* y = mask != 0 ? conv(x, w) : 0, each output summed in float with fmaf
 * over (c, r, s) in that order from 0: the kernel's own order, so its
 * results match bit for bit. Any R x S kernel, stride, pad; groups 1. */
void qg_ref_conv_masked_fwd(const qg_conv_desc *d, const float *x, const float *w,
                            const float *mask, float *y);
/* dw = corr(x, mask*dy) in double (dw overwritten). */
void qg_ref_conv_masked_bwd_weight(const qg_conv_desc *d, const float *x, const float *dy,
                                   const float *mask, float *dw);

#endif
