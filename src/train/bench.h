/* src/train/bench.h: `qgate bench train`: training (or inference) steps of
 * a model on synthetic data, timed after warm-up. */
#ifndef QG_TRAIN_BENCH_H
#define QG_TRAIN_BENCH_H

#include "train/trainer.h"

typedef struct qg_bench_cfg {
    const char *device;
    const char *model;
    char shortcut;
    const qg_method_cfg *methods;   /* NULL: full precision */
    int in_c, in_h, in_w, classes;
    int batch;
    int warmup, steps;
    int eval;                /* time inference instead of training */
    int verbose;
    int profile;             /* print per-node-type times */
    int dense_gates;         /* gated layers compute their skipped work densely */
    /* Alternate steps with skipping and with dense gating (m->dense_gates)
     * in one run: img/s of each, and per gated layer its density, FLOP
     * reduction and the share of the theoretical saving realised in time
     * (per-node profiling; printed). */
    int compare_dense;
    const char *init;        /* weights from this checkpoint (NULL: fresh init) */
} qg_bench_cfg;

typedef struct qg_bench_result {
    double img_per_s;
    double ms_per_step_min, ms_per_step_median;
    double device_bytes;     /* activations + workspace + parameters + optimizer state */
    double macs_per_image;   /* forward multiply-adds */
    /* with compare_dense: the same for the dense-gating steps */
    double img_per_s_dense, ms_per_step_median_dense;
} qg_bench_result;

qg_status qg__bench_train(const qg_bench_cfg *cfg, qg_bench_result *out);

#endif
