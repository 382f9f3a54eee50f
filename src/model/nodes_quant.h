/* src/model/nodes_quant.h: quantized and gated node types (docs/methods.md §2, §5):
 * PACT clip, QuantizedConv2d and PGConv2d, built on src/quant/quant.h and
 * src/ops/conv.h. Weights and activations use PG-PyTorch's sign-magnitude,
 * whole-tensor max-scaled quantizer; round half to even. */
#ifndef QG_MODEL_NODES_QUANT_H
#define QG_MODEL_NODES_QUANT_H

#include "core/rng.h"
#include "model/graph.h"

typedef struct qg_pg_cfg {
    int wbits;        /* 2..16 */
    int abits;        /* 2..16 */
    int pred_bits;    /* PG: MSB bits, 1 <= pred_bits < abits */
    float gtar;       /* gating target g */
    float sigma;      /* gating loss coefficient (PG-PyTorch: sigma*||delta-g||_2) */
    int spbp;         /* sparse back-prop through the gate */
} qg_pg_cfg;

/* y = clamp(x, 0, alpha); `alpha_name` names the (possibly shared) 1-element
 * parameter, created at 6.0 if it does not exist yet. */
int qg__node_pact(qg_model *m, const char *name, int in, const char *alpha_name);
/* conv(Quant_abits(x), Quant_wbits(W)), no bias. */
int qg__node_qconv(qg_model *m, const char *name, int in, int cout, int k, int stride, int pad,
                   const qg_pg_cfg *cfg, qg_rng *rng);
/* PGConv2d: prediction on the MSBs, threshold per output channel, LSB
 * update where the gate is on; `name`.threshold [1,C,1,1] starts at 0. */
int qg__node_pgconv(qg_model *m, const char *name, int in, int cout, int k, int stride,
                    int pad, const qg_pg_cfg *cfg, qg_rng *rng);

#endif
