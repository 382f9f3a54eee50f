/* src/model/wquant.h: the weight-quantizer interface (internal): how a
 * conv or linear layer obtains the weights it computes with, and how the
 * gradient with respect to those weights reaches the stored parameters.
 *
 * Float weights need no quantizer (a layer without one uses its weight
 * parameter as it is). Uniform sign-magnitude quantization (PG's and the
 * quantized ResNet's) is src/model/wquant_uniform.c. A method offers a
 * quantizer per layer role through its descriptor's wquant hook
 * (src/method/method.h); the layer calls init once when it is built,
 * forward before each of its forward passes and backward after its weight
 * gradient. A quantizer that represents the weights differently (bit
 * planes) adds its own parameters in init and scatters the gradient to them
 * in backward. */
#ifndef QG_MODEL_WQUANT_H
#define QG_MODEL_WQUANT_H

#include "model/graph.h"

typedef struct qg_wquant qg_wquant;

typedef struct qg_wquant_ops {
    const char *name;
    /* Private state for the layer's weight parameter w; cfg is the
     * method's (qg__methods_wquant's wq_cfg). May add parameters named
     * after `layer`. */
    qg_status (*init)(qg_wquant *q, qg_model *m, const char *layer, const void *cfg);
    /* The weights this forward computes with (may be w->value). */
    qg_status (*forward)(qg_wquant *q, qg_model *m, int train, const qg_tensor **weff);
    /* w->grad holds dL/d(effective weights); turn it into the stored
     * parameters' gradients. `fused`: the layer already applied ste_mask
     * in its weight-gradient pass. */
    qg_status (*backward)(qg_wquant *q, qg_model *m, int fused);
    /* Optional: a tensor whose non-zero entries pass the gradient, which a
     * conv may apply in its weight gradient's last pass (saves a pass). */
    const qg_tensor *(*ste_mask)(const qg_wquant *q);
    void (*destroy)(qg_wquant *q);
    /* A linear layer quantizes its bias too, with an instance of its own
     * (PSGD's reference has a separate bias quantizer). */
    int bias;
} qg_wquant_ops;

struct qg_wquant {
    const qg_wquant_ops *ops;
    qg_model *m;             /* the model it is listed in (m->wquants) */
    qg_param *w;             /* the layer's weight parameter */
    void *priv;
};

/* Creates the layer's quantizer (ops NULL: *out = NULL, float weights) and
 * lists it in m->wquants, where a method's hooks find the model's
 * quantizers (by ops) between steps; qg__wquant_free unlists it. */
qg_status qg__wquant_new(qg_model *m, const qg_wquant_ops *ops, const char *layer, qg_param *w,
                         const void *cfg, qg_wquant **out);
void qg__wquant_free(qg_wquant *q);
/* *weff = the weights to compute with (w itself when q is NULL). */
qg_status qg__wquant_forward(qg_wquant *q, qg_model *m, int train, const qg_tensor **weff);
qg_status qg__wquant_backward(qg_wquant *q, qg_model *m, int fused);
/* The mask a conv may fuse into its weight gradient, or NULL. */
const qg_tensor *qg__wquant_ste_mask(const qg_wquant *q);

/* Uniform sign-magnitude quantization with the whole tensor's max |w| +
 * eps as scale (PG-PyTorch's TorchRoundToBits); cfg points to an int of
 * bits. Evaluation passes over frozen parameters quantize once. */
extern const qg_wquant_ops qg__wquant_uniform;

/* PSGD's grid (src/model/wquant_grid.c, docs/methods.md §6): the forward
 * keeps the float weights in training and updates the grid's running
 * range; the backward scales the weight gradient by lambda_s*|w - Q(w)|
 * (the position-based scaled gradient). An evaluation forward with
 * m->lowp set computes with Q(w) (its backward is the STE). cfg points to
 * a qg_wquant_grid_cfg. Also quantizes a linear layer's bias. */
typedef struct qg_wquant_grid_cfg {
    int bits;                /* 2..16 */
    float lambda_s;
} qg_wquant_grid_cfg;
extern const qg_wquant_ops qg__wquant_grid;

/* Statistics of a grid quantizer's weights against its current grid
 * (host-side, reads the weights back): mean |w - Q(w)|/delta (0..0.5 inside
 * the range; 0.25 for weights spread evenly between grid points), the grid step, and a
 * histogram of the position (w/delta - rint(w/delta)) in [-0.5, 0.5) over
 * nbins equal bins as fractions of the weights. Before the first forward
 * the grid is computed from the weights themselves. */
qg_status qg__wquant_grid_stats(qg_wquant *q, double *dist, double *delta, int nbins,
                                double *hist);

#endif
