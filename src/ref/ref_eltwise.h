/* src/ref/ref_eltwise.h: plain-C oracles for cl/eltwise.cl and cl/reduce.cl. */
#ifndef QG_REF_ELTWISE_H
#define QG_REF_ELTWISE_H

#include <stddef.h>
#include <stdint.h>

void qg_ref_eltwise_axpby(size_t n, float a, const float *x, float b, float *y);
void qg_ref_eltwise_add(size_t n, const float *a, const float *b, float *y);
void qg_ref_eltwise_mul(size_t n, const float *a, const float *b, float *y);
void qg_ref_relu_fwd(size_t n, const float *x, float *y);
void qg_ref_relu_bwd(size_t n, const float *x, const float *dy, float *dx, int accumulate);
/* Sums in double so the oracle is more exact than any device order. */
float qg_ref_reduce_sum(size_t n, const float *x);
float qg_ref_reduce_absmax(size_t n, const float *x);
/* How many of x[0..n) are NaN or Inf (cl/reduce.cl qg_reduce_nonfinite). */
size_t qg_ref_reduce_nonfinite(size_t n, const float *x);
void qg_ref_reduce_channel_stats(int N, int C, int HW, const float *x, float *sum,
                                 float *sumsq);
/* Dropout (cl/eltwise.cl qg_eltwise_dropout_*): the threshold and scale of
 * drop probability p (thresh = min(p * 2^32, 2^32 - 1) rounded down, scale
 * = 1/(1-p) in float), whether element i is kept under the 64-bit key
 * (hash(i, key) >= thresh), and the forward / backward. */
void qg_ref_dropout_params(float p, uint32_t *thresh, float *scale);
int qg_ref_dropout_keep(uint32_t i, uint64_t key, uint32_t thresh);
void qg_ref_dropout_fwd(size_t n, float p, uint64_t key, const float *x, float *y);
void qg_ref_dropout_bwd(size_t n, float p, uint64_t key, const float *dy, float *dx,
                        int accumulate);

#endif
