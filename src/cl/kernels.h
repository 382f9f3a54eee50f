/* src/cl/kernels.h: the kernel programs and their kernels as enums
 * (internal).
 *
 * A program is one cl/<name>.cl file (or, for QG_PROG_CLBLAST_XGEMM, the
 * parameters of CLBlast's Xgemm kernel, which src/gemm applies); its
 * registry entry (src/cl/registry.c, one per qg_prog_id) names its
 * tunables. Every kernel of a program has a qg_kernel_id: launchers name
 * kernels by id, so a launch looks its kernel up by index in the
 * context, never by string. tests/test_program.c checks this list against
 * the kernels each built program holds. The tunables of each program are
 * indexed by the enums below (registry order). */
#ifndef QG_CL_KERNELS_H
#define QG_CL_KERNELS_H

typedef enum qg_prog_id {
    QG_PROG_ELTWISE,
    QG_PROG_REDUCE,
    QG_PROG_QUANT,
    QG_PROG_CG,
    QG_PROG_BN,
    QG_PROG_POOL,
    QG_PROG_SHORTCUT,
    QG_PROG_LOSS,
    QG_PROG_OPTIM,
    QG_PROG_IM2COL,
    QG_PROG_CONV_DIRECT,
    QG_PROG_CLBLAST_XGEMM,
    QG_PROG_CHAN,
    QG_PROG_DWCONV,
    QG_PROG_PSGD,
    QG_PROG_BSQ,
    QG_PROG_CONV_MASKED,
    QG_PROG_COUNT
} qg_prog_id;

/* X(program, kernel, name): the kernel QG_K_<kernel> of QG_PROG_<program>,
 * named <name> in its .cl source. */
#define QG_KERNEL_LIST(X) \
    X(ELTWISE, ELTWISE_FILL, "qg_eltwise_fill")                                  \
    X(ELTWISE, ELTWISE_AXPBY, "qg_eltwise_axpby")                                \
    X(ELTWISE, ELTWISE_ADD, "qg_eltwise_add")                                    \
    X(ELTWISE, ELTWISE_MUL, "qg_eltwise_mul")                                    \
    X(ELTWISE, ELTWISE_RELU_FWD, "qg_eltwise_relu_fwd")                          \
    X(ELTWISE, ELTWISE_RELU_BWD, "qg_eltwise_relu_bwd")                          \
    X(ELTWISE, ELTWISE_DROPOUT_FWD, "qg_eltwise_dropout_fwd")                    \
    X(ELTWISE, ELTWISE_DROPOUT_BWD, "qg_eltwise_dropout_bwd")                    \
    X(REDUCE, REDUCE_SUM, "qg_reduce_sum")                                       \
    X(REDUCE, REDUCE_ABSMAX, "qg_reduce_absmax")                                 \
    X(REDUCE, REDUCE_CHANNEL_STATS, "qg_reduce_channel_stats")                   \
    X(REDUCE, REDUCE_NONFINITE, "qg_reduce_nonfinite")                           \
    X(QUANT, QUANT_ABSMAX, "qg_quant_absmax")                                    \
    X(QUANT, QUANT_SCALE_EPS, "qg_quant_scale_eps")                              \
    X(QUANT, QUANT_APPLY, "qg_quant_apply")                                      \
    X(QUANT, QUANT_SMALL_PG, "qg_quant_small_pg")                                \
    X(QUANT, QUANT_BINARIZE, "qg_quant_binarize")                                \
    X(QUANT, QUANT_STE_BWD, "qg_quant_ste_bwd")                                  \
    X(QUANT, QUANT_DOREFA_MEAN, "qg_quant_dorefa_mean")                          \
    X(QUANT, QUANT_DOREFA_FWD, "qg_quant_dorefa_fwd")                            \
    X(QUANT, QUANT_DOREFA_BWD_PARTIAL, "qg_quant_dorefa_bwd_partial")            \
    X(QUANT, QUANT_DOREFA_BWD, "qg_quant_dorefa_bwd")                            \
    X(QUANT, QUANT_PACT_FWD, "qg_quant_pact_fwd")                                \
    X(QUANT, QUANT_PACT_BWD, "qg_quant_pact_bwd")                                \
    X(QUANT, QUANT_PARTIALS_ADD, "qg_quant_partials_add")                        \
    X(QUANT, QUANT_PACT_QUANT_FWD, "qg_quant_pact_quant_fwd")                    \
    X(QUANT, QUANT_PACT_QUANT_BWD, "qg_quant_pact_quant_bwd")                    \
    X(QUANT, QUANT_PQ_SCORE, "qg_quant_pq_score")                                \
    X(QUANT, QUANT_PG_GATE_FWD, "qg_quant_pg_gate_fwd")                          \
    X(QUANT, QUANT_PG_GATE_BWD, "qg_quant_pg_gate_bwd")                          \
    X(QUANT, QUANT_GATE_LOSS, "qg_quant_gate_loss")                              \
    X(QUANT, QUANT_PGTF_GATE_FWD, "qg_quant_pgtf_gate_fwd")                      \
    X(QUANT, QUANT_PGTF_GATE_BWD, "qg_quant_pgtf_gate_bwd")                      \
    X(QUANT, QUANT_CLIP, "qg_quant_clip")                                        \
    X(CG, CG_WEIGHTS_FWD, "qg_cg_weights_fwd")                                   \
    X(CG, CG_WEIGHTS_BWD, "qg_cg_weights_bwd")                                   \
    X(CG, CG_GATE_FWD, "qg_cg_gate_fwd")                                         \
    X(CG, CG_GATE_BWD, "qg_cg_gate_bwd")                                         \
    X(CG, CG_SHUFFLE, "qg_cg_shuffle")                                           \
    X(CG, CG_GATE_MASK, "qg_cg_gate_mask")                                       \
    X(BN, BN_FWD_TRAIN, "qg_bn_fwd_train")                                       \
    X(BN, BN_FWD_EVAL, "qg_bn_fwd_eval")                                         \
    X(BN, BN_BWD, "qg_bn_bwd")                                                   \
    X(BN, BN_PART_ADD, "qg_bn_part_add")                                         \
    X(BN, BN_STATS_PART, "qg_bn_stats_part")                                     \
    X(BN, BN_APPLY, "qg_bn_apply")                                               \
    X(BN, BN_BWD_PART, "qg_bn_bwd_part")                                         \
    X(BN, BN_BWD_APPLY, "qg_bn_bwd_apply")                                       \
    X(BN, BN_FOLD, "qg_bn_fold")                                                 \
    X(POOL, POOL_MAX_FWD, "qg_pool_max_fwd")                                     \
    X(POOL, POOL_ZERO, "qg_pool_zero")                                           \
    X(POOL, POOL_MAX_BWD, "qg_pool_max_bwd")                                     \
    X(POOL, POOL_AVG_FWD, "qg_pool_avg_fwd")                                     \
    X(POOL, POOL_AVG_BWD, "qg_pool_avg_bwd")                                     \
    X(POOL, POOL_GAP_FWD, "qg_pool_gap_fwd")                                     \
    X(POOL, POOL_GAP_BWD, "qg_pool_gap_bwd")                                     \
    X(POOL, POOL_MAX_SAME_FWD, "qg_pool_max_same_fwd")                           \
    X(SHORTCUT, SHORTCUT_A_FWD, "qg_shortcut_a_fwd")                             \
    X(SHORTCUT, SHORTCUT_A_BWD, "qg_shortcut_a_bwd")                             \
    X(LOSS, LOSS_SOFTMAX_CE, "qg_loss_softmax_ce")                               \
    X(OPTIM, OPTIM_SGD4, "qg_optim_sgd4")                                        \
    X(OPTIM, OPTIM_ADAM, "qg_optim_adam")                                        \
    X(OPTIM, OPTIM_SUMSQ, "qg_optim_sumsq")                                      \
    X(IM2COL, IM2COL_IM2COL, "qg_im2col_im2col")                                 \
    X(IM2COL, IM2COL_COL2IM, "qg_im2col_col2im")                                 \
    X(IM2COL, IM2COL_NCHW_TO_CN, "qg_im2col_nchw_to_cn")                         \
    X(IM2COL, IM2COL_CN_TO_NCHW, "qg_im2col_cn_to_nchw")                         \
    X(IM2COL, IM2COL_BIAS_ADD, "qg_im2col_bias_add")                             \
    X(IM2COL, IM2COL_BIAS_GRAD, "qg_im2col_bias_grad")                           \
    X(CONV_DIRECT, CONV_DIRECT_QTABLE, "qg_conv_direct_qtable")                  \
    X(CONV_DIRECT, CONV_DIRECT_PREP, "qg_conv_direct_prep")                      \
    X(CONV_DIRECT, CONV_DIRECT_WPREP, "qg_conv_direct_wprep")                    \
    X(CONV_DIRECT, CONV_DIRECT_UNPHASE, "qg_conv_direct_unphase")                \
    X(CONV_DIRECT, CONV_DIRECT_FWD_3X3, "qg_conv_direct_fwd_3x3")                \
    X(CONV_DIRECT, CONV_DIRECT_FWD_2X2, "qg_conv_direct_fwd_2x2")                \
    X(CONV_DIRECT, CONV_DIRECT_FWD_S2_3X3, "qg_conv_direct_fwd_s2_3x3")          \
    X(CONV_DIRECT, CONV_DIRECT_FWD_KV_3X3, "qg_conv_direct_fwd_kv_3x3")          \
    X(CONV_DIRECT, CONV_DIRECT_FWD_KV_2X2, "qg_conv_direct_fwd_kv_2x2")          \
    X(CONV_DIRECT, CONV_DIRECT_WGRAD_3X3, "qg_conv_direct_wgrad_3x3")            \
    X(CONV_DIRECT, CONV_DIRECT_WGRAD_S2_3X3, "qg_conv_direct_wgrad_s2_3x3")      \
    X(CONV_DIRECT, CONV_DIRECT_WGRAD_ROWS_3X3, "qg_conv_direct_wgrad_rows_3x3")  \
    X(CONV_DIRECT, CONV_DIRECT_PREP_T, "qg_conv_direct_prep_t")                  \
    X(CONV_DIRECT, CONV_DIRECT_WGRAD_KV, "qg_conv_direct_wgrad_kv")              \
    X(CONV_DIRECT, CONV_DIRECT_WGRAD_KV_S2, "qg_conv_direct_wgrad_kv_s2")        \
    X(CONV_DIRECT, CONV_DIRECT_WGRAD_SUM, "qg_conv_direct_wgrad_sum")            \
    X(CHAN, CHAN_COPY, "qg_chan_copy")                                           \
    X(DWCONV, DW_FWD, "qg_dw_fwd")                                               \
    X(DWCONV, DW_BWD_DATA, "qg_dw_bwd_data")                                     \
    X(DWCONV, DW_BWD_WEIGHT, "qg_dw_bwd_weight")                                 \
    X(PSGD, PSGD_RANGE, "qg_psgd_range")                                         \
    X(PSGD, PSGD_SCALE, "qg_psgd_scale")                                         \
    X(PSGD, PSGD_ACT_QUANT, "qg_psgd_act_quant")                                 \
    X(BSQ, BSQ_FWD, "qg_bsq_fwd")                                                \
    X(BSQ, BSQ_BWD, "qg_bsq_bwd")                                                \
    X(BSQ, BSQ_SUM, "qg_bsq_sum")                                                \
    X(BSQ, BSQ_REG_PART, "qg_bsq_reg_part")                                      \
    X(BSQ, BSQ_REG_NORMS, "qg_bsq_reg_norms")                                    \
    X(BSQ, BSQ_REG_GRAD, "qg_bsq_reg_grad")                                      \
    X(BSQ, BSQ_CLAMP, "qg_bsq_clamp")                                            \
    X(BSQ, BSQ_FT_FWD, "qg_bsq_ft_fwd")                                          \
    X(BSQ, BSQ_FT_BWD, "qg_bsq_ft_bwd")                                          \
    X(CONV_MASKED, CONV_MASKED_PREP, "qg_conv_masked_prep")                      \
    X(CONV_MASKED, CONV_MASKED_WPREP, "qg_conv_masked_wprep")                    \
    X(CONV_MASKED, CONV_MASKED_LIST, "qg_conv_masked_list")                      \
    X(CONV_MASKED, CONV_MASKED_FWD, "qg_conv_masked_fwd")                        \
    X(CONV_MASKED, CONV_MASKED_GPREP, "qg_conv_masked_gprep")                    \
    X(CONV_MASKED, CONV_MASKED_GWPREP, "qg_conv_masked_gwprep")                  \
    X(CONV_MASKED, CONV_MASKED_GFWD, "qg_conv_masked_gfwd")                      \
    X(CONV_MASKED, CONV_MASKED_GWGRAD, "qg_conv_masked_gwgrad")                  \
    X(CONV_MASKED, CONV_MASKED_GWSUM, "qg_conv_masked_gwsum")                    \
    X(CONV_MASKED, CONV_MASKED_DCOMPACT, "qg_conv_masked_dcompact")              \
    X(CONV_MASKED, CONV_MASKED_DWPREP, "qg_conv_masked_dwprep")                  \
    X(CONV_MASKED, CONV_MASKED_DGRAD, "qg_conv_masked_dgrad")

typedef enum qg_kernel_id {
#define QG_KERNEL_ENUM_(prog, kernel, name) QG_K_##kernel,
    QG_KERNEL_LIST(QG_KERNEL_ENUM_)
#undef QG_KERNEL_ENUM_
    QG_K_COUNT
} qg_kernel_id;

/* Tunable indices. Every cl/ program has WG (its work-group size) first. */
enum { QG_P_WG = 0 };
enum { QG_QUANT_WG, QG_QUANT_CHUNK, QG_QUANT_VW, QG_QUANT_NP };
enum { QG_CG_WG, QG_CG_VW, QG_CG_NP };
enum { QG_BN_WG, QG_BN_VW, QG_BN_PARTS, QG_BN_NP };
enum { QG_SHORTCUT_WG, QG_SHORTCUT_ROW, QG_SHORTCUT_NP };
enum { QG_DIRECT_WG, QG_DIRECT_VW, QG_DIRECT_JT, QG_DIRECT_KT, QG_DIRECT_WKT, QG_DIRECT_WN,
       QG_DIRECT_NP };
enum { QG_XGEMM_GEMMK, QG_XGEMM_KREG, QG_XGEMM_KWG, QG_XGEMM_KWI, QG_XGEMM_MDIMA,
       QG_XGEMM_MDIMC, QG_XGEMM_MWG, QG_XGEMM_NDIMB, QG_XGEMM_NDIMC, QG_XGEMM_NWG, QG_XGEMM_SA,
       QG_XGEMM_SB, QG_XGEMM_STRM, QG_XGEMM_STRN, QG_XGEMM_VWM, QG_XGEMM_VWN, QG_XGEMM_NP };
enum { QG_CHAN_WG, QG_CHAN_EPI, QG_CHAN_NP };
enum { QG_DW_WG, QG_DW_QT, QG_DW_WWG, QG_DW_ROW, QG_DW_NP };
enum { QG_MASKED_WG, QG_MASKED_VW, QG_MASKED_KT, QG_MASKED_SP, QG_MASKED_MODE, QG_MASKED_GV,
       QG_MASKED_PAY, QG_MASKED_NP };

#endif
