/* src/cg/cg.h: Channel Gating kernels on device tensors (launchers in
 * src/cg/cg.c for cl/cg.cl). C twins: src/ref/ref_cg.h; tests:
 * tests/test_cg.c. Math: docs/methods.md §4, oracle CG-G1.
 *
 * CGConv2d (dnn-gating utils/cg_utils.py) with p partitions computes
 *   Yp  = conv(X, W*M)                     base path, 1/p of the channels
 *   d   = sigmoid(alpha*(BN(Yp) - delta)) > 0.5, BN affine-free
 *   out = conv(X, W)*d + Yp*(1-d).
 * qgate splits the weights once per step into the base weights W*M and
 * the conditional weights W*(1-M); with Yc = conv(X, W*(1-M)) = Y - Yp,
 * out = Yp + d*Yc. With the block-diagonal mask the base path is also a
 * p-group convolution, and the split can produce its compact weights.
 *
 * All float tensors are contiguous F32; the counter is I32. Nothing here
 * reads back to the host. Calls that "add into" (+=) expect the caller to
 * zero the target once per step. */
#ifndef QG_CG_CG_H
#define QG_CG_CG_H

#include <stddef.h>

#include "qgate/tensor.h"

/* The reference's mask M [K][C][KK] (KK = kernel area), ci = C/p and
 * co = K/p by integer division: with `group`, output block j (channels
 * [j*co, (j+1)*co)) sees input block j ([j*ci, (j+1)*ci)), j < p; without,
 * every output sees input channels [0, ci). */
void qg__cg_mask_fill(int K, int C, int KK, int p, int group, float *m);

/* The compact forms of the base weights, [K][C/p][k][k]: the block-
 * diagonal mask's diagonal blocks (the weights of a p-group conv), or the
 * first-channels mask's first C/p input channels (a conv over that slice
 * of the input). 0: full shape, masked. */
enum { QG_CG_COMPACT_BLOCKS = 1, QG_CG_COMPACT_FIRST = 2 };

/* Input channels per output in the base weights: C/p when `compact` (either
 * compact form), else C (full shape, masked). */
static inline int qg__cg_base_channels(int C, int p, int compact)
{
    return compact ? C / p : C;
}

/* Dense-equivalent cost of a CG layer relative to the full conv (docs/methods.md
 * §4.7, oracle CG-G1): every output pays the base path (ci = C/p of its C input
 * channels), the share r of outputs gated on also pays the conditional
 * path: ci/C + (1 - ci/C)*r. BN and gate arithmetic are not counted. */
static inline double qg__cg_cost(int C, int p, double r)
{
    double base = (double)(C / p) / C;
    return base + (1.0 - base) * r;
}

/* w, m, wc [K][C][R][S]; wb [K][Cb][R][S], Cb = qg__cg_base_channels:
 *   wc = w*(1-m);  wb = w*m, or with compact QG_CG_COMPACT_BLOCKS its
 *   block-diagonal blocks (the weights of a p-group conv; needs K and C
 *   divisible by p and the block-diagonal mask), with QG_CG_COMPACT_FIRST
 *   its first C/p input channels (needs C divisible by p and the
 *   first-channels mask). */
qg_status qg__cg_weights_fwd(qg_ctx *ctx, const qg_tensor *w, const qg_tensor *m, int p,
                             int compact, qg_tensor *wb, qg_tensor *wc);
/* dw = (1-m)*dwc + m*dwb (dwb mapped back into the full shape); the
 * gradient of w through both paths. dw is overwritten. */
qg_status qg__cg_weights_bwd(qg_ctx *ctx, const qg_tensor *m, const qg_tensor *dwb,
                             const qg_tensor *dwc, int p, int compact, qg_tensor *dw);

/* z (the batch-normed Yp), yp, yc, out [N,C,H,W]; delta [C] (the [1,C,1,1]
 * threshold); alpha the sigmoid slope (2 in the reference).
 *   s = 1/(1+exp(-alpha*(z - delta_c))),  d = s > 0.5,  out = yp + d*yc,
 *   count[0] += number of d == 1 in the first count_samples samples
 *   (0..N; fewer than N when the tail of the batch holds no data).
 * The decision goes through the sigmoid as the reference's, so |alpha*(z -
 * delta)| below ~6e-8 gives s == 0.5 and d = 0; device exp may move that
 * edge by ulps. */
qg_status qg__cg_gate_fwd(qg_ctx *ctx, const qg_tensor *z, const qg_tensor *delta,
                          const qg_tensor *yp, const qg_tensor *yc, float alpha,
                          qg_tensor *out, qg_tensor *count, int count_samples);
/* Straight-through backward of the gate (GreaterThan, or SparseGreaterThan
 * when spbp): gd = dout*yc, zeroed where s < 0.5 when spbp;
 *   g = ((gd*(1-s))*s)*alpha   (the gradient of z, overwritten),
 *   dyp = dout, dyc = d*dout   (overwritten; the host adds the BN backward
 *                               of g into dyp),
 *   ddelta[c] += -sum_{n,h,w} g.
 * One work-group per channel. */
qg_status qg__cg_gate_bwd(qg_ctx *ctx, const qg_tensor *z, const qg_tensor *delta,
                          const qg_tensor *yc, const qg_tensor *dout, float alpha, int spbp,
                          qg_tensor *g, qg_tensor *dyp, qg_tensor *dyc, qg_tensor *ddelta);

/* The outputs whose conditional path is needed, computed before it runs
 * (the skipping path of src/model/nodes_cg.c): mask [N,C,H,W] = 1 where
 * alpha*(z - delta_c) >= -1e-5, else 0: every output the gate turns on (s
 * > 0.5) and every one sparse back-prop keeps a gradient at (s >= 0.5),
 * with a margin that no sigmoid rounding can cross. */
qg_status qg__cg_gate_mask(qg_ctx *ctx, const qg_tensor *z, const qg_tensor *delta, float alpha,
                           qg_tensor *mask);

/* channel_shuffle(x, groups) on [N,C,H,W]: y[n, o] (=|+=) x[n, (o % groups)
 * * (C/groups) + o/groups]. The backward is the same call on dy with
 * C/groups groups. C must be divisible by groups. */
qg_status qg__cg_shuffle(qg_ctx *ctx, const qg_tensor *x, int groups, qg_tensor *y,
                         int accumulate);

#endif
