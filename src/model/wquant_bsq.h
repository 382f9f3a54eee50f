/* src/model/wquant_bsq.h: BSQ's bit-plane weight quantizer (docs/methods.md
 * §7) and the per-layer operations BSQ's method hooks run on it
 * (src/method/m_bsq.c). Kernels: src/quant/bsq.h.
 *
 * A layer it quantizes holds, under its state-dict prefix L:
 *   L.pweight, L.nweight  [weight shape..., N]  positive / negative planes,
 *                          bit axis last, MSB first (N: the layer's precision)
 *   L.scale               [1]                   the scale s
 *   L.pbias, L.nbias      [Cout, bN]            the classifier's bias planes
 *   L.biasscale           [1]
 *   L.weight, L.bias      the effective float values, written by each forward
 *                         (buffers: not trained, saved for float consumers)
 * and, when finetuning with the precision fixed:
 *   L.weight_hat          [weight shape]        the trained float sum
 *                          sum_b (p_b - n_b) 2^(N-1-b)/(2^N-1), in [-1, 1]
 *   L.bias_hat            [Cout]
 *   L.ft_ready            [1] buffer: 1 once weight_hat was taken from the planes
 * The planes' last axis is flexible (qg_param.flex_last): a checkpoint's
 * per-layer precision replaces the built one when it is loaded. */
#ifndef QG_MODEL_WQUANT_BSQ_H
#define QG_MODEL_WQUANT_BSQ_H

#include "model/wquant.h"

typedef struct qg_bsq_cfg {
    int nbits;               /* precision of a freshly built layer */
    int finetune;            /* precision fixed, weight_hat trained */
} qg_bsq_cfg;

extern const qg_wquant_ops qg__wquant_bsq;

/* One quantized tensor of a layer: its planes, scale and the float
 * tensor it produces. */
typedef struct qg_bsq_set {
    qg_param *target;        /* L.weight or L.bias (buffer) */
    qg_param *p, *n, *s;
    qg_param *hat;           /* finetune: L.weight_hat / L.bias_hat; else NULL */
    size_t M;                /* values */
} qg_bsq_set;

typedef struct qg_bsq_layer {
    char name[80];
    int finetune;
    qg_bsq_set set[2];       /* weight, then the bias when the layer has one */
    int nsets;
    qg_param *ft_ready;
    qg_tensor *ws, *norms;
    unsigned epoch;          /* m->freeze_epoch of the cached forward; 0 none */
} qg_bsq_layer;

/* The BSQ state of a quantizer, or NULL when q is another kind. */
qg_bsq_layer *qg__bsq_layer(qg_wquant *q);
/* The precision (planes) of a set. */
int qg__bsq_set_bits(const qg_bsq_set *s);
/* Re-quantization with precision growth up to maxbit, then (prune) the
 * precision adjustment with threshold thre, on the host (src/quant/bsq.h);
 * plane tensors are resized when the precision changes. */
qg_status qg__bsq_layer_requant(qg_model *m, qg_bsq_layer *l, int maxbit, int prune, float thre);
/* Finetune: takes weight_hat (and bias_hat) from the planes unless
 * ft_ready says it was done (a resumed or re-initialised finetune run). */
qg_status qg__bsq_layer_ft_prepare(qg_model *m, qg_bsq_layer *l);
/* Finetune: writes the planes from weight_hat (the reference's
 * finetune_to_bit: conversion with S = 1), so a checkpoint's planes hold
 * the finetuned bits. */
qg_status qg__bsq_layer_ft_to_bits(qg_model *m, qg_bsq_layer *l);
/* Percent of non-zero bits per plane of set k, of the codes the planes
 * re-quantize to (qg__bsq_code_nonzero), into nz (capacity N). */
qg_status qg__bsq_layer_nonzero(qg_bsq_layer *l, int k, double *nz);

/* BSQ's activation quantizer after a block's activation (nodes_qact.c):
 * y = Q_a(min(x, cap)) at `bits` (2..16), whole-tensor max scale,
 * identity backward (masked above cap); cap 0 for no clip (cap 6 turns
 * the ReLU before it into the reference's ReLU6). Returns the output
 * activation id or -1. */
int qg__node_bsq_qact(qg_model *m, const char *name, int in, int bits, float cap);

#endif
