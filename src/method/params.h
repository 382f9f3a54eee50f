/* src/method/params.h: the parameter structs of the built-in methods, as
 * the model builders and nodes read them (qg__method_params). Each struct
 * is filled from its method's option table (src/method/m_*.c). */
#ifndef QG_METHOD_PARAMS_H
#define QG_METHOD_PARAMS_H

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

#endif
