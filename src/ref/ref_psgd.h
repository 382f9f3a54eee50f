/* src/ref/ref_psgd.h: plain-C oracles for cl/psgd.cl (device contract:
 * src/quant/psgd.h; tests: tests/test_psgd.c). Same float expressions in
 * the same order, so they are bit-exact with the kernels on IEEE devices. */
#ifndef QG_REF_PSGD_H
#define QG_REF_PSGD_H

#include <stddef.h>

/* Q(w) at step delta with L = 2^(bits-1) - 1 (0 when delta is 0). */
float qg_ref_psgd_q(float w, float delta, int bits);
/* The range update of qg__psgd_range on state[4]; wq (may be NULL) = Q(w). */
void qg_ref_psgd_range(size_t n, const float *w, int bits, float *state, float *wq);
/* g = (g * |w - Q(w)|) * lambda with state[2] as delta. */
void qg_ref_psgd_scale(size_t n, const float *w, float *g, int bits, float lambda,
                       const float *state);
/* Activation quantization (PSG-pytorch's ReLU_quant with its range fixed
 * from the batch norm before it, eval.py --act_clipping): the clip
 * x_max = max over channels of beta_c + n*gamma_c (float32, as torch
 * computes shift + n*scale), and the step delta = x_max/(2^bits - 1)
 * divided in double and rounded to float (the reference divides Python
 * floats, then torch uses the step as a float32 scalar). Returns delta,
 * *clip the clip (C = 0: clip 0). */
float qg_ref_psgd_act_delta(int C, const float *gamma, const float *beta, float n, int bits,
                            float *clip);
/* x = delta*rint(clamp(x/delta, 0, 2^bits - 1)); 0 when delta <= 0. */
void qg_ref_psgd_act_quant(size_t n, float *x, int bits, float delta);

#endif
