/* src/model/vgg.h: VGG16-bn for CIFAR-sized inputs as PSG-pytorch builds it
 * (our_network.py's Vgg16_bn; docs/methods.md §6.6):
 *
 *  - features: configuration D, 64,64,M,128,128,M,256x3,M,512x3,M,512x3,M;
 *    every 3x3 conv (pad 1, no bias) is followed by BatchNorm2d and ReLU,
 *    M is a 2x2/2 max pool; state-dict names features.<i>.weight (conv),
 *    features.<i+1>.* (its batch norm), i counting the Sequential's
 *    modules (conv, bn, relu, ..., max pool), so 0, 1, 3, 4, 7, 8, ... 40, 41;
 *  - classifier: Linear(512, 4096) -> ReLU -> Dropout(0.5) ->
 *    Linear(4096, 4096) -> ReLU -> Dropout(0.5) -> Linear(4096, classes),
 *    no batch norm, named classifier.0, classifier.3, classifier.6.
 *
 * The five pools take a 32x32 input to 1x1, so the flattened features are
 * the 512 channels. Inputs of 32..63 pixels a side end at 1x1 too; smaller
 * square inputs of an even side (28x28 Fashion-MNIST) are zero-padded to
 * 32x32 by the first conv's padding (1 + (32 - side)/2: 3 for 28x28, the
 * same numbers as padding the image by 2 and a pad-1 conv).
 *
 * Methods: full precision, or PSGD (its grid on every conv and on the two
 * hidden linears with their biases; the first conv and the last linear with
 * --first-last-quant). Other methods are refused.
 *
 * "vgg16_bn_divN" (N = 2, 4, ..., 64) divides every width (channels and
 * the 4096 hidden units) by N: the same graph, small enough for tests. */
#ifndef QG_MODEL_VGG_H
#define QG_MODEL_VGG_H

#include <stdint.h>
#include "model/graph.h"
#include "qgate/method.h"

typedef struct qg_vgg_opts {
    const char *arch;   /* "vgg16_bn" or "vgg16_bn_divN" */
    int in_c, in_h, in_w;
    int classes;
    uint64_t seed;
    const qg_method_cfg *methods;  /* NULL: full precision */
} qg_vgg_opts;

/* 1 when arch names a VGG model (*div, when not NULL: its width divisor). */
int qg__model_vgg_known(const char *arch, int *div);
qg_status qg__model_vgg(qg_ctx *ctx, const qg_vgg_opts *o, qg_model **out);

#endif
