/* src/quant/bsq.h: BSQ's bit-plane weights (docs/methods.md §7): device
 * launchers for cl/bsq.cl and the host steps that run between epochs
 * (conversion from floats, re-quantization, precision adjustment). C twins
 * of the kernels: src/ref/ref_bsq.h; tests: tests/test_bsq.c.
 *
 * A "plane set" is one quantized tensor of M values held as two plane
 * tensors p, n of shape [..., N] (contiguous [M][N], bit index 0 = MSB)
 * and a one-element scale s. Its value is
 *   w_i = bit_STE(sum_b (p_ib - n_ib) 2^(N-1-b)/(2^N-1), N) * s
 * with bit_STE(v, N) = rint(|clamp(v,-1,1)| (2^N-1))/(2^N-1) sign(v). */
#ifndef QG_QUANT_BSQ_H
#define QG_QUANT_BSQ_H

#include <stddef.h>

#include "qgate/tensor.h"

/* Largest precision the kernels take (2^N - 1 exact in float, int shifts). */
#define QG_BSQ_MAX_BITS 16
/* Scratch the backward and regulariser reductions need: an F32 tensor of
 * at least this many elements (partials of up to 64 groups x 16 planes). */
#define QG_BSQ_WS_NUMEL 1024

/* ---- device ---- */

/* w = the effective weights (M values) from the planes [M, N] and s. */
qg_status qg__bsq_fwd(qg_ctx *ctx, const qg_tensor *p, const qg_tensor *n, const qg_tensor *s,
                      qg_tensor *w);
/* From dw = dL/dw: dp = s*e_b*dw and dn = -dp (overwritten), ds (+)= sum
 * bit_STE(.)*dw (ds may be NULL). ws: QG_BSQ_WS_NUMEL floats. */
qg_status qg__bsq_bwd(qg_ctx *ctx, const qg_tensor *p, const qg_tensor *n, const qg_tensor *s,
                      const qg_tensor *dw, qg_tensor *dp, qg_tensor *dn, qg_tensor *ds,
                      int accumulate_ds, qg_tensor *ws);
/* The group-Lasso term of one plane set: loss[0] += factor * sum_b norm_b,
 * norm_b = sqrt(1e-8 + sum_i p_ib^2 + n_ib^2); dp += factor*p/norm_b and
 * dn likewise (either may be NULL: value only). norms: N floats (out). */
qg_status qg__bsq_reg(qg_ctx *ctx, const qg_tensor *p, const qg_tensor *n, float factor,
                      qg_tensor *loss, qg_tensor *dp, qg_tensor *dn, qg_tensor *norms,
                      qg_tensor *ws);
/* x = clamp(x, lo, hi). */
qg_status qg__bsq_clamp(qg_ctx *ctx, qg_tensor *x, float lo, float hi);
/* Finetuning (scheme fixed): w = bit_STE(v, N) * s; backward dv = dw*s,
 * ds (+)= sum bit_STE(v)*dw. */
qg_status qg__bsq_ft_fwd(qg_ctx *ctx, const qg_tensor *v, int N, const qg_tensor *s,
                         qg_tensor *w);
qg_status qg__bsq_ft_bwd(qg_ctx *ctx, const qg_tensor *v, int N, const qg_tensor *s,
                         const qg_tensor *dw, qg_tensor *dv, qg_tensor *ds, int accumulate_ds,
                         qg_tensor *ws);

/* ---- host (between epochs; arrays [M][N], bit 0 = MSB) ---- */

/* e_b = 2^(N-1-b)/(2^N-1) in float, as the kernels compute it. */
float qg__bsq_e(int N, int b);
/* bit_STE(v, N) (0 for N == 0). */
float qg__bsq_ste(float v, int N);
/* The unscaled value of one weight's planes: bit_STE(sum_b (p_b-n_b) e_b). */
float qg__bsq_value(const float *p, const float *n, int N);
/* Float weights to bits (the reference's ini2bit): R = rint(max(w,0)
 * (2^N-1)/S) for p and of max(-w,0) for n, peeled MSB first; S == 0 gives
 * all zeros. The scale to pair with the planes is S. */
void qg__bsq_from_float(const float *w, size_t M, int N, float S, float *p, float *n);
/* Re-quantization: the codes R = rint(max(+-w_hat,0)(2^N-1)) of the current
 * (continuous) planes, re-peeled into exact 0/1 bits. When N < maxbit and
 * a code exceeds 2^N-1 the precision grows by one and *s is multiplied by
 * (2^N'-1)/(2^N-1), preserving every value; at N >= maxbit codes are
 * clipped. Writes [M][N'] into pout, nout (capacity M*(N+1)); returns N'. */
int qg__bsq_requant(const float *p, const float *n, size_t M, int N, int maxbit, float *s,
                    float *pout, float *nout);
/* Share (percent) of non-zero p_b - n_b per plane b: nz[N]. */
/* The same for the bits the planes would re-quantize to (the codes
 * rint(min(|w_hat|,1)(2^N-1)) peeled MSB first): equals qg__bsq_nonzero on
 * exact bits, and is meaningful between re-quantizations too. */
void qg__bsq_code_nonzero(const float *p, const float *n, size_t M, int N, double *nz);
void qg__bsq_nonzero(const float *p, const float *n, size_t M, int N, double *nz);
/* Precision adjustment on exact bits: drop all-zero MSB planes (with
 * thre > 0, an MSB plane whose non-zero share is below thre is first
 * folded into the lower planes, clipped to 1), then LSB planes whose
 * share is <= thre (each doubles s), never below one plane; finally s *=
 * (2^N'-1)/(2^N-1). With thre == 0 every value is preserved. Writes [M][N']
 * into pout, nout (capacity M*N); returns N'. */
int qg__bsq_prune(const float *p, const float *n, size_t M, int N, float thre, float *s,
                  float *pout, float *nout);

#endif
