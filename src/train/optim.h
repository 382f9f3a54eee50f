/* src/train/optim.h: optimizers over a model's parameters and learning-
 * rate schedules (PyTorch torch.optim / lr_scheduler semantics). Kernels:
 * cl/optim.cl via src/ops/layers.h. */
#ifndef QG_TRAIN_OPTIM_H
#define QG_TRAIN_OPTIM_H

#include "model/graph.h"

typedef enum qg_optim_kind { QG_OPTIM_SGD = 0, QG_OPTIM_ADAM = 1 } qg_optim_kind;

typedef struct qg_optim_cfg {
    qg_optim_kind kind;
    float lr;               /* base learning rate */
    float momentum;         /* SGD */
    int nesterov;
    float weight_decay;
    /* Which parameter kinds get weight decay (bit i = qg_param_kind i). */
    unsigned decay_kinds;
    float beta1, beta2, eps; /* Adam */
    float clip_norm;        /* > 0: clip the global gradient L2 norm */
} qg_optim_cfg;

#define QG_DECAY_ALL ((1u << QG_PARAM_WEIGHT) | (1u << QG_PARAM_BIAS) | (1u << QG_PARAM_BN) | \
                      (1u << QG_PARAM_GATE) | (1u << QG_PARAM_CLIP))

typedef enum qg_sched_kind {
    QG_SCHED_CONST = 0,
    QG_SCHED_MULTISTEP = 1, /* lr * gamma^(number of milestones <= epoch) */
    QG_SCHED_COSINE = 2,    /* per epoch, CosineAnnealingLR(T_max = epochs, eta_min) */
    QG_SCHED_POLY = 3       /* per step: (lr - end) * (1 - t/T)^power + end; power 1 = linear */
} qg_sched_kind;

typedef struct qg_schedule {
    qg_sched_kind kind;
    int milestones[16];
    int nmilestones;
    float gamma;
    float end_lr;           /* cosine eta_min, poly end */
    float power;
    int epochs;
    long steps_per_epoch;
} qg_schedule;

float qg__schedule_lr(const qg_schedule *s, float base_lr, int epoch, long step_in_epoch);
/* Parses "100,150" into milestones; returns 0 on a malformed list. */
int qg__schedule_parse_milestones(qg_schedule *s, const char *list);

/* One optimizer step over every trainable parameter; `t` is the 1-based
 * step count (Adam bias correction; SGD uses t == 1 to seed momentum). */
qg_status qg__optim_step(qg_model *m, const qg_optim_cfg *cfg, float lr, long t);
/* Global L2 norm of all gradients (one host read). */
qg_status qg__optim_grad_norm(qg_model *m, float *norm);
/* Optimizer state tensors exist (allocated on first step or by load). */
qg_status qg__optim_ensure_state(qg_model *m, const qg_optim_cfg *cfg);

#endif
