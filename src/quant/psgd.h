/* src/quant/psgd.h: PSGD's weight grid on device tensors (launchers in
 * src/quant/psgd.c for cl/psgd.cl). C twins: src/ref/ref_psgd.h; tests:
 * tests/test_psgd.c. Math: docs/methods.md §6.
 *
 * The grid of a weight tensor at b bits is symmetric with a restricted
 * range: codes -L..L, L = 2^(b-1) - 1, step delta = max(|x_min|, x_max)/L,
 * Q(w) = delta*rint(clamp(w/delta, -L, L)) (0 when delta is 0). x_min and
 * x_max are a running average updated on every forward. Their state is a
 * 4-float tensor: x_min, x_max, delta, seen (0 before the first update);
 * zero it to start afresh. Nothing here reads back to the host. */
#ifndef QG_QUANT_PSGD_H
#define QG_QUANT_PSGD_H

#include "qgate/tensor.h"

#define QG_PSGD_STATE_NUMEL 4
#define QG_PSGD_MIN_BITS 2
#define QG_PSGD_MAX_BITS 16

/* Updates the range state from w: the first call sets x_min = min(0, min
 * w), x_max = max(0, max w); later calls x_min <- 0.1*cur + 0.9*prev (a
 * previous value of exactly 0 stands for the current one, as the
 * reference's `prev or cur`), the same for x_max; then delta. When wq is
 * not NULL it receives Q(w) with the new delta (low-precision forward).
 * One work-group: for weight tensors, not activations. */
qg_status qg__psgd_range(qg_ctx *ctx, const qg_tensor *w, int bits, qg_tensor *state,
                         qg_tensor *wq);

/* g = (g * |w - Q(w)|) * lambda, delta from the state's last update: the
 * position-based scaled gradient, in place. */
qg_status qg__psgd_scale(qg_ctx *ctx, const qg_tensor *w, qg_tensor *g, int bits, float lambda,
                         const qg_tensor *state);
/* The reference's activation quantization at evaluation, in place on x
 * (post-ReLU values): x = delta*rint(clamp(x/delta, 0, 2^bits - 1)), 0
 * everywhere when delta <= 0; delta from qg_ref_psgd_act_delta. bits
 * 2..16. */
qg_status qg__psgd_act_quant(qg_ctx *ctx, qg_tensor *x, int bits, float delta);

#endif
