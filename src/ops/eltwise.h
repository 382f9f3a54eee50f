/* src/ops/eltwise.h: elementwise ops on device tensors (cl/eltwise.cl).
 * C twins: src/ref/ref_eltwise.h. All tensors are F32 with equal numel. */
#ifndef QG_OPS_ELTWISE_H
#define QG_OPS_ELTWISE_H

#include <stdint.h>

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
/* Dropout with drop probability p in [0, 1) and the forward's 64-bit key:
 * y = x/(1-p) where the element is kept, else 0 (qg_ref_dropout_keep
 * decides, from the element index and the key). The backward with the same
 * key applies the same mask: dx (=|+=) dy/(1-p) where kept. */
qg_status qg__dropout_fwd(qg_ctx *ctx, const qg_tensor *x, qg_tensor *y, float p, uint64_t key);
qg_status qg__dropout_bwd(qg_ctx *ctx, const qg_tensor *dy, qg_tensor *dx, float p, uint64_t key,
                          int accumulate);

#endif
