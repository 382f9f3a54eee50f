/* src/ref/ref_pool_same.h: C oracle for the 'SAME'-padded max pool of
 * src/ops/pool.c (cl/pool.cl qg_pool_max_same_fwd); tests:
 * tests/test_pool_same.c. Written from TensorFlow's definition: P =
 * ceil(H/stride), total padding max((P-1)*stride + k - H, 0), top half
 * floor(total/2); padded cells are -infinity (never win); argmax = h*W + w
 * of the first maximum in row-major window order, as the unpadded pool. */
#ifndef QG_REF_POOL_SAME_H
#define QG_REF_POOL_SAME_H

#include <stdint.h>

void qg_ref_maxpool_same_fwd(int NC, int H, int W, int k, int stride, const float *x, float *y,
                             int32_t *argmax);

#endif
