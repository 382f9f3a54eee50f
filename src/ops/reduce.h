/* src/ops/reduce.h: reductions (cl/reduce.cl). C twins: src/ref/ref_reduce.h. */
#ifndef QG_OPS_REDUCE_H
#define QG_OPS_REDUCE_H

#include "qgate/tensor.h"

/* out (1 element) = sum(x) */
qg_status qg__reduce_sum(qg_ctx *ctx, const qg_tensor *x, qg_tensor *out);
/* out (1 element) = max |x| */
qg_status qg__reduce_absmax(qg_ctx *ctx, const qg_tensor *x, qg_tensor *out);
/* out (1 element) = the number of NaN/Inf values of x */
qg_status qg__reduce_nonfinite(qg_ctx *ctx, const qg_tensor *x, qg_tensor *out);
/* *ok = 1 when every value of t is finite, else 0: one reduction into a
 * 1-float buffer made for the call, then a blocking read of it (a
 * synchronisation point; a training loop may check every few steps). */
qg_status qg__tensor_all_finite(qg_ctx *ctx, const qg_tensor *t, int *ok);
/* x is [N, C, H, W] (rank 4); sum, sumsq are [C]. */
qg_status qg__reduce_channel_stats(qg_ctx *ctx, const qg_tensor *x, qg_tensor *sum,
                                   qg_tensor *sumsq);

#endif
