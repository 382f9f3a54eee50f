/* src/ref/ref_layers.h: plain-C oracles for the layers of src/ops/layers.h
 * (cl/bn.cl, cl/pool.cl, cl/shortcut.cl, cl/loss.cl, cl/optim.cl); tests:
 * tests/test_bn.c, test_pool.c, test_loss.c, test_optim.c.
 *
 * Layouts and math as in the .cl banners. Reductions (BN statistics, the
 * softmax, pooling sums) run in double so the oracle is more exact than
 * any device summation order; the optimizer steps repeat the kernels'
 * float operations so they can be compared tightly. Results are
 * overwritten unless an `accumulate` flag says otherwise. */
#ifndef QG_REF_LAYERS_H
#define QG_REF_LAYERS_H

#include <stddef.h>
#include <stdint.h>

/* ---- batch norm: x, y, dy, dx [N][C][HW]; per-channel vectors [C] ---- */
/* gamma/beta NULL: affine=False; running_mean/var NULL: not tracked. */
void qg_ref_bn_fwd_train(int N, int C, int HW, const float *x, const float *gamma,
                         const float *beta, float *running_mean, float *running_var,
                         float momentum, float eps, float *y, float *save_mean,
                         float *save_invstd);
void qg_ref_bn_fwd_eval(int N, int C, int HW, const float *x, const float *gamma,
                        const float *beta, const float *running_mean, const float *running_var,
                        float eps, float *y);
/* dgamma/dbeta may be NULL; gamma NULL means gamma = 1. */
void qg_ref_bn_bwd(int N, int C, int HW, const float *x, const float *dy, const float *gamma,
                   const float *save_mean, const float *save_invstd, float *dx, float *dgamma,
                   float *dbeta, int accumulate);

/* Eval BN folded into the conv before it: w [K][per], b [K] or NULL. */
void qg_ref_bn_fold(int K, int per, const float *w, const float *b, const float *gamma,
                    const float *beta, const float *running_mean, const float *running_var,
                    float eps, float *wf, float *bf);

/* ---- pooling over NC planes; P = (H + 2*pad - k)/stride + 1 ---- */
int qg_ref_pool_out(int H, int k, int stride, int pad);
void qg_ref_maxpool_fwd(int NC, int H, int W, int k, int stride, int pad, const float *x,
                        float *y, int32_t *argmax);
void qg_ref_maxpool_bwd(int NC, int H, int W, int P, int Q, const float *dy,
                        const int32_t *argmax, float *dx);
void qg_ref_avgpool_fwd(int NC, int H, int W, int k, int stride, int pad, const float *x,
                        float *y);
void qg_ref_avgpool_bwd(int NC, int H, int W, int k, int stride, int pad, const float *dy,
                        float *dx);
void qg_ref_gap_fwd(int NC, int HW, const float *x, float *y);
void qg_ref_gap_bwd(int NC, int HW, const float *dy, float *dx);

/* ---- option-A shortcut: x [N][C][H][W] -> y [N][K][ceil(H/s)][ceil(W/s)] ---- */
void qg_ref_shortcut_a_fwd(int N, int C, int H, int W, int K, int stride, const float *x,
                           float *y, int accumulate);
void qg_ref_shortcut_a_bwd(int N, int C, int H, int W, int K, int stride, const float *dy,
                           float *dx, int accumulate);

/* ---- softmax cross-entropy over N rows; dlogits may be NULL ---- */
void qg_ref_softmax_ce(int N, int classes, const float *logits, const int32_t *labels,
                       float scale, float *loss_sum, int32_t *correct, float *dlogits);

/* ---- optimizer steps on n elements (torch.optim semantics) ---- */
/* buf is used (and may be NULL otherwise) only when momentum != 0. */
void qg_ref_sgd_step(size_t n, float *w, const float *grad, float *buf, float lr,
                     float momentum, float wd, int nesterov, int first, float grad_scale);
void qg_ref_adam_step(size_t n, float *w, const float *grad, float *m, float *v, float lr,
                      float beta1, float beta2, float eps, float wd, int t, float grad_scale);
float qg_ref_sumsq(size_t n, const float *x);

#endif
