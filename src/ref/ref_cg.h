/* src/ref/ref_cg.h: plain-C oracles for cl/cg.cl (device contract:
 * src/cg/cg.h; tests: tests/test_cg.c). Float expressions follow the
 * kernels' (and the reference's) order of operations; the threshold
 * gradient sums in double. The per-element gate is PG's
 * (qg_ref_pg_gate_elem with slope alpha on the batch-normed base path):
 * docs/methods.md §4.3: the same STE pattern; oracle CG-G1 pins its numbers.
 * Outputs are overwritten unless documented "+=". */
#ifndef QG_REF_CG_H
#define QG_REF_CG_H

#include <stddef.h>
#include <stdint.h>

/* w, m, wc, dw, dwc [K][C][KK]; wb, dwb [K][Cb][KK] (see
 * qg__cg_base_channels); compact 1 (the diagonal blocks) needs K and C
 * divisible by p, 2 (the first C/p input channels) C. */
void qg_ref_cg_weights_fwd(int K, int C, int KK, int p, int compact, const float *w,
                           const float *m, float *wb, float *wc);
void qg_ref_cg_weights_bwd(int K, int C, int KK, int p, int compact, const float *m,
                           const float *dwb, const float *dwc, float *dw);

/* Tensors [N][C][HW], delta [C]; *count +=, ddelta +=. */
void qg_ref_cg_gate_fwd(int N, int C, int HW, const float *z, const float *delta,
                        const float *yp, const float *yc, float alpha, float *out,
                        int32_t *count);
void qg_ref_cg_gate_bwd(int N, int C, int HW, const float *z, const float *delta,
                        const float *yc, const float *dout, float alpha, int spbp, float *g,
                        float *dyp, float *dyc, float *ddelta);

/* mask = 1 where alpha*(z - delta_c) >= -1e-5, else 0 ([N][C][HW]). */
void qg_ref_cg_gate_mask(int N, int C, int HW, const float *z, const float *delta, float alpha,
                         float *mask);

/* y (=|+=) channel_shuffle(x, groups), x and y [N][C][HW]. */
void qg_ref_cg_shuffle(int N, int C, int HW, int groups, const float *x, float *y,
                       int accumulate);

#endif
