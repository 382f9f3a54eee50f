/* src/ops/conv.h: 2-D convolution (internal API): a shape descriptor, and
 * a conv plan made once per shape (at model setup) that decides the path
 * and its tuned parameters and says what it can do; the passes are then
 * enqueued through the plan. Job split: src/ops/conv_plan.c (descriptor,
 * plan, dispatch), src/ops/conv_direct.c (cl/conv_direct.cl host side),
 * src/ops/conv_gemm.c (cl/im2col.cl + the CLBlast GEMM of src/gemm/).
 * Linear layers: src/ops/linear.h. C twins: src/ref/ref_conv.h; tests:
 * tests/test_conv.c.
 *
 * Layouts: x [N, C, H, W], w [K, C/groups, R, S], bias [K] (optional),
 * y [N, K, P, Q], all contiguous float32. Cross-correlation as PyTorch's
 * Conv2d: y[n,k,p,q] = b[k] + sum_{c,r,s} w[k,c,r,s] *
 * x[n, g*C/groups + c, p*stride - pad + r, q*stride - pad + s].
 *
 * Usage: qg__conv_desc_init, qg__conv_plan_new, allocate a workspace of
 * qg__conv_plan_ws_floats floats (shareable between plans: the passes are
 * sequential on one queue), ask qg__conv_plan_caps before any of the
 * optional passes, enqueue, qg__conv_plan_free. A plan is not thread-safe
 * (neither is its context); it reads the tuned parameters once, so a plan
 * made before a parameter override keeps the old ones. */
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
 * width, stride, and "g4" after it for 4 groups; the key of per-shape
 * tuned parameters of the direct 3x3 kernels (batch, kernel size and
 * padding are not part of it). */
#define QG_CONV_SHAPE_CLASS_MAX 64
void qg__conv_shape_class(const qg_conv_desc *d, char *buf, size_t cap);

/* ---- the plan ---- */

typedef struct qg_conv_plan qg_conv_plan;

typedef struct qg_conv_opts {
    /* Workspace floats the caller will hand every pass: at least one
     * image's worth of the GEMM path (qg__conv_plan_new says how much when
     * it is less). 0: the plan's own choice, which holds the whole batch
     * for the direct kernels' whole-batch forms. The paths and caps follow
     * this amount; a larger workspace given later only makes chunks larger. */
    size_t ws_floats;
    /* Bits of the input quantizer qg__conv_enqueue_fwd_quant applies (as
     * qg__quant_apply); 0: none. */
    int quant_bits;
    /* Every pass on im2col + GEMM even where the direct kernels take the
     * shape: the old path, for comparisons (bench/bench_gconv.c) and tests. */
    int force_gemm;
} qg_conv_opts;

/* What a plan can do beyond the plain passes (fwd, bwd_data, bwd_weight,
 * bwd), which every plan has. */
enum {
    /* The forward runs the direct kernels (else im2col + GEMM). */
    QG_CONV_CAP_DIRECT = 1u << 0,
    /* qg__conv_enqueue_fwd_quant: x rounded to opts.quant_bits while the
     * conv prepares it (direct forward, at most QG_CONV_QUANT_BITS_MAX). */
    QG_CONV_CAP_FUSED_QUANT = 1u << 1,
    /* The forward can keep x's prepared planes (qg__conv_plan_keep_floats
     * of a caller-owned buffer) for the backward's weight gradient. */
    QG_CONV_CAP_KEEP_PLANES = 1u << 2,
    /* qg__conv_enqueue_fwd_fused: accumulate / residual / ReLU epilogue
     * and weights prepared across calls (an eval-mode conv+BN fold). */
    QG_CONV_CAP_EPILOGUE = 1u << 3,
    /* qg__conv_enqueue_bwd_masked: both gradients in one whole-batch pass
     * with the quantizers' STE masks in their stores. */
    QG_CONV_CAP_MASKED_BWD = 1u << 4,
};
#define QG_CONV_QUANT_BITS_MAX 4 /* 15 levels, as cl/conv_direct.cl's table */

/* Makes the plan of conv d (a descriptor from qg__conv_desc_init, copied)
 * on ctx: the path of each pass, the tuned parameters of d's shape class,
 * and the caps. opts may be NULL (all defaults). Errors: QG_ERR_INVALID_ARG
 * for a descriptor not from qg__conv_desc_init, QG_ERR_SHAPE for
 * opts->ws_floats below one image of the GEMM path, QG_ERR_NOMEM; *out is
 * then NULL. Launches nothing. */
qg_status qg__conv_plan_new(qg_ctx *ctx, const qg_conv_desc *d, const qg_conv_opts *opts,
                            qg_conv_plan **out);
void qg__conv_plan_free(qg_conv_plan *plan); /* NULL-safe */

const qg_conv_desc *qg__conv_plan_desc(const qg_conv_plan *plan);
/* QG_CONV_CAP_* bits. */
unsigned qg__conv_plan_caps(const qg_conv_plan *plan);
/* Workspace floats every pass needs: opts.ws_floats, or the plan's own. */
size_t qg__conv_plan_ws_floats(const qg_conv_plan *plan);
/* Floats of the buffer the forward keeps x's planes in; 0 without
 * QG_CONV_CAP_KEEP_PLANES. */
size_t qg__conv_plan_keep_floats(const qg_conv_plan *plan);
/* Floats of the prepared-weights buffer of qg__conv_enqueue_fwd_fused; 0
 * without QG_CONV_CAP_EPILOGUE. */
size_t qg__conv_plan_wprep_floats(const qg_conv_plan *plan);
/* "3x3 conv N=2 C=3 H=5 W=5 K=4 stride 1 pad 1 groups 1 (direct)": the
 * shape and path, as error messages name them. */
const char *qg__conv_plan_name(const qg_conv_plan *plan);

/* ---- enqueue ----
 * Every pass checks its tensors (F32, the descriptor's sizes) and the
 * workspace (ws, at least qg__conv_plan_ws_floats) and returns
 * QG_ERR_SHAPE / QG_ERR_INVALID_ARG with a message naming the tensor.
 * Optional passes the plan lacks the cap for return QG_ERR_UNSUPPORTED
 * with a message naming the conv, and launch nothing. */

/* y = conv(x, w) + bias (bias may be NULL); y is overwritten. keep: NULL,
 * or (QG_CONV_CAP_KEEP_PLANES) a buffer of qg__conv_plan_keep_floats the
 * forward fills with x's planes for qg__conv_enqueue_bwd /
 * qg__conv_enqueue_bwd_masked, which must then see the same x. */
qg_status qg__conv_enqueue_fwd(const qg_conv_plan *plan, const qg_tensor *x, const qg_tensor *w,
                               const qg_tensor *bias, qg_tensor *y, qg_tensor *ws,
                               qg_tensor *keep);
/* QG_CONV_CAP_FUSED_QUANT: y = conv(q(x), w), q rounding x to the plan's
 * quant_bits by the scale s (one float, as qg__quant_apply) while the conv
 * prepares x; the quantized copy of x is never stored (keep, as above,
 * receives the quantized planes). */
qg_status qg__conv_enqueue_fwd_quant(const qg_conv_plan *plan, const qg_tensor *x,
                                     const qg_tensor *s, const qg_tensor *w, qg_tensor *y,
                                     qg_tensor *ws, qg_tensor *keep);
/* QG_CONV_CAP_EPILOGUE: y (= or += when accumulate) conv(x, w) + bias
 * (+ res, y's shape, when not NULL), then clamped at 0 when relu. wprep:
 * NULL, or a buffer of qg__conv_plan_wprep_floats holding the weights in
 * the kernels' layout across calls: prepared from w unless wprep_ready,
 * which promises that a previous call prepared them from the same w (an
 * evaluation pass with fixed weights). */
qg_status qg__conv_enqueue_fwd_fused(const qg_conv_plan *plan, const qg_tensor *x,
                                     const qg_tensor *w, const qg_tensor *bias, qg_tensor *y,
                                     qg_tensor *ws, int accumulate, const qg_tensor *res,
                                     int relu, qg_tensor *wprep, int wprep_ready);
/* dx = conv_transpose(dy, w); overwritten, or added to when accumulate. */
qg_status qg__conv_enqueue_bwd_data(const qg_conv_plan *plan, const qg_tensor *dy,
                                    const qg_tensor *w, qg_tensor *dx, qg_tensor *ws,
                                    int accumulate);
/* dw (and dbias if not NULL) from x and dy; overwritten, or added to when
 * accumulate. */
qg_status qg__conv_enqueue_bwd_weight(const qg_conv_plan *plan, const qg_tensor *x,
                                      const qg_tensor *dy, qg_tensor *dw, qg_tensor *dbias,
                                      qg_tensor *ws, int accumulate);
/* Both gradients in one call (dx or dw may be NULL; each overwritten or
 * added to by its own flag); the direct path then prepares dy once for
 * both. keep: NULL, or the buffer the forward filled from this x; the
 * weight gradient reads x's planes from it instead of preparing them
 * where it takes the whole-batch form. */
qg_status qg__conv_enqueue_bwd(const qg_conv_plan *plan, const qg_tensor *x,
                               const qg_tensor *dy, const qg_tensor *w, qg_tensor *dx,
                               int acc_dx, qg_tensor *dw, qg_tensor *dbias, int acc_dw,
                               qg_tensor *ws, const qg_tensor *keep);
/* QG_CONV_CAP_MASKED_BWD: qg__conv_enqueue_bwd (dx and dw both given, no
 * bias) with the data gradient zeroed where mask (dx's shape) is 0 before
 * it is stored or added: the straight-through estimator of a quantizer in
 * front of the conv, fused into the store. mask NULL: no mask (the STE
 * applied elsewhere). wmask (w's shape, or NULL) does the same for the
 * weights' quantizer: dw is 0 where wmask is (after the add, when acc_dw). */
qg_status qg__conv_enqueue_bwd_masked(const qg_conv_plan *plan, const qg_tensor *x,
                                      const qg_tensor *dy, const qg_tensor *w, qg_tensor *dx,
                                      int acc_dx, const qg_tensor *mask, qg_tensor *dw,
                                      int acc_dw, const qg_tensor *wmask, qg_tensor *ws,
                                      const qg_tensor *keep);

#endif
