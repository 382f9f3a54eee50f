/* src/ref/ref_bsq.h: plain-C oracles for cl/bsq.cl (device contract:
 * src/quant/bsq.h; tests: tests/test_bsq.c). Per-element expressions follow
 * the kernels' float order, so the effective weights and the planes'
 * gradients are bit-exact; sums (the scale's gradient, the plane norms)
 * are accumulated in double. */
#ifndef QG_REF_BSQ_H
#define QG_REF_BSQ_H

#include <stddef.h>

/* w[M] from planes [M][N] and scale s. */
void qg_ref_bsq_fwd(size_t M, int N, const float *p, const float *n, float s, float *w);
/* dp, dn [M][N] (overwritten); *ds = sum bit_STE(.)*dw. */
void qg_ref_bsq_bwd(size_t M, int N, const float *p, const float *n, float s, const float *dw,
                    float *dp, float *dn, double *ds);
/* Returns factor * sum_b norm_b; norms[N] out; dp, dn += gradient (may be NULL). */
double qg_ref_bsq_reg(size_t M, int N, const float *p, const float *n, float factor,
                      float *norms, float *dp, float *dn);
/* Finetune: w = bit_STE(v, N)*s; dv = dw*s, *ds = sum bit_STE(v)*dw. */
void qg_ref_bsq_ft_fwd(size_t M, int N, const float *v, float s, float *w);
void qg_ref_bsq_ft_bwd(size_t M, int N, const float *v, float s, const float *dw, float *dv,
                       double *ds);

#endif
