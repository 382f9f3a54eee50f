/* src/model/nodes_shuffle.h: node types of the ImageNet-style models
 * (ShuffleNet V2, ResNet-18): depthwise 3x3 conv, max pool, a channel
 * slice and ShuffleNet V2's join (concat + channel shuffle with 2 groups).
 * Kernels: src/ops/dwconv.h, src/ops/chan.h, src/ops/layers.h (pooling).
 * Each returns the output activation id, or -1 with the error recorded in
 * the context. Tests: tests/test_imagenet.c. */
#ifndef QG_MODEL_NODES_SHUFFLE_H
#define QG_MODEL_NODES_SHUFFLE_H

#include "core/rng.h"
#include "model/graph.h"
#include "model/wquant.h"

/* Depthwise 3x3 conv (PyTorch Conv2d with groups = C, no bias): weight
 * `name`.weight [C,1,3,3], Kaiming-normal init (fan_in 9). wq NULL: float
 * weights, else a method's weight quantizer. */
int qg__node_dwconv(qg_model *m, const char *name, int in, int stride, int pad,
                    const qg_wquant_ops *wq, const void *wq_cfg, qg_rng *rng);
/* Max pool k x k, stride, zero padding pad (PyTorch's MaxPool2d: padding
 * never wins). Its input's gradient must have no other writer. */
int qg__node_maxpool(qg_model *m, const char *name, int in, int k, int stride, int pad);
/* y = x[:, c0 : c0 + count]. */
int qg__node_chan_slice(qg_model *m, const char *name, int in, int c0, int count);
/* ShuffleNet V2's join: y[:, 2i] = a[:, a_c0 + i], y[:, 2i+1] = b[:, i]
 * for i < C_b, i.e. channel_shuffle(cat(a[:, a_c0 : a_c0 + C_b], b), 2).
 * `a` may have more channels than it gives (the stride-1 block passes its
 * whole input and takes the first half). */
int qg__node_shuffle_join(qg_model *m, const char *name, int a, int a_c0, int b);

#endif
