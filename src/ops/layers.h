/* src/ops/layers.h: batch norm, pooling, option-A shortcut, softmax
 * cross-entropy and optimizer steps (cl/bn.cl, cl/pool.cl,
 * cl/shortcut.cl, cl/loss.cl, cl/optim.cl). C twins: src/ref/ref_layers.h;
 * tests: tests/test_bn.c, test_pool.c, test_loss.c, test_optim.c.
 * All tensors contiguous float32 NCHW unless stated. */
#ifndef QG_OPS_LAYERS_H
#define QG_OPS_LAYERS_H

#include "qgate/tensor.h"

/* ---- Batch norm (PyTorch BatchNorm2d semantics) ----
 * Train: batch mean/biased variance normalise; running stats updated with
 * running = (1-momentum)*running + momentum*batch, using the UNBIASED
 * variance for running_var. save_mean/save_invstd [C] keep what the
 * backward pass needs. gamma/beta may be NULL (affine=False). */
qg_status qg__bn_fwd_train(qg_ctx *ctx, const qg_tensor *x, const qg_tensor *gamma,
                           const qg_tensor *beta, qg_tensor *running_mean,
                           qg_tensor *running_var, float momentum, float eps, qg_tensor *y,
                           qg_tensor *save_mean, qg_tensor *save_invstd);
qg_status qg__bn_fwd_eval(qg_ctx *ctx, const qg_tensor *x, const qg_tensor *gamma,
                          const qg_tensor *beta, const qg_tensor *running_mean,
                          const qg_tensor *running_var, float eps, qg_tensor *y);
/* dx overwritten (or added to when accumulate); dgamma/dbeta overwritten
 * (may be NULL when gamma is NULL). Uses the batch statistics. */
qg_status qg__bn_bwd(qg_ctx *ctx, const qg_tensor *x, const qg_tensor *dy,
                     const qg_tensor *gamma, const qg_tensor *save_mean,
                     const qg_tensor *save_invstd, qg_tensor *dx, qg_tensor *dgamma,
                     qg_tensor *dbeta, int accumulate);

/* Batch norm with a residual add and an activation fused behind it:
 * y = act(bn(x) + res) (res NULL: no add). act: QG_BN_NONE, QG_BN_RELU,
 * or QG_BN_PACT, PACT's clip to [0, alpha[0]] (docs/methods.md §5.3). The backward
 * masks dy by y > 0 for the ReLU, or, when y is NULL (no residual; beta
 * given through `pact`, whose other members are then unused), by the
 * pre-activation recomputed from x as PACT does, one tensor less to read;
 * for PACT by
 * 0 <= z <= alpha with z = bn(x) + res recomputed from x and the saved
 * statistics exactly as the forward pass formed it, and adds the sum of
 * dy over z > alpha to dalpha (pact: the tensors that takes). It writes
 * the batch-norm gradients as qg__bn_bwd and, when dres is given, the
 * gradient of res (= the masked dy), added to dres when res_accumulate. */
enum { QG_BN_NONE = 0, QG_BN_RELU = 1, QG_BN_PACT = 2 };
typedef struct qg_bn_pact_bwd {
    const qg_tensor *alpha;  /* [1] clip level */
    const qg_tensor *beta;   /* the forward's beta (NULL when gamma is) */
    const qg_tensor *res;    /* the forward's residual, or NULL; dres may be
                                the same tensor when not accumulating */
    qg_tensor *dalpha;       /* [1], added to */
    qg_tensor *part;         /* [C] scratch: per-channel sums */
    int nonzero;             /* dy counts only where y != 0 (the one reader's
                                quantizer STE, folded in here): the mask is
                                0 < z <= alpha, and z > alpha adds to dalpha
                                only when alpha != 0 */
} qg_bn_pact_bwd;
/* ymax (1 float, or NULL) receives max |y| + ymax_add: with the
 * quantizer's eps, the scale a quantized consumer of y needs, without a
 * pass of its own over y. */
qg_status qg__bn_act_fwd_train(qg_ctx *ctx, const qg_tensor *x, const qg_tensor *gamma,
                               const qg_tensor *beta, qg_tensor *running_mean,
                               qg_tensor *running_var, float momentum, float eps,
                               const qg_tensor *res, int act, const qg_tensor *alpha,
                               qg_tensor *y, qg_tensor *save_mean, qg_tensor *save_invstd,
                               qg_tensor *ymax, float ymax_add);
qg_status qg__bn_act_fwd_eval(qg_ctx *ctx, const qg_tensor *x, const qg_tensor *gamma,
                              const qg_tensor *beta, const qg_tensor *running_mean,
                              const qg_tensor *running_var, float eps, const qg_tensor *res,
                              int act, const qg_tensor *alpha, qg_tensor *y);
qg_status qg__bn_act_bwd(qg_ctx *ctx, const qg_tensor *x, const qg_tensor *y,
                         const qg_tensor *dy, const qg_tensor *gamma,
                         const qg_tensor *save_mean, const qg_tensor *save_invstd, int act,
                         qg_tensor *dx, qg_tensor *dgamma, qg_tensor *dbeta, int accumulate,
                         qg_tensor *dres, int res_accumulate, const qg_bn_pact_bwd *pact);

/* Eval-mode batch norm folded into the convolution w [K, ...] (bias b [K]
 * or NULL) before it: wf = w*a, bf = beta + (b - running_mean)*a with
 * a = gamma/sqrt(running_var + eps) per output channel (gamma, beta NULL:
 * affine=False). conv(x, wf) + bf then equals bn_eval(conv(x, w) + b). */
qg_status qg__bn_fold(qg_ctx *ctx, const qg_tensor *w, const qg_tensor *b,
                      const qg_tensor *gamma, const qg_tensor *beta,
                      const qg_tensor *running_mean, const qg_tensor *running_var, float eps,
                      qg_tensor *wf, qg_tensor *bf);

/* ---- Pooling ----
 * Max pool k x k, stride, pad (padding never wins the max); argmax [N,C,P,Q]
 * I32 holds the flat input index within the (n,c) plane. */
qg_status qg__maxpool_fwd(qg_ctx *ctx, const qg_tensor *x, int k, int stride, int pad,
                          qg_tensor *y, qg_tensor *argmax);
qg_status qg__maxpool_bwd(qg_ctx *ctx, const qg_tensor *dy, const qg_tensor *argmax,
                          qg_tensor *dx);
/* Max pool with TensorFlow 'SAME' padding (ShuffleNet's 3x3/s2 stem):
 * y [N,C,ceil(H/stride),ceil(W/stride)]; the total padding
 * max((P-1)*stride + k - H, 0) puts its smaller half on top (left).
 * Backward: qg__maxpool_bwd with the argmax written here. */
int qg__pool_same_out(int H, int stride);
int qg__pool_same_pad(int H, int k, int stride);
qg_status qg__maxpool_same_fwd(qg_ctx *ctx, const qg_tensor *x, int k, int stride,
                               qg_tensor *y, qg_tensor *argmax);
/* Avg pool k x k, stride, pad, count_include_pad=True (PyTorch default). */
qg_status qg__avgpool_fwd(qg_ctx *ctx, const qg_tensor *x, int k, int stride, int pad,
                          qg_tensor *y);
qg_status qg__avgpool_bwd(qg_ctx *ctx, const qg_tensor *dy, int k, int stride, int pad,
                          qg_tensor *dx);
/* Global average pool: x [N,C,H,W] -> y [N,C] (any rank-2 or [N,C,1,1]). */
qg_status qg__gap_fwd(qg_ctx *ctx, const qg_tensor *x, qg_tensor *y);
qg_status qg__gap_bwd(qg_ctx *ctx, const qg_tensor *dy, qg_tensor *dx);

/* ---- Option-A shortcut (He et al. CIFAR ResNet) ----
 * y[n, k, p, q] (+)= x[n, k - pad_c, p*stride, q*stride] for
 * pad_c <= k < pad_c + C, else 0; pad_c = (K - C) / 2. x [N,C,H,W],
 * y [N,K,ceil(H/stride),ceil(W/stride)]. accumulate adds into y. */
qg_status qg__shortcut_a_fwd(qg_ctx *ctx, const qg_tensor *x, int stride, qg_tensor *y,
                             int accumulate);
/* dx (+)= the matching slice of dy. */
qg_status qg__shortcut_a_bwd(qg_ctx *ctx, const qg_tensor *dy, int stride, qg_tensor *dx,
                             int accumulate);

/* ---- Softmax cross-entropy (mean over the batch) ----
 * logits [N, classes], labels [N] I32. Writes loss_sum[0] = sum over the
 * batch of -log softmax(label) (caller divides by N for the mean),
 * correct[0] (I32) = number of rows whose argmax (first max) equals the
 * label, and, if dlogits is not NULL, dlogits = (softmax - onehot) * scale
 * (scale = 1/N for the mean loss). */
qg_status qg__softmax_ce(qg_ctx *ctx, const qg_tensor *logits, const qg_tensor *labels,
                         float scale, qg_tensor *loss_sum, qg_tensor *correct,
                         qg_tensor *dlogits);

/* ---- Optimizer steps (PyTorch torch.optim semantics) ----
 * SGD: g = grad + wd*w; buf = momentum*buf + g (buf = g on the first step,
 * first != 0); nesterov: g = g + momentum*buf, else g = buf; w -= lr*g.
 * grad_scale multiplies grad first (gradient-norm clipping). */
qg_status qg__sgd_step(qg_ctx *ctx, qg_tensor *w, const qg_tensor *grad, qg_tensor *buf,
                       float lr, float momentum, float wd, int nesterov, int first,
                       float grad_scale);
/* qg__sgd_step on count tensors (w[i], grad[i], buf[i] with weight decay
 * wd[i]; buf ignored when momentum is 0), four to a launch (qg__sgd_step
 * is the one-tensor case). */
qg_status qg__sgd_step_many(qg_ctx *ctx, int count, qg_tensor *const *w,
                            const qg_tensor *const *grad, qg_tensor *const *buf,
                            const float *wd, float lr, float momentum, int nesterov, int first,
                            float grad_scale);
/* Adam (L2 weight decay added to the gradient as torch.optim.Adam):
 * m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; w -= lr * (m/(1-b1^t)) /
 * (sqrt(v/(1-b2^t)) + eps), t >= 1 the step count. */
qg_status qg__adam_step(qg_ctx *ctx, qg_tensor *w, const qg_tensor *grad, qg_tensor *m,
                        qg_tensor *v, float lr, float beta1, float beta2, float eps, float wd,
                        int t, float grad_scale);
/* out[0] (+)= sum(grad^2): building block of the global gradient norm. */
qg_status qg__sumsq(qg_ctx *ctx, const qg_tensor *x, qg_tensor *out, int accumulate);

#endif
