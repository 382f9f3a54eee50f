/* src/model/nodes_cg.h: the CGConv2d node (Channel Gating, docs/methods.md §4,
 * dnn-gating utils/cg_utils.py), built on src/cg/cg.h, src/ops/conv.h and the
 * affine-free batch norm of src/ops/layers.h. Tests: tests/test_cgconv.c.
 *
 * State-dict names (as the reference's): <name>.weight [K,C,k,k],
 * <name>.mask [K,C,k,k] (a buffer: 0/1, fixed at construction),
 * <name>.threshold [1,K,1,1], <name>.bn.running_mean / .running_var [K]
 * (the gate path's BatchNorm2d(K, affine=False); num_batches_tracked is
 * written beside it by the checkpoint and never read, as for every qgate
 * batch norm). */
#ifndef QG_MODEL_NODES_CG_H
#define QG_MODEL_NODES_CG_H

#include "core/rng.h"
#include "model/graph.h"

/* The reference's gating-loss factor (docs/methods.md §4.5), in dnn-gating cg-cifar10.py:
 * loss = CE + 1e-4 * sum_layers sum_c (delta_c - g)^2. */
#define QG_CG_LOSS_COEF 1e-4f

typedef struct qg_cg_cfg {
    int partitions;   /* p: the base path sees 1/p of the input channels */
    int group;        /* block-diagonal base path (a p-group conv), else the first C/p channels */
    int shuffle;      /* channel_shuffle(x, p) before both paths */
    int spbp;         /* sparse back-prop through the gate */
    float ginit;      /* initial threshold (the scripts' -gi 0.0) */
    float alpha;      /* sigmoid slope of the gate's surrogate gradient (2.0) */
    float gtar;       /* gating target g */
    float coef;       /* gating loss coefficient (QG_CG_LOSS_COEF) */
    /* The base path as a dense conv with masked full-size weights (the
     * reference's computation) instead of a p-group conv (group) or a conv
     * over the first C/p channels on compact weights; same results, for
     * comparisons and tests. */
    int dense_base;
} qg_cg_cfg;

/* QG_ERR_INVALID_ARG (message naming `name`) unless p divides cin (and
 * cout with group or shuffle), alpha > 0 and the threshold init and
 * target are finite. */
qg_status qg__cg_cfg_check(qg_ctx *ctx, const char *name, int cin, int cout,
                           const qg_cg_cfg *c);

/* CGConv2d, no bias: out = conv(X, W)*d + conv(X, W*M)*(1-d) per output
 * element, d = BN(conv(X, W*M)) > delta (through the sigmoid). Kaiming-
 * normal weights (fan-in C*k*k). Needs p to divide C (and K with group, or
 * with shuffle). Returns the output activation, or -1 with the error in
 * the context. */
int qg__node_cgconv(qg_model *m, const char *name, int in, int cout, int k, int stride,
                    int pad, const qg_cg_cfg *cfg, qg_rng *rng);

#endif
