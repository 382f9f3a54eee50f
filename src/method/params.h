/* src/method/params.h: the parameter structs of the built-in methods, as
 * the model builders and nodes read them (qg__method_params). Each struct
 * is filled from its method's option table (src/method/m_*.c). */
#ifndef QG_METHOD_PARAMS_H
#define QG_METHOD_PARAMS_H

#include "model/wquant.h"
#include "model/wquant_bsq.h"

/* Uniform quantization of the block convs (src/method/m_quant.c). */
typedef struct qg_quant_params {
    int wbits, abits;         /* 2..16 magnitude bits */
} qg_quant_params;

/* Precision gating (src/method/m_pg.c), PyTorch or TensorFlow semantics. */
typedef struct qg_pg_params {
    int pred_bits;            /* MSB bits of the prediction pass */
    float gtar, sigma;        /* gating target, loss coefficient */
    int spbp;                 /* sparse back-prop through the gate */
    int style;                /* qg_pg_style (src/model/nodes_quant.h): 0 PyTorch, 1 TF */
} qg_pg_params;

/* Channel gating (src/method/m_cg.c). */
typedef struct qg_cg_params {
    int partitions, group, shuffle, postact, spbp;
    float ginit, alpha, gtar, sigma;
} qg_cg_params;

/* PSGD, position-based scaled gradient (src/method/m_psgd.c). */
typedef struct qg_psgd_params {
    int wbits;                /* grid bits of the body (blocks, shortcuts) */
    float lambda_s;           /* gradient scale factor */
    int first_last_quant;     /* the stem and the classifier too (8 bits when wbits < 4) */
    /* derived by its check: the weight-quantizer configurations */
    qg_wquant_grid_cfg body, first_last;
} qg_psgd_params;

/* BSQ: bit-plane weights, group Lasso, re-quantization (src/method/m_bsq.c).
 * cfg (precision, finetune flag) is what the layers' quantizers read. */
typedef struct qg_bsq_params {
    qg_bsq_cfg cfg;           /* nbits, finetune */
    float decay, thre;        /* regulariser coefficient, pruning threshold (%) */
    int prune_int;            /* re-quantize every N epochs */
    int act_bits;             /* block activations quantized (Q_a), 0: float */
} qg_bsq_params;

#endif
