/* src/ops/reduce.h: reductions (cl/reduce.cl). C twins: src/ref/ref_reduce.h. */
#ifndef QG_OPS_REDUCE_H
#define QG_OPS_REDUCE_H

#include "qgate/tensor.h"

/* out (1 element) = sum(x) */
qg_status qg__reduce_sum(qg_ctx *ctx, const qg_tensor *x, qg_tensor *out);
/* out (1 element) = max |x| */
qg_status qg__reduce_absmax(qg_ctx *ctx, const qg_tensor *x, qg_tensor *out);
/* x is [N, C, H, W] (rank 4); sum, sumsq are [C]. */
qg_status qg__reduce_channel_stats(qg_ctx *ctx, const qg_tensor *x, qg_tensor *sum,
                                   qg_tensor *sumsq);

#endif
