/* src/ops/dwconv.h: depthwise 3x3 convolution on F32 NCHW tensors
 * (cl/dwconv.cl, math and layouts in its banner; C twin
 * src/ref/ref_dwconv.h; tests tests/test_dwconv.c; bandwidth
 * bench/bench_dwconv.c).
 *
 * x [N,C,H,W], w [C,1,3,3] (any shape of C*9 elements with leading C),
 * bias and db [C] or NULL, stride >= 1, 0 <= pad <= 2, y [N,C,P,Q] with
 * P = (H + 2*pad - 3)/stride + 1 (floor, PyTorch's Conv2d with
 * groups = C). Gradients overwrite, or add when `accumulate`. */
#ifndef QG_OPS_DWCONV_H
#define QG_OPS_DWCONV_H

#include "qgate/tensor.h"

int qg__dwconv_out(int H, int stride, int pad);
qg_status qg__dwconv_fwd(qg_ctx *ctx, const qg_tensor *x, const qg_tensor *w,
                         const qg_tensor *bias, int stride, int pad, qg_tensor *y);
qg_status qg__dwconv_bwd_data(qg_ctx *ctx, const qg_tensor *dy, const qg_tensor *w, int stride,
                              int pad, qg_tensor *dx, int accumulate);
qg_status qg__dwconv_bwd_weight(qg_ctx *ctx, const qg_tensor *x, const qg_tensor *dy,
                                int stride, int pad, qg_tensor *dw, qg_tensor *db,
                                int accumulate);

#endif
