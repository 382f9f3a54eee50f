/* src/model/nodes_quant.h: quantized and gated node types (docs/methods.md §2, §5):
 * PACT clip, QuantizedConv2d and PGConv2d, built on src/quant/quant.h and
 * src/ops/conv.h. Weights and activations use PG-PyTorch's sign-magnitude,
 * whole-tensor max-scaled quantizer; round half to even. */
#ifndef QG_MODEL_NODES_QUANT_H
#define QG_MODEL_NODES_QUANT_H

#include "core/rng.h"
#include "model/graph.h"

/* Which reference the quantized and gated convs follow
 * (docs/methods.md §2 and §3):
 *   QG_PG_PYTORCH: dnn-gating. Weights at wbits and activations at abits,
 *     both with a whole-tensor scale max|x| + 1e-7; the gate through the
 *     sigmoid; the loss sigma*||delta - g||_2; optional sparse back-prop.
 *   QG_PG_TF: the original TensorFlow code. Float weights (wbits unused);
 *     activations with a per-sample scale max|x| and no epsilon (an
 *     all-zero sample quantizes to 0); h_hb = conv(X_msb, W) and h_full =
 *     conv(X, W) kept whole, gate m = [h_hb > delta], y = h_hb + m*(h_full
 *     - h_hb); the loss sigma*sum (g - delta)^2/2; thresholds clipped to
 *     [-20, 20] after every step (qg__pgconv_clip_thresholds); no spbp. */
typedef enum qg_pg_style { QG_PG_PYTORCH = 0, QG_PG_TF = 1 } qg_pg_style;

typedef struct qg_pg_cfg {
    int wbits;        /* 2..16 (QG_PG_TF: unused, weights stay float) */
    int abits;        /* 2..16 */
    int pred_bits;    /* PG: MSB bits, 1 <= pred_bits < abits */
    float gtar;       /* gating target g */
    float sigma;      /* gating loss coefficient (PG-PyTorch: sigma*||delta-g||_2) */
    int spbp;         /* sparse back-prop through the gate (PyTorch style only) */
    int style;        /* qg_pg_style */
} qg_pg_cfg;

/* PG-TF's threshold range (the reference's variable constraint). */
#define QG_PGTF_DELTA_MAX 20.0f

/* y = clamp(x, 0, alpha); `alpha_name` names the (possibly shared) 1-element
 * parameter, created at 6.0 if it does not exist yet. The PyTorch
 * boundaries (dalpha over x > alpha); _mode picks qg_pact_mode
 * (src/quant/quant.h), e.g. QG_PACT_TF's x >= alpha. */
int qg__node_pact(qg_model *m, const char *name, int in, const char *alpha_name);
int qg__node_pact_mode(qg_model *m, const char *name, int in, const char *alpha_name,
                       int mode);
/* Activation quantizer in front of a layer that takes quantized input but
 * keeps float weights (PG-TF's depthwise convs): y = quantize_a(x, bits)
 * with PG-TF's per-sample scale (max|x| over all but dim 0, no epsilon; an
 * all-zero sample gives 0), backward dx = dy where x != 0 (the STE). No
 * parameters. 2 <= bits <= 16. */
int qg__node_aquant(qg_model *m, const char *name, int in, int bits);
/* conv(Quant_abits(x), Quant_wbits(W)), no bias; QG_PG_TF style:
 * conv(quantize_a(x), W) with float W and the per-sample scale. */
int qg__node_qconv(qg_model *m, const char *name, int in, int cout, int k, int stride, int pad,
                   const qg_pg_cfg *cfg, qg_rng *rng);
/* PGConv2d: prediction on the MSBs, threshold per output channel, LSB
 * update where the gate is on; `name`.threshold [1,C,1,1] starts at 0. */
int qg__node_pgconv(qg_model *m, const char *name, int in, int cout, int k, int stride,
                    int pad, const qg_pg_cfg *cfg, qg_rng *rng);
/* Clips the thresholds of every QG_PG_TF PGConv2d of the model to
 * [-QG_PGTF_DELTA_MAX, QG_PGTF_DELTA_MAX] (after an optimizer step). */
qg_status qg__pgconv_clip_thresholds(qg_model *m);

#endif
