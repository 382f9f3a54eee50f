/* src/ops/conv.h: 2-D convolution and linear layers (cl/im2col.cl + the
 * CLBlast GEMM in src/gemm/gemm.c). C twins: src/ref/ref_conv.h; tests:
 * tests/test_conv.c.
 *
 * Layouts: x [N, C, H, W], w [K, C/groups, R, S], bias [K] (optional),
 * y [N, K, P, Q], all contiguous float32. Cross-correlation as PyTorch's
 * Conv2d: y[n,k,p,q] = b[k] + sum_{c,r,s} w[k,c,r,s] *
 * x[n, g*C/groups + c, p*stride - pad + r, q*stride - pad + s]. */
#ifndef QG_OPS_CONV_H
#define QG_OPS_CONV_H

#include <stddef.h>
#include "qgate/tensor.h"

typedef struct qg_conv_desc {
    int N, C, H, W;      /* input */
    int K, R, S;         /* output channels, kernel height, width */
    int stride, pad, groups;
    int P, Q;            /* output height, width (derived) */
} qg_conv_desc;

/* Fills the derived fields; returns QG_ERR_SHAPE (with a message) when
 * the shape is impossible (C or K not divisible by groups, empty output). */
qg_status qg__conv_desc_init(qg_ctx *ctx, qg_conv_desc *d, int N, int C, int H, int W, int K,
                             int R, int S, int stride, int pad, int groups);

/* "c16k16h32w32s1": input channels, output channels, input height and
 * width, stride; the key of per-shape tuned parameters of the direct
 * 3x3 kernels (batch, kernel size and padding are not part of it). */
#define QG_CONV_SHAPE_CLASS_MAX 64
void qg__conv_shape_class(const qg_conv_desc *d, char *buf, size_t cap);

/* Scratch floats the conv calls need (im2col buffer etc.); the caller
 * owns one workspace tensor of at least this many F32 elements and may
 * share it between layers (calls are sequential on one queue). */
size_t qg__conv_workspace_floats(const qg_conv_desc *d);

/* y = conv(x, w) + bias (bias may be NULL). y is overwritten. */
qg_status qg__conv2d_fwd(qg_ctx *ctx, const qg_conv_desc *d, const qg_tensor *x,
                         const qg_tensor *w, const qg_tensor *bias, qg_tensor *y,
                         qg_tensor *ws);
/* Training keeps x's prepared planes from the forward for the weight
 * gradient instead of preparing them again (a third of the preparation
 * passes of a step, for about the activations' size in memory): *n floats
 * of a caller-owned buffer `keep`, 0 where this shape's kernels cannot
 * share them. qg__conv2d_fwd_keep fills keep as it runs (keep NULL or too
 * small: plain qg__conv2d_fwd); qg__conv2d_bwd_kept and
 * qg__conv2d_bwd_masked read it, so x must be what the forward saw. */
qg_status qg__conv_keep_floats(qg_ctx *ctx, const qg_conv_desc *d, size_t *n);
qg_status qg__conv2d_fwd_keep(qg_ctx *ctx, const qg_conv_desc *d, const qg_tensor *x,
                              const qg_tensor *w, const qg_tensor *bias, qg_tensor *y,
                              qg_tensor *ws, qg_tensor *keep);
/* y = conv(q(x), w) with q x's rounding to `bits` by the scale s (one
 * float, as qg__quant_apply), applied while the conv prepares x: the
 * quantized copy of x is never stored (keep, as above, receives the
 * quantized planes). QG_ERR_UNSUPPORTED, with nothing launched and no
 * error recorded, for shapes or workspaces of the GEMM path: the caller
 * then quantizes x itself. */
qg_status qg__conv2d_fwd_quant(qg_ctx *ctx, const qg_conv_desc *d, const qg_tensor *x,
                               const qg_tensor *s, int bits, const qg_tensor *w, qg_tensor *y,
                               qg_tensor *ws, qg_tensor *keep);
/* y (= or += when accumulate) conv(x, w) + bias (+ res, y's shape, when
 * not NULL), then clamped at 0 when relu: the epilogue an eval-mode
 * conv+BN(+residual)+ReLU fold needs.
 * Only shapes for which qg__conv2d_fwd_fusable is true; otherwise (or
 * when the workspace is too small) QG_ERR_UNSUPPORTED with y untouched. */
int qg__conv2d_fwd_fusable(const qg_conv_desc *d);
qg_status qg__conv2d_fwd_fused(qg_ctx *ctx, const qg_conv_desc *d, const qg_tensor *x,
                               const qg_tensor *w, const qg_tensor *bias, qg_tensor *y,
                               qg_tensor *ws, int accumulate, const qg_tensor *res,
                               int relu);
/* qg__conv2d_fwd_fused with the weights in the kernels' layout kept in
 * `wprep` (qg__conv_wprep_floats floats, caller-owned) across calls:
 * prepared from w unless wprep_ready, which promises that a previous call
 * prepared them from the same w (an evaluation pass with fixed weights). */
qg_status qg__conv_wprep_floats(qg_ctx *ctx, const qg_conv_desc *d, size_t *n);
qg_status qg__conv2d_fwd_fused_wprep(qg_ctx *ctx, const qg_conv_desc *d, const qg_tensor *x,
                                     const qg_tensor *w, const qg_tensor *bias, qg_tensor *y,
                                     qg_tensor *ws, int accumulate, const qg_tensor *res,
                                     int relu, qg_tensor *wprep, int wprep_ready);
/* dx = conv_transpose(dy, w); overwritten, or added to when accumulate. */
qg_status qg__conv2d_bwd_data(qg_ctx *ctx, const qg_conv_desc *d, const qg_tensor *dy,
                              const qg_tensor *w, qg_tensor *dx, qg_tensor *ws, int accumulate);
/* dw (and dbias if not NULL) from x and dy; overwritten, or added to when
 * accumulate (dw += ...). */
qg_status qg__conv2d_bwd_weight(qg_ctx *ctx, const qg_conv_desc *d, const qg_tensor *x,
                                const qg_tensor *dy, qg_tensor *dw, qg_tensor *dbias,
                                qg_tensor *ws, int accumulate);

/* Both gradients in one call (dx or dw may be NULL; each overwritten or
 * added to by its own flag); the direct path then prepares dy once for
 * both passes. */
qg_status qg__conv2d_bwd(qg_ctx *ctx, const qg_conv_desc *d, const qg_tensor *x,
                         const qg_tensor *dy, const qg_tensor *w, qg_tensor *dx, int acc_dx,
                         qg_tensor *dw, qg_tensor *dbias, int acc_dw, qg_tensor *ws);
qg_status qg__conv2d_bwd_kept(qg_ctx *ctx, const qg_conv_desc *d, const qg_tensor *x,
                              const qg_tensor *dy, const qg_tensor *w, qg_tensor *dx, int acc_dx,
                              qg_tensor *dw, qg_tensor *dbias, int acc_dw, qg_tensor *ws,
                              const qg_tensor *keep);

/* qg__conv2d_bwd (dx and dw both given, no bias) with the data gradient
 * zeroed where mask (dx's shape) is 0 before it is stored or added: the
 * straight-through estimator of a quantizer in front of the conv, fused
 * into the store instead of a pass of its own. Only the direct kernels
 * have that epilogue: QG_ERR_UNSUPPORTED, with nothing written, for other
 * shapes or a workspace too small for their shared-dy form. mask NULL:
 * no mask (the STE applied elsewhere), with the same contract (the direct
 * kernels, or QG_ERR_UNSUPPORTED with nothing written). wmask (w's shape,
 * or NULL) does the same for the weights' quantizer: dw is 0 where wmask
 * is (after the add, when acc_dw). */
qg_status qg__conv2d_bwd_masked(qg_ctx *ctx, const qg_conv_desc *d, const qg_tensor *x,
                                const qg_tensor *dy, const qg_tensor *w, qg_tensor *dx,
                                int acc_dx, const qg_tensor *mask, qg_tensor *dw,
                                int acc_dw, const qg_tensor *wmask, qg_tensor *ws,
                                const qg_tensor *keep);

/* Linear: x [N, I], w [O, I], b [O] (optional), y [N, O] = x w^T + b. */
qg_status qg__linear_fwd(qg_ctx *ctx, int N, int I, int O, const qg_tensor *x,
                         const qg_tensor *w, const qg_tensor *b, qg_tensor *y);
/* dx [N, I] (NULL to skip; overwritten), dw [O, I] and db [O] (db may be
 * NULL; overwritten, or added to when accumulate). */
qg_status qg__linear_bwd(qg_ctx *ctx, int N, int I, int O, const qg_tensor *x,
                         const qg_tensor *w, const qg_tensor *dy, qg_tensor *dx, qg_tensor *dw,
                         qg_tensor *db, int accumulate);

#endif
