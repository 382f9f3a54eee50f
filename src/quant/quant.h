/* src/quant/quant.h: quantizers, PACT and the PG gate on device tensors
 * (launchers in src/quant/quant.c for cl/quant.cl). C twins:
 * src/ref/ref_quant.h; tests: tests/test_quant.c. Math and oracles:
 * docs/methods.md §1, §2.2-2.5, §3.2-3.3, §5, §9.
 *
 * All float tensors are contiguous F32; counts are I32. Scales, PACT alpha,
 * gradients of scalars and counters stay on the device: nothing here reads
 * back to the host, so every call only enqueues work. Calls that "add into"
 * a tensor (+=) expect the caller to zero it once per step.
 *
 * Rounding is rint (half to even) everywhere, as torch.round / tf.round.
 * The float operations are written in the references' order so results are
 * bit-identical to them wherever the device's +,-,*,/ are IEEE-correctly
 * rounded (PoCL: yes; some GPU drivers round division to 2.5 ulp unless the
 * program is built with -cl-fp32-correctly-rounded-divide-sqrt).
 *
 * STE conventions (what each backward implements and why):
 *   - Round-to-bits (bits >= 2) and Truncate, PG-PyTorch and PG-TF: both
 *     references take |x| through abs(), whose backward multiplies by
 *     sign(x), then multiply the result by the detached sign again; round,
 *     floor and clamp are identities. So d out/dx = sign(x)^2: 1 for x != 0
 *     (also outside the clamp range), 0 at x == 0 (QG_STE_NONZERO). This is
 *     what makes d(Quant - Trunc)/dx = 0 (docs/methods.md §2.4).
 *   - Binarize (bits == 1) and identity (bits == 0): d out/dx = 1
 *     (QG_STE_IDENTITY), as is BSQ's activation STE.
 *   qg__quant_ste() returns the right mode for a bit width.
 *   The references' autograd evaluates these chains in float (e.g.
 *   ((g*s)/L*L)/s), which can differ from dy by an ulp or two; we return
 *   dy * mask exactly.
 */
#ifndef QG_QUANT_QUANT_H
#define QG_QUANT_QUANT_H

#include <stddef.h>

#include "qgate/tensor.h"

/* Where the max |x| of the round-to-bits quantizer comes from. */
typedef enum qg_qscale {
    QG_QSCALE_PG = 0,        /* PG-PyTorch: whole tensor, s = max|x| + 1e-7 (float) */
    QG_QSCALE_TF_TENSOR = 1, /* PG-TF quantize_w: whole tensor, no eps */
    QG_QSCALE_TF_SAMPLE = 2  /* PG-TF quantize_a: per sample (dim 0), no eps */
} qg_qscale;

#define QG_QUANT_EPS 1e-7f
/* Largest bit width that rounds: 2^b - 1 must be exact in float. */
#define QG_QUANT_MAX_BITS 24

/* Workspace for the reductions of the backward calls (PACT alpha,
 * DoReFa's max path): an F32 tensor of at least this many elements, owned
 * by the caller and reusable across calls (contents are scratch). */
#define QG_QUANT_WS_NUMEL 128

typedef enum qg_ste {
    QG_STE_IDENTITY = 0,     /* dx = dy */
    QG_STE_NONZERO = 1       /* dx = dy where x != 0, else 0 */
} qg_ste;

static inline qg_ste qg__quant_ste(int bits)
{
    return bits >= 2 ? QG_STE_NONZERO : QG_STE_IDENTITY;
}

/* Number of scales `mode` produces for x: x's dim 0 for TF_SAMPLE, else 1. */
size_t qg__quant_scale_numel(const qg_tensor *x, qg_qscale mode);

/* s = max |x| (+ eps for QG_QSCALE_PG) over the whole tensor or per sample;
 * s has qg__quant_scale_numel(x, mode) elements. An all-zero TF sample gets
 * s = 0, which qg__quant_apply maps to 0 (the TF reference makes 0/0 NaN). */
qg_status qg__quant_scale(qg_ctx *ctx, const qg_tensor *x, qg_qscale mode, qg_tensor *s);

/* Round-to-bits with the given scales (docs/methods.md §2.2, §3.2), one pass:
 *   q    = rint(clamp(|x|/s, 0, 1) * (2^bits-1))         (integer code)
 *   full = q/(2^bits-1) * s * sign(x)                    (TorchRoundToBits)
 *   msb  = floor(q / 2^(bits-msb_bits)) * 2^(bits-msb_bits)/(2^bits-1) * s * sign(x)
 *                                                        (TorchTruncate)
 *   lsb  = full - msb                                    (float subtraction, as PG)
 *   codes = sign(x) * q                                  (I32)
 * s has 1 element (whole tensor) or dim 0 of x elements (per sample).
 * Each output may be NULL; msb/lsb need 1 <= msb_bits < bits (the PG
 * reference asserts b > bh > 0), otherwise msb_bits is ignored.
 * 2 <= bits <= QG_QUANT_MAX_BITS. */
qg_status qg__quant_apply(qg_ctx *ctx, const qg_tensor *x, const qg_tensor *s, int bits,
                          int msb_bits, qg_tensor *full, qg_tensor *msb, qg_tensor *lsb,
                          qg_tensor *codes);

/* TorchQuantize(bits) / quantize_w / quantize_a: bits 0 copies x, bits 1
 * binarizes (clamp to [-1,1], rint((x+1)/2)*2-1; s is not touched and may
 * be NULL), bits >= 2 is qg__quant_scale then qg__quant_apply(full) -- in
 * one launch (the same values) for the PG scale of at most
 * QG_QUANT_SMALL_MAX elements, a conv's weights. */
#define QG_QUANT_SMALL_MAX 65536
qg_status qg__quant_fwd(qg_ctx *ctx, const qg_tensor *x, int bits, qg_qscale mode,
                        qg_tensor *s, qg_tensor *y);

/* dx (=|+=) dy * mask, mask per qg_ste above. */
qg_status qg__quant_ste_bwd(qg_ctx *ctx, const qg_tensor *x, const qg_tensor *dy,
                            qg_tensor *dx, qg_ste mode, int accumulate);

/* ---- DoReFa weights, ProQHA (docs/methods.md §5.4) ----
 * bits >= 32: wq = w. bits == 1: E = mean|w|, wq = sign(w/E)*E (0 where
 * E == 0). Otherwise t = tanh(w), M = max|t|, u = t/2/M + 0.5,
 * wq = 2*(rint(u*(2^bits-1))/(2^bits-1)) - 1 (in [-1,1], not rescaled).
 * aux (1 element) receives M (bits >= 2) or E (bits == 1); the backward
 * needs it. 1 <= bits <= QG_QUANT_MAX_BITS or bits >= 32.
 * Device tanh may differ from the C library's by a few ulp, so a code can
 * differ from the C reference when u*(2^bits-1) is that close to a tie. */
qg_status qg__dorefa_fwd(qg_ctx *ctx, const qg_tensor *w, int bits, qg_tensor *aux,
                         qg_tensor *wq);

/* Backward for bits >= 2, round as identity (bits 1 and >= 32: dw = dwq,
 * both STE through a detached scale):
 *  QG_DOREFA_GRAD_DETACH:  dw = dwq/M * (1 - t^2), M held constant. This is
 *    DoReFa's intended gradient and the cheap one (elementwise only).
 *  QG_DOREFA_GRAD_AUTOGRAD: what PQ's code actually computes, since it does
 *    not detach max|t|: dw_i = (dwq_i/M + [|t_i| == M] sign(t_i) gM/k)
 *    * (1 - t_i^2), gM = -sum_j dwq_j t_j / M^2, k = number of elements
 *    with |t| == M (torch.max's backward spreads the gradient evenly over
 *    ties). Needs ws (QG_QUANT_WS_NUMEL floats).
 * ws may be NULL in DETACH mode. */
typedef enum qg_dorefa_grad {
    QG_DOREFA_GRAD_DETACH = 0,
    QG_DOREFA_GRAD_AUTOGRAD = 1
} qg_dorefa_grad;
qg_status qg__dorefa_bwd(qg_ctx *ctx, const qg_tensor *w, int bits, const qg_tensor *aux,
                         const qg_tensor *dwq, qg_tensor *dw, qg_dorefa_grad mode,
                         qg_tensor *ws, int accumulate);

/* ---- PACT clip (docs/methods.md §5.3, oracle PACT-1) ----
 * y = clamp(x, 0, alpha); alpha is a 1-element tensor. The references
 * differ only at the boundaries:
 *   QG_PACT_PG:  dx = dy on 0 <= x <= alpha, dalpha += sum dy over x > alpha
 *   QG_PACT_TF:  dx = dy on 0 <  x <= alpha (tf.nn.relu's gradient is 0 at 0),
 *                dalpha += sum dy over x >= alpha
 *   QG_PACT_BSQ: dx = dy on 0 <= x <= alpha, dalpha += sum dy over x >= alpha */
typedef enum qg_pact_mode {
    QG_PACT_PG = 0,
    QG_PACT_TF = 1,
    QG_PACT_BSQ = 2
} qg_pact_mode;

qg_status qg__pact_fwd(qg_ctx *ctx, const qg_tensor *x, const qg_tensor *alpha, qg_tensor *y);
/* dx (=|+=) as above; dalpha (1 element) is always added into. ws: NULL
 * (one work-group reduces; fine for small tensors) or QG_QUANT_WS_NUMEL
 * floats (many groups, then a second pass). The sum's order differs from a
 * sequential one, so dalpha matches a C sum to float rounding. */
qg_status qg__pact_bwd(qg_ctx *ctx, const qg_tensor *x, const qg_tensor *alpha,
                       const qg_tensor *dy, qg_tensor *dx, qg_tensor *dalpha,
                       qg_pact_mode mode, qg_tensor *ws, int accumulate);

/* ---- PACT quantizer, ProQHA (docs/methods.md §5.5, oracle PQ-A1) ----
 * y = 0.5*((|x| - |x-alpha|) + alpha) (PQ's formula, = clamp(x,0,alpha) up
 * to float rounding, evaluated the same way); bits >= 32: q = y; else
 * v = y*(2^bits-1)/alpha, q = rint(v)*alpha/(2^bits-1).
 * Backward (round as identity; abs' derivative is sign, so 0.5 at kinks):
 *   dq/dx     = 0.5*(sign(x) - sign(x-alpha)): 1 on (0,alpha), 0.5 at
 *               x == 0 and x == alpha, 0 outside
 *   dq/dalpha = (rint(v) - v)/(2^bits-1) + 0.5*(sign(x-alpha) + 1):
 *               the rounding residual plus 1 for x > alpha, 0.5 at
 *               x == alpha (the residual term is absent for bits >= 32).
 * 1 <= bits <= QG_QUANT_MAX_BITS or bits >= 32. */
qg_status qg__pact_quant_fwd(qg_ctx *ctx, const qg_tensor *x, const qg_tensor *alpha,
                             int bits, qg_tensor *y);
qg_status qg__pact_quant_bwd(qg_ctx *ctx, const qg_tensor *x, const qg_tensor *alpha, int bits,
                             const qg_tensor *dy, qg_tensor *dx, qg_tensor *dalpha,
                             qg_tensor *ws, int accumulate);

/* ---- ProQHA candidate score (docs/methods.md §8.4) ----
 * score[0] += sum_i d_i*delta_i^2: the information score of one Adam step
 * from fresh state on the gradient `grad` times `scale` (the clipping
 * factor), with ProQHA's patched Adam (PyTorch's old update: d = sqrt(v) +
 * eps on the raw second moment v = (1-b2)g^2, delta = lr*sqrt(1-b2)/(1-b1)
 * * (1-b1)g / d). Per element this is lr^2(1-b2)g^2/(sqrt(1-b2)|g| + eps)
 * (the closed form; tests/test_proqha.c). The parameters are not written:
 * the search only needs the score. ws as qg__pact_bwd's. */
qg_status qg__pq_score(qg_ctx *ctx, const qg_tensor *grad, float scale, float lr, float beta1,
                       float beta2, float eps, qg_tensor *score, qg_tensor *ws);

/* ---- PG gate (docs/methods.md §2.3-2.4, oracle PG-G1) ----
 * O_msb, O_lsb, Y, dY, dO_msb, dO_lsb are [N,C,H,W]; delta is [C] (the
 * [1,C,1,1] parameter); slope is PG's alpha (5).
 *   s = sigmoid(slope*(O_msb - delta_c)) = 1/(1+exp(-z)),  mask = s > 0.5
 *   Y = O_msb + mask*O_lsb;  count += number of mask ones (I32, 1 element)
 * The mask is computed through the sigmoid, as the reference, so |z| below
 * ~6e-8 gives s == 0.5 and mask 0; device exp may move that edge by ulps. */
qg_status qg__pg_gate_fwd(qg_ctx *ctx, const qg_tensor *o_msb, const qg_tensor *delta,
                          const qg_tensor *o_lsb, float slope, qg_tensor *y,
                          qg_tensor *count);
/* g = ((dL/ds*(1-s))*s)*slope with dL/ds = dY*O_lsb, zeroed where s < 0.5
 * when spbp (SparseGreaterThan); then dO_msb = dY + g (overwritten),
 * delta_grad[c] += -sum_{n,h,w} g, and dO_lsb = mask*dY (may be NULL; the
 * LSB conv's output gradient). One work-group per channel. */
qg_status qg__pg_gate_bwd(qg_ctx *ctx, const qg_tensor *o_msb, const qg_tensor *delta,
                          const qg_tensor *o_lsb, const qg_tensor *dy, float slope, int spbp,
                          qg_tensor *d_msb, qg_tensor *d_lsb, qg_tensor *delta_grad);

/* ---- PG gate, TensorFlow semantics (docs/methods.md §3.4, oracle PGTF-G1) ----
 * The reference's predictive conv keeps both convolutions whole:
 * h_hb = conv(X_msb, W) (prediction) and h_full = conv(X, W); all tensors
 * [N,C,H,W], delta [C].
 *   m = [h_hb > delta_c] (a comparison; no sigmoid in the forward pass),
 *   Y = h_hb + m*(h_full - h_hb);  count += number of ones (I32). */
qg_status qg__pgtf_gate_fwd(qg_ctx *ctx, const qg_tensor *h_hb, const qg_tensor *delta,
                            const qg_tensor *h_full, qg_tensor *y, qg_tensor *count);
/* The mask's value is m, its gradient the sigmoid surrogate's
 * (mask = bwd + stop_gradient(fwd - bwd)), evaluated in TensorFlow's order:
 *   s = sigmoid(slope*(h_hb - delta_c)),
 *   g = ((((dY*(h_full - h_hb))*s)*(1 - s))*slope,
 *   d_hb = (dY - m*dY) + g, d_full = m*dY (both overwritten),
 *   delta_grad[c] += -sum_{n,h,w} g.
 * No sparse back-prop: the reference has none. One work-group per channel. */
qg_status qg__pgtf_gate_bwd(qg_ctx *ctx, const qg_tensor *h_hb, const qg_tensor *delta,
                            const qg_tensor *h_full, const qg_tensor *dy, float slope,
                            qg_tensor *d_hb, qg_tensor *d_full, qg_tensor *delta_grad);

/* x = min(max(x, lo), hi) in place, any F32 tensor (PG-TF clips its
 * thresholds to [-20, 20] after every optimizer step). */
qg_status qg__quant_clip(qg_ctx *ctx, qg_tensor *x, float lo, float hi);

/* ---- Gating losses (docs/methods.md §2.5, §3.5, §4.5, oracle GATE-L1) ----
 * For one layer's thresholds delta [C] and target g:
 *   QG_GATE_LOSS_PG: coef*||delta - g||_2 (un-squared), grad coef*(delta_c-g)/||delta-g||_2
 *                    (0 where the norm is 0, as torch.norm's backward)
 *   QG_GATE_LOSS_TF: coef*sum (g - delta)^2 / 2,       grad coef*(delta_c - g)
 *   QG_GATE_LOSS_CG: coef*sum (delta - g)^2,           grad 2*coef*(delta_c - g)
 * The device call adds the loss into `loss` (1 element) and the gradient
 * into delta_grad (may be NULL), so one loss tensor sums all layers. */
typedef enum qg_gate_loss {
    QG_GATE_LOSS_PG = 0,
    QG_GATE_LOSS_TF = 1,
    QG_GATE_LOSS_CG = 2
} qg_gate_loss;
qg_status qg__gate_loss(qg_ctx *ctx, const qg_tensor *delta, float target, float coef,
                        qg_gate_loss kind, qg_tensor *loss, qg_tensor *delta_grad);

#endif
