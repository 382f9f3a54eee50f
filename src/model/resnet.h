/* src/model/resnet.h: CIFAR-style ResNets (He et al. 2016, §4.2, in
 * Idelbayev's PyTorch form): depth = 6n+2, three stages of n BasicBlocks
 * with 16/32/64 channels, option A (zero-pad) or B (1x1 conv + BN)
 * shortcuts. State-dict names match that PyTorch model: conv1, bn1,
 * layer1.0.conv1, ..., layer2.0.shortcut.0 (option B), linear. */
#ifndef QG_MODEL_RESNET_H
#define QG_MODEL_RESNET_H

#include <stdint.h>
#include "model/graph.h"
#include "model/nodes_cg.h"
#include "model/nodes_quant.h"
#include "qgate/method.h"

typedef struct qg_resnet_opts {
    int depth;          /* 20, 32, 44, 56, 110: 6n+2 */
    char shortcut;      /* 'A' or 'B' */
    int in_c, in_h, in_w;
    int classes;
    uint64_t seed;      /* weight initialisation */
    /* The methods (quantization, PACT, precision or channel gating; NULL =
     * full precision), as one configuration (qgate/method.h), validated
     * here with qg_method_cfg_check. Quantized / PG: the block convs
     * (docs/methods.md §2.6, §5); PACT: one alpha per block, one for the stem, named
     * <block>.relu.upper_bound; CG: each block's conv1 is a CGConv2d, and
     * with postact the block is relu(bn1(conv1 x)) -> relu(bn2(conv2 .)) +
     * the shortcut, no ReLU after the add, both convs gated (docs/methods.md §4.6). Other methods
     * act through their weight quantizers (per layer role) and hooks. */
    const qg_method_cfg *methods;
    int pact_unfused;   /* PACT as its own node after the batch norm, not
                           fused into it (tests compare the two graphs) */
} qg_resnet_opts;

qg_status qg__model_resnet_cifar(qg_ctx *ctx, const qg_resnet_opts *o, qg_model **out);
/* ProQHA's pre-activation variant (src/model/resnet_preact.c); the CIFAR
 * builder hands over to it when the completed configuration `mc` has
 * --proqha on. */
qg_status qg__model_resnet_preact(qg_ctx *ctx, const qg_resnet_opts *o, const qg_method_cfg *mc,
                                  qg_model **out);

#endif
