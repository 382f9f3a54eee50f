/* src/ops/eltwise.h: elementwise ops on device tensors (cl/eltwise.cl).
 * C twins: src/ref/ref_eltwise.h. All tensors are F32 with equal numel. */
#ifndef QG_OPS_ELTWISE_H
#define QG_OPS_ELTWISE_H

#include "qgate/tensor.h"

qg_status qg__eltwise_fill(qg_ctx *ctx, qg_tensor *y, float v);
/* y = a*x + b*y (b == 0: y is overwritten, not read). */
qg_status qg__eltwise_axpby(qg_ctx *ctx, float a, const qg_tensor *x, float b, qg_tensor *y);
qg_status qg__eltwise_add(qg_ctx *ctx, const qg_tensor *a, const qg_tensor *b, qg_tensor *y);
qg_status qg__eltwise_mul(qg_ctx *ctx, const qg_tensor *a, const qg_tensor *b, qg_tensor *y);
qg_status qg__relu_fwd(qg_ctx *ctx, const qg_tensor *x, qg_tensor *y);
/* dx (=|+=) dy * (x > 0) */
qg_status qg__relu_bwd(qg_ctx *ctx, const qg_tensor *x, const qg_tensor *dy, qg_tensor *dx,
                       int accumulate);

#endif
