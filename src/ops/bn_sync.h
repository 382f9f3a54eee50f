/* src/ops/bn_sync.h: synchronised batch norm (--sync-bn) for a
 * data-parallel run: the partial sums of cl/bn.cl's parts path are
 * combined across the processes (src/dist) between its two launches, so
 * every process normalises with the statistics of the whole global batch
 * and its backward uses the global sums. Used by src/ops/bn.c when
 * ctx->sync_bn is set; tests: tests/test_dist.c (2 ranks vs 1). */
#ifndef QG_OPS_BN_SYNC_H
#define QG_OPS_BN_SYNC_H

#include "cl/ctx.h"

/* Forward: `part` holds parts rows of C (sum(x - k), sum((x - k)^2)) and
 * then the C shifts k (qg_bn_stats_part). Rewrites them so that
 * qg_bn_apply, which divides by this process's N*HW, forms the global
 * mean and biased variance: row 0 = (0, M2 * n / n_total), other rows 0,
 * shift = the global mean. */
qg_status qg__bn_sync_stats(qg_ctx *ctx, cl_mem part, int parts, int C, int N, int HW);
/* Backward: parts rows of C (sum dy, sum dy*xhat, PACT sum) become
 * row 0 = the global sums * n / n_total, other rows 0. */
qg_status qg__bn_sync_bwd(qg_ctx *ctx, cl_mem part, int parts, int C, int N, int HW);
/* The other batch statistic of a training forward: an activation
 * quantizer's range max |x| (+ eps) over the batch (PG/quantized convs,
 * src/model/nodes_quant.c), replaced by its maximum over the processes
 * when ctx->sync_bn is set (no-op otherwise). s: F32, any length. */
qg_status qg__sync_max(qg_ctx *ctx, qg_tensor *s);

#endif
