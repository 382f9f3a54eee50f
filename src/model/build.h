/* src/model/build.h: what the enabled methods ask of a model builder,
 * resolved once, and the helpers that turn it into nodes, shared by the
 * ImageNet-style builders (src/model/resnet18.c, src/model/shufflenet.c).
 * The CIFAR ResNet builder (src/model/resnet.c) applies the same rules:
 *
 *  - a conv the architecture calls gatable becomes a CGConv2d when CG is
 *    on, else a PGConv2d when PG is on;
 *  - other body convs become QuantizedConv2d when quantization (or PG,
 *    which turns it on) is on;
 *  - every other conv, and any conv of a role a method's wquant hook
 *    answers for, is a float conv with that method's weight quantizer;
 *  - with PACT on, the activation after a batch norm is PACT's clip with
 *    the alpha the builder names, else the ReLU. */
#ifndef QG_MODEL_BUILD_H
#define QG_MODEL_BUILD_H

#include "core/rng.h"
#include "method/method.h"
#include "model/graph.h"
#include "model/nodes_cg.h"
#include "model/nodes_quant.h"

typedef struct qg_build {
    qg_method_cfg mc;         /* the completed configuration */
    int quant, pg, pact, cg;
    qg_pg_cfg pgc;            /* quantized and PG convs */
    int pact_mode;            /* qg_pact_mode of the PACT clips (--pg-style) */
    qg_cg_cfg cgc;            /* CG convs */
    qg_rng rng;               /* weight initialisation */
} qg_build;

/* Completes a copy of `methods` (NULL: full precision) and resolves it;
 * the error names the configuration problem. */
qg_status qg__build_init(qg_ctx *ctx, qg_build *b, const qg_method_cfg *methods,
                         uint64_t seed);
/* A k x k conv (no bias) of the given role; gated: PG/CG may gate it,
 * body: quantization may quantize it (role QG_ROLE_BLOCK). */
int qg__build_conv(qg_model *m, qg_build *b, qg_layer_role role, int gated, const char *name,
                   int x, int cout, int k, int stride, int pad);
/* The classifier: linear with bias and the classifier role's quantizer. */
int qg__build_linear(qg_model *m, qg_build *b, const char *name, int x, int out_features);
/* Batch norm [+ residual res (-1: none)] then the activation: act 0 none,
 * else the ReLU, or PACT's clip with the parameter alpha_name (created at
 * 6.0 or shared) when PACT is on. */
int qg__build_bn_act(qg_model *m, const qg_build *b, const char *bn_name, int x, int res,
                     int act, const char *alpha_name);
/* Stores the methods in the model and runs their model_ready hooks. */
qg_status qg__build_finish(qg_model *m, const qg_build *b);

#endif
