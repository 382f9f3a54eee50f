/* src/ops/linear.h: fully connected layers as one CLBlast GEMM each
 * (src/gemm/gemm.c) plus the bias passes of cl/im2col.cl; implemented in
 * src/ops/linear.c. C twins: src/ref/ref_conv.h (qg_ref_linear_*); tests:
 * tests/test_conv.c.
 *
 * Layouts: x [N, I], w [O, I], b [O] (optional), y [N, O], contiguous
 * float32. Errors: QG_ERR_SHAPE for a shape beyond 2^31 elements or a
 * tensor of the wrong size, QG_ERR_INVALID_ARG for a NULL or non-F32
 * tensor, each with a message naming it. */
#ifndef QG_OPS_LINEAR_H
#define QG_OPS_LINEAR_H

#include "qgate/tensor.h"

/* y = x w^T + b. */
qg_status qg__linear_fwd(qg_ctx *ctx, int N, int I, int O, const qg_tensor *x,
                         const qg_tensor *w, const qg_tensor *b, qg_tensor *y);
/* dx [N, I] (NULL to skip; overwritten), dw [O, I] and db [O] (db may be
 * NULL; overwritten, or added to when accumulate). */
qg_status qg__linear_bwd(qg_ctx *ctx, int N, int I, int O, const qg_tensor *x,
                         const qg_tensor *w, const qg_tensor *dy, qg_tensor *dx, qg_tensor *dw,
                         qg_tensor *db, int accumulate);

#endif
