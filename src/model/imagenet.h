/* src/model/imagenet.h: torchvision's ImageNet models, for any input size
 * and class count, with torchvision's layout and state-dict names (a
 * checkpoint loads into torchvision's model with strict=True when no
 * method adds tensors; tests/tools/check_torchvision.py):
 *
 *  - "resnet18": ResNet-18 (BasicBlocks 2-2-2-2, 64..512 channels, 7x7/s2
 *    stem, 3x3/s2 max pool, 1x1 conv + BN downsample);
 *  - "shufflenet_v2_x0_5": ShuffleNet V2 0.5x (stages 48/96/192 of 4/8/4
 *    blocks, 3x3/s2 stem with 24 filters, 3x3/s2 max pool, conv5 1024).
 *
 * Methods apply through src/model/build.h. ResNet-18: the block convs are
 * quantized (conv1 of each block is the one CG gates and, with PG, both
 * are PG convs); the stem, the downsample convs and fc keep their roles'
 * (float by default) weights. ShuffleNet V2: every 1x1 conv inside a
 * block is gatable (PG: the 35 PG layers of the TensorFlow original); the
 * stem and conv5 keep float weights, the depthwise convs float weights. */
#ifndef QG_MODEL_IMAGENET_H
#define QG_MODEL_IMAGENET_H

#include <stdint.h>
#include "model/graph.h"
#include "qgate/method.h"

typedef struct qg_imagenet_opts {
    const char *arch;   /* "resnet18" or "shufflenet_v2_x0_5" */
    int in_c, in_h, in_w;
    int classes;
    uint64_t seed;
    const qg_method_cfg *methods;  /* NULL: full precision */
} qg_imagenet_opts;

/* 1 when arch names one of these models. */
int qg__model_imagenet_known(const char *arch);
qg_status qg__model_imagenet(qg_ctx *ctx, const qg_imagenet_opts *o, qg_model **out);
qg_status qg__model_resnet18(qg_ctx *ctx, const qg_imagenet_opts *o, qg_model **out);
qg_status qg__model_shufflenet_v2(qg_ctx *ctx, const qg_imagenet_opts *o, qg_model **out);

#endif
