/* src/train/optim.h: optimizers over a model's parameters and learning-
 * rate schedules (PyTorch torch.optim / lr_scheduler semantics). Kernels:
 * cl/optim.cl via src/ops/layers.h. */
#ifndef QG_TRAIN_OPTIM_H
#define QG_TRAIN_OPTIM_H

#include "model/graph.h"
#include "qgate/train.h"

/* qg_optim_cfg, qg_schedule and the QG_DECAY_* kinds are public
 * (qgate/train.h); a decay bit is 1 << qg_param_kind. */
_Static_assert(QG_DECAY_WEIGHT == 1u << QG_PARAM_WEIGHT && QG_DECAY_BIAS == 1u << QG_PARAM_BIAS &&
                   QG_DECAY_BN == 1u << QG_PARAM_BN && QG_DECAY_GATE == 1u << QG_PARAM_GATE &&
                   QG_DECAY_CLIP == 1u << QG_PARAM_CLIP,
               "QG_DECAY_* follow qg_param_kind");

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
