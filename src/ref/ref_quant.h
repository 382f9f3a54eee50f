/* src/ref/ref_quant.h: plain-C oracles for cl/quant.cl (device contract:
 * src/quant/quant.h, whose enums and conventions these share; tests:
 * tests/test_quant.c). Float expressions follow the reference code's order
 * of operations, so on IEEE hardware they are bit-exact with it; sums are
 * accumulated in double, which is at least as exact as any device order.
 * Outputs documented "+=" are added into. */
#ifndef QG_REF_QUANT_H
#define QG_REF_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "quant/quant.h"

/* Round half to even (torch.round, tf.round, OpenCL rint). */
float qg_ref_rint(float v);

/* Scales of `mode` for x of n elements whose dim 0 is nsamples (used by
 * QG_QSCALE_TF_SAMPLE only); writes 1 or nsamples values. */
void qg_ref_quant_scale(size_t n, size_t nsamples, const float *x, qg_qscale mode, float *s);

/* Round-to-bits / truncate with nseg scales (1 or dim 0): see
 * qg__quant_apply. Any output may be NULL; msb_bits is used for msb/lsb. */
void qg_ref_quant_apply(size_t n, size_t nseg, const float *x, const float *s, int bits,
                        int msb_bits, float *full, float *msb, float *lsb, int32_t *codes);

/* TorchQuantize(bits) / quantize_w / quantize_a (s: 1 or nsamples values,
 * written for bits >= 2 only). */
void qg_ref_quant_fwd(size_t n, size_t nsamples, const float *x, int bits, qg_qscale mode,
                      float *s, float *y);
void qg_ref_quant_ste_bwd(size_t n, const float *x, const float *dy, float *dx, qg_ste mode,
                          int accumulate);

/* DoReFa (ProQHA): aux receives max|tanh w| (bits >= 2) or mean|w| (bits 1). */
void qg_ref_dorefa_fwd(size_t n, const float *w, int bits, float *aux, float *wq);
void qg_ref_dorefa_bwd(size_t n, const float *w, int bits, float aux, const float *dwq,
                       float *dw, qg_dorefa_grad mode, int accumulate);

/* PACT clip; *dalpha +=. */
void qg_ref_pact_fwd(size_t n, const float *x, float alpha, float *y);
void qg_ref_pact_bwd(size_t n, const float *x, float alpha, const float *dy, float *dx,
                     float *dalpha, qg_pact_mode mode, int accumulate);

/* ProQHA's PACT quantizer; *dalpha +=. */
void qg_ref_pact_quant_fwd(size_t n, const float *x, float alpha, int bits, float *y);
void qg_ref_pact_quant_bwd(size_t n, const float *x, float alpha, int bits, const float *dy,
                           float *dx, float *dalpha, int accumulate);

/* ProQHA's candidate score (qg__pq_score), the patched Adam's update in
 * float per element, summed in double; returned (not added). */
double qg_ref_pq_score(size_t n, const float *grad, float scale, float lr, float beta1,
                       float beta2, float eps);

/* The PG gate at one element (PG-G1): s = sigmoid(slope*(o - delta)),
 * returns mask (s > 0.5); *dmask_ddelta = the surrogate -slope*s*(1-s), or 0
 * when spbp and s < 0.5. s and dmask_ddelta may be NULL. */
int qg_ref_pg_gate_elem(float o, float delta, float slope, int spbp, float *s,
                        float *dmask_ddelta);
/* Tensors [N,C,HW], delta [C]; *count += ones; delta_grad += ; d_lsb may be NULL. */
void qg_ref_pg_gate_fwd(int N, int C, int HW, const float *o_msb, const float *delta,
                        const float *o_lsb, float slope, float *y, int32_t *count);
void qg_ref_pg_gate_bwd(int N, int C, int HW, const float *o_msb, const float *delta,
                        const float *o_lsb, const float *dy, float slope, int spbp,
                        float *d_msb, float *d_lsb, float *delta_grad);

/* The PG-TF gate (qg__pgtf_gate_fwd/bwd): tensors [N,C,HW], delta [C];
 * *count += ones; delta_grad +=. */
void qg_ref_pgtf_gate_fwd(int N, int C, int HW, const float *h_hb, const float *delta,
                          const float *h_full, float *y, int32_t *count);
void qg_ref_pgtf_gate_bwd(int N, int C, int HW, const float *h_hb, const float *delta,
                          const float *h_full, const float *dy, float slope, float *d_hb,
                          float *d_full, float *delta_grad);
/* x = min(max(x, lo), hi) in place. */
void qg_ref_quant_clip(size_t n, float *x, float lo, float hi);

/* Returns one layer's gating loss; delta_grad (may be NULL) +=. */
float qg_ref_gate_loss(size_t C, const float *delta, float target, float coef,
                       qg_gate_loss kind, float *delta_grad);

#endif
